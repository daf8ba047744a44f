#include "convert.hpp"

#include <algorithm>
#include <chrono>
#include <string>

#include "mailguard/dbus/names.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/rules/secrets.hpp"

namespace mailguard::bus {
namespace {

constexpr std::uint32_t kDefaultProbes = 100;
constexpr std::uint32_t kMaxProbes = 1000;

}  // namespace

std::int64_t micros(TimePoint t) {
  if (t == TimePoint{}) return 0;
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

dbus::Program toDbus(const service::ProgramView& p) {
  dbus::Program out;
  out.id = p.id;
  out.path = p.identity.path;
  out.sha256 = p.identity.sha256;
  out.scriptPath = p.identity.scriptPath;
  out.scriptSha256 = p.identity.scriptSha256;
  out.uid = p.uid;
  out.state = std::string(rules::toString(p.state));
  out.attempts = p.attempts;
  out.lastAttemptUs = micros(p.lastAttempt);
  out.firstSeenUs = micros(p.firstSeen);
  out.kind = std::string(rules::toString(p.identity.kind()));
  return out;
}

dbus::Attempt toDbus(const store::AttemptRecord& a) {
  dbus::Attempt out;
  out.id = a.id;
  out.timeUs = micros(a.time);
  out.pid = static_cast<std::int32_t>(a.pid);
  out.uid = a.uid;
  out.path = a.path;
  out.scriptPath = a.scriptPath;
  out.cmdline = a.cmdline;
  out.src = a.src;
  out.srcPort = a.srcPort;
  out.dst = a.dst;
  out.dstPort = a.dstPort;
  out.verdict = std::string(rules::toString(a.verdict));
  out.reason = a.reason;
  out.programId = a.programId.value_or(0);
  out.channel = a.channel;
  out.queueId = a.queueId;
  return out;
}

dbus::Attempt toDbusFor(const store::AttemptRecord& a, std::uint32_t callerUid) {
  auto out = toDbus(a);
  if (!rules::mayReadCommandLine(callerUid, a.uid)) {
    out.cmdline.clear();
    out.cmdlineHidden = dbus::kCmdlineOtherUser;
  }
  return out;
}

dbus::Attempt toDbusBroadcast(const store::AttemptRecord& a) {
  auto out = toDbus(a);
  out.cmdline.clear();
  out.cmdlineHidden = dbus::kCmdlineNotLive;
  return out;
}

dbus::Alert toDbus(const store::AlertRecord& a) {
  dbus::Alert out;
  out.id = a.id;
  out.timeUs = micros(a.time);
  out.programId = a.programId.value_or(0);
  out.path = a.path;
  out.uid = a.uid;
  out.tier = a.tier;
  out.summary = a.summary;
  out.reasons = a.reasons;
  out.acknowledged = a.acknowledged;
  out.evidence = a.evidence;
  return out;
}

dbus::Status toDbus(const service::StatusInfo& s) {
  dbus::Status out;
  out.enforcing = s.enforcing;
  out.backend = s.backend;
  out.version = s.version;
  out.allowed = s.counters.allowed;
  out.held = s.counters.held;
  out.rejected = s.counters.rejected;
  out.queueDropped = s.counters.queueDropped;
  out.attemptsDropped = s.counters.attemptsDropped;
  out.storeErrors = s.counters.storeErrors;
  out.tableRestores = s.counters.tableRestores;
  out.storeError = s.storeError;
  out.attribution = s.attribution;
  out.kernelHooks = s.kernelHooks;
  out.kernelEventsLost = s.counters.kernelEventsLost;
  out.dnsSource = s.dnsSource;
  out.dnsQueries = s.counters.dnsQueries;
  out.dnsLost = s.counters.dnsLost;
  out.replySessions = s.counters.replySessions;
  out.repliesLost = s.counters.repliesLost;
  out.kernelMapBytes = s.counters.kernelMapBytes;
  out.presenceSource = s.presenceSource;
  out.presenceActiveUser = s.presenceActiveUser;
  out.presenceIdleSeconds = s.presenceIdleSeconds;
  return out;
}

dbus::FirewallStatus toDbus(const service::FirewallInfo& info) {
  dbus::FirewallStatus out;
  out.enabled = info.state.enabled;
  for (const auto& s : info.state.services) {
    dbus::FirewallService service{s.name, s.localOnly, {}};
    for (const auto& p : s.ports) service.ports.push_back(rules::toString(p));
    out.services.push_back(std::move(service));
  }
  for (const auto& p : info.state.localSubnets) out.localSubnets.push_back(rules::toString(p));
  out.allowPing = info.state.allowPing;
  out.probeReader = info.probeReader;
  out.probeError = info.probeError;
  out.probeEvents = info.probeEvents;
  out.probesDropped = info.probesDropped;
  return out;
}

dbus::BackscatterStatus toDbus(const service::BackscatterInfo& info) {
  dbus::BackscatterStatus out;
  out.watching = info.watching;
  out.flooding = info.flooding;
  out.lastHour = info.lastHour;
  out.unmatchedLastHour = info.unmatchedLastHour;
  out.total = info.total;
  out.unmatchedTotal = info.unmatchedTotal;
  out.sinceUs = micros(info.since);
  out.lastUs = micros(info.last);
  out.recipients = info.recipients;
  out.floodPerHour = info.floodPerHour;
  out.alertId = info.alertId;
  return out;
}

dbus::HouseholdStatus toDbus(const service::HouseholdInfo& info) {
  dbus::HouseholdStatus out;
  out.running = info.running;
  out.finishedUs = info.finished == TimePoint{} ? 0 : micros(info.finished);
  out.error = info.error;
  out.json = info.json;
  return out;
}

dbus::EnableResult toDbus(const service::EnableOutcome& e) {
  return dbus::EnableResult{e.enabled, e.needsConfirmation, e.warning};
}

dbus::Probe toDbus(const store::ProbeRow& r) {
  return dbus::Probe{r.source, r.port, r.count, micros(r.first), micros(r.last)};
}

dbus::AuditReport toDbus(const service::AuditSummary& summary) {
  dbus::AuditReport out;
  out.finishedUs = micros(summary.finished);
  out.running = summary.running;
  out.error = summary.error;
  for (const auto& e : summary.entries) {
    const auto& r = e.result;
    dbus::AuditResult result;
    result.family = r.family;
    result.address = r.address;
    result.port = r.port;
    result.exposure = r.exposure;
    result.pid = r.pid;
    result.uid = r.uid;
    result.path = r.path;
    result.comm = r.comm;
    result.relay = r.relay;
    result.accepted = r.accepted;
    result.reason = r.reason;
    result.blockedByFirewall = r.blockedByFirewall;
    result.probedAddress = r.probedAddress;
    result.ownDomain = r.ownDomain;
    result.transcript = r.transcript;
    for (const auto& f : e.findings) {
      result.findings.push_back({f.severity, f.title, f.fix, f.offerBlock, f.port, f.blockCommand});
    }
    for (const auto& l : r.lan) {
      result.lan.push_back(
          {l.subnet, l.probeAddress, l.target, l.relay, l.accepted, l.reason, l.transcript});
    }
    result.authInClear = r.authInClear;
    out.results.push_back(std::move(result));
  }
  return out;
}

std::size_t probeLimit(std::uint32_t limit) {
  if (limit == 0) return kDefaultProbes;
  return std::min(limit, kMaxProbes);
}

}  // namespace mailguard::bus
