// Guard: builds the parts (guard_impl.hpp), wires them, and answers the D-Bus adaptor.
// The path of a queued packet is verdict_pipeline.cpp.
#include "mailguard/service/guard.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <malloc.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <system_error>

#include "guard_impl.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/mta/postfix_instance.hpp"
#include "mailguard/mta/postfix_log.hpp"
#include "mailguard/mta/submitter.hpp"
#include "mailguard/rules/code_loading.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/verdict.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

using rules::ProgramIdentity;

// Rules changed by another process (another guardd tool writing the database) are
// noticed this fast; changes made through guardd are reloaded at once.
constexpr auto kRulesCheckEvery = std::chrono::milliseconds(100);
// The kernel's queue counters are read this often (queue pressure, dropped packets).
constexpr auto kPressureCheckEvery = std::chrono::milliseconds(100);
constexpr auto kHousekeepingEvery = std::chrono::seconds(1);
// Records (attempts, sightings) waiting for the store writer: about half a second of its
// pace. A flood beyond that is counted as dropped rather than held in memory: with the
// kernel refusing a denied bot's connects at tens of thousands a second, a deeper queue
// was most of guardd's memory.
constexpr std::size_t kMaxQueuedRecords = 20'000;

std::string baseName(const std::string& path) {
  return std::filesystem::path(path).filename().string();
}

