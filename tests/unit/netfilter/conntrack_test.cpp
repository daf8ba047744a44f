// parseConntrackEvents: ctnetlink messages built by hand as the kernel sends them on the
// conntrack event groups, including truncated ones and lengths that lie.
#include "mailguard/netfilter/conntrack.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace mailguard::netfilter {
namespace {

using Bytes = std::vector<std::uint8_t>;
using Kind = ConntrackEvent::Kind;

struct Spec {
  std::uint16_t msgType = IPCTNL_MSG_CT_NEW;  // IPCTNL_MSG_CT_DELETE for a destroy
  std::uint16_t subsys = NFNL_SUBSYS_CTNETLINK;
  bool v6 = false;
  std::uint8_t proto = IPPROTO_TCP;
  std::optional<std::uint8_t> state;  // CTA_PROTOINFO_TCP_STATE; none: no CTA_PROTOINFO
  std::size_t srcLen = 0;             // the address attribute's length; 0: the real one
};

// One ctnetlink event, 192.0.2.10:40000 -> 198.51.100.7:25 (or 2001:db8::a -> ::7).
Bytes message(const Spec& s) {
  Bytes buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = static_cast<std::uint16_t>((s.subsys << 8) | s.msgType);
  auto* g = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  g->nfgen_family = s.v6 ? AF_INET6 : AF_INET;
  g->version = NFNETLINK_V0;

  nlattr* orig = mnl_attr_nest_start(nlh, CTA_TUPLE_ORIG);
  nlattr* ip = mnl_attr_nest_start(nlh, CTA_TUPLE_IP);
  if (s.v6) {
    std::uint8_t src[16] = {0x20, 0x01, 0x0d, 0xb8};
    std::uint8_t dst[16] = {0x20, 0x01, 0x0d, 0xb8};
    src[15] = 0x0a;
    dst[15] = 0x07;
    mnl_attr_put(nlh, CTA_IP_V6_SRC, s.srcLen != 0 ? s.srcLen : 16, src);
    mnl_attr_put(nlh, CTA_IP_V6_DST, 16, dst);
  } else {
    const std::uint8_t src[4] = {192, 0, 2, 10};
    const std::uint8_t dst[4] = {198, 51, 100, 7};
    mnl_attr_put(nlh, CTA_IP_V4_SRC, s.srcLen != 0 ? s.srcLen : 4, src);
    mnl_attr_put(nlh, CTA_IP_V4_DST, 4, dst);
  }
  mnl_attr_nest_end(nlh, ip);
  nlattr* proto = mnl_attr_nest_start(nlh, CTA_TUPLE_PROTO);
  mnl_attr_put_u8(nlh, CTA_PROTO_NUM, s.proto);
  mnl_attr_put_u16(nlh, CTA_PROTO_SRC_PORT, htons(40000));
  mnl_attr_put_u16(nlh, CTA_PROTO_DST_PORT, htons(25));
  mnl_attr_nest_end(nlh, proto);
  mnl_attr_nest_end(nlh, orig);

  if (s.state) {
    nlattr* info = mnl_attr_nest_start(nlh, CTA_PROTOINFO);
    nlattr* tcp = mnl_attr_nest_start(nlh, CTA_PROTOINFO_TCP);
    mnl_attr_put_u8(nlh, CTA_PROTOINFO_TCP_STATE, *s.state);
    mnl_attr_nest_end(nlh, tcp);
    mnl_attr_nest_end(nlh, info);
  }
  buf.resize(nlh->nlmsg_len);
  return buf;
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

void setLength(Bytes& m, std::uint32_t len) {
  std::memcpy(m.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
}

std::vector<ConntrackEvent> parse(const Bytes& datagram) {
  std::vector<ConntrackEvent> events;
  const auto n =
      parseConntrackEvents(datagram, [&](const ConntrackEvent& e) { events.push_back(e); });
  EXPECT_EQ(n, events.size());
  return events;
}

std::vector<Kind> kinds(const Bytes& datagram) {
  std::vector<Kind> out;
  for (const auto& e : parse(datagram)) out.push_back(e.kind);
  return out;
}

TEST(ConntrackEvents, UpdateToEstablishedReadsTheOriginalTuple) {
  const auto events = parse(message({.state = TCP_CONNTRACK_ESTABLISHED}));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].kind, Kind::Established);
  EXPECT_EQ(events[0].tuple.family, AF_INET);
  EXPECT_EQ(events[0].tuple.srcAddress(), "192.0.2.10");
  EXPECT_EQ(events[0].tuple.dstAddress(), "198.51.100.7");
  EXPECT_EQ(events[0].tuple.srcPort, 40000);
  EXPECT_EQ(events[0].tuple.dstPort, 25);
}

TEST(ConntrackEvents, ReadsIpv6Tuples) {
  const auto events = parse(message({.v6 = true, .state = TCP_CONNTRACK_ESTABLISHED}));
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].tuple.family, AF_INET6);
  EXPECT_EQ(events[0].tuple.srcAddress(), "2001:db8::a");
  EXPECT_EQ(events[0].tuple.dstAddress(), "2001:db8::7");
}

