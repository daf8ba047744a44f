#include "mailguard/rules/ruleset.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>

namespace mailguard::rules {
namespace {

Match match(Match::Kind kind, std::uint32_t value = 0, std::string set = {}) {
  return Match{kind, value, std::move(set)};
}

Rule rule(std::vector<Match> matches, Action::Kind action, std::uint16_t queueNumber = 0) {
  return Rule{std::move(matches), Action{action, queueNumber}, true};
}

// nft's names for the ICMP and ICMPv6 types host_in uses (src/proto.c, icmp6.c).
std::string icmpTypeName(std::uint32_t type) {
  switch (type) {
    case 0:
      return "echo-reply";
    case 3:
      return "destination-unreachable";
    case 8:
      return "echo-request";
    case 11:
      return "time-exceeded";
    case 12:
      return "parameter-problem";
    default:
      return std::to_string(type);
  }
}

std::string icmpv6TypeName(std::uint32_t type) {
  switch (type) {
    case 1:
      return "destination-unreachable";
    case 2:
      return "packet-too-big";
    case 3:
      return "time-exceeded";
    case 4:
      return "parameter-problem";
    case 128:
      return "echo-request";
    case 129:
      return "echo-reply";
    case 130:
      return "mld-listener-query";
    case 131:
      return "mld-listener-report";
    case 132:
      return "mld-listener-done";
    case 133:
      return "nd-router-solicit";
    case 134:
      return "nd-router-advert";
    case 135:
      return "nd-neighbor-solicit";
    case 136:
      return "nd-neighbor-advert";
    case 143:
      return "mld2-listener-report";
    default:
      return std::to_string(type);
  }
}

std::string l4protoName(std::uint32_t proto) {
  switch (proto) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    case IPPROTO_ICMP:
      return "icmp";
    case IPPROTO_ICMPV6:
      return "ipv6-icmp";
    default:
      return std::to_string(proto);
  }
}

std::string renderMatch(const Match& m) {
  switch (m.kind) {
    case Match::Kind::CtStateEstablishedRelated:
      return "ct state established,related";
    case Match::Kind::CtStateNew:
      return "ct state new";
    case Match::Kind::MarkEquals: {
      char buf[32];
      (void)std::snprintf(buf, sizeof buf, "meta mark 0x%08x", m.value);
      return buf;
    }
    case Match::Kind::MarkBitSet: {
      char buf[48];
      (void)std::snprintf(buf, sizeof buf, "meta mark & 0x%08x == 0x%08x", m.value, m.value);
      return buf;
    }
    case Match::Kind::TcpDportInSet:
      return "tcp dport @" + m.set;
    case Match::Kind::IsTcp:
      return "meta l4proto tcp";
    case Match::Kind::CtStateInvalid:
      return "ct state invalid";
    case Match::Kind::IifnameEquals:
      return "iifname \"" + m.text + "\"";
    case Match::Kind::L4ProtoEquals:
      return "meta l4proto " + l4protoName(m.value);
    case Match::Kind::IcmpTypeEquals:
      return "icmp type " + icmpTypeName(m.value);
    case Match::Kind::Icmpv6TypeEquals:
      return "icmpv6 type " + icmpv6TypeName(m.value);
    case Match::Kind::TcpDportEquals:
      return "tcp dport " + std::to_string(m.value);
    case Match::Kind::UdpDportEquals:
      return "udp dport " + std::to_string(m.value);
    case Match::Kind::UdpSportEquals:
      return "udp sport " + std::to_string(m.value);
    case Match::Kind::UdpDportInSet:
      return "udp dport @" + m.set;
    case Match::Kind::Ip4SaddrInSet:
      return "ip saddr @" + m.set;
    case Match::Kind::Ip6SaddrInSet:
      return "ip6 saddr @" + m.set;
    case Match::Kind::LimitRate:
      return "limit rate " + std::to_string(m.value) + "/second burst " + std::to_string(m.burst) +
             " packets";
  }
  return "?";
}

// Whether nft's dependency elimination hides `meta l4proto X` in this rule: a later
// match on a header of that protocol implies it.
bool impliesL4proto(const Match& m) {
  switch (m.kind) {
    case Match::Kind::TcpDportInSet:
    case Match::Kind::TcpDportEquals:
    case Match::Kind::UdpDportEquals:
    case Match::Kind::UdpSportEquals:
    case Match::Kind::UdpDportInSet:
    case Match::Kind::IcmpTypeEquals:
    case Match::Kind::Icmpv6TypeEquals:
      return true;
    default:
      return false;
  }
}

std::string addressText(int family, const std::array<std::uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  (void)::inet_ntop(family == 4 ? AF_INET : AF_INET6, a.data(), buf, sizeof buf);
  return buf;
}

// A range as nft lists an interval: "10.0.0.0/8" when it is a prefix, a bare address
// for a single one, "a-b" otherwise.
std::string rangeText(int family, const AddressRange& r) {
  const unsigned bits = family == 4 ? 32 : 128;
  const std::string first = addressText(family, r.first);
  for (unsigned length = 0; length <= bits; ++length) {
    // parsePrefix clears the host bits: the range is this prefix when that changes
    // nothing and the prefix ends where the range does.
    const auto p = parsePrefix(first + "/" + std::to_string(length));
    if (!p || p->addr != r.first) continue;
    if (mergedRanges({*p}, family).at(0).last != r.last) continue;
    return length == bits ? first : first + "/" + std::to_string(length);
  }
  return first + "-" + addressText(family, r.last);
}

std::string renderAction(const Action& a) {
  switch (a.kind) {
    case Action::Kind::Accept:
      return "accept";
    case Action::Kind::Drop:
      return "drop";
    case Action::Kind::RejectTcpReset:
      return "reject with tcp reset";
    case Action::Kind::Queue:
      return "queue num " + std::to_string(a.queueNumber);
    case Action::Kind::Log:
      return "log prefix \"" + a.logPrefix + "\" group " + std::to_string(a.logGroup);
    case Action::Kind::Continue:
      return "";
  }
  return "?";
}

std::string renderPriority(int priority) {
  // nft names priority 0 of the filter type "filter" and shows others relative to it.
  if (priority == 0) return "filter";
  if (priority > 0) return "filter + " + std::to_string(priority);
  return "filter - " + std::to_string(-priority);
}

// `ct event set 0x0`: no conntrack event (NEW, UPDATE, DESTROY...) is reported about
// the connection. The kernel applies it to a connection not yet confirmed, i.e. on its
// first packet in this hook (nft_ct_set_eval, NFT_CT_EVENTMASK), before NEW is sent.
constexpr std::uint32_t kConntrackEventsOff = 0;

Match portMatch(Match::Kind kind, std::uint32_t port) { return match(kind, port); }

const char* hookName(Hook hook) {
  switch (hook) {
    case Hook::Output:
      return "output";
    case Hook::Input:
      return "input";
    case Hook::Prerouting:
      return "prerouting";
  }
  return "output";
}

Rule icmpRule(Match::Kind kind, std::uint32_t type) {
  return rule({match(kind, type)}, Action::Kind::Accept);
}

std::vector<std::uint16_t> portsOf(const FirewallState& fw, Protocol protocol, bool localOnly) {
  std::vector<std::uint16_t> ports;
  for (const AllowedService& s : fw.services) {
    if (s.localOnly != localOnly) continue;
    for (const ServicePort& p : s.ports) {
      if (p.protocol == protocol) ports.push_back(p.port);
    }
  }
  std::sort(ports.begin(), ports.end());
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
  return ports;
}

// chain host_in { type filter hook input priority filter; policy drop;
//   iifname "lo" counter accept
//   ct state established,related counter accept
//   ct state invalid counter drop
//   icmp type echo-request limit rate 10/second burst 20 packets counter accept  (allowPing)
//   icmp type destination-unreachable|time-exceeded|parameter-problem counter accept
//   icmpv6 type <errors, echo-request (limited), MLD, nd-*> counter accept
//   udp sport 547 udp dport 546 counter accept          (DHCPv6 replies)
//   tcp dport @fw_tcp counter accept
//   udp dport @fw_udp counter accept
//   ip saddr @fw_local_v4 tcp dport @fw_local_tcp counter accept  (and ip6, and udp)
//   tcp dport @mail_ports ct state new limit rate R/second burst B packets counter
//       log prefix "mailguard-probe " group G }
Chain hostIn(const FirewallState& fw) {
  using K = Match::Kind;
  using A = Action::Kind;
  Chain in{"host_in", Hook::Input, 0, true, {}};
  Match lo = match(K::IifnameEquals);
  lo.text = "lo";
  in.rules.push_back(rule({lo}, A::Accept));
  in.rules.push_back(rule({match(K::CtStateEstablishedRelated)}, A::Accept));
  in.rules.push_back(rule({match(K::CtStateInvalid)}, A::Drop));

  Match pingLimit = match(K::LimitRate, fw.pingRatePerSecond);
  pingLimit.burst = 2 * fw.pingRatePerSecond;
  if (fw.allowPing) in.rules.push_back(rule({match(K::IcmpTypeEquals, 8), pingLimit}, A::Accept));
  // Errors that belong to a connection are "related" already; these keep path MTU
  // discovery and traceroute working for the rest.
  for (const std::uint32_t type : {3U, 11U, 12U})
    in.rules.push_back(icmpRule(K::IcmpTypeEquals, type));
  for (const std::uint32_t type : {1U, 2U, 3U, 4U}) {
    in.rules.push_back(icmpRule(K::Icmpv6TypeEquals, type));
  }
  if (fw.allowPing) {
    in.rules.push_back(rule({match(K::Icmpv6TypeEquals, 128), pingLimit}, A::Accept));
  }
  // Without neighbour discovery, router adverts and MLD, IPv6 stops working at all
  // (RFC 4890 section 4.4.1).
  for (const std::uint32_t type : {130U, 131U, 132U, 143U, 134U, 135U, 136U}) {
    in.rules.push_back(icmpRule(K::Icmpv6TypeEquals, type));
  }
  in.rules.push_back(rule({match(K::L4ProtoEquals, IPPROTO_UDP), portMatch(K::UdpSportEquals, 547),
                           portMatch(K::UdpDportEquals, 546)},
                          A::Accept));

  in.rules.push_back(rule({match(K::IsTcp), match(K::TcpDportInSet, 0, "fw_tcp")}, A::Accept));
  in.rules.push_back(rule(
      {match(K::L4ProtoEquals, IPPROTO_UDP), match(K::UdpDportInSet, 0, "fw_udp")}, A::Accept));
  for (const auto& [saddr, set] :
       {std::pair{K::Ip4SaddrInSet, "fw_local_v4"}, std::pair{K::Ip6SaddrInSet, "fw_local_v6"}}) {
    in.rules.push_back(
        rule({match(saddr, 0, set), match(K::IsTcp), match(K::TcpDportInSet, 0, "fw_local_tcp")},
             A::Accept));
    in.rules.push_back(rule({match(saddr, 0, set), match(K::L4ProtoEquals, IPPROTO_UDP),
                             match(K::UdpDportInSet, 0, "fw_local_udp")},
                            A::Accept));
  }

  // Probes: what reaches this rule is about to be dropped by the policy.
  Match probeLimit = match(K::LimitRate, fw.probeLogRatePerSecond);
  probeLimit.burst = fw.probeLogBurst;
  Rule probe = rule(
      {match(K::IsTcp), match(K::TcpDportInSet, 0, "mail_ports"), match(K::CtStateNew), probeLimit},
      A::Log);
  probe.action.logGroup = fw.probeLogGroup;
  probe.action.logPrefix = kProbeLogPrefix;
  in.rules.push_back(std::move(probe));
  return in;
}

}  // namespace

