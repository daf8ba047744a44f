#pragma once
// The path of one queued SYN, in one place (DESIGN.md "The path of one connection
// attempt"): packet in -> attribution -> assessment (detector) -> decision -> verdict
// out -> record. Every collaborator is a seam (pipeline_seams.hpp), so the whole path
// runs in unit tests with fakes and a FakeClock. Runs with the loop's work lock held:
// packets on the verdict thread (verdict_thread.hpp), everything else on the loop.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kernel_fast_path.hpp"
#include "mailguard/common/bounded_map.hpp"
#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/service/guard.hpp"
#include "pipeline_seams.hpp"
#include "program_registry.hpp"
#include "queue_pressure.hpp"

namespace mailguard::service {

class VerdictPipeline {
 public:
  // At most this many packets are decided per wake-up of the queue socket, so that
  // D-Bus calls and timers are served under a flood.
  static constexpr std::size_t kMaxPacketsPerWakeup = 256;
  // A held SYN is retried by TCP (1 s, 3 s, 7 s, ...): its retries are the same attempt,
  // decided afresh but recorded (and shown to the detector) once.
  static constexpr auto kHeldRetryWindow = std::chrono::minutes(3);
  // Beyond this many held attempts the oldest is forgotten: its retries are then
  // recorded once more, which is all it costs. A flood of 20,000 SYNs a second fills any
  // bound within a second; 8,192 held attempts in a retry window is far beyond a
  // household's, and each costs about 130 bytes.
  static constexpr std::size_t kMaxHeld = 8'192;
  // A packet whose program's file is still being hashed waits, without a verdict (the
  // kernel keeps it), until the hash is ready (resumeParked), at most this long and this
  // many at once; then it is held, and TCP retries it.
  static constexpr auto kMaxParkTime = std::chrono::seconds(2);
  static constexpr std::size_t kMaxParked = 1024;
  // A program held for the first time is logged (with the time: a log file written
  // without the journal has no time stamps of its own), at most this many a minute: a bot
  // that rewrites itself is a new program on every attempt.
  static constexpr int kFirstHeldLinesPerMinute = 10;
  // Sockets allowed out, by cookie, and who connected them: a mail server's replies on one
  // are charged to its connector even once that process has exited (a bot's session ends
  // before guardd reads the copied replies). Beyond, the oldest is forgotten.
  static constexpr std::size_t kMaxAllowedSockets = 4096;
  // A SYN whose early verdict (hold or refuse) went out has the rest of its path (attribution,
  // detector, record) done when the queue is quiet (runDeferred), or once this many wait or
  // the oldest has waited this long.
  static constexpr std::size_t kMaxDeferred = 32;
  static constexpr auto kMaxDeferTime = std::chrono::milliseconds(20);
  // With a verdict thread (setDeferredWake) the loop runs them; if it falls this far
  // behind, the thread does, so that what waits stays bounded.
  static constexpr std::size_t kMaxDeferredWaiting = 512;

  struct Seams {
    netfilter::PacketSource& packets;  // packets in, verdicts out
    Attribution& attribution;
    Assessment& assessment;
    ProgramRegistry& programs;
    const std::vector<rules::ApprovalRule>& approvals;  // the owner's rules, kept current
    RecordSink& records;
    const Clock& clock;
    KernelFastPath* fastPath = nullptr;  // with kernel attribution: what the kernel decides
  };
  struct Observers {
    std::function<void(const store::AttemptRecord&)> onAttempt;
    std::function<void(const ProgramView&)> onProgramChanged;
  };

  VerdictPipeline(Seams seams, Observers observers, std::uint32_t queueMaxLength,
                  std::int64_t nextAttemptId);

  // The queue socket is readable: decide what is there, at most kMaxPacketsPerWakeup.
  // True when more may be waiting: the caller comes back once the rest of its loop (D-Bus,
  // timers) has been served, since packets already read need no readable socket.
  bool onReadable();
  // A connect() the kernel decided by itself (approved or refused in the hook): recorded
  // and shown to the detector like any attempt; a detector that has doubts takes the
  // program off the fast path. Queued connects come through onReadable().
  void onKernelEvent(const kernel::ConnectEvent& event);

  // The rest of the path of the SYNs whose early verdict went out: call when the queue is
  // quiet (guardd's loop: when it found nothing to do), and before anything reads what
  // they leave (the records, the detector); harmless when none wait.
  void runDeferred();
  [[nodiscard]] bool hasDeferred() const { return !deferred_.empty(); }
  // The oldest has waited kMaxDeferTime, or kMaxDeferred wait.
  [[nodiscard]] bool deferredDue() const;
  // Packets are decided on a thread of their own (verdict_thread.hpp): `wake` tells the
  // loop when the first early verdict's rest starts to wait (the loop then comes back
  // within a millisecond and runs them once they are due or it is idle), instead of the
  // thread that decides the next SYN running them.
  void setDeferredWake(std::function<void()> wake) { deferredWake_ = std::move(wake); }

