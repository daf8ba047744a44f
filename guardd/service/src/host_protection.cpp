// Guard's host firewall, inbound probes and mail-server audit: the Guard
// methods of these features and the HostProtection that carries them out.
#include "host_protection.hpp"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>
#include <utility>

#include "caller_context.hpp"
#include "detection.hpp"  // Guard::Impl holds a Detection: its constructor needs the type
#include "guard_impl.hpp"
#include "mailguard/audit/findings.hpp"
#include "mailguard/audit/inventory.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

// Listeners come and go rarely; a sock_diag dump every 30 s costs next to nothing, and an
// audit runs only when the set of listeners changed.
constexpr auto kInventoryEvery = std::chrono::seconds(30);
constexpr std::size_t kMaxProbeRecords = 256;

Error failed(const Error& e) { return makeError(e.message); }

// What identifies the set of listeners for "did it change since the last audit?".
std::string keyOf(std::vector<std::string> lines) {
  std::sort(lines.begin(), lines.end());
  std::string key;
  for (const auto& l : lines) key += l + "\n";
  return key;
}

std::string keyLine(int family, const std::string& address, std::uint16_t port,
                    const std::string& path) {
  return std::to_string(family) + "|" + address + "|" + std::to_string(port) + "|" + path;
}

std::string listenerKey(const std::vector<audit::MailListener>& listeners) {
  std::vector<std::string> lines;
  for (const auto& l : listeners) {
    lines.push_back(keyLine(l.family == AF_INET ? 4 : 6, l.addressText(), l.port, l.path));
  }
  return keyOf(std::move(lines));
}

// The audit's own SYNs come from these addresses (guardd/audit/src/probe_network.cpp);
// with the firewall on they are logged like any probe, but they are not strangers.
bool isAuditProbe(const std::string& source) {
  return source == "198.51.100.78" || source == "2001:db8:6d67::2";
}

std::vector<std::string> transcriptLines(const std::vector<std::string>& transcript) {
  // A multi-line SMTP reply is one entry ("< 250-a\n250 b"); stored and shown a line each.
  std::vector<std::string> out;
  for (const auto& entry : transcript) {
    std::size_t start = 0;
    const std::string prefix = entry.substr(0, 2);
    while (start <= entry.size()) {
      auto end = entry.find('\n', start);
      if (end == std::string::npos) end = entry.size();
      std::string line = entry.substr(start, end - start);
      out.push_back(start == 0 ? line : prefix + line);
      start = end + 1;
    }
  }
  return out;
}

store::AuditRow rowOf(const audit::ListenerAudit& a, TimePoint now) {
  store::AuditRow row;
  row.time = now;
  row.family = a.listener.family == AF_INET ? 4 : 6;
  row.address = a.listener.addressText();
  row.port = a.listener.port;
  row.exposure = std::string(audit::toString(a.listener.exposure));
  row.pid = a.listener.pid.value_or(0);
  row.uid = a.listener.uid;
  row.path = a.listener.path;
  row.comm = a.listener.comm;
  row.relay = std::string(audit::toString(a.relay));
  row.accepted = a.accepted;
  row.reason = a.reason;
  row.blockedByFirewall = a.blockedByFirewall;
  row.probedAddress = a.probedAddress;
  row.ownDomain = a.dialogue.ownDomain;
  row.transcript = transcriptLines(a.dialogue.transcript);
  for (const auto& v : a.lan) {
    row.lan.push_back({v.subnet, v.probeAddress, v.target, std::string(audit::toString(v.relay)),
                       v.accepted, v.reason, transcriptLines(v.dialogue.transcript)});
  }
  row.authInClear = a.authInClear;
  return row;
}

audit::RelayVerdict verdictOf(const std::string& relay) {
  return audit::relayVerdictOf(relay).value_or(audit::RelayVerdict::Unreachable);
}

