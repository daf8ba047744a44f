#pragma once
// guardctl's host firewall and mail-server audit commands:
//   firewall status|enable [--yes]|disable|allow SPEC [--local]|remove NAME|
//            local-subnets CIDR...|probes
//   audit [--run]
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

namespace mailguard::guardctl {

struct HostCommands;

// Adds the subcommands to `app`; the returned object holds their options.
std::shared_ptr<HostCommands> addHostCommands(CLI::App& app);

// When one of these commands was given: runs it and returns the exit code.
std::optional<int> runHostCommands(HostCommands& commands, bool json);

}  // namespace mailguard::guardctl
