#pragma once
// The zombie detector (issue 5; design in shared/research/zombie-detection.md section 2).
// Pure logic: it never touches the system. guardd feeds it one AttemptEvent per new
// outbound mail connection and one OutcomeEvent per connection result (conntrack), and
// acts on what it returns: an Assessment per attempt, alerts, a quarantine flag.
//
// Each attempt gets a score in nats (positive = bot-like) from the evidence guardd can
// see without payload: the connection (D1-D4, O1), the program's DNS (N1-N3), the user's
// presence (U1, U2) and the RCPT replies and final outcomes of its mail (O2-O4). A Page CUSUM per
// (principal, channel) sums the scores; crossing the soft threshold raises an alert and throttles
// new destinations, crossing the hard one quarantines the principal until release().
// Identity moves both thresholds instead of adding per-attempt evidence.
#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"

namespace mailguard::detector {

using Duration = std::chrono::system_clock::duration;

// All weights and thresholds in one place, so guardd.conf can override them. The
// provenance of each default is in brackets: [R] = research section 2 starting value,
// [T] = changed by tuning on the evaluation harness (tests/bench/detector, tuning seed),
// [P] = a published limit the design borrows.
struct DetectorConfig {
  // Evidence weights, natural-log likelihood ratios (research 2.2).
  double directToMx = 1.5;             // D1: port 25 to a non-learned host, non-MTA [R]
  double newDestination = 0.5;         // D2+: first contact with this destination [R]
  double learnedDestination = -0.7;    // D2-: destination in the learned working set [R]
  double newRelayKnownHost = 1.0;      // D3: new principal on the owner's known relay [R]
  double manySessions = 1.0;           // D4: >= sessionsForBurst open, or a burst [R]
  double connectFailure = 0.5;         // O1: refused, reset or timed out [R]
  double connectFailureLearned = 0.3;  // O1 multiplier on a learned destination [R]
  // I1, DIRECT only: the process has a controlling terminal, as a person's developer tool
  // testing an MX host (swaks, openssl s_client, telnet host 25) has and a daemonised bot
  // has not (research 2.6 "developer tools ... a tty parent"). A terminal is cheap to
  // fake, so it weighs no more than input would (U1, -1.0), never outweighs D1 (a direct
  // attempt stays positive), and is not applied to submissions, where it tells nothing.
  double interactive = -1.0;  // [A]
  // DNS (research 2.2 N1-N3), only where guardd saw the principal's own DNS
  // (DnsEvidence::seen); a recognised MTA's look-ups are its own, never its submitters'.
  // Weights re-derived as ln(P(f | bot) / P(f | benign)) on the evaluation's corpora
  // (tests/bench/detector, `--derive`, tuning seed), capped at D1's 1.5 where the benign
  // frequency is zero or rests on one assumed profile (a derived lower bound is no weight).
  double mxLookup = 1.5;        // N1: asked for MX records just before [T: ln 2.70, capped]
  double noDnsAnswer = 1.44;    // N2: destination in no answer, not learned [T: ln 1.44]
  double mailHostLookup = 0.0;  // N3: mail./smtp./mx. names, DIRECT only [T: ln -1.37 -> 0]
  // Presence (research 2.2 U1/U2). U1 is credited only to a program of the active
  // session's user within inputWindow of a real key press or click. With I1 it shares one
  // cap, the larger of the two credits alone, and on DIRECT stays above -D1 (a direct
  // attempt stays positive): both are cheap to fake or to piggyback on. Derived small:
  // a stealthy bot sends within 3 s of input as often as a person does (M5, M9).
  double userInput = -0.12;  // U1 [T: ln -0.12; research -1.0]
  Duration inputWindow = std::chrono::seconds{3};
  // U2, DIRECT only: a mail client, a sync daemon or a cron job submits to a relay with
  // nobody at the keyboard (research "not a known daemon", which the detector cannot tell
  // on a relay); a program delivering to MX hosts itself while nobody is there is a bot.
  double userAway = 1.5;  // U2 [T: ln > 8.06 (no benign case), capped; research 0.5]
  Duration awayAfter = std::chrono::minutes{10};
  double minScore = -2.0;         // per-attempt clip [R]
  double maxScore = 4.0;          // per-attempt clip [R]
  unsigned sessionsForBurst = 5;  // D4 simultaneous sessions [R]
  unsigned burstAttempts = 10;    // D4 as a rate on DIRECT: attempts per burstWindow [P policyd]
  Duration burstWindow = std::chrono::seconds{60};
  Duration retryWindow = std::chrono::minutes{5};  // DIRECT retries count once, max score [R]

