#include "mailguard/detector/detector.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <sstream>
#include <utility>

namespace mailguard::detector {

namespace {

// Loopback, link-local and private (RFC 1918, RFC 4193) addresses: what a home PC's own
// configuration names by number. A bot's hard-coded targets are public MX hosts.
bool localAddress(const std::string& address) {
  in_addr v4{};
  if (::inet_pton(AF_INET, address.c_str(), &v4) == 1) {
    const auto a = ntohl(v4.s_addr);
    return (a >> 24) == 127 || (a >> 24) == 10 || (a >> 20) == 0xac1 || (a >> 16) == 0xc0a8 ||
           (a >> 16) == 0xa9fe;
  }
  in6_addr v6{};
  if (::inet_pton(AF_INET6, address.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6) || IN6_IS_ADDR_LINKLOCAL(&v6)) return true;
  return (v6.s6_addr[0] & 0xfe) == 0xfc;  // fc00::/7
}

using std::chrono::duration_cast;
using Days = std::chrono::duration<double, std::ratio<86400>>;

constexpr std::string_view kLocalMta = "local-mta";
constexpr std::size_t kSampleDestinations = 5;
constexpr std::size_t kTopReasons = 5;
// Bounds on per-principal windows: past these a bot is quarantined anyway, so an
// approximate count is enough and memory stays a few KB per principal.
constexpr std::size_t kWindowCap = 1024;
constexpr std::size_t kRecentCap = 4096;
constexpr Duration kRecentKeep = std::chrono::minutes{10};  // > conntrack SYN_SENT (120 s)
constexpr Duration kPruneEvery = std::chrono::hours{1};

std::int64_t dayOf(TimePoint t) {
  return duration_cast<std::chrono::hours>(t.time_since_epoch()).count() / 24;
}

std::size_t index(Channel c) { return static_cast<std::size_t>(c); }

bool isFailure(ConnectOutcome o) { return o != ConnectOutcome::Established; }

// Times with a bounded length: counts within a sliding window.
class TimeWindow {
 public:
  void add(TimePoint t, std::size_t cap) {
    times_.push_back(t);
    while (times_.size() > cap) times_.pop_front();
  }
  std::size_t count(TimePoint now, Duration window) {
    while (!times_.empty() && times_.front() <= now - window) times_.pop_front();
    return times_.size();
  }
  void clear() { times_.clear(); }

 private:
  std::deque<TimePoint> times_;
};

// Distinct values within a sliding window.
class DistinctWindow {
 public:
  void add(TimePoint t, const std::string& value) {
    items_.emplace_back(t, value);
    ++counts_[value];
    while (items_.size() > kWindowCap) dropFront();
  }
  void expire(TimePoint now, Duration window) {
    while (!items_.empty() && items_.front().first <= now - window) dropFront();
  }
  [[nodiscard]] std::size_t total() const { return items_.size(); }
  [[nodiscard]] std::size_t distinct() const { return counts_.size(); }
  void clear() {
    items_.clear();
    counts_.clear();
  }

 private:
  void dropFront() {
    auto it = counts_.find(items_.front().second);
    if (it != counts_.end() && --it->second == 0) counts_.erase(it);
    items_.pop_front();
  }
  std::deque<std::pair<TimePoint, std::string>> items_;
  std::map<std::string, unsigned> counts_;
};

struct ChannelState {
  double s = 0;
  TimePoint lastUpdate{};
  std::map<Evidence, Reason> run;  // evidence since S last stood at 0
};

struct Recent {  // one (dst, port) recently attempted: retries and outcome matching
  TimePoint time;
  double counted = 0;
  Channel channel = Channel::Direct;
  std::string key;  // working-set key of the destination
};

struct Bulk {
  TimePoint until;
  unsigned remaining = 0;
};

struct PrincipalState {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  bool mta = false;
  std::array<ChannelState, kChannelCount> channels{};
  TimePoint lastActivity{};
  TimePoint lastPrune{};
  std::map<std::string, WorkingSetEntry> workingSet;
  std::map<std::string, std::int64_t> d3Day;  // destination -> day D3 was last charged
  bool quarantined = false;
  std::optional<Alert> quarantineAlert;
  bool softAlerted = false;
  TimePoint lastNewDestination{};
  std::optional<Bulk> bulk;
  std::map<std::pair<std::string, std::uint16_t>, Recent> recent;
  TimeWindow attempts24;
  TimeWindow failures24;
  // The MTA channel: recipients and their domains in 24 h, blocklisted messages in 1 h.
  std::deque<std::pair<TimePoint, unsigned>> mtaRecipients24;
  DistinctWindow mtaDomains24;
  TimeWindow blocklisted1h;
  // Recipient domains this principal handed to the local MTA -> when last (bounded).
  std::map<std::string, TimePoint> mtaDomainsSeen;
  TimeWindow mtaSubmissions;
  TimeWindow burst;
  DistinctWindow direct24;
  DistinctWindow h3;
  std::deque<std::string> samples;