audit::ListenerAudit auditOf(const store::AuditRow& row) {
  audit::ListenerAudit a;
  auto& l = a.listener;
  l.family = row.family == 4 ? AF_INET : AF_INET6;
  (void)::inet_pton(l.family, row.address.c_str(), l.address.data());
  l.port = row.port;
  l.exposure = row.exposure == "loopback" ? audit::Exposure::Loopback : audit::Exposure::External;
  if (row.pid != 0) l.pid = row.pid;
  l.uid = row.uid;
  l.path = row.path;
  l.comm = row.comm;
  a.relay = verdictOf(row.relay);
  a.accepted = row.accepted;
  a.reason = row.reason;
  a.blockedByFirewall = row.blockedByFirewall;
  a.probedAddress = row.probedAddress;
  a.dialogue.ownDomain = row.ownDomain;
  a.dialogue.transcript = row.transcript;
  for (const auto& stored : row.lan) {
    audit::LanVantage v;
    v.subnet = stored.subnet;
    v.probeAddress = stored.probeAddress;
    v.target = stored.target;
    v.relay = verdictOf(stored.relay);
    v.accepted = stored.accepted;
    v.reason = stored.reason;
    v.dialogue.transcript = stored.transcript;
    a.lan.push_back(std::move(v));
  }
  a.authInClear = row.authInClear;
  return a;
}

std::string listenerIdentity(int family, const std::string& address, std::uint16_t port) {
  return std::to_string(family) + "|" + address + "|" + std::to_string(port);
}

store::StoredFirewall storedOf(const rules::FirewallState& s) {
  store::StoredFirewall out;
  out.enabled = s.enabled;
  for (const auto& service : s.services) out.services.push_back({service.name, service.localOnly});
  for (const auto& p : s.localSubnets) out.localSubnets.push_back(rules::toString(p));
  return out;
}

// The stored firewall as state; an entry this version no longer understands is skipped
// with a warning rather than keeping guardd from starting.
rules::FirewallState stateOf(const store::StoredFirewall& stored) {
  rules::FirewallState state;
  state.enabled = stored.enabled;
  for (const auto& s : stored.services) {
    auto service = rules::parseService(s.name, s.localOnly);
    if (!service) {
      log::warning("Failed to restore the allowed service " + log::quote(s.name) + ": " +
                   service.error().message);
      continue;
    }
    state = rules::withService(state, std::move(*service));
  }
  if (auto subnets = rules::withLocalSubnets(state, stored.localSubnets); subnets) {
    state = std::move(*subnets);
  } else {
    log::warning("Failed to restore the local subnets: " + subnets.error().message);
  }
  return state;
}

std::string listenerText(const store::AuditRow& row) {
  const std::string address = row.family == 6 ? "[" + row.address + "]" : row.address;
  return address + ":" + std::to_string(row.port);
}

// The findings an alert is raised for, keyed "address:port kind[ subnet]" (kind as
// audit::Finding::kind: "open-relay-stranger", "open-relay-lan", "auth-without-tls",
// "exposed"); information only (a listener the firewall blocks) raises none. The kinds
// come from the audit library again: AuditFindingView carries no kind.
struct FoundFinding {
  const AuditEntryView* entry = nullptr;
  const AuditFindingView* finding = nullptr;
  std::string kind;
};
std::vector<std::pair<std::string, FoundFinding>> findingKeys(
    const std::vector<AuditEntryView>& entries, const rules::FirewallState& firewall) {
  std::vector<std::pair<std::string, FoundFinding>> out;
  for (const auto& entry : entries) {
    const auto kinds = audit::findingsFor(auditOf(entry.result), firewall);
    for (std::size_t i = 0; i < entry.findings.size(); ++i) {
      const auto& f = entry.findings[i];
      if (f.severity == "info") continue;
      std::string kind = i < kinds.size() ? kinds[i].kind
                         : f.offerBlock   ? "exposed"
                                          : "open-relay-stranger";
      std::string key = listenerText(entry.result) + " " + kind;
      if (kind == "open-relay-lan") {
        // One per subnet: the subnet is the word after "your LAN " in the title.
        const auto at = f.title.find("your LAN ");
        if (at != std::string::npos) {
          key += " " + f.title.substr(at + 9, f.title.find(':', at) - at - 9);
        }
      }
      out.emplace_back(std::move(key), FoundFinding{&entry, &f, std::move(kind)});
    }
  }
  return out;
}

}  // namespace

HostProtection::HostProtection(Guard& guard, const Guard::Options& options, EventLoop& loop,
                               netfilter::RulesetManager& nft, netfilter::QueueBackend backend,
                               const Clock& clock, store::SqliteStore& reader,
                               store::StoreWriter& writer, AlertSink& alerts,
                               std::uint32_t acceptMarkBit)
    : guard_(guard),
      options_(options),
      loop_(loop),
      clock_(clock),
      reader_(reader),
      writer_(writer),
      alerts_(alerts),
      acceptMarkBit_(acceptMarkBit),
      applier_(nft, backend),
      recorder_(clock, kMaxProbeRecords) {}

