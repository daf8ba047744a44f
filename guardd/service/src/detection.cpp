#include "detection.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <filesystem>
#include <sstream>

#include "conntrack.hpp"
#include "detector_codec.hpp"
#include "detector_config.hpp"
#include "mailguard/common/c_deleter.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/service/log.hpp"
#include "verdict_pipeline.hpp"

namespace mailguard::service {
namespace {

namespace det = mailguard::detector;
using rules::ProgramIdentity;

constexpr auto kSaveEvery = std::chrono::seconds(60);
// detector_state rows of declared bulk sends; principal keys never start with '#'.
constexpr std::string_view kBulkPrefix = "#bulk:";
constexpr auto kMtaListenerTtl = std::chrono::seconds(30);
// A connection conntrack never reported on (events lost, module missing) stops
// counting as an open session after this.
constexpr auto kTrackedTtl = std::chrono::minutes(30);
constexpr std::size_t kMaxTracked = 65'536;
constexpr std::size_t kMaxClassified = 4096;
// Classifications in flight at once: a bot rewriting itself must not start a thread per
// attempt; beyond this its new files simply stay Unknown.
constexpr std::size_t kMaxClassifying = 8;
constexpr int kMaxParents = 6;

// Delivery agents of the MTAs Debian ships: only these, and only when dpkg vouches for
// the file, count as "the local MTA" (research 2.6).
constexpr std::array<std::string_view, 9> kMtaBinaries = {
    "smtp",      // postfix: /usr/lib/postfix/sbin/smtp
    "master",    // postfix
    "exim4",     // exim4-daemon-*: /usr/sbin/exim4
    "exim",      //
    "sendmail",  // sendmail-bin
    "smtpd",     // opensmtpd: /usr/sbin/smtpd
    "nullmailer-send",
    "dma",  // DragonFly Mail Agent
    "courieresmtp"};

bool isLoopback(const std::string& addr) {
  return addr.rfind("127.", 0) == 0 || addr == "::1" || addr.rfind("::ffff:127.", 0) == 0;
}

std::optional<std::string> md5OfFile(const std::string& path) {
  const Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return std::nullopt;
  std::unique_ptr<EVP_MD_CTX, CDeleter<EVP_MD_CTX_free>> ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) == 1;
  std::array<unsigned char, 65536> buf{};
  while (ok) {
    const auto n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) ok = false;
    if (n <= 0) break;
    ok = EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n)) == 1;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned len = 0;
  if (!ok || EVP_DigestFinal_ex(ctx.get(), md.data(), &len) != 1) return std::nullopt;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 0xf];
  }
  return hex;
}

std::filesystem::file_time_type lastWrite(const std::filesystem::path& p) {
  std::error_code ec;
  const auto t = std::filesystem::last_write_time(p, ec);
  return ec ? std::filesystem::file_time_type{} : t;
}

// The file at this path with this content (and script): a principal is one file, so a
// copy of it elsewhere neither shares its quarantine nor lends it its evidence (see
// detector::Principal).
bool identityMatches(const ProgramIdentity& id, const det::Principal& p) {
  return id.path == p.exePath && id.sha256 == p.exeSha256 && id.scriptPath == p.scriptPath &&
         id.scriptSha256 == p.scriptSha256;
}

// The same content at any path: for state written before principals had a path.
bool contentMatches(const ProgramIdentity& id, const det::Principal& p) {
  return id.sha256 == p.exeSha256 && id.scriptPath == p.scriptPath &&
         id.scriptSha256 == p.scriptSha256;
}

