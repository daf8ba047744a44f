#include "mailguard/service/guard.hpp"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <system_error>

#include "detection.hpp"
#include "guard_impl.hpp"
#include "mailguard/service/log.hpp"
#include "shared_socket.hpp"

namespace mailguard::service {
namespace {

using rules::ProgramIdentity;
using rules::Verdict;

// The key under which a program's identity is remembered: the parts that are stored.
std::string identityKey(const ProgramIdentity& id) {
  std::string key = id.path;
  key += '\0';
  key += id.sha256;
  key += '\0';
  key += id.scriptPath;
  key += '\0';
  key += id.scriptSha256;
  return key;
}

std::string joinCmdline(const std::vector<std::string>& argv) {
  constexpr std::size_t kMax = 4096;
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    out += a;
    if (out.size() >= kMax) {
      out.resize(kMax);
      break;
    }
  }
  return out;
}

netfilter::PacketVerdict toPacketVerdict(Verdict v) {
  switch (v) {
    case Verdict::Allow:
      return netfilter::PacketVerdict::RepeatWithAllow;
    case Verdict::Reject:
      return netfilter::PacketVerdict::RepeatWithReject;
    case Verdict::Hold:
      return netfilter::PacketVerdict::Drop;
  }
  return netfilter::PacketVerdict::Drop;
}

// A held SYN is retried by TCP (1 s, 3 s, 7 s, ...): the retries are the same attempt,
// so they are decided afresh but recorded once.
constexpr auto kHeldRetryWindow = std::chrono::minutes(3);
constexpr auto kRulesCheckEvery = std::chrono::milliseconds(100);
// A program's row (uid, last attempt) is refreshed at most this often; its attempts are
// each recorded anyway and carry the time.
constexpr auto kSightingEvery = std::chrono::seconds(1);
// Issue #8 item 3: the kernel's queue counters are read this often while packets come.
constexpr auto kPressureCheckEvery = std::chrono::milliseconds(100);
// A flood of held SYNs must not grow memory for kHeldRetryWindow: beyond this many, the
// retries of the evicted attempts are recorded once more, which is all it costs.
constexpr std::size_t kMaxHeld = 16'384;

// Packets the kernel dropped for guardd so far. Its own counters count every one (queue
// full, or no room in the socket buffer); without them (systemd's ProcSubset=pid hides
// them) the ENOBUFS count, one per overflow of one or more packets, is a lower bound.
std::uint64_t droppedSoFar(const netfilter::QueueStats& stats,
                           const Result<netfilter::KernelQueueCounters>& kernel) {
  if (!kernel) return stats.kernelDropped;
  return std::max(stats.kernelDropped, std::uint64_t{kernel->queueDropped} + kernel->userDropped);
}

}  // namespace

store::ProgramRecord recordOf(const ProgramView& view, bool quarantined) {
  store::ProgramRecord record;
  record.id = view.id;
  record.identity = view.identity;
  record.uid = view.uid;
  record.firstSeen = view.firstSeen;
  record.lastAttempt = view.lastAttempt;
  record.quarantined = quarantined;
  return record;
}

