#include "verdict_pipeline.hpp"

#include <sched.h>

#include <algorithm>

#include "mailguard/rules/secrets.hpp"
#include "mailguard/rules/verdict.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

using rules::Verdict;

netfilter::PacketVerdict toPacketVerdict(Verdict v) {
  switch (v) {
    case Verdict::Allow:
      return netfilter::PacketVerdict::RepeatWithAllow;
    case Verdict::Reject:
      return netfilter::PacketVerdict::RepeatWithReject;
    case Verdict::Hold:
      return netfilter::PacketVerdict::Drop;
  }
  return netfilter::PacketVerdict::Drop;
}

std::string joinCmdline(const std::vector<std::string>& argv) {
  constexpr std::size_t kMax = 4096;
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
    if (out.size() >= kMax) {
      out.resize(kMax);
      break;
    }
  }
  return out;
}

// Packets the kernel dropped for guardd so far. Its own counters count every one (queue
// full, or no room in the socket buffer); without them (systemd's ProcSubset=pid hides
// them) the ENOBUFS count, one per overflow of one or more packets, is a lower bound.
std::uint64_t droppedSoFar(const netfilter::QueueStats& stats,
                           const Result<netfilter::KernelQueueCounters>& kernel) {
  if (!kernel) return stats.kernelDropped;
  return std::max(stats.kernelDropped, std::uint64_t{kernel->queueDropped} + kernel->userDropped);
}

}  // namespace

store::ProgramRecord recordOf(const ProgramView& view) {
  store::ProgramRecord record;
  record.id = view.id;
  record.identity = view.identity;
  record.uid = view.uid;
  record.firstSeen = view.firstSeen;
  record.lastAttempt = view.lastAttempt;
  record.quarantined = view.state == rules::ProgramState::Quarantined;
  return record;
}

VerdictPipeline::VerdictPipeline(Seams seams, Observers observers, std::uint32_t queueMaxLength,
                                 std::int64_t nextAttemptId)
    : s_(seams),
      observers_(std::move(observers)),
      queueMaxLength_(queueMaxLength),
      nextAttemptId_(nextAttemptId) {}

bool VerdictPipeline::onReadable() {
  std::uint32_t read = 0;
  auto more = s_.packets.receive(
      [&](const netfilter::QueuedPacket& p) {
        ++read;
        onPacket(p);
      },
      kMaxPacketsPerWakeup);
  readSinceSample_ = std::max(readSinceSample_, read);
  if (std::exchange(wokeClients_, false)) {
    // An allow or a refusal woke the program that waited in connect(); with few cores it
    // is often placed on this very CPU, which the rest of this wake-up (the next read, the
    // work lock's release, the poll) would hold a while longer: let it run first.
    ::sched_yield();
  }
  if (!more) {
    log::error(more.error().message);
    return false;
  }
  return *more;
}

// The whole path of one packet, top to bottom.
void VerdictPipeline::onPacket(const netfilter::QueuedPacket& packet, const MonoTime* parkedSince) {
  // 1. Packet in. Only TCP to mail ports is queued; anything else is unexpected: fail
  // closed.
  if (!packet.tuple) {
    send(packet.id, Verdict::Hold);
    return;
  }
  const auto& tuple = *packet.tuple;

  // 2a. The kernel's word first: with a stamp whose executable was attributed before, the
  // program is known without reading /proc. When the owner's rules and the program's state
  // already say Hold or Reject, that verdict goes out now: what the full attribution and the
  // detector add (environment, taint, command line, throttling) can only void an Allow, and
  // a quarantine by the detector on this attempt turns a Hold into a Reject, which the SYN's
  // retransmission then gets (both keep the connection from happening). An Allow always
  // waits for all of it.
  auto early = s_.attribution.byStamp(packet);
  if (early) {
    rules::VerdictInputs pre;
    pre.identity = early->process.identity;
    pre.uid = early->process.uid;
    const auto* known = s_.programs.find(early->process.identity);
    pre.quarantined = known != nullptr && known->state == rules::ProgramState::Quarantined;
    pre.queueOverloaded = overloaded();
    pre.destination = tuple;
    auto d = rules::decideVerdict(pre, s_.approvals);
    if (d.verdict != Verdict::Allow) {
      send(packet.id, d.verdict);
      // The rest (attribution, detector, record) waits until the queue is quiet
      // (runDeferred): a SYN that comes meanwhile is not kept waiting for it.
      const auto now = s_.clock.monotonic();
      deferred_.push_back({packet, std::move(*early), std::move(d), now});
      if (deferredWake_) {
        if (deferred_.size() == 1) deferredWake_();
        if (deferred_.size() >= kMaxDeferredWaiting) runDeferred();
      } else if (deferredDue()) {
        runDeferred();
      }
      return;
    }
  }
  // What may be allowed is decided after every attempt before it was assessed.
  runDeferred();
  finish(packet, parkedSince, nullptr, nullptr);
}

