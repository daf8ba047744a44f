// NfqueuePacketSource: one NETLINK_NETFILTER socket bound to one NFQUEUE queue
// (nfnetlink_queue), libmnl for the socket, libnetfilter_queue's nlmsg helpers for
// the messages (see libnetfilter-queue-dev/examples/nf-queue.c).
#include "mailguard/netfilter/packet_source.hpp"

#include "mailguard/netfilter/netlink.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

// libnetfilter_queue.h uses these types without including their headers.
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/rules/ruleset.hpp"

namespace mailguard::netfilter {
namespace {

// The SYN's IP and TCP headers, even with IPv6 extension headers, fit in this.
constexpr int kCopyRange = 128;
constexpr int kAckTimeoutMs = 5000;
// A queued message is the copied packet plus attributes (uid, gid, hw header,
// interface indexes, ...): far below this.
constexpr std::size_t kReceiveBuffer = 64 * 1024;
// Room for one config or verdict message.
constexpr std::size_t kSendBuffer = 1024;

// True when the effective capability set holds CAP_NET_ADMIN (capget(2)); only
// used to tell "no permission" from "queue taken" when the kernel says EPERM.
bool hasNetAdmin() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_NET_ADMIN / 32].effective & (1U << (CAP_NET_ADMIN % 32))) != 0;
}

int familyOf(const nlmsghdr* nlh, const nfqnl_msg_packet_hdr* ph) {
  const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
  if (nfg->nfgen_family == NFPROTO_IPV4) return AF_INET;
  if (nfg->nfgen_family == NFPROTO_IPV6) return AF_INET6;
  switch (ntohs(ph->hw_protocol)) {
    case ETH_P_IP:
      return AF_INET;
    case ETH_P_IPV6:
      return AF_INET6;
    default:
      return AF_UNSPEC;
  }
}

// nfq_nlmsg_parse and familyOf read the nfgenmsg after the header without checking.
bool hasNfgenmsg(const nlmsghdr* nlh) { return nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(nfgenmsg)); }

// One NFQNL_MSG_PACKET -> QueuedPacket; false when it carries no packet id.
bool parseMessage(const nlmsghdr* nlh, QueuedPacket& out) {
  if (NFNL_MSG_TYPE(nlh->nlmsg_type) != NFQNL_MSG_PACKET || !hasNfgenmsg(nlh)) return false;
  nlattr* attr[NFQA_MAX + 1] = {};
  if (nfq_nlmsg_parse(nlh, attr) < 0 || attr[NFQA_PACKET_HDR] == nullptr) return false;
  if (mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(nfqnl_msg_packet_hdr)) return false;
  const auto* ph =
      static_cast<const nfqnl_msg_packet_hdr*>(mnl_attr_get_payload(attr[NFQA_PACKET_HDR]));
  out.id = ntohl(ph->packet_id);
  if (attr[NFQA_PAYLOAD] != nullptr) {
    const auto* bytes = static_cast<const std::uint8_t*>(mnl_attr_get_payload(attr[NFQA_PAYLOAD]));
    out.tuple =
        parseTcpTuple(familyOf(nlh, ph), {bytes, mnl_attr_get_payload_len(attr[NFQA_PAYLOAD])});
  }
  // Fixed-size attributes with a short payload are ignored rather than over-read.
  auto u32 = [&](int type) -> std::optional<std::uint32_t> {
    if (attr[type] == nullptr || mnl_attr_get_payload_len(attr[type]) < sizeof(std::uint32_t)) {
      return std::nullopt;
    }
    return ntohl(mnl_attr_get_u32(attr[type]));
  };
  out.uid = u32(NFQA_UID);
  out.gid = u32(NFQA_GID);
  return true;
}

}  // namespace

QueueDatagramWalk walkQueueDatagram(std::span<const std::uint8_t> datagram, std::size_t maxPackets,
                                    const std::function<void(const QueuedPacket&)>& onPacket) {
  QueueDatagramWalk walk;
  // Bounded by the receive buffer (64 KiB), so the int of libmnl's API cannot overflow.
  auto len = static_cast<int>(std::min<std::size_t>(datagram.size(), INT32_MAX));
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); messageFits(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    // Messages not from the kernel (port id 0) or error answers to our verdicts
    // (e.g. an id the kernel no longer holds) carry no packet.
    if (nlh->nlmsg_pid != 0 || nlh->nlmsg_type == NLMSG_ERROR) continue;
    QueuedPacket packet;
    if (!parseMessage(nlh, packet)) continue;
    if (walk.packets == maxPackets) {
      walk.consumed =
          static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(nlh) - datagram.data());
      return walk;
    }
    ++walk.packets;
    onPacket(packet);
  }
  // What is left does not hold a whole message: nothing more to read from it.
  walk.consumed = datagram.size();
  return walk;
}