template <class T>
std::optional<T> parseNumber(std::string_view s, int base = 10) {
  T v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

Detection::Detection(Deps deps)
    : d_(std::move(deps)),
      tracked_(kMaxTracked),
      throttled_(kMaxTracked),
      classCache_(kMaxClassified) {}
Detection::~Detection() = default;

Result<void> Detection::start() {
  // dpkg's sums are read by a thread started with guardd rather than by the first
  // verdict that needs them, and read again when dpkg has changed its database since.
  readDpkg();
  std::vector<std::string> unknown;
  config_ = detectorConfig(d_.settings.detector, &unknown);
  for (const auto& name : unknown) log::warning("detector." + name + ": not applied (unknown)");
  detector_ = std::make_unique<det::Detector>(d_.clock, config_);
  auto rows = d_.reader.loadDetectorState();
  if (!rows) return rows.error();
  std::vector<det::PrincipalSnapshot> state;
  std::vector<BulkDeclaration> declared;
  for (const auto& [key, text] : rows.value()) {
    if (key.rfind(kBulkPrefix, 0) == 0) {
      if (auto b = decodeBulk(text); b && b->until > d_.clock.now()) declared.push_back(*b);
      continue;
    }
    auto snapshot = decodeSnapshot(text);
    if (!snapshot) {
      log::warning("Failed to read the detector state of " + log::quote(key) +
                   ": not written by this version; starting it afresh");
      continue;
    }
    state.push_back(std::move(*snapshot));
  }
  detector_->importState(state);
  // Declared bulk sends are not part of the detector's snapshot: declared again for
  // what is left of their window. One stored without a path (an earlier version) was
  // declared for the program's content; it holds for each path that content was seen at.
  auto redeclare = [&](const BulkDeclaration& b) {
    detector_->declareBulk(b.principal, b.recipients, b.until - d_.clock.now());
    bulk_[b.principal.key()] = b;
  };
  for (const auto& b : declared) {
    if (!b.principal.exePath.empty()) {
      redeclare(b);
      continue;
    }
    std::vector<det::Principal> atPaths;
    d_.programs.forEach([&](ProgramView& view) {
      if (!contentMatches(view.identity, b.principal)) return;
      auto p = det::Principal::of(view.identity, b.principal.uid);
      if (std::find(atPaths.begin(), atPaths.end(), p) == atPaths.end()) atPaths.push_back(p);
    });
    for (auto& p : atPaths) redeclare(BulkDeclaration{std::move(p), b.recipients, b.until});
  }
  std::size_t quarantined = 0;
  d_.programs.forEach([&](ProgramView& view) {
    if (quarantinedIdentity(view.identity)) {
      view.state = rules::ProgramState::Quarantined;
      ++quarantined;
    }
  });
  log::info("detector: " + std::to_string(state.size()) + " programs' state loaded, " +
            std::to_string(quarantined) + " quarantined");
  if (d_.conntrack) {
    auto listener = ConntrackListener::open(*this);
    if (!listener) {
      log::warning(listener.error().message +
                   " (the detector goes on without connection outcomes)");
    } else {
      conntrack_ = std::move(listener.value());
      if (auto r = d_.loop.add(conntrack_->fd(), EPOLLIN,
                               [this](std::uint32_t) {
                                 conntrack_->receive();
                                 afterVerdict();
                               });
          !r) {
        return r.error();
      }
    }
  }
  d_.loop.every(kSaveEvery, [this] {
    const auto now = d_.clock.monotonic();
    tracked_.eraseIf([&](const auto&, const Tracked& t) { return now - t.since > kTrackedTtl; });
    throttled_.eraseIf([&](const auto&, const MonoTime& at) { return now - at > kTrackedTtl; });
    if (dirty_) save();
  });
  return {};
}

void Detection::stop() {
  if (conntrack_) d_.loop.remove(conntrack_->fd());
  if (detector_) save();
}

void Detection::save(std::function<void(Result<void>)> done) {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& s : detector_->exportState()) {
    rows.emplace_back(s.principal.key(), encodeSnapshot(s));
  }
  const auto now = d_.clock.now();
  std::erase_if(bulk_, [&](const auto& b) { return b.second.until <= now; });
  for (const auto& [key, b] : bulk_) {
    rows.emplace_back(std::string(kBulkPrefix) + key, encodeBulk(b));
  }
  dirty_ = false;
  d_.writer.saveDetectorState(std::move(rows), [done = std::move(done)](Result<void> saved) {
    if (!saved) log::error(saved.error().message);
    if (done) done(std::move(saved));
  });
}

