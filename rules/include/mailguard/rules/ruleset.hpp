#pragma once
// The `inet mailguard` table as plain data (DESIGN.md "Kernel ruleset"). guardd's
// netfilter layer turns it into netlink messages; tests compare it with `nft list`.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/rules/firewall.hpp"
#include "mailguard/rules/settings.hpp"

namespace mailguard::rules {

// Packet marks set with the NF_REPEAT verdict; the kernel rules do the final action.
// High, odd values so they do not collide with marks used for policy routing.
inline constexpr std::uint32_t kMarkReject = 0x6d670001;
inline constexpr std::uint32_t kMarkAllow = 0x6d670002;

struct Match {
  enum class Kind {
    CtStateEstablishedRelated,  // ct state established,related
    CtStateNew,                 // ct state new
    MarkEquals,                 // meta mark == value
    MarkBitSet,                 // meta mark & value == value (value: one bit)
    TcpDportInSet,              // tcp dport @set
    IsTcp,                      // meta l4proto tcp
    // The host firewall's kinds (chain host_in):
    CtStateInvalid,    // ct state invalid
    IifnameEquals,     // iifname "text"
    L4ProtoEquals,     // meta l4proto value (IPPROTO_UDP = 17, ...)
    IcmpTypeEquals,    // icmp type value (implies meta nfproto ipv4 meta l4proto icmp)
    Icmpv6TypeEquals,  // icmpv6 type value (implies meta nfproto ipv6 meta l4proto ipv6-icmp)
    TcpDportEquals,    // tcp dport value
    UdpDportEquals,    // udp dport value
    UdpSportEquals,    // udp sport value
    UdpDportInSet,     // udp dport @set
    Ip4SaddrInSet,     // ip saddr @set (an AddressSet of family 4)
    Ip6SaddrInSet,     // ip6 saddr @set (an AddressSet of family 6)
    LimitRate,         // limit rate value/second burst `burst` packets
  };
  Kind kind;
  std::uint32_t value = 0;
  std::string set;
  std::string text{};       // IifnameEquals
  std::uint32_t burst = 0;  // LimitRate
};

struct Action {
  // Log is not a verdict: `log prefix "..." group N`, then the next rule. Continue is no
  // action at all: the rule's statements (counter, ct event set), then the next rule.
  enum class Kind { Accept, Drop, RejectTcpReset, Queue, Log, Continue };
  Kind kind;
  std::uint16_t queueNumber = 0;
  std::uint16_t logGroup = 0;  // Log: the NFLOG group
  std::string logPrefix{};     // Log
};

struct Rule {
  std::vector<Match> matches;
  Action action;
  bool counter = true;
  // `ct event set MASK` (after the counter, before the action): the conntrack events the
  // kernel may report about this packet's connection (nf_conntrack_ecache's ctmask, bits
  // 1 << enum ip_conntrack_events; 0: none). Effective while the connection is still
  // unconfirmed, i.e. on its first packet in the hook it first passes.
  std::optional<std::uint32_t> ctEventMask{};
};

enum class Hook { Output, Input, Prerouting };

struct Chain {
  std::string name;
  Hook hook;
  int priority;  // 0 = filter
  bool policyDrop = false;
  std::vector<Rule> rules;
};

struct PortSet {
  std::string name;  // key type inet_service
  std::vector<std::uint16_t> ports;
};

// `set NAME { type ipv4_addr|ipv6_addr; flags interval; elements = { ... } }`
struct AddressSet {
  std::string name;
  int family = 4;  // 4 or 6
  std::vector<IpPrefix> prefixes;
};

struct Table {
  std::string name;  // family is always inet
  std::vector<PortSet> sets;
  std::vector<AddressSet> addressSets;  // created after `sets`
  std::vector<Chain> chains;
};

inline constexpr const char* kTableName = "mailguard";

// The table guardd installs for these settings:
//   set mail_ports { type inet_service; elements = { 25, 465, 587, 2525 } }
//   chain mail_out { type filter hook output priority filter; policy accept;
//     ct state established,related counter accept
//     meta mark & B == B counter ct event set 0x0 accept   (only when acceptMarkBit B != 0)
//     meta mark 0x6d670001 meta l4proto tcp counter reject with tcp reset
//     meta mark 0x6d670002 counter accept
//     meta l4proto tcp ct state new tcp dport @mail_ports counter queue num N
//     ct state new counter ct event set 0x0 }
// `ct event set 0x0` silences conntrack's events about a connection: guardd listens to
// them (UPDATE and DESTROY) only for the outcomes of the mail connections it let through
// the queue, and every other connection would wake it several times (see
// kConntrackEventsOff in ruleset.cpp).
// acceptMarkBit is the socket-mark bit guardd's BPF connect hook ORs into the mark of a
// socket whose caller it approved at connect() time; 0 (the /proc attribution path)
// leaves the rule out. The rule tests that bit only, so other bits set by VPNs or
// policy routing do not matter. With the host firewall enabled, sets fw_tcp, fw_udp (allowed from
// anywhere), fw_local_tcp, fw_local_udp (allowed from the local subnets), fw_local_v4, fw_local_v6
// (the local subnets) and chain host_in follow; see hostInRules() in ruleset.cpp for the
// rules. With it disabled (the default) the table is exactly the one above.
Table buildRuleset(const Settings& settings, const std::string& tableName = kTableName,
                   const FirewallState& firewall = FirewallState{},
                   std::uint32_t acceptMarkBit = 0);

// The table as `nft -s list table inet NAME` prints it (stateless: counters without
// values), for documentation, logs and tests. Checked against nft 1.0.6 for the
// buildRuleset() table; the queue rule shows as nft prints the native `queue`
// expression, not the xtables-compat warning lines.
std::string toNftText(const Table& table);

}  // namespace mailguard::rules
