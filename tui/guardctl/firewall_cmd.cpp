#include "firewall_cmd.hpp"

#include <unistd.h>

#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "household_text.hpp"
#include "mailguard/dbus/host_client.hpp"
#include "output.hpp"

namespace mailguard::guardctl {

namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;

using dbus::HostClient;

nlohmann::json toJson(const dbus::FirewallStatus& s) {
  auto services = nlohmann::json::array();
  for (const auto& svc : s.services) {
    services.push_back({{"name", svc.name}, {"local_only", svc.localOnly}, {"ports", svc.ports}});
  }
  return {{"enabled", s.enabled},
          {"services", services},
          {"local_subnets", s.localSubnets},
          {"allow_ping", s.allowPing},
          {"probes",
           {{"recording", s.probeReader},
            {"error", s.probeError},
            {"events", s.probeEvents},
            {"dropped", s.probesDropped}}}};
}

std::string statusText(const dbus::FirewallStatus& s) {
  std::string out = "Host firewall: ";
  out += s.enabled ? "enabled (inbound connections are refused unless allowed below)\n"
                   : "disabled (enable it with: sudo guardctl firewall enable)\n";
  if (s.services.empty()) {
    out += "Allowed services: none\n";
  } else {
    std::vector<std::vector<std::string>> rows{{"SERVICE", "PORTS", "FROM"}};
    for (const auto& svc : s.services) {
      std::string ports;
      for (const auto& p : svc.ports) ports += (ports.empty() ? "" : " ") + p;
      rows.push_back({svc.name, ports, svc.localOnly ? "local subnets" : "anywhere"});
    }
    out += "Allowed services:\n" + alignTable(rows);
  }
  std::string subnets;
  for (const auto& c : s.localSubnets) subnets += (subnets.empty() ? "" : ", ") + c;
  out += "Local subnets: " + (subnets.empty() ? std::string("none set") : subnets) + "\n";
  if (s.probeReader) {
    out += "Inbound probes of mail ports: recorded (" + std::to_string(s.probeEvents) +
           " since guardd started; see 'guardctl firewall probes')\n";
  } else {
    out += "Inbound probes of mail ports: not recorded (" + s.probeError + ")\n";
  }
  return out;
}

nlohmann::json toJson(const dbus::Probe& p) {
  return {{"source", p.source},
          {"port", p.port},
          {"count", p.count},
          {"first", timeJson(p.firstUs)},
          {"last", timeJson(p.lastUs)}};
}

// The finding's kind (as guardd's alerts name it); the D-Bus finding carries none, and
// the titles guardd writes (guardd/audit/src/findings.cpp) tell them apart.
std::string findingKind(const dbus::AuditFinding& f) {
  const auto has = [&](std::string_view s) { return f.title.find(s) != std::string::npos; };
  if (has(" relays mail for anyone on your LAN ")) return "open-relay-lan";
  if (has(" is an open relay")) return "open-relay-stranger";
  if (has("passwords would cross the network in clear")) return "auth-without-tls";
  if (f.offerBlock) return "exposed";
  if (has("the host firewall blocks it")) return "blocked-by-firewall";
  return "other";
}

std::string joinedWords(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i];
  return out;
}

nlohmann::json toJson(const dbus::AuditResult& r, std::int64_t finishedUs) {
  auto findings = nlohmann::json::array();
  for (const auto& f : r.findings) {
    findings.push_back({{"severity", f.severity},
                        {"kind", findingKind(f)},
                        {"title", f.title},
                        {"fix", f.fix},
                        {"offer_block", f.offerBlock},
                        {"port", f.port},
                        {"block_command", f.blockCommand}});
  }
  auto lan = nlohmann::json::array();
  for (const auto& l : r.lan) {
    lan.push_back({{"subnet", l.subnet},
                   {"probe_address", l.probeAddress},
                   {"probed_address", l.target},
                   {"relay", l.relay},
                   {"accepted", l.accepted},
                   {"reason", l.reason},
                   {"replies", l.transcript}});
  }
  // DESIGN.md fixes address, port, path, exposure, relay and accepted; the rest is extra.
  // "relay" is what a stranger meets; "relay_lan" what a host on each LAN subnet meets.
  // "replies" is the stranger's dialogue; each "relay_lan" entry has its own.
  return {{"address", r.address},
          {"port", r.port},
          {"path", r.path},
          {"exposure", r.exposure},
          {"relay", r.relay},
          {"accepted", r.accepted},
          {"family", r.family},
          {"pid", r.pid == 0 ? nlohmann::json(nullptr) : nlohmann::json(r.pid)},
          {"comm", r.comm},
          {"uid", r.uid},
          {"reason", r.reason},
          {"blocked_by_firewall", r.blockedByFirewall},
          {"probed_address", r.probedAddress},
          {"own_domain", r.ownDomain},
          {"replies", r.transcript},
          {"relay_lan", lan},
          {"auth_in_clear", r.authInClear},
          {"findings", findings},
          {"time", timeJson(finishedUs)}};
}

