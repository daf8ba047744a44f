#pragma once
// Programs, attempts and a loaded dashboard state for the guard-tui tests.
#include <string>
#include <vector>

#include "mailguard/tui/model.hpp"

namespace mailguard::tui::testing {

// 2024-03-14 00:00:00 UTC; the tests run in UTC (offset 0).
inline constexpr std::int64_t kMidnightUs = 1'710'374'400'000'000;
inline constexpr std::int64_t kHourUs = 3'600'000'000;

inline Program program(std::int64_t id, std::string path, std::string state,
                       std::int64_t lastUs = kMidnightUs + kHourUs, std::int64_t attempts = 1,
                       std::uint32_t uid = 1000) {
  Program p;
  p.id = id;
  p.path = std::move(path);
  p.sha256 = std::string(64, 'a');
  p.state = std::move(state);
  p.uid = uid;
  p.attempts = attempts;
  p.lastAttemptUs = lastUs;
  p.firstSeenUs = kMidnightUs;
  return p;
}

inline Attempt attempt(std::int64_t id, const Program& p, std::string verdict,
                       std::string dst = "127.0.0.1", std::uint16_t port = 25) {
  Attempt a;
  a.id = id;
  a.timeUs = kMidnightUs + kHourUs + id * 1'000'000;
  a.pid = static_cast<std::int32_t>(4000 + id);
  a.uid = p.uid;
  a.path = p.path;
  a.cmdline = p.path + " --send";
  a.src = "127.0.0.1";
  a.srcPort = static_cast<std::uint16_t>(40000 + id);
  a.dst = std::move(dst);
  a.dstPort = port;
  a.verdict = std::move(verdict);
  a.reason =
      a.verdict == "hold" ? "unknown program: held until the owner decides" : "approved program";
  a.programId = p.id;
  return a;
}

inline Alert alert(std::int64_t id, const Program& p, std::string tier, bool acknowledged = false) {
  Alert a;
  a.id = id;
  a.timeUs = kMidnightUs + kHourUs + id * 60'000'000;
  a.programId = p.id;
  a.path = p.path;
  a.uid = p.uid;
  a.tier = std::move(tier);
  a.summary = "sends like a spam bot";
  a.reasons = {"direct-to-mx 6.00 nats x4", "many-destinations 3.00 nats x12",
               "smtp-failures 1.50 nats x3"};
  a.acknowledged = acknowledged;
  a.evidence =
      R"({"principal":"exe","channel":"smtp","score":10.5,"threshold":8,"attempts_24h":40,)"
      R"("destinations_24h":12,"failures_24h":3,"sample_destinations":["198.51.100.7:25",)"
      R"("203.0.113.9:25"],"parents":["4242 /usr/bin/bash","1 /sbin/init"]})";
  return a;
}

inline AuditResult auditResult(std::string address, std::uint16_t port, std::string exposure,
                               std::string relay) {
  AuditResult r;
  r.address = std::move(address);
  r.port = port;
  r.exposure = std::move(exposure);
  r.pid = 812;
  r.path = "/usr/sbin/exim4";
  r.comm = "exim4";
  r.relay = std::move(relay);
  if (r.relay == "open") {
    r.accepted = {"plain", "percent-hack"};
    dbus::AuditFinding f;
    f.severity = "critical";
    f.title = "Open relay: relays mail for anyone";
    f.fix = "Set dc_relay_nets to 127.0.0.1 in /etc/exim4/update-exim4.conf.conf";
    r.findings.push_back(f);
  }
  return r;
}

inline Loaded snapshot(std::vector<Program> programs, std::vector<Attempt> attempts = {}) {
  Loaded l;
  l.status.enforcing = true;
  l.status.backend = "xt-compat";
  l.status.attribution = "proc";
  l.status.version = "0.1.0";
  l.programs = std::move(programs);
  l.attempts = std::move(attempts);
  l.todayStartUs = kMidnightUs;
  for (const auto& a : l.attempts) {
    if (a.verdict == "allow") ++l.today.allowed;
    if (a.verdict == "hold") ++l.today.held;
    if (a.verdict == "reject") ++l.today.rejected;
    l.countedUpToId = std::max(l.countedUpToId, a.id);
  }
  return l;
}

// A dashboard of `size`, connected, at 02:00 UTC on the fixture day.
inline State loadedState(Loaded loaded, Size size = {80, 24}) {
  State s;
  update(s, Resized{size});
  update(s, Tick{kMidnightUs + 2 * kHourUs, 0});
  s.userNames = {{1000, "alice"}, {0, "root"}, {65534, "nobody"}};
  update(s, loaded);
  return s;
}

inline Effects press(State& s, const std::string& ch) { return update(s, KeyPressed{Key::ch(ch)}); }
inline Effects press(State& s, KeyCode code) { return update(s, KeyPressed{Key::of(code)}); }

}  // namespace mailguard::tui::testing