  void resetWindows() {
    for (auto& c : channels) c = ChannelState{};
    recent.clear();
    attempts24.clear();
    failures24.clear();
    mtaRecipients24.clear();
    mtaDomains24.clear();
    mtaSubmissions.clear();
    blocklisted1h.clear();
    burst.clear();
    direct24.clear();
    h3.clear();
    d3Day.clear();
    softAlerted = false;
  }
};

void addReason(std::vector<Reason>& reasons, Evidence e, double weight) {
  if (weight != 0) reasons.push_back(Reason{e, weight, 1});
}

}  // namespace

std::string_view toString(Evidence e) {
  switch (e) {
    case Evidence::DirectToMx:
      return "direct-to-mx";
    case Evidence::NewDestination:
      return "new-destination";
    case Evidence::LearnedDestination:
      return "learned-destination";
    case Evidence::NewRelayKnownHost:
      return "new-program-on-known-relay";
    case Evidence::ManySessions:
      return "many-sessions";
    case Evidence::ConnectFailure:
      return "connect-failure";
    case Evidence::MtaDeliveryFailed:
      return "mta-delivery-failed";
    case Evidence::MtaDeliveryOk:
      return "mta-delivery-ok";
    case Evidence::VolumeH3:
      return "h3-volume";
    case Evidence::BackstopDestinations:
      return "backstop-destinations-24h";
    case Evidence::BackstopAttempts:
      return "backstop-attempts-24h";
    case Evidence::Interactive:
      return "interactive-terminal";
    case Evidence::MtaUserUnknown:
      return "mta-user-unknown";
    case Evidence::MtaBlocklisted:
      return "mta-blocklisted";
    case Evidence::MtaRejected:
      return "mta-rejected";
    case Evidence::MtaDelivered:
      return "mta-delivered";
    case Evidence::BlocklistH1:
      return "h1-blocklisted";
    case Evidence::BackstopMtaRecipients:
      return "backstop-mta-recipients-24h";
    case Evidence::MxLookup:
      return "mx-lookup";
    case Evidence::NoDnsAnswer:
      return "no-dns-answer";
    case Evidence::MailHostLookup:
      return "mail-host-lookup";
    case Evidence::UserInput:
      return "user-input";
    case Evidence::UserAway:
      return "user-away";
    case Evidence::UserUnknown:
      return "user-unknown";
    case Evidence::Blocklisted:
      return "blocklisted";
    case Evidence::Rejected:
      return "rejected";
    case Evidence::Accepted:
      return "accepted";
    case Evidence::MtaNewDomain:
      return "mta-new-domain";
    case Evidence::MtaKnownDomains:
      return "mta-known-domains";
    case Evidence::MtaBurst:
      return "mta-burst";
  }
  return "unknown";
}

std::string_view toString(Channel c) {
  switch (c) {
    case Channel::Relay:
      return "RELAY";
    case Channel::Direct:
      return "DIRECT";
    case Channel::NewRelay:
      return "NEWRELAY";
  }
  return "unknown";
}

std::string_view toString(Tier t) {
  switch (t) {
    case Tier::None:
      return "none";
    case Tier::Soft:
      return "soft";
    case Tier::Hard:
      return "hard";
  }
  return "unknown";
}

Principal Principal::of(const rules::ProgramIdentity& id, std::uint32_t uid) {
  Principal p;
  p.exeSha256 = id.sha256;
  p.scriptPath = id.scriptPath;
  p.scriptSha256 = id.scriptSha256;
  p.uid = uid;
  p.exePath = id.path;
  return p;
}

std::string Principal::key() const {
  // Paths may hold ':' (the separator) and '%' (the escape); the uid follows the last
  // '/', and the hashes are hex: the key is unambiguous.
  auto escaped = [](const std::string& path) {
    std::string out;
    out.reserve(path.size());
    for (const char c : path) {
      if (c == '%') {
        out += "%25";
      } else if (c == ':') {
        out += "%3A";
      } else {
        out += c;
      }
    }
    return out;
  };
  std::string k = exeSha256;
  if (!exePath.empty()) k += ":" + escaped(exePath);
  if (!scriptPath.empty()) k += ":" + escaped(scriptPath) + ":" + scriptSha256;
  return k + "/" + std::to_string(uid);
}

std::string Alert::summary() const {
  std::ostringstream out;
  out.setf(std::ios::fixed);
  out.precision(1);
  out << (tier == Tier::Hard ? "quarantined" : "suspicious") << ": " << score << " nats on "
      << toString(channel) << " (threshold " << threshold << ")";
  const char* sep = ": ";
  for (const Reason& r : reasons) {
    out << sep << toString(r.evidence) << " " << r.weight << " x" << r.count;
    sep = ", ";
  }
  return out.str();
}

struct Detector::Impl {
  const Clock* clock;
  DetectorConfig cfg;
  std::map<Principal, PrincipalState> principals;
  // Last local submission to the MTA per submitter, for attributing its deliveries.
  std::map<Principal, TimePoint> submitters;
  // Outcomes of the last blockedAfter port-25 connections (true: established).
  std::deque<bool> port25;
  std::size_t port25Successes = 0;
  std::vector<Alert> alerts;
  TimePoint lastGlobalPrune{};

  Impl(const Clock& c, DetectorConfig config) : clock(&c), cfg(std::move(config)) {}

  double shift(const PrincipalState& p) const {
    if (p.mta) return cfg.packagedShift;
    switch (p.idClass) {
      case IdentityClass::Packaged:
        return cfg.packagedShift;
      case IdentityClass::Suspicious:
        return cfg.suspiciousShift;
      case IdentityClass::Unknown:
        break;
    }
    return 0;
  }

  bool bulkActive(PrincipalState& p, TimePoint now) const {
    if (!p.bulk) return false;
    if (now >= p.bulk->until || p.bulk->remaining == 0) {
      p.bulk.reset();
      return false;
    }
    return true;
  }

  [[nodiscard]] bool knownRelayElsewhere(const Principal& self, const std::string& key) const {
    for (const auto& [principal, state] : principals) {
      if (principal == self) continue;
      auto it = state.workingSet.find(key);
      if (it != state.workingSet.end() && it->second.learned) return true;
    }
    return false;
  }

  PrincipalState& stateFor(const Principal& principal) {
    auto [it, inserted] = principals.try_emplace(principal);
    if (inserted) it->second.principal = principal;
    return it->second;
  }

  void pruneWorkingSet(PrincipalState& p, TimePoint now) {
    if (now - p.lastPrune < kPruneEvery) return;
    p.lastPrune = now;
    std::erase_if(p.workingSet, [&](const auto& kv) {
      const Duration ttl = kv.second.learned ? cfg.learnedTtl : cfg.candidateTtl;
      return now - kv.second.lastSeen > ttl;
    });
    for (auto it = p.recent.begin(); it != p.recent.end();) {
      it = now - it->second.time > kRecentKeep ? p.recent.erase(it) : std::next(it);
    }
    std::erase_if(p.d3Day, [&](const auto& kv) { return kv.second < dayOf(now) - 1; });
  }

