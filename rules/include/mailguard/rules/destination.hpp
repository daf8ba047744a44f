#pragma once
// Where an approval lets a program connect (`guardctl approve PATH --only-to HOST[:PORT]`).
// A queued SYN carries only an address and a port, so a destination is an address or a
// prefix, never a name: a name's addresses change (round-robin, CDN, a provider moving
// its servers), and an approval pinned to what a name resolved to once would silently
// stop matching, or match a server the name no longer means.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/firewall.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::rules {

struct Destination {
  IpPrefix prefix;         // a bare address is /32 or /128
  std::uint16_t port = 0;  // 0: any of the mail ports
  friend bool operator==(const Destination&, const Destination&) = default;
};

// Accepted forms: 192.0.2.7, 192.0.2.7:587, 192.0.2.0/24, 192.0.2.0/24:25, 2001:db8::7,
// [2001:db8::7], [2001:db8::7]:587, 2001:db8::/32, [2001:db8::/32]:25. A bare IPv6
// address never carries a port (its last group would be ambiguous): bracket it.
Result<Destination> parseDestination(std::string_view text);
// The same forms back, canonical: "192.0.2.7:587", "[2001:db8::7]:587", "192.0.2.0/24"
// (a full-length prefix is shown as the bare address).
std::string toString(const Destination& d);
// "192.0.2.7:587, 192.0.2.8" for messages.
std::string toString(const std::vector<Destination>& list);

// The connection's destination lies inside d (and its port is d's, when d names one).
bool matches(const Destination& d, const ConnectionTuple& tuple);
bool matchesAny(const std::vector<Destination>& list, const ConnectionTuple& tuple);

// The stored form: one destination a line, as toString gives it. Bad lines are an error:
// the store holds only what parseDestination accepted.
std::string encodeDestinations(const std::vector<Destination>& list);
Result<std::vector<Destination>> decodeDestinations(std::string_view text);

// `list` plus the items of `more` it does not hold yet, in order.
std::vector<Destination> mergedDestinations(std::vector<Destination> list,
                                            const std::vector<Destination>& more);

}  // namespace mailguard::rules