std::string auditText(const dbus::AuditReport& report) {
  std::string out;
  if (report.finishedUs == 0 && report.results.empty()) {
    out += "No mail-server audit yet (run one with: guardctl audit --run).\n";
    return out;
  }
  out += "Mail-server audit of " + timeJson(report.finishedUs).get<std::string>() + ":\n";
  if (report.results.empty()) out += "No program listens on a mail port: nothing to audit.\n";
  for (const auto& r : report.results) {
    const std::string address = r.family == 6 ? "[" + r.address + "]" : r.address;
    out += "\n" + address + ":" + std::to_string(r.port) + "  " +
           (r.path.empty() ? std::string("(program unknown)") : r.path) +
           (r.pid != 0 ? " pid " + std::to_string(r.pid) : "") + "\n";
    out += "  reachable: " +
           std::string(r.exposure == "loopback" ? "only from this PC (loopback)"
                                                : "from other computers") +
           "\n";
    std::string relay = r.relay;
    if (r.relay == "open") {
      relay = "OPEN RELAY: it accepted mail for strangers (";
      for (std::size_t i = 0; i < r.accepted.size(); ++i) relay += (i ? ", " : "") + r.accepted[i];
      relay += ")";
    } else if (r.relay == "closed") {
      relay = "closed: it refused to relay for a stranger";
    } else {
      relay = "unreachable from outside";
    }
    out += "  relay: " + relay + "\n";
    if (!r.reason.empty()) out += "  why: " + r.reason + "\n";
    for (const auto& l : r.lan) {
      std::string lan;
      if (l.relay == "open") {
        lan = "OPEN RELAY: it accepted mail for anyone there (" + joinedWords(l.accepted) + ")";
      } else if (l.relay == "closed") {
        lan = "closed: it refused to relay for a host there";
      } else {
        lan = "unreachable from there";
      }
      out += "  relay for your LAN " + l.subnet + " (probed from " + l.probeAddress + "): " + lan +
             "\n";
    }
    if (!r.authInClear.empty()) {
      out += "  AUTH in clear: " + joinedWords(r.authInClear) + " offered without TLS\n";
    }
    for (const auto& f : r.findings) {
      out += "  " + f.severity + ": " + f.title + "\n";
      if (!f.fix.empty()) out += "    fix: " + f.fix + "\n";
      if (f.offerBlock && !f.blockCommand.empty()) {
        out += "    to block it from other computers: sudo " + f.blockCommand + "\n";
      }
    }
  }
  return out;
}

// Asks on the terminal; false when the answer is not yes.
bool confirm(const std::string& question) {
  std::cerr << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
}

}  // namespace

struct HostCommands {
  CLI::App* firewall = nullptr;
  CLI::App* status = nullptr;
  CLI::App* enable = nullptr;
  CLI::App* disable = nullptr;
  CLI::App* allow = nullptr;
  CLI::App* remove = nullptr;
  CLI::App* subnets = nullptr;
  CLI::App* probes = nullptr;
  CLI::App* audit = nullptr;
  bool yes = false;
  std::string spec;
  bool local = false;
  std::string name;
  std::vector<std::string> cidrs;
  std::uint32_t limit = 0;
  bool run = false;
  bool hosts = false;
};

