// Parsers of /proc text. Pure and bounded: they see attacker-influenced text (a process
// chooses its own comm and command line) and are fuzzed.
#include <charconv>

#include "mailguard/common/text.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {

namespace {

template <class T>
std::optional<T> parseNumber(std::string_view s) {
  if (s.empty()) return std::nullopt;
  T value{};
  const char* end = s.data() + s.size();
  const auto [ptr, ec] = std::from_chars(s.data(), end, value);
  if (ec != std::errc{} || ptr != end) return std::nullopt;
  return value;
}

std::string_view firstField(std::string_view s) {
  s = trimBlanks(s);
  const auto end = s.find_first_of(" \t");
  return end == std::string_view::npos ? s : s.substr(0, end);
}

}  // namespace

std::optional<StatusFields> parseStatus(std::string_view text) {
  StatusFields fields;
  bool any = false;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, colon);
    const std::string_view value = line.substr(colon + 1);
    if (key == "Name") {
      // "Name:\t<comm>"; comm may itself contain blanks, so only the separator tab goes.
      std::string_view name = value;
      if (!name.empty() && name.front() == '\t') name.remove_prefix(1);
      fields.name = std::string(name);
      any = true;
    } else if (key == "PPid") {
      const auto ppid = parseNumber<int>(firstField(value));
      if (!ppid || *ppid < 0) return std::nullopt;
      fields.ppid = *ppid;
      any = true;
    } else if (key == "Uid") {
      // "Uid:\treal\teffective\tsaved\tfilesystem"
      const auto uid = parseNumber<std::uint32_t>(firstField(value));
      if (!uid) return std::nullopt;
      fields.uid = *uid;
      any = true;
    }
  }
  if (!any) return std::nullopt;
  return fields;
}

std::vector<std::string> parseCmdline(std::string_view raw) {
  std::vector<std::string> args;
  while (!raw.empty()) {
    const auto nul = raw.find('\0');
    if (nul == std::string_view::npos) {
      args.emplace_back(raw);  // no trailing NUL (a rewritten or cut command line)
      break;
    }
    args.emplace_back(raw.substr(0, nul));
    raw.remove_prefix(nul + 1);
  }
  return args;
}

namespace {

// Field `wanted` (numbered as in proc(5)) of /proc/PID/stat: "pid (comm) state ppid ...".
// comm is free text that may contain ") (", so the fields start after the LAST ')'; the
// first field after it is field 3.
std::optional<std::string_view> statField(std::string_view statText, int wanted) {
  constexpr int kFirstFieldAfterComm = 3;
  const auto open = statText.find('(');
  const auto close = statText.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return std::nullopt;
  }
  std::string_view rest = statText.substr(close + 1);
  int field = kFirstFieldAfterComm;
  for (;;) {
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    if (rest.empty()) return std::nullopt;
    const auto end = rest.find_first_of(" \n");
    const std::string_view token = rest.substr(0, end);
    if (field == wanted) return token;
    if (end == std::string_view::npos) return std::nullopt;
    rest.remove_prefix(end);
    if (rest.front() == '\n') return std::nullopt;
    ++field;
  }
}

}  // namespace

std::optional<std::uint64_t> parseStatStartTime(std::string_view statText) {
  const auto field = statField(statText, 22);  // starttime
  return field ? parseNumber<std::uint64_t>(*field) : std::nullopt;
}

bool statHasControllingTerminal(std::string_view statText) {
  const auto field = statField(statText, 7);  // tty_nr: 0 when there is none
  return field && !field->empty() && *field != "0";
}

std::optional<std::uint64_t> parseSocketLink(std::string_view link) {
  constexpr std::string_view kPrefix = "socket:[";
  if (link.size() <= kPrefix.size() + 1 || link.substr(0, kPrefix.size()) != kPrefix ||
      link.back() != ']') {
    return std::nullopt;
  }
  const std::string_view digits = link.substr(kPrefix.size(), link.size() - kPrefix.size() - 1);
  return parseNumber<std::uint64_t>(digits);
}

std::optional<std::uint32_t> parseFdinfoFlags(std::string_view fdinfo) {
  constexpr std::string_view kKey = "flags:";
  while (!fdinfo.empty()) {
    const auto eol = fdinfo.find('\n');
    const std::string_view line = fdinfo.substr(0, eol);
    fdinfo = eol == std::string_view::npos ? std::string_view{} : fdinfo.substr(eol + 1);
    if (!line.starts_with(kKey)) continue;
    const std::string_view digits = firstField(line.substr(kKey.size()));
    if (digits.empty()) return std::nullopt;
    std::uint32_t value = 0;
    const char* end = digits.data() + digits.size();
    const auto [ptr, ec] = std::from_chars(digits.data(), end, value, 8);
    if (ec != std::errc{} || ptr != end) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

}  // namespace mailguard::procinfo
