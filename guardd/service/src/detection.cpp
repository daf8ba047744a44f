#include "detection.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conntrack.hpp"
#include "detector_codec.hpp"
#include "detector_config.hpp"
#include "guard_impl.hpp"
#include "mailguard/service/log.hpp"

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
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  bool ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) == 1;
  std::array<unsigned char, 65536> buf{};
  while (ok) {
    const auto n = ::read(fd, buf.data(), buf.size());
    if (n < 0) ok = false;
    if (n <= 0) break;
    ok = EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n)) == 1;
  }
  ::close(fd);
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

constexpr const char* kDpkgInfo = "/var/lib/dpkg/info";

std::filesystem::file_time_type dpkgInfoTime() {
  std::error_code ec;
  const auto t = std::filesystem::last_write_time(kDpkgInfo, ec);
  return ec ? std::filesystem::file_time_type{} : t;
}

bool identityMatches(const ProgramIdentity& id, const det::Principal& p) {
  return id.sha256 == p.exeSha256 && id.scriptPath == p.scriptPath &&
         id.scriptSha256 == p.scriptSha256;
}

}  // namespace

Detection::Detection(Guard::Impl& guard) : g_(guard) {}
Detection::~Detection() = default;

Result<void> Detection::start() {
  dpkgLoading_ = std::async(std::launch::async, [] { return readDpkgState(); });
  std::vector<std::string> unknown;
  config_ = detectorConfig(g_.options.settings.detector, &unknown);
  for (const auto& name : unknown) log::warning("detector." + name + ": not applied (unknown)");
  detector_ = std::make_unique<det::Detector>(g_.clock, config_);
  auto opened = store::DetectorStore::open(g_.options.stateDir);
  if (!opened) return opened.error();
  store_ = std::move(opened.value());
  auto rows = store_->loadState();
  if (!rows) return rows.error();
  std::vector<det::PrincipalSnapshot> state;
  std::vector<BulkDeclaration> declared;
  for (const auto& [key, text] : rows.value()) {
    if (key.rfind(kBulkPrefix, 0) == 0) {
      if (auto b = decodeBulk(text); b && b->until > g_.clock.now()) declared.push_back(*b);
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
  // what is left of their window.
  for (const auto& b : declared) {
    detector_->declareBulk(b.principal, b.recipients, b.until - g_.clock.now());
    bulk_[b.principal.key()] = b;
  }
  std::size_t quarantined = 0;
  for (auto& [id, view] : g_.programs) {
    if (quarantinedIdentity(view.identity)) {
      view.state = rules::ProgramState::Quarantined;
      ++quarantined;
    }
  }
  log::info("detector: " + std::to_string(state.size()) + " programs' state loaded, " +
            std::to_string(quarantined) + " quarantined");
  auto listener = ConntrackListener::open(*this);
  if (!listener) {
    log::warning("Failed to listen to conntrack events: " + listener.error().message +
                 " (the detector goes on without connection outcomes)");
  } else {
    conntrack_ = std::move(listener.value());
    if (auto r = g_.loop.add(conntrack_->fd(), EPOLLIN,
                             [this](std::uint32_t) {
                               conntrack_->receive();
                               afterVerdict();
                             });
        !r) {
      return r.error();
    }
  }
  g_.loop.every(kSaveEvery, [this] {
    const auto now = std::chrono::steady_clock::now();
    std::erase_if(tracked_, [&](const auto& t) { return now - t.second.since > kTrackedTtl; });
    std::erase_if(throttled_, [&](const auto& t) { return now - t.second > kTrackedTtl; });
    if (dirty_) save();
  });
  return {};
}

void Detection::stop() {
  if (conntrack_) g_.loop.remove(conntrack_->fd());
  if (detector_ && store_) save();
}

void Detection::save() {
  std::vector<std::pair<std::string, std::string>> rows;
  for (const auto& s : detector_->exportState()) {
    rows.emplace_back(s.principal.key(), encodeSnapshot(s));
  }
  const auto now = g_.clock.now();
  std::erase_if(bulk_, [&](const auto& b) { return b.second.until <= now; });
  for (const auto& [key, b] : bulk_)
    rows.emplace_back(std::string(kBulkPrefix) + key, encodeBulk(b));
  if (auto r = store_->saveState(rows); !r) {
    log::error(r.error().message);
    g_.storeError = r.error().message;
    return;
  }
  dirty_ = false;
}

bool Detection::quarantinedIdentity(const ProgramIdentity& identity) const {
  for (const auto& s : detector_->exportState()) {
    if (s.quarantined && identityMatches(identity, s.principal)) return true;
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
  if (auto it = classCache_.find(cacheKey); it != classCache_.end()) return it->second;
  auto packaged = [&] {
    const auto& sums = dpkgSums();
    if (!sums.knows(path)) return false;  // most trusted paths: no file to hash
    const auto md5 = md5OfFile(path);
    return md5 && sums.recorded(path, *md5);
  };
  bool isPackaged = packaged();
  // A file dpkg does not vouch for may come from an upgrade after the sums were read.
  if (!isPackaged && dpkgChanged()) {
    dpkgSums_.reset();
    classCache_.clear();
    isPackaged = packaged();
  }
  const auto result = isPackaged ? det::IdentityClass::Packaged : det::IdentityClass::Unknown;
  classCache_[cacheKey] = result;
  return result;
}

const DpkgSums& Detection::dpkgSums() {
  if (!dpkgSums_) {
    dpkgSums_ = dpkgLoading_.valid() ? dpkgLoading_.get() : readDpkgState();
  }
  return dpkgSums_->sums;
}

Detection::DpkgState Detection::readDpkgState() {
  // The time first: a change made while reading shows as a change later.
  auto time = dpkgInfoTime();
  return DpkgState{time, DpkgSums::read(kDpkgInfo)};
}

bool Detection::dpkgChanged() const { return dpkgSums_ && dpkgInfoTime() != dpkgSums_->infoTime; }

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
  const auto key = port;
  const auto now = std::chrono::steady_clock::now();
  if (auto it = mtaListenerCache_.find(key);
      it != mtaListenerCache_.end() && now - it->second.second < kMtaListenerTtl) {
    return it->second.first;
  }
  bool found = false;
  for (const char* table : {"net/tcp", "net/tcp6"}) {
    auto text = g_.proc.read(table);
    if (!text) continue;
    std::istringstream in(*text);
    std::string line;
    std::getline(in, line);  // header
    while (!found && std::getline(in, line)) {
      // "  0: 0100007F:0019 00000000:0000 0A ... uid timeout inode"
      std::istringstream f(line);
      std::string slot, local, remote, state, txrx, tr, retr, uid, timeout, inode;
      f >> slot >> local >> remote >> state >> txrx >> tr >> retr >> uid >> timeout >> inode;
      if (state != "0A") continue;  // TCP_LISTEN
      const auto colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
      const auto addrHex = local.substr(0, colon);
      // Any listener on this port bound to a loopback or wildcard address will do: the
      // kernel picks the most specific one, and the test is for a recognised MTA.
      (void)addrHex;
      std::uint64_t ino = 0;
      try {
        ino = std::stoull(inode);
      } catch (...) {
        continue;
      }
      const auto info = g_.resolver.describeHolder(ino, std::nullopt);
      if (info && isMta(info->identity)) found = true;
    }
  }
  mtaListenerCache_[key] = {found, now};
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
  std::vector<std::string> chain;
  for (int pid = ppid, depth = 0; pid > 0 && depth < kMaxParents; ++depth) {
    const auto base = std::to_string(pid);
    auto status = g_.proc.read(base + "/status");
    if (!status) break;
    const auto fields = procinfo::parseStatus(*status);
    if (!fields) break;
    auto exe = g_.proc.readLink(base + "/exe");
    chain.push_back(base + " " + (exe ? *exe : fields->name));
    if (pid == 1) break;
    pid = fields->ppid;
  }
  return chain;
}

DetectorVerdict Detection::assess(const procinfo::ProcessInfo& process, ProgramView& program,
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
    const auto a = detector_->observe(e);
    dirty_ = true;
    v.throttle = a.throttle;
    if (a.throttle) {
      v.reason = "throttled: behaves like a spam bot (soft alert), one new destination per " +
                 std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                    detector_->config().throttleInterval)
                                    .count()) +
                 " s";
    }
    if (a.throttle) {
      // Bounded like tracked_: a throttled program's SYN retries are what this is for,
      // and a flood of new connections must not grow it for the 30 minutes of its TTL.
      if (throttled_.size() >= kMaxTracked) throttled_.erase(throttled_.begin());
      throttled_[keyOf(tuple)] = std::chrono::steady_clock::now();
    }
    // Alerts are stored after the verdict is sent (afterVerdict): no disk write delays it.
    alertsPending_ = true;
    alertProcess_ = process;
  } else if (const auto t = throttled_.find(keyOf(tuple)); t != throttled_.end()) {
    v.throttle = true;
    v.reason = "throttled: behaves like a spam bot (soft alert)";
  }
  if (detector_->quarantined(principal)) {
    v.quarantined = true;
    v.throttle = false;
    if (program.state != rules::ProgramState::Quarantined) markQuarantined(principal);
  }
  return v;
}

