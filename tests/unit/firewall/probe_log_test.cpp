#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <vector>

#include "mailguard/firewall/probe_log.hpp"
#include "mailguard/rules/firewall.hpp"

namespace mailguard::firewall {
namespace {

// One NFULNL_MSG_PACKET as nfnetlink_log sends it: nfgenmsg, prefix, payload.
std::vector<std::uint8_t> nflogMessage(int family, const std::vector<std::uint8_t>& packet,
                                       const char* prefix = rules::kProbeLogPrefix) {
  std::vector<std::uint8_t> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = static_cast<std::uint8_t>(family);
  mnl_attr_put_strz(nlh, NFULA_PREFIX, prefix);
  mnl_attr_put(nlh, NFULA_PAYLOAD, packet.size(), packet.data());
  buf.resize(nlh->nlmsg_len);
  return buf;
}

std::vector<std::uint8_t> ipv4Syn(const char* src, std::uint16_t dport) {
  std::vector<std::uint8_t> p(40, 0);
  p[0] = 0x45;
  p[9] = IPPROTO_TCP;
  (void)inet_pton(AF_INET, src, &p[12]);
  p[22] = static_cast<std::uint8_t>(dport >> 8);
  p[23] = static_cast<std::uint8_t>(dport & 0xff);
  return p;
}

std::vector<std::uint8_t> ipv6Syn(const char* src, std::uint16_t dport) {
  std::vector<std::uint8_t> p(60, 0);
  p[0] = 0x60;
  p[6] = IPPROTO_TCP;
  (void)inet_pton(AF_INET6, src, &p[8]);
  p[42] = static_cast<std::uint8_t>(dport >> 8);
  p[43] = static_cast<std::uint8_t>(dport & 0xff);
  return p;
}

TEST(ParseNflog, ReadsSourceAndMailPortOfIpv4AndIpv6Probes) {
  auto datagram = nflogMessage(AF_INET, ipv4Syn("203.0.113.9", 25));
  const auto v6 = nflogMessage(AF_INET6, ipv6Syn("2001:db8::9", 587));
  datagram.insert(datagram.end(), v6.begin(), v6.end());
  const auto events = parseNflogDatagram(datagram);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0].sourceAddress(), "203.0.113.9");
  EXPECT_EQ(events[0].port, 25);
  EXPECT_EQ(events[1].sourceAddress(), "2001:db8::9");
  EXPECT_EQ(events[1].port, 587);
}

TEST(ParseNflog, IgnoresOtherPrefixesAndTruncatedPackets) {
  EXPECT_TRUE(parseNflogDatagram(nflogMessage(AF_INET, ipv4Syn("1.2.3.4", 25), "other")).empty());
  auto shortPacket = ipv4Syn("1.2.3.4", 25);
  shortPacket.resize(21);
  EXPECT_TRUE(parseNflogDatagram(nflogMessage(AF_INET, shortPacket)).empty());
  const std::vector<std::uint8_t> garbage(7, 0xff);
  EXPECT_TRUE(parseNflogDatagram(garbage).empty());
}

TEST(ProbeRecorder, FoldsAScanIntoBoundedRecords) {
  FakeClock clock;
  ProbeRecorder recorder(clock, 4);
  ProbeEvent e;
  e.family = AF_INET;
  for (int source = 0; source < 10; ++source) {
    e.source[3] = static_cast<std::uint8_t>(source);
    for (int i = 0; i < 100; ++i) {
      e.port = i % 2 == 0 ? 25 : 587;
      recorder.record(e);
      clock.advance(std::chrono::milliseconds(1));
    }
  }
  const auto records = recorder.records();
  ASSERT_EQ(records.size(), 4U);
  EXPECT_EQ(records[0].count, 50U);
  EXPECT_LT(records[0].first, records[0].last);
  EXPECT_EQ(recorder.events(), 1000U);
  EXPECT_EQ(recorder.dropped(), 800U);
  EXPECT_EQ(recorder.drain().size(), 4U);
  EXPECT_TRUE(recorder.records().empty());
}

}  // namespace
}  // namespace mailguard::firewall