HostProtection::~HostProtection() {
  if (worker_.joinable()) worker_.join();
  if (probeSource_) loop_.remove(probeSource_->fd());
}

Result<void> HostProtection::start() {
  auto stored = reader_.loadFirewall();
  if (!stored) return stored.error();
  firewall_ = std::make_unique<firewall::HostFirewall>(
      applier_, options_.settings, options_.tableName, stateOf(*stored), acceptMarkBit_);
  if (auto r = firewall_->applyCurrent(); !r) return r.error();
  if (firewall_->state().enabled) {
    log::info("host firewall enabled: inbound connections are refused unless allowed");
  }

  if (auto audits = reader_.loadAudit(); audits) {
    // The listeners audited last time: unchanged ones are not audited again at start-up.
    std::vector<std::string> lines;
    for (const auto& row : *audits) {
      lines.push_back(keyLine(row.family, row.address, row.port, row.path));
    }
    if (!audits->empty()) {
      audited_ = true;
      lastAuditedKey_ = keyOf(std::move(lines));
    }
    for (auto& row : *audits) {
      summary_.finished = std::max(summary_.finished, row.time);
      AuditEntryView entry;
      entry.findings = findingsOf(row);
      entry.result = std::move(row);
      summary_.entries.push_back(std::move(entry));
    }
    // Alerted before the restart: raised again only if they go away and come back.
    for (const auto& key : findingKeys(summary_.entries, firewall_->state())) {
      alertedFindings_.insert(key.first);
    }
  } else {
    log::warning(audits.error().message);
  }

  // Probes need nfnetlink_log (CAP_NET_ADMIN); without it the firewall still works.
  auto source = firewall::NflogProbeSource::open(firewall_->state().probeLogGroup);
  if (source) {
    probeSource_ = std::move(source.value());
    if (auto r =
            loop_.add(probeSource_->fd(), EPOLLIN, [this](std::uint32_t) { onProbesReadable(); });
        !r) {
      return r.error();
    }
  } else {
    probeError_ = source.error().message;
    log::warning("Inbound probes of mail ports are not recorded: " + probeError_);
  }

  loop_.every(std::chrono::duration_cast<std::chrono::milliseconds>(kInventoryEvery), [this] {
    if (!jobRunning_) startJob(false);
  });
  startJob(false);  // the first inventory now; an audit follows when listeners are found
  return {};
}

Result<void> HostProtection::reapply() { return firewall_->applyCurrent(); }

void HostProtection::onProbesReadable() {
  auto events = probeSource_->readAvailable();
  if (!events) {
    log::error("Failed to read inbound probes: " + events.error().message);
    return;
  }
  for (const auto& e : *events) recorder_.record(e);
}

void HostProtection::flushProbes() {
  auto records = recorder_.drain();
  std::vector<store::ProbeRow> rows;
  rows.reserve(records.size());
  for (const auto& r : records) {
    if (isAuditProbe(r.sourceAddress()) || lanProbeAddresses_.contains(r.sourceAddress())) {
      continue;
    }
    rows.push_back({r.sourceAddress(), r.port, r.count, r.first, r.last});
    if (log::enabled(log::Level::Debug)) {
      log::debug("inbound probe of port " + std::to_string(r.port) + " from " + r.sourceAddress() +
                 " (" + std::to_string(r.count) + "x)");
    }
  }
  if (rows.empty()) return;
  writer_.submit(std::move(rows));
}

FirewallInfo HostProtection::info() const {
  FirewallInfo i;
  if (firewall_) i.state = firewall_->state();
  i.probeReader = probeSource_ != nullptr;
  i.probeError = probeError_;
  i.probeEvents = recorder_.events();
  i.probesDropped = recorder_.dropped();
  return i;
}

