#include "mailguard/mta/submitter.hpp"

#include "mailguard/mta/protocol.hpp"

#include <array>
#include <filesystem>
#include <string>
#include <string_view>

namespace mailguard::mta {
namespace {

// A chain deeper than this is not a submitter's: give up rather than walk forever.
constexpr int kMaxDepth = 32;

std::string baseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

}  // namespace

bool isMtaName(std::string_view name) {
  static constexpr std::array<std::string_view, 9> kNames{
      "exim",  "exim4",      "sendmail", "postdrop", "postqueue", "sendmail.postfix",
      "mailq", "newaliases", "rmail"};
  for (const auto n : kNames) {
    if (name == n) return true;
  }
  return false;
}

bool isMtaProgram(const procinfo::ProcessInfo& p) {
  if (!p.identity.pathTrusted || p.identity.deleted || !p.identity.scriptPath.empty()) return false;
  return isMtaName(baseName(p.identity.path));
}

bool isShellWrapper(const procinfo::ProcessInfo& p) {
  static constexpr std::array<std::string_view, 6> kShells{"sh",  "dash", "bash",
                                                           "zsh", "ksh",  "mksh"};
  if (!p.identity.pathTrusted || !p.identity.scriptPath.empty()) return false;
  const auto name = baseName(p.identity.path);
  bool shell = false;
  for (const auto s : kShells) shell = shell || name == s;
  if (!shell) return false;
  // `sh -c CMD`, `bash -ec CMD`: an option cluster holding c before the first operand.
  for (std::size_t i = 1; i < p.cmdline.size(); ++i) {
    const auto& a = p.cmdline[i];
    if (a.size() < 2 || a.front() != '-' || a == "--") return false;
    if (a[1] != '-' && a.find('c') != std::string::npos) return true;
  }
  return false;
}

std::optional<std::string> foreignMtaConfig(const procinfo::ProcessInfo& p,
                                            std::string_view eximConfig) {
  if (!isMtaProgram(p)) return std::nullopt;
  for (std::size_t i = 1; i < p.cmdline.size(); ++i) {
    const std::string_view a = p.cmdline[i];
    if (a == "--") break;
    if (a.starts_with("-C")) {
      const std::string_view file = a.size() > 2               ? a.substr(2)
                                    : i + 1 < p.cmdline.size() ? std::string_view(p.cmdline[i + 1])
                                                               : std::string_view();
      if (eximConfig.empty() || file != eximConfig) {
        return "the MTA's program run with a configuration of its own (-C " + std::string(file) +
               "), not the system's mail server";
      }
    } else if (a.starts_with("-D")) {
      return "the MTA's program run with macros of its own (" + std::string(a) + ")";
    }
  }
  return std::nullopt;
}

Result<procinfo::ProcessInfo> findSubmitter(int mtaPid, const Describe& describe) {
  int pid = mtaPid;
  for (int depth = 0; depth < kMaxDepth && pid > 0; ++depth) {
    auto info = describe(pid);
    if (!info) return info.error();
    // The submitter exited and init adopted the MTA's process: whoever it was, it is not
    // init. Unknown, so the message is held.
    if (info->pid == 1) break;
    if (!isMtaProgram(*info) && !isShellWrapper(*info)) return info;
    if (info->ppid <= 0) break;
    pid = info->ppid;
  }
  return notFound("no program other than the MTA's own in the chain above pid " +
                  std::to_string(mtaPid));
}

Result<bool> isEximOwnMessage(const procinfo::ProcessInfo& asker, std::string_view sender,
                              std::uint32_t eximUid, const Describe& describe) {
  // Bounces and warnings have the null return path ("<>" on the command line, empty in
  // $sender_address): nothing else exim makes on its own is exempt.
  if (!sender.empty() && sender != "<>") return false;
  if (!isMtaProgram(asker) || asker.ppid <= 1) return false;
  // -E<id>: the message exim was delivering when it made this one (set by child_open_exim2
  // for every message exim writes itself; exim honours it for its own callers only).
  bool fromMessage = false;
  for (std::size_t i = 1; i < asker.cmdline.size(); ++i) {
    const std::string_view a = asker.cmdline[i];
    fromMessage = fromMessage || (a.starts_with("-E") && isQueueId(a.substr(2)));
  }
  if (!fromMessage) return false;
  auto parent = describe(asker.ppid);
  if (!parent) {
    if (parent.error().code == Errc::Pending) return parent.error();
    return false;  // the parent exited: adopted, so no longer exim's child
  }
  if (!isMtaProgram(*parent)) return false;
  if (parent->uid != 0 && parent->uid != eximUid) return false;
  // The pid names the same process as asker's ppid: a parent is older than its child (a
  // pid reused after the parent exited names a younger process).
  if (parent->startTime > asker.startTime) return false;
  return true;
}

}  // namespace mailguard::mta
