#pragma once
// The core of guardd: wires netfilter, procinfo, policy and store together and owns
// the state the D-Bus adaptor reads and changes. main.cpp builds one and runs it.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/host_protection.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

struct Counters {
  std::uint64_t allowed = 0;
  std::uint64_t held = 0;
  std::uint64_t rejected = 0;
  std::uint64_t queueDropped = 0;     // packets the kernel dropped because the queue was full
  std::uint64_t attemptsDropped = 0;  // attempts not recorded because the writer was behind
  std::uint64_t storeErrors = 0;
  std::uint64_t tableRestores = 0;  // foreign changes to the table undone
  std::uint64_t verdictErrors = 0;  // verdicts the kernel did not take (logged)
  // Kernel attribution: connects the BPF hooks could not report (their ring buffer was
  // full; the connect itself went on), and the memory of the BPF maps.
  std::uint64_t kernelEventsLost = 0;
  std::uint64_t kernelMapBytes = 0;
  // The DNS tap: messages programs sent to name servers, and packets it could not copy.
  std::uint64_t dnsQueries = 0;
  std::uint64_t dnsLost = 0;
  // The reply tap: programs' own SMTP sessions whose replies were read to the end (close,
  // STARTTLS or a gap), and port-25 segments it could not copy.
  std::uint64_t replySessions = 0;
  std::uint64_t repliesLost = 0;
};

struct StatusInfo {
  bool enforcing = false;  // the table is in place and the queue is bound
  std::string backend;     // "nft-queue" or "xt-compat"
  // Who names the program behind a connection: "kernel" (BPF hooks at connect() time)
  // or "proc" (the queued packet's socket looked up in /proc afterwards).
  std::string attribution = "proc";
  std::string kernelHooks;         // with kernel attribution: which taint hooks run ("lsm", ...)
  std::string dnsSource = "none";  // where programs' DNS is seen: "kernel" (the tap) or "none"
  std::string version;
  Counters counters;
  std::string storeError;  // last store error, empty when healthy
  // User presence as the detector sees it: "logind", "logind+input" or "none" (no logind
  // answered); the uid of a seat's active user session; its time since input, seconds.
  std::string presenceSource = "none";
  std::optional<std::uint32_t> presenceActiveUser;
  std::optional<std::int64_t> presenceIdleSeconds;
};

struct ProgramView {
  std::int64_t id = 0;
  rules::ProgramIdentity identity;
  std::uint32_t uid = 0;
  rules::ProgramState state = rules::ProgramState::Pending;
  std::int64_t attempts = 0;
  TimePoint lastAttempt{};
  TimePoint firstSeen{};
};

// One version (content) of a program, for its history: a program is its path, script
// path and kind; each new hash of it is a new version with its own id.
struct ProgramVersion {
  std::int64_t id = 0;
  std::string sha256;     // the script's for a script, else the executable's
  TimePoint firstSeen{};  // when this content was first seen: when the file changed
  // For the current version its state ("pending: changed since approved" when an
  // approval of an earlier content no longer applies); for an older one what the owner
  // decided for it ("approved, replaced by a newer version", "not decided, ...").
  std::string state;
};

// How a caller names a program: its id in the programs list, or a path (the file's
// current content is what gets approved), optionally with a script for interpreters.
//
// A path names a program; an interpreter's path names the interpreter itself (a denial
// covers everything it runs; an approval nothing that runs code in it); a script with a
// "#!" line names that script run by its interpreter. With inlineCode the path is an
// interpreter and the code typed or piped into it is meant.
struct ProgramRef {
  std::variant<std::int64_t, std::string> target;
  std::string script;       // only with a path: the interpreter's script
  bool inlineCode = false;  // only with a path and no script
};

// What an approval may carry besides the program.
struct ApproveOptions {
  std::vector<std::string> allowEnv;  // code-loading names (rules/code_loading.hpp) allowed
  // Only connections to these (added to those the approval is pinned to already); empty:
  // anywhere.
  std::vector<rules::Destination> onlyTo;
  // Whom the approval covers: one uid, or every user (allUsers). Neither: a program or
  // script in a home folder is that home's owner's, anything else every user's; inline
  // code named by id is the user who ran it. Inline code is only ever one user's.
  std::optional<std::uint32_t> user;
  bool allUsers = false;
};