bool Detection::quarantinedIdentity(const ProgramIdentity& identity) const {
  for (const auto& s : detector_->exportState()) {
    if (s.quarantined && identityMatches(identity, s.principal)) return true;
  }
  return false;
}

void Detection::readDpkg() {
  dpkg_ = std::async(std::launch::async, [info = d_.dpkgInfo] {
            auto time = lastWrite(info);  // first: a change made while reading shows later
            return std::make_shared<const DpkgState>(DpkgState{time, DpkgSums::read(info)});
          }).share();
}

void Detection::reloadDpkgIfChanged() {
  if (dpkg_.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return;
  if (lastWrite(d_.dpkgInfo) == dpkg_.get()->infoTime) return;
  // An upgrade since the sums were read: read them again, and judge files afresh.
  readDpkg();
  classCache_.clear();
}

void Detection::collectClassifications() {
  for (auto it = classifying_.begin(); it != classifying_.end();) {
    if (it->second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
      ++it;
      continue;
    }
    const auto result = it->second.get();
    // A file dpkg does not vouch for may come from an upgrade after the sums were read.
    if (result != det::IdentityClass::Packaged) reloadDpkgIfChanged();
    classCache_.put(it->first, result);
    it = classifying_.erase(it);
  }
}

bool Detection::doubted(const ProgramIdentity& identity) const {
  for (const auto& s : detector_->exportState()) {
    if (identityMatches(identity, s.principal) &&
        (s.quarantined || detector_->tier(s.principal) != det::Tier::None)) {
      return true;
    }
  }
  return false;
}

det::IdentityClass Detection::classify(const ProgramIdentity& identity) {
  const auto& path = identity.path;
  if (identity.deleted || rules::isUnsafeLocation(path) ||
      (!identity.scriptPath.empty() && rules::isUnsafeLocation(identity.scriptPath)) ||
      path.find("/Downloads/") != std::string::npos ||
      identity.scriptPath.find("/Downloads/") != std::string::npos) {
    return det::IdentityClass::Suspicious;
  }
  // Packaged: root-owned chain, and dpkg's recorded checksum matches the file. An
  // interpreter running a script is only as trustworthy as the script, so not this.
  if (!identity.pathTrusted || !identity.scriptPath.empty()) return det::IdentityClass::Unknown;
  const auto cacheKey = path + '\0' + identity.sha256;
  collectClassifications();
  if (const auto* known = classCache_.find(cacheKey)) return *known;
  // Unknown until dpkg's answer is in: never Packaged early.
  if (!classifying_.contains(cacheKey) && classifying_.size() < kMaxClassifying) {
    classifying_.emplace(cacheKey, std::async(std::launch::async, [dpkg = dpkg_, path] {
                           const auto& sums = dpkg.get()->sums;
                           if (!sums.knows(path)) return det::IdentityClass::Unknown;
                           const auto md5 = md5OfFile(path);
                           return md5 && sums.recorded(path, *md5) ? det::IdentityClass::Packaged
                                                                   : det::IdentityClass::Unknown;
                         }));
  }
  return det::IdentityClass::Unknown;
}

bool Detection::isMta(const ProgramIdentity& identity) {
  if (!identity.scriptPath.empty()) return false;
  const auto base = std::filesystem::path(identity.path).filename().string();
  if (std::find(kMtaBinaries.begin(), kMtaBinaries.end(), base) == kMtaBinaries.end()) {
    return false;
  }
  return classify(identity) == det::IdentityClass::Packaged;
}

// True when a recognised MTA listens on dst:port (or on the wildcard address): the
// listening socket from /proc/net/tcp{,6}, its process through the resolver.
bool Detection::localMtaListens(const std::string& dst, std::uint16_t port) {
  if (!isLoopback(dst)) return false;
  const auto now = d_.clock.monotonic();
  if (auto it = mtaListenerCache_.find(port);
      it != mtaListenerCache_.end() && now - it->second.second < kMtaListenerTtl) {
    return it->second.first;
  }
  bool found = false;
  for (const char* table : {"net/tcp", "net/tcp6"}) {
    auto text = d_.proc.read(table);
    if (!text) continue;
    std::istringstream in(*text);
    std::string line;
    std::getline(in, line);  // header
    while (!found && std::getline(in, line)) {
      // "  0: 0100007F:0019 00000000:0000 0A ... uid timeout inode". Any listener on this
      // port bound to a loopback or wildcard address will do: the kernel picks the most
      // specific one, and the test is for a recognised MTA.
      std::istringstream f(line);
      std::string slot, local, remote, state, txrx, tr, retr, uid, timeout, inode;
      f >> slot >> local >> remote >> state >> txrx >> tr >> retr >> uid >> timeout >> inode;
      if (state != "0A") continue;  // TCP_LISTEN
      const auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      const auto listenPort =
          parseNumber<std::uint16_t>(std::string_view(local).substr(colon + 1), 16);
      const auto ino = parseNumber<std::uint64_t>(inode);
      if (!listenPort || *listenPort != port || !ino) continue;
      const auto info = d_.resolver.describeHolder(*ino, std::nullopt);
      if (info && isMta(info->identity)) found = true;
      // Not known yet: asked again next time rather than remembered as "no MTA".
      if (!info && info.error().code == Errc::Pending) return false;
    }
  }
  // A listener's file still being classified is asked about again next time.
  if (found || classifying_.empty()) mtaListenerCache_[port] = {found, now};
  return found;
}

Detection::TupleKey Detection::keyOf(const rules::ConnectionTuple& t) {
  return {t.srcAddress(), t.srcPort, t.dstAddress(), t.dstPort};
}

unsigned Detection::openSessions(const det::Principal& principal) const {
  unsigned n = 0;
  for (const auto& [key, t] : tracked_) {
    if (t.principal == principal) ++n;
  }
  return n;
}

std::vector<std::string> Detection::parentChain(int ppid) const {
  // A chain of "/usr/bin/bash" says little: for an interpreter the script it runs is what
  // the owner recognises (or not). The script name comes from the process (it chose its
  // argv), so it is bounded and quoted.
  constexpr std::size_t kMaxScriptShown = 120;
  auto scriptOf = [&](const std::string& base, std::string_view exe) -> std::string {
    const auto slash = exe.rfind('/');
    const auto name = slash == std::string_view::npos ? exe : exe.substr(slash + 1);
    if (!rules::isInterpreter(name)) return {};
    auto raw = d_.proc.read(base + "/cmdline");
    if (!raw) return {};
    const auto script = rules::scriptArgument(name, procinfo::parseCmdline(*raw));
    if (!script) return " (no script file: code from -c, -e, -m, stdin or a terminal)";
    if (script->size() <= kMaxScriptShown) return " " + log::quote(*script);
    return " " + log::quote(script->substr(0, kMaxScriptShown)) + "... (" +
           std::to_string(script->size()) + " bytes)";
  };
  std::vector<std::string> chain;
  for (int pid = ppid, depth = 0; pid > 0 && depth < kMaxParents; ++depth) {
    const auto base = std::to_string(pid);
    auto status = d_.proc.read(base + "/status");
    if (!status) break;
    const auto fields = procinfo::parseStatus(*status);
    if (!fields) break;
    auto exe = d_.proc.readLink(base + "/exe");
    const std::string program = exe ? *exe : fields->name;
    chain.push_back(base + " " + program + scriptOf(base, program));
    if (pid == 1) break;
    pid = fields->ppid;
  }
  return chain;
}

DetectorVerdict Detection::assess(const procinfo::ProcessInfo& process, const ProgramView& program,
                                  const rules::ConnectionTuple& tuple, bool firstSyn) {
  DetectorVerdict v;
  const auto principal = det::Principal::of(process.identity, process.uid);
  if (firstSyn) {
    // Conntrack events already queued (an earlier session's FIN, say) first: the loop
    // may hand us this SYN before it reads them, and D4 counts open sessions.
    if (conntrack_) conntrack_->receive();
    det::AttemptEvent e;
    e.principal = principal;
    e.program = process.identity.display();
    e.dst = tuple.dstAddress();
    e.port = tuple.dstPort;
    e.fromMta = isMta(process.identity);
    e.toLocalMta = !e.fromMta && localMtaListens(e.dst, e.port);
    e.idClass = classify(process.identity);
    e.openSessions = openSessions(principal) + 1;
    // I1: a controlling terminal (a person running swaks), from describe()'s stat read.
    e.interactive = process.controllingTerminal;
    // U1: the active seat session's user, and how long since real input (CLOCK_MONOTONIC).
    if (d_.presence) e.presence = d_.presence(process.uid, d_.clock.monotonic());
    if (d_.dnsEvidence) e.dns = d_.dnsEvidence(process, e.dst);
    const auto a = detector_->observe(e);
    dirty_ = true;
    v.throttle = a.throttle;
    if (a.throttle) {
      v.reason = "throttled: behaves like a spam bot (soft alert), one new destination per " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                    detector_->config().throttleInterval)
                                    .count()) +
                 " s";
      // Bounded like tracked_ (the oldest go): a throttled program's SYN retries are
      // what this is for, and a flood must not grow it for the 30 minutes of its TTL.
      throttled_.put(keyOf(tuple), d_.clock.monotonic());
    }
    // Alerts are stored after the verdict is sent (afterVerdict): no disk write delays it.
    alertsPending_ = true;
    alertProcess_ = process;
  } else if (throttled_.contains(keyOf(tuple))) {
    v.throttle = true;
    v.reason = "throttled: behaves like a spam bot (soft alert)";
  }
  v.bulkDeclared = detector_->bulkInForce(principal);
  v.suspicious = detector_->tier(principal) != det::Tier::None;
  if (detector_->quarantined(principal)) {
    v.quarantined = true;
    v.throttle = false;
    if (program.state != rules::ProgramState::Quarantined) markQuarantined(principal);
  }
  return v;
}

