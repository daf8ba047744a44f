#pragma once
// Guard's host firewall, inbound-probe recorder and mail-server audit. Lives in
// Guard::Impl; runs on the loop thread, except the inventory and relay audit, which
// block for seconds and so run on one worker thread at a time.
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alert_sink.hpp"
#include "mailguard/audit/relay.hpp"
#include "mailguard/firewall/host_firewall.hpp"
#include "mailguard/firewall/probe_log.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

class HostProtection {
 public:
  HostProtection(Guard& guard, const Guard::Options& options, EventLoop& loop,
                 netfilter::RulesetManager& nft, netfilter::QueueBackend backend,
                 const Clock& clock, store::SqliteStore& reader, store::StoreWriter& writer,
                 AlertSink& alerts, std::uint32_t acceptMarkBit);
  ~HostProtection();
  HostProtection(const HostProtection&) = delete;
  HostProtection& operator=(const HostProtection&) = delete;

  // Loads the stored firewall and installs the whole table for it (the start-up apply).
  Result<void> start();
  // Installs the table for the current state again (after another program changed it).
  Result<void> reapply();
  // Writes the probes recorded since the last call (called from Guard's housekeeping
  // and at shutdown).
  void flushProbes();

  [[nodiscard]] FirewallInfo info() const;
  // Firewall changes: applied to the kernel at once, then stored; `done` hears once they
  // are on disk (a failure to store puts the old table back).
  void enable(int callerPid, bool confirmed, Done<EnableOutcome> done);
  void change(const std::function<Result<void>(firewall::HostFirewall&)>& f,
              Done<FirewallInfo> done);
  Result<std::vector<store::ProbeRow>> probes(std::size_t limit);
  [[nodiscard]] AuditSummary summary() const { return summary_; }
  void runAudit(std::function<void(const AuditSummary&)> done);

 private:
  struct Job {
    bool audit = false;  // inventory only, or inventory and relay audit
    std::vector<std::uint16_t> ports;
    rules::FirewallState firewall;
    // "family|address|port" of the listeners the last audit saw: one missing from the
    // inventory may be a server restarting, so the inventory is taken again first.
    std::set<std::string> previousListeners;
  };
  struct JobResult {
    bool audit = false;
    std::optional<Error> error;
    std::vector<audit::MailListener> listeners;
    std::vector<audit::ListenerAudit> audits;
  };

  void onProbesReadable();
  void startJob(bool audit);
  void startQueuedAudit();
  void onJobDone(JobResult result);
  void finishAudit(const JobResult& result);
  [[nodiscard]] std::vector<AuditFindingView> findingsOf(const store::AuditRow& row) const;
  // One alert per finding that was not there in the previous audit.
  void raiseAlerts(const std::vector<AuditEntryView>& entries);

  Guard& guard_;
  const Guard::Options& options_;
  EventLoop& loop_;
  const Clock& clock_;
  store::SqliteStore& reader_;
  store::StoreWriter& writer_;
  AlertSink& alerts_;            // audit findings join the detector's alerts
  std::uint32_t acceptMarkBit_;  // kernel-approved sockets' mark bit (0: no such rule)
  firewall::KernelTableApplier applier_;
  std::unique_ptr<firewall::HostFirewall> firewall_;
  std::unique_ptr<firewall::NflogProbeSource> probeSource_;
  std::string probeError_;
  firewall::ProbeRecorder recorder_;
  procinfo::DirProcFs proc_;

  // The worker: one job at a time; a request during a job is queued behind it. It hands
  // its result back through EventLoop::post.
  std::thread worker_;
  bool jobRunning_ = false;
  bool jobIsAudit_ = false;
  bool auditQueued_ = false;
  // A running audit answers a request only when the firewall has not changed since it
  // started (the firewall decides what is reachable); otherwise a fresh one is queued.
  std::uint64_t generation_ = 0;
  std::uint64_t jobGeneration_ = 0;
  std::vector<std::function<void(const AuditSummary&)>> waitingCurrent_;  // for the running job
  std::vector<std::function<void(const AuditSummary&)>> waitingNext_;     // for the queued one
  std::string lastAuditedKey_;
  bool audited_ = false;
  AuditSummary summary_;
  // "address:port kind" of the findings the last audit had: alerted already.
  std::set<std::string> alertedFindings_;
  // The LAN addresses the last audit borrowed: its own SYNs, not inbound probes.
  std::set<std::string> lanProbeAddresses_;
};

}  // namespace mailguard::service
