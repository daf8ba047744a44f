#pragma once
// Synthetic traffic for the detector evaluation (research section 3.2). Every profile
// turns a seed into the event stream guardd would feed the detector for one simulated
// host: connection attempts with their conntrack outcomes, and bulk declarations.
// DNS, presence and RCPT replies are generated per profile (README "What is simulated");
// message payloads are not.
#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "mailguard/detector/detector.hpp"

namespace mailguard::bench {

using detector::ConnectOutcome;
using detector::IdentityClass;
using detector::Principal;
using Seconds = std::chrono::duration<double>;

struct Actor {
  Principal principal;
  std::string program;
  IdentityClass idClass = IdentityClass::Unknown;
  bool mta = false;
  bool malicious = false;
  bool interactive = false;  // runs with a controlling terminal (I1)
};

struct SimEvent {
  enum class Kind : std::uint8_t { Attempt, Bulk };
  TimePoint time;
  Kind kind = Kind::Attempt;
  std::uint16_t actor = 0;
  bool malicious = false;  // this attempt is the bot's (M9 shares its principal)
  std::string dst;
  std::uint16_t port = 25;
  bool toLocalMta = false;
  ConnectOutcome outcome = ConnectOutcome::Established;
  Seconds outcomeDelay{0.05};   // when conntrack reports the outcome
  Seconds duration{2};          // how long the session stays open (for D4)
  unsigned maxSessions = 1000;  // the program's own concurrency limit
  unsigned bulkRecipients = 0;
  std::chrono::hours bulkWindow{0};
  // What guardd would see besides the connection (research 2.2): the program's DNS just
  // before it, the user's presence, and the RCPT replies of a plaintext port-25 session
  // (ReplyEvent, if it was established) or, for a local submission, the message's final
  // outcomes from the MTA's log (DeliveryEvent), `replyDelay` after the attempt.
  detector::DnsEvidence dns;
  detector::PresenceEvidence presence;
  bool replies = false;
  unsigned accepted = 0;
  unsigned userUnknown = 0;
  unsigned blocklisted = 0;
  unsigned rejected = 0;
  Seconds replyDelay{1};
  // A local submission: what the MTA tells guardd before it accepts the message
  // (SubmissionEvent): the recipient count and the distinct recipient domains.
  unsigned recipients = 0;
  std::vector<std::string> domains;
};

struct Host {
  std::vector<Actor> actors;
  std::vector<SimEvent> events;  // any order; the replay sorts them
  TimePoint start;               // the malicious activity's start (bots) or the host's
  TimePoint end;                 // horizon
};

enum class Kind : std::uint8_t { Benign, Malicious };

struct Profile {
  std::string id;
  std::string description;
  Kind kind;
  double months;  // horizon per host (benign lifetime, or bot horizon)
  Host (*make)(std::mt19937_64& rng, TimePoint origin, double months);
};

const std::vector<Profile>& profiles();

// What guardd would feed the detector for `e`, an attempt by `actor` (open sessions: 1).
detector::AttemptEvent attemptOf(const Actor& actor, const SimEvent& e);

}  // namespace mailguard::bench