void Detection::allowed(const procinfo::ProcessInfo& process, const rules::ConnectionTuple& tuple) {
  if (tracked_.size() >= kMaxTracked) tracked_.erase(tracked_.begin());
  Tracked t;
  t.principal = det::Principal::of(process.identity, process.uid);
  t.dst = tuple.dstAddress();
  t.port = tuple.dstPort;
  t.since = std::chrono::steady_clock::now();
  tracked_[keyOf(tuple)] = std::move(t);
}

void Detection::onOutcome(const rules::ConnectionTuple& tuple, det::ConnectOutcome outcome) {
  const auto it = tracked_.find(keyOf(tuple));
  if (it == tracked_.end() || it->second.reported) return;
  it->second.reported = true;
  det::OutcomeEvent e;
  e.principal = it->second.principal;
  e.dst = it->second.dst;
  e.port = it->second.port;
  e.outcome = outcome;
  (void)detector_->outcome(e);
  dirty_ = true;
  if (outcome != det::ConnectOutcome::Established) tracked_.erase(it);
  alertsPending_ = true;  // stored by afterVerdict(), never before a verdict is sent
}

void Detection::onClosed(const rules::ConnectionTuple& tuple) { tracked_.erase(keyOf(tuple)); }

void Detection::markQuarantined(const det::Principal& principal) {
  for (auto& [id, view] : g_.programs) {
    if (!identityMatches(view.identity, principal)) continue;
    if (view.state == rules::ProgramState::Quarantined) continue;
    view.state = rules::ProgramState::Quarantined;
    g_.writer->submit(recordOf(view, true));
    if (g_.self.onProgramChanged) g_.self.onProgramChanged(view);
  }
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
    for (const auto& [id, view] : g_.programs) {
      if (identityMatches(view.identity, a.principal)) {
        record.programId = id;
        record.path = view.identity.path;
        record.scriptPath = view.identity.scriptPath;
        break;
      }
    }
    if (record.path.empty()) record.path = a.program;
    record.evidence = alertEvidence(a, parents);
    if (record.programId) {
      // The alert refers to the program's row: write it now rather than via the writer.
      const auto& view = g_.programs.at(*record.programId);
      const bool quarantined = view.state == rules::ProgramState::Quarantined;
      if (auto r = g_.db->upsertProgram(recordOf(view, quarantined)); !r) {
        log::error(r.error().message);
      }
    }
    if (auto r = store_->addAlert(record); !r) {
      log::error(r.error().message);
      g_.storeError = r.error().message;
    }
    log::warning("Zombie detector: " + log::quote(record.path) + " (uid " +
                 std::to_string(record.uid) + "): " + record.summary);
    if (a.tier == det::Tier::Hard) {
      hard = true;
      markQuarantined(a.principal);
    }
    if (g_.self.onAlert) g_.self.onAlert(record);
  }
  // Quarantine survives a crash: the state is on disk before the next verdict.
  if (hard) save();
}