Result<void> Guard::Impl::start() {
  auto opened = store::SqliteStore::open(options.stateDir);
  if (!opened) return opened.error();
  db = std::move(opened.value());
  auto started = store::AttemptWriter::start(options.stateDir);
  if (!started) return started.error();
  writer = std::move(started.value());
  writer->setRetention(std::chrono::hours(24) * options.settings.retentionDays,
                       options.settings.maxAttempts);

  auto known = db->loadPrograms();
  if (!known) return known.error();
  for (auto& p : known.value()) {
    ProgramView v;
    v.id = p.id;
    v.identity = p.identity;
    v.uid = p.uid;
    v.attempts = p.attempts;
    v.lastAttempt = p.lastAttempt;
    v.firstSeen = p.firstSeen;
    v.state = p.quarantined ? rules::ProgramState::Quarantined : rules::ProgramState::Pending;
    idByKey[identityKey(v.identity)] = v.id;
    nextProgramId = std::max(nextProgramId, v.id + 1);
    programs.emplace(v.id, std::move(v));
  }
  reloadRulesIfChanged();
  detection = std::make_unique<Detection>(*this);
  if (auto r = detection->start(); !r) return r.error();
  store::AttemptQuery newest;
  newest.limit = 1;
  auto last = db->attempts(newest);
  if (!last) return last.error();
  if (!last->empty()) nextAttemptId = last->front().id + 1;

  auto table = procinfo::SockDiagSocketTable::open();
  if (!table) return table.error();
  sockets = std::move(table.value());

  auto manager = netfilter::RulesetManager::open();
  if (!manager) return manager.error();
  nft = std::move(manager.value());
  auto probed = nft->probeQueueBackend();
  if (!probed) return probed.error();
  backend = probed.value();

  // Bind the queue before the table exists, so the first queued SYN has a reader.
  auto source = netfilter::NfqueuePacketSource::open(options.settings.queueNumber,
                                                     options.settings.queueMaxLength);
  if (!source) return source.error();
  queue = std::move(source.value());
  if (auto r = loop.add(queue->fd(), EPOLLIN, [this](std::uint32_t) { onQueueReadable(); }); !r) {
    return r.error();
  }

  // The whole table, with host_in when the owner enabled the host firewall (issue #6).
  host = std::make_unique<HostProtection>(self, options, loop, *nft, backend, clock);
  // Issue #8: subscribed before the first apply, so no foreign change goes unseen; a
  // foreign change is undone with the same apply (host->reapply()).
  tamper = std::make_unique<TamperWatch>(self, options, loop, *nft, clock,
                                         [this] { return host->reapply(); });
  if (auto r = tamper->start(); !r) {
    log::warning("Changes to the table by other programs are not noticed: " + r.error().message);
  }
  if (auto r = host->start(); !r) return r.error();
  enforcing = true;
  log::info("enforcing: table 'inet " + options.tableName + "' in place, queue " +
            std::to_string(options.settings.queueNumber) + ", backend " +
            std::string(netfilter::toString(backend)));
  loop.every(std::chrono::seconds(1), [this] { housekeeping(); });
  return {};
}

void Guard::Impl::reloadRulesIfChanged() {
  auto version = db->rulesVersion();
  if (!version) {
    storeError = version.error().message;
    return;
  }
  if (version.value() == rulesVersion) return;
  auto loaded = db->loadRules();
  if (!loaded) {
    storeError = loaded.error().message;
    log::error(loaded.error().message);
    return;
  }
  approvalRules = std::move(loaded.value());
  rulesVersion = version.value();
  refreshStates();
}

// A program's listed state follows the rules; quarantine is kept as it was.
void Guard::Impl::refreshStates() {
  for (auto& [id, view] : programs) {
    const bool quarantined = view.state == rules::ProgramState::Quarantined;
    view.state = rules::stateOf(view.identity, quarantined, approvalRules);
  }
}

void Guard::Impl::housekeeping() {
  reloadRulesIfChanged();
  if (host) host->flushProbes();
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(held, [&](const auto& entry) { return now - entry.second > kHeldRetryWindow; });
  const auto stats = writer->stats();
  counters.attemptsDropped = stats.attemptsDropped;
  counters.storeErrors = stats.writeErrors;
  if (!stats.lastError.empty()) {
    if (storeError != stats.lastError) log::error(stats.lastError);
    storeError = stats.lastError;
  } else {
    storeError.clear();
  }
  flushUnsavedAlerts();
  counters.queueDropped = droppedSoFar(queue->stats(), queue->kernelCounters());
}

// Alerts a full disk kept in memory (DetectorStore::addAlert) are written once it has
// room; until then status says how many wait, so the owner knows to free space.
void Guard::Impl::flushUnsavedAlerts() {
  std::size_t waiting = 0;
  std::uint64_t dropped = 0;
  std::string error;
  for (store::DetectorStore* s :
       {detection ? detection->alertStore() : nullptr, host ? host->alertStore() : nullptr,
        tamper ? tamper->alertStore() : nullptr}) {
    if (s == nullptr) continue;
    if (s->unsavedAlerts() > 0) {
      if (auto r = s->flushUnsaved(); !r) error = r.error().message;
    }
    waiting += s->unsavedAlerts();
    dropped += s->alertsDropped();
  }
  if (waiting == 0) return;
  storeError =
      std::to_string(waiting) + (waiting == 1 ? " alert waits" : " alerts wait") + " to be stored" +
      (dropped > 0 ? " (" + std::to_string(dropped) + " dropped, the oldest)" : "") + ": " + error;
}

