// Masking secrets in a command line a program chose itself. Input: NUL-separated argv
// (argv[0] first), as in /proc/PID/cmdline.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/secrets.hpp"

namespace rules = mailguard::rules;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> argv;
  while (!rest.empty()) {
    const auto nul = rest.find('\0');
    argv.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view{} : rest.substr(nul + 1);
  }

  // Masking what is masked changes nothing, for argv and for the joined line.
  const auto masked = rules::maskSecrets(argv);
  if (masked.size() != argv.size()) std::abort();
  if (rules::maskSecrets(masked) != masked) std::abort();
  std::string joined;
  for (const auto& a : argv) joined += (joined.empty() ? "" : " ") + a;
  const auto line = rules::maskCommandLine(joined);
  if (rules::maskCommandLine(line) != line) std::abort();

  // Whatever came before, a password option's value is masked.
  auto planted = argv;
  planted.insert(planted.end(), {"--auth-password", "pl4nted", "--pass=pl4nted"});
  const auto out = rules::maskSecrets(planted);
  const auto n = out.size();
  if (out[n - 2] != rules::kMaskedSecret || out[n - 1] != "--pass=***") std::abort();
  return 0;
}