  // Keeps at most candidateLimit unlearned destinations: when over, the oldest quarter
  // goes at once, so a bot's stream of new destinations costs O(log n) per attempt.
  void trimCandidates(PrincipalState& p) const {
    if (p.workingSet.size() <= cfg.candidateLimit + cfg.workingSetSize) return;
    std::vector<std::pair<TimePoint, std::string>> candidates;
    for (const auto& [key, e] : p.workingSet) {
      if (!e.learned) candidates.emplace_back(e.lastSeen, key);
    }
    if (candidates.size() <= cfg.candidateLimit) return;
    const std::size_t drop = candidates.size() - cfg.candidateLimit / 2;
    std::nth_element(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(drop),
                     candidates.end());
    for (std::size_t i = 0; i < drop; ++i) p.workingSet.erase(candidates[i].second);
  }

  // Recent (dst, port) entries serve retries and outcome matching for a few minutes;
  // a flood beyond kRecentCap keeps only what the retry window needs, and at most half
  // the cap, the newest: so the next pass over the map comes kRecentCap / 2 new
  // destinations later, and a bot's stream of them costs O(log n) per attempt. (Trimming
  // just below the cap made every attempt of a flood to 4,096 destinations in the retry
  // window pay two passes over the map.)
  void trimRecent(PrincipalState& p, TimePoint now) const {
    if (p.recent.size() <= kRecentCap) return;
    std::erase_if(p.recent, [&](const auto& kv) { return now - kv.second.time > kRecentKeep; });
    if (p.recent.size() <= kRecentCap / 2) return;
    std::erase_if(p.recent, [&](const auto& kv) { return now - kv.second.time > cfg.retryWindow; });
    if (p.recent.size() <= kRecentCap / 2) return;
    std::vector<TimePoint> times;
    times.reserve(p.recent.size());
    for (const auto& [key, r] : p.recent) times.push_back(r.time);
    const auto cut = times.begin() + static_cast<std::ptrdiff_t>(times.size() - kRecentCap / 2);
    std::nth_element(times.begin(), cut, times.end());
    const TimePoint oldestKept = *cut;
    std::erase_if(p.recent, [&](const auto& kv) { return kv.second.time < oldestKept; });
    // Ties at the cut (a burst within one clock tick) may keep a few more; never more.
    for (auto it = p.recent.begin(); it != p.recent.end() && p.recent.size() > kRecentCap / 2;) {
      it = it->second.time == oldestKept ? p.recent.erase(it) : std::next(it);
    }
  }

  void pruneGlobal(TimePoint now) {
    if (now - lastGlobalPrune < kPruneEvery) return;
    lastGlobalPrune = now;
    std::erase_if(principals, [&](const auto& kv) {
      const PrincipalState& p = kv.second;
      if (p.quarantined || now - p.lastActivity < cfg.idleTtl) return false;
      return std::none_of(p.workingSet.begin(), p.workingSet.end(),
                          [](const auto& e) { return e.second.learned; });
    });
  }

  void learnSuccess(PrincipalState& p, const std::string& key, TimePoint now) {
    auto it = p.workingSet.find(key);
    if (it == p.workingSet.end()) return;
    WorkingSetEntry& e = it->second;
    if (e.successDays == 0 || dayOf(e.lastSuccess) != dayOf(now)) ++e.successDays;
    e.lastSuccess = now;
    if (e.learned || e.successDays < cfg.learnDays) return;
    std::size_t learnedCount = 0;
    auto lru = p.workingSet.end();
    for (auto w = p.workingSet.begin(); w != p.workingSet.end(); ++w) {
      if (!w->second.learned) continue;
      ++learnedCount;
      if (lru == p.workingSet.end() || w->second.lastSeen < lru->second.lastSeen) lru = w;
    }
    if (learnedCount >= cfg.workingSetSize && lru != p.workingSet.end()) p.workingSet.erase(lru);
    e.learned = true;
  }

  // The channel's CUSUM; all of them share one when the split is off (an ablation).
  [[nodiscard]] std::size_t slot(Channel c) const { return cfg.channelSplit ? index(c) : 0; }

  // Adds `score` with its reasons to the channel's CUSUM (Page's test: S = max(0, S + e)).
  void accumulate(PrincipalState& p, Channel c, double score, const std::vector<Reason>& reasons,
                  TimePoint now) {
    ChannelState& ch = p.channels[slot(c)];
    if (cfg.leakPerDay > 0 && ch.lastUpdate != TimePoint{} && now > ch.lastUpdate) {
      ch.s = std::max(0.0, ch.s - cfg.leakPerDay * Days(now - ch.lastUpdate).count());
    }
    ch.lastUpdate = now;
    ch.s = std::max(0.0, ch.s + score);
    if (ch.s <= 0) {
      ch.run.clear();
      return;
    }
    for (const Reason& r : reasons) {
      auto [it, inserted] = ch.run.try_emplace(r.evidence, Reason{r.evidence, 0, 0});
      it->second.weight += r.weight;
      it->second.count += r.count;
    }
  }

  Alert makeAlert(PrincipalState& p, Tier tier, Channel c, double threshold,
                  std::vector<Reason> extra, TimePoint now) {
    Alert a;
    a.time = now;
    a.principal = p.principal;
    a.program = p.program;
    a.tier = tier;
    a.channel = c;
    a.score = p.channels[slot(c)].s;
    a.threshold = threshold;
    // The rule that fired (H3, a backstop) first, then the test's heaviest evidence.
    std::vector<Reason> run;
    for (const auto& [e, r] : p.channels[slot(c)].run) run.push_back(r);
    std::stable_sort(run.begin(), run.end(),
                     [](const Reason& x, const Reason& y) { return x.weight > y.weight; });
    a.reasons = std::move(extra);
    a.reasons.insert(a.reasons.end(), run.begin(), run.end());
    if (a.reasons.size() > kTopReasons) a.reasons.resize(kTopReasons);
    a.attempts24h = static_cast<unsigned>(p.attempts24.count(now, cfg.backstopWindow));
    p.direct24.expire(now, cfg.backstopWindow);
    a.destinations24h = static_cast<unsigned>(p.direct24.distinct());
    a.failures24h = static_cast<unsigned>(p.failures24.count(now, cfg.backstopWindow));
    a.sampleDestinations.assign(p.samples.rbegin(), p.samples.rend());
    return a;
  }