// Bounces (DSNs) delivered to this PC's mailboxes, as the local MTA's log shows them, and
// whether they make a flood of backscatter: bounces for mail this PC never sent
// (mailguard/mta/backscatter.hpp says what they are matched on).
struct BackscatterInfo {
  bool watching = false;  // a local MTA's log is followed (else nothing can be seen)
  bool flooding = false;
  std::uint32_t lastHour = 0;           // DSNs delivered here in the last hour
  std::uint32_t unmatchedLastHour = 0;  // of those, matching no mail sent from here
  std::uint32_t total = 0;              // since the flood began (0 without one)
  std::uint32_t unmatchedTotal = 0;
  TimePoint since{};                    // the flood's first unmatched DSN (epoch without a flood)
  TimePoint last{};                     // the newest DSN (epoch: none)
  std::vector<std::string> recipients;  // the local mailboxes they went to
  std::uint32_t floodPerHour = 0;       // unmatched DSNs an hour that make a flood
  std::int64_t alertId = 0;             // the flood's alert, 0 without one
};

// The last scan of the household's other mail servers (Guard::scanHousehold).
struct HouseholdInfo {
  bool running = false;
  TimePoint finished{};  // epoch: never scanned
  std::string error;     // "" when the last scan ran
  // The results as JSON: {"subnets": [{"cidr", "configured", "host_address"}],
  // "connects", "took_ms", "hosts": [{"address", "port", "subnet", "relay", "accepted",
  // "auth_in_clear", "reason", "banner", "findings": [{"severity", "kind", "title",
  // "fix"}]}]}; "{}" before the first scan.
  std::string json = "{}";
};

// How a change reports back: on the loop thread, once the change is durable (or failed).
// It may run before the call that started it returns (a bad argument, say).
template <class T>
using Done = std::function<void(Result<T>)>;

class Guard {
 public:
  struct Options {
    rules::Settings settings;
    std::filesystem::path stateDir = "/var/lib/mailguard";
    std::string tableName = rules::kTableName;
  };

  // Opens the store, applies the table, binds the queue. Errors carry a message
  // the user can act on (not root, netlink refused, queue busy, state dir).
  static Result<std::unique_ptr<Guard>> create(Options options, EventLoop& loop);
  ~Guard();

  // On SIGTERM/SIGINT main stops the loop; shutdown() flushes the store and removes
  // the table only when the settings ask for it (remove_rules_on_exit).
  void shutdown();

  // Queries and commands, for the D-Bus adaptor (all on the loop thread).
  [[nodiscard]] StatusInfo status() const;
  // One per program (path, script path, kind): its current version, the newest content.
  [[nodiscard]] std::vector<ProgramView> programs() const;
  // The current version of the program `version` is a version of (itself when current).
  [[nodiscard]] ProgramView currentVersion(const ProgramView& version) const;
  // Every version of the program named (by the id of any of its versions, or by path),
  // current first, then newest to oldest. NotFound when there is none.
  [[nodiscard]] Result<std::vector<ProgramVersion>> programVersions(const ProgramRef& ref) const;
  // How many versions each program has, by its current version's id (programs()): what
  // programVersions() would list for each row, in one pass.
  [[nodiscard]] std::map<std::int64_t, std::uint32_t> programVersionCounts() const;
  // Whom the approvals of an approved program cover: "all", or user names ("alice",
  // "alice, bob"; a uid when it has no name); "" when it is not approved.
  [[nodiscard]] std::string covers(const ProgramView& program) const;
  // Messages the local MTA holds (frozen) for the program this id is a version of, every
  // version's: released when the program (its current version) is approved, deleted when
  // it is denied.
  [[nodiscard]] std::size_t heldMessages(std::int64_t programId) const;
  Result<std::vector<store::AttemptRecord>> attempts(const store::AttemptQuery& q);
  // Policy changes: `done` is told once the change is on disk (acknowledged means durable).
  void approve(const ProgramRef& ref, Done<ProgramView> done, ApproveOptions options = {});
  // The owner's rules as loaded (approvals with their pinned destinations, denials).
  [[nodiscard]] std::vector<rules::ApprovalRule> approvalRules() const;
  void deny(const ProgramRef& ref, Done<ProgramView> done);
  // Removes the owner's decisions about the program (with ref.inlineCode those about the
  // interpreter's inline code only); with `user`, only the approvals for that uid. NotFound
  // when there was none.
  void forget(const ProgramRef& ref, Done<bool> done,
              std::optional<std::uint32_t> user = std::nullopt);

