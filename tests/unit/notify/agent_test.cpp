// guard-notify's core against a fake notification server and a fake clock: the count of a
// held notification comes from guardd's count of the program's attempts, not from the
// signals this agent happened to receive.
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "agent.hpp"

namespace mailguard::notify {
namespace {

using std::chrono::milliseconds;

class FakeServer final : public NotificationServer {
 public:
  Result<std::vector<std::string>> capabilities() override {
    return std::vector<std::string>{"actions", "body"};
  }
  Result<std::uint32_t> show(std::uint32_t replacesId, const Notification& n) override {
    shown.push_back({replacesId, n});
    return replacesId != 0 ? replacesId : ++lastId;
  }
  Result<void> close(std::uint32_t) override { return {}; }

  struct Shown {
    std::uint32_t replacesId;
    Notification n;
  };
  std::vector<Shown> shown;
  std::uint32_t lastId = 0;
};

constexpr std::int64_t kProgram = 7;
constexpr std::int64_t kStartUs = 1'700'000'000'000'000;

dbus::Attempt held(std::int64_t n) {
  dbus::Attempt a;
  a.id = n;
  a.timeUs = kStartUs + n;
  a.programId = kProgram;
  a.path = "/home/alice/.cache/mailbot";
  a.dst = "127.0.0.1";
  a.dstPort = 25;
  a.verdict = "hold";
  return a;
}

dbus::Program program(std::int64_t attempts, std::int64_t lastAttemptUs,
                      const std::string& state = "pending") {
  dbus::Program p;
  p.id = kProgram;
  p.path = "/home/alice/.cache/mailbot";
  p.state = state;
  p.attempts = attempts;
  p.lastAttemptUs = lastAttemptUs;
  return p;
}

class AgentTest : public ::testing::Test {
 protected:
  FakeServer server;
  std::vector<PolicyRequest> submitted;
  Agent agent{server, [this](PolicyRequest r) { submitted.push_back(std::move(r)); }};
  SteadyTime t0 = SteadyTime{} + std::chrono::hours(1);

  // Runs the agent's timers up to `until`, reading counts from `attempts` as guardd
  // would answer them.
  void runUntil(SteadyTime until, std::int64_t attempts) {
    for (auto now = t0; now <= until; now += milliseconds(100)) {
      if (agent.countsDue(now)) agent.programsRead({program(attempts, 0)}, now);
      agent.flush(now);
    }
  }