void VerdictPipeline::runDeferred() {
  // Taken first, so that deferred_ is empty whatever finish() calls; its capacity comes
  // back for the next ones.
  std::vector<Deferred> waiting;
  waiting.swap(deferred_);
  for (const auto& d : waiting) finish(d.packet, nullptr, &d.early, &d.decision);
  waiting.clear();
  deferred_.swap(waiting);
}

bool VerdictPipeline::deferredDue() const {
  return deferred_.size() >= kMaxDeferred ||
         (!deferred_.empty() && s_.clock.monotonic() - deferred_.front().since >= kMaxDeferTime);
}

// After the early verdict (`early` and `sentEarly` given), or to decide it (both null).
void VerdictPipeline::finish(const netfilter::QueuedPacket& packet, const MonoTime* parkedSince,
                             const Attributed* early, const rules::Decision* sentEarly) {
  const auto& tuple = *packet.tuple;
  // 2. Attribution: the process that connected (or holds the socket), and its program.
  const Attribution::AllowedAlone alone = [this](const procinfo::ProcessInfo& p) {
    return allowedAlone(p);
  };
  auto attributed = sentEarly != nullptr ? s_.attribution.afterEarlyVerdict(packet, *early, alone)
                                         : s_.attribution.attribute(packet, alone);
  if (sentEarly != nullptr && !attributed) {
    // Gone, or its file is being hashed again, since the verdict: the stamp's word is the
    // record.
    attributed = *early;
  }
  if (!attributed && attributed.error().code == Errc::Pending) {
    // Its executable or script is being hashed off the loop: never decided before that
    // (an unknown file could pass for an approved one), and decided as soon as it is.
    const auto now = s_.clock.monotonic();
    const auto since = parkedSince != nullptr ? *parkedSince : now;
    if (now - since < kMaxParkTime && parked_.size() < kMaxParked) {
      parked_.push_back({packet, since});
      return;
    }
  }
  ProgramView* program = nullptr;
  if (attributed) {
    program = &s_.programs.remember(attributed->process.identity, attributed->process.uid,
                                    s_.clock.now(), s_.clock.monotonic());
  }
  // A SYN retransmission is the same socket: by its cookie where the kernel names it (a
  // new socket that reuses the port is a new attempt), else by its source address and port.
  const HeldKey heldKey = attributed && attributed->cookie != 0
                              ? HeldKey{attributed->cookie, tuple.family, {}, 0}
                              : HeldKey{0, tuple.family, tuple.src, tuple.srcPort};
  const bool firstSyn = !held_.contains(heldKey);

  // 3. Assessment: the detector sees each connection once (not its SYN retries) and may
  // quarantine the program on this very attempt.
  DetectorVerdict detected;
  if (attributed) detected = s_.assessment.assess(attributed->process, *program, tuple, firstSyn);

  // 4. Decision: one pure function holds the owner's rules and every override.
  rules::VerdictInputs in;
  if (attributed) {
    in.identity = attributed->process.identity;
    in.uid = attributed->process.uid;
    in.sharedNote = attributed->sharedNote;
    in.tainted = attributed->taint;
    // Only what /proc shows: with kernel attribution an approved non-interpreter's later
    // connects are decided at connect() by its executable's key alone. There
    // LD_PRELOAD/LD_LIBRARY_PATH/LD_AUDIT code from a file not owned by root taints the
    // process (the exec-mapping check) and is queued; a root-owned library preloaded into
    // an approved binary is allowed, as everything mapped was installed by root.
    in.codeLoading = attributed->process.codeLoading;
    if (in.tainted.empty() && taintCheck_) in.tainted = taintCheck_(attributed->process);
  } else {
    in.unattributed = attributed.error().message;
  }
  in.quarantined = program != nullptr &&
                   (program->state == rules::ProgramState::Quarantined || detected.quarantined);
  in.throttled = detected.throttle;
  in.throttleReason = detected.reason;
  in.bulkDeclared = detected.bulkDeclared;
  in.queueOverloaded = overloaded();
  in.destination = tuple;
  const auto decision = sentEarly != nullptr ? *sentEarly : rules::decideVerdict(in, s_.approvals);

  // 5. Verdict out, then what the assessment raised (alerts wait for the verdict).
  if (sentEarly == nullptr) send(packet.id, decision.verdict);
  s_.assessment.afterVerdict();
  if (attributed && decision.verdict == Verdict::Allow) {
    s_.assessment.allowed(attributed->process, tuple);
  }
  // What the kernel may decide by itself from the next connect on.
  if (s_.fastPath != nullptr && attributed && attributed->key) {
    s_.fastPath->learn(*attributed->key, attributed->process.identity, decision,
                       !in.tainted.empty(), detected.suspicious);
  }

  // 6. Record: once per attempt, not per SYN retry of a held one.
  if (decision.verdict == Verdict::Hold) {
    if (!held_.tryPut(heldKey, s_.clock.monotonic()).second) return;
  } else {
    held_.erase(heldKey);
  }
  record(tuple, packet.uid.value_or(0), attributed ? &*attributed : nullptr, program, decision,
         in.quarantined);
}

