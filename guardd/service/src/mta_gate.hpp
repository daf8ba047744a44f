#pragma once
// Mail handed to the local MTA without TCP (sendmail, exim -t/-bm/-bs on stdin), gated like
// a connection. Private to guardd/service.
//
// Why a program cannot get such a message past this (exim; DESIGN terms):
//  - Only exim writes its spool: /var/spool/exim4 belongs to Debian-exim and exim is the
//    setuid program that writes it, so a message reaches the queue only by being received
//    by exim. A program that writes a file into the spool itself is refused by the kernel
//    (permissions), and exim started with another configuration (-C) by anyone but root
//    drops its privileges and cannot write that spool either.
//  - Every message exim receives other than over TCP runs acl_not_smtp (exim -t, -bm,
//    sendmail) or, for SMTP on stdin (-bs), the DATA ACL with an empty
//    $sender_host_address; install/exim4/ makes both ask guardd, and without an answer
//    (guardd stopped, socket gone, timeout) the ACL freezes the message: fail closed,
//    nothing lost.
//  - guardd does not believe the question: the asking process is the peer of the unix
//    socket (SO_PEERCRED, set by the kernel at connect()), it must be a root-owned exim,
//    and the submitter is that process's parent chain as /proc shows it, described by the
//    same ProcessResolver as connections.
//  - Submissions over TCP (127.0.0.1:25/587) never come here: they are connections from
//    the submitter, decided by the queue rule of `inet mailguard` like any other.
//  - The owner's decision is carried out by guard-mta-agent (root): guardd itself cannot
//    run exim (no_new_privs, four capabilities, read-only /var/spool).
//
// postfix (watchPostfix): the same decision, asked at a different place. fanotify on each
// instance's maildrop names the program that wrote each file there while its writer is
// blocked (mailguard/mta/postfix_maildrop.hpp says why that cannot be bypassed), and
// cleanup asks guardd's milter at the end of each message pickup hands it: unknown
// programs' messages go to postfix's hold queue (SMFIR_QUARANTINE; it survives restarts),
// as do a quarantined program's; a denied program's are discarded (SMFIR_DISCARD: no
// bounce to a sender address the program may have forged). The held list, the attempts,
// the agent and the owner's decisions are exim's.
//
// What becomes of the mail it let through is charged to the submitter too: guardd follows
// exim's main log ([mta] exim_log) and links each delivery line to the submission by its
// queue id (DeliveryTracker). Each message's final outcomes go to the zombie detector as
// the submitter's evidence (O4 unknown users, O3 blocklists, O2 other refusals,
// deliveries), and each submission counts against the MTA channel's daily backstops; a
// program quarantined so is refused from then on (Answer::Deny), and its messages still
// frozen stay frozen (neither released nor deleted) until the owner releases or denies
// it. Messages the MTA accepted before the quarantine and is still retrying (the tracker
// knows them until their "Completed", where the MTA's log is followed) are held too, by the agent
// (exim -Mf, postsuper -h), and listed as the program's held messages: the owner's decision
// releases or deletes them like the rest. The log is not a way around the gate: a program that
// cannot write exim's log (Debian-exim:adm 0640) cannot forge outcomes, and lines of
// messages not submitted through the gate (exim's own bounces, mail submitted over TCP)
// are not charged here.
//
// exim's own messages (bounces and DSNs to a local sender, delay warnings) are received
// by an exim that exim's delivery process started: they are accepted and recorded under
// exim's binary, not held as mail of a program that could not be named
// (mta::isEximOwnMessage says how they are told apart, and why that cannot be forged).
//
// postfix's outcomes come the same way from its log ([mta] postfix_log: rsyslog's
// mail.log or postfix's maillog_file), each line read by its own parser into the same
// tracker. A log file is weaker evidence than exim's: any local user can write a syslog
// record tagged "postfix/smtp" (postfix_log.hpp). A forger still charges only queue ids the
// gate handed out, and only by naming them; the worst it can do is report its own mail as
// delivered (evidence for it; the daily backstops count submissions, not outcomes) or
// another program's as bounced. Where that file does not exist, postfix's records are read
// from the systemd journal instead, which records each writer's uid: there only postfix's
// own records count (root's and its mail_owner's: journal_follower.hpp), for the outcomes
// and for the backscatter watch alike.
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backscatter.hpp"
#include "detection.hpp"
#include "mailguard/mta/exim_log.hpp"
#include "mailguard/mta/gate_socket.hpp"
#include "mailguard/mta/held_messages.hpp"
#include "mailguard/mta/journal_follower.hpp"
#include "mailguard/mta/milter_session.hpp"
#include "mailguard/mta/postfix_instance.hpp"
#include "mailguard/mta/postfix_log.hpp"
#include "mailguard/mta/postfix_maildrop.hpp"
#include "mailguard/mta/protocol.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/service/event_loop.hpp"
#include "program_registry.hpp"
#include "verdict_pipeline.hpp"