void Detection::allowed(const procinfo::ProcessInfo& process, const rules::ConnectionTuple& tuple) {
  Tracked t;
  t.principal = det::Principal::of(process.identity, process.uid);
  t.dst = tuple.dstAddress();
  t.port = tuple.dstPort;
  t.since = d_.clock.monotonic();
  tracked_.put(keyOf(tuple), std::move(t));
}

void Detection::onOutcome(const rules::ConnectionTuple& tuple, det::ConnectOutcome outcome) {
  const auto key = keyOf(tuple);
  auto* tracked = tracked_.find(key);
  if (tracked == nullptr || tracked->reported) return;
  tracked->reported = true;
  det::OutcomeEvent e;
  e.principal = tracked->principal;
  e.dst = tracked->dst;
  e.port = tracked->port;
  e.outcome = outcome;
  (void)detector_->outcome(e);
  dirty_ = true;
  if (outcome != det::ConnectOutcome::Established) tracked_.erase(key);
  alertsPending_ = true;  // stored by afterVerdict(), never before a verdict is sent
}

void Detection::onClosed(const rules::ConnectionTuple& tuple) { tracked_.erase(keyOf(tuple)); }

void Detection::onMtaSubmission(const ProgramIdentity& identity, std::uint32_t uid,
                                unsigned recipients, const std::vector<std::string>& domains,
                                bool held) {
  det::SubmissionEvent e;
  e.principal = det::Principal::of(identity, uid);
  e.program = identity.display();
  e.idClass = classify(identity);
  e.recipients = recipients;
  e.domains = domains;
  e.held = held;
  // A person who just typed the recipients chose them: no new-domain evidence then.
  if (d_.presence) e.presence = d_.presence(uid, d_.clock.monotonic());
  (void)detector_->submitted(e);
  dirty_ = true;
  // The answer to the MTA waits for this: a hard backstop refuses this very message.
  drainAlerts(nullptr);
}