// The user's login name, or "uid N" when the passwd database has none.
std::string userName(std::uint32_t uid) {
  std::array<char, 4096> buffer{};
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

// A file in a home folder (/home/NAME/..., /root/...) is its owner's, who alone may change
// it: approved for that user by default. Elsewhere (the system's root-owned folders) for
// every user, as installed programs are meant to be.
std::optional<std::uint32_t> homeOwner(const std::string& path) {
  if (path.starts_with("/root/")) return 0U;
  if (!path.starts_with("/home/")) return std::nullopt;
  const auto end = path.find('/', 6);
  if (end == std::string::npos) return std::nullopt;
  struct stat st {};
  if (::stat(path.substr(0, end).c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint32_t>(st.st_uid);
}

// The first bytes of a file, for its "#!" line (execve(2) reads at most 256 here).
std::string headOf(const std::string& path) {
  const Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!fd) return {};
  std::array<char, 256> buf{};
  const auto n = ::read(fd.get(), buf.data(), buf.size());
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

// env(1) looks the name up in PATH; guardd's own PATH is not the user's, so the standard
// Debian one is searched.
std::optional<std::string> onPath(const std::string& name) {
  if (name.starts_with('/')) return name;
  for (const char* dir :
       {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    const std::string candidate = std::string(dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

}  // namespace

Result<void> Guard::Impl::start() {
  auto opened = store::SqliteStore::open(options.stateDir);
  if (!opened) return opened.error();
  reader = std::move(opened.value());
  auto started = store::StoreWriter::start(options.stateDir, kMaxQueuedRecords);
  if (!started) return started.error();
  writer = std::move(started.value());
  writer->setRetention(std::chrono::hours(24) * options.settings.retentionDays,
                       options.settings.maxAttempts);
  records = std::make_unique<WriterRecordSink>(*writer);
  auto lastAlert = reader->lastAlertId();
  if (!lastAlert) return lastAlert.error();
  alerts = std::make_unique<AlertSink>(*writer, *lastAlert, self.onAlert);

  // The rules first: a stored program's state decides whether the registry may evict it.
  reloadRulesIfChanged();
  auto known = reader->loadPrograms();
  if (!known) return known.error();
  std::vector<ProgramView> views;
  views.reserve(known->size());
  for (auto& p : known.value()) {
    ProgramView v;
    v.id = p.id;
    v.identity = std::move(p.identity);
    v.uid = p.uid;
    v.attempts = p.attempts;
    v.lastAttempt = p.lastAttempt;
    v.firstSeen = p.firstSeen;
    v.state = rules::stateOf(v.identity, p.quarantined, approvals);
    if (p.decided) decidedBefore[v.id] = *p.decided;
    views.push_back(std::move(v));
  }
  programs.load(std::move(views));

  // User presence: never fails for want of logind or input devices (the evidence is then
  // "unknown"); it joins the loop through one epoll fd of its own.
  presence::PresenceOptions presenceOptions;
  presenceOptions.inputDevices = options.settings.presenceInputDevices;
  presenceOptions.log = [](bool warning, std::string_view message) {
    warning ? log::warning(message) : log::info(message);
  };
  auto presenceSource = presence::PresenceSource::create(std::move(presenceOptions));
  if (!presenceSource) return presenceSource.error();
  presence = std::move(presenceSource.value());
  if (auto r =
          loop.add(presence->pollFd(), EPOLLIN, [this](std::uint32_t) { presence->dispatch(); });
      !r) {
    return r.error();
  }
  presencePrepare = loop.addPrepare([this] { return presence->prepare(); });

  Detection::Deps deps{options.settings,
                       clock,
                       loop,
                       programs,
                       approvals,
                       proc,
                       resolver,
                       *reader,
                       *writer,
                       *alerts,
                       [this](const ProgramView& v) {
                         // A quarantine: the program's mail still queued is held too.
                         if (mta) mta->programChanged(v);
                         if (self.onProgramChanged) self.onProgramChanged(v);
                       },
                       [this](const ProgramRef& ref, Done<ProgramIdentity> done) {
                         identityFor(ref, std::move(done));
                       }};
  deps.onDecisionsChanged = [this] { policyChanged(); };
  deps.presence = [this](std::uint32_t uid, MonoTime now) { return presence->evidence(uid, now); };
  deps.dnsEvidence = [this](const procinfo::ProcessInfo& p, const std::string& dst) {
    return dnsEvidence(p, dst);
  };
  detection = std::make_unique<Detection>(std::move(deps));
  if (auto r = detection->start(); !r) return r.error();
  auto lastAttempt = reader->lastAttemptId();
  if (!lastAttempt) return lastAttempt.error();

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
  // From here on the loop never hashes a file itself: the hasher's thread does, and a
  // packet whose program is not hashed yet waits for it (VerdictPipeline::resumeParked).
  hasher.startBackground([this] { loop.post([this] { pipeline->resumeParked(); }); });
  auto source = netfilter::NfqueuePacketSource::open(options.settings.queueNumber,
                                                     options.settings.queueMaxLength);
  if (!source) return source.error();
  queue = std::move(source.value());
  // The BPF hooks last: everything that can refuse to start has been tried (the hooks
  // must never stay attached, even briefly, by a guardd that then exits).
  if (auto k = openKernelIdentity(); k) {
    kernelIdentity = std::move(k.value());
    fastPath = std::make_unique<KernelFastPath>(*kernelIdentity);
    attribution = std::make_unique<KernelAttribution>(*sockets, resolver, proc, *kernelIdentity);
    log::info("attribution: kernel (" + kernelIdentity->describe() + ")");
    if (kernelIdentity->dnsTapRunning()) {
      dns = std::make_unique<dns::Observations>(dns::resolverIsLocal());
      kernelIdentity->setDnsSink([this](const kernel::DnsPacket& p) { onDnsPacket(p); });
      log::info(dns->localResolver()
                    ? "dns: the kernel's tap runs; lookups through the local caching resolver "
                      "are made in its name, so only programs that ask a name server "
                      "themselves are seen"
                    : "dns: the kernel's tap runs; every program's lookups are seen");
    } else {
      log::warning("dns: programs' lookups are not seen: " + kernelIdentity->dnsTapError());
    }
    // The reply tap rides on the DNS tap's skb programs.
    if (kernelIdentity->dnsTapRunning())
      kernelIdentity->setSmtpSink([this](const kernel::SmtpSegment& s) { onSmtpSegment(s); });
  } else {
    attribution = std::make_unique<ProcAttribution>(*sockets, resolver);
    log::info("attribution: proc (the BPF hooks are not used: " + k.error().message + ")");
  }
  pipeline = std::make_unique<VerdictPipeline>(
      VerdictPipeline::Seams{*queue, *attribution, *detection, programs, approvals, *records,
                             clock},
      VerdictPipeline::Observers{[this](const store::AttemptRecord& a) {
                                   if (self.onAttempt) self.onAttempt(a);
                                 },
                                 [this](const ProgramView& v) {
                                   if (self.onProgramChanged) self.onProgramChanged(v);
                                 }},
      options.settings.queueMaxLength, *lastAttempt + 1);
  pipeline->setFastPath(fastPath.get());
  pipeline->setTaintCheck([config = options.settings.eximConfig](const procinfo::ProcessInfo& p) {
    return mta::foreignMtaConfig(p, config).value_or(std::string{});
  });
  if (!options.settings.mtaSocket.empty()) {
    auto gate = MtaGate::open(
        MtaGate::Deps{loop, clock, resolver, programs, approvals, *pipeline, *detection},
        options.settings.mtaSocket, options.stateDir / "mta-held", options.settings.eximLog,
        mta::postfixInstalled(options.settings.postfixConfigDirs) ? options.settings.postfixLog
                                                                  : std::string{});
    if (gate) {
      mta = std::move(gate.value());
      mta::BackscatterConfig watch;
      watch.floodPerHour = options.settings.backscatterFloodPerHour;
      watch.remember = std::chrono::hours(options.settings.backscatterRememberHours);
      backscatter = std::make_unique<BackscatterMonitor>(clock, *alerts, watch);
      mta->watchBackscatter(*backscatter);
      log::info("mta: answering the local MTA at " + options.settings.mtaSocket);
      // postfix where it is installed: an instance is a configuration directory with a
      // main.cf ([mta] postfix_config_dirs; /etc/postfix by default).
      std::vector<mta::PostfixInstance> instances;
      for (const auto& dir : options.settings.postfixConfigDirs) {
        if (!std::filesystem::exists(std::filesystem::path(dir) / "main.cf")) continue;
        auto instance = mta::readPostfixInstance(dir);
        if (!instance) {
          log::warning("mta: " + instance.error().message);
          continue;
        }
        instances.push_back(std::move(instance.value()));
      }
      if (auto r = mta->watchPostfix(instances); !r) {
        // Its milter is unreachable: cleanup tempfails, the mail waits in the maildrop.
        log::warning("mta: mail handed to postfix waits in its maildrop, not decided: " +
                     r.error().message);
      }
    } else {
      // exim's ACL freezes every message it cannot ask about: nothing is lost meanwhile.
      log::warning("mta: mail handed to the local MTA is held, not decided: " +
                   gate.error().message);
    }
  }
  if (kernelIdentity) {
    if (auto r = loop.add(kernelIdentity->eventsFd(), EPOLLIN,
                          [this](std::uint32_t) { readKernelEvents(); });
        !r) {
      return r.error();
    }
    preloadKernel();
  }
  // The queue is read on a thread of its own, from the loop's first round on.
  verdicts =
      std::make_unique<VerdictThread>(loop, queue->fd(), [this] { return pipeline->onReadable(); });
  if (auto r = verdicts->start(); !r) return r.error();
  loop.post([this] { verdicts->go(); });
  pipeline->setDeferredWake([this] { loop.post([] {}); });
  // What an early verdict left to do is done once the loop finds nothing else to do, at
  // the latest a moment later (VerdictPipeline::kMaxDeferTime) or once kMaxDeferred wait.
  deferredPrepare = loop.addPrepare([this]() -> std::optional<std::chrono::milliseconds> {
    if (pipeline->deferredDue()) runDeferred();
    if (!pipeline->hasDeferred()) return std::nullopt;
    return std::chrono::milliseconds(1);
  });
  deferredIdle = loop.addIdle([this] {
    runDeferred();
    returnFreedMemory();
  });

  // The whole table, with host_in when the owner enabled the host firewall.
  // With the BPF hooks in force the table accepts their marked SYNs before the queue rule.
  host = std::make_unique<HostProtection>(self, options, loop, *nft, backend, clock, *reader,
                                          *writer, *alerts,
                                          kernelIdentity ? options.settings.kernelMarkBit : 0);
  // Subscribed before the first apply, so no foreign change goes unseen; a foreign change
  // is undone with the same apply (host->reapply()).
  tamper = std::make_unique<TamperWatch>(options, loop, *nft, clock, *alerts,
                                         [this] { return host->reapply(); });
  if (auto r = tamper->start(); !r) {
    log::warning("Changes to the table by other programs are not noticed: " + r.error().message);
  }
  if (auto r = host->start(); !r) return r.error();
  household =
      std::make_unique<HouseholdScanner>(options.settings, loop, clock, *reader, *writer, *alerts);
  outside = std::make_unique<OutsideCheck>(options.settings, loop, clock, *reader, *writer, *alerts,
                                           [this] { return outsideEvidence(); });
  outside->onFinished([this](const std::string& report) {
    if (self.onOutsideChecked) self.onOutsideChecked(report);
  });
  outside->start();
  enforcing = true;
  log::info("enforcing: table 'inet " + options.tableName + "' in place, queue " +
            std::to_string(options.settings.queueNumber) + ", backend " +
            std::string(netfilter::toString(backend)));
  if (nft->conntrackEventsRefused()) {
    log::warning(
        "this kernel has no conntrack events (CONFIG_NF_CONNTRACK_EVENTS): the table "
        "goes without 'ct event set', which only spares guardd wake-ups");
  }

  loop.every(kRulesCheckEvery, [this] { reloadRulesIfChanged(); });
  loop.every(kPressureCheckEvery, [this] {
    pipeline->samplePressure();
    pipeline->expireParked();
  });
  loop.every(kHousekeepingEvery, [this] {
    pipeline->expireHeld();
    host->flushProbes();
    detection->collectClassifications();
  });
  return {};
}

void Guard::Impl::runDeferred() {
  if (!pipeline->hasDeferred()) return;
  pipeline->runDeferred();
  // Their connects' events too (queued connects' events wake no one): the ring buffer
  // stays short during a flood of queued connects.
  if (kernelIdentity) readKernelEvents();
}

void Guard::Impl::readKernelEvents() {
  auto read = kernelIdentity->readEvents(
      [this](const kernel::ConnectEvent& e) { pipeline->onKernelEvent(e); });
  if (!read) log::error(read.error().message);
}

// A burst of attempts (a bot's flood) leaves freed heap in holes glibc keeps resident; once
// it is over, at most once a second, that goes back to the system.
void Guard::Impl::returnFreedMemory() {
  const auto& c = pipeline->counters();
  const auto decided = c.allowed + c.held + c.rejected;
  const auto now = clock.monotonic();
  if (decided - decidedAtTrim < kTrimAfterAttempts || now - trimmedAt < std::chrono::seconds(1)) {
    return;
  }
  decidedAtTrim = decided;
  trimmedAt = now;
  ::malloc_trim(0);
}

void Guard::Impl::reloadRulesIfChanged() {
  auto version = reader->rulesVersion();
  if (!version) {
    rulesError = version.error().message;
    return;
  }
  if (version.value() == rulesVersion) return;
  auto loaded = reader->loadRules();
  if (!loaded) {
    if (rulesError != loaded.error().message) log::error(loaded.error().message);
    rulesError = loaded.error().message;
    return;
  }
  rulesError.clear();
  approvals = std::move(loaded.value());
  for (auto& rule : approvals) {
    if (rule.uid) rule.userName = userName(*rule.uid);
  }
  rulesVersion = version.value();
  refreshStates();
  policyChanged();
  if (mta) mta->reconcile();
}

// What the kernel decided by itself may be wrong now: it decides nothing until relearned.
// One packet of the DNS tap: a question a process sent, or the answer it got.
void Guard::Impl::onDnsPacket(const kernel::DnsPacket& packet) {
  if (!dns) return;
  auto message = dns::parsePayload(packet.payload, packet.tcp);
  if (!message) {
    dns->unparsed();  // a TCP continuation, or a message longer than the copy
    return;
  }
  const auto asker = dns::Asker::ofBoottime(packet.task.tgid, packet.task.startBoottimeNs);
  const auto news = dns->record(asker, *message, clock.monotonic());
  // At most once per process and domain per minute (Observations), so a read per line;
  // debug lines: a bot (or the local MTA) asks for thousands of domains.
  if (news.empty() || !log::enabled(log::Level::Debug)) return;
  std::error_code ec;
  const auto exe =
      std::filesystem::read_symlink(proc.root() / std::to_string(packet.task.tgid) / "exe", ec);
  for (const auto& domain : news)
    log::debug("dns: pid " + std::to_string(packet.task.tgid) + " (" +
               log::quote(ec ? std::string("exited") : exe.string()) + ") asked MX for " +
               log::quote(domain));
}

detector::DnsEvidence Guard::Impl::dnsEvidence(const procinfo::ProcessInfo& process,
                                               const std::string& dst) {
  if (!dns || !kernelIdentity) return {};
  const dns::Asker asker{static_cast<std::uint32_t>(process.pid), process.startTime};
  const auto e = dns->evidence(asker, dst, clock.monotonic(), kernelIdentity->dnsTapRunning());
  // One line per attempt: a debug line (a bot's flood would write thousands a second).
  if (e.seen && log::enabled(log::Level::Debug))
    log::debug("dns: pid " + std::to_string(process.pid) + " (" +
               log::quote(process.identity.display()) + ") to " + dst + ": MX asked " +
               (e.mxQueried ? "yes" : "no") + ", destination resolved " +
               (e.dstResolved ? "yes" : "no") + ", mail-server name asked " +
               (e.mailNameQueried ? "yes" : "no"));
  return e;
}

// Who connected the socket a reply segment came on: as attributed when its connect was
// allowed (the process may have exited since: a bot's session is over in milliseconds);
// else the file the kernel approved by its key (its event may not be read yet); else, last,
// the process the stamp names if it is still there.
std::optional<procinfo::ProcessInfo> Guard::Impl::connectorOf(const kernel::SmtpSegment& segment) {
  if (const auto* known = pipeline ? pipeline->connectorOf(segment.cookie) : nullptr) return *known;
  if (fastPath) {
    if (const auto* identity = fastPath->identityOf(segment.task.key)) {
      procinfo::ProcessInfo p;
      p.pid = static_cast<int>(segment.task.tgid);
      p.ppid = static_cast<int>(segment.task.ppid);
      p.uid = segment.task.uid;
      p.identity = *identity;
      return p;
    }
  }
  if (auto p = resolver.describe(static_cast<int>(segment.task.tgid))) return std::move(p.value());
  return std::nullopt;
}

// One segment a mail server sent a program on port 25. The session's connector is found at
// its first segment (connectorOf).
void Guard::Impl::onSmtpSegment(const kernel::SmtpSegment& segment) {
  auto it = replySessions.find(segment.cookie);
  if (it == replySessions.end()) {
    if (endedReplySessions.count(segment.cookie) != 0) return;
    if (replySessions.size() >= kMaxReplySessions) {
      const auto oldest = std::min_element(
          replySessions.begin(), replySessions.end(),
          [](const auto& a, const auto& b) { return a.second.last < b.second.last; });
      const auto stale = oldest->first;
      kernelIdentity->stopSmtp(stale);
      endReplySession(stale, ", then nothing heard for the longest time");
    }
    ReplySession fresh;
    fresh.pid = segment.task.tgid;
    std::array<char, INET6_ADDRSTRLEN> text{};
    if (::inet_ntop(segment.server.family, segment.server.addr.data(), text.data(),
                    static_cast<socklen_t>(text.size())) != nullptr)
      fresh.server = text.data();
    fresh.process = connectorOf(segment);
    it = replySessions.emplace(segment.cookie, std::move(fresh)).first;
  }
  auto& session = it->second;
  session.last = clock.monotonic();
  const std::string_view bytes(reinterpret_cast<const char*>(segment.payload.data()),
                               segment.payload.size());
  session.stream.segment(segment.seq, bytes, segment.wireLength);
  if (segment.closed) {
    endReplySession(segment.cookie, "");
  } else if (session.stream.stopped()) {
    // Nothing after STARTTLS's go-ahead (or a gap) can be read: stop the copying now.
    kernelIdentity->stopSmtp(segment.cookie);
    const char* why = session.stream.startedTls() ? ", then STARTTLS"
                      : session.stream.closing()  ? ""
                      : session.stream.gap()      ? ", then a gap in the copy"
                                                  : ", then something not SMTP";
    endReplySession(segment.cookie, why);
  }
}

// Once per session: the counts go to the log and, as a ReplyEvent, to the detector.
void Guard::Impl::endReplySession(std::uint64_t cookie, const char* why) {
  const auto it = replySessions.find(cookie);
  if (it == replySessions.end()) return;
  const auto session = std::move(it->second);
  replySessions.erase(it);
  ++replySessionsDone;
  if (endedReplySessions.insert(cookie).second) endedReplyOrder.push_back(cookie);
  if (endedReplyOrder.size() > kMaxEndedReplySessions) {
    endedReplySessions.erase(endedReplyOrder.front());
    endedReplyOrder.pop_front();
  }
  const auto& c = session.stream.counts();
  const std::string program =
      session.process ? session.process->identity.display() : std::string("exited");
  log::info("replies from " + session.server + " to pid " + std::to_string(session.pid) + " (" +
            log::quote(program) + "): " + std::to_string(c.accepted) + " accepted, " +
            std::to_string(c.userUnknown) + " user unknown, " + std::to_string(c.blocklisted) +
            " blocklisted, " + std::to_string(c.rejected) + " rejected, " +
            std::to_string(c.deferred) + " deferred" + why);
  if (!session.process || c.total() == 0 || !detection) return;
  detector::ReplyEvent e;
  e.dst = session.server;
  e.port = 25;
  e.accepted = c.accepted;
  e.userUnknown = c.userUnknown;
  e.blocklisted = c.blocklisted;
  e.rejected = c.rejected;
  e.deferred = c.deferred;
  detection->onReplies(session.process->identity, session.process->uid, e);
}

void Guard::Impl::policyChanged() {
  if (!fastPath) return;
  fastPath->forgetAll();
  preloadKernel();
}

Result<std::unique_ptr<kernel::KernelIdentity>> Guard::Impl::openKernelIdentity() {
  const auto& s = options.settings;
  if (s.kernelIdentity == "off") {
    return makeError("turned off in the settings ([kernel] identity = \"off\")");
  }
  std::filesystem::path cgroup = s.kernelCgroup;
  if (cgroup.empty()) {
    // Hooks on the cgroup2 root act on every process of the machine, whatever network
    // namespace it is in; guardd in a namespace of its own (a trial: `ip netns exec`,
    // `unshare -n`) guards that namespace only, and must not refuse or pass connects of
    // the rest of the machine.
    struct stat own {};
    struct stat init {};
    if (::stat("/proc/self/ns/net", &own) != 0 || ::stat("/proc/1/ns/net", &init) != 0) {
      return makeError(
          "cannot tell whether guardd shares the machine's network namespace (PID 1's is "
          "unreadable); name the cgroup the hooks attach to in [kernel] cgroup");
    }
    if (own.st_dev != init.st_dev || own.st_ino != init.st_ino) {
      return makeError(
          "guardd runs in a network namespace of its own (a trial?), and hooks on the cgroup2 "
          "root would decide the connects of every process on the machine; name a cgroup that "
          "holds only this namespace's processes in [kernel] cgroup to use them here");
    }
    auto root = kernel::cgroup2Root();
    if (!root) {
      return makeError(
          "no cgroup v2 hierarchy is mounted here (the BPF connect hooks attach to one; "
          "[kernel] cgroup names another)");
    }
    cgroup = *root;
  }
  return kernel::openBpfKernelIdentity(kernel::BpfOptions{cgroup, s.kernelMarkBit, s.mailPorts});
}

void Guard::Impl::preloadKernel() {
  if (!fastPath || !detection) return;
  const auto generation = ++kernelGeneration;
  for (const auto& rule : approvals) {
    const auto base = std::filesystem::path(rule.path).filename().string();
    // The MTA's binary is decided per process (mta::foreignMtaConfig): never in the kernel.
    // Nor an approval for one user: the kernel's map has no user.
    if (!rule.scriptPath.empty() || rules::isInterpreter(base) || !rule.onlyTo.empty() ||
        rule.uid || mta::isMtaName(base)) {
      continue;
    }
    auto key = kernel::exeKeyOfPath(rule.path);
    if (!key) continue;  // not there (yet): learned from its first connect instead
    hasher.hashPathInBackground(rule.path, [this, generation, path = rule.path,
                                            key = *key](Result<std::string> hash) {
      loop.post([this, generation, path, key, hash = std::move(hash)] {
        if (generation != kernelGeneration || !hash) return;
        // The key read before hashing still names the file: its content is what was
        // hashed (every write changes the ctime).
        if (auto now = kernel::exeKeyOfPath(path); !now || *now != key) return;
        rules::ProgramIdentity identity;
        identity.path = path;
        identity.sha256 = *hash;
        identity.pathTrusted = !rules::isUnsafeLocation(path) && procinfo::isRootOwnedChain(path);
        rules::VerdictInputs in;
        in.identity = identity;
        fastPath->learn(key, identity, rules::decideVerdict(in, approvals), false,
                        detection->doubted(identity));
      });
    });
  }
}

// A program's listed state follows the rules; quarantine is kept as it was. A rule may
// change other programs than the one it names (a denial of an interpreter, the content
// of a denied script elsewhere): each one whose state changed is announced.
void Guard::Impl::refreshStates() {
  std::vector<ProgramView> changed;
  programs.forEach([&](ProgramView& view) {
    const bool quarantined = view.state == rules::ProgramState::Quarantined;
    const auto before = view.state;
    view.state = rules::stateOf(view.identity, quarantined, approvals);
    if (view.state == before) return;
    if (before == rules::ProgramState::Approved || before == rules::ProgramState::Denied) {
      decidedBefore[view.id] = before;
      writer->setDecided(view.id, before);
    }
    changed.push_back(view);
  });
  if (!self.onProgramChanged) return;
  for (const auto& view : changed) self.onProgramChanged(view);
}

// What status shows as the store's trouble, for as long as it lasts: the writer's last
// failure (cleared by its next success), alerts it keeps until the disk has room, a
// failure to read the rules.
std::string Guard::Impl::storeError(const store::WriterStats& stats) const {
  if (stats.unsavedAlerts > 0) {
    return std::to_string(stats.unsavedAlerts) +
           (stats.unsavedAlerts == 1 ? " alert waits" : " alerts wait") + " to be stored" +
           (stats.alertsDropped > 0
                ? " (" + std::to_string(stats.alertsDropped) + " dropped, the oldest)"
                : "") +
           ": " + stats.lastError;
  }
  if (!stats.lastError.empty()) return stats.lastError;
  return rulesError;
}

Result<Guard::Impl::Named> Guard::Impl::named(const ProgramRef& ref) {
  if (const auto* id = std::get_if<std::int64_t>(&ref.target)) {
    const auto* view = programs.find(*id);
    if (view == nullptr) {
      return notFound("no program with id " + std::to_string(*id) + " (see the programs list)");
    }
    return Named{view->identity, view->identity.path, view->identity.scriptPath};
  }
  auto realFile = [](const std::string& p, const char* what) -> Result<std::string> {
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
    return real.string();
  };
  const auto& given = std::get<std::string>(ref.target);
  auto exe = realFile(given, "program");
  if (!exe) return exe.error();
  Named out{std::nullopt, exe.value(), {}};
  const auto shown =
      log::quote(given) + (out.path != given ? " (" + log::quote(out.path) + ")" : std::string());
  const bool interpreter = rules::isInterpreter(baseName(out.path));
  if (ref.inlineCode) {
    if (!interpreter) {
      return invalidArgument(shown +
                             " is not an interpreter (python3, perl, sh, ...): only an "
                             "interpreter runs inline code");
    }
    if (!ref.script.empty()) {
      return invalidArgument("inline code has no script: name the interpreter alone");
    }
    return out;
  }
  if (!ref.script.empty()) {
    // Only an interpreter's identity includes a script (rules::isInterpreter): a script
    // named with msmtp would make a program that never matches what runs.
    if (!interpreter) {
      return invalidArgument(shown +
                             " is not an interpreter (python3, perl, sh, ...): a script goes "
                             "only with the interpreter that runs it; name this program "
                             "without --script");
    }
    auto script = realFile(ref.script, "script");
    if (!script) return script.error();
    out.scriptPath = script.value();
    return out;
  }
  if (interpreter) {
    out.binaryItself = true;
    return out;
  }
  // A script with a "#!" line runs as its interpreter with the script as argument
  // (execve(2)): what connects is that pair, so that is what is meant.
  if (const auto shebang = rules::parseShebang(headOf(out.path))) {
    const auto found = onPath(shebang->interpreter);
    std::error_code ec;
    const auto real = found ? std::filesystem::canonical(*found, ec) : std::filesystem::path{};
    if (!found || ec) {
      return notFound(shown + " is a script for " + log::quote(shebang->interpreter) +
                      ", which is not installed here");
    }
    if (!rules::isInterpreter(baseName(real.string()))) {
      return invalidArgument(shown + " is a script run by " + log::quote(real.string()) +
                             ", which mailguard does not know as an interpreter (python3, "
                             "perl, sh, ...): approve what runs it instead");
    }
    out.scriptPath = out.path;
    out.path = real.string();
  }
  return out;
}

// A file named by path is hashed by the hasher's thread, not on the loop: it may be large.
void Guard::Impl::identityFor(const ProgramRef& ref, Done<ProgramIdentity> done) {
  auto found = named(ref);
  if (!found) return done(found.error());
  if (found->identity) return done(*found->identity);
  auto identity = std::make_shared<ProgramIdentity>();
  identity->path = found->path;
  identity->scriptPath = found->scriptPath;
  identity->binaryItself = found->binaryItself;
  // Runs on the hasher's thread; the answer goes back to the loop.
  auto finish = [this, identity, done = std::move(done)](Result<std::string> scriptHash) mutable {
    loop.post([identity, scriptHash = std::move(scriptHash), done = std::move(done)] {
      if (!scriptHash) return done(scriptHash.error());
      if (!identity->scriptPath.empty()) identity->scriptSha256 = *scriptHash;
      done(*identity);
    });
  };
  hasher.hashPathInBackground(identity->path, [this, identity, finish = std::move(finish)](
                                                  Result<std::string> exeHash) mutable {
    if (!exeHash) return finish(exeHash.error());
    identity->sha256 = *exeHash;
    if (identity->scriptPath.empty()) return finish(std::string{});
    hasher.hashPathInBackground(identity->scriptPath, std::move(finish));
  });
}

// The rule and the program's row are one transaction: an approval reported done is a
// listed, approved program after any crash.
void Guard::Impl::setRule(const ProgramRef& ref, rules::RuleAction action, Done<ProgramView> done,
                          ApproveOptions approval) {
  for (const auto& name : approval.allowEnv) {
    if (!rules::isCodeLoadingName(name)) {
      return done(invalidArgument("'" + name + "' is not a code-loading variable or option"));
    }
  }
  if (approval.user && approval.allUsers) {
    return done(invalidArgument("an approval is for one user or for every user, not both"));
  }
  // Inline code named by id is the code the user who ran it typed or piped in.
  std::optional<std::uint32_t> rowUser;
  if (const auto* id = std::get_if<std::int64_t>(&ref.target)) {
    if (const auto* view = programs.find(*id)) rowUser = view->uid;
  }
  identityFor(ref, [this, action, rowUser, approval = std::move(approval),
                    done = std::move(done)](Result<ProgramIdentity> resolved) mutable {
    if (!resolved) return done(resolved.error());
    const auto identity = resolved.value();
    const auto kind = identity.kind();
    const auto& allowEnv = approval.allowEnv;
    const auto& onlyTo = approval.onlyTo;
    rules::ApprovalRule rule;
    rule.action = action;
    rule.kind = kind;
    if (action == rules::RuleAction::Approve) {
      if (kind == rules::IdentityKind::Inline) {
        // Inline code has no file: approving it approves whatever this user types or
        // pipes into the interpreter, so never for everyone.
        if (approval.allUsers) {
          return done(invalidArgument(
              "inline code is approved for one user only: any code typed or piped into " +
              baseName(identity.path) + " by that user may then send mail"));
        }
        rule.uid = approval.user ? approval.user : rowUser;
        if (!rule.uid) {
          return done(invalidArgument("approving the inline code of " + identity.path +
                                      " needs the user it is for (--user NAME)"));
        }
      } else if (approval.user) {
        rule.uid = approval.user;
      } else if (!approval.allUsers) {
        rule.uid = homeOwner(identity.isInterpreted() ? identity.scriptPath : identity.path);
      }
      if (rule.uid) rule.userName = userName(*rule.uid);
    } else if (approval.user || approval.allUsers) {
      return done(invalidArgument("a denial is for every user"));
    }
    // Approving a pinned program for one more destination adds it to the list (the
    // answer to "approved only to X; asked for Y"); a plain approval lifts the pins.
    if (action == rules::RuleAction::Approve && !onlyTo.empty()) {
      rule.onlyTo = onlyTo;
      for (const auto& earlier : approvals) {
        if (earlier.action == rules::RuleAction::Approve && earlier.path == identity.path &&
            earlier.scriptPath == identity.scriptPath && earlier.kind == rule.kind &&
            earlier.uid == rule.uid && !earlier.onlyTo.empty()) {
          rule.onlyTo = rules::mergedDestinations(earlier.onlyTo, onlyTo);
        }
      }
    }
    if (action == rules::RuleAction::Approve && kind == rules::IdentityKind::Inline) {
      log::warning("approved inline code: any code typed or piped into " + baseName(identity.path) +
                   " by user " + rule.userName + " may send mail");
    } else if (action == rules::RuleAction::Deny && identity.binaryItself) {
      log::info("denied " + identity.path + ": every script and inline program run by " +
                baseName(identity.path));
    }
    rule.path = identity.path;
    rule.sha256 = identity.sha256;
    rule.scriptPath = identity.scriptPath;
    rule.scriptSha256 = identity.scriptSha256;
    if (action == rules::RuleAction::Approve) rule.allowEnv = allowEnv;
    // An approval says nothing about the user: the uid stays the one last seen.
    const auto& view = programs.remember(identity, std::nullopt, clock.now(), clock.monotonic());
    writer->addRule(rule, recordOf(view),
                    [this, identity, done = std::move(done)](Result<store::RuleWritten> r) mutable {
                      loop.post([this, identity, r = std::move(r), done = std::move(done)] {
                        if (!r) return done(r.error());
                        reloadRulesIfChanged();
                        auto& v = programs.remember(identity, std::nullopt, clock.now(),
                                                    clock.monotonic());
                        if (v.state != rules::ProgramState::Quarantined) {
                          v.state = rules::stateOf(v.identity, false, approvals);
                        }
                        if (self.onProgramChanged) self.onProgramChanged(v);
                        done(v);
                      });
                    });
  });
}

// Rules are kept by path: forgetting needs no hash.
void Guard::Impl::forget(const ProgramRef& ref, Done<bool> done,
                         std::optional<std::uint32_t> user) {
  auto found = named(ref);
  if (!found) return done(found.error());
  // An interpreter's inline code and the interpreter itself are decided apart.
  std::optional<rules::IdentityKind> kind;
  if (found->identity) {
    kind = found->identity->kind();
  } else if (found->binaryItself) {
    kind = rules::IdentityKind::Program;
  } else if (ref.inlineCode) {
    kind = rules::IdentityKind::Inline;
  }
  std::string what =
      log::quote(found->scriptPath.empty() ? found->path : found->path + " " + found->scriptPath);
  if (kind == rules::IdentityKind::Inline) what = "the inline code of " + what;
  if (user) what += " for " + userName(*user);
  writer->removeRules(
      found->path, found->scriptPath,
      [this, found = *found, kind, user, what = std::move(what),
       done = std::move(done)](Result<bool> r) mutable {
        loop.post([this, found, kind, user, what, r = std::move(r), done = std::move(done)] {
          if (!r) return done(r.error());
          // Nothing removed: say what is the case, as release does, so
          // that callers do not report a change that did not happen.
          if (!r.value()) {
            return done(
                notFound("there is no decision about " + what + " to forget: nothing was changed"));
          }
          reloadRulesIfChanged();
          programs.forEach([&](ProgramView& v) {
            if (v.identity.path != found.path || v.identity.scriptPath != found.scriptPath ||
                (kind && v.identity.kind() != *kind)) {
              return;
            }
            // The path's decisions are forgotten, its earlier versions' with them (one
            // user's approval forgotten leaves the history of the others').
            if (!user && decidedBefore.erase(v.id) > 0) writer->setDecided(v.id, std::nullopt);
            if (self.onProgramChanged) self.onProgramChanged(v);
          });
          done(r.value());
        });
      },
      kind, user);
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
  if (d.verdicts) d.verdicts->stop();
  if (d.pipeline) {
    d.loop.removePrepare(d.deferredPrepare);
    d.loop.removeIdle(d.deferredIdle);
    d.pipeline->runDeferred();  // their records, before the writer's last flush
  }
  if (d.presence) {
    d.loop.removePrepare(d.presencePrepare);
    d.loop.remove(d.presence->pollFd());
  }
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
  s.attribution = d.kernelIdentity ? "kernel" : "proc";
  s.version = MAILGUARD_VERSION;
  if (d.pipeline) s.counters = d.pipeline->counters();
  if (d.kernelIdentity) {
    const auto k = d.kernelIdentity->stats();
    s.counters.kernelEventsLost = k.eventsLost;
    s.counters.kernelMapBytes = k.mapBytes;
    s.kernelHooks = d.kernelIdentity->describe();
    s.counters.dnsLost = k.dnsLost;
    s.counters.repliesLost = k.smtpLost;
    s.counters.replySessions = d.replySessionsDone;
  }
  if (d.dns) {
    s.dnsSource = "kernel";
    s.counters.dnsQueries = d.dns->queries();
  }
  const auto stats = d.writer->stats();
  s.counters.attemptsDropped = stats.attemptsDropped;
  s.counters.storeErrors = stats.writeErrors;
  if (d.tamper) s.counters.tableRestores = d.tamper->restores();
  s.storeError = d.storeError(stats);
  if (d.presence) {
    const auto p = d.presence->status(d.clock.monotonic());
    s.presenceSource = p.source;
    s.presenceActiveUser = p.activeUser;
    if (p.idle) s.presenceIdleSeconds = p.idle->count();
  }
  return s;
}

std::vector<ProgramView> Guard::programs() const {
  std::vector<ProgramView> out;
  for (auto& row : foldVersions(impl_->programs.list())) out.push_back(std::move(row.current));
  return out;
}

ProgramView Guard::currentVersion(const ProgramView& version) const {
  return impl_->programs.currentVersion(version);
}

std::map<std::int64_t, std::uint32_t> Guard::programVersionCounts() const {
  std::map<std::int64_t, std::uint32_t> out;
  for (const auto& row : foldVersions(impl_->programs.list())) {
    out.emplace(row.current.id, static_cast<std::uint32_t>(row.versions.size()));
  }
  return out;
}

Result<std::vector<ProgramVersion>> Guard::programVersions(const ProgramRef& ref) const {
  auto& d = *impl_;
  auto found = d.named(ref);
  if (!found) return found.error();
  rules::ProgramIdentity named;
  if (found->identity) {
    named = *found->identity;
  } else {
    named.path = found->path;
    named.scriptPath = found->scriptPath;
    named.binaryItself = found->binaryItself;
  }
  std::vector<ProgramView> mine;
  d.programs.forEach([&](const ProgramView& v) {
    if (sameProgram(v.identity, named)) mine.push_back(v);
  });
  auto rows = foldVersions(std::move(mine));
  if (rows.empty()) return notFound("no program " + named.display() + " has been seen");
  std::vector<ProgramVersion> out;
  for (const auto& v : rows.front().versions) {
    ProgramVersion version;
    version.id = v.id;
    version.sha256 = v.identity.isInterpreted() ? v.identity.scriptSha256 : v.identity.sha256;
    version.firstSeen = v.firstSeen;
    version.state = std::string(rules::toString(v.state));
    const auto before = d.decidedBefore.find(v.id);
    if (v.id == rows.front().current.id) {
      // decide() says why a known path is held: an approval of another content that
      // the path's place does not let carry over (not root-owned, or writable by others).
      if (v.state == rules::ProgramState::Pending &&
          rules::decide(v.identity, false, d.approvals, v.uid)
              .reason.starts_with("changed since")) {
        version.state = "pending: changed since approved";
      }
    } else if (v.state == rules::ProgramState::Pending) {
      version.state =
          (before != d.decidedBefore.end() ? std::string(rules::toString(before->second))
                                           : std::string("not decided")) +
          ", replaced by a newer version";
    }
    out.push_back(std::move(version));
  }
  return out;
}

std::string Guard::covers(const ProgramView& program) const {
  if (program.state != rules::ProgramState::Approved) return {};
  const auto& approvals = impl_->approvals;
  const auto users = rules::coveredUsers(program.identity, approvals);
  if (!users) return "all";
  std::string out;
  for (const auto uid : *users) {
    const auto rule = std::find_if(approvals.begin(), approvals.end(),
                                   [uid](const rules::ApprovalRule& r) { return r.uid == uid; });
    out += (out.empty() ? "" : ", ") +
           (rule != approvals.end() ? rule->userName : "uid " + std::to_string(uid));
  }
  return out;
}

std::size_t Guard::heldMessages(std::int64_t programId) const {
  if (!impl_->mta) return 0;
  const auto* view = impl_->programs.find(programId);
  return view != nullptr ? impl_->mta->heldOfProgram(*view) : impl_->mta->held(programId);
}

Result<std::vector<store::AttemptRecord>> Guard::attempts(const store::AttemptQuery& q) {
  return impl_->reader->attempts(q);
}

Result<std::vector<store::AlertRecord>> Guard::Impl::listAlerts(std::uint32_t limit) {
  // Unwritten first: one written in between is then in the store, and never in neither.
  const auto unwritten = alerts->unwritten();
  auto stored = reader->alerts(limit);
  if (!stored) return stored;
  return withUnwritten(std::move(*stored), unwritten, limit);
}

Result<std::vector<store::AlertRecord>> Guard::alerts(std::uint32_t limit) {
  return impl_->listAlerts(limit);
}

void Guard::approve(const ProgramRef& ref, Done<ProgramView> done, ApproveOptions options) {
  impl_->setRule(ref, rules::RuleAction::Approve, std::move(done), std::move(options));
}

std::vector<rules::ApprovalRule> Guard::approvalRules() const { return impl_->approvals; }

void Guard::deny(const ProgramRef& ref, Done<ProgramView> done) {
  impl_->setRule(ref, rules::RuleAction::Deny, std::move(done));
}

void Guard::forget(const ProgramRef& ref, Done<bool> done, std::optional<std::uint32_t> user) {
  impl_->forget(ref, std::move(done), user);
}

void Guard::ackAlert(std::int64_t id, Done<bool> done) {
  impl_->detection->ackAlert(id, std::move(done));
}

void Guard::release(const ProgramRef& ref, Done<ProgramView> done) {
  impl_->detection->release(ref, std::move(done));
}

void Guard::declareBulk(const ProgramRef& ref, unsigned recipients, std::chrono::hours window,
                        Done<ProgramView> done) {
  impl_->detection->declareBulk(ref, recipients, window, std::move(done));
}

}  // namespace mailguard::service
