#pragma once
// The NFQUEUE side: reads queued packets and sends verdicts (libmnl plus
// libnetfilter_queue's nlmsg helpers). Owned by the one event loop: not thread-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string_view>

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
};

// The kernel's own counters of one queue, from /proc/net/netfilter/nfnetlink_queue of
// the reader's network namespace. They start at 0 when the queue is bound.
struct KernelQueueCounters {
  std::uint32_t waiting = 0;       // queue_total: packets queued, not yet decided
  std::uint32_t queueDropped = 0;  // dropped because queue_max_length was reached
  std::uint32_t userDropped = 0;   // dropped because the socket's receive buffer was full
  std::uint32_t idSequence = 0;    // last packet id: packets ever queued
};

class NfqueuePacketSource {
 public:
  // Binds queue `queueNumber` (fails with a clear message when another process
  // holds it), copy mode packet (first 128 bytes is plenty), asks for UID/GID, sets
  // the kernel queue length and fail-open off (so overload drops: fail-closed).
  static Result<std::unique_ptr<NfqueuePacketSource>> open(std::uint16_t queueNumber,
                                                           std::uint32_t maxQueueLength);
  ~NfqueuePacketSource();
  NfqueuePacketSource(const NfqueuePacketSource&) = delete;
  NfqueuePacketSource& operator=(const NfqueuePacketSource&) = delete;

  [[nodiscard]] int fd() const;  // non-blocking, for epoll

  // Reads everything that is ready now without blocking and calls `onPacket` for each.
  // ENOBUFS (the kernel dropped messages) is counted, not an error.
  Result<void> receive(const std::function<void(const QueuedPacket&)>& onPacket);

  Result<void> verdict(std::uint32_t packetId, PacketVerdict v);

  [[nodiscard]] const QueueStats& stats() const;
  // The kernel's counters of this queue (reads /proc; once a second is cheap).
  [[nodiscard]] Result<KernelQueueCounters> kernelCounters() const;

 private:
  struct Impl;
  explicit NfqueuePacketSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Splits one datagram read from the queue socket into its messages and calls
// `onPacket` for each queued packet; returns how many. Lengths are checked before they
// are trusted (a message claiming more bytes than were received ends the walk).
std::size_t parseQueueDatagram(std::span<const std::uint8_t> datagram,
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