std::shared_ptr<HostCommands> addHostCommands(CLI::App& app) {
  auto c = std::make_shared<HostCommands>();
  c->firewall = app.add_subcommand(
      "firewall", "The host firewall: refuse inbound connections nobody allowed (like ufw)");
  c->firewall->require_subcommand(1, 1);
  c->firewall->footer(
      "Examples:\n"
      "  sudo guardctl firewall allow ssh         keep remote logins working\n"
      "  sudo guardctl firewall enable            refuse everything else from outside\n"
      "  sudo guardctl firewall allow 8080/tcp --local\n"
      "                                           only from your own network (see local-subnets)\n"
      "  guardctl firewall probes                 who knocked on this PC's mail ports\n"
      "Named services: ssh, http, https, imap, imaps, pop3s, smtp, smtps, submission, mdns,\n"
      "dhcpv6-client. Outgoing connections and their replies, and essential ICMP, always work.");
  c->status =
      c->firewall->add_subcommand("status", "Show whether the firewall is on and what it allows");
  c->enable = c->firewall->add_subcommand(
      "enable", "Turn the firewall on: inbound connections are refused unless allowed");
  c->enable->add_flag("--yes,-y", c->yes,
                      "Do not ask, even when you seem to be logged in over SSH and SSH is not "
                      "allowed (you could lock yourself out)");
  c->enable->footer(
      "When you are logged in over SSH and SSH is not allowed, guardctl warns and asks\n"
      "first; without a terminal to ask on it refuses unless --yes is given.");
  c->disable = c->firewall->add_subcommand("disable", "Turn the firewall off (allow all inbound)");
  c->allow = c->firewall->add_subcommand("allow", "Allow inbound connections to a service");
  c->allow
      ->add_option("SERVICE", c->spec,
                   "A service name (ssh, mdns, ...) or a port: 8080, 8080/tcp, 5353/udp")
      ->required();
  c->allow->add_flag("--local", c->local,
                     "Only from the local subnets (see 'guardctl firewall local-subnets')");
  c->remove = c->firewall->add_subcommand("remove", "Stop allowing a service");
  c->remove->add_option("SERVICE", c->name, "As shown by 'guardctl firewall status'")->required();
  c->subnets = c->firewall->add_subcommand(
      "local-subnets", "Set which networks count as local for services allowed with --local");
  c->subnets->add_option("CIDR", c->cidrs, "Like 192.168.1.0/24 or fd00::/8; none clears them")
      ->expected(0, -1);
  c->probes = c->firewall->add_subcommand(
      "probes", "List inbound connection attempts to mail ports that the firewall refused");
  c->probes->add_option("--limit", c->limit, "How many to show, 1 to 1000 (default 100)")
      ->check(CLI::Range(1u, 1000u));
  c->probes->footer(
      "A probe is another computer trying to reach a mail server on this PC (ports 25, 465,\n"
      "587 ...), usually a spammer looking for open relays. They are counted per source and\n"
      "port, so a port scan gives a few lines, not thousands.");

  c->audit = app.add_subcommand(
      "audit",
      "Show mail servers on this PC, who can reach them, and whether they are open relays");
  c->audit->add_flag("--run", c->run,
                     "Check now (takes a few seconds) instead of showing the last result");
  c->audit->add_flag("--hosts", c->hosts,
                     "Scan your own network for other computers' mail servers and audit each "
                     "(needs root or polkit; up to a minute)");
  c->audit->footer(
      "An open relay passes on mail from strangers to anyone: spammers use it, and the spam\n"
      "then comes from your address. The audit talks to each server as a stranger would, and\n"
      "as a device on each of your LANs would (from a throw-away network namespace, with a\n"
      "free address of that LAN), stops before sending any message, and says how to fix what\n"
      "it finds, AUTH offered without TLS included. With --json: an array of {address, port,\n"
      "path, exposure, relay, accepted, relay_lan, auth_in_clear, findings, ...}; relay is\n"
      "what a stranger meets, relay_lan what a host on each LAN meets.\n"
      "--hosts: the other computers of your own IPv4 subnets (a /22 at most around this PC,\n"
      "100 connects a second) that answer on ports 25, 465 and 587, each audited as a device\n"
      "on your LAN would talk to it. Only when you ask. With --json: {finished, error,\n"
      "subnets, hosts: [{address, port, subnet, relay, accepted, auth_in_clear, findings}]}.");
  return c;
}