std::size_t parseQueueDatagram(std::span<const std::uint8_t> datagram,
                               const std::function<void(const QueuedPacket&)>& onPacket) {
  return walkQueueDatagram(datagram, std::numeric_limits<std::size_t>::max(), onPacket).packets;
}

struct NfqueuePacketSource::Impl {
  MnlSocketPtr socket;
  std::uint32_t portId = 0;
  std::uint16_t queue = 0;
  std::uint32_t seq = 1;
  QueueStats stats;
  std::vector<char> rx = std::vector<char>(kReceiveBuffer);
  // The part of the last datagram read that receive() has not walked yet (it stopped at
  // its bound): rx[pendingBegin, pendingEnd).
  std::size_t pendingBegin = 0;
  std::size_t pendingEnd = 0;

  [[nodiscard]] int fd() const { return mnl_socket_get_fd(socket.get()); }

  Result<void> send(const nlmsghdr* nlh) {
    if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) {
      const int err = errno;
      return systemError(std::strerror(err), err);
    }
    return {};
  }

  // Drops a packet we cannot hand on (no callback yet, or unusable message): the
  // kernel would otherwise keep it queued; TCP retries the SYN.
  void dropQuietly(std::uint32_t id) {
    std::vector<char> buf(kSendBuffer);
    nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_VERDICT, queue);
    nfq_nlmsg_verdict_put(nlh, static_cast<int>(id), NF_DROP);
    (void)send(nlh);
  }

  // Sends a config message with NLM_F_ACK and waits for its ack; 0 or an errno.
  // Packets that arrive meanwhile are dropped (fail-closed; the sender retries).
  int configure(nlmsghdr* nlh) {
    nlh->nlmsg_flags |= NLM_F_ACK;
    nlh->nlmsg_seq = seq++;
    if (mnl_socket_sendto(socket.get(), nlh, nlh->nlmsg_len) < 0) return errno;
    const std::uint32_t want = nlh->nlmsg_seq;
    for (;;) {
      pollfd p{fd(), POLLIN, 0};
      const int ready = ::poll(&p, 1, kAckTimeoutMs);
      if (ready < 0 && errno == EINTR) continue;
      if (ready < 0) return errno;
      if (ready == 0) return ETIMEDOUT;
      const ssize_t n = ::recv(p.fd, rx.data(), rx.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        if (errno == ENOBUFS) {
          ++stats.kernelDropped;
          continue;
        }
        return errno;
      }
      auto* msg = reinterpret_cast<const nlmsghdr*>(rx.data());
      auto len = static_cast<int>(n);
      for (; messageFits(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
        if (msg->nlmsg_type == NLMSG_ERROR && msg->nlmsg_seq == want) {
          const int ret = mnl_cb_run(msg, msg->nlmsg_len, want, portId, nullptr, nullptr);
          return ret < 0 ? errno : 0;
        }
        if (QueuedPacket packet; parseMessage(msg, packet)) dropQuietly(packet.id);
      }
    }
  }
};

NfqueuePacketSource::NfqueuePacketSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NfqueuePacketSource::~NfqueuePacketSource() = default;

Result<std::unique_ptr<NfqueuePacketSource>> NfqueuePacketSource::open(
    std::uint16_t queueNumber, std::uint32_t maxQueueLength) {
  const std::string object = "NFQUEUE " + std::to_string(queueNumber);
  auto fail = [&](const std::string& reason) {
    return makeError("Failed to bind '" + object + "': " + reason);
  };
  auto impl = std::make_unique<Impl>();
  impl->queue = queueNumber;
  impl->socket.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!impl->socket) return fail(std::strerror(errno));
  if (mnl_socket_bind(impl->socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    return fail(std::strerror(errno));
  }
  impl->portId = mnl_socket_get_portid(impl->socket.get());

  // Keep ENOBUFS on (the default; said explicitly because nf-queue.c turns it off):
  // it is how we learn the kernel dropped queued packets for us.
  int off = 0;
  if (mnl_socket_setsockopt(impl->socket.get(), NETLINK_NO_ENOBUFS, &off, sizeof(off)) < 0) {
    return fail(std::strerror(errno));
  }

  std::vector<char> buf(kSendBuffer);
  nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_CONFIG, queueNumber);
  nfq_nlmsg_cfg_put_cmd(nlh, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
  if (const int err = impl->configure(nlh); err != 0) {
    // nfqnl_recv_config answers EPERM both without CAP_NET_ADMIN and when another
    // socket owns the queue (peer_portid mismatch).
    if (err == EPERM && hasNetAdmin()) {
      return fail("the queue is held by another process (is another guardd running?)");
    }
    if (err == EPERM)
      return fail(std::string(std::strerror(err)) + " (guardd needs root / CAP_NET_ADMIN)");
    return fail(std::strerror(err));
  }

  // Copy the first 128 bytes, ask for the socket's uid/gid, let GSO packets through
  // unsegmented; fail-open is in the mask and cleared: a full queue drops.
  const std::uint32_t flags = NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO;
  const std::uint32_t mask = flags | NFQA_CFG_F_FAIL_OPEN;
  nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_CONFIG, queueNumber);
  nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, kCopyRange);
  nfq_nlmsg_cfg_put_qmaxlen(nlh, maxQueueLength);
  mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
  mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
  if (const int err = impl->configure(nlh); err != 0) {
    return makeError("Failed to configure '" + object + "': " + std::strerror(err));
  }
  return std::unique_ptr<NfqueuePacketSource>(new NfqueuePacketSource(std::move(impl)));
}