void HostProtection::change(const std::function<Result<void>(firewall::HostFirewall&)>& f,
                            Done<FirewallInfo> done) {
  const rules::FirewallState before = firewall_->state();
  if (auto r = f(*firewall_); !r) return done(failed(r.error()));
  const auto generation = ++generation_;
  writer_.saveFirewall(
      storedOf(firewall_->state()),
      [this, before, generation, done = std::move(done)](Result<void> saved) mutable {
        loop_.post([this, before, generation, saved = std::move(saved), done = std::move(done)] {
          if (saved) return done(info());
          // Kernel and disk must agree: put the old table back (unless a later change
          // has replaced it since) and report the failure.
          if (generation == generation_) {
            if (auto back = firewall_->setState(before); !back) log::error(back.error().message);
          }
          done(failed(saved.error()));
        });
      });
}

void HostProtection::enable(int callerPid, bool confirmed, Done<EnableOutcome> done) {
  EnableOutcome outcome;
  rules::FirewallState next = firewall_->state();
  next.enabled = true;
  const auto check = rules::checkEnable(next, callerContextOf(proc_, callerPid));
  outcome.needsConfirmation = check.needsConfirmation;
  outcome.warning = check.warning;
  if (check.needsConfirmation && !confirmed) return done(outcome);
  change([](firewall::HostFirewall& fw) { return fw.enable(); },
         [outcome, done = std::move(done)](Result<FirewallInfo> changed) mutable {
           if (!changed) return done(changed.error());
           outcome.enabled = true;
           done(outcome);
         });
}

Result<std::vector<store::ProbeRow>> HostProtection::probes(std::size_t limit) {
  flushProbes();  // what arrived since the last tick too
  return reader_.probes(limit);
}

std::vector<AuditFindingView> HostProtection::findingsOf(const store::AuditRow& row) const {
  std::vector<AuditFindingView> out;
  const rules::FirewallState state = firewall_ ? firewall_->state() : rules::FirewallState{};
  for (const auto& f : audit::findingsFor(auditOf(row), state)) {
    out.push_back({std::string(audit::toString(f.severity)), f.title, f.fix, f.offerBlock, f.port,
                   f.blockCommand});
  }
  return out;
}

void HostProtection::raiseAlerts(const std::vector<AuditEntryView>& entries) {
  std::set<std::string> current;
  const rules::FirewallState state = firewall_ ? firewall_->state() : rules::FirewallState{};
  for (const auto& [key, found] : findingKeys(entries, state)) {
    current.insert(key);
    if (alertedFindings_.contains(key)) continue;
    const AuditEntryView* entry = found.entry;
    const AuditFindingView* f = found.finding;
    const std::string& kind = found.kind;
    store::AlertRecord record;
    record.time = clock_.now();
    record.principal = "audit:" + key;
    record.path = entry->result.path;
    record.uid = entry->result.uid;
    record.tier = f->severity == "critical" ? "hard" : "soft";
    record.summary = f->title;
    record.reasons = {f->title, f->fix};
    if (f->offerBlock && !f->blockCommand.empty()) {
      record.reasons.push_back("To block it in the host firewall: " + f->blockCommand);
    }
    // "kind" first: clients tell an audit alert from a detector one by it.
    nlohmann::ordered_json evidence{{"kind", "audit"},
                                    {"finding", kind},
                                    {"listener", listenerText(entry->result)},
                                    {"exposure", entry->result.exposure},
                                    {"relay", entry->result.relay},
                                    {"accepted", entry->result.accepted},
                                    {"fix", f->fix},
                                    {"offer_block", f->offerBlock},
                                    {"block_command", f->blockCommand}};
    if (kind == "open-relay-lan") {
      // The vantage that found it: its subnet and what the server took from there.
      const auto lanAudit = auditOf(entry->result);
      for (const auto& v : lanAudit.lan) {
        if (f->title.find("your LAN " + v.subnet + ":") == std::string::npos) continue;
        evidence["subnet"] = v.subnet;
        evidence["probe_address"] = v.probeAddress;
        evidence["accepted"] = v.accepted;
        evidence["relay"] = std::string(audit::toString(v.relay));
      }
    } else if (kind == "auth-without-tls") {
      evidence["auth_in_clear"] = auditOf(entry->result).authInClear;
    }
    record.evidence = evidence.dump();
    alerts_.raise(std::move(record));
  }
  alertedFindings_ = std::move(current);
}

