#pragma once
// postfix's records read from the systemd journal, for hosts where postfix logs nowhere
// else (Debian without rsyslog: syslog(3) goes to journald only).
//
// Unlike a log file, the journal says who wrote each record: _UID is set by journald from
// the credentials the kernel attaches to the syslog datagram (SCM_CREDENTIALS), not from
// anything the writer says. postfix's daemons run as root (master, local, virtual before
// they switch) or as its mail_owner ("postfix"); a record tagged "postfix/smtp" by any
// other uid is someone else's (logger -t, postlog run by a user) and is skipped.
#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "mailguard/mta/backscatter.hpp"
#include "mailguard/mta/exim_log.hpp"
#include "mailguard/rules/result.hpp"

struct sd_journal;

namespace mailguard::mta {

// Whether a record is postfix's own: a postfix tag (isPostfixTag), written by one of
// `postfixUids` (as journald recorded it; nullopt: not recorded, so not trusted).
bool isTrustedPostfixRecord(std::string_view identifier, std::optional<std::uint32_t> uid,
                            const std::vector<std::uint32_t>& postfixUids);

// root and the uid of `mailOwner` (postfix's mail_owner, "postfix" on Debian) if it exists.
std::vector<std::uint32_t> postfixUids(const char* mailOwner = "postfix");

// Whether journald runs here (its native socket exists; sd_booted(3) asks a similar
// question of systemd): without it the journal holds nothing new.
bool journaldRuns(const std::filesystem::path& socket = "/run/systemd/journal/socket");

class JournalFollower {
 public:
  // The local system journal's mail-facility records (SYSLOG_FACILITY=2), from its end:
  // history is not replayed.
  static Result<std::unique_ptr<JournalFollower>> open(std::vector<std::uint32_t> trustedUids);
  // A journal namespace's (journald's --namespace, systemd-journald@NS): what tests use.
  static Result<std::unique_ptr<JournalFollower>> openNamespace(
      const char* name, std::vector<std::uint32_t> trustedUids);
  ~JournalFollower();
  JournalFollower(const JournalFollower&) = delete;
  JournalFollower& operator=(const JournalFollower&) = delete;

  // Readable when the journal changed (inotify underneath): for the event loop.
  [[nodiscard]] int fd() const { return fd_; }
  // Reads the records appended since the last call; of those postfix wrote, each outcome
  // of a message goes to `onLine` and each record about mail received here (a bounce's
  // arrival and delivery, InboundLine) to `onInbound` when it is set. At most kMaxPerPoll
  // records per call: a burst is read over several turns of the loop.
  static constexpr int kMaxPerPoll = 5000;
  Result<void> poll(const std::function<void(const MtaLogLine&)>& onLine,
                    const std::function<void(const InboundLine&)>& onInbound = {});
  // Also trusts records written by `uid` (a postfix instance's mail_owner).
  void trust(std::uint32_t uid);

 private:
  JournalFollower(sd_journal* j, int fd, std::vector<std::uint32_t> trustedUids)
      : j_(j), fd_(fd), trustedUids_(std::move(trustedUids)) {}
  static Result<std::unique_ptr<JournalFollower>> start(sd_journal* j,
                                                        std::vector<std::uint32_t> trustedUids);
  sd_journal* j_;  // owned: closed by the destructor
  int fd_;         // owned by j_
  std::vector<std::uint32_t> trustedUids_;
};

}  // namespace mailguard::mta