namespace mailguard::service {

class MtaGate {
 public:
  struct Deps {
    EventLoop& loop;
    const Clock& clock;
    procinfo::ProcessResolver& resolver;
    ProgramRegistry& programs;
    const std::vector<rules::ApprovalRule>& approvals;
    VerdictPipeline& pipeline;
    Detection& detection;
  };
  // Listens on `socket`; the held messages are listed in `heldFile`; outcomes are read
  // from `eximLog` and `postfixLog` (empty: not followed).
  static Result<std::unique_ptr<MtaGate>> open(Deps deps, const std::filesystem::path& socket,
                                               const std::filesystem::path& heldFile,
                                               const std::filesystem::path& eximLog = {},
                                               const std::filesystem::path& postfixLog = {});
  ~MtaGate();

  // Gates mail handed to these postfix instances without TCP: watches each maildrop and
  // answers each instance's milter (PostfixInstance::milterSocket). An error leaves the
  // instances that were set up before it gated.
  Result<void> watchPostfix(const std::vector<mta::PostfixInstance>& instances);

  // Bounces delivered here are reported to `monitor` from now on (the logs it follows, or
  // postfix's own records in the journal).
  void watchBackscatter(BackscatterMonitor& monitor);
  // Where a backscatter alert tells the owner to look when postfix's records came from
  // the journal rather than a log file.
  static constexpr std::string_view kJournalPlace =
      "the systemd journal: journalctl SYSLOG_FACILITY=2";

  // The owner's rules changed: held messages of approved programs are released, those of
  // denied programs deleted (by the agent, when it is connected). A program's row decides
  // for all its versions: the messages an older content submitted go as the current
  // version's decision says.
  void reconcile();
  // Messages the MTA holds for this version of a program.
  [[nodiscard]] std::size_t held(std::int64_t programId) const { return held_.count(programId); }
  // Messages the MTA holds for every version of the program `view` is a version of (what a
  // decision about its row releases or deletes).
  [[nodiscard]] std::size_t heldOfProgram(const ProgramView& view) const;
  // A program's state changed: once quarantined, its messages still in the MTA's queue
  // are held (by the agent, as soon as it is connected) and listed as held for it.
  void programChanged(const ProgramView& view);