  // Decides the principal's tier after an update and raises alerts on a rise.
  Tier evaluate(PrincipalState& p, std::vector<Reason> hardTriggers, bool softBackstop,
                std::vector<Reason> softTriggers, std::optional<Alert>& raised, TimePoint now) {
    if (p.quarantined) return Tier::Hard;
    const double sh = shift(p);
    const double hard = cfg.hardThreshold + sh;
    const double soft = cfg.softThreshold + sh;
    // The channel with the highest S among those with recent evidence.
    std::size_t top = 0;
    double topScore = -1;
    for (std::size_t i = 0; i < kChannelCount; ++i) {
      const ChannelState& c = p.channels[i];
      if (now - c.lastUpdate > cfg.softActiveWindow && c.s < hard) continue;
      if (c.s > topScore) {
        topScore = c.s;
        top = i;
      }
    }
    topScore = std::max(topScore, 0.0);
    const Channel topChannel = static_cast<Channel>(top);

    if (topScore >= hard || !hardTriggers.empty()) {
      p.quarantined = true;
      raised = makeAlert(p, Tier::Hard, topChannel, hard, std::move(hardTriggers), now);
      p.quarantineAlert = raised;
      alerts.push_back(*raised);
      return Tier::Hard;
    }
    const bool bulk = bulkActive(p, now);
    const bool softNow = !bulk && (topScore >= soft || softBackstop);
    if (softNow && !p.softAlerted) {
      p.softAlerted = true;
      raised = makeAlert(p, Tier::Soft, topChannel, soft, std::move(softTriggers), now);
      alerts.push_back(*raised);
    } else if (!softNow && p.softAlerted && topScore <= cfg.rearmFraction * soft) {
      p.softAlerted = false;
    }
    return softNow ? Tier::Soft : Tier::None;
  }

  // N1-N3 (research 2.2), only where the principal's DNS was seen at all: a program
  // whose look-ups guardd cannot observe (DoH, a resolver over D-Bus) earns none.
  void addDnsEvidence(std::vector<Reason>& reasons, const AttemptEvent& ev, bool direct,
                      bool isLearned, bool reachedBefore) const {
    // A learned destination's evidence is the working set's (D2-): a program that has
    // delivered there on three days is judged by that, however it finds the host (a
    // developer's swaks --to looks up MX on every run), and a learned relay's address
    // may come from the program's own cache.
    if (!ev.dns.seen || isLearned) return;
    if (ev.dns.mxQueried) addReason(reasons, Evidence::MxLookup, cfg.mxLookup);
    // Loopback and the home network's own addresses are configured by number, never
    // resolved (a relay at 127.0.0.1 or on the LAN), and a destination the program reached before
    // may come from its own cache (a mail client keeps its relay's address): N2 marks a first
    // contact with an address no answer gave it, a hard-coded target.
    if (!ev.dns.dstResolved && !ev.toLocalMta && !reachedBefore && !localAddress(ev.dst)) {
      addReason(reasons, Evidence::NoDnsAnswer, cfg.noDnsAnswer);
    }
    // A mail client resolves smtp.<provider> for its relay; guessing mail.<domain> for
    // delivery is what Mytob-like bots do: DIRECT only.
    if (ev.dns.mailNameQueried && direct) {
      addReason(reasons, Evidence::MailHostLookup, cfg.mailHostLookup);
    }
  }

  // U1, U2 and I1 (research 2.2, 2.7). The credits of U1 and I1 share one cap: the larger
  // of the two alone, and on DIRECT above -D1, so that a bot piggybacking on the user's
  // input or faking a terminal only slows its detection down.
  void addPresenceEvidence(std::vector<Reason>& reasons, const AttemptEvent& ev,
                           bool direct) const {
    const PresenceEvidence& pr = ev.presence;
    const bool input = pr.known && pr.activeSession && pr.sinceInput &&
                       *pr.sinceInput >= Duration::zero() && *pr.sinceInput <= cfg.inputWindow;
    double cap = std::min({cfg.userInput, cfg.interactive, 0.0});
    if (direct) cap = std::max(cap, -0.99 * cfg.directToMx);
    double credit = 0;
    if (input) {
      credit = std::max(std::min(cfg.userInput, 0.0), cap);
      addReason(reasons, Evidence::UserInput, credit);
    }
    if (ev.interactive && direct) {
      addReason(reasons, Evidence::Interactive,
                std::min(0.0, std::max(cfg.interactive, cap - credit)));
    }
    // Nobody at the keyboard: no active session of the user, or no input for awayAfter.
    // Unknown idleness (an active session without an input time) is no evidence.
    const bool away =
        pr.known && (!pr.activeSession || (pr.sinceInput && *pr.sinceInput >= cfg.awayAfter));
    if (away && direct) addReason(reasons, Evidence::UserAway, cfg.userAway);
  }

