#pragma once
// Guard's parts and how they are wired: the store (one reader on the loop, one writer
// thread), the owner's rules, the program registry, the kernel side, the verdict
// pipeline and its seams, the detector, host protection and the tamper watch. The
// path of a packet is not here: it is verdict_pipeline.cpp. Private to guardd/service.
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "alert_sink.hpp"
#include "backscatter.hpp"
#include "detection.hpp"
#include "host_protection.hpp"
#include "household.hpp"
#include "kernel_fast_path.hpp"
#include "mailguard/dns/dns.hpp"
#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard/presence/presence.hpp"
#include "mailguard/replies/smtp_replies.hpp"
#include "mailguard/service/guard.hpp"
#include "mta_gate.hpp"
#include "outside_check.hpp"
#include "pipeline_seams.hpp"
#include "program_registry.hpp"
#include "tamper.hpp"
#include "verdict_pipeline.hpp"
#include "verdict_thread.hpp"

namespace mailguard::service {

struct Guard::Impl {
  Impl(Guard& g, Options o, EventLoop& l)
      : self(g), options(std::move(o)), loop(l), resolver(proc, hasher) {}

  Guard& self;  // for the observers, which belong to the public face
  Options options;
  EventLoop& loop;
  SystemClock clock;

  std::unique_ptr<store::SqliteStore> reader;  // reads, on the loop thread
  std::unique_ptr<store::StoreWriter> writer;  // every write, on its own thread
  std::unique_ptr<RecordSink> records;
  std::unique_ptr<AlertSink> alerts;

  // The owner's approvals and denials as last read, and the store's version of them.
  std::vector<rules::ApprovalRule> approvals;
  std::int64_t rulesVersion = -1;
  std::string rulesError;  // the last failure to read them, until a read succeeds
  ProgramRegistry programs;
  // The owner's last decision (Approved or Denied) for each version that a later rule
  // stopped covering (approving a new content of the file replaces the path's approval):
  // the history shows it as "approved, replaced by a newer version" rather than as a
  // program nobody decided about. Stored with the version's row (programs.decided) and
  // read back at start.
  std::map<std::int64_t, rules::ProgramState> decidedBefore;

  std::unique_ptr<netfilter::RulesetManager> nft;
  netfilter::QueueBackend backend = netfilter::QueueBackend::XtCompat;
  std::unique_ptr<netfilter::NfqueuePacketSource> queue;
  std::unique_ptr<procinfo::SockDiagSocketTable> sockets;
  procinfo::DirProcFs proc;
  procinfo::FileHasher hasher;
  procinfo::ProcessResolver resolver;
  std::unique_ptr<Attribution> attribution;
  // With kernel attribution (BPF hooks on connect()): the hooks, and what they may decide.
  std::unique_ptr<kernel::KernelIdentity> kernelIdentity;
  std::unique_ptr<KernelFastPath> fastPath;
  std::uint64_t kernelGeneration = 0;  // bumped at each change of policy

  // Who is at the keyboard, for the detector (logind; input devices if enabled). Before
  // the detection that reads it, so it outlives it.
  std::unique_ptr<presence::PresenceSource> presence;
  int presencePrepare = 0;
  int deferredPrepare = 0, deferredIdle = 0;  // the pipeline's deferred work (prepare, idle)
  // returnFreedMemory(): the attempts decided and the time at the last trim.
  static constexpr std::uint64_t kTrimAfterAttempts = 1000;
  std::uint64_t decidedAtTrim = 0;
  MonoTime trimmedAt{};
  // What each process asked name servers and was told (the kernel's DNS tap); null
  // without kernel attribution or when the tap is not attached.
  std::unique_ptr<dns::Observations> dns;
  void onDnsPacket(const kernel::DnsPacket& packet);
  detector::DnsEvidence dnsEvidence(const procinfo::ProcessInfo& process, const std::string& dst);

  // Programs' own plaintext SMTP sessions, by socket cookie, as the kernel's reply tap
  // delivers the server's side: only counts of RCPT-stage replies are kept. Bounded: at
  // the bound the least recently heard session ends (its close may have been lost).
  struct ReplySession {
    replies::OrderedSession stream;
    MonoTime last;
    std::uint32_t pid = 0;
    std::string server;
    std::optional<procinfo::ProcessInfo> process;  // described at its first segment
  };
  static constexpr std::size_t kMaxReplySessions = 1024;
  std::map<std::uint64_t, ReplySession> replySessions;
  std::uint64_t replySessionsDone = 0;
  // Sessions already ended: segments the ring held when the kernel was told to stop (and
  // the server's FIN after its 221) must not start a session of their own. Bounded.
  static constexpr std::size_t kMaxEndedReplySessions = 4096;
  std::set<std::uint64_t> endedReplySessions;
  std::deque<std::uint64_t> endedReplyOrder;
  void onSmtpSegment(const kernel::SmtpSegment& segment);
  void endReplySession(std::uint64_t cookie, const char* why);
  std::optional<procinfo::ProcessInfo> connectorOf(const kernel::SmtpSegment& segment);

  std::unique_ptr<Detection> detection;
  std::unique_ptr<VerdictPipeline> pipeline;
  // Reads the queue and runs `pipeline` on it; stopped first at shutdown.
  std::unique_ptr<VerdictThread> verdicts;
  std::unique_ptr<HostProtection> host;
  std::unique_ptr<TamperWatch> tamper;
  std::unique_ptr<HouseholdScanner> household;  // null until start()
  // Bounces in the MTA's log; declared before `mta`, which reports to it.
  std::unique_ptr<BackscatterMonitor> backscatter;
  // Mail handed to the local MTA without TCP; null when [mta] socket is "" or unusable.
  std::unique_ptr<MtaGate> mta;
  // Blocklists and SPF/DMARC as the outside sees this household (src/outside_check.cpp).
  std::unique_ptr<OutsideCheck> outside;
  bool enforcing = false;

  Result<void> start();
  // The newest `limit` alerts: the stored ones and those raised but not yet written.
  Result<std::vector<store::AlertRecord>> listAlerts(std::uint32_t limit);
  // What guardd's own records say about why the public address may be listed.
  outside::LocalEvidence outsideEvidence();
  Result<std::unique_ptr<kernel::KernelIdentity>> openKernelIdentity();
  // The kernel's maps from the owner's rules: approved and denied files, hashed off the
  // loop, so that an approved program is decided in the kernel from its first connect.
  void preloadKernel();
  void policyChanged();
  void returnFreedMemory();
  // What early verdicts left (VerdictPipeline::runDeferred), and the hook's events of
  // their connects.
  void runDeferred();
  // Everything the BPF hooks reported since the last read (ring buffers, refusal counts).
  void readKernelEvents();
  void reloadRulesIfChanged();
  void refreshStates();
  [[nodiscard]] std::string storeError(const store::WriterStats& stats) const;
  // How a caller named a program: its identity when known (by id), else the real paths.
  struct Named {
    std::optional<rules::ProgramIdentity> identity;
    std::string path;
    std::string scriptPath;
    bool binaryItself = false;  // an interpreter named by its path, without a script
  };
  Result<Named> named(const ProgramRef& ref);
  void identityFor(const ProgramRef& ref, Done<rules::ProgramIdentity> done);
  void setRule(const ProgramRef& ref, rules::RuleAction action, Done<ProgramView> done,
               ApproveOptions approval = {});
  void forget(const ProgramRef& ref, Done<bool> done, std::optional<std::uint32_t> user);
};

}  // namespace mailguard::service