int NfqueuePacketSource::fd() const { return impl_->fd(); }

Result<bool> NfqueuePacketSource::receive(const std::function<void(const QueuedPacket&)>& onPacket,
                                          std::size_t maxPackets) {
  std::size_t delivered = 0;
  while (delivered < maxPackets) {
    if (impl_->pendingBegin == impl_->pendingEnd) {
      const ssize_t n = ::recv(impl_->fd(), impl_->rx.data(), impl_->rx.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
        if (errno == EINTR) continue;
        if (errno == ENOBUFS) {
          // The socket buffer overflowed: the kernel dropped queued packets (their
          // verdict is NF_DROP; TCP retries).
          ++impl_->stats.kernelDropped;
          continue;
        }
        const int err = errno;
        return systemError("Failed to receive from 'NFQUEUE " + std::to_string(impl_->queue) +
                               "': " + std::strerror(err),
                           err);
      }
      impl_->pendingBegin = 0;
      impl_->pendingEnd = static_cast<std::size_t>(n);
    }
    // The datagram's messages are 4-byte aligned (NLMSG_ALIGN), so a walk resumed at a
    // message boundary sees the same layout.
    const auto walk = walkQueueDatagram(
        {reinterpret_cast<const std::uint8_t*>(impl_->rx.data()) + impl_->pendingBegin,
         impl_->pendingEnd - impl_->pendingBegin},
        maxPackets - delivered, onPacket);
    delivered += walk.packets;
    impl_->stats.received += walk.packets;
    impl_->pendingBegin += walk.consumed;
  }
  return true;
}

Result<void> NfqueuePacketSource::verdict(std::uint32_t packetId, PacketVerdict v) {
  std::array<char, kSendBuffer> buf{};
  nlmsghdr* nlh = nfq_nlmsg_put(buf.data(), NFQNL_MSG_VERDICT, impl_->queue);
  switch (v) {
    case PacketVerdict::Drop:
      nfq_nlmsg_verdict_put(nlh, static_cast<int>(packetId), NF_DROP);
      break;
    case PacketVerdict::RepeatWithAllow:
      // NF_REPEAT runs the hook again; `meta mark kMarkAllow accept` matches then.
      nfq_nlmsg_verdict_put(nlh, static_cast<int>(packetId), NF_REPEAT);
      nfq_nlmsg_verdict_put_mark(nlh, rules::kMarkAllow);
      break;
    case PacketVerdict::RepeatWithReject:
      nfq_nlmsg_verdict_put(nlh, static_cast<int>(packetId), NF_REPEAT);
      nfq_nlmsg_verdict_put_mark(nlh, rules::kMarkReject);
      break;
  }
  if (auto sent = impl_->send(nlh); !sent) {
    ++impl_->stats.verdictErrors;
    return systemError("Failed to send verdict for packet " + std::to_string(packetId) +
                           " on 'NFQUEUE " + std::to_string(impl_->queue) +
                           "': " + sent.error().message,
                       sent.error().sysErrno);
  }
  return {};
}

QueueStats NfqueuePacketSource::stats() const { return impl_->stats; }

Result<KernelQueueCounters> NfqueuePacketSource::kernelCounters() const {
  constexpr const char* kPath = "/proc/net/netfilter/nfnetlink_queue";
  std::ifstream in(kPath);
  if (!in) return makeError(std::string("Failed to read '") + kPath + "': " + std::strerror(errno));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (auto c = parseNfqueueProc(text, impl_->queue)) return *c;
  return makeError(std::string("Failed to read '") + kPath + "': queue " +
                   std::to_string(impl_->queue) + " is not listed");
}

}  // namespace mailguard::netfilter
