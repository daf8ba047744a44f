// NFLOG datagrams of host_in's probe rule: the netlink framing comes from the kernel,
// but the logged packet comes from whoever probed a mail port from the network.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mailguard/firewall/probe_log.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto events = mailguard::firewall::parseNflogDatagram(std::span(data, size));
  // Each event needs its own netlink message of at least 16 + 4 + 20 bytes.
  if (events.size() > size / 40) std::abort();
  for (const auto& e : events) {
    if (e.family != AF_INET && e.family != AF_INET6) std::abort();
    if (e.sourceAddress().empty()) std::abort();
  }
  return 0;
}
