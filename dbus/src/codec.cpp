#include "mailguard/dbus/codec.hpp"

#include <string_view>
#include <utility>

namespace mailguard::dbus::codec {
namespace {

// The value under `key`, or `fallback` when absent or of another type.
template <class T>
T variantOr(const VariantMap& m, const char* key, T fallback) {
  const auto it = m.find(key);
  if (it == m.end() || !it->second.containsValueOfType<T>()) return fallback;
  return it->second.get<T>();
}

// Alerts other than the detector's start their evidence with {"kind":"audit"|"tamper",...}.
std::string alertKind(const std::string& evidence) {
  constexpr std::string_view kKindPrefix = R"({"kind":")";
  if (evidence.starts_with(kKindPrefix)) {
    const auto end = evidence.find('"', kKindPrefix.size());
    if (end != std::string::npos) {
      return evidence.substr(kKindPrefix.size(), end - kKindPrefix.size());
    }
  }
  return "detector";
}

using WireService = wire::FirewallService;
using WireFinding = wire::Finding;

}  // namespace

wire::Program encode(const Program& p) {
  return wire::Program{p.id,           p.path,  p.sha256,   p.scriptPath,    p.scriptSha256,
                       p.uid,          p.state, p.attempts, p.lastAttemptUs, p.firstSeenUs,
                       p.heldMessages, p.kind,  p.covers};
}

Program decode(const wire::Program& w) {
  Program p;
  p.id = w.get<0>();
  p.path = w.get<1>();
  p.sha256 = w.get<2>();
  p.scriptPath = w.get<3>();
  p.scriptSha256 = w.get<4>();
  p.uid = w.get<5>();
  p.state = w.get<6>();
  p.attempts = w.get<7>();
  p.lastAttemptUs = w.get<8>();
  p.firstSeenUs = w.get<9>();
  p.heldMessages = w.get<10>();
  p.kind = w.get<11>();
  p.covers = w.get<12>();
  return p;
}

wire::Rule encode(const Rule& r) {
  return wire::Rule{r.id,           r.action, r.path,     r.sha256, r.scriptPath,
                    r.scriptSha256, r.onlyTo, r.allowEnv, r.kind,   r.covers};
}

Rule decode(const wire::Rule& w) {
  Rule r;
  r.id = w.get<0>();
  r.action = w.get<1>();
  r.path = w.get<2>();
  r.sha256 = w.get<3>();
  r.scriptPath = w.get<4>();
  r.scriptSha256 = w.get<5>();
  r.onlyTo = w.get<6>();
  r.allowEnv = w.get<7>();
  r.kind = w.get<8>();
  r.covers = w.get<9>();
  return r;
}

wire::Attempt encode(const Attempt& a) {
  return wire::Attempt{a.id,      a.timeUs,    a.pid,           a.uid,     a.path,    a.scriptPath,
                       a.cmdline, a.src,       a.srcPort,       a.dst,     a.dstPort, a.verdict,
                       a.reason,  a.programId, a.cmdlineHidden, a.channel, a.queueId};
}

Attempt decode(const wire::Attempt& w) {
  Attempt a;
  a.id = w.get<0>();
  a.timeUs = w.get<1>();
  a.pid = w.get<2>();
  a.uid = w.get<3>();
  a.path = w.get<4>();
  a.scriptPath = w.get<5>();
  a.cmdline = w.get<6>();
  a.src = w.get<7>();
  a.srcPort = w.get<8>();
  a.dst = w.get<9>();
  a.dstPort = w.get<10>();
  a.verdict = w.get<11>();
  a.reason = w.get<12>();
  a.programId = w.get<13>();
  a.cmdlineHidden = w.get<14>();
  a.channel = w.get<15>();
  a.queueId = w.get<16>();
  return a;
}

wire::Alert encode(const Alert& a) {
  return wire::Alert{a.id,   a.timeUs,  a.programId, a.path,         a.uid,
                     a.tier, a.summary, a.reasons,   a.acknowledged, a.evidence};
}