Table buildRuleset(const Settings& settings, const std::string& tableName,
                   const FirewallState& firewall, std::uint32_t acceptMarkBit) {
  std::vector<std::uint16_t> ports = settings.mailPorts;
  std::sort(ports.begin(), ports.end());
  // Settings from a file have no duplicates, but one element twice in a set makes the
  // kernel refuse the whole batch (EEXIST).
  ports.erase(std::unique(ports.begin(), ports.end()), ports.end());

  using K = Match::Kind;
  using A = Action::Kind;
  Chain mailOut{"mail_out", Hook::Output, 0, false, {}};
  // Established traffic first: only the first packet of a connection pays for the rest.
  mailOut.rules.push_back(rule({match(K::CtStateEstablishedRelated)}, A::Accept));
  // The BPF connect hook decided this socket's caller at connect() time: its SYN needs
  // no queue round trip, and meets no other rule first. The verdict marks below never
  // carry the bit (settings refuse such a bit), so a packet guardd re-queued is never
  // taken for a kernel-approved one. guardd does not follow the outcome of a connect the
  // kernel decided (its event has no source port to find the connection by), so
  // conntrack's events about it would only wake guardd for nothing.
  if (acceptMarkBit != 0) {
    Rule approved = rule({match(K::MarkBitSet, acceptMarkBit)}, A::Accept);
    approved.ctEventMask = kConntrackEventsOff;
    mailOut.rules.push_back(std::move(approved));
  }
  // guardd re-queues (NF_REPEAT) with one of these marks; the kernel does the action.
  mailOut.rules.push_back(
      rule({match(K::MarkEquals, kMarkReject), match(K::IsTcp)}, A::RejectTcpReset));
  mailOut.rules.push_back(rule({match(K::MarkEquals, kMarkAllow)}, A::Accept));
  // No "bypass" flag on the queue: without a listener the packet is dropped (fail-closed).
  mailOut.rules.push_back(
      rule({match(K::IsTcp), match(K::CtStateNew), match(K::TcpDportInSet, 0, "mail_ports")},
           A::Queue, settings.queueNumber));
  // What gets here is no mail connection (each of those ended at a verdict above): its
  // conntrack events, several per TCP connection and two per DNS query, are of no use to
  // guardd, whose event socket would otherwise wake for every connection of the host.
  // The mask is the connection's, so other listeners (`conntrack -E`, conntrackd) miss
  // them too; only this host's outgoing connections are concerned.
  Rule quiet = rule({match(K::CtStateNew)}, A::Continue);
  quiet.ctEventMask = kConntrackEventsOff;
  mailOut.rules.push_back(quiet);
  // The same for connections that come in or pass through (a torrent client's peers,
  // containers), before conntrack confirms them. Not on loopback: a local connection's
  // packet comes back in on lo carrying the connection mail_out saw, whose events guardd
  // may follow, and the kernel sets the mask of a confirmed connection too.
  Chain quietIn{"quiet_in", Hook::Prerouting, 0, false, {}};
  Match lo = match(K::IifnameEquals);
  lo.text = "lo";
  quietIn.rules.push_back(rule({lo}, A::Accept));
  quietIn.rules.push_back(std::move(quiet));

  Table table;
  table.name = tableName;
  table.sets.push_back(PortSet{"mail_ports", std::move(ports)});
  table.chains.push_back(std::move(mailOut));
  table.chains.push_back(std::move(quietIn));
  if (!firewall.enabled) return table;

  table.sets.push_back(PortSet{"fw_tcp", portsOf(firewall, Protocol::Tcp, false)});
  table.sets.push_back(PortSet{"fw_udp", portsOf(firewall, Protocol::Udp, false)});
  table.sets.push_back(PortSet{"fw_local_tcp", portsOf(firewall, Protocol::Tcp, true)});
  table.sets.push_back(PortSet{"fw_local_udp", portsOf(firewall, Protocol::Udp, true)});
  for (const int family : {4, 6}) {
    AddressSet set{family == 4 ? "fw_local_v4" : "fw_local_v6", family, {}};
    for (const IpPrefix& p : firewall.localSubnets) {
      if (p.family == family) set.prefixes.push_back(p);
    }
    table.addressSets.push_back(std::move(set));
  }
  table.chains.push_back(hostIn(firewall));
  return table;
}