  // One CUSUM per (principal, channel) (research 2.1): a bot's direct sending is not
  // diluted by the owner's normal submissions through the same program (M9). Off only in
  // the evaluation's ablation (one CUSUM per principal); not a guardd.conf setting.
  bool channelSplit = true;  // [R]
  // Port 25 to a learned host is RELAY (no D1), but its evidence (D2-, and O1 x0.3 on
  // failure) goes to the DIRECT CUSUM: a program that delivers direct to MX hosts it has
  // used for days (a developer's test servers, swaks) earns back what its first visits
  // cost, which on RELAY it never could. Submission channels stay apart (M9c).
  // Tuning seed: B8 1.3 / 2.7 -> 1.2 / 1.3 hard / soft alarms a year, no bot slower.
  bool learnedMxOnDirect = true;  // [T]

  // Sequential test (research 2.3): h = ln((1-beta)/alpha).
  double softThreshold = 4.60;  // alpha 1e-2, beta 1e-2 [R]
  double hardThreshold = 9.20;  // alpha 1e-4, beta 1e-2 [R]
  double leakPerDay = 0.0;      // CUSUM time leak lambda, nats/day [R: default 0]
  double rearmFraction = 0.5;   // a soft alert re-arms once every S <= this * soft [A]
  // The soft tier describes current behaviour: a channel with no evidence for this long
  // no longer holds the principal in it (its S is kept and counts again on new evidence).
  Duration softActiveWindow = std::chrono::hours{24};  // [A]
  double packagedShift = 2.3;     // package-owned, checksum verified: x10 odds [R]
  double suspiciousShift = -2.3;  // /tmp, /dev/shm, ~/.cache, deleted, memfd [R]

  // H3 volumetric trigger (research 2.4): quarantine at once.
  unsigned h3Connections = 20;                   // port-25 connections ... [R, iungo 20/60 s]
  unsigned h3Destinations = 10;                  // ... to this many distinct hosts ... [R]
  Duration h3Window = std::chrono::seconds{60};  // ... within this window [R]

  // 24-hour backstops for non-MTA principals (research 2.3); lifted by a declared bulk send.
  unsigned backstopSoftDestinations = 20;   // distinct direct destinations / 24 h -> soft [R]
  unsigned backstopHardDestinations = 100;  // distinct direct destinations / 24 h -> hard [R]
  unsigned backstopHardAttempts = 150;      // attempts / 24 h -> hard [R; P policyd 150/day]
  Duration backstopWindow = std::chrono::hours{24};

  // Learned working set (research 2.1).
  unsigned workingSetSize = 32;   // learned destinations per principal [R]
  unsigned learnDays = 3;         // distinct days with a successful connection [R]
  unsigned candidateLimit = 256;  // destinations tracked while not yet learned [A]
  Duration learnedTtl = std::chrono::hours{24 * 90};    // unused this long: forgotten [A]
  Duration candidateTtl = std::chrono::hours{24 * 14};  // candidate unused this long [A]
  unsigned ipv4PrefixBits = 24;                         // a destination is an IPv4 /24 ... [R]
  unsigned ipv6PrefixBits = 64;  // ... or an IPv6 /64 (providers rotate within it) [A]

