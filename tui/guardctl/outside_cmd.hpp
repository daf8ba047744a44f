#pragma once
// guardctl's outside check: outside [--run]: the household's public address in the DNS
// blocklists, and SPF/DMARC of the owner's domains ([outside] in guardd.conf).
#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace mailguard::guardctl {

struct OutsideCommands;

std::shared_ptr<OutsideCommands> addOutsideCommands(CLI::App& app);
// When `outside` was given: runs it and returns the exit code.
std::optional<int> runOutsideCommands(OutsideCommands& commands, bool json);

// The report (the JSON guardd's Outside method returns) for people.
std::string outsideText(const nlohmann::json& report);
// The same in one line (guardctl watch): the address, the lists it is on, domain findings.
std::string outsideLine(const nlohmann::json& report);

}  // namespace mailguard::guardctl