void Guard::Impl::onQueueReadable() {
  readThisWakeup = 0;
  auto r = queue->receive([this](const netfilter::QueuedPacket& p) {
    ++readThisWakeup;
    decide(p);
  });
  if (!r) log::error(r.error().message);
}

ProgramView& Guard::Impl::remember(const ProgramIdentity& identity,
                                   std::optional<std::uint32_t> uid) {
  const auto key = identityKey(identity);
  auto found = idByKey.find(key);
  if (found == idByKey.end()) {
    ProgramView v;
    v.id = nextProgramId++;
    v.identity = identity;
    v.uid = uid.value_or(0);
    v.firstSeen = clock.now();
    found = idByKey.emplace(key, v.id).first;
    programs.emplace(v.id, std::move(v));
  }
  auto& view = programs.at(found->second);
  view.identity = identity;  // keep the newest flags (trust, deleted)
  if (uid) view.uid = *uid;
  return view;
}

void Guard::Impl::decide(const netfilter::QueuedPacket& packet) {
  if (!packet.tuple) {
    // Only TCP to mail ports is queued; anything else here is unexpected: fail closed.
    (void)queue->verdict(packet.id, netfilter::PacketVerdict::Drop);
    return;
  }
  const auto& tuple = *packet.tuple;
  // Rules changed through guardd itself are reloaded at once (setRule, forget); changes by
  // another process are noticed within 100 ms, instead of an SQLite read per verdict.
  if (const auto now = std::chrono::steady_clock::now(); now - lastRulesCheck > kRulesCheckEvery) {
    lastRulesCheck = now;
    reloadRulesIfChanged();
  }
  if (const auto now = std::chrono::steady_clock::now();
      now - lastPressureCheck > kPressureCheckEvery) {
    lastPressureCheck = now;
    // Without the kernel's counters, the packets read in one go are a lower bound of the
    // backlog.
    const auto kernel = queue->kernelCounters();
    const std::uint32_t waiting =
        kernel ? std::max(readThisWakeup, kernel->waiting) : readThisWakeup;
    pressure.observe(droppedSoFar(queue->stats(), kernel), waiting, options.settings.queueMaxLength,
                     now);
  }

  std::optional<procinfo::ProcessInfo> process;
  std::string unattributed;
  auto owner = sockets->findTcp(tuple);
  if (!owner) {
    unattributed = owner.error().message;
  } else if (!owner.value()) {
    unattributed = "the socket was already closed";
  } else if (auto info = resolver.describeHolder(owner.value()->inode, packet.uid); !info) {
    unattributed = info.error().message;
  } else {
    process = std::move(info.value());
  }
  // Issue #8 item 7: an approved holder of the socket cannot vouch for another holder.
  std::string sharedNote;
  if (process) {
    const auto allowedAlone = [this](const procinfo::ProcessInfo& p) {
      const auto it = idByKey.find(identityKey(p.identity));
      const bool quarantined =
          it != idByKey.end() && programs.at(it->second).state == rules::ProgramState::Quarantined;
      return rules::decide(p.identity, quarantined, approvalRules).verdict == Verdict::Allow;
    };
    if (auto shared = unapprovedCoHolder(resolver, *process, owner.value()->inode, allowedAlone)) {
      process = std::move(shared->holder);
      sharedNote = std::move(shared->note);
    }
  }

  ProgramView* program = nullptr;
  std::optional<ProgramIdentity> identity;
  if (process) {
    identity = process->identity;
    program = &remember(process->identity, process->uid);
  }
  // The detector sees each connection once (not its SYN retries) and may quarantine
  // the program on this very attempt (issue #5).
  const auto heldKey = std::make_pair(tuple.srcAddress(), tuple.srcPort);
  DetectorVerdict detected;
  if (process) detected = detection->assess(*process, *program, tuple, !held.contains(heldKey));
  const bool quarantined =
      program && (program->state == rules::ProgramState::Quarantined || detected.quarantined);
  auto decision = rules::decide(identity, quarantined, approvalRules);
  if (!process) decision.reason = "could not attribute to a process: " + unattributed;
  decision.reason += sharedNote;
  if (detected.throttle && decision.verdict == Verdict::Allow) {
    decision.verdict = Verdict::Hold;
    decision.reason = detected.reason;
  }
  // A reset lets the bot open its next connection at once and keep the queue full; a
  // drop makes it wait for its own timeout (see queue_pressure.hpp).
  if (decision.verdict == Verdict::Reject &&
      pressure.overloaded(std::chrono::steady_clock::now())) {
    decision.verdict = Verdict::Hold;
    decision.reason += "; dropped, not reset, while the queue is overloaded";
  }
  (void)queue->verdict(packet.id, toPacketVerdict(decision.verdict));
  detection->afterVerdict();

  switch (decision.verdict) {
    case Verdict::Allow:
      ++counters.allowed;
      break;
    case Verdict::Hold:
      ++counters.held;
      break;
    case Verdict::Reject:
      ++counters.rejected;
      break;
  }

  if (process && decision.verdict == Verdict::Allow) detection->allowed(*process, tuple);
  if (decision.verdict == Verdict::Hold) {
    const auto now = std::chrono::steady_clock::now();
    if (held.size() >= kMaxHeld && !held.contains(heldKey)) held.erase(held.begin());
    auto [it, fresh] = held.try_emplace(heldKey, now);
    if (!fresh) return;  // a SYN retry of an attempt already recorded
  } else {
    held.erase(heldKey);
  }

  store::AttemptRecord attempt;
  attempt.time = clock.now();
  attempt.src = tuple.srcAddress();
  attempt.srcPort = tuple.srcPort;
  attempt.dst = tuple.dstAddress();
  attempt.dstPort = tuple.dstPort;
  attempt.verdict = decision.verdict;
  attempt.reason = decision.reason;
  attempt.uid = packet.uid.value_or(0);
  if (process) {
    attempt.pid = process->pid;
    attempt.uid = process->uid;
    attempt.path = process->identity.path;
    attempt.scriptPath = process->identity.scriptPath;
    attempt.cmdline = joinCmdline(process->cmdline);
  }
  if (program) {
    attempt.programId = program->id;
    ++program->attempts;
    program->lastAttempt = attempt.time;
    const auto newState = rules::stateOf(program->identity, quarantined, approvalRules);
    const bool changed = newState != program->state || program->attempts == 1;
    program->state = newState;
    const auto steadyNow = std::chrono::steady_clock::now();
    auto& submitted = sightingSubmitted[program->id];
    if (changed || steadyNow - submitted >= kSightingEvery) {
      submitted = steadyNow;
      writer->submit(recordOf(*program, quarantined));
    }
    if (changed && self.onProgramChanged) self.onProgramChanged(*program);
  }
  if (log::enabled(log::Level::Debug)) {
    log::debug(std::string(rules::toString(decision.verdict)) + " " + attempt.dst + ":" +
               std::to_string(attempt.dstPort) + " pid " + std::to_string(attempt.pid) + " " +
               log::quote(attempt.path) + ": " + decision.reason);
  }
  attempt.id = nextAttemptId++;
  if (self.onAttempt) self.onAttempt(attempt);
  writer->submit(std::move(attempt));
}

