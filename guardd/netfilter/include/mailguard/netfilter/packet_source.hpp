#pragma once
// The NFQUEUE side: reads queued packets and sends verdicts (libmnl plus
// libnetfilter_queue's nlmsg helpers). Owned by the one event loop: not thread-safe.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::netfilter {

struct QueuedPacket {
  std::uint32_t id = 0;                         // packet id for the verdict
  std::optional<rules::ConnectionTuple> tuple;  // nullopt when not a parseable TCP packet
  std::optional<std::uint32_t> uid;             // socket owner, from NFQA_UID (NFQA_CFG_F_UID_GID)
  std::optional<std::uint32_t> gid;
};

enum class PacketVerdict {
  Drop,              // NF_DROP: hold, TCP will retry the SYN
  RepeatWithAllow,   // NF_REPEAT + rules::kMarkAllow
  RepeatWithReject,  // NF_REPEAT + rules::kMarkReject (TCP reset from the kernel rule)
};

struct QueueStats {
  std::uint64_t received = 0;
  std::uint64_t kernelDropped = 0;  // ENOBUFS seen: each is one or more packets dropped
  // Verdicts that could not be sent: the kernel keeps such a packet queued until the
  // queue is unbound (or drops it when the queue fills), so each one is worth a log line.
  std::uint64_t verdictErrors = 0;
};

// The kernel's own counters of one queue, from /proc/net/netfilter/nfnetlink_queue of
// the reader's network namespace. They start at 0 when the queue is bound.
struct KernelQueueCounters {
  std::uint32_t waiting = 0;       // queue_total: packets queued, not yet decided
  std::uint32_t queueDropped = 0;  // dropped because queue_max_length was reached
  std::uint32_t userDropped = 0;   // dropped because the socket's receive buffer was full
  std::uint32_t idSequence = 0;    // last packet id: packets ever queued
};

// Where verdicts go: the pipeline's output seam.
class VerdictSink {
 public:
  virtual ~VerdictSink() = default;
  virtual Result<void> verdict(std::uint32_t packetId, PacketVerdict v) = 0;
};

// Where queued packets come from, and where their verdicts go.
class PacketSource : public VerdictSink {
 public:
  [[nodiscard]] virtual int fd() const = 0;  // for epoll; -1 for a fake
  // Reads what is ready now, at most `maxPackets` (a per-wake-up bound, so D-Bus and
  // timers are served under a flood), calling onPacket for each. Returns true when
  // more may be waiting (the caller comes back after serving the rest of its loop).
  virtual Result<bool> receive(const std::function<void(const QueuedPacket&)>& onPacket,
                               std::size_t maxPackets) = 0;
  [[nodiscard]] virtual QueueStats stats() const = 0;
  [[nodiscard]] virtual Result<KernelQueueCounters> kernelCounters() const = 0;
};

class NfqueuePacketSource final : public PacketSource {
 public:
  // Binds queue `queueNumber` (fails with a clear message when another process
  // holds it), copy mode packet (first 128 bytes is plenty), asks for UID/GID, sets
  // the kernel queue length and fail-open off (so overload drops: fail-closed).
  static Result<std::unique_ptr<NfqueuePacketSource>> open(std::uint16_t queueNumber,
                                                           std::uint32_t maxQueueLength);
  ~NfqueuePacketSource() override;
  NfqueuePacketSource(const NfqueuePacketSource&) = delete;
  NfqueuePacketSource& operator=(const NfqueuePacketSource&) = delete;

  [[nodiscard]] int fd() const override;  // non-blocking, for epoll

  // Without blocking. Stops after maxPackets even inside a datagram of several packets:
  // the rest of that datagram is kept for the next call, and fd() stays readable to a
  // level-triggered epoll while the socket holds more. ENOBUFS (the kernel dropped
  // messages) is counted, not an error.
  Result<bool> receive(const std::function<void(const QueuedPacket&)>& onPacket,
                       std::size_t maxPackets) override;

  // A send failure is counted in stats().verdictErrors and returned.
  Result<void> verdict(std::uint32_t packetId, PacketVerdict v) override;

  [[nodiscard]] QueueStats stats() const override;
  // The kernel's counters of this queue (reads /proc; once a second is cheap).
  [[nodiscard]] Result<KernelQueueCounters> kernelCounters() const override;

 private:
  struct Impl;
  explicit NfqueuePacketSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// For unit tests of the pipeline: packets pushed by the test, verdicts recorded.
class FakePacketSource final : public PacketSource {
 public:
  void push(QueuedPacket p) { queued_.push_back(std::move(p)); }  // for the next receive()
  std::vector<std::pair<std::uint32_t, PacketVerdict>> verdicts;  // every verdict sent
  bool failVerdicts = false;                                      // verdict() returns an error
  KernelQueueCounters counters;                                   // what kernelCounters() returns
  bool failKernelCounters = false;

  [[nodiscard]] std::size_t pending() const { return queued_.size(); }

  [[nodiscard]] int fd() const override { return -1; }
  Result<bool> receive(const std::function<void(const QueuedPacket&)>& onPacket,
                       std::size_t maxPackets) override {
    for (std::size_t n = 0; n < maxPackets && !queued_.empty(); ++n) {
      const QueuedPacket p = std::move(queued_.front());
      queued_.pop_front();
      ++stats_.received;
      onPacket(p);
    }
    return !queued_.empty();
  }
  Result<void> verdict(std::uint32_t packetId, PacketVerdict v) override {
    if (failVerdicts) {
      ++stats_.verdictErrors;
      return makeError("Failed to send verdict for packet " + std::to_string(packetId) +
                       " on 'fake queue': refused by the test");
    }
    verdicts.emplace_back(packetId, v);
    return {};
  }
  [[nodiscard]] QueueStats stats() const override { return stats_; }
  [[nodiscard]] Result<KernelQueueCounters> kernelCounters() const override {
    if (failKernelCounters) return makeError("Failed to read 'fake queue counters': refused");
    return counters;
  }

 private:
  std::deque<QueuedPacket> queued_;
  QueueStats stats_;
};

// Splits one datagram read from the queue socket into its messages and calls
// `onPacket` for each queued packet; returns how many. Lengths are checked before they
// are trusted (a message claiming more bytes than were received ends the walk).
std::size_t parseQueueDatagram(std::span<const std::uint8_t> datagram,
                               const std::function<void(const QueuedPacket&)>& onPacket);

// The same walk, stopping before the packet that would exceed `maxPackets`.
struct QueueDatagramWalk {
  std::size_t packets = 0;   // reported to onPacket
  std::size_t consumed = 0;  // bytes walked; datagram.size() once nothing usable is left
};
QueueDatagramWalk walkQueueDatagram(std::span<const std::uint8_t> datagram, std::size_t maxPackets,
                                    const std::function<void(const QueuedPacket&)>& onPacket);

// The line of queue `queue` in the text of /proc/net/netfilter/nfnetlink_queue;
// nullopt when the queue is not listed or its line is malformed.
std::optional<KernelQueueCounters> parseNfqueueProc(std::string_view text, std::uint16_t queue);

// Parses an IPv4 or IPv6 packet (as NFQUEUE delivers it, starting at the IP header)
// into a TCP 5-tuple. Pure and bounds-checked: fuzzed. IPv6 extension headers
// (hop-by-hop, routing, destination options, fragment) are skipped.
std::optional<rules::ConnectionTuple> parseTcpTuple(int family,
                                                    std::span<const std::uint8_t> packet);

}  // namespace mailguard::netfilter