  Assessment observe(const AttemptEvent& ev) {
    const TimePoint now = clock->now();
    pruneGlobal(now);
    PrincipalState& p = stateFor(ev.principal);
    if (!ev.program.empty()) p.program = ev.program;
    p.idClass = ev.idClass;
    p.mta = ev.fromMta;
    p.lastActivity = now;
    Assessment out;
    if (p.mta) {
      // A recognised MTA delivering mail is doing its job: no evidence, no volume rules,
      // no working set (research 2.6). Its outcomes are charged to its submitters.
      out.channel = ev.port == 25 && !ev.toLocalMta ? Channel::Direct : Channel::Relay;
      out.tier = p.quarantined ? Tier::Hard : Tier::None;
      return out;
    }
    pruneWorkingSet(p, now);

    const std::string key = ev.toLocalMta ? std::string(kLocalMta) : destinationKey(ev.dst, cfg);
    auto ws = p.workingSet.find(key);
    const bool isNew = ws == p.workingSet.end();
    const bool isLearned = !isNew && ws->second.learned;
    if (ev.toLocalMta) {
      out.channel = isLearned ? Channel::Relay : Channel::NewRelay;
      if (!ev.fromMta) submitters[ev.principal] = now;
    } else if (ev.port == 25) {
      out.channel = isLearned ? Channel::Relay : Channel::Direct;
    } else {
      out.channel = isLearned ? Channel::Relay : Channel::NewRelay;
    }
    // The CUSUM the attempt's evidence goes to: see DetectorConfig::learnedMxOnDirect.
    const Channel scored = cfg.learnedMxOnDirect && ev.port == 25 && !ev.toLocalMta && isLearned
                               ? Channel::Direct
                               : out.channel;
    if (isNew) {
      ws = p.workingSet.emplace(key, WorkingSetEntry{key, now, now, TimePoint{}, 0, false}).first;
      trimCandidates(p);
      ws = p.workingSet.find(key);
      if (ws == p.workingSet.end()) {  // evicted at once only if its time is the oldest
        ws = p.workingSet.emplace(key, WorkingSetEntry{key, now, now, TimePoint{}, 0, false}).first;
      }
    }
    ws->second.lastSeen = now;

    if (p.quarantined) {
      out.tier = Tier::Hard;
      out.cusum = p.channels[slot(out.channel)].s;
      return out;
    }

    std::vector<Reason> reasons;
    double score = 0;
    const bool bulk = bulkActive(p, now);
    // A connection to the local MTA is not a recipient: the message it carries is counted
    // by its recipients when the MTA asks (submitted()), not twice.
    if (bulk && !ev.toLocalMta) --p.bulk->remaining;
    const bool direct = out.channel == Channel::Direct;
    if (!p.mta) {
      p.burst.add(now, cfg.burstAttempts);
      const std::size_t inBurst = p.burst.count(now, cfg.burstWindow);
      if (direct) addReason(reasons, Evidence::DirectToMx, cfg.directToMx);
      if (isNew) addReason(reasons, Evidence::NewDestination, cfg.newDestination);
      if (isLearned) addReason(reasons, Evidence::LearnedDestination, cfg.learnedDestination);
      if (out.channel == Channel::NewRelay &&
          (ev.toLocalMta || knownRelayElsewhere(p.principal, key))) {
        auto [d3, inserted] = p.d3Day.try_emplace(key, dayOf(now));
        if (inserted || d3->second != dayOf(now)) {
          d3->second = dayOf(now);
          addReason(reasons, Evidence::NewRelayKnownHost, cfg.newRelayKnownHost);
        }
      }
      // D4: simultaneous sessions anywhere not learned; the rate form only on DIRECT, as
      // a mail client flushing its outbox to a relay it has not learned yet is bursty too.
      if (!isLearned && !bulk &&
          (ev.openSessions >= cfg.sessionsForBurst || (direct && inBurst >= cfg.burstAttempts))) {
        addReason(reasons, Evidence::ManySessions, cfg.manySessions);
      }
      addDnsEvidence(reasons, ev, direct, isLearned, ws->second.successDays > 0);
      addPresenceEvidence(reasons, ev, direct);
      for (const Reason& r : reasons) score += r.weight;
      const double clipped = std::clamp(score, cfg.minScore, cfg.maxScore);
      // Retries of one direct delivery count once, with their highest score (research 2.2).
      auto& rec = p.recent[{ev.dst, ev.port}];
      double effective = clipped;
      if (direct && rec.time != TimePoint{} && now - rec.time < cfg.retryWindow) {
        effective = std::max(0.0, clipped - rec.counted);
        rec.counted = std::max(rec.counted, clipped);
      } else {
        rec.time = now;
        rec.counted = clipped;
      }
      rec.channel = scored;
      rec.key = key;
      if (score != 0 && effective != score) {
        for (Reason& r : reasons) r.weight *= effective / score;
      }
      score = effective;
    } else {
      auto& rec = p.recent[{ev.dst, ev.port}];
      rec.time = now;
      rec.channel = out.channel;
      rec.key = key;
    }
    trimRecent(p, now);

    std::vector<Reason> hardTriggers;
    std::vector<Reason> softTriggers;
    bool softBackstop = false;
    if (!p.mta) {
      p.attempts24.add(now, cfg.backstopHardAttempts + 1);
      if (direct) {
        p.direct24.add(now, ev.dst);
        if (std::find(p.samples.begin(), p.samples.end(), ev.dst) == p.samples.end()) {
          p.samples.push_back(ev.dst);
          if (p.samples.size() > kSampleDestinations) p.samples.pop_front();
        }
        // H3: a non-package binary fanning out on port 25 (research 2.4).
        if (p.idClass != IdentityClass::Packaged) {
          p.h3.add(now, ev.dst);
          p.h3.expire(now, cfg.h3Window);
          if (p.h3.total() >= cfg.h3Connections && p.h3.distinct() >= cfg.h3Destinations) {
            hardTriggers.push_back(
                Reason{Evidence::VolumeH3, 0, static_cast<unsigned>(p.h3.total())});
          }
        }
      }
      if (!bulk) {
        p.direct24.expire(now, cfg.backstopWindow);
        const auto dests = static_cast<unsigned>(p.direct24.distinct());
        const auto attempts = static_cast<unsigned>(p.attempts24.count(now, cfg.backstopWindow));
        if (dests > cfg.backstopHardDestinations) {
          hardTriggers.push_back(Reason{Evidence::BackstopDestinations, 0, dests});
        } else if (dests > cfg.backstopSoftDestinations) {
          softBackstop = true;
          softTriggers.push_back(Reason{Evidence::BackstopDestinations, 0, dests});
        }
        if (attempts > cfg.backstopHardAttempts) {
          hardTriggers.push_back(Reason{Evidence::BackstopAttempts, 0, attempts});
        }
      }
    }

    accumulate(p, scored, score, reasons, now);
    out.score = score;
    out.reasons = std::move(reasons);
    out.tier =
        evaluate(p, std::move(hardTriggers), softBackstop, std::move(softTriggers), out.alert, now);
    out.cusum = p.channels[slot(scored)].s;
    // Soft tier: new destinations at most one per interval (Williamson's throttle).
    if (out.tier == Tier::Soft && !isLearned) {
      if (p.lastNewDestination != TimePoint{} &&
          now - p.lastNewDestination < cfg.throttleInterval) {
        out.throttle = true;
      } else {
        p.lastNewDestination = now;
      }
    }
    return out;
  }