 private:
  MtaGate(Deps deps, std::unique_ptr<mta::GateSocket> socket, mta::HeldMessages held)
      : d_(deps), socket_(std::move(socket)), held_(std::move(held)) {}
  void onAccept();
  void onReadable(int fd);
  void close(int fd);
  // The answer to one question, recorded as an attempt.
  // nullopt: a file of the chain is still being hashed (off the loop); asked again later.
  std::optional<std::string> answer(const mta::PeerConnection& c, const mta::Submission& s);
  // The decision on a message whose submitter was looked for, recorded as an attempt; held
  // messages are listed with `where` (HeldMessages::Entry). `holdRefused`: a refused
  // message is held instead unless its program is denied (postfix: the message is already
  // queued; deleting a quarantined program's mail is the owner's call).
  std::pair<mta::Answer, std::string> judge(const Result<procinfo::ProcessInfo>& submitter,
                                            const mta::Submission& s, std::uint32_t uid,
                                            const std::string& where, bool holdRefused);
  // Questions whose programs are being hashed: answered by retry() once they are known.
  void retry();
  void onAgentLine(const std::string& line);
  // Reads what the MTAs logged since the last call and charges finished messages.
  void followLog();
  // One log: its lines through `parse`; a failure is logged once per kind (`lastError`).
  void follow(mta::LogFollower& log, std::optional<mta::MtaLogLine> (*parse)(std::string_view),
              std::optional<mta::InboundLine> (*inbound)(std::string_view), std::string& lastError);
  // One outcome line: charged when it finishes a message; a recipient reached for the
  // backscatter watch when the message was submitted through the gate.
  void onOutcome(const mta::MtaLogLine& line);
  void followJournal();
  void charge(const mta::DeliveryTracker::Finished& finished);

  Deps d_;
  std::unique_ptr<mta::GateSocket> socket_;
  mta::HeldMessages held_;
  std::map<int, mta::PeerConnection> peers_;
  struct Waiting {
    int fd;
    mta::Submission question;
    MonoTime since;
  };
  std::vector<Waiting> waiting_;
  int agentFd_ = -1;
  // Commands sent to the agent and not yet answered, oldest first.
  struct Sent {
    mta::AgentAction action;
    std::vector<std::string> ids;
    std::string where;
  };
  std::deque<Sent> inFlight_;
  // Queued messages of quarantined programs the agent is yet to hold, by place.
  std::map<std::string, std::vector<std::string>> toHold_;
  // Sends toHold_ to the agent; false when the agent connection failed (closed).
  bool sendHolds();
  // exim's uid (Debian-exim), for isEximOwnMessage; root's when it has none.
  std::uint32_t eximUid_ = 0;
  // An exim's own message (bounce, warning), accepted and recorded under exim's binary.
  std::string acceptOwn(const procinfo::ProcessInfo& asker, const mta::Submission& s);
  mta::DeliveryTracker tracker_;
  BackscatterMonitor* backscatter_ = nullptr;
  std::unique_ptr<mta::LogFollower> log_;  // exim's
  std::unique_ptr<mta::LogFollower> postfixLog_;
  std::unique_ptr<mta::JournalFollower> journal_;  // postfix's, while it has no log file
  std::filesystem::path postfixLogPath_;
  MonoTime lastExpire_{};
  std::string lastLogError_;
  std::string lastPostfixLogError_;

  // postfix: see watchPostfix().
  void onMaildropEvents();
  void onMaildropOpen(mta::MaildropOpen&& open);
  void retryOpens();
  void onMilterAccept(std::size_t instance);
  void onMilterReadable(int fd);
  void closeMilter(int fd);
  struct PostfixRoute {
    mta::PostfixInstance instance;
    std::filesystem::path maildrop;  // canonical, as the kernel names its files
    std::unique_ptr<mta::GateSocket> milter;
  };
  std::vector<PostfixRoute> postfix_;
  struct MilterPeer {
    mta::PeerConnection peer;
    std::size_t instance;
    mta::MilterSession session;
  };
  std::map<int, MilterPeer> milters_;
  std::unique_ptr<mta::MaildropWatch> maildrop_;  // before the opens, which answer through it
  mta::MaildropFiles maildropFiles_;
  // Opens whose writer's programs are being hashed; answered once known (or late).
  struct WaitingOpen {
    mta::MaildropOpen open;
    std::size_t instance;
    mta::FileKey file;
    bool empty;
    MonoTime since;
  };
  std::vector<WaitingOpen> waitingOpens_;
  // Notes the writer of a waiting open; false while its programs are still being hashed.
  bool noteWriter(const WaitingOpen& w, bool late);
};

}  // namespace mailguard::service
