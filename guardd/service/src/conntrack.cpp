#include "conntrack.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <optional>
#include <vector>

#include "detection.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

struct Event {
  bool destroy = false;
  rules::ConnectionTuple tuple;
  std::optional<std::uint8_t> tcpState;
  bool tcp = false;
};

using Table = std::array<const nlattr*, 32>;

int collect(const nlattr* attr, void* data) {
  auto* tb = static_cast<Table*>(data);
  const auto type = mnl_attr_get_type(attr);
  if (type < tb->size()) (*tb)[type] = attr;
  return MNL_CB_OK;
}

Table nested(const nlattr* attr) {
  Table tb{};
  mnl_attr_parse_nested(attr, collect, &tb);
  return tb;
}

// CTA_TUPLE_ORIG: the direction of our SYN (src = this host's socket).
bool parseTuple(const nlattr* orig, Event& e) {
  const auto t = nested(orig);
  if (t[CTA_TUPLE_IP] == nullptr || t[CTA_TUPLE_PROTO] == nullptr) return false;
  const auto ip = nested(t[CTA_TUPLE_IP]);
  if (ip[CTA_IP_V4_SRC] != nullptr && ip[CTA_IP_V4_DST] != nullptr) {
    e.tuple.family = AF_INET;
    std::memcpy(e.tuple.src.data(), mnl_attr_get_payload(ip[CTA_IP_V4_SRC]), 4);
    std::memcpy(e.tuple.dst.data(), mnl_attr_get_payload(ip[CTA_IP_V4_DST]), 4);
  } else if (ip[CTA_IP_V6_SRC] != nullptr && ip[CTA_IP_V6_DST] != nullptr) {
    e.tuple.family = AF_INET6;
    std::memcpy(e.tuple.src.data(), mnl_attr_get_payload(ip[CTA_IP_V6_SRC]), 16);
    std::memcpy(e.tuple.dst.data(), mnl_attr_get_payload(ip[CTA_IP_V6_DST]), 16);
  } else {
    return false;
  }
  const auto proto = nested(t[CTA_TUPLE_PROTO]);
  if (proto[CTA_PROTO_NUM] == nullptr || mnl_attr_get_u8(proto[CTA_PROTO_NUM]) != IPPROTO_TCP) {
    return false;
  }
  if (proto[CTA_PROTO_SRC_PORT] == nullptr || proto[CTA_PROTO_DST_PORT] == nullptr) return false;
  e.tcp = true;
  e.tuple.srcPort = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_SRC_PORT]));
  e.tuple.dstPort = ntohs(mnl_attr_get_u16(proto[CTA_PROTO_DST_PORT]));
  return true;
}

int onMessage(const nlmsghdr* nlh, void* data) {
  auto* events = static_cast<std::vector<Event>*>(data);
  const auto type = static_cast<std::uint8_t>(nlh->nlmsg_type & 0xff);
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return MNL_CB_OK;
  Event e;
  e.destroy = type == IPCTNL_MSG_CT_DELETE;
  Table tb{};
  if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collect, &tb) < 0) return MNL_CB_OK;
  if (tb[CTA_TUPLE_ORIG] == nullptr || !parseTuple(tb[CTA_TUPLE_ORIG], e)) return MNL_CB_OK;
  if (tb[CTA_PROTOINFO] != nullptr) {
    const auto info = nested(tb[CTA_PROTOINFO]);
    if (info[CTA_PROTOINFO_TCP] != nullptr) {
      const auto tcp = nested(info[CTA_PROTOINFO_TCP]);
      if (tcp[CTA_PROTOINFO_TCP_STATE] != nullptr) {
        e.tcpState = mnl_attr_get_u8(tcp[CTA_PROTOINFO_TCP_STATE]);
      }
    }
  }
  events->push_back(e);
  return MNL_CB_OK;
}

}  // namespace

Result<std::unique_ptr<ConntrackListener>> ConntrackListener::open(Detection& sink) {
  mnl_socket* nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (nl == nullptr) return makeError(std::string("netlink socket: ") + std::strerror(errno));
  std::unique_ptr<ConntrackListener> listener(new ConntrackListener(nl, sink));
  // `conntrack -E -e UPDATES,DESTROY`: NEW adds nothing an attempt has not told us.
  if (mnl_socket_bind(nl, NF_NETLINK_CONNTRACK_UPDATE | NF_NETLINK_CONNTRACK_DESTROY,
                      MNL_SOCKET_AUTOPID) < 0) {
    return makeError(std::string("joining the conntrack event groups: ") + std::strerror(errno));
  }
  // Events come in bursts with a bot; a bigger buffer loses fewer (ENOBUFS otherwise).
  const int size = 4 << 20;
  (void)setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  return listener;
}

ConntrackListener::~ConntrackListener() { mnl_socket_close(nl_); }

int ConntrackListener::fd() const { return mnl_socket_get_fd(nl_); }

void ConntrackListener::receive() {
  std::vector<char> buf(static_cast<std::size_t>(MNL_SOCKET_BUFFER_SIZE));
  for (int round = 0; round < 64; ++round) {
    const auto n = mnl_socket_recvfrom(nl_, buf.data(), buf.size());
    if (n < 0) {
      if (errno == ENOBUFS) {
        if (!overflowLogged_) {
          log::warning(
              "conntrack events were lost (receive buffer full); outcomes of some "
              "connections are unknown to the detector");
          overflowLogged_ = true;
        }
        continue;
      }
      return;  // EAGAIN: all read
    }
    std::vector<Event> events;
    mnl_cb_run(buf.data(), static_cast<std::size_t>(n), 0, 0, onMessage, &events);
    for (const auto& e : events) {
      if (!e.tcp) continue;
      const auto state = e.tcpState.value_or(TCP_CONNTRACK_NONE);
      if (state >= TCP_CONNTRACK_ESTABLISHED && state <= TCP_CONNTRACK_TIME_WAIT) {
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::Established);
      } else if (state == TCP_CONNTRACK_CLOSE) {
        // An RST: refused when it answers our SYN (the sink ignores it after ESTABLISHED).
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::Refused);
      } else if (e.destroy && (state == TCP_CONNTRACK_SYN_SENT || !e.tcpState)) {
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::TimedOut);
      }
      // A session stops counting as open once either side closes (FIN or RST), not when
      // conntrack forgets it after TIME_WAIT.
      if (e.destroy || (state > TCP_CONNTRACK_ESTABLISHED && state != TCP_CONNTRACK_SYN_SENT2)) {
        sink_.onClosed(e.tuple);
      }
    }
  }
}

}  // namespace mailguard::service