Result<ProgramIdentity> Guard::Impl::identityFor(const ProgramRef& ref) {
  if (const auto* id = std::get_if<std::int64_t>(&ref.target)) {
    const auto it = programs.find(*id);
    if (it == programs.end()) {
      return notFound("no program with id " + std::to_string(*id) + " (see the programs list)");
    }
    return it->second.identity;
  }
  const auto& path = std::get<std::string>(ref.target);
  auto fileIdentity = [&](const std::string& p,
                          const char* what) -> Result<std::pair<std::string, std::string>> {
    if (p.empty() || p.front() != '/') {
      return invalidArgument(std::string(what) + " must be an absolute path, got " + log::quote(p));
    }
    std::error_code ec;
    const auto real = std::filesystem::canonical(p, ec);
    if (ec) {
      return notFound(std::string(what) + " " + log::quote(p) + " does not exist: " + ec.message());
    }
    if (!std::filesystem::is_regular_file(real, ec)) {
      return invalidArgument(std::string(what) + " " + log::quote(p) + " is not a regular file");
    }
    auto hash = hasher.sha256OfPath(real);
    if (!hash) return makeError(hash.error().message);
    return std::make_pair(real.string(), hash.value());
  };
  ProgramIdentity identity;
  auto exe = fileIdentity(path, "program");
  if (!exe) return exe.error();
  std::tie(identity.path, identity.sha256) = exe.value();
  if (!ref.script.empty()) {
    auto script = fileIdentity(ref.script, "script");
    if (!script) return script.error();
    std::tie(identity.scriptPath, identity.scriptSha256) = script.value();
  }
  return identity;
}

