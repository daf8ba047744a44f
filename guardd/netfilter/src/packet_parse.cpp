// parseTcpTuple: IPv4/IPv6 header walk down to the TCP ports. Pure and bounds-checked
// (fuzzed): every read goes through `at()` against the span's size.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <string_view>

#include "mailguard/netfilter/packet_source.hpp"

namespace mailguard::netfilter {
namespace {

constexpr std::uint8_t kProtoTcp = 6;
constexpr std::uint8_t kProtoHopByHop = 0;
constexpr std::uint8_t kProtoRouting = 43;
constexpr std::uint8_t kProtoFragment = 44;
constexpr std::uint8_t kProtoAh = 51;
constexpr std::uint8_t kProtoDestOpts = 60;
constexpr std::size_t kIpv4MinHeader = 20;
constexpr std::size_t kIpv6Header = 40;
constexpr std::size_t kTcpPortBytes = 4;  // source and destination port: all we read
// More extension headers than this is not a packet any stack we serve sends.
constexpr int kMaxIpv6ExtensionHeaders = 16;

std::uint16_t readBe16(std::span<const std::uint8_t> p, std::size_t off) {
  return static_cast<std::uint16_t>((p[off] << 8) | p[off + 1]);
}

// Fills the ports from the TCP header at `off`; nullopt when it is cut short.
std::optional<rules::ConnectionTuple> withPorts(rules::ConnectionTuple t,
                                                std::span<const std::uint8_t> p, std::size_t off) {
  if (off > p.size() || p.size() - off < kTcpPortBytes) return std::nullopt;
  t.srcPort = readBe16(p, off);
  t.dstPort = readBe16(p, off + 2);
  return t;
}

std::optional<rules::ConnectionTuple> parseIpv4(std::span<const std::uint8_t> p) {
  if (p.size() < kIpv4MinHeader || (p[0] >> 4) != 4) return std::nullopt;
  const std::size_t headerLen = static_cast<std::size_t>(p[0] & 0x0f) * 4;
  if (headerLen < kIpv4MinHeader || headerLen > p.size()) return std::nullopt;
  if (p[9] != kProtoTcp) return std::nullopt;
  // A non-first fragment carries no TCP header (fragment offset in 8-byte units).
  if ((readBe16(p, 6) & 0x1fff) != 0) return std::nullopt;
  rules::ConnectionTuple t;
  t.family = AF_INET;
  for (std::size_t i = 0; i < 4; ++i) {
    t.src[i] = p[12 + i];
    t.dst[i] = p[16 + i];
  }
  return withPorts(t, p, headerLen);
}

std::optional<rules::ConnectionTuple> parseIpv6(std::span<const std::uint8_t> p) {
  if (p.size() < kIpv6Header || (p[0] >> 4) != 6) return std::nullopt;
  rules::ConnectionTuple t;
  t.family = AF_INET6;
  for (std::size_t i = 0; i < 16; ++i) {
    t.src[i] = p[8 + i];
    t.dst[i] = p[24 + i];
  }
  std::uint8_t next = p[6];
  std::size_t off = kIpv6Header;
  for (int i = 0; i < kMaxIpv6ExtensionHeaders; ++i) {
    if (next == kProtoTcp) return withPorts(t, p, off);
    // Every extension header starts with next-header and a length byte.
    if (off > p.size() || p.size() - off < 2) return std::nullopt;
    std::size_t len = 0;
    switch (next) {
      case kProtoHopByHop:
      case kProtoRouting:
      case kProtoDestOpts:
        len = (static_cast<std::size_t>(p[off + 1]) + 1) * 8;  // RFC 8200 4.3: 8-octet units
        break;
      case kProtoFragment:
        if (p.size() - off < 8) return std::nullopt;
        // Only the first fragment (offset 0) holds the TCP header.
        if ((readBe16(p, off + 2) & 0xfff8) != 0) return std::nullopt;
        len = 8;
        break;
      case kProtoAh:
        len = (static_cast<std::size_t>(p[off + 1]) + 2) * 4;  // RFC 4302: 4-octet units
        break;
      default:
        return std::nullopt;  // no next header (59), ESP, UDP, ICMPv6, ...
    }
    if (p.size() - off < len) return std::nullopt;
    next = p[off];
    off += len;
  }
  return std::nullopt;
}

}  // namespace

std::optional<rules::ConnectionTuple> parseTcpTuple(int family,
                                                    std::span<const std::uint8_t> packet) {
  switch (family) {
    case AF_INET:
      return parseIpv4(packet);
    case AF_INET6:
      return parseIpv6(packet);
    default:
      return std::nullopt;
  }
}

std::optional<KernelQueueCounters> parseNfqueueProc(std::string_view text, std::uint16_t queue) {
  // One line per queue (net/netfilter/nfnetlink_queue.c, seq_show): queue_number
  // peer_portid queue_total copy_mode copy_range queue_dropped queue_user_dropped
  // id_sequence 1.
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream fields(line);
    std::uint32_t number = 0, portId = 0, mode = 0, range = 0, one = 0;
    KernelQueueCounters c;
    if (!(fields >> number >> portId >> c.waiting >> mode >> range >> c.queueDropped >>
          c.userDropped >> c.idSequence >> one)) {
      continue;
    }
    if (number == queue) return c;
  }
  return std::nullopt;
}

}  // namespace mailguard::netfilter
