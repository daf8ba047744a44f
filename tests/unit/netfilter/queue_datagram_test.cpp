// parseQueueDatagram and parseNfqueueProc: the netlink framing of what the queue socket
// receives, with lengths that lie, and the kernel's per-queue counters.
#include <arpa/inet.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "mailguard/netfilter/packet_source.hpp"

namespace mailguard::netfilter {
namespace {

using Bytes = std::vector<std::uint8_t>;

void append(Bytes& out, const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  out.insert(out.end(), b, b + n);
  out.resize(NLMSG_ALIGN(out.size()), 0);  // attributes and messages are 4-byte aligned
}

void attribute(Bytes& out, std::uint16_t type, const void* p, std::size_t n) {
  nlattr a{};
  a.nla_len = static_cast<std::uint16_t>(NLA_HDRLEN + n);
  a.nla_type = type;
  out.insert(out.end(), reinterpret_cast<const std::uint8_t*>(&a),
             reinterpret_cast<const std::uint8_t*>(&a) + sizeof a);
  append(out, p, n);
}

// 127.0.0.1:40000 -> 127.1.2.3:25, a SYN.
Bytes ipv4Syn() {
  Bytes p = {0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 1, 2, 3};
  Bytes tcp(20, 0);
  tcp[0] = 40000 >> 8;
  tcp[1] = 40000 & 0xff;
  tcp[3] = 25;
  tcp[12] = 5 << 4;
  tcp[13] = 0x02;
  p.insert(p.end(), tcp.begin(), tcp.end());
  return p;
}

// One NFQNL_MSG_PACKET as the kernel sends it: header, nfgenmsg, packet header, uid,
// payload.
Bytes packetMessage(std::uint32_t id, std::uint32_t uid) {
  Bytes body;
  nfgenmsg g{};
  g.nfgen_family = NFPROTO_IPV4;
  g.res_id = htons(4025);
  append(body, &g, sizeof g);
  nfqnl_msg_packet_hdr ph{};
  ph.packet_id = htonl(id);
  ph.hw_protocol = htons(0x0800);
  attribute(body, NFQA_PACKET_HDR, &ph, sizeof ph);
  const std::uint32_t beUid = htonl(uid);
  attribute(body, NFQA_UID, &beUid, sizeof beUid);
  const Bytes syn = ipv4Syn();
  attribute(body, NFQA_PAYLOAD, syn.data(), syn.size());

  nlmsghdr h{};
  h.nlmsg_len = static_cast<std::uint32_t>(NLMSG_HDRLEN + body.size());
  h.nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
  Bytes out;
  append(out, &h, sizeof h);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

void setLength(Bytes& message, std::uint32_t len) {
  std::memcpy(message.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
}

std::vector<QueuedPacket> parse(const Bytes& datagram) {
  std::vector<QueuedPacket> out;
  const auto n = parseQueueDatagram(datagram, [&](const QueuedPacket& p) { out.push_back(p); });
  EXPECT_EQ(n, out.size());
  return out;
}

TEST(QueueDatagram, ReadsEveryPacketOfADatagram) {
  Bytes d = packetMessage(7, 1000);
  const Bytes second = packetMessage(8, 0);
  d.insert(d.end(), second.begin(), second.end());
  const auto packets = parse(d);
  ASSERT_EQ(packets.size(), 2U);
  EXPECT_EQ(packets[0].id, 7U);
  EXPECT_EQ(packets[0].uid, 1000U);
  ASSERT_TRUE(packets[0].tuple.has_value());
  EXPECT_EQ(packets[0].tuple->dstPort, 25);
  EXPECT_EQ(packets[0].tuple->srcPort, 40000);
  EXPECT_EQ(packets[1].id, 8U);
  EXPECT_EQ(packets[1].uid, 0U);
}

TEST(QueueDatagram, LengthBeyondTheDatagramEndsTheWalk) {
  // 2^31 + 16 passes mnl_nlmsg_ok's signed comparison; trusting it would step outside
  // the buffer (ASan reports that in the sanitizer build).
  for (const std::uint32_t bogus : {0x80000010U, 0xFFFFFFF0U, 4096U}) {
    Bytes d = packetMessage(7, 1000);
    const Bytes second = packetMessage(8, 0);
    d.insert(d.end(), second.begin(), second.end());
    setLength(d, bogus);
    EXPECT_TRUE(parse(d).empty()) << bogus;
  }
  // The same lie in the second message keeps the first packet.
  Bytes d = packetMessage(7, 1000);
  const std::size_t first = d.size();
  Bytes second = packetMessage(8, 0);
  setLength(second, 0x80000010U);
  d.insert(d.end(), second.begin(), second.end());
  const auto packets = parse(d);
  ASSERT_EQ(packets.size(), 1U);
  EXPECT_EQ(packets[0].id, 7U);
  EXPECT_GT(d.size(), first);
}

TEST(QueueDatagram, LastMessageWithoutItsPaddingIsSkipped) {
  // The kernel pads every message to 4 bytes. libmnl walks a message's attributes up to
  // its aligned end, so in an unpadded last message a payload attribute may claim bytes
  // past the datagram (the nftables monitor's fuzzer found this; ASan reports the read).
  Bytes d = packetMessage(7, 1000);
  Bytes payload = ipv4Syn();
  payload.push_back(0);  // 41 bytes: the attribute needs 3 bytes of padding
  Bytes body;
  nfgenmsg g{};
  g.nfgen_family = NFPROTO_IPV4;
  append(body, &g, sizeof g);
  nfqnl_msg_packet_hdr ph{};
  ph.packet_id = htonl(8);
  ph.hw_protocol = htons(0x0800);
  attribute(body, NFQA_PACKET_HDR, &ph, sizeof ph);
  const std::size_t payloadAttr = body.size();
  attribute(body, NFQA_PAYLOAD, payload.data(), payload.size());
  body.resize(body.size() - 3);  // the padding is not there
  nlattr a{};
  std::memcpy(&a, body.data() + payloadAttr, sizeof a);
  a.nla_len = static_cast<std::uint16_t>(a.nla_len + 2);  // still within the aligned end
  std::memcpy(body.data() + payloadAttr, &a, sizeof a);
  nlmsghdr h{};
  h.nlmsg_len = static_cast<std::uint32_t>(NLMSG_HDRLEN + body.size());
  h.nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET;
  append(d, &h, sizeof h);
  d.insert(d.end(), body.begin(), body.end());
  d.shrink_to_fit();
  const auto packets = parse(d);
  ASSERT_EQ(packets.size(), 1U);  // the first, padded message still counts
  EXPECT_EQ(packets[0].id, 7U);
}

TEST(QueueDatagram, ShortMessagesCarryNoPacket) {
  Bytes d = packetMessage(7, 1000);
  // A header that claims only itself: no room for the nfgenmsg.
  setLength(d, NLMSG_HDRLEN);
  EXPECT_TRUE(parse(d).empty());
  // Fewer bytes than a header.
  const Bytes tiny(8, 0xff);
  EXPECT_TRUE(parse(tiny).empty());
  EXPECT_TRUE(parse(Bytes{}).empty());
}

TEST(QueueDatagram, MessagesFromUserSpaceOrErrorsAreSkipped) {
  Bytes fromPeer = packetMessage(7, 1000);
  const std::uint32_t pid = 4242;
  std::memcpy(fromPeer.data() + offsetof(nlmsghdr, nlmsg_pid), &pid, sizeof pid);
  EXPECT_TRUE(parse(fromPeer).empty());
}

TEST(NfqueueProc, ReadsTheCountersOfOneQueue) {
  // The kernel's format: "%5u %6u %5u %1u %5u %5u %5u %8u %2d\n".
  const char* good =
      "    0  12345     0 2   128     0     0        0  1\n"
      " 4025 3735928    17 2   128   931    12    50210  1\n";
  const auto c = parseNfqueueProc(good, 4025);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->waiting, 17U);
  EXPECT_EQ(c->queueDropped, 931U);
  EXPECT_EQ(c->userDropped, 12U);
  EXPECT_EQ(c->idSequence, 50210U);
  EXPECT_FALSE(parseNfqueueProc(good, 7).has_value());
  EXPECT_FALSE(parseNfqueueProc("", 4025).has_value());
  EXPECT_FALSE(parseNfqueueProc(" 4025 1 2\n", 4025).has_value());
}

// NfqueuePacketSource::receive resumes a datagram where its per-wake-up bound stopped it.
TEST(QueueDatagram, WalkStopsAtTheBoundAndResumesAtTheNextPacket) {
  Bytes datagram;
  for (std::uint32_t id = 1; id <= 5; ++id) {
    const Bytes m = packetMessage(id, 1000);
    datagram.insert(datagram.end(), m.begin(), m.end());
  }
  std::vector<std::uint32_t> ids;
  const auto collect = [&](const QueuedPacket& p) { ids.push_back(p.id); };
  std::span<const std::uint8_t> rest(datagram);

  auto walk = walkQueueDatagram(rest, 2, collect);
  EXPECT_EQ(walk.packets, 2U);
  EXPECT_EQ(walk.consumed, 2 * packetMessage(1, 1000).size());
  rest = rest.subspan(walk.consumed);
  walk = walkQueueDatagram(rest, 2, collect);
  EXPECT_EQ(walk.packets, 2U);
  rest = rest.subspan(walk.consumed);
  walk = walkQueueDatagram(rest, 2, collect);
  EXPECT_EQ(walk.packets, 1U);
  EXPECT_EQ(walk.consumed, rest.size()) << "the datagram is used up";
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 2, 3, 4, 5}));
}

