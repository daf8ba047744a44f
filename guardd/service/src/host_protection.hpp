#pragma once
// Guard's host firewall, inbound-probe recorder and mail-server audit (issue #6). Lives
// in Guard::Impl; runs on the loop thread, except the inventory and relay audit, which
// block for seconds and so run on one worker thread at a time that hands its result
// back through an eventfd.
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "mailguard/audit/relay.hpp"
#include "mailguard/firewall/host_firewall.hpp"
#include "mailguard/firewall/probe_log.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/detector_store.hpp"
#include "mailguard/store/host_store.hpp"

namespace mailguard::service {

class HostProtection {
 public:
  HostProtection(Guard& guard, const Guard::Options& options, EventLoop& loop,
                 netfilter::RulesetManager& nft, netfilter::QueueBackend backend,
                 const Clock& clock);
  ~HostProtection();
  HostProtection(const HostProtection&) = delete;
  HostProtection& operator=(const HostProtection&) = delete;

  // Loads the stored firewall and installs the whole table for it (the start-up apply).
  Result<void> start();
  // Installs the table for the current state again (after another program changed it).
  Result<void> reapply();
  // Where audit findings are stored as alerts (null without a state directory).
  [[nodiscard]] store::DetectorStore* alertStore() const { return alerts_.get(); }
  // Writes the probes recorded since the last call (called from Guard's housekeeping
  // and at shutdown).
  void flushProbes();

  [[nodiscard]] FirewallInfo info() const;
  Result<EnableOutcome> enable(int callerPid, bool confirmed);
  Result<FirewallInfo> change(const std::function<Result<void>(firewall::HostFirewall&)>& f);
  Result<std::vector<store::ProbeRow>> probes(std::size_t limit);
  [[nodiscard]] AuditSummary summary() const { return summary_; }
  void runAudit(std::function<void(const AuditSummary&)> done);

 private:
  struct Job {
    bool audit = false;  // inventory only, or inventory and relay audit
    std::vector<std::uint16_t> ports;
    rules::FirewallState firewall;
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
  void onJobDone();
  void finishAudit(const JobResult& result);
  Result<void> persistFirewall();
  [[nodiscard]] std::vector<AuditFindingView> findingsOf(const store::AuditRow& row) const;
  // One alert per finding that was not there in the previous audit.
  void raiseAlerts(const std::vector<AuditEntryView>& entries);

  Guard& guard_;
  const Guard::Options& options_;
  EventLoop& loop_;
  const Clock& clock_;
  std::unique_ptr<store::HostStore> store_;
  std::unique_ptr<store::DetectorStore> alerts_;  // audit findings join the detector's alerts
  firewall::KernelTableApplier applier_;
  std::unique_ptr<firewall::HostFirewall> firewall_;
  std::unique_ptr<firewall::NflogProbeSource> probeSource_;
  std::string probeError_;
  firewall::ProbeRecorder recorder_;
  procinfo::DirProcFs proc_;

  // The worker: one job at a time; a request during a job is queued behind it.
  int doneFd_ = -1;
  std::thread worker_;
  bool jobRunning_ = false;
  bool jobIsAudit_ = false;
  bool auditQueued_ = false;
  // A running audit answers a request only when the firewall has not changed since it
  // started (the firewall decides what is reachable); otherwise a fresh one is queued.
  std::uint64_t generation_ = 0;
  std::uint64_t jobGeneration_ = 0;
  std::mutex resultMu_;
  std::optional<JobResult> result_;
  std::vector<std::function<void(const AuditSummary&)>> waitingCurrent_;  // for the running job
  std::vector<std::function<void(const AuditSummary&)>> waitingNext_;     // for the queued one
  std::string lastAuditedKey_;
  bool audited_ = false;
  AuditSummary summary_;
  // "address:port kind" of the findings the last audit had: alerted already.
  std::set<std::string> alertedFindings_;
};

}  // namespace mailguard::service