// The other way in: the BPF hook approved or refused a connect() on its own (the key was
// learned from an earlier decision of onPacket). Nothing to send: the kernel has acted.
// A refusal event may stand for many (event.count, cookie 0): the refusals of one program
// by one user in one interval, counted in the kernel, with its first few destinations.
// That is one attempt record (the count in its reason and in the program's attempts) and
// one assessment per destination, so a denied bot costs guardd a few events a second
// however fast it tries.
void VerdictPipeline::onKernelEvent(const kernel::ConnectEvent& event) {
  using Decision = kernel::ConnectEvent::Decision;
  if (s_.fastPath == nullptr || event.decision == Decision::Queued || event.count == 0) return;
  runDeferred();  // the detector sees attempts in the order they were made
  rules::ConnectionTuple tuple;
  tuple.family = event.family;
  tuple.dst = event.dst;
  tuple.dstPort = event.dstPort;
  const bool approved = event.decision == Decision::Approved;
  const bool counted = !approved && event.cookie == 0;
  rules::Decision decision{approved ? Verdict::Allow : Verdict::Reject,
                           approved ? "approved (decided in the kernel at connect())"
                                    : "denied by the owner (refused in the kernel: connect() "
                                      "failed with EPERM)",
                           std::nullopt};
  std::vector<rules::ConnectionTuple> alsoTo;
  if (counted) {
    std::string more;
    for (const auto& d : event.moreDestinations) {
      rules::ConnectionTuple t;
      t.family = d.family;
      t.dst = d.addr;
      t.dstPort = d.port;
      more += ", " + t.dstAddress() + ":" + std::to_string(t.dstPort);
      alsoTo.push_back(t);
    }
    decision.reason = "denied by the owner (refused in the kernel: connect() failed with EPERM " +
                      std::to_string(event.count) + (event.count == 1 ? " time" : " times") +
                      " within " + std::to_string(kernel::kRefusalReportInterval.count()) +
                      " ms, counted in the kernel" +
                      (more.empty() ? std::string() : "; also to " + more.substr(2)) + ")";
  }
  count(decision.verdict);
  if (!approved) counters_.rejected += event.count - 1;
  const auto at = wallTimeOf(event.monotonic);
  const auto* identity = s_.fastPath->identityOf(event.task.key);
  if (identity == nullptr) {
    // Forgotten since the hook looked (a change of policy raced the connect).
    decision.reason += "; its program was forgotten since";
    record(tuple, event.task.uid, nullptr, nullptr, decision, false, at);
    return;
  }
  Attributed attributed;
  attributed.process.pid = static_cast<int>(event.task.tgid);
  attributed.process.ppid = static_cast<int>(event.task.ppid);
  attributed.process.uid = event.task.uid;
  attributed.process.identity = *identity;
  attributed.cookie = event.cookie;
  attributed.key = event.task.key;
  auto& program =
      s_.programs.remember(*identity, event.task.uid, s_.clock.now(), s_.clock.monotonic());
  auto detected = s_.assessment.assess(attributed.process, program, tuple, true);
  for (const auto& t : alsoTo) {
    const auto d = s_.assessment.assess(attributed.process, program, t, true);
    detected.quarantined = detected.quarantined || d.quarantined;
    detected.suspicious = detected.suspicious || d.suspicious;
  }
  // A doubt or a quarantine takes effect in the kernel from the next connect on.
  if (detected.quarantined || detected.suspicious) s_.fastPath->requeue(event.task.key);
  s_.assessment.afterVerdict();
  // record() counts the one record it writes; the rest of the count is added here.
  program.attempts += static_cast<std::int64_t>(event.count - 1);
  record(tuple, event.task.uid, &attributed, &program, decision, detected.quarantined, at);
}