Alert decode(const wire::Alert& w) {
  Alert a;
  a.id = w.get<0>();
  a.timeUs = w.get<1>();
  a.programId = w.get<2>();
  a.path = w.get<3>();
  a.uid = w.get<4>();
  a.tier = w.get<5>();
  a.summary = w.get<6>();
  a.reasons = w.get<7>();
  a.acknowledged = w.get<8>();
  a.evidence = w.get<9>();
  a.kind = alertKind(a.evidence);
  return a;
}

VariantMap encodeStatus(const Status& s) {
  VariantMap m{
      {"enforcing", sdbus::Variant(s.enforcing)},
      {"backend", sdbus::Variant(s.backend)},
      {"version", sdbus::Variant(s.version)},
      {"allowed", sdbus::Variant(s.allowed)},
      {"held", sdbus::Variant(s.held)},
      {"rejected", sdbus::Variant(s.rejected)},
      {"queue_dropped", sdbus::Variant(s.queueDropped)},
      {"attempts_dropped", sdbus::Variant(s.attemptsDropped)},
      {"store_errors", sdbus::Variant(s.storeErrors)},
      {"table_restores", sdbus::Variant(s.tableRestores)},
      {"store_error", sdbus::Variant(s.storeError)},
      {"attribution", sdbus::Variant(s.attribution)},
      {"kernel_hooks", sdbus::Variant(s.kernelHooks)},
      {"kernel_events_lost", sdbus::Variant(s.kernelEventsLost)},
      {"dns_source", sdbus::Variant(s.dnsSource)},
      {"dns_queries", sdbus::Variant(s.dnsQueries)},
      {"dns_lost", sdbus::Variant(s.dnsLost)},
      {"reply_sessions", sdbus::Variant(s.replySessions)},
      {"replies_lost", sdbus::Variant(s.repliesLost)},
      {"kernel_map_bytes", sdbus::Variant(s.kernelMapBytes)},
      {"presence_source", sdbus::Variant(s.presenceSource)},
  };
  // Absent when there is none: a{sv} has no null.
  if (s.presenceActiveUser)
    m.emplace("presence_active_user", sdbus::Variant(*s.presenceActiveUser));
  if (s.presenceIdleSeconds) m.emplace("presence_idle_s", sdbus::Variant(*s.presenceIdleSeconds));
  return m;
}

Status decodeStatus(const VariantMap& m) {
  Status s;
  s.enforcing = variantOr<bool>(m, "enforcing", false);
  s.backend = variantOr<std::string>(m, "backend", "");
  s.version = variantOr<std::string>(m, "version", "");
  s.allowed = variantOr<std::uint64_t>(m, "allowed", 0);
  s.held = variantOr<std::uint64_t>(m, "held", 0);
  s.rejected = variantOr<std::uint64_t>(m, "rejected", 0);
  s.queueDropped = variantOr<std::uint64_t>(m, "queue_dropped", 0);
  s.attemptsDropped = variantOr<std::uint64_t>(m, "attempts_dropped", 0);
  s.storeErrors = variantOr<std::uint64_t>(m, "store_errors", 0);
  s.tableRestores = variantOr<std::uint64_t>(m, "table_restores", 0);
  s.storeError = variantOr<std::string>(m, "store_error", "");
  s.attribution = variantOr<std::string>(m, "attribution", "");
  s.kernelHooks = variantOr<std::string>(m, "kernel_hooks", "");
  s.kernelEventsLost = variantOr<std::uint64_t>(m, "kernel_events_lost", 0);
  s.dnsSource = variantOr<std::string>(m, "dns_source", "none");
  s.dnsQueries = variantOr<std::uint64_t>(m, "dns_queries", 0);
  s.dnsLost = variantOr<std::uint64_t>(m, "dns_lost", 0);
  s.replySessions = variantOr<std::uint64_t>(m, "reply_sessions", 0);
  s.repliesLost = variantOr<std::uint64_t>(m, "replies_lost", 0);
  s.kernelMapBytes = variantOr<std::uint64_t>(m, "kernel_map_bytes", 0);
  s.presenceSource = variantOr<std::string>(m, "presence_source", "");
  if (m.count("presence_active_user") != 0) {
    s.presenceActiveUser = variantOr<std::uint32_t>(m, "presence_active_user", 0);
  }
  if (m.count("presence_idle_s") != 0) {
    s.presenceIdleSeconds = variantOr<std::int64_t>(m, "presence_idle_s", 0);
  }
  return s;
}

