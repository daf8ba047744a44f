// Conntrack events: ctnetlink messages (linux/netfilter/nfnetlink_conntrack.h) parsed
// with libmnl, every length checked before it is trusted.
#include "mailguard/netfilter/conntrack.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/netfilter/netlink.hpp"

namespace mailguard::netfilter {
namespace {

// Every CTA_* type we read is below this (CTA_MAX, CTA_TUPLE_MAX, ... are all smaller).
using AttrTable = std::array<const nlattr*, 32>;

int collect(const nlattr* attr, void* data) {
  auto* tb = static_cast<AttrTable*>(data);
  const auto type = mnl_attr_get_type(attr);
  if (type < tb->size()) (*tb)[type] = attr;
  return MNL_CB_OK;
}

// The attributes nested in `attr`; mnl_attr_parse_nested stops at the first attribute
// that does not fit in its parent (mnl_attr_ok).
AttrTable nested(const nlattr* attr) {
  AttrTable tb{};
  mnl_attr_parse_nested(attr, collect, &tb);
  return tb;
}

// The payload of `attr` when it holds at least `size` bytes; nullptr when absent or short.
const void* payloadOf(const nlattr* attr, std::size_t size) {
  if (attr == nullptr || mnl_attr_get_payload_len(attr) < size) return nullptr;
  return mnl_attr_get_payload(attr);
}

// CTA_TUPLE_ORIG: the direction of our SYN (src = this host's socket). TCP only.
std::optional<rules::ConnectionTuple> parseTuple(const nlattr* orig) {
  const auto t = nested(orig);
  if (t[CTA_TUPLE_IP] == nullptr || t[CTA_TUPLE_PROTO] == nullptr) return std::nullopt;
  rules::ConnectionTuple tuple;
  const auto ip = nested(t[CTA_TUPLE_IP]);
  if (const void* src = payloadOf(ip[CTA_IP_V4_SRC], 4), *dst = payloadOf(ip[CTA_IP_V4_DST], 4);
      src != nullptr && dst != nullptr) {
    tuple.family = AF_INET;
    std::memcpy(tuple.src.data(), src, 4);
    std::memcpy(tuple.dst.data(), dst, 4);
  } else if (const void* src6 = payloadOf(ip[CTA_IP_V6_SRC], 16),
             *dst6 = payloadOf(ip[CTA_IP_V6_DST], 16);
             src6 != nullptr && dst6 != nullptr) {
    tuple.family = AF_INET6;
    std::memcpy(tuple.src.data(), src6, 16);
    std::memcpy(tuple.dst.data(), dst6, 16);
  } else {
    return std::nullopt;
  }
  const auto proto = nested(t[CTA_TUPLE_PROTO]);
  const auto* num = static_cast<const std::uint8_t*>(payloadOf(proto[CTA_PROTO_NUM], 1));
  if (num == nullptr || *num != IPPROTO_TCP) return std::nullopt;
  const void* sport = payloadOf(proto[CTA_PROTO_SRC_PORT], 2);
  const void* dport = payloadOf(proto[CTA_PROTO_DST_PORT], 2);
  if (sport == nullptr || dport == nullptr) return std::nullopt;
  std::uint16_t port = 0;
  std::memcpy(&port, sport, 2);
  tuple.srcPort = ntohs(port);
  std::memcpy(&port, dport, 2);
  tuple.dstPort = ntohs(port);
  return tuple;
}

// CTA_PROTOINFO > CTA_PROTOINFO_TCP > CTA_PROTOINFO_TCP_STATE (enum tcp_conntrack).
std::optional<std::uint8_t> tcpState(const nlattr* protoinfo) {
  if (protoinfo == nullptr) return std::nullopt;
  const auto info = nested(protoinfo);
  if (info[CTA_PROTOINFO_TCP] == nullptr) return std::nullopt;
  const auto tcp = nested(info[CTA_PROTOINFO_TCP]);
  const auto* state = static_cast<const std::uint8_t*>(payloadOf(tcp[CTA_PROTOINFO_TCP_STATE], 1));
  if (state == nullptr) return std::nullopt;
  return *state;
}

// One ctnetlink message -> its events; how many.
std::size_t parseMessage(const nlmsghdr* nlh,
                         const std::function<void(const ConntrackEvent&)>& onEvent) {
  if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_CTNETLINK) return 0;
  const auto type = NFNL_MSG_TYPE(nlh->nlmsg_type);
  if (type != IPCTNL_MSG_CT_NEW && type != IPCTNL_MSG_CT_DELETE) return 0;
  // mnl_attr_parse reads the attributes after the nfgenmsg without checking it is there.
  if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) return 0;
  AttrTable tb{};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, &tb) < 0) return 0;
  if (tb[CTA_TUPLE_ORIG] == nullptr) return 0;
  const auto tuple = parseTuple(tb[CTA_TUPLE_ORIG]);
  if (!tuple) return 0;
  const bool destroy = type == IPCTNL_MSG_CT_DELETE;
  const auto known = tcpState(tb[CTA_PROTOINFO]);
  const auto state = known.value_or(TCP_CONNTRACK_NONE);

  std::size_t events = 0;
  auto report = [&](ConntrackEvent::Kind kind) {
    onEvent(ConntrackEvent{kind, *tuple});
    ++events;
  };
  if (state >= TCP_CONNTRACK_ESTABLISHED && state <= TCP_CONNTRACK_TIME_WAIT) {
    report(ConntrackEvent::Kind::Established);
  } else if (state == TCP_CONNTRACK_CLOSE) {
    report(ConntrackEvent::Kind::Refused);
  } else if (destroy && (state == TCP_CONNTRACK_SYN_SENT || !known)) {
    report(ConntrackEvent::Kind::TimedOut);
  }
  // A session stops counting as open once either side closes (FIN or RST), not when
  // conntrack forgets it after TIME_WAIT. SYN_SENT2 (simultaneous open) is not a close
  // although its value is above ESTABLISHED.
  if (destroy || (state > TCP_CONNTRACK_ESTABLISHED && state != TCP_CONNTRACK_SYN_SENT2)) {
    report(ConntrackEvent::Kind::Closed);
  }
  return events;
}

}  // namespace

