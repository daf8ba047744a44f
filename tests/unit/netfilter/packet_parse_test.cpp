#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdint>
#include <vector>

#include "mailguard/netfilter/packet_source.hpp"

namespace mailguard::netfilter {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes tcpHeader(std::uint16_t srcPort, std::uint16_t dstPort) {
  Bytes tcp(20, 0);
  tcp[0] = static_cast<std::uint8_t>(srcPort >> 8);
  tcp[1] = static_cast<std::uint8_t>(srcPort & 0xff);
  tcp[2] = static_cast<std::uint8_t>(dstPort >> 8);
  tcp[3] = static_cast<std::uint8_t>(dstPort & 0xff);
  tcp[12] = 5 << 4;  // data offset
  tcp[13] = 0x02;    // SYN
  return tcp;
}

// 10.0.0.1:40000 -> 192.0.2.7:25, protocol `proto`.
Bytes ipv4Packet(std::uint8_t proto = 6, std::uint16_t dstPort = 25) {
  Bytes p = {0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 192, 0, 2, 7};
  const Bytes tcp = tcpHeader(40000, dstPort);
  p.insert(p.end(), tcp.begin(), tcp.end());
  return p;
}

// 2001:db8::1 -> 2001:db8::2, next header `next`, then `ext` then TCP 50000 -> 587.
Bytes ipv6Packet(std::uint8_t next, const Bytes& ext = {}) {
  Bytes p(40, 0);
  p[0] = 0x60;
  p[6] = next;
  p[7] = 64;
  p[8] = 0x20;
  p[9] = 0x01;
  p[10] = 0x0d;
  p[11] = 0xb8;
  p[23] = 1;
  p[24] = 0x20;
  p[25] = 0x01;
  p[26] = 0x0d;
  p[27] = 0xb8;
  p[39] = 2;
  p.insert(p.end(), ext.begin(), ext.end());
  const Bytes tcp = tcpHeader(50000, 587);
  p.insert(p.end(), tcp.begin(), tcp.end());
  return p;
}

TEST(ParseTcpTuple, ReadsAddressesAndPortsOfIpv4Syn) {
  const Bytes p = ipv4Packet();
  const auto t = parseTcpTuple(AF_INET, p);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family, AF_INET);
  EXPECT_EQ(t->src[0], 10);
  EXPECT_EQ(t->src[3], 1);
  EXPECT_EQ(t->dst[0], 192);
  EXPECT_EQ(t->dst[3], 7);
  EXPECT_EQ(t->src[4], 0);  // IPv4 uses only the first four bytes
  EXPECT_EQ(t->srcPort, 40000);
  EXPECT_EQ(t->dstPort, 25);
}

TEST(ParseTcpTuple, HonoursIpv4Options) {
  Bytes p = ipv4Packet();
  p[0] = 0x46;  // 24-byte header: one 4-byte option (NOPs) before TCP
  p.insert(p.begin() + 20, {1, 1, 1, 1});
  const auto t = parseTcpTuple(AF_INET, p);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->dstPort, 25);
}

TEST(ParseTcpTuple, ReadsIpv6Syn) {
  const Bytes p = ipv6Packet(6);
  const auto t = parseTcpTuple(AF_INET6, p);
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->family, AF_INET6);
  EXPECT_EQ(t->src[0], 0x20);
  EXPECT_EQ(t->src[15], 1);
  EXPECT_EQ(t->dst[15], 2);
  EXPECT_EQ(t->srcPort, 50000);
  EXPECT_EQ(t->dstPort, 587);
}

TEST(ParseTcpTuple, SkipsIpv6ExtensionHeaders) {
  // hop-by-hop (8 bytes, next = destination options) -> destination options
  // (16 bytes, next = fragment) -> first fragment (next = TCP).
  Bytes ext = {60, 0, 1, 4, 0, 0, 0, 0};
  const Bytes dest = {44, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  const Bytes frag = {6, 0, 0, 1, 0, 0, 0, 42};  // offset 0, more fragments
  ext.insert(ext.end(), dest.begin(), dest.end());
  ext.insert(ext.end(), frag.begin(), frag.end());
  const auto t = parseTcpTuple(AF_INET6, ipv6Packet(0, ext));
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->dstPort, 587);
}