  // Host firewall, inbound probes and the mail-server audit (defined in
  // src/host_protection.cpp). Firewall changes are applied to the kernel atomically and
  // stored before `done` hears of them; on error nothing changed.
  [[nodiscard]] FirewallInfo firewall() const;
  // callerPid: who asked (from the bus credentials), to tell a remote SSH session.
  void firewallEnable(int callerPid, bool confirmed, Done<EnableOutcome> done);
  void firewallDisable(Done<FirewallInfo> done);
  void firewallAllow(const std::string& spec, bool localOnly, Done<FirewallInfo> done);
  void firewallRemove(const std::string& name, Done<FirewallInfo> done);
  void firewallSetLocalSubnets(const std::vector<std::string>& cidrs, Done<FirewallInfo> done);
  Result<std::vector<store::ProbeRow>> probes(std::size_t limit);
  [[nodiscard]] AuditSummary auditResults() const;
  // Takes the inventory and audits the relays on a worker thread (seconds); `done` runs
  // on the loop thread when it ends. A call while an audit runs joins that audit.
  void runAudit(std::function<void(const AuditSummary&)> done);

  // The household's other mail servers (defined in src/household.cpp): scans on request
  // only; `done` runs on the loop thread once the scan is stored. A call while a scan
  // runs joins it.
  void scanHousehold(Done<HouseholdInfo> done);
  [[nodiscard]] HouseholdInfo household() const;

  // Backscatter floods seen in the local MTA's log (defined in src/backscatter.cpp).
  [[nodiscard]] BackscatterInfo backscatter() const;
  // The outside check (defined in src/outside_check.cpp): the household's public address
  // in the DNS blocklists and the SPF/DMARC records of the owner's domains. The report is
  // JSON (guardd/outside report.hpp toJson, plus "running" and "next_run"); a run takes
  // seconds on a worker thread, `done` runs on the loop thread, and a call while one
  // runs joins it.
  [[nodiscard]] std::string outsideReport() const;
  void runOutsideCheck(std::function<void(const std::string&)> done);

  // Zombie detector (defined in src/detection.cpp). Alerts newest first;
  // release lifts a quarantine; declareBulk lifts the soft tier and backstops for
  // `window` (never the hard tier).
  Result<std::vector<store::AlertRecord>> alerts(std::uint32_t limit);
  void ackAlert(std::int64_t id, Done<bool> done);
  void release(const ProgramRef& ref, Done<ProgramView> done);
  void declareBulk(const ProgramRef& ref, unsigned recipients, std::chrono::hours window,
                   Done<ProgramView> done);

  // Observers for signals; called after the fact with the loop's work lock held: on the
  // loop thread, or on the verdict thread for a queued SYN's attempt.
  std::function<void(const store::AttemptRecord&)> onAttempt;
  std::function<void(const ProgramView&)> onProgramChanged;
  std::function<void(const store::AlertRecord&)> onAlert;
  std::function<void(const AuditSummary&)> onAuditFinished;
  // An outside check ended; its report as outsideReport() returns it.
  std::function<void(const std::string&)> onOutsideChecked;

 private:
  explicit Guard(Options options, EventLoop& loop);
  struct Impl;
  friend class Detection;  // the zombie detector's wiring (src/detection.hpp)
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::service
