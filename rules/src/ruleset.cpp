#include "mailguard/rules/ruleset.hpp"

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
    case Match::Kind::TcpDportInSet:
      return "tcp dport @" + m.set;
    case Match::Kind::IsTcp:
      return "meta l4proto tcp";
  }
  return "?";
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
  }
  return "?";
}

std::string renderPriority(int priority) {
  // nft names priority 0 of the filter type "filter" and shows others relative to it.
  if (priority == 0) return "filter";
  if (priority > 0) return "filter + " + std::to_string(priority);
  return "filter - " + std::to_string(-priority);
}

}  // namespace

Table buildRuleset(const Settings& settings, const std::string& tableName) {
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
  // guardd re-queues (NF_REPEAT) with one of these marks; the kernel does the action.
  mailOut.rules.push_back(
      rule({match(K::MarkEquals, kMarkReject), match(K::IsTcp)}, A::RejectTcpReset));
  mailOut.rules.push_back(rule({match(K::MarkEquals, kMarkAllow)}, A::Accept));
  // No "bypass" flag on the queue: without a listener the packet is dropped (fail-closed).
  mailOut.rules.push_back(
      rule({match(K::IsTcp), match(K::CtStateNew), match(K::TcpDportInSet, 0, "mail_ports")},
           A::Queue, settings.queueNumber));

  Table table;
  table.name = tableName;
  table.sets.push_back(PortSet{"mail_ports", std::move(ports)});
  table.chains.push_back(std::move(mailOut));
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
  for (const Chain& chain : table.chains) {
    separate();
    out += "\tchain " + chain.name + " {\n";
    out += "\t\ttype filter hook " + std::string(chain.hook == Hook::Output ? "output" : "input") +
           " priority " + renderPriority(chain.priority) + "; policy " +
           (chain.policyDrop ? "drop" : "accept") + ";\n";
    for (const Rule& r : chain.rules) {
      out += "\t\t";
      // nft lists "tcp dport" without the "meta l4proto tcp" it implies (its
      // dependency elimination), so leave it out in the same place.
      const bool hasTcpPort = std::any_of(r.matches.begin(), r.matches.end(), [](const Match& m) {
        return m.kind == Match::Kind::TcpDportInSet;
      });
      for (const Match& m : r.matches) {
        if (m.kind == Match::Kind::IsTcp && hasTcpPort) continue;
        out += renderMatch(m) + " ";
      }
      if (r.counter) out += "counter ";
      out += renderAction(r.action) + "\n";
    }
    out += "\t}\n";
  }
  out += "}\n";
  return out;
}

}  // namespace mailguard::rules