void Detection::onMtaDelivery(const ProgramIdentity& identity, std::uint32_t uid,
                              const det::DeliveryEvent& outcome) {
  det::DeliveryEvent e = outcome;
  e.principal = det::Principal::of(identity, uid);
  e.program = identity.display();
  e.idClass = classify(identity);
  (void)detector_->delivered(e);
  dirty_ = true;
  drainAlerts(nullptr);
}

void Detection::onReplies(const ProgramIdentity& identity, std::uint32_t uid,
                          const det::ReplyEvent& replies) {
  det::ReplyEvent e = replies;
  e.principal = det::Principal::of(identity, uid);
  e.program = identity.display();
  e.idClass = classify(identity);
  (void)detector_->replied(e);
  dirty_ = true;
  drainAlerts(nullptr);
}

void Detection::markQuarantined(const det::Principal& principal) {
  d_.programs.forEach([&](ProgramView& view) {
    if (!identityMatches(view.identity, principal)) return;
    if (view.state == rules::ProgramState::Quarantined) return;
    view.state = rules::ProgramState::Quarantined;
    d_.writer.submit(recordOf(view));
    if (d_.onProgramChanged) d_.onProgramChanged(view);
  });
}

void Detection::afterVerdict() {
  if (!alertsPending_) return;
  alertsPending_ = false;
  drainAlerts(alertProcess_ ? &*alertProcess_ : nullptr);
  alertProcess_.reset();
}