TEST(ConntrackEvents, ResetIsARefusalAndACloseAtOnce) {
  EXPECT_EQ(kinds(message({.state = TCP_CONNTRACK_CLOSE})),
            (std::vector<Kind>{Kind::Refused, Kind::Closed}));
}

TEST(ConntrackEvents, DestroyInSynSentOrWithoutStateTimedOut) {
  EXPECT_EQ(kinds(message({.msgType = IPCTNL_MSG_CT_DELETE, .state = TCP_CONNTRACK_SYN_SENT})),
            (std::vector<Kind>{Kind::TimedOut, Kind::Closed}));
  EXPECT_EQ(kinds(message({.msgType = IPCTNL_MSG_CT_DELETE, .state = std::nullopt})),
            (std::vector<Kind>{Kind::TimedOut, Kind::Closed}));
}

TEST(ConntrackEvents, FinAfterEstablishedIsEstablishedThenClosed) {
  EXPECT_EQ(kinds(message({.state = TCP_CONNTRACK_FIN_WAIT})),
            (std::vector<Kind>{Kind::Established, Kind::Closed}));
  EXPECT_EQ(kinds(message({.msgType = IPCTNL_MSG_CT_DELETE, .state = TCP_CONNTRACK_TIME_WAIT})),
            (std::vector<Kind>{Kind::Established, Kind::Closed}));
}

TEST(ConntrackEvents, HandshakeStatesSayNothingYet) {
  EXPECT_TRUE(kinds(message({.state = TCP_CONNTRACK_SYN_SENT})).empty());
  EXPECT_TRUE(kinds(message({.state = TCP_CONNTRACK_SYN_RECV})).empty());
  // Simultaneous open: numerically above ESTABLISHED, but no close.
  EXPECT_TRUE(kinds(message({.state = TCP_CONNTRACK_SYN_SENT2})).empty());
}

TEST(ConntrackEvents, OtherProtocolsAndSubsystemsAreSkipped) {
  EXPECT_TRUE(parse(message({.proto = IPPROTO_UDP, .state = TCP_CONNTRACK_ESTABLISHED})).empty());
  EXPECT_TRUE(
      parse(message({.subsys = NFNL_SUBSYS_CTNETLINK_EXP, .state = TCP_CONNTRACK_ESTABLISHED}))
          .empty());
}

TEST(ConntrackEvents, EveryMessageOfADatagramInOrder) {
  const Bytes datagram =
      concat({message({.state = TCP_CONNTRACK_ESTABLISHED}),
              message({.msgType = IPCTNL_MSG_CT_DELETE, .state = TCP_CONNTRACK_SYN_SENT})});
  EXPECT_EQ(kinds(datagram), (std::vector<Kind>{Kind::Established, Kind::TimedOut, Kind::Closed}));
}

TEST(ConntrackEvents, TruncatedDatagramKeepsTheWholeMessagesBeforeIt) {
  const Bytes whole = message({.state = TCP_CONNTRACK_ESTABLISHED});
  Bytes datagram = concat({whole, whole});
  datagram.resize(whole.size() + whole.size() / 2);
  EXPECT_EQ(kinds(datagram), (std::vector<Kind>{Kind::Established}));
  for (std::size_t cut = 0; cut < whole.size(); ++cut) {
    const Bytes prefix(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
    EXPECT_TRUE(parse(prefix).empty()) << "cut at " << cut;
  }
}

TEST(ConntrackEvents, LengthsThatLieEndTheWalk) {
  Bytes over = message({.state = TCP_CONNTRACK_ESTABLISHED});
  setLength(over, static_cast<std::uint32_t>(over.size() + 4));
  EXPECT_TRUE(parse(over).empty());
  // mnl_nlmsg_ok compares the length as an int: 2^31 passes it.
  setLength(over, 0x80000000U);
  EXPECT_TRUE(parse(over).empty());
  // A header claiming only itself: no nfgenmsg to skip.
  Bytes tiny = message({.state = TCP_CONNTRACK_ESTABLISHED});
  setLength(tiny, NLMSG_HDRLEN);
  EXPECT_TRUE(parse(tiny).empty());
}

TEST(ConntrackEvents, ShortAddressAttributeIsNotReadPast) {
  EXPECT_TRUE(parse(message({.state = TCP_CONNTRACK_ESTABLISHED, .srcLen = 2})).empty());
  EXPECT_TRUE(
      parse(message({.v6 = true, .state = TCP_CONNTRACK_ESTABLISHED, .srcLen = 8})).empty());
}

}  // namespace
}  // namespace mailguard::netfilter