  // Soft-tier throttle: one new destination per interval (Williamson's throttle) [R].
  Duration throttleInterval = std::chrono::seconds{60};

  // MTA attribution (research 2.6): outcomes of the MTA's own deliveries are charged to
  // the programs that submitted to it on loopback within this window, split between
  // them. Both outcomes count, as a Bernoulli likelihood ratio with an assumed TCP failure
  // rate of 2% for legitimate MX delivery and 15% for a harvested list [A]:
  // ln(0.15/0.02) per failure, ln(0.85/0.98) per success.
  Duration attributionWindow = std::chrono::minutes{15};  // [A]
  double attributedFailure = 2.0;    // [A]; x connectFailureLearned once the MTA is learned
  double attributedSuccess = -0.14;  // [A]
  // Port 25 blocked upstream (research 2.6): unless one of the last `blockedAfter`
  // port-25 connections of any program succeeded, failures on port 25 carry no evidence
  // (also at start-up, before any success was seen) [R; count T].
  unsigned blockedAfter = 5;

  // Mail handed to the local MTA without TCP (research 2.6, O3/O4 charged to the
  // submitter by queue id). Each message's final outcomes are one observation, a
  // Bernoulli likelihood ratio per recipient, clipped like any attempt: harvested lists
  // see 20-40% "user unknown" (M8), opt-in lists 2-5% (B7). The weights are
  // re-derived per recipient on the corpora of both routes (`--derive`, tuning seed):
  // ln(0.160/0.045) per unknown user and ln(0.840/0.955) per delivery [T; was ln(0.25/0.03)
  // [A]]. A message with four in ten recipients unknown scores the clip (4.0).
  // The same weights score the RCPT replies of a program's own direct SMTP session
  // (replied()), and H1 counts O3 from both routes. A 4xx at RCPT carries no evidence:
  // greylisting defers every first contact, a benign one too.
  double mtaUserUnknown = 1.26;  // O4, per recipient [T]
  double mtaDelivered = -0.13;   // per recipient [T]
  double mtaRejected = 0.7;      // O2: another 5xx, per recipient [R]
  double mtaBlocklisted = 3.0;   // O3: a reply naming a blocklist, per message [R]
  unsigned h1Blocklisted = 2;    // H1: this many O3 messages within h1Window: quarantine [R]
  Duration h1Window = std::chrono::hours{1};
  // Backstops of the MTA channel (daily limits): higher than a program's own connections,
  // as a message to N recipients is one submission; lifted by a declared bulk send.
  // A club's or family's mailing through the PC fits under the soft limit; a newsletter
  // (research B7, 300-5,000 recipients) declares its bulk send.
  unsigned mtaBackstopSoftRecipients = 250;   // recipients / 24 h -> soft [A]
  unsigned mtaBackstopHardRecipients = 1000;  // recipients / 24 h -> hard [A]
  unsigned mtaBackstopHardDomains = 500;      // distinct recipient domains / 24 h -> hard [A]

  // Principals with no learned destination and no evidence are dropped after this.
  Duration idleTtl = std::chrono::hours{24 * 30};

