#pragma once
// guardctl's zombie-detector commands: alerts, alerts ack ID, release, bulk.
#include <CLI/CLI.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "mailguard/dbus/client.hpp"

namespace mailguard::guardctl {

// DESIGN.md's --json shape {id, time, path, tier, reasons, acknowledged}, plus
// program_id, uid, summary and evidence (an object).
nlohmann::json toJson(const dbus::Alert& a);
std::string alertsTable(const std::vector<dbus::Alert>& alerts);
// How the alert's tier reads to the owner: "quarantined", "audit: open relay", ...
std::string tierLabel(const dbus::Alert& a);
// One line for `guardctl watch`.
std::string alertLine(const dbus::Alert& a);

class DetectorCommands {
 public:
  explicit DetectorCommands(CLI::App& app);
  // Before connecting: the usage exit code (2) when release's or bulk's program or
  // script is neither an id nor a path; nullopt when they are (or not given).
  std::optional<int> checkArguments();
  // The exit code when one of these commands was given, nullopt otherwise.
  std::optional<int> run(dbus::Client& client, bool json);

 private:
  CLI::App* alerts_ = nullptr;
  CLI::App* ack_ = nullptr;
  CLI::App* release_ = nullptr;
  CLI::App* bulk_ = nullptr;
  std::uint32_t limit_ = 0;
  std::int64_t ackId_ = 0;
  std::string target_, script_;
  std::string resolvedTarget_, resolvedScript_;  // by checkArguments()
  std::uint32_t recipients_ = 0, hours_ = 0;
};

}  // namespace mailguard::guardctl
