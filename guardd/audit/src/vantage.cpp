// Where the LAN probe comes from: the subnets and the address borrowed in each.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "mailguard/audit/relay.hpp"

namespace mailguard::audit {
namespace {

constexpr std::uint64_t kMaxCandidates = 4096;

std::string textOf(int family, const std::array<std::uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(family, a.data(), buf, sizeof buf) == nullptr) return {};
  return buf;
}

bool isLinkLocal(int family, const std::array<std::uint8_t, 16>& a) {
  if (family == AF_INET) return a[0] == 169 && a[1] == 254;
  return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

bool isLoopbackAddress(int family, const std::array<std::uint8_t, 16>& a) {
  if (family == AF_INET) return a[0] == 127;
  static const std::array<std::uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                       0, 0, 0, 0, 0, 0, 0, 1};
  return a == kLoopback6;
}

// The address with its low `bits` (at most 32) host bits replaced by `offset`.
std::array<std::uint8_t, 16> withLowBits(std::array<std::uint8_t, 16> a, std::size_t length,
                                         int bits, std::uint64_t offset) {
  for (int i = 0; i < bits; i += 8) {
    const std::size_t byte = length - 1 - static_cast<std::size_t>(i / 8);
    const int width = std::min(8, bits - i);
    const auto mask = static_cast<std::uint8_t>((1U << width) - 1U);
    const auto value = static_cast<std::uint8_t>((offset >> i) & mask);
    a[byte] = static_cast<std::uint8_t>((a[byte] & ~mask) | value);
  }
  return a;
}

std::uint64_t lowBits(const std::array<std::uint8_t, 16>& a, std::size_t length, int bits) {
  std::uint64_t v = 0;
  for (int i = 0; i < bits; i += 8) {
    const std::size_t byte = length - 1 - static_cast<std::size_t>(i / 8);
    const int width = std::min(8, bits - i);
    v |= static_cast<std::uint64_t>(a[byte] & ((1U << width) - 1U)) << i;
  }
  return v;
}

std::optional<LanSubnet> subnetOf(const InterfaceAddress& ia, const std::set<std::string>& inUse,
                                  const std::set<std::string>& ownAddresses) {
  const std::size_t length = ia.family == AF_INET ? 4 : 16;
  const int total = static_cast<int>(length * 8);
  // /31 and /32 (RFC 3021 point-to-point, the audit's own veth), /127 and /128: no other
  // host lives there.
  if (ia.prefixLength < 1 || ia.prefixLength >= total - 1) return std::nullopt;
  std::array<std::uint8_t, 16> network = ia.address;
  for (int bit = ia.prefixLength; bit < total; ++bit) {
    network[static_cast<std::size_t>(bit / 8)] &= static_cast<std::uint8_t>(~(0x80U >> (bit % 8)));
  }
  LanSubnet s;
  s.family = ia.family;
  s.cidr = textOf(ia.family, network) + "/" + std::to_string(ia.prefixLength);
  s.hostAddress = textOf(ia.family, ia.address);
  const int bits = std::min(total - ia.prefixLength, 32);
  const std::uint64_t size = std::uint64_t{1} << bits;
  const std::uint64_t own = lowBits(ia.address, length, bits);
  // Only the low 32 host bits vary; for IPv4 the all-ones one is the broadcast address.
  const bool allOnesIsBroadcast = ia.family == AF_INET;
  for (std::uint64_t i = 1; i < size && i <= kMaxCandidates; ++i) {
    const std::uint64_t offset = (own + i) % size;
    if (offset == 0 || (allOnesIsBroadcast && offset == size - 1)) continue;
    std::string candidate = textOf(ia.family, withLowBits(ia.address, length, bits, offset));
    if (inUse.contains(candidate) || ownAddresses.contains(candidate)) continue;
    s.probeAddress = std::move(candidate);
    return s;
  }
  return std::nullopt;
}

}  // namespace

std::vector<LanSubnet> lanSubnets(const std::vector<InterfaceAddress>& addresses,
                                  const std::set<std::string>& inUse, std::size_t max) {
  std::set<std::string> own;
  for (const auto& ia : addresses) own.insert(textOf(ia.family, ia.address));
  std::vector<LanSubnet> wide;
  std::vector<LanSubnet> linkLocal;
  std::set<std::string> seen;
  for (const auto& ia : addresses) {
    if (ia.family != AF_INET && ia.family != AF_INET6) continue;
    if (ia.loopback || isLoopbackAddress(ia.family, ia.address)) continue;
    // The audit's own probe veth ("mgph..."): a stranger's link, not a LAN.
    if (ia.interface.rfind("mgph", 0) == 0) continue;
    // IPv6 link-local addresses need a scope id on every socket and route: not probed
    // (a LAN that has nothing else has IPv4).
    if (ia.family == AF_INET6 && isLinkLocal(ia.family, ia.address)) continue;
    auto s = subnetOf(ia, inUse, own);
    if (!s || !seen.insert(s->cidr).second) continue;
    (isLinkLocal(ia.family, ia.address) ? linkLocal : wide).push_back(std::move(*s));
  }
  std::vector<LanSubnet> out = wide.empty() ? std::move(linkLocal) : std::move(wide);
  if (out.size() > max) out.resize(max);
  return out;
}

}  // namespace mailguard::audit