void Detection::drainAlerts(const procinfo::ProcessInfo* process) {
  auto raised = detector_->takeAlerts();
  if (raised.empty()) return;
  bool hard = false;
  for (const auto& a : raised) {
    store::AlertRecord record;
    record.time = a.time;
    record.principal = a.principal.key();
    record.uid = a.principal.uid;
    record.tier = a.tier == det::Tier::Hard ? "hard" : "soft";
    record.summary = a.summary();
    record.reasons = alertReasons(a);
    std::vector<std::string> parents;
    const bool ownProcess =
        process != nullptr && det::Principal::of(process->identity, process->uid) == a.principal;
    if (ownProcess) parents = parentChain(process->ppid);
    const ProgramView* program = nullptr;
    d_.programs.forEach([&](ProgramView& view) {
      if (program == nullptr && identityMatches(view.identity, a.principal)) program = &view;
    });
    if (program != nullptr) {
      record.programId = program->id;
      record.path = program->identity.path;
      record.scriptPath = program->identity.scriptPath;
      // The alert refers to the program's row: the writer writes in order, so the row
      // goes first.
      d_.writer.submit(recordOf(*program));
    } else {
      // Not listed (evicted): the principal still names the file that connected.
      record.path = a.principal.exePath.empty() ? a.program : a.principal.exePath;
      record.scriptPath = a.principal.scriptPath;
    }
    record.evidence = alertEvidence(a, parents);
    log::warning("Zombie detector: " + log::quote(record.path) + " (uid " +
                 std::to_string(record.uid) + "): " + record.summary);
    if (a.tier == det::Tier::Hard) {
      hard = true;
      markQuarantined(a.principal);
    }
    d_.alerts.raise(std::move(record));
  }
  // Quarantine survives a crash: its state goes to the writer at once.
  if (hard) save();
}

void Detection::ackAlert(std::int64_t id, Done<bool> done) {
  d_.writer.acknowledgeAlert(id, [this, id, done = std::move(done)](Result<bool> r) mutable {
    d_.loop.post([id, r = std::move(r), done = std::move(done)]() mutable {
      if (r && !r.value()) {
        return done(notFound("no alert with id " + std::to_string(id) + " (see guardctl alerts)"));
      }
      done(std::move(r));
    });
  });
}

std::vector<ProgramView*> Detection::programsOf(const ProgramIdentity& identity) {
  std::vector<ProgramView*> views;
  d_.programs.forEach([&](ProgramView& view) {
    if (view.identity.path == identity.path && view.identity.sha256 == identity.sha256 &&
        view.identity.scriptPath == identity.scriptPath &&
        view.identity.scriptSha256 == identity.scriptSha256) {
      views.push_back(&view);
    }
  });
  return views;
}