std::optional<int> runHostCommands(HostCommands& c, bool json) {
  if (!*c.firewall && !*c.audit) return std::nullopt;
  auto connected = HostClient::connect();
  if (const auto* e = dbus::errorOf(connected)) return fail(*e);
  auto& client = *std::get<std::unique_ptr<HostClient>>(connected);

  auto showStatus = [&](const dbus::ClientResult<dbus::FirewallStatus>& r,
                        const std::string& done) -> int {
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& s = std::get<dbus::FirewallStatus>(r);
    if (json) {
      printJson(toJson(s));
    } else {
      if (!done.empty()) std::cout << done << "\n";
      std::cout << statusText(s);
    }
    return kOk;
  };

  if (*c.audit && c.hosts) {
    auto r = client.scanHousehold();
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& status = std::get<dbus::HouseholdStatus>(r);
    if (json) {
      printJson(householdJson(status));
    } else {
      std::cout << householdText(status);
    }
    if (!status.error.empty()) {
      std::cerr << "guardctl: the scan failed: " << status.error << "\n";
      return kFailed;
    }
    return kOk;
  }
  if (*c.audit) {
    auto r = c.run ? client.runAudit() : client.audit();
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& report = std::get<dbus::AuditReport>(r);
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& result : report.results) arr.push_back(toJson(result, report.finishedUs));
      printJson(arr);
    } else {
      std::cout << auditText(report);
      // The last household scan, when there was one (guardctl audit --hosts runs one).
      auto household = client.household();
      if (const auto* h = std::get_if<dbus::HouseholdStatus>(&household);
          h != nullptr && h->finishedUs != 0) {
        std::cout << "\n" << householdText(*h);
      }
    }
    if (!report.error.empty()) {
      std::cerr << "guardctl: the " << (c.run ? "" : "last ") << "audit failed: " << report.error
                << (c.run ? "\n" : " (the results shown are from the audit before)\n");
      if (c.run) return kFailed;
    }
    return kOk;
  }
  if (*c.status) return showStatus(client.firewallStatus(), "");
  if (*c.disable) {
    return showStatus(client.firewallDisable(), "The host firewall is off.");
  }
  if (*c.allow) {
    return showStatus(client.firewallAllow(c.spec, c.local),
                      "Allowed " + c.spec + (c.local ? " from the local subnets." : "."));
  }
  if (*c.remove) return showStatus(client.firewallRemove(c.name), "Removed " + c.name + ".");
  if (*c.subnets) {
    return showStatus(client.firewallSetLocalSubnets(c.cidrs), "Local subnets set.");
  }
  if (*c.probes) {
    auto r = client.probes(c.limit);
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& list = std::get<std::vector<dbus::Probe>>(r);
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& p : list) arr.push_back(toJson(p));
      printJson(arr);
    } else if (list.empty()) {
      std::cout << "No inbound probes of mail ports recorded.\n";
    } else {
      std::vector<std::vector<std::string>> rows{{"LAST SEEN", "SOURCE", "PORT", "COUNT"}};
      for (const auto& p : list) {
        rows.push_back({timeJson(p.lastUs).get<std::string>(), p.source, std::to_string(p.port),
                        std::to_string(p.count)});
      }
      std::cout << alignTable(rows);
    }
    return kOk;
  }
  if (*c.enable) {
    // guardd decides whether the caller looks remote (SSH_CONNECTION, an sshd ancestor);
    // the confirmation is asked here, where the person is.
    auto r = client.firewallEnable(c.yes);
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    auto result = std::get<dbus::EnableResult>(r);
    if (!result.enabled && result.needsConfirmation) {
      std::cerr << "Warning: " << result.warning << "\n";
      const bool interactive = ::isatty(STDIN_FILENO) != 0 && ::isatty(STDERR_FILENO) != 0;
      if (!interactive) {
        if (json)
          printJson(
              {{"enabled", false}, {"needs_confirmation", true}, {"warning", result.warning}});
        std::cerr << "guardctl: not enabled: confirm with --yes (no terminal to ask on)\n";
        return kFailed;
      }
      if (!confirm("Enable the host firewall anyway?")) {
        std::cerr << "Not enabled.\n";
        return kFailed;
      }
      r = client.firewallEnable(true);
      if (const auto* e = dbus::errorOf(r)) return fail(*e);
      result = std::get<dbus::EnableResult>(r);
    } else if (result.needsConfirmation) {
      std::cerr << "Warning: " << result.warning << " (going ahead: --yes)\n";
    }
    if (json) {
      printJson({{"enabled", result.enabled},
                 {"needs_confirmation", result.needsConfirmation},
                 {"warning", result.warning}});
      return kOk;
    }
    return showStatus(client.firewallStatus(), "The host firewall is on.");
  }
  return std::nullopt;
}

}  // namespace mailguard::guardctl
