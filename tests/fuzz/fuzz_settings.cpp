// guardd.conf is read as root from a file an admin (or a package script) wrote; a
// parser crash would stop guardd at boot. Every input must give settings or an error
// "fuzz.conf:LINE...", and accepted settings must respect the documented bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

#include "mailguard/rules/settings.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto settings = mailguard::rules::parseSettings(text, "fuzz.conf");
  if (!settings.has_value()) {
    if (!settings.error().message.starts_with("fuzz.conf:")) std::abort();
    return 0;
  }
  const auto& s = settings.value();
  if (s.mailPorts.empty()) std::abort();
  std::set<std::uint16_t> seen;
  for (const std::uint16_t port : s.mailPorts) {
    if (port == 0 || !seen.insert(port).second) std::abort();
  }
  if (s.queueMaxLength == 0) std::abort();
  if (s.logLevel != "debug" && s.logLevel != "info" && s.logLevel != "warning" &&
      s.logLevel != "error") {
    std::abort();
  }
  return 0;
}
