#include "convert.hpp"

#include <gtest/gtest.h>

#include <chrono>

#include "guard_object.hpp"
#include "mailguard/dbus/names.hpp"

namespace mailguard::bus {
namespace {

TEST(Convert, NeverIsZeroMicroseconds) {
  EXPECT_EQ(micros(TimePoint{}), 0);
  EXPECT_EQ(micros(TimePoint{std::chrono::microseconds(1'700'000'000'000'123)}),
            1'700'000'000'000'123);
}

TEST(Convert, ProgramViewKeepsItsIdentityStateAndTimes) {
  service::ProgramView v;
  v.id = 3;
  v.identity.path = "/usr/bin/msmtp";
  v.identity.sha256 = "ab";
  v.identity.scriptPath = "/s.py";
  v.identity.scriptSha256 = "cd";
  v.uid = 1000;
  v.state = rules::ProgramState::Approved;
  v.attempts = 5;
  v.lastAttempt = TimePoint{std::chrono::microseconds(20)};
  v.firstSeen = TimePoint{std::chrono::microseconds(10)};
  const auto p = toDbus(v);
  EXPECT_EQ(p.id, 3);
  EXPECT_EQ(p.path, "/usr/bin/msmtp");
  EXPECT_EQ(p.sha256, "ab");
  EXPECT_EQ(p.scriptPath, "/s.py");
  EXPECT_EQ(p.scriptSha256, "cd");
  EXPECT_EQ(p.uid, 1000U);
  EXPECT_EQ(p.state, "approved");
  EXPECT_EQ(p.attempts, 5);
  EXPECT_EQ(p.lastAttemptUs, 20);
  EXPECT_EQ(p.firstSeenUs, 10);
}

store::AttemptRecord attemptOf(std::uint32_t uid) {
  store::AttemptRecord a;
  a.id = 5;
  a.pid = 4242;
  a.uid = uid;
  a.path = "/usr/bin/swaks";
  a.cmdline = "swaks --auth-password *** --to bob@example.org";
  return a;
}

TEST(Convert, GivesTheCommandLineOnlyToRootAndToTheUserWhoRanIt) {
  for (const std::uint32_t caller : {0U, 1000U}) {
    const auto own = toDbusFor(attemptOf(1000), caller);
    EXPECT_EQ(own.cmdline, "swaks --auth-password *** --to bob@example.org") << caller;
    EXPECT_EQ(own.cmdlineHidden, "") << caller;
  }
  for (const std::uint32_t caller : {1001U, 65534U}) {
    const auto other = toDbusFor(attemptOf(1000), caller);
    EXPECT_EQ(other.cmdline, "") << caller;
    EXPECT_EQ(other.cmdlineHidden, dbus::kCmdlineOtherUser) << caller;
    EXPECT_EQ(other.path, "/usr/bin/swaks") << "the rest stays readable";
    EXPECT_EQ(other.pid, 4242);
  }
  EXPECT_EQ(toDbusFor(attemptOf(0), 1000).cmdline, "") << "root's, to a user";
}

TEST(Convert, LiveUpdatesThatEveryUserReceivesCarryNoCommandLine) {
  const auto live = toDbusBroadcast(attemptOf(1000));
  EXPECT_EQ(live.cmdline, "");
  EXPECT_EQ(live.cmdlineHidden, dbus::kCmdlineNotLive);
  EXPECT_EQ(live.id, 5);
}

TEST(Convert, StatusKeepsTheBackendTheAttributionAndTheCounters) {
  service::StatusInfo s;
  s.enforcing = true;
  s.backend = "xt-compat";
  s.attribution = "kernel";
  s.version = "0.1.0";
  s.counters.allowed = 4;
  s.counters.tableRestores = 2;
  s.storeError = "disk full";
  const auto d = toDbus(s);
  EXPECT_TRUE(d.enforcing);
  EXPECT_EQ(d.backend, "xt-compat");
  EXPECT_EQ(d.attribution, "kernel");
  EXPECT_EQ(d.version, "0.1.0");
  EXPECT_EQ(d.allowed, 4U);
  EXPECT_EQ(d.tableRestores, 2U);
  EXPECT_EQ(d.storeError, "disk full");
  EXPECT_EQ(toDbus(service::StatusInfo{}).attribution, "proc") << "guardd's default path";
}

TEST(Convert, ProbesDefaultTo100AndStopAt1000) {
  EXPECT_EQ(probeLimit(0), 100U);
  EXPECT_EQ(probeLimit(7), 7U);
  EXPECT_EQ(probeLimit(5000), 1000U);
}

TEST(Convert, EachErrorCodeBecomesItsNamedDbusError) {
  EXPECT_EQ(toDbusError(invalidArgument("x")).getName(), dbus::kErrorInvalidArgument);
  EXPECT_EQ(toDbusError(notFound("x")).getName(), dbus::kErrorNotFound);
  EXPECT_EQ(toDbusError(makeError("x", Errc::NotAuthorized)).getName(), dbus::kErrorNotAuthorized);
  EXPECT_EQ(toDbusError(makeError("x")).getName(), dbus::kErrorFailed);
  EXPECT_EQ(toDbusError(makeError("disk full")).getMessage(), "disk full");
}

TEST(Convert, AuditResultsCarryTheLanVantagesAndAuthInClear) {
  service::AuditSummary summary;
  summary.finished = TimePoint{std::chrono::microseconds(30)};
  service::AuditEntryView entry;
  entry.result.address = "198.18.4.1";
  entry.result.port = 25;
  entry.result.relay = "closed";
  entry.result.transcript = {"< 220 pc.test ESMTP"};
  entry.result.lan = {{"198.18.4.0/24",
                       "198.18.4.3",
                       "198.18.4.1",
                       "open",
                       {"plain"},
                       "reached from 198.18.4.3",
                       {"< 250 Ok"}}};
  entry.result.authInClear = {"PLAIN"};
  summary.entries.push_back(entry);
  const auto r = toDbus(summary);
  ASSERT_EQ(r.results.size(), 1U);
  const auto& a = r.results[0];
  EXPECT_EQ(a.transcript, entry.result.transcript);
  ASSERT_EQ(a.lan.size(), 1U);
  EXPECT_EQ(a.lan[0].subnet, "198.18.4.0/24");
  EXPECT_EQ(a.lan[0].probeAddress, "198.18.4.3");
  EXPECT_EQ(a.lan[0].target, "198.18.4.1");
  EXPECT_EQ(a.lan[0].relay, "open");
  EXPECT_EQ(a.lan[0].accepted, (std::vector<std::string>{"plain"}));
  EXPECT_EQ(a.lan[0].reason, "reached from 198.18.4.3");
  EXPECT_EQ(a.lan[0].transcript, (std::vector<std::string>{"< 250 Ok"}));
  EXPECT_EQ(a.authInClear, (std::vector<std::string>{"PLAIN"}));
}

}  // namespace
}  // namespace mailguard::bus