TEST(QueueDatagram, WalkConsumesATrailingBrokenMessage) {
  Bytes datagram = packetMessage(1, 1000);
  Bytes broken = packetMessage(2, 1000);
  setLength(broken, 0x80000000U);
  datagram.insert(datagram.end(), broken.begin(), broken.end());
  std::size_t packets = 0;
  const auto walk = walkQueueDatagram(datagram, 10, [&](const QueuedPacket&) { ++packets; });
  EXPECT_EQ(packets, 1U);
  EXPECT_EQ(walk.consumed, datagram.size()) << "a message that does not fit is never retried";
}

TEST(FakePacketSource, DeliversAtMostTheBoundAndRecordsVerdicts) {
  FakePacketSource source;
  for (std::uint32_t id = 1; id <= 3; ++id) source.push(QueuedPacket{id, std::nullopt, 1000, 1000});
  std::vector<std::uint32_t> ids;
  auto more = source.receive([&](const QueuedPacket& p) { ids.push_back(p.id); }, 2);
  ASSERT_TRUE(more);
  EXPECT_TRUE(*more);
  EXPECT_EQ(ids, (std::vector<std::uint32_t>{1, 2}));
  more = source.receive([&](const QueuedPacket& p) { ids.push_back(p.id); }, 2);
  ASSERT_TRUE(more);
  EXPECT_FALSE(*more);
  EXPECT_EQ(source.stats().received, 3U);
  EXPECT_EQ(source.fd(), -1);

  VerdictSink& sink = source;
  EXPECT_TRUE(sink.verdict(1, PacketVerdict::RepeatWithAllow));
  source.failVerdicts = true;
  EXPECT_FALSE(sink.verdict(2, PacketVerdict::Drop));
  EXPECT_EQ(source.stats().verdictErrors, 1U);
  ASSERT_EQ(source.verdicts.size(), 1U) << "a failed verdict was not sent";
  EXPECT_EQ(source.verdicts[0], std::make_pair(std::uint32_t{1}, PacketVerdict::RepeatWithAllow));

  source.counters.waiting = 7;
  auto counters = source.kernelCounters();
  ASSERT_TRUE(counters);
  EXPECT_EQ(counters->waiting, 7U);
}

}  // namespace
}  // namespace mailguard::netfilter
