// nf_tables change notifications (guardd's ruleset monitor): the framing comes from the
// kernel, but table, chain and process names come from whoever changed the ruleset.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "mailguard/netfilter/ruleset_monitor.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto events = mailguard::netfilter::parseRulesetEvents(std::span(data, size));
  // Each event needs its own netlink message: a 16-byte header and a 4-byte nfgenmsg.
  if (events.size() > size / 20) std::abort();
  for (const auto& e : events) {
    const auto text = e.describe();
    for (const char c : text) {
      if (static_cast<unsigned char>(c) < 0x20) std::abort();  // would forge log lines
    }
    if (e.touches("mailguard") && e.table != "mailguard") std::abort();
  }
  return 0;
}