VariantMap encodeFirewall(const FirewallStatus& s) {
  std::vector<WireService> services;
  services.reserve(s.services.size());
  for (const auto& f : s.services) services.emplace_back(f.name, f.localOnly, f.ports);
  return {
      {"enabled", sdbus::Variant(s.enabled)},
      {"services", sdbus::Variant(services)},
      {"local_subnets", sdbus::Variant(s.localSubnets)},
      {"allow_ping", sdbus::Variant(s.allowPing)},
      {"probe_reader", sdbus::Variant(s.probeReader)},
      {"probe_error", sdbus::Variant(s.probeError)},
      {"probe_events", sdbus::Variant(s.probeEvents)},
      {"probes_dropped", sdbus::Variant(s.probesDropped)},
  };
}

FirewallStatus decodeFirewall(const VariantMap& m) {
  FirewallStatus s;
  s.enabled = variantOr<bool>(m, "enabled", false);
  for (const auto& w : variantOr<std::vector<WireService>>(m, "services", {})) {
    s.services.push_back({w.get<0>(), w.get<1>(), w.get<2>()});
  }
  s.localSubnets = variantOr<std::vector<std::string>>(m, "local_subnets", {});
  s.allowPing = variantOr<bool>(m, "allow_ping", true);
  s.probeReader = variantOr<bool>(m, "probe_reader", false);
  s.probeError = variantOr<std::string>(m, "probe_error", "");
  s.probeEvents = variantOr<std::uint64_t>(m, "probe_events", 0);
  s.probesDropped = variantOr<std::uint64_t>(m, "probes_dropped", 0);
  return s;
}

VariantMap encodeBackscatter(const BackscatterStatus& s) {
  return {{"watching", sdbus::Variant(s.watching)},
          {"flooding", sdbus::Variant(s.flooding)},
          {"last_hour", sdbus::Variant(s.lastHour)},
          {"unmatched_last_hour", sdbus::Variant(s.unmatchedLastHour)},
          {"total", sdbus::Variant(s.total)},
          {"unmatched_total", sdbus::Variant(s.unmatchedTotal)},
          {"since", sdbus::Variant(s.sinceUs)},
          {"last", sdbus::Variant(s.lastUs)},
          {"recipients", sdbus::Variant(s.recipients)},
          {"flood_per_hour", sdbus::Variant(s.floodPerHour)},
          {"alert_id", sdbus::Variant(s.alertId)}};
}

BackscatterStatus decodeBackscatter(const VariantMap& m) {
  BackscatterStatus s;
  s.watching = variantOr<bool>(m, "watching", false);
  s.flooding = variantOr<bool>(m, "flooding", false);
  s.lastHour = variantOr<std::uint32_t>(m, "last_hour", 0);
  s.unmatchedLastHour = variantOr<std::uint32_t>(m, "unmatched_last_hour", 0);
  s.total = variantOr<std::uint32_t>(m, "total", 0);
  s.unmatchedTotal = variantOr<std::uint32_t>(m, "unmatched_total", 0);
  s.sinceUs = variantOr<std::int64_t>(m, "since", 0);
  s.lastUs = variantOr<std::int64_t>(m, "last", 0);
  s.recipients = variantOr<std::vector<std::string>>(m, "recipients", {});
  s.floodPerHour = variantOr<std::uint32_t>(m, "flood_per_hour", 0);
  s.alertId = variantOr<std::int64_t>(m, "alert_id", 0);
  return s;
}