  // What a submission to the local MTA shows before the MTA accepts it (its recipient
  // domains, the rate): a harvested-list bot mails domains it never mailed, one small
  // message after the other; cron mails the same few; a person's mail client mostly its
  // contacts. Per message, a Bernoulli likelihood ratio of "a recipient domain this
  // principal never mailed" (the MTA channel's D2): weights from the corpora (`--derive`,
  // tuning seed). A message with more than mtaListRecipients recipients is a mailing, left
  // to the recipient backstops (a list server's first run mails only new domains); a
  // message sent just after the user's input (U1's test) has recipients a person chose: a
  // new mail client mails mostly new domains in its first days. Nor is a message of a
  // declared bulk send scored (its benign frequency is counted without them: 0.39).
  double mtaNewDomain = 0.94;  // a message with a new domain [T: ln 1 / 0.39]
  // S1 graded by how many of the message's domains are new (1, 2-3, >= 4), each bin its
  // own likelihood ratio: tried for issue 17 and not kept, because the benign messages
  // with new domains have few, so grading takes from a bot mailing 1-3 domains a message
  // what it gives one mailing many (README "S1 graded"). Off (nullopt) but for
  // detector_eval's ablation row; not a setting.
  struct NewDomainBins {
    double one, few, many;
  };
  std::optional<NewDomainBins> mtaNewDomainBins;
  double mtaKnownDomains = -2.0;    // all mailed before [T: ln -inf, the clip]
  unsigned mtaListRecipients = 50;  // [A]
  unsigned mtaDomainMemory = 256;   // recipient domains remembered per principal [A]
  // D4's rate form on the MTA channel: burstAttempts submissions within burstWindow.
  bool mtaBurst = true;  // [T]
};

// How far identity can be trusted: decided by the caller from the package database
// and the executable's location (rules::isUnsafeLocation, deleted, memfd).
enum class IdentityClass : std::uint8_t {
  Unknown,     // no shift
  Packaged,    // owned by a Debian package and matching its recorded checksum
  Suspicious,  // /tmp, /dev/shm, /var/tmp, ~/.cache, ~/Downloads, deleted, memfd
};

enum class Channel : std::uint8_t {
  Relay,     // 465/587/2525, or 25 to a learned destination or the local MTA (once learned)
  Direct,    // port 25 to anything else: MX delivery
  NewRelay,  // 465/587/2525 (or the local MTA) to a destination not learned yet
};
inline constexpr std::size_t kChannelCount = 3;

enum class Tier : std::uint8_t { None, Soft, Hard };

enum class ConnectOutcome : std::uint8_t { Established, Refused, Reset, TimedOut };

enum class Evidence : std::uint8_t {
  DirectToMx,             // D1
  NewDestination,         // D2 outside the working set
  LearnedDestination,     // D2 inside the working set
  NewRelayKnownHost,      // D3
  ManySessions,           // D4
  ConnectFailure,         // O1 on the program's own connection
  MtaDeliveryFailed,      // O1 of a local MTA delivery, charged to its submitters
  MtaDeliveryOk,          // a local MTA delivery that connected, charged likewise
  VolumeH3,               // H3
  BackstopDestinations,   // too many distinct direct destinations in 24 h
  BackstopAttempts,       // too many attempts in 24 h
  Interactive,            // I1: from a process with a controlling terminal
  MtaUserUnknown,         // O4: recipients of the program's MTA mail unknown to their server
  MtaBlocklisted,         // O3: the program's MTA mail refused by a blocklist
  MtaRejected,            // O2: other permanent refusals of the program's MTA mail
  MtaDelivered,           // recipients of the program's MTA mail delivered
  BlocklistH1,            // H1: repeated blocklist refusals
  BackstopMtaRecipients,  // too many MTA recipients (or their domains) in 24 h
  MxLookup,               // N1: it asked for MX records just before connecting
  NoDnsAnswer,            // N2: the destination was in no DNS answer it received
  MailHostLookup,         // N3: it looked up mail./smtp./mx./relay. names (DIRECT)
  UserInput,              // U1: real input within a few seconds, the active session's user
  UserAway,               // U2: nobody at the keyboard for 10 min (DIRECT)
  UserUnknown,            // O4 in the program's own SMTP session: RCPT "user unknown"
  Blocklisted,            // O3 in the program's own SMTP session: a blocklist reply
  Rejected,               // O2 in the program's own SMTP session: other RCPT 5xx
  Accepted,               // RCPTs accepted in the program's own SMTP session
  MtaNewDomain,           // a message to the local MTA with a recipient domain never mailed
  MtaKnownDomains,        // a message to the local MTA to domains all mailed before
  MtaBurst,               // D4 on the MTA channel: many submissions within a minute
};
// The last Evidence value: codecs that map names back size their tables with it.
inline constexpr Evidence kLastEvidence = Evidence::MtaBurst;
std::string_view toString(Evidence e);
std::string_view toString(Channel c);
std::string_view toString(Tier t);

// The unit that accumulates evidence and gets quarantined (research 2.1): the
// executable's hash, its path and the uid, plus the script for interpreters.
//
// Why the path and not only a trust class (DESIGN "Program identity"): the owner
// approves a file at a path. A root-owned file in a root-owned directory
// (/usr/local/bin/client) can be changed only by root, so every process behind that
// path runs what the owner approved; a same-user copy of those bytes in /tmp or ~/bin is
// a different file the user (or a bot running as the user) controls, held until it is
// approved on its own. With hash + uid only, such a copy's attempts were charged to the
// approved client, whose quarantine then cut off the owner. A trust class (trusted /
// untrusted) would separate the root-owned file from the copies, but would still pool
// every untrusted copy: the owner's own ~/bin copy, approved at its path, would be
// quarantined by a bot's /tmp copy of the same bytes. Keyed by path, each file that
// connects answers for itself, and alerts and quarantines name it. A bot gains nothing by
// spreading over paths that it could not already get by changing one byte of itself (a
// new hash is a new principal too); the H3 and backstop rules stay per principal.
struct Principal {
  std::string exeSha256;
  std::string exePath;       // the executable's real path (ProgramIdentity::path)
  std::string scriptPath;    // empty unless an interpreter runs a script
  std::string scriptSha256;  // empty when none or unreadable
  std::uint32_t uid = 0;