// The wall time of a kernel event from its CLOCK_MONOTONIC stamp: now, less how long ago
// the hook ran. An event with no stamp, or one the clocks do not place in the last minute
// (a clock that is not the kernel's, in tests), is taken as made now.
std::optional<TimePoint> VerdictPipeline::wallTimeOf(std::chrono::nanoseconds monotonic) const {
  if (monotonic.count() == 0) return std::nullopt;
  const auto ago =
      s_.clock.monotonic() - MonoTime{std::chrono::duration_cast<MonoTime::duration>(monotonic)};
  if (ago < MonoTime::duration::zero() || ago > std::chrono::minutes{1}) return std::nullopt;
  return s_.clock.now() - std::chrono::duration_cast<TimePoint::duration>(ago);
}

void VerdictPipeline::count(Verdict verdict) {
  switch (verdict) {
    case Verdict::Allow:
      ++counters_.allowed;
      break;
    case Verdict::Hold:
      ++counters_.held;
      break;
    case Verdict::Reject:
      ++counters_.rejected;
      break;
  }
}

void VerdictPipeline::send(std::uint32_t packetId, Verdict verdict) {
  count(verdict);
  wokeClients_ = wokeClients_ || verdict != Verdict::Hold;
  if (auto sent = s_.packets.verdict(packetId, toPacketVerdict(verdict)); !sent) {
    // The kernel keeps the packet until its queue is unbound: it is neither accepted nor
    // rejected, and TCP retries it. Logged at most once a second of failures' worth.
    if (counters_.verdictErrors++ % 1000 == 0) {
      log::error("Failed to send a verdict (" + std::to_string(counters_.verdictErrors) +
                 " so far): " + sent.error().message);
    }
  }
}

void VerdictPipeline::record(const rules::ConnectionTuple& tuple, std::uint32_t uid,
                             const Attributed* attributed, ProgramView* program,
                             const rules::Decision& decision, bool quarantined,
                             std::optional<TimePoint> at) {
  if (decision.verdict == Verdict::Allow && attributed != nullptr && attributed->cookie != 0) {
    // Who it is, not all /proc said: a command line may be a megabyte, times 4,096 sockets.
    procinfo::ProcessInfo connector = attributed->process;
    connector.cmdline.clear();
    connector.cmdline.shrink_to_fit();
    connector.codeLoading.clear();
    connector.codeLoading.shrink_to_fit();
    allowedSockets_.put(attributed->cookie, std::move(connector));
  }
  store::AttemptRecord attempt;
  attempt.time = at.value_or(s_.clock.now());
  // A connect the kernel decided has no source port yet: its address is not known either.
  if (tuple.srcPort != 0) attempt.src = tuple.srcAddress();
  attempt.srcPort = tuple.srcPort;
  attempt.dst = tuple.dstAddress();
  attempt.dstPort = tuple.dstPort;
  attempt.verdict = decision.verdict;
  attempt.reason = decision.reason;
  attempt.uid = uid;
  if (attributed != nullptr) {
    const auto& process = attributed->process;
    attempt.pid = process.pid;
    attempt.uid = process.uid;
    attempt.path = process.identity.path;
    attempt.scriptPath = process.identity.scriptPath;
    // Masked here, before the attempt goes to the store, the log and the bus.
    attempt.cmdline = joinCmdline(rules::maskSecrets(process.cmdline));
  }
  if (log::enabled(log::Level::Debug)) {
    log::debug(std::string(rules::toString(decision.verdict)) + " " + attempt.dst + ":" +
               std::to_string(attempt.dstPort) + " pid " + std::to_string(attempt.pid) + " " +
               log::quote(attempt.path) + ": " + decision.reason);
  }
  recordSubmission(std::move(attempt), program, quarantined);
}

