#pragma once
// guardd.conf (TOML). Every key is optional; an absent file means built-in defaults;
// a malformed file is an error "FILE:LINE: what" and never a silent fallback.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::rules {

struct Settings {
  // [mail]
  std::vector<std::uint16_t> mailPorts{25, 465, 587,
                                       2525};  // ports = [...]  1..65535, no duplicates
  // [enforcement]
  std::uint16_t queueNumber = 4025;     // queue = N
  bool removeRulesOnExit = false;       // remove_rules_on_exit = bool
  std::uint32_t queueMaxLength = 4096;  // queue_max_length = N (kernel queue bound)
  // [store]
  std::uint32_t retentionDays = 90;       // attempt_retention_days
  std::uint32_t maxAttempts = 1'000'000;  // max_attempts
  // [log]
  std::string logLevel = "info";  // level = "debug" | "info" | "warning" | "error"
  // [kernel]: who names the program behind a mail connection.
  // identity = "auto" (BPF hooks decide at connect() when the kernel allows it, else the
  // /proc path) | "off" (always the /proc path)
  std::string kernelIdentity = "auto";
  // cgroup = "/abs/dir": the cgroup v2 directory the connect hooks attach to; empty =
  // the cgroup2 root of guardd's mount namespace (from /proc/self/mountinfo).
  std::string kernelCgroup;
  // mark_bit = N: the one socket-mark bit the hooks OR into an approved program's socket
  // and `inet mailguard` accepts before the queue rule. Exactly one bit, and none of the
  // bits of the verdict marks (ruleset.hpp kMarkReject, kMarkAllow).
  std::uint32_t kernelMarkBit = 0x00100000;
  // [detector]: zombie-detector overrides by name, checked against
  // detectorSettingSpecs() (detector_settings.hpp); absent keys keep the defaults.
  std::map<std::string, double> detector;
};

// Parses TOML text; `origin` names the file in error messages.
Result<Settings> parseSettings(std::string_view text, std::string_view origin);
// Reads and parses a file; a missing file returns the defaults only when
// `missingIsDefault` (the built-in default path), otherwise it is an error.
Result<Settings> loadSettings(const std::filesystem::path& file, bool missingIsDefault);

}  // namespace mailguard::rules