  static Principal of(const rules::ProgramIdentity& id, std::uint32_t uid);
  // "sha256:path/uid" or "sha256:path:script:scriptsha/uid" (no "path:" part when the
  // path is empty): a stable text key for maps, the store and logs. ':' and '%' in paths
  // are written %3A and %25, so two principals never share a key.
  [[nodiscard]] std::string key() const;
  friend auto operator<=>(const Principal&, const Principal&) = default;
  friend bool operator==(const Principal&, const Principal&) = default;
};

// What guardd saw of the principal's own DNS before an attempt (research 2.2, N1-N3),
// from the kernel's port-53 tap, attributed to the exact process. `seen` is false where
// DNS cannot be observed (no kernel tap, DoH/DoT, a resolver reached over D-Bus): then
// none of N1-N3 applies, in either direction.
struct DnsEvidence {
  bool seen = false;
  bool mxQueried = false;        // N1: it asked for MX records in the last 60 s
  bool dstResolved = false;      // the destination was in an answer it received (else N2)
  bool mailNameQueried = false;  // N3: it asked A/AAAA of mail./smtp./mx./relay. names
};

// The user's presence at the time of an attempt (research 2.2, U1/U2), read the way the
// desktop exposes it: logind's sessions and, if the owner enabled it, the time of the
// last key press or click on a real (not virtual) input device. `known` is false where
// no source answered (no logind): then neither U1 nor U2 applies.
struct PresenceEvidence {
  bool known = false;
  bool activeSession = false;          // the principal's uid owns the active session of a seat
  std::optional<Duration> sinceInput;  // since that session's user last pressed or clicked
};

struct AttemptEvent {
  Principal principal;
  std::string program;      // path (and script) for alerts; not part of the identity
  std::string dst;          // destination address literal, IPv4 or IPv6
  std::uint16_t port = 0;   // 25, 465, 587, 2525
  bool toLocalMta = false;  // dst is this host's own recognised MTA (loopback listener)
  bool fromMta = false;     // the principal IS a recognised local MTA (package-verified)
  IdentityClass idClass = IdentityClass::Unknown;
  unsigned openSessions = 1;  // the principal's SMTP sessions open now, this one included
  bool interactive = false;   // the process has a controlling terminal (I1)
  DnsEvidence dns;
  PresenceEvidence presence;
};

// A connection's result, from conntrack: established, or refused/reset/timed out.
struct OutcomeEvent {
  Principal principal;
  std::string dst;
  std::uint16_t port = 0;
  ConnectOutcome outcome = ConnectOutcome::Established;
};

// One message handed to the local MTA without TCP, charged to its submitter at once: the
// MTA channel's volume (daily backstops).
struct SubmissionEvent {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  unsigned recipients = 0;
  std::vector<std::string> domains;  // the recipients' domains, distinct
  // The user's presence when the message was handed over, as for an attempt: a send
  // within inputWindow of the active session's user pressing or clicking is a person's
  // choice of recipients, so a new domain is no evidence then (mtaNewDomain).
  PresenceEvidence presence;
  // The message waits for the owner's decision (its program is not approved): it reaches
  // nobody unless the owner lets it, so where it would go carries no evidence (no
  // mtaNewDomain, mtaKnownDomains or burst); the daily backstops still count it.
  bool held = false;
};

// What became of such a message (the MTA's log, linked by queue id): final outcomes only.
struct DeliveryEvent {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  unsigned delivered = 0;
  unsigned userUnknown = 0;  // 5.1.1 / "user unknown"
  unsigned blocklisted = 0;  // a reply naming a blocklist
  unsigned rejected = 0;     // other 5xx
  std::vector<std::string> domains;
};

// Replies a program's own plaintext SMTP session received (port 25, the kernel's tap):
// counts of RCPT-stage reply codes only. A blocklist is recognised from the reply text,
// which is never kept; no client command and no message content is read.
struct ReplyEvent {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  std::string dst;
  std::uint16_t port = 0;
  unsigned accepted = 0;     // 250 to RCPT
  unsigned userUnknown = 0;  // 550 5.1.1 / "user unknown" (O4)
  unsigned blocklisted = 0;  // a reply naming a blocklist (O3)
  unsigned rejected = 0;     // other 5xx (O2)
  unsigned deferred = 0;     // 4.7.x and other 4xx
};

struct Reason {
  Evidence evidence;
  double weight;   // nats this evidence contributed (summed over the alarm's run)
  unsigned count;  // how many observations contributed
  friend bool operator==(const Reason&, const Reason&) = default;
};

// What an alert carries (DESIGN.md alerts; issue 5 "Alerts carry the evidence"). The
// parent chain is added by the caller, which knows the process.
struct Alert {
  TimePoint time;
  Principal principal;
  std::string program;
  Tier tier = Tier::None;
  Channel channel = Channel::Direct;            // the channel whose test fired
  double score = 0;                             // CUSUM value when it fired
  double threshold = 0;                         // the threshold it crossed (after identity shift)
  std::vector<Reason> reasons;                  // top reasons, heaviest first
  unsigned attempts24h = 0;                     // attempts in the last 24 h
  unsigned destinations24h = 0;                 // distinct direct destinations in the last 24 h
  unsigned failures24h = 0;                     // refused/reset/timed-out connections in 24 h
  std::vector<std::string> sampleDestinations;  // up to 5, most recent first
  // One line a person can read: "quarantined: 9.4 nats on DIRECT (direct-to-mx 6.0, ...)".
  [[nodiscard]] std::string summary() const;
  friend bool operator==(const Alert&, const Alert&) = default;
};

struct Assessment {
  Tier tier = Tier::None;  // the principal's tier after this event
  Channel channel = Channel::Direct;
  double score = 0;             // this event's contribution to the channel's CUSUM
  double cusum = 0;             // the channel's CUSUM after it
  bool throttle = false;        // soft tier and a new destination too soon: hold this attempt
  std::vector<Reason> reasons;  // this event's evidence
  std::optional<Alert> alert;   // set when this event raised the tier
};

// Persistable state, plain structs for guardd/store (nothing here knows SQLite).
struct WorkingSetEntry {
  std::string destination;  // "198.51.100.0/24", "2001:db8:1:2::/64", or "local-mta"
  TimePoint firstSeen;
  TimePoint lastSeen;
  TimePoint lastSuccess;          // last successful connection (zero: none yet)
  std::uint32_t successDays = 0;  // distinct UTC days with a successful connection
  bool learned = false;
  friend bool operator==(const WorkingSetEntry&, const WorkingSetEntry&) = default;
};

struct PrincipalSnapshot {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  bool mta = false;
  std::array<double, kChannelCount> cusum{};  // indexed by Channel
  // When each channel last had evidence: a stale channel must not hold the principal in
  // the soft tier (softActiveWindow) after a restart either.
  std::array<TimePoint, kChannelCount> cusumUpdated{};
  bool softAlerted = false;  // the soft alert was raised and has not re-armed yet
  TimePoint lastActivity;
  std::vector<WorkingSetEntry> workingSet;  // learned and candidate destinations
  // The recipient domains it handed to the local MTA, each with when it last did (S1's
  // memory): without them a restart made a cron script's one address new again.
  std::vector<std::pair<std::string, TimePoint>> mailedDomains;
  bool quarantined = false;
  std::optional<Alert> quarantineAlert;  // why, for the dashboard after a restart
  friend bool operator==(const PrincipalSnapshot&, const PrincipalSnapshot&) = default;
};

class Detector {
 public:
  explicit Detector(const Clock& clock, DetectorConfig config = {});
  ~Detector();
  Detector(const Detector&) = delete;
  Detector& operator=(const Detector&) = delete;
  Detector(Detector&&) noexcept;
  Detector& operator=(Detector&&) noexcept;