void VerdictPipeline::recordSubmission(store::AttemptRecord attempt, ProgramView* program,
                                       bool quarantined) {
  if (program != nullptr) {
    attempt.programId = program->id;
    ++program->attempts;
    program->lastAttempt = attempt.time;
    const auto newState = rules::stateOf(program->identity, quarantined, s_.approvals);
    const bool changed = newState != program->state || program->attempts == 1;
    program->state = newState;
    if (s_.programs.sightingDue(program->id, s_.clock.monotonic(), changed)) {
      s_.records.record(recordOf(*program));
    }
    if (changed && observers_.onProgramChanged) observers_.onProgramChanged(*program);
    // Changed to pending by a held attempt: new, or forgotten by the owner since.
    if (changed && newState == rules::ProgramState::Pending && attempt.verdict == Verdict::Hold) {
      logFirstHeld(*program, attempt);
    }
  }
  attempt.id = nextAttemptId_++;
  if (observers_.onAttempt) observers_.onAttempt(attempt);
  s_.records.record(std::move(attempt));
}

void VerdictPipeline::logFirstHeld(const ProgramView& program,
                                   const store::AttemptRecord& attempt) {
  const auto mono = s_.clock.monotonic();
  if (!firstHeldMinute_ || mono - *firstHeldMinute_ >= std::chrono::minutes(1)) {
    if (firstHeldUnlogged_ > 0) {
      log::info("held: " + std::to_string(firstHeldUnlogged_) +
                " more program(s) held for the first time were not logged (see 'guardctl "
                "programs')");
    }
    firstHeldMinute_ = mono;
    firstHeldLines_ = 0;
    firstHeldUnlogged_ = 0;
  }
  if (firstHeldLines_ >= kFirstHeldLinesPerMinute) {
    ++firstHeldUnlogged_;
    return;
  }
  ++firstHeldLines_;
  const std::string id = std::to_string(program.id);
  const std::string where = attempt.channel == "mta" ? "a message handed to the local MTA"
                                                     : "a mail connection to " + attempt.dst + ":" +
                                                           std::to_string(attempt.dstPort);
  log::info("held: " + formatRfc3339(attempt.time) + ": program " + id + " " +
            log::quote(program.identity.path) +
            (program.identity.scriptPath.empty()
                 ? std::string()
                 : " running " + log::quote(program.identity.scriptPath)) +
            " (uid " + std::to_string(attempt.uid) + ", pid " + std::to_string(attempt.pid) +
            ") is held for the first time: " + where +
            "; it waits for your decision: sudo guardctl approve " + id +
            ", or sudo guardctl deny " + id);
}

void VerdictPipeline::resumeParked() {
  runDeferred();
  auto waiting = std::move(parked_);
  parked_.clear();
  for (const auto& p : waiting) onPacket(p.packet, &p.since);
}

void VerdictPipeline::expireParked() {
  const auto now = s_.clock.monotonic();
  if (std::none_of(parked_.begin(), parked_.end(),
                   [&](const Parked& p) { return now - p.since >= kMaxParkTime; })) {
    return;
  }
  resumeParked();  // those still waiting past their time are held now
}

bool VerdictPipeline::allowedAlone(const procinfo::ProcessInfo& process) const {
  const auto* known = s_.programs.find(process.identity);
  const bool quarantined = known != nullptr && known->state == rules::ProgramState::Quarantined;
  return rules::decide(process.identity, quarantined, s_.approvals, process.uid).verdict ==
         Verdict::Allow;
}

bool VerdictPipeline::overloaded() const { return pressure_.overloaded(s_.clock.monotonic()); }

void VerdictPipeline::samplePressure() {
  // Without the kernel's counters, the packets read in one wake-up are a lower bound of
  // the backlog.
  const auto kernel = s_.packets.kernelCounters();
  const std::uint32_t waiting =
      kernel ? std::max(readSinceSample_, kernel->waiting) : readSinceSample_;
  counters_.queueDropped = droppedSoFar(s_.packets.stats(), kernel);
  pressure_.observe(counters_.queueDropped, waiting, queueMaxLength_, s_.clock.monotonic());
  readSinceSample_ = 0;
}

void VerdictPipeline::expireHeld() {
  const auto now = s_.clock.monotonic();
  held_.eraseIf([&](const auto&, const MonoTime& since) { return now - since > kHeldRetryWindow; });
}

}  // namespace mailguard::service
