// D-Bus arguments come from any local user. Input: "TARGET\nSCRIPT\nVERDICT\n" then the
// bytes of limit (u32), before_id, program_id, since and until (i64 each), zero-padded.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <variant>

#include "validate.hpp"

namespace bus = mailguard::bus;

namespace {

std::string_view nextLine(std::string_view& in) {
  const auto nl = in.find('\n');
  const std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
  return line;
}

template <class T>
T take(std::string_view& in) {
  T value{};
  const std::size_t n = in.size() < sizeof value ? in.size() : sizeof value;
  if (n == 0) return value;  // memcpy from the null data() of an empty view is UB
  std::memcpy(&value, in.data(), n);
  in.remove_prefix(n);
  return value;
}

void checkMessage(const mailguard::Error& bad) {
  if (bad.code != mailguard::Errc::InvalidArgument) std::abort();
  // Messages quote at most an excerpt of the caller's bytes: bounded, printable.
  if (bad.message.empty() || bad.message.size() > 600) std::abort();
  for (const char c : bad.message) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const std::string_view target = nextLine(in);
  const std::string_view script = nextLine(in);
  const std::string_view verdict = nextLine(in);
  const auto limit = take<std::uint32_t>(in);
  const auto beforeId = take<std::int64_t>(in);
  const auto programId = take<std::int64_t>(in);
  const auto since = take<std::int64_t>(in);
  const auto until = take<std::int64_t>(in);

  const auto ref = bus::parseProgramRef(target, script);
  if (!ref) {
    checkMessage(ref.error());
  } else {
    // Accepted: an id > 0 without a script, or an absolute path (and script) without NUL.
    const auto& r = *ref;
    if (const auto* id = std::get_if<std::int64_t>(&r.target)) {
      if (*id <= 0 || !r.script.empty()) std::abort();
    } else {
      auto malformed = [](const std::string& p) {
        return p.empty() || p.front() != '/' || p.size() > 4096 ||
               p.find('\0') != std::string::npos;
      };
      if (malformed(std::get<std::string>(r.target)) ||
          (!r.script.empty() && malformed(r.script))) {
        std::abort();
      }
    }
  }
  const auto query = bus::parseAttemptQuery(limit, beforeId, programId, verdict, since, until);
  if (!query) {
    checkMessage(query.error());
  } else if (query->limit == 0 || query->limit > 1000) {
    std::abort();
  }

  const std::string e = bus::excerpt(target);
  if (e.size() > 4 * 60 + 40) std::abort();
  return 0;
}
