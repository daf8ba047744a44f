#pragma once
// guardctl backscatter [--domain DOMAIN]: bounces for mail this PC did not send, and a
// filter for the owner's mail program (backscatter_rules.hpp).
#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

namespace mailguard::guardctl {

struct BackscatterCommand;

std::shared_ptr<BackscatterCommand> addBackscatterCommand(CLI::App& app);

// When the command was given: runs it and returns the exit code.
std::optional<int> runBackscatterCommand(BackscatterCommand& command, bool json);

}  // namespace mailguard::guardctl