  Assessment outcome(const OutcomeEvent& ev) {
    const TimePoint now = clock->now();
    Assessment out;
    auto pit = principals.find(ev.principal);
    if (pit == principals.end()) return out;
    PrincipalState& p = pit->second;
    auto rit = p.recent.find({ev.dst, ev.port});
    std::string key = destinationKey(ev.dst, cfg);
    if (rit != p.recent.end()) {
      out.channel = rit->second.channel;
      key = rit->second.key;  // the local MTA is keyed by its role, not its address
    }
    const bool remote25 = ev.port == 25 && key != kLocalMta;
    if (remote25) notePort25(!isFailure(ev.outcome));
    if (p.mta) {
      if (!remote25 || !port25Blocked() || !isFailure(ev.outcome)) {
        attributeToSubmitters(isFailure(ev.outcome), now);
      }
      return out;
    }
    if (p.quarantined) {
      out.tier = Tier::Hard;
      return out;
    }
    if (!isFailure(ev.outcome)) {
      learnSuccess(p, key, now);
      out.tier = evaluate(p, {}, false, {}, out.alert, now);
      return out;
    }
    p.failures24.add(now, kWindowCap);
    auto ws = p.workingSet.find(key);
    const bool isLearned = ws != p.workingSet.end() && ws->second.learned;
    double w = cfg.connectFailure * (isLearned ? cfg.connectFailureLearned : 1.0);
    if (remote25 && port25Blocked()) w = 0;
    w = std::clamp(w, cfg.minScore, cfg.maxScore);
    std::vector<Reason> reasons;
    addReason(reasons, Evidence::ConnectFailure, w);
    accumulate(p, out.channel, w, reasons, now);
    out.score = w;
    out.reasons = std::move(reasons);
    out.tier = evaluate(p, {}, false, {}, out.alert, now);
    out.cusum = p.channels[slot(out.channel)].s;
    return out;
  }

  // Non-TCP submissions go to the channel the principal's local-MTA evidence uses.
  static Channel mtaChannel(const PrincipalState& p) {
    auto ws = p.workingSet.find(std::string(kLocalMta));
    return ws != p.workingSet.end() && ws->second.learned ? Channel::Relay : Channel::NewRelay;
  }

  PrincipalState& mtaSubmitter(const Principal& principal, const std::string& program,
                               IdentityClass idClass, TimePoint now) {
    pruneGlobal(now);
    PrincipalState& p = stateFor(principal);
    if (!program.empty()) p.program = program;
    p.idClass = idClass;
    p.lastActivity = now;
    return p;
  }

  unsigned mtaRecipients(PrincipalState& p, TimePoint now) const {
    while (!p.mtaRecipients24.empty() &&
           p.mtaRecipients24.front().first <= now - cfg.backstopWindow) {
      p.mtaRecipients24.pop_front();
    }
    unsigned recipients = 0;
    for (const auto& [t, n] : p.mtaRecipients24) recipients += n;
    return recipients;
  }

  Assessment submitted(const SubmissionEvent& ev) {
    const TimePoint now = clock->now();
    PrincipalState& p = mtaSubmitter(ev.principal, ev.program, ev.idClass, now);
    Assessment out;
    out.channel = mtaChannel(p);
    if (p.quarantined) {
      out.tier = Tier::Hard;
      return out;
    }
    for (const auto& d : ev.domains) {
      p.mtaDomains24.add(now, d);
      if (std::find(p.samples.begin(), p.samples.end(), d) == p.samples.end()) {
        p.samples.push_back(d);
        if (p.samples.size() > kSampleDestinations) p.samples.pop_front();
      }
    }
    p.attempts24.add(now, cfg.backstopHardAttempts + 1);
    // Recipients of a declared bulk send do not count towards the daily limits after it
    // either (its deliveries' outcomes come in once the declaration is used up).
    const bool declared = bulkActive(p, now);
    p.mtaRecipients24.emplace_back(now, declared ? 0 : ev.recipients);
    while (p.mtaRecipients24.size() > kWindowCap) p.mtaRecipients24.pop_front();
    const unsigned recipients = mtaRecipients(p, now);
    p.mtaDomains24.expire(now, cfg.backstopWindow);
    const auto domains = static_cast<unsigned>(p.mtaDomains24.distinct());
    std::vector<Reason> hard;
    std::vector<Reason> soft;
    bool softBackstop = false;
    const bool bulk = bulkActive(p, now);
    if (bulk) p.bulk->remaining -= std::min(p.bulk->remaining, ev.recipients);
    if (!bulk) {
      if (recipients > cfg.mtaBackstopHardRecipients) {
        hard.push_back(Reason{Evidence::BackstopMtaRecipients, 0, recipients});
      } else if (domains > cfg.mtaBackstopHardDomains) {
        hard.push_back(Reason{Evidence::BackstopMtaRecipients, 0, domains});
      } else if (recipients > cfg.mtaBackstopSoftRecipients) {
        softBackstop = true;
        soft.push_back(Reason{Evidence::BackstopMtaRecipients, 0, recipients});
      }
    }
    if (!p.mta && !bulk && !ev.held) {
      std::vector<Reason> reasons;
      addSubmissionEvidence(p, ev, reasons, now);
      double score = 0;
      for (const Reason& r : reasons) score += r.weight;
      const double clipped = std::clamp(score, cfg.minScore, cfg.maxScore);
      if (score != 0 && clipped != score) {
        for (Reason& r : reasons) r.weight *= clipped / score;
      }
      if (!reasons.empty()) accumulate(p, out.channel, clipped, reasons, now);
      out.score = clipped;
      out.reasons = std::move(reasons);
    }
    rememberDomains(p, ev.domains, now);
    out.tier = evaluate(p, std::move(hard), softBackstop, std::move(soft), out.alert, now);
    out.cusum = p.channels[slot(out.channel)].s;
    return out;
  }

