#include "validate.hpp"

#include <charconv>
#include <chrono>

#include "mailguard/dbus/names.hpp"
#include "mailguard/rules/policy.hpp"

namespace mailguard::bus {
namespace {

constexpr std::size_t kExcerptLength = 60;

std::optional<Error> checkPath(std::string_view p, const char* what) {
  if (p.size() > dbus::kMaxPathLength) {
    return invalidArgument(std::string(what) + " is " + std::to_string(p.size()) +
                           " bytes long; paths are at most " +
                           std::to_string(dbus::kMaxPathLength));
  }
  if (p.find('\0') != std::string_view::npos) {
    return invalidArgument(std::string(what) + " contains a NUL byte: " + excerpt(p));
  }
  if (p.empty() || p.front() != '/') {
    return invalidArgument(std::string(what) +
                           " must be an absolute path (like /usr/bin/msmtp), got " + excerpt(p));
  }
  return std::nullopt;
}

bool allDigits(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

std::string excerpt(std::string_view s) {
  std::string out = "'";
  for (const char c : s.substr(0, kExcerptLength)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += "'";
  if (s.size() > kExcerptLength) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

Result<service::ProgramRef> parseProgramRef(std::string_view target, std::string_view script) {
  service::ProgramRef ref;
  if (allDigits(target)) {
    std::int64_t id = 0;
    const auto [end, ec] = std::from_chars(target.data(), target.data() + target.size(), id);
    if (ec != std::errc{} || end != target.data() + target.size()) {
      return invalidArgument("program id " + excerpt(target) + " is out of range");
    }
    if (id <= 0) return invalidArgument("program ids start at 1, got " + excerpt(target));
    if (!script.empty()) {
      return invalidArgument(
          "a script goes with a program path, not with an id (the id already "
          "names the script)");
    }
    ref.target = id;
    return ref;
  }
  if (target.empty()) {
    return invalidArgument(
        "no program given: name it by its id (see the programs list) or by "
        "its absolute path");
  }
  if (target.front() != '/' && target.size() <= dbus::kMaxPathLength &&
      target.find('\0') == std::string_view::npos) {
    return invalidArgument(
        "a program is named by its id (a number from the programs list) or its "
        "absolute path (like /usr/bin/msmtp), got " +
        excerpt(target));
  }
  if (auto bad = checkPath(target, "program path")) return *bad;
  if (!script.empty()) {
    if (auto bad = checkPath(script, "script path")) return *bad;
  }
  ref.target = std::string(target);
  ref.script = std::string(script);
  return ref;
}

Result<store::AttemptQuery> parseAttemptQuery(std::uint32_t limit, std::int64_t beforeId,
                                              std::int64_t programId, std::string_view verdict,
                                              std::int64_t sinceUs, std::int64_t untilUs) {
  store::AttemptQuery q;
  if (limit > dbus::kMaxAttemptsLimit) {
    return invalidArgument("limit " + std::to_string(limit) + " is too large; at most " +
                           std::to_string(dbus::kMaxAttemptsLimit) +
                           " per call (page with before_id for more)");
  }
  q.limit = limit == 0 ? dbus::kDefaultAttemptsLimit : limit;
  if (beforeId < 0) return invalidArgument("before_id must be 0 (none) or an attempt id");
  if (beforeId > 0) q.beforeId = beforeId;
  if (programId < 0) return invalidArgument("program_id must be 0 (any) or a program id");
  if (programId > 0) q.programId = programId;
  if (!verdict.empty()) {
    const auto v = rules::verdictFromString(verdict);
    if (!v || verdict.find('\0') != std::string_view::npos) {
      return invalidArgument("verdict must be allow, hold or reject (or empty for any), got " +
                             excerpt(verdict));
    }
    q.verdict = *v;
  }
  // TimePoint counts nanoseconds in 64 bits: microseconds beyond about the year 2262
  // would overflow the conversion (undefined behaviour, found by fuzzing).
  constexpr std::int64_t kMaxUs =
      std::chrono::duration_cast<std::chrono::microseconds>(TimePoint::duration::max()).count();
  if (sinceUs < 0 || untilUs < 0 || sinceUs > kMaxUs || untilUs > kMaxUs) {
    return invalidArgument(
        "since and until are microseconds since 1970 (0 for no bound), at most " +
        std::to_string(kMaxUs));
  }
  if (sinceUs > 0 && untilUs > 0 && sinceUs > untilUs) {
    return invalidArgument("since is later than until: nothing could match");
  }
  if (sinceUs > 0) q.since = TimePoint{std::chrono::microseconds(sinceUs)};
  if (untilUs > 0) q.until = TimePoint{std::chrono::microseconds(untilUs)};
  return q;
}

}  // namespace mailguard::bus
