// Conntrack event datagrams (the detector's connection outcomes): the kernel frames
// them, but a parser bug here reads past the datagram on every connection.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mailguard/netfilter/conntrack.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::size_t seen = 0;
  const auto events = mailguard::netfilter::parseConntrackEvents(
      std::span(data, size), [&](const mailguard::netfilter::ConntrackEvent& e) {
        ++seen;
        if (e.tuple.family != 2 && e.tuple.family != 10) std::abort();  // AF_INET, AF_INET6
      });
  if (events != seen) std::abort();
  // At most two events (an outcome, then Closed) per message of at least a 16-byte
  // header and a 4-byte nfgenmsg.
  if (events > 2 * (size / 20)) std::abort();
  return 0;
}