  // The evidence a submission carries before the MTA accepts it: new recipient domains
  // (per message, so a message to many domains counts once) and the submission rate.
  void addSubmissionEvidence(PrincipalState& p, const SubmissionEvent& ev,
                             std::vector<Reason>& reasons, TimePoint now) {
    if (!ev.domains.empty() && ev.recipients <= cfg.mtaListRecipients) {
      const auto fresh = static_cast<unsigned>(std::count_if(
          ev.domains.begin(), ev.domains.end(),
          [&](const auto& d) { return p.mtaDomainsSeen.find(d) == p.mtaDomainsSeen.end(); }));
      const auto& pr = ev.presence;
      const bool chosen = pr.known && pr.activeSession && pr.sinceInput &&
                          *pr.sinceInput >= Duration::zero() && *pr.sinceInput <= cfg.inputWindow;
      if (fresh > 0) {
        if (!chosen) addReason(reasons, Evidence::MtaNewDomain, newDomainsWeight(fresh));
      } else {
        addReason(reasons, Evidence::MtaKnownDomains, cfg.mtaKnownDomains);
      }
    }
    if (cfg.mtaBurst) {
      p.mtaSubmissions.add(now, cfg.burstAttempts);
      if (p.mtaSubmissions.count(now, cfg.burstWindow) >= cfg.burstAttempts) {
        addReason(reasons, Evidence::MtaBurst, cfg.manySessions);
      }
    }
  }

  // S1 per message, or by its bin of new domains where grading is on (ablation only).
  double newDomainsWeight(unsigned fresh) const {
    if (!cfg.mtaNewDomainBins) return cfg.mtaNewDomain;
    const auto& bins = *cfg.mtaNewDomainBins;
    return fresh >= 4 ? bins.many : fresh >= 2 ? bins.few : bins.one;
  }

  void rememberDomains(PrincipalState& p, const std::vector<std::string>& domains,
                       TimePoint now) const {
    for (const auto& d : domains) p.mtaDomainsSeen[d] = now;
    while (p.mtaDomainsSeen.size() > cfg.mtaDomainMemory) {
      auto oldest = p.mtaDomainsSeen.begin();
      for (auto it = p.mtaDomainsSeen.begin(); it != p.mtaDomainsSeen.end(); ++it) {
        if (it->second < oldest->second) oldest = it;
      }
      p.mtaDomainsSeen.erase(oldest);
    }
  }

  // Final outcomes of one message (DeliveryEvent) or the RCPT replies of one session
  // (ReplyEvent): a Bernoulli likelihood ratio per recipient, clipped like an attempt;
  // O3 counts once per message or session, and twice within h1Window is H1.
  struct RecipientOutcomes {
    Evidence userUnknownAs, rejectedAs, blocklistedAs, acceptedAs;
    unsigned accepted, userUnknown, rejected, blocklisted;
  };
  Assessment scoreOutcomes(PrincipalState& p, Channel channel, const RecipientOutcomes& o,
                           TimePoint now) {
    Assessment out;
    out.channel = channel;
    std::vector<Reason> reasons;
    auto add = [&](Evidence e, double w, unsigned n) {
      if (n > 0 && w != 0) reasons.push_back(Reason{e, w * n, n});
    };
    add(o.userUnknownAs, cfg.mtaUserUnknown, o.userUnknown);
    add(o.rejectedAs, cfg.mtaRejected, o.rejected);
    add(o.blocklistedAs, cfg.mtaBlocklisted, o.blocklisted > 0 ? 1 : 0);
    add(o.acceptedAs, cfg.mtaDelivered, o.accepted);
    double score = 0;
    for (const Reason& r : reasons) score += r.weight;
    const double clipped = std::clamp(score, cfg.minScore, cfg.maxScore);
    if (score != 0 && clipped != score) {
      for (Reason& r : reasons) r.weight *= clipped / score;
    }
    for (unsigned i = 0; i < o.userUnknown + o.blocklisted + o.rejected; ++i) {
      p.failures24.add(now, kWindowCap);
    }
    std::vector<Reason> hard;
    if (o.blocklisted > 0) {
      p.blocklisted1h.add(now, kWindowCap);
      const auto n = static_cast<unsigned>(p.blocklisted1h.count(now, cfg.h1Window));
      if (n >= cfg.h1Blocklisted) hard.push_back(Reason{Evidence::BlocklistH1, 0, n});
    }
    accumulate(p, channel, clipped, reasons, now);
    out.score = clipped;
    out.reasons = std::move(reasons);
    // The soft backstop still holds between submissions (no second alert for it).
    const bool softBackstop =
        !bulkActive(p, now) && mtaRecipients(p, now) > cfg.mtaBackstopSoftRecipients;
    out.tier = evaluate(p, std::move(hard), softBackstop, {}, out.alert, now);
    out.cusum = p.channels[slot(channel)].s;
    return out;
  }

  Assessment delivered(const DeliveryEvent& ev) {
    const TimePoint now = clock->now();
    PrincipalState& p = mtaSubmitter(ev.principal, ev.program, ev.idClass, now);
    if (p.quarantined) {
      Assessment out;
      out.channel = mtaChannel(p);
      out.tier = Tier::Hard;
      return out;
    }
    return scoreOutcomes(
        p, mtaChannel(p),
        {Evidence::MtaUserUnknown, Evidence::MtaRejected, Evidence::MtaBlocklisted,
         Evidence::MtaDelivered, ev.delivered, ev.userUnknown, ev.rejected, ev.blocklisted},
        now);
  }

  // The program's own session: its replies go to the CUSUM its attempt went to. A
  // recognised MTA's sessions are its submitters' business (their DeliveryEvent).
  Assessment replied(const ReplyEvent& ev) {
    const TimePoint now = clock->now();
    auto pit = principals.find(ev.principal);
    if (pit != principals.end() && pit->second.mta) return {};
    PrincipalState& p = mtaSubmitter(ev.principal, ev.program, ev.idClass, now);
    Channel channel = ev.port == 25 ? Channel::Direct : Channel::NewRelay;
    auto rit = p.recent.find({ev.dst, ev.port});
    if (rit != p.recent.end()) channel = rit->second.channel;
    if (p.quarantined) {
      Assessment out;
      out.channel = channel;
      out.tier = Tier::Hard;
      return out;
    }
    return scoreOutcomes(
        p, channel,
        {Evidence::UserUnknown, Evidence::Rejected, Evidence::Blocklisted, Evidence::Accepted,
         ev.accepted, ev.userUnknown, ev.rejected, ev.blocklisted},
        now);
  }

  void notePort25(bool established) {
    port25.push_back(established);
    port25Successes += established ? 1 : 0;
    while (port25.size() > cfg.blockedAfter) {
      port25Successes -= port25.front() ? 1 : 0;
      port25.pop_front();
    }
  }
  [[nodiscard]] bool port25Blocked() const { return cfg.blockedAfter > 0 && port25Successes == 0; }