  // A file was hashed: decide the packets that waited for it.
  void resumeParked();
  // Loop timers: the kernel's queue counters (pressure), packets parked too long, and
  // forgetting old held SYNs.
  void samplePressure();
  void expireParked();
  void expireHeld();

  // With kernel attribution, from start-up on (the fast path is built after the queue).
  void setFastPath(KernelFastPath* fastPath) { s_.fastPath = fastPath; }
  // What else makes an approved process untrustworthy (non-empty: the reason), e.g. the
  // MTA's binary run with a configuration of its own (mta_gate.hpp).
  void setTaintCheck(std::function<std::string(const procinfo::ProcessInfo&)> check) {
    taintCheck_ = std::move(check);
  }

  [[nodiscard]] const Counters& counters() const { return counters_; }

  // The process that connected a socket this pipeline allowed (queued or in the kernel),
  // as attributed at connect() but without its command line and code-loading findings;
  // null when not known (never allowed, or forgotten).
  [[nodiscard]] const procinfo::ProcessInfo* connectorOf(std::uint64_t cookie) const {
    return allowedSockets_.find(cookie);
  }

  // A message handed to the local MTA without TCP (mta_gate.cpp): numbered, charged to its
  // program and published like a connection attempt.
  void recordSubmission(store::AttemptRecord attempt, ProgramView* program, bool quarantined);
  [[nodiscard]] bool overloaded() const;

 private:
  std::function<std::string(const procinfo::ProcessInfo&)> taintCheck_;
  // `parkedSince`: when the packet first waited for a hash, for a packet decided again.
  void onPacket(const netfilter::QueuedPacket& packet, const MonoTime* parkedSince = nullptr);
  void finish(const netfilter::QueuedPacket& packet, const MonoTime* parkedSince,
              const Attributed* early, const rules::Decision* sentEarly);
  void send(std::uint32_t packetId, rules::Verdict verdict);
  // `at`: when the attempt was made, if not now (an event read after the kernel acted).
  void record(const rules::ConnectionTuple& tuple, std::uint32_t uid, const Attributed* attributed,
              ProgramView* program, const rules::Decision& decision, bool quarantined,
              std::optional<TimePoint> at = std::nullopt);
  void count(rules::Verdict verdict);
  [[nodiscard]] std::optional<TimePoint> wallTimeOf(std::chrono::nanoseconds monotonic) const;
  [[nodiscard]] bool allowedAlone(const procinfo::ProcessInfo& process) const;
  void logFirstHeld(const ProgramView& program, const store::AttemptRecord& attempt);

  Seams s_;
  Observers observers_;
  std::uint32_t queueMaxLength_;
  std::int64_t nextAttemptId_;
  // Held attempts by socket (cookie, or source address and port), and when they were held.
  // A key of fixed size, not a string: no allocation of its own.
  struct HeldKey {
    std::uint64_t cookie = 0;
    int family = 0;
    std::array<std::uint8_t, 16> src{};
    std::uint16_t srcPort = 0;
    friend auto operator<=>(const HeldKey&, const HeldKey&) = default;
  };
  BoundedMap<HeldKey, MonoTime> held_{kMaxHeld};
  BoundedMap<std::uint64_t, procinfo::ProcessInfo> allowedSockets_{kMaxAllowedSockets};
  struct Parked {
    netfilter::QueuedPacket packet;
    MonoTime since;
  };
  std::vector<Parked> parked_;
  struct Deferred {
    netfilter::QueuedPacket packet;
    Attributed early;
    rules::Decision decision;
    MonoTime since;
  };
  std::vector<Deferred> deferred_;
  std::function<void()> deferredWake_;
  QueuePressure pressure_;
  std::uint32_t readSinceSample_ = 0;  // the most packets read in one wake-up since
  bool wokeClients_ = false;           // this wake-up sent an allow or a refusal
  Counters counters_;
  // The minute of first-held lines (logFirstHeld): when it began, lines written in it,
  // and lines left out.
  std::optional<MonoTime> firstHeldMinute_;
  int firstHeldLines_ = 0;
  std::uint64_t firstHeldUnlogged_ = 0;
};

// A program's row as the store keeps it.
store::ProgramRecord recordOf(const ProgramView& view);

}  // namespace mailguard::service
