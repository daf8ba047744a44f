#pragma once
// One postfix instance as guardd sees it: where its maildrop, pickup and cleanup are (from
// its main.cf), where guardd's milter for it listens, and the commands the release agent
// runs on its queue.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/mta/protocol.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

struct PostfixInstance {
  std::filesystem::path configDir;         // config_directory: /etc/postfix
  std::filesystem::path queueDirectory;    // queue_directory: /var/spool/postfix
  std::filesystem::path daemonDirectory;   // daemon_directory: /usr/lib/postfix/sbin
  std::filesystem::path commandDirectory;  // command_directory: /usr/sbin
  // mail_owner: the account postfix's unprivileged daemons (qmgr, bounce, smtpd) run as,
  // whose journal records are postfix's own (journal_follower.hpp).
  std::string mailOwner = "postfix";

  // postdrop (setgid postdrop) writes each submission here; pickup reads it.
  [[nodiscard]] std::filesystem::path maildrop() const { return queueDirectory / "maildrop"; }
  [[nodiscard]] std::filesystem::path pickup() const { return daemonDirectory / "pickup"; }
  [[nodiscard]] std::filesystem::path cleanup() const { return daemonDirectory / "cleanup"; }
  // guardd's milter socket, inside the queue directory: cleanup runs chrooted there on
  // Debian (master.cf "y"), and it connects from its working directory, which is the queue
  // directory chrooted or not, so the relative name below reaches it either way.
  [[nodiscard]] std::filesystem::path milterSocket() const {
    return queueDirectory / kMilterSocketName;
  }
  static constexpr std::string_view kMilterSocketName = "mailguard/milter.sock";
  // What main.cf's non_smtpd_milters names (postconf syntax: a per-milter default action,
  // so that the owner's other milters keep theirs). tempfail: while guardd does not answer,
  // pickup leaves the message in the maildrop and tries again; nothing leaves, nothing is
  // lost.
  static constexpr std::string_view kMilterSetting =
      "{ unix:mailguard/milter.sock, default_action=tempfail }";
  // The held list's note of where a message is held: "postfix:/etc/postfix".
  [[nodiscard]] std::string where() const { return "postfix:" + configDir.string(); }
};

// Parses main.cf's text: "name = value", continuation lines start with white space,
// comments start with '#'; $name and ${name} expand parameters set in the same file.
std::map<std::string, std::string> parsePostfixMainCf(std::string_view text);

// Reads `configDir`/main.cf. Parameters it does not set take Debian's compiled-in
// defaults (postconf -d).
Result<PostfixInstance> readPostfixInstance(const std::filesystem::path& configDir);

// The release agent's commands for postfix, guardd -> agent, one line each:
//   "postfix release CONFIG_DIR ID ID...\n"  (postsuper -H: off hold, then delivered)
//   "postfix remove CONFIG_DIR ID ID...\n"   (postsuper -d)
//   "postfix hold CONFIG_DIR ID ID...\n"     (postsuper -h: into the hold queue, not retried)
// CONFIG_DIR is absolute without white space; ids are checked with isQueueId.
struct PostfixCommand {
  AgentAction action = AgentAction::Release;
  std::string configDir;
  std::vector<std::string> ids;
};
std::string formatPostfixCommand(AgentAction action, const std::string& configDir,
                                 const std::vector<std::string>& ids);
// An error for a line that is not a postfix command or names something unsafe.
Result<PostfixCommand> parsePostfixCommand(std::string_view line);
// True when `line` is meant as a postfix command (parse it with parsePostfixCommand).
bool isPostfixCommand(std::string_view line);

}  // namespace mailguard::mta
