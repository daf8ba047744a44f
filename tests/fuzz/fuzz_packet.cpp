// parseTcpTuple sees the first bytes of every queued packet; a local program chooses
// them (raw sockets need CAP_NET_RAW, but IPv6 extension headers do not). The same
// input is read as IPv4, IPv6 and an unknown family.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mailguard/netfilter/packet_source.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> packet(data, size);
  if (const auto t = mailguard::netfilter::parseTcpTuple(AF_INET, packet)) {
    // IPv4: version 4, a full header, and the addresses where RFC 791 puts them.
    if (t->family != AF_INET || size < 24 || (data[0] >> 4) != 4) std::abort();
    for (std::size_t i = 0; i < 4; ++i) {
      if (t->src[i] != data[12 + i] || t->dst[i] != data[16 + i]) std::abort();
    }
  }
  if (const auto t = mailguard::netfilter::parseTcpTuple(AF_INET6, packet)) {
    if (t->family != AF_INET6 || size < 44 || (data[0] >> 4) != 6) std::abort();
    for (std::size_t i = 0; i < 16; ++i) {
      if (t->src[i] != data[8 + i] || t->dst[i] != data[24 + i]) std::abort();
    }
  }
  if (mailguard::netfilter::parseTcpTuple(AF_UNIX, packet)) std::abort();
  return 0;
}