std::size_t parseConntrackEvents(std::span<const std::uint8_t> datagram,
                                 const std::function<void(const ConntrackEvent&)>& onEvent) {
  std::size_t events = 0;
  auto len = static_cast<int>(std::min<std::size_t>(datagram.size(), INT_MAX));
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); messageFits(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    events += parseMessage(nlh, onEvent);
  }
  return events;
}

struct ConntrackSocket::Impl {
  MnlSocketPtr socket;
  std::uint64_t overflows = 0;
  // One datagram of events; the kernel sends one event per datagram, far below this.
  std::vector<std::uint8_t> rx = std::vector<std::uint8_t>(MNL_SOCKET_BUFFER_SIZE);
};

ConntrackSocket::ConntrackSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConntrackSocket::~ConntrackSocket() = default;

Result<std::unique_ptr<ConntrackSocket>> ConntrackSocket::open() {
  auto impl = std::make_unique<Impl>();
  impl->socket.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!impl->socket) {
    const int err = errno;
    return systemError(
        std::string("Failed to open 'conntrack netlink socket': ") + std::strerror(err), err);
  }
  // `conntrack -E -e UPDATES,DESTROY`: NEW adds nothing an attempt has not told us.
  if (mnl_socket_bind(impl->socket.get(),
                      NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY,
                      MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    return systemError(std::string("Failed to join 'conntrack event groups': ") +
                           std::strerror(err) + (err == EPERM ? " (needs CAP_NET_ADMIN)" : ""),
                       err);
  }
  // Events come in bursts with a bot; a bigger buffer loses fewer (ENOBUFS otherwise).
  // Without the capability to force it the default buffer still works.
  const int size = 4 << 20;
  (void)setsockopt(mnl_socket_get_fd(impl->socket.get()), SOL_SOCKET, SO_RCVBUFFORCE, &size,
                   sizeof size);
  return std::unique_ptr<ConntrackSocket>(new ConntrackSocket(std::move(impl)));
}

int ConntrackSocket::fd() const { return mnl_socket_get_fd(impl_->socket.get()); }

std::uint64_t ConntrackSocket::overflows() const { return impl_->overflows; }

Result<void> ConntrackSocket::receive(const std::function<void(const ConntrackEvent&)>& onEvent) {
  for (int round = 0; round < kMaxDatagrams; ++round) {
    const ssize_t n = ::recv(fd(), impl_->rx.data(), impl_->rx.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return {};
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        ++impl_->overflows;
        continue;
      }
      const int err = errno;
      return systemError(
          std::string("Failed to receive from 'conntrack events': ") + std::strerror(err), err);
    }
    parseConntrackEvents({impl_->rx.data(), static_cast<std::size_t>(n)}, onEvent);
  }
  return {};
}

}  // namespace mailguard::netfilter