Result<ProgramView> Guard::Impl::setRule(const ProgramRef& ref, rules::RuleAction action) {
  auto resolved = identityFor(ref);
  if (!resolved) return resolved.error();
  const auto& identity = resolved.value();
  rules::ApprovalRule rule;
  rule.action = action;
  rule.path = identity.path;
  rule.sha256 = identity.sha256;
  rule.scriptPath = identity.scriptPath;
  rule.scriptSha256 = identity.scriptSha256;
  // Synchronous: the caller is told "done" only once the rule is on disk.
  auto added = db->addRule(rule);
  if (!added) {
    storeError = added.error().message;
    return makeError(added.error().message);
  }
  reloadRulesIfChanged();
  const bool knownBefore = idByKey.contains(identityKey(identity));
  auto& view = remember(identity, std::nullopt);  // an approval says nothing about the user
  if (view.state != rules::ProgramState::Quarantined) {
    view.state = rules::stateOf(view.identity, false, approvalRules);
  }
  if (!knownBefore) writer->submit(recordOf(view, false));
  if (self.onProgramChanged) self.onProgramChanged(view);
  return view;
}

Guard::Guard(Options options, EventLoop& loop)
    : impl_(std::make_unique<Impl>(*this, std::move(options), loop)) {}

Guard::~Guard() = default;

Result<std::unique_ptr<Guard>> Guard::create(Options options, EventLoop& loop) {
  std::unique_ptr<Guard> guard(new Guard(std::move(options), loop));
  if (auto r = guard->impl_->start(); !r) return r.error();
  return guard;
}

void Guard::shutdown() {
  auto& d = *impl_;
  if (d.queue) d.loop.remove(d.queue->fd());
  if (d.host) d.host->flushProbes();
  if (d.detection) d.detection->stop();
  if (d.writer) d.writer->flush();
  if (d.nft && d.options.settings.removeRulesOnExit) {
    if (auto r = d.nft->remove(d.options.tableName); !r) {
      log::error(r.error().message);
    } else {
      log::info("removed table 'inet " + d.options.tableName + "' (remove_rules_on_exit)");
    }
  } else {
    log::info("stopping; table 'inet " + d.options.tableName +
              "' stays in place, so mail connections fail until guardd runs again");
  }
  d.enforcing = false;
}

StatusInfo Guard::status() const {
  const auto& d = *impl_;
  StatusInfo s;
  s.enforcing = d.enforcing;
  s.backend = std::string(netfilter::toString(d.backend));
  s.version = MAILGUARD_VERSION;
  s.counters = d.counters;
  if (d.tamper) s.counters.tableRestores = d.tamper->restores();
  s.storeError = d.storeError;
  return s;
}

std::vector<ProgramView> Guard::programs() const {
  std::vector<ProgramView> out;
  out.reserve(impl_->programs.size());
  for (const auto& [id, view] : impl_->programs) out.push_back(view);
  return out;
}

Result<std::vector<store::AttemptRecord>> Guard::attempts(const store::AttemptQuery& q) {
  return impl_->db->attempts(q);
}

void Guard::approve(const ProgramRef& ref, Done<ProgramView> done) {
  done(impl_->setRule(ref, rules::RuleAction::Approve));
}

void Guard::deny(const ProgramRef& ref, Done<ProgramView> done) {
  done(impl_->setRule(ref, rules::RuleAction::Deny));
}

void Guard::forget(const ProgramRef& ref, Done<bool> done) { done(impl_->forget(ref)); }

Result<bool> Guard::Impl::forget(const ProgramRef& ref) {
  auto& d = *this;
  auto resolved = d.identityFor(ref);
  if (!resolved) return resolved.error();
  const auto& identity = resolved.value();
  const auto before = d.approvalRules.size();
  if (auto r = d.db->removeRules(identity.path, identity.scriptPath); !r) {
    return makeError(r.error().message);
  }
  d.reloadRulesIfChanged();
  const bool removed = d.approvalRules.size() != before;
  if (const auto it = d.idByKey.find(identityKey(identity)); it != d.idByKey.end()) {
    if (self.onProgramChanged) self.onProgramChanged(d.programs.at(it->second));
  }
  return removed;
}

}  // namespace mailguard::service