static Error notSeen(const ProgramIdentity& identity) {
  return notFound(log::quote(identity.display()) +
                  " has not tried to send mail yet (see guardctl programs)");
}

void Detection::saveThenAnswer(std::int64_t programId, Done<ProgramView> done) {
  // Acknowledged means durable, as for approvals.
  save([this, programId, done = std::move(done)](Result<void> saved) mutable {
    d_.loop.post([this, programId, saved = std::move(saved), done = std::move(done)] {
      if (!saved) return done(saved.error());
      const auto* view = d_.programs.find(programId);
      if (view == nullptr) return done(notFound("the program is no longer listed"));
      done(*view);
    });
  });
}

void Detection::release(const ProgramRef& ref, Done<ProgramView> done) {
  d_.identityOf(ref, [this, done = std::move(done)](Result<ProgramIdentity> identity) mutable {
    if (!identity) return done(identity.error());
    releaseIdentity(*identity, std::move(done));
  });
}

void Detection::releaseIdentity(const ProgramIdentity& identity, Done<ProgramView> done) {
  const auto views = programsOf(identity);
  if (views.empty()) return done(notSeen(identity));
  std::vector<det::Principal> matching;
  bool held = false;
  for (const auto& s : detector_->exportState()) {
    if (!identityMatches(identity, s.principal)) continue;
    matching.push_back(s.principal);
    held = held || detector_->quarantined(s.principal);
  }
  const bool listedQuarantined = std::any_of(views.begin(), views.end(), [](const auto* v) {
    return v->state == rules::ProgramState::Quarantined;
  });
  // "Released" for a program that was never quarantined would read as if something had
  // been lifted: say what is the case instead.
  if (!held && !listedQuarantined) {
    return done(notFound(log::quote(identity.display()) + " is not quarantined (it is " +
                         std::string(rules::toString(views.front()->state)) +
                         "): nothing to release"));
  }
  for (const auto& p : matching) detector_->release(p);
  for (auto* view : views) {
    view->state = rules::stateOf(view->identity, false, d_.approvals);
    d_.writer.submit(recordOf(*view));
    if (d_.onProgramChanged) d_.onProgramChanged(*view);
  }
  if (d_.onDecisionsChanged) d_.onDecisionsChanged();
  saveThenAnswer(views.front()->id, std::move(done));
}

void Detection::declareBulk(const ProgramRef& ref, unsigned recipients, std::chrono::hours window,
                            Done<ProgramView> done) {
  d_.identityOf(ref, [this, recipients, window,
                      done = std::move(done)](Result<ProgramIdentity> identity) mutable {
    if (!identity) return done(identity.error());
    declareBulkFor(*identity, recipients, window, std::move(done));
  });
}

void Detection::declareBulkFor(const ProgramIdentity& identity, unsigned recipients,
                               std::chrono::hours window, Done<ProgramView> done) {
  const auto views = programsOf(identity);
  if (views.empty()) return done(notSeen(identity));
  // Every uid the program ran as, plus the one it was last seen with.
  std::vector<det::Principal> principals;
  for (const auto& s : detector_->exportState()) {
    if (identityMatches(identity, s.principal)) principals.push_back(s.principal);
  }
  for (const auto* view : views) {
    auto p = det::Principal::of(identity, view->uid);
    if (std::find(principals.begin(), principals.end(), p) == principals.end()) {
      principals.push_back(p);
    }
  }
  const auto until = d_.clock.now() + window;
  for (const auto& p : principals) {
    detector_->declareBulk(p, recipients, window);
    bulk_[p.key()] = BulkDeclaration{p, recipients, until};
  }
  if (d_.onDecisionsChanged) d_.onDecisionsChanged();
  saveThenAnswer(views.front()->id, std::move(done));
}

}  // namespace mailguard::service