std::string toNftText(const Table& table) {
  std::string out = "table inet " + table.name + " {\n";
  bool first = true;
  auto separate = [&out, &first] {
    if (!first) out += "\n";
    first = false;
  };
  for (const PortSet& set : table.sets) {
    separate();
    out += "\tset " + set.name + " {\n\t\ttype inet_service\n";
    if (!set.ports.empty()) {
      out += "\t\telements = { ";
      for (std::size_t i = 0; i < set.ports.size(); ++i) {
        if (i > 0) out += ", ";
        out += std::to_string(set.ports[i]);
      }
      out += " }\n";
    }
    out += "\t}\n";
  }
  for (const AddressSet& set : table.addressSets) {
    separate();
    out += "\tset " + set.name + " {\n\t\ttype " + (set.family == 4 ? "ipv4_addr" : "ipv6_addr") +
           "\n\t\tflags interval\n";
    const auto ranges = mergedRanges(set.prefixes, set.family);
    if (!ranges.empty()) {
      out += "\t\telements = { ";
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        if (i > 0) out += ", ";
        out += rangeText(set.family, ranges[i]);
      }
      out += " }\n";
    }
    out += "\t}\n";
  }
  for (const Chain& chain : table.chains) {
    separate();
    out += "\tchain " + chain.name + " {\n";
    out += "\t\ttype filter hook " + std::string(hookName(chain.hook)) + " priority " +
           renderPriority(chain.priority) + "; policy " + (chain.policyDrop ? "drop" : "accept") +
           ";\n";
    for (const Rule& r : chain.rules) {
      out += "\t\t";
      // nft lists "tcp dport" without the "meta l4proto tcp" it implies (its
      // dependency elimination), so leave it out in the same place.
      const bool hasTcpPort = std::any_of(r.matches.begin(), r.matches.end(), impliesL4proto);
      for (const Match& m : r.matches) {
        if ((m.kind == Match::Kind::IsTcp || m.kind == Match::Kind::L4ProtoEquals) && hasTcpPort) {
          continue;
        }
        out += renderMatch(m) + " ";
      }
      if (r.counter) out += "counter ";
      if (r.ctEventMask) {
        char buf[32];
        (void)std::snprintf(buf, sizeof buf, "ct event set 0x%x ", *r.ctEventMask);
        out += buf;
      }
      out += renderAction(r.action);
      // nft ends a rule of statements only with its last statement, not a blank.
      if (!out.empty() && out.back() == ' ') out.pop_back();
      out += "\n";
    }
    out += "\t}\n";
  }
  out += "}\n";
  return out;
}

}  // namespace mailguard::rules