  // One new outbound connection attempt to a mail port, allowed or not.
  Assessment observe(const AttemptEvent& attempt);
  // The result of an earlier attempt (matched by principal, dst and port). Failures of a
  // recognised MTA's own deliveries are charged to the programs that submitted to it.
  Assessment outcome(const OutcomeEvent& result);
  // A message handed to the local MTA by a program (not over TCP), and its outcomes.
  Assessment submitted(const SubmissionEvent& submission);
  Assessment delivered(const DeliveryEvent& delivery);
  // Reply codes of the program's own direct SMTP session (O2-O4 without the local MTA).
  Assessment replied(const ReplyEvent& replies);

  // "guardctl bulk": the principal will send up to `recipients` messages in the next
  // `window`. Lifts the soft tier, D4 and the backstops; never the hard CUSUM tier.
  void declareBulk(const Principal& principal, unsigned recipients, Duration window);
  // The owner says the program is fine: quarantine lifted, tests and windows reset, and
  // the destinations it reached successfully are learned at once.
  void release(const Principal& principal);

  // Every alert raised since the last call, oldest first: the observed principal's (also
  // in Assessment::alert) and those of submitters charged through the local MTA.
  std::vector<Alert> takeAlerts();

  [[nodiscard]] bool quarantined(const Principal& principal) const;
  // A declared bulk send is in force: its window has not ended and recipients remain.
  [[nodiscard]] bool bulkInForce(const Principal& principal) const;
  [[nodiscard]] Tier tier(const Principal& principal) const;
  // True when `dst` is in the principal's learned working set.
  [[nodiscard]] bool learned(const Principal& principal, std::string_view dst) const;
  [[nodiscard]] const DetectorConfig& config() const;

  [[nodiscard]] std::vector<PrincipalSnapshot> exportState() const;
  // Replaces the state, e.g. at start-up from the store.
  void importState(const std::vector<PrincipalSnapshot>& state);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The working-set key of an address: the IPv4 /24 or IPv6 /64 (config), or the
// address itself when it does not parse.
std::string destinationKey(std::string_view address, const DetectorConfig& config);

}  // namespace mailguard::detector
