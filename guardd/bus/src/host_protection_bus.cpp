#include "host_protection_bus.hpp"

#include <algorithm>
#include <chrono>

namespace mailguard::bus {
namespace {

namespace wire = dbus::wire;

constexpr std::uint32_t kDefaultProbes = 100;
constexpr std::uint32_t kMaxProbes = 1000;

std::int64_t micros(TimePoint t) {
  if (t == TimePoint{}) return 0;
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

}  // namespace

std::map<std::string, sdbus::Variant> firewallStatusOf(const service::FirewallInfo& info) {
  std::vector<wire::FirewallService> services;
  for (const auto& s : info.state.services) {
    std::vector<std::string> ports;
    for (const auto& p : s.ports) ports.push_back(rules::toString(p));
    services.emplace_back(s.name, s.localOnly, std::move(ports));
  }
  std::vector<std::string> subnets;
  for (const auto& p : info.state.localSubnets) subnets.push_back(rules::toString(p));
  return {
      {"enabled", sdbus::Variant(info.state.enabled)},
      {"services", sdbus::Variant(services)},
      {"local_subnets", sdbus::Variant(subnets)},
      {"allow_ping", sdbus::Variant(info.state.allowPing)},
      {"probe_reader", sdbus::Variant(info.probeReader)},
      {"probe_error", sdbus::Variant(info.probeError)},
      {"probe_events", sdbus::Variant(info.probeEvents)},
      {"probes_dropped", sdbus::Variant(info.probesDropped)},
  };
}

std::vector<wire::Probe> probesOf(const std::vector<store::ProbeRow>& rows) {
  std::vector<wire::Probe> out;
  out.reserve(rows.size());
  for (const auto& r : rows) {
    out.emplace_back(r.source, r.port, r.count, micros(r.first), micros(r.last));
  }
  return out;
}

AuditTuple auditOf(const service::AuditSummary& summary) {
  std::vector<wire::AuditResult> results;
  for (const auto& e : summary.entries) {
    const auto& r = e.result;
    std::vector<wire::Finding> findings;
    for (const auto& f : e.findings) {
      findings.emplace_back(f.severity, f.title, f.fix, f.offerBlock, f.port, f.blockCommand);
    }
    results.emplace_back(r.family, r.address, r.port, r.exposure, r.pid, r.uid, r.path, r.comm,
                         r.relay, r.accepted, r.reason, r.blockedByFirewall, r.probedAddress,
                         r.ownDomain, r.transcript, std::move(findings));
  }
  return {micros(summary.finished), summary.running, summary.error, std::move(results)};
}

std::size_t probeLimit(std::uint32_t limit) {
  if (limit == 0) return kDefaultProbes;
  return std::min(limit, kMaxProbes);
}

}  // namespace mailguard::bus