  [[nodiscard]] std::string lastSummary() const {
    return server.shown.empty() ? "" : server.shown.back().n.summary;
  }
};

TEST_F(AgentTest, BurstWithMostSignalsLostSettlesOnGuarddsCountSinceTheFirstHold) {
  // The program had 40 attempts before (approved once, then forgotten): guardd signals
  // ProgramChanged with the attempt that made it pending, then that attempt.
  agent.programChanged(program(41, held(1).timeUs), t0);
  agent.attemptRecorded(held(1), t0);
  ASSERT_EQ(server.shown.size(), 1U);
  EXPECT_EQ(server.shown[0].replacesId, 0U);
  // Of the next 999 attempts only 9 signals arrive.
  for (int i = 2; i <= 10; ++i) agent.attemptRecorded(held(i), t0 + milliseconds(10 * i));
  runUntil(t0 + std::chrono::seconds(10), 40 + 1000);
  EXPECT_EQ(lastSummary(), "Mail from mailbot is held (1000 attempts)");
  for (std::size_t i = 1; i < server.shown.size(); ++i) {
    EXPECT_EQ(server.shown[i].replacesId, 1U) << "every update replaces the one notification";
  }
  EXPECT_LE(server.shown.size(), 12U) << "updates at most once a second";
}

TEST_F(AgentTest, WithoutTheStartSignalTheCountNeverOverstates) {
  // Pending before the agent started: no ProgramChanged marks the start. The first read
  // sees 3 attempts more than were signalled (their signals still queued): the baseline
  // errs high, never low.
  agent.attemptRecorded(held(1), t0);
  agent.attemptRecorded(held(2), t0);
  ASSERT_TRUE(agent.countsDue(t0));
  agent.programsRead({program(105, 0)}, t0);  // baseline 103
  agent.attemptRecorded(held(3), t0 + milliseconds(1));
  agent.attemptRecorded(held(4), t0 + milliseconds(1));
  agent.attemptRecorded(held(5), t0 + milliseconds(1));
  EXPECT_FALSE(agent.countsDue(t0 + milliseconds(999)));
  ASSERT_TRUE(agent.countsDue(t0 + milliseconds(1000)));
  agent.programsRead({program(153, 0)}, t0 + milliseconds(1000));
  agent.flush(t0 + milliseconds(1000));
  EXPECT_EQ(lastSummary(), "Mail from mailbot is held (50 attempts)");
}

TEST_F(AgentTest, StopsReadingCountsOnceTheAttemptsStop) {
  agent.programChanged(program(1, held(1).timeUs), t0);
  agent.attemptRecorded(held(1), t0);
  runUntil(t0 + milliseconds(3900), 1);  // read at 0, 1, 2 and 3 s
  ASSERT_TRUE(agent.countsDue(t0 + milliseconds(4500)));
  agent.programsRead({program(1, 0)}, t0 + milliseconds(4500));
  EXPECT_FALSE(agent.countsDue(t0 + std::chrono::seconds(6))) << "quiet for readCountsFor";
  EXPECT_FALSE(agent.nextDue().has_value());
  // A new attempt starts reading again.
  agent.attemptRecorded(held(2), t0 + std::chrono::seconds(60));
  EXPECT_TRUE(agent.countsDue(t0 + std::chrono::seconds(61)));
}

TEST_F(AgentTest, ProgramChangedCarriesTheCountToo) {
  agent.programChanged(program(1, held(1).timeUs), t0);
  agent.attemptRecorded(held(1), t0);
  // The detector quarantines it at its 300th attempt.
  agent.programChanged(program(300, kStartUs + 300, "quarantined"), t0 + milliseconds(1500));
  EXPECT_EQ(lastSummary(), "Mail from mailbot is held (300 attempts)");
}

TEST_F(AgentTest, UnattributedAttemptsAreCountedFromSignals) {
  auto a = held(1);
  a.programId = 0;
  agent.attemptRecorded(a, t0);
  a.id = 2;
  agent.attemptRecorded(a, t0 + milliseconds(1));
  EXPECT_FALSE(agent.countsDue(t0 + std::chrono::seconds(2))) << "no program to read";
  agent.flush(t0 + std::chrono::seconds(2));
  EXPECT_EQ(lastSummary(), "Mail from mailbot is held (2 attempts)");
}

TEST_F(AgentTest, BackscatterAndHouseholdRelayAlertsAreShownOnceEachAndOthersNot) {
  dbus::Alert flood;
  flood.id = 11;
  flood.kind = "backscatter";
  flood.tier = "soft";
  flood.summary = "Backscatter: 60 bounces within an hour";
  flood.path = "/var/log/mail.log";
  agent.alertRaised(flood, t0);
  ASSERT_EQ(server.shown.size(), 1u);
  EXPECT_EQ(lastSummary(), "Bounces for mail you did not send");
  EXPECT_NE(server.shown.back().n.body.find("guardctl backscatter"), std::string::npos);

  dbus::Alert relay;
  relay.id = 12;
  relay.kind = "household-relay";
  relay.tier = "hard";
  relay.summary = "the mail server at 198.18.6.2:25 relays mail for anyone on your LAN";
  relay.path = "198.18.6.2";
  agent.alertRaised(relay, t0);
  ASSERT_EQ(server.shown.size(), 2u);
  EXPECT_EQ(lastSummary(), "Open mail relay on your network");
  EXPECT_NE(server.shown.back().n.body.find("198.18.6.2:25"), std::string::npos);
  EXPECT_EQ(server.shown.back().n.body.find("Program:"), std::string::npos);

  dbus::Alert soft;
  soft.id = 13;
  soft.kind = "detector";
  soft.tier = "soft";
  agent.alertRaised(soft, t0);
  EXPECT_EQ(server.shown.size(), 2u);
}

TEST_F(AgentTest, BlocklistAlertNamesTheListAndPointsToTheCauseAndFix) {
  dbus::Alert a;
  a.id = 41;
  a.kind = "blocklist";
  a.tier = "hard";
  a.summary =
      "This household's public address 198.18.0.7 is listed on the blocklist "
      "bl.example.test";
  a.reasons = {"Likely cause: a program on this computer sent mail"};
  agent.alertRaised(a, t0);
  agent.flush(t0);
  ASSERT_FALSE(server.shown.empty());
  EXPECT_EQ(lastSummary(), "Your public address is on a spam blocklist");
  const std::string& body = server.shown.back().n.body;
  EXPECT_NE(body.find("bl.example.test"), std::string::npos) << body;
  EXPECT_NE(body.find("See guardctl outside (cause and fix)"), std::string::npos) << body;
}

TEST_F(AgentTest, SoftDetectorAlertStaysSilent) {
  dbus::Alert a;
  a.id = 42;
  a.kind = "detector";
  a.tier = "soft";
  a.summary = "mailbot looks odd";
  agent.alertRaised(a, t0);
  agent.flush(t0);
  EXPECT_TRUE(server.shown.empty());
}

}  // namespace
}  // namespace mailguard::notify