  // One delivery of the MTA: its outcome is split over the programs that submitted to it
  // lately (research 2.6, "split it over the submitters active in the last window").
  void attributeToSubmitters(bool failed, TimePoint now) {
    std::erase_if(submitters,
                  [&](const auto& kv) { return kv.second < now - cfg.attributionWindow; });
    if (submitters.empty()) return;
    const double share = 1.0 / static_cast<double>(submitters.size());
    for (const auto& [who, when] : submitters) {
      auto it = principals.find(who);
      if (it == principals.end() || it->second.quarantined) continue;
      PrincipalState& p = it->second;
      auto ws = p.workingSet.find(std::string(kLocalMta));
      const bool learnedMta = ws != p.workingSet.end() && ws->second.learned;
      const Channel c = learnedMta ? Channel::Relay : Channel::NewRelay;
      // As O1 on a learned relay: a long-standing submitter's failures weigh less.
      const double w =
          share * (failed ? cfg.attributedFailure * (learnedMta ? cfg.connectFailureLearned : 1.0)
                          : cfg.attributedSuccess);
      if (failed) p.failures24.add(now, kWindowCap);
      accumulate(p, c, w,
                 {Reason{failed ? Evidence::MtaDeliveryFailed : Evidence::MtaDeliveryOk, w, 1}},
                 now);
      std::optional<Alert> ignored;
      evaluate(p, {}, false, {}, ignored, now);
    }
  }
};

Detector::Detector(const Clock& clock, DetectorConfig config)
    : impl_(std::make_unique<Impl>(clock, std::move(config))) {}
Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

Assessment Detector::observe(const AttemptEvent& attempt) { return impl_->observe(attempt); }
Assessment Detector::outcome(const OutcomeEvent& result) { return impl_->outcome(result); }
Assessment Detector::submitted(const SubmissionEvent& submission) {
  return impl_->submitted(submission);
}
Assessment Detector::delivered(const DeliveryEvent& delivery) { return impl_->delivered(delivery); }
Assessment Detector::replied(const ReplyEvent& replies) { return impl_->replied(replies); }

void Detector::declareBulk(const Principal& principal, unsigned recipients, Duration window) {
  PrincipalState& p = impl_->stateFor(principal);
  p.bulk = Bulk{impl_->clock->now() + window, recipients};
  p.lastActivity = std::max(p.lastActivity, impl_->clock->now());  // not idle: keep it
}

void Detector::release(const Principal& principal) {
  auto it = impl_->principals.find(principal);
  if (it == impl_->principals.end()) return;
  PrincipalState& p = it->second;
  p.quarantined = false;
  p.quarantineAlert.reset();
  p.resetWindows();
  // The owner vouched for what the program did: destinations it reached successfully join
  // its working set now instead of after learnDays (research 2.5 "Release").
  for (auto& [key, e] : p.workingSet) {
    if (e.successDays > 0) e.learned = true;
  }
}

std::vector<Alert> Detector::takeAlerts() { return std::exchange(impl_->alerts, {}); }

bool Detector::quarantined(const Principal& principal) const {
  auto it = impl_->principals.find(principal);
  return it != impl_->principals.end() && it->second.quarantined;
}

bool Detector::bulkInForce(const Principal& principal) const {
  auto it = impl_->principals.find(principal);
  if (it == impl_->principals.end() || !it->second.bulk) return false;
  const auto& bulk = *it->second.bulk;
  return impl_->clock->now() < bulk.until && bulk.remaining > 0;
}

Tier Detector::tier(const Principal& principal) const {
  auto it = impl_->principals.find(principal);
  if (it == impl_->principals.end()) return Tier::None;
  if (it->second.quarantined) return Tier::Hard;
  return it->second.softAlerted ? Tier::Soft : Tier::None;
}

bool Detector::learned(const Principal& principal, std::string_view dst) const {
  auto it = impl_->principals.find(principal);
  if (it == impl_->principals.end()) return false;
  auto ws = it->second.workingSet.find(destinationKey(dst, impl_->cfg));
  return ws != it->second.workingSet.end() && ws->second.learned;
}

const DetectorConfig& Detector::config() const { return impl_->cfg; }

std::vector<PrincipalSnapshot> Detector::exportState() const {
  std::vector<PrincipalSnapshot> out;
  out.reserve(impl_->principals.size());
  for (const auto& [principal, p] : impl_->principals) {
    PrincipalSnapshot s;
    s.principal = principal;
    s.program = p.program;
    s.idClass = p.idClass;
    s.mta = p.mta;
    for (std::size_t i = 0; i < kChannelCount; ++i) {
      s.cusum[i] = p.channels[i].s;
      s.cusumUpdated[i] = p.channels[i].lastUpdate;
    }
    s.softAlerted = p.softAlerted;
    s.lastActivity = p.lastActivity;
    for (const auto& [key, e] : p.workingSet) s.workingSet.push_back(e);
    s.mailedDomains.assign(p.mtaDomainsSeen.begin(), p.mtaDomainsSeen.end());
    s.quarantined = p.quarantined;
    s.quarantineAlert = p.quarantineAlert;
    out.push_back(std::move(s));
  }
  return out;
}

void Detector::importState(const std::vector<PrincipalSnapshot>& state) {
  impl_->principals.clear();
  impl_->submitters.clear();
  for (const PrincipalSnapshot& s : state) {
    PrincipalState& p = impl_->stateFor(s.principal);
    p.program = s.program;
    p.idClass = s.idClass;
    p.mta = s.mta;
    for (std::size_t i = 0; i < kChannelCount; ++i) {
      p.channels[i].s = s.cusum[i];
      p.channels[i].lastUpdate = s.cusumUpdated[i];
    }
    p.softAlerted = s.softAlerted;
    p.lastActivity = s.lastActivity;
    for (const WorkingSetEntry& e : s.workingSet) p.workingSet[e.destination] = e;
    p.mtaDomainsSeen.insert(s.mailedDomains.begin(), s.mailedDomains.end());
    p.quarantined = s.quarantined;
    p.quarantineAlert = s.quarantineAlert;
  }
}

}  // namespace mailguard::detector