VariantMap encodeHousehold(const HouseholdStatus& s) {
  return {{"running", sdbus::Variant(s.running)},
          {"finished", sdbus::Variant(s.finishedUs)},
          {"error", sdbus::Variant(s.error)},
          {"result", sdbus::Variant(s.json)}};
}

HouseholdStatus decodeHousehold(const VariantMap& m) {
  HouseholdStatus s;
  s.running = variantOr<bool>(m, "running", false);
  s.finishedUs = variantOr<std::int64_t>(m, "finished", 0);
  s.error = variantOr<std::string>(m, "error", "");
  s.json = variantOr<std::string>(m, "result", "{}");
  return s;
}

EnableTuple encode(const EnableResult& r) { return {r.enabled, r.needsConfirmation, r.warning}; }

EnableResult decode(const EnableTuple& t) {
  return EnableResult{std::get<0>(t), std::get<1>(t), std::get<2>(t)};
}

wire::Probe encode(const Probe& p) {
  return wire::Probe{p.source, p.port, p.count, p.firstUs, p.lastUs};
}

Probe decode(const wire::Probe& w) {
  return Probe{w.get<0>(), w.get<1>(), w.get<2>(), w.get<3>(), w.get<4>()};
}

AuditTuple encode(const AuditReport& report) {
  std::vector<wire::AuditResult> results;
  results.reserve(report.results.size());
  for (const auto& r : report.results) {
    std::vector<WireFinding> findings;
    findings.reserve(r.findings.size());
    for (const auto& f : r.findings) {
      findings.emplace_back(f.severity, f.title, f.fix, f.offerBlock, f.port, f.blockCommand);
    }
    std::vector<wire::LanRelay> lan;
    lan.reserve(r.lan.size());
    for (const auto& l : r.lan) {
      lan.emplace_back(l.subnet, l.probeAddress, l.target, l.relay, l.accepted, l.reason,
                       l.transcript);
    }
    results.emplace_back(r.family, r.address, r.port, r.exposure, r.pid, r.uid, r.path, r.comm,
                         r.relay, r.accepted, r.reason, r.blockedByFirewall, r.probedAddress,
                         r.ownDomain, r.transcript, std::move(findings), std::move(lan),
                         r.authInClear);
  }
  return {report.finishedUs, report.running, report.error, std::move(results)};
}

AuditReport decode(const AuditTuple& t) {
  AuditReport report;
  report.finishedUs = std::get<0>(t);
  report.running = std::get<1>(t);
  report.error = std::get<2>(t);
  for (const auto& w : std::get<3>(t)) {
    AuditResult r;
    r.family = w.get<0>();
    r.address = w.get<1>();
    r.port = w.get<2>();
    r.exposure = w.get<3>();
    r.pid = w.get<4>();
    r.uid = w.get<5>();
    r.path = w.get<6>();
    r.comm = w.get<7>();
    r.relay = w.get<8>();
    r.accepted = w.get<9>();
    r.reason = w.get<10>();
    r.blockedByFirewall = w.get<11>();
    r.probedAddress = w.get<12>();
    r.ownDomain = w.get<13>();
    r.transcript = w.get<14>();
    for (const auto& f : w.get<15>()) {
      r.findings.push_back(
          {f.get<0>(), f.get<1>(), f.get<2>(), f.get<3>(), f.get<4>(), f.get<5>()});
    }
    for (const auto& l : w.get<16>()) {
      r.lan.push_back(
          {l.get<0>(), l.get<1>(), l.get<2>(), l.get<3>(), l.get<4>(), l.get<5>(), l.get<6>()});
    }
    r.authInClear = w.get<17>();
    report.results.push_back(std::move(r));
  }
  return report;
}

}  // namespace mailguard::dbus::codec