void HostProtection::runAudit(std::function<void(const AuditSummary&)> done) {
  if (jobRunning_ && jobIsAudit_ && jobGeneration_ == generation_) {
    if (done) waitingCurrent_.push_back(std::move(done));
    return;
  }
  if (done) waitingNext_.push_back(std::move(done));
  auditQueued_ = true;
  if (!jobRunning_) startQueuedAudit();
}

void HostProtection::startQueuedAudit() {
  auditQueued_ = false;
  for (auto& w : waitingNext_) waitingCurrent_.push_back(std::move(w));
  waitingNext_.clear();
  startJob(true);
}

void HostProtection::startJob(bool auditToo) {
  Job job;
  job.audit = auditToo;
  job.ports = options_.settings.mailPorts;
  job.firewall = firewall_->state();
  if (auditToo) {
    for (const auto& e : summary_.entries) {
      job.previousListeners.insert(
          listenerIdentity(e.result.family, e.result.address, e.result.port));
    }
  }
  jobRunning_ = true;
  jobIsAudit_ = auditToo;
  jobGeneration_ = generation_;
  if (auditToo) summary_.running = true;
  if (worker_.joinable()) worker_.join();
  worker_ = std::thread([this, job = std::move(job)] {
    JobResult result;
    result.audit = job.audit;
    // Its own resolver: the loop thread's cache is not shared across threads.
    audit::SockDiagListeningSockets sockets;
    procinfo::DirProcFs proc;
    procinfo::FileHasher hasher;
    procinfo::ProcessResolver resolver(proc, hasher);
    auto listeners = audit::takeInventory(sockets, resolver, job.ports);
    // A listener of the last audit that is missing now may be a server restarting: take
    // the inventory again (with backoff, a few seconds in all) before believing it gone.
    const auto missing = [&] {
      if (!listeners) return false;
      std::set<std::string> now;
      for (const auto& l : *listeners) {
        now.insert(listenerIdentity(l.family == AF_INET ? 4 : 6, l.addressText(), l.port));
      }
      return std::any_of(job.previousListeners.begin(), job.previousListeners.end(),
                         [&](const std::string& k) { return !now.contains(k); });
    };
    if (job.audit) {
      for (const auto wait : audit::retryBackoff()) {
        if (!missing()) break;
        std::this_thread::sleep_for(wait);
        listeners = audit::takeInventory(sockets, resolver, job.ports);
      }
    }
    if (!listeners) {
      result.error = listeners.error();
    } else {
      result.listeners = std::move(listeners.value());
      if (job.audit) {
        audit::AuditOptions options;
        options.firewall = job.firewall;
        auto audits = audit::auditRelays(result.listeners, options);
        if (!audits) {
          result.error = audits.error();
        } else {
          result.audits = std::move(audits.value());
        }
      }
    }
    loop_.post([this, result = std::move(result)]() mutable { onJobDone(std::move(result)); });
  });
}

void HostProtection::onJobDone(JobResult result) {
  if (worker_.joinable()) worker_.join();
  jobRunning_ = false;
  if (result.audit) {
    finishAudit(result);
  } else if (result.error) {
    log::warning("Failed to take the mail-server inventory: " + result.error->message);
  } else if (!audited_ || listenerKey(result.listeners) != lastAuditedKey_) {
    auditQueued_ = true;  // listeners changed, or none audited since start-up
  }
  if (auditQueued_) startQueuedAudit();
}

