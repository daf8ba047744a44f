// Program identity from a command line a program chose itself. Input: the executable's
// basename, a newline, then NUL-separated argv (argv[0] first), as in /proc/PID/cmdline.
// Each argument is also a path for normalisePath and isUnsafeLocation.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/identity.hpp"

namespace rules = mailguard::rules;

namespace {

void checkNormalised(const std::string& p) {
  // Absolute, no empty, "." or ".." parts, no trailing slash (except "/"), idempotent.
  if (p.empty() || p.front() != '/') std::abort();
  if (p.size() > 1 && p.back() == '/') std::abort();
  if (p.find("//") != std::string::npos) std::abort();
  const std::string slashed = p + "/";
  if (slashed.find("/./") != std::string::npos || slashed.find("/../") != std::string::npos) {
    std::abort();
  }
  if (rules::normalisePath("/", p) != p) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto nl = input.find('\n');
  const std::string_view basename = input.substr(0, nl);
  std::string_view rest = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);
  std::vector<std::string> argv;
  while (!rest.empty()) {
    const auto nul = rest.find('\0');
    argv.emplace_back(rest.substr(0, nul));
    rest = nul == std::string_view::npos ? std::string_view{} : rest.substr(nul + 1);
  }

  if (const auto script = rules::scriptArgument(basename, argv)) {
    // The script is an argument, or the rest of one ("php -fFILE", "--file=FILE").
    bool found = false;
    for (const std::string& a : argv) {
      if (a.ends_with(*script)) found = true;
    }
    if (!found || !rules::isInterpreter(basename)) std::abort();
  }

  const std::string base = argv.empty() ? std::string("/") : argv.front();
  for (const std::string& a : argv) {
    const std::string n = rules::normalisePath(base, a);
    checkNormalised(n);
    // Spelling a path differently ("/tmp/../tmp/x", "//tmp/x", "/tmp/./x") must not
    // make it look safe. The converse may differ, on the safe side: "/memfd:a/../bin/y"
    // (a memfd name may hold slashes) is unsafe, its lexical normal form is not.
    if (a.starts_with('/') && rules::isUnsafeLocation(n) && !rules::isUnsafeLocation(a)) {
      std::abort();
    }
  }
  return 0;
}