TEST(ParseTcpTuple, RejectsNonFirstFragments) {
  const Bytes frag = {6, 0, 0, 0x08, 0, 0, 0, 42};  // offset 1 (8 bytes)
  EXPECT_FALSE(parseTcpTuple(AF_INET6, ipv6Packet(44, frag)).has_value());
  Bytes p = ipv4Packet();
  p[7] = 1;  // fragment offset 1
  EXPECT_FALSE(parseTcpTuple(AF_INET, p).has_value());
}

TEST(ParseTcpTuple, RejectsTruncatedPackets) {
  const Bytes v4 = ipv4Packet();
  for (std::size_t len = 0; len < 24; ++len) {
    EXPECT_FALSE(parseTcpTuple(AF_INET, {v4.data(), len}).has_value()) << len;
  }
  EXPECT_TRUE(parseTcpTuple(AF_INET, {v4.data(), 24}).has_value());  // ports are enough

  const Bytes v6 = ipv6Packet(0, {6, 0, 0, 0, 0, 0, 0, 0});
  for (std::size_t len = 0; len < 52; ++len) {
    EXPECT_FALSE(parseTcpTuple(AF_INET6, {v6.data(), len}).has_value()) << len;
  }
  EXPECT_TRUE(parseTcpTuple(AF_INET6, {v6.data(), 52}).has_value());
}

TEST(ParseTcpTuple, RejectsExtensionHeaderLongerThanPacket) {
  const Bytes ext = {6, 200, 0, 0, 0, 0, 0, 0};  // claims 1608 bytes
  EXPECT_FALSE(parseTcpTuple(AF_INET6, ipv6Packet(0, ext)).has_value());
}

TEST(ParseTcpTuple, RejectsNonTcp) {
  EXPECT_FALSE(parseTcpTuple(AF_INET, ipv4Packet(17)).has_value());   // UDP
  EXPECT_FALSE(parseTcpTuple(AF_INET6, ipv6Packet(58)).has_value());  // ICMPv6
  EXPECT_FALSE(parseTcpTuple(AF_INET6, ipv6Packet(59)).has_value());  // no next header
}

TEST(ParseTcpTuple, RejectsMismatchedFamilyAndGarbage) {
  EXPECT_FALSE(parseTcpTuple(AF_INET6, ipv4Packet()).has_value());
  EXPECT_FALSE(parseTcpTuple(AF_INET, ipv6Packet(6)).has_value());
  EXPECT_FALSE(parseTcpTuple(AF_UNIX, ipv4Packet()).has_value());

  Bytes bad = ipv4Packet();
  bad[0] = 0x44;  // header length 16: below the minimum
  EXPECT_FALSE(parseTcpTuple(AF_INET, bad).has_value());
  bad[0] = 0x4f;  // header length 60: longer than the packet
  EXPECT_FALSE(parseTcpTuple(AF_INET, bad).has_value());

  // Deterministic pseudo-random bytes: never crash, whatever the answer.
  std::uint32_t state = 12345;
  for (int round = 0; round < 2000; ++round) {
    Bytes junk(static_cast<std::size_t>(round % 97));
    for (auto& b : junk) {
      state = state * 1103515245U + 12345U;
      b = static_cast<std::uint8_t>(state >> 16);
    }
    if (!junk.empty())
      junk[0] = static_cast<std::uint8_t>((round % 2 != 0 ? 0x40 : 0x60) | (junk[0] & 0x0f));
    (void)parseTcpTuple(AF_INET, junk);
    (void)parseTcpTuple(AF_INET6, junk);
  }
  EXPECT_FALSE(parseTcpTuple(AF_INET, {}).has_value());
}

}  // namespace
}  // namespace mailguard::netfilter