void HostProtection::finishAudit(const JobResult& result) {
  summary_.running = false;
  if (result.error) {
    summary_.error = result.error->message;
    log::error("Failed to audit the mail servers: " + result.error->message);
    // Retried on request or when the listeners change, not every inventory.
    audited_ = true;
    lastAuditedKey_ = listenerKey(result.listeners);
  } else {
    summary_.error.clear();
    audited_ = true;
    lastAuditedKey_ = listenerKey(result.listeners);
    std::map<std::string, store::AuditRow> before;
    for (const auto& e : summary_.entries) {
      before.emplace(listenerIdentity(e.result.family, e.result.address, e.result.port), e.result);
    }
    summary_.finished = clock_.now();
    summary_.entries.clear();
    lanProbeAddresses_.clear();
    std::vector<store::AuditRow> rows;
    for (audit::ListenerAudit a : result.audits) {
      for (const auto& v : a.lan) lanProbeAddresses_.insert(v.probeAddress);
      // Refused or closed before the banner even after the retries: a server restarting,
      // most likely. The last real answer of this listener says more than "unreachable".
      const auto last = before.find(listenerIdentity(a.listener.family == AF_INET ? 4 : 6,
                                                     a.listener.addressText(), a.listener.port));
      if (!a.transientFailure && last != before.end()) {
        // The same for one LAN vantage (the server went away between two probes).
        const auto earlier = auditOf(last->second).lan;
        for (auto& v : a.lan) {
          if (!v.transient) continue;
          const auto kept = std::find_if(earlier.begin(), earlier.end(), [&](const auto& e) {
            return e.subnet == v.subnet && e.relay != audit::RelayVerdict::Unreachable;
          });
          if (kept == earlier.end()) continue;
          const std::string now = v.reason;
          v = *kept;
          if (v.reason.rfind("kept", 0) != 0) v.reason = "kept (" + now + "): " + v.reason;
        }
      }
      AuditEntryView entry;
      entry.result = rowOf(a, summary_.finished);
      if (a.transientFailure && last != before.end() && last->second.relay != "unreachable") {
        const std::string now = entry.result.reason;
        entry.result = last->second;
        const std::string kept = "kept from the audit before: this time ";
        if (entry.result.reason.rfind(kept, 0) != 0) {
          entry.result.reason = kept + now + "; then " + entry.result.reason;
        }
        log::warning("Mail-server audit: " + listenerText(entry.result) +
                     " did not answer (restarting?); its last result is kept");
      }
      entry.findings = findingsOf(entry.result);
      for (const auto& f : entry.findings) {
        if (f.severity == "info") continue;
        const std::string line = "Mail-server audit: " + f.title;
        if (f.severity == "critical") {
          log::error(line);
        } else {
          log::warning(line);
        }
      }
      rows.push_back(entry.result);
      summary_.entries.push_back(std::move(entry));
    }
    writer_.saveAudit(std::move(rows), [](Result<void> saved) {
      if (!saved) log::error(saved.error().message);
    });
    raiseAlerts(summary_.entries);
  }
  auto waiting = std::move(waitingCurrent_);
  waitingCurrent_.clear();
  for (auto& done : waiting) done(summary_);
  if (guard_.onAuditFinished) guard_.onAuditFinished(summary_);
}

// The Guard methods of the host firewall and the audit.

FirewallInfo Guard::firewall() const { return impl_->host->info(); }

void Guard::firewallEnable(int callerPid, bool confirmed, Done<EnableOutcome> done) {
  impl_->host->enable(callerPid, confirmed, std::move(done));
}

void Guard::firewallDisable(Done<FirewallInfo> done) {
  impl_->host->change([](firewall::HostFirewall& fw) { return fw.disable(); }, std::move(done));
}

// Arguments are checked first, so that what remains to fail is the kernel or the disk.
void Guard::firewallAllow(const std::string& spec, bool localOnly, Done<FirewallInfo> done) {
  if (auto parsed = rules::parseService(spec, localOnly); !parsed) {
    return done(invalidArgument(parsed.error().message));
  }
  impl_->host->change([&](firewall::HostFirewall& fw) { return fw.allow(spec, localOnly); },
                      std::move(done));
}

void Guard::firewallRemove(const std::string& name, Done<FirewallInfo> done) {
  if (auto next = rules::withoutService(impl_->host->info().state, name); !next) {
    return done(notFound(next.error().message));
  }
  impl_->host->change([&](firewall::HostFirewall& fw) { return fw.remove(name); }, std::move(done));
}

void Guard::firewallSetLocalSubnets(const std::vector<std::string>& cidrs,
                                    Done<FirewallInfo> done) {
  if (auto next = rules::withLocalSubnets(impl_->host->info().state, cidrs); !next) {
    return done(invalidArgument(next.error().message));
  }
  impl_->host->change([&](firewall::HostFirewall& fw) { return fw.setLocalSubnets(cidrs); },
                      std::move(done));
}

Result<std::vector<store::ProbeRow>> Guard::probes(std::size_t limit) {
  return impl_->host->probes(limit);
}

AuditSummary Guard::auditResults() const { return impl_->host->summary(); }

void Guard::runAudit(std::function<void(const AuditSummary&)> done) {
  impl_->host->runAudit(std::move(done));
}

}  // namespace mailguard::service