Result<std::vector<store::AlertRecord>> Detection::alerts(std::uint32_t limit) {
  return store_->alerts(limit);
}

Result<bool> Detection::ackAlert(std::int64_t id) {
  auto r = store_->acknowledge(id);
  if (!r) return makeError(r.error().message);
  if (!r.value()) {
    return notFound("no alert with id " + std::to_string(id) + " (see guardctl alerts)");
  }
  return true;
}

Result<std::vector<ProgramView*>> Detection::programsFor(const ProgramRef& ref,
                                                         ProgramIdentity& identity) {
  auto resolved = g_.identityFor(ref);
  if (!resolved) return resolved.error();
  identity = resolved.value();
  std::vector<ProgramView*> views;
  for (auto& [id, view] : g_.programs) {
    if (view.identity.path == identity.path && view.identity.sha256 == identity.sha256 &&
        view.identity.scriptPath == identity.scriptPath &&
        view.identity.scriptSha256 == identity.scriptSha256) {
      views.push_back(&view);
    }
  }
  if (views.empty()) {
    return notFound(log::quote(identity.display()) +
                    " has not tried to send mail yet (see guardctl programs)");
  }
  return views;
}

Result<ProgramView> Detection::release(const ProgramRef& ref) {
  ProgramIdentity identity;
  auto found = programsFor(ref, identity);
  if (!found) return found.error();
  for (const auto& s : detector_->exportState()) {
    if (identityMatches(identity, s.principal)) detector_->release(s.principal);
  }
  save();
  ProgramView* first = nullptr;
  for (auto* view : found.value()) {
    view->state = rules::stateOf(view->identity, false, g_.approvalRules);
    g_.writer->submit(recordOf(*view, false));
    if (g_.self.onProgramChanged) g_.self.onProgramChanged(*view);
    if (first == nullptr) first = view;
  }
  return *first;
}

Result<ProgramView> Detection::declareBulk(const ProgramRef& ref, unsigned recipients,
                                           std::chrono::hours window) {
  ProgramIdentity identity;
  auto found = programsFor(ref, identity);
  if (!found) return found.error();
  const auto& views = found.value();
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
  const auto until = g_.clock.now() + window;
  for (const auto& p : principals) {
    detector_->declareBulk(p, recipients, window);
    bulk_[p.key()] = BulkDeclaration{p, recipients, until};
  }
  save();  // acknowledged means durable, as for approvals
  return *views.front();
}

}  // namespace mailguard::service

namespace mailguard::service {

Result<std::vector<store::AlertRecord>> Guard::alerts(std::uint32_t limit) {
  return impl_->detection->alerts(limit);
}

void Guard::ackAlert(std::int64_t id, Done<bool> done) { done(impl_->detection->ackAlert(id)); }

void Guard::release(const ProgramRef& ref, Done<ProgramView> done) {
  done(impl_->detection->release(ref));
}

void Guard::declareBulk(const ProgramRef& ref, unsigned recipients, std::chrono::hours window,
                        Done<ProgramView> done) {
  done(impl_->detection->declareBulk(ref, recipients, window));
}

}  // namespace mailguard::service
