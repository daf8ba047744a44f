#include "mailguard/detector/detector.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace mailguard::detector {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::Contains;
using ::testing::Field;
using ::testing::HasSubstr;

Principal principal(const std::string& name, std::uint32_t uid = 1000) {
  Principal p;
  p.exeSha256 = std::string(64, name.empty() ? 'a' : name[0]) + name;
  p.uid = uid;
  return p;
}

std::string mx(int i) {  // a distinct /24 per i
  return "198." + std::to_string(18 + i / 256) + "." + std::to_string(i % 256) + ".25";
}

class DetectorTest : public ::testing::Test {
 protected:
  FakeClock clock;
  Principal bot = principal("bot");
  Principal mua = principal("mua");
  Principal mta = principal("postfix", 100);

  AttemptEvent direct(const Principal& who, const std::string& dst,
                      IdentityClass id = IdentityClass::Unknown) {
    AttemptEvent e;
    e.principal = who;
    e.program = "/home/u/bin/x";
    e.dst = dst;
    e.port = 25;
    e.idClass = id;
    return e;
  }
  AttemptEvent submit(const Principal& who, const std::string& relay,
                      IdentityClass id = IdentityClass::Packaged) {
    AttemptEvent e = direct(who, relay, id);
    e.port = 587;
    e.program = "/usr/bin/thunderbird";
    return e;
  }
  AttemptEvent local(const Principal& who) {
    AttemptEvent e = direct(who, "127.0.0.1");
    e.toLocalMta = true;
    return e;
  }
  AttemptEvent fromMta(const std::string& dst) {
    AttemptEvent e = direct(mta, dst, IdentityClass::Packaged);
    e.fromMta = true;
    return e;
  }
  static OutcomeEvent result(const AttemptEvent& a, ConnectOutcome o) {
    return OutcomeEvent{a.principal, a.dst, a.port, o};
  }
  // Uses `relay` successfully on `days` distinct days.
  void learnRelay(Detector& d, const Principal& who, const std::string& relay, int days) {
    for (int i = 0; i < days; ++i) {
      const AttemptEvent a = submit(who, relay);
      d.observe(a);
      d.outcome(result(a, ConnectOutcome::Established));
      clock.advance(hours(24));
    }
  }
};

TEST_F(DetectorTest, ScoresDirectDeliveryToANewHostAsDirectToMxPlusNewDestination) {
  Detector d(clock);
  const Assessment a = d.observe(direct(bot, mx(1)));
  EXPECT_EQ(a.channel, Channel::Direct);
  EXPECT_DOUBLE_EQ(a.score, 1.5 + 0.5);
  EXPECT_THAT(a.reasons, Contains(Field(&Reason::evidence, Evidence::DirectToMx)));
  EXPECT_THAT(a.reasons, Contains(Field(&Reason::evidence, Evidence::NewDestination)));
  EXPECT_EQ(a.tier, Tier::None);
}

TEST_F(DetectorTest, AccumulatesCusumAndReachesSoftThenHardTier) {
  Detector d(clock);
  std::vector<Tier> tiers;
  for (int i = 0; i < 5; ++i) {
    tiers.push_back(d.observe(direct(bot, mx(i))).tier);
    clock.advance(minutes(30));
  }
  // 2.0 nats each: soft at 4.6 (3rd attempt), hard at 9.2 (5th).
  EXPECT_EQ(tiers, (std::vector<Tier>{Tier::None, Tier::None, Tier::Soft, Tier::Soft, Tier::Hard}));
  EXPECT_TRUE(d.quarantined(bot));
}

TEST_F(DetectorTest, RaisesOneSoftAlertAndOneHardAlertWithEvidence) {
  Detector d(clock);
  std::vector<Alert> alerts;
  for (int i = 0; i < 5; ++i) {
    if (auto a = d.observe(direct(bot, mx(i))).alert) alerts.push_back(*a);
    clock.advance(minutes(30));
  }
  ASSERT_EQ(alerts.size(), 2U);
  EXPECT_EQ(alerts[0].tier, Tier::Soft);
  EXPECT_EQ(alerts[1].tier, Tier::Hard);
  EXPECT_EQ(alerts[1].channel, Channel::Direct);
  EXPECT_EQ(alerts[1].reasons.front().evidence, Evidence::DirectToMx);
  EXPECT_DOUBLE_EQ(alerts[1].reasons.front().weight, 7.5);
  EXPECT_EQ(alerts[1].reasons.front().count, 5U);
  EXPECT_EQ(alerts[1].attempts24h, 5U);
  EXPECT_EQ(alerts[1].destinations24h, 5U);
  EXPECT_EQ(alerts[1].sampleDestinations.front(), mx(4));
  EXPECT_THAT(alerts[1].summary(), HasSubstr("quarantined: 10.0 nats on DIRECT"));
  EXPECT_EQ(d.takeAlerts().size(), 2U);
  EXPECT_TRUE(d.takeAlerts().empty());
}

TEST_F(DetectorTest, CusumResetsToZeroOnNegativeEvidenceAndForgetsItsReasons) {
  Detector d(clock);
  const std::string relay = "203.0.113.10";
  learnRelay(d, mua, relay, 3);
  EXPECT_TRUE(d.learned(mua, relay));
  // Each learned send is -0.7; the reflected CUSUM never goes below zero.
  for (int i = 0; i < 20; ++i) {
    const Assessment a = d.observe(submit(mua, relay));
    EXPECT_EQ(a.channel, Channel::Relay);
    EXPECT_DOUBLE_EQ(a.score, -0.7);
    EXPECT_DOUBLE_EQ(a.cusum, 0.0);
  }
}

TEST_F(DetectorTest, IdentityShiftsBothThresholds) {
  Detector d(clock);
  const Principal tmpBot = principal("tmp");
  const Principal pkg = principal("pkg");
  // Suspicious: hard at 9.2 - 2.3 = 6.9, reached on the 4th direct attempt (8.0).
  Tier suspicious = Tier::None;
  Tier packaged = Tier::None;
  for (int i = 0; i < 4; ++i) {
    suspicious = d.observe(direct(tmpBot, mx(i), IdentityClass::Suspicious)).tier;
    packaged = d.observe(direct(pkg, mx(100 + i), IdentityClass::Packaged)).tier;
    clock.advance(minutes(30));
  }
  EXPECT_EQ(suspicious, Tier::Hard);
  EXPECT_EQ(packaged, Tier::Soft);  // 8.0 >= 4.6 + 2.3, < 9.2 + 2.3
}

TEST_F(DetectorTest, CountsRetriesToTheSameHostOnceWithinFiveMinutes) {
  Detector d(clock);
  EXPECT_DOUBLE_EQ(d.observe(direct(bot, mx(1))).score, 2.0);
  clock.advance(seconds(30));
  EXPECT_DOUBLE_EQ(d.observe(direct(bot, mx(1))).score, 0.0);
  clock.advance(minutes(6));
  EXPECT_DOUBLE_EQ(d.observe(direct(bot, mx(1))).score, 1.5);  // seen before: no D2
}

// A flood to more distinct servers than the retry memory holds (4,096): the newest are
// kept, so a retry of the latest attempt is still one attempt. (The memory was emptied
// at twice its cap, and trimmed just below it, a pass over the whole map per attempt.)
TEST_F(DetectorTest, AFloodKeepsTheNewestRetriesInMemory) {
  DetectorConfig cfg;
  // Nothing may quarantine it, or its attempts would no longer be scored at all.
  cfg.softThreshold = cfg.hardThreshold = 1e12;
  cfg.h3Connections = cfg.backstopSoftDestinations = cfg.backstopHardDestinations =
      cfg.backstopHardAttempts = 1'000'000;
  Detector d(clock, cfg);
  constexpr int kDestinations = 8193;
  for (int i = 0; i < kDestinations; ++i) {
    d.observe(direct(bot, mx(i)));
    clock.advance(std::chrono::milliseconds(1));
  }
  EXPECT_DOUBLE_EQ(d.observe(direct(bot, mx(kDestinations - 1))).score, 0.0) << "a retry";
  EXPECT_DOUBLE_EQ(d.observe(direct(bot, mx(kDestinations - 2000))).score, 0.0) << "a retry";
  EXPECT_GT(d.observe(direct(bot, mx(0))).score, 0.0) << "forgotten: counted again";
}

TEST_F(DetectorTest, LearnsADestinationAfterSuccessOnThreeDistinctDays) {
  Detector d(clock);
  const std::string relay = "203.0.113.10";
  learnRelay(d, mua, relay, 2);
  EXPECT_FALSE(d.learned(mua, relay));
  // Two successes on the same day count as one day.
  const AttemptEvent a = submit(mua, relay);
  d.observe(a);
  d.outcome(result(a, ConnectOutcome::Established));
  d.observe(a);
  d.outcome(result(a, ConnectOutcome::Established));
  EXPECT_TRUE(d.learned(mua, relay));
  // The working set is keyed by /24: the provider's other address is learned too.
  EXPECT_TRUE(d.learned(mua, "203.0.113.77"));
  EXPECT_FALSE(d.learned(mua, "203.0.114.10"));
}

TEST_F(DetectorTest, FailedConnectionsDoNotTeachTheWorkingSet) {
  Detector d(clock);
  for (int i = 0; i < 5; ++i) {
    const AttemptEvent a = submit(mua, "203.0.113.10");
    d.observe(a);
    d.outcome(result(a, ConnectOutcome::TimedOut));
    clock.advance(hours(24));
  }
  EXPECT_FALSE(d.learned(mua, "203.0.113.10"));
}

TEST_F(DetectorTest, ForgetsALearnedDestinationUnusedForNinetyDays) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  clock.advance(hours(24 * 91));
  d.observe(submit(mua, "192.0.2.1"));  // any attempt prunes (at most hourly)
  EXPECT_FALSE(d.learned(mua, "203.0.113.10"));
}

TEST_F(DetectorTest, TurnsPort25ToALearnedHostIntoTheRelayChannel) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  AttemptEvent a = submit(mua, "203.0.113.10");
  a.port = 25;
  EXPECT_EQ(d.observe(a).channel, Channel::Relay);
  a.dst = mx(3);
  EXPECT_EQ(d.observe(a).channel, Channel::Direct);
}

// Research 2.1 (M9a): a bot inside the owner's mail client sends direct between the
// client's normal submissions. With one CUSUM per channel the learned submissions
// (D2-, -0.7 each) do not cancel the direct evidence (+2.0 each); with one per
// principal (the ablation) three submissions per direct attempt hide the bot.
TEST_F(DetectorTest, KeepsDirectEvidenceApartFromTheSameProgramsNormalSubmissions) {
  auto run = [&](bool split) {
    DetectorConfig cfg;
    cfg.channelSplit = split;
    Detector d(clock, cfg);
    learnRelay(d, mua, "203.0.113.10", 3);
    for (int i = 0; i < 8; ++i) {
      d.observe(direct(mua, mx(i)));
      for (int j = 0; j < 3; ++j) {
        const AttemptEvent a = submit(mua, "203.0.113.10");
        d.observe(a);
        d.outcome(result(a, ConnectOutcome::Established));
      }
      clock.advance(hours(1));
    }
    return d.quarantined(mua);
  };
  EXPECT_TRUE(run(true));
  EXPECT_FALSE(run(false));
}

// A developer's swaks: delivering to a test host it has used for days is RELAY (no D1)
// and earns back, on DIRECT, what visits to new hosts cost there.
TEST_F(DetectorTest, LearnedMxHostsCreditTheDirectCusum) {
  auto run = [&](bool credit) {
    DetectorConfig cfg;
    cfg.learnedMxOnDirect = credit;
    Detector d(clock, cfg);
    for (int day = 0; day < 3; ++day) {  // mx(1) learned: successes on three days
      const AttemptEvent a = direct(mua, mx(1));
      d.observe(a);
      d.outcome(result(a, ConnectOutcome::Established));
      clock.advance(hours(24));
    }
    d.release(mua);  // whatever learning mx(1) cost
    const double before = d.observe(direct(mua, mx(2))).cusum;
    const Assessment learned = d.observe(direct(mua, mx(1)));
    EXPECT_EQ(learned.channel, Channel::Relay);
    EXPECT_THAT(learned.reasons, Contains(Field(&Reason::evidence, Evidence::LearnedDestination)));
    return std::make_pair(before, learned.cusum);
  };
  const auto [before, after] = run(true);
  EXPECT_GT(before, 0.0);
  EXPECT_DOUBLE_EQ(after, before - 0.7);
  const auto [before2, relayOnly] = run(false);
  EXPECT_DOUBLE_EQ(relayOnly, 0.0);  // RELAY's own CUSUM: DIRECT keeps its score
  EXPECT_GT(before2, 0.0);
}

TEST_F(DetectorTest, ChargesANewProgramOnTheOwnersKnownRelayOncePerDay) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  const Principal thief = principal("thief");
  const Assessment first = d.observe(submit(thief, "203.0.113.10", IdentityClass::Unknown));
  EXPECT_EQ(first.channel, Channel::NewRelay);
  EXPECT_THAT(first.reasons, Contains(Field(&Reason::evidence, Evidence::NewRelayKnownHost)));
  EXPECT_DOUBLE_EQ(first.score, 1.0 + 0.5);
  const Assessment second = d.observe(submit(thief, "203.0.113.10", IdentityClass::Unknown));
  EXPECT_DOUBLE_EQ(second.score, 0.0);
  clock.advance(hours(24));
  EXPECT_DOUBLE_EQ(d.observe(submit(thief, "203.0.113.10", IdentityClass::Unknown)).score, 1.0);
}

TEST_F(DetectorTest, ScoresManySimultaneousSessions) {
  Detector d(clock);
  AttemptEvent a = submit(bot, "203.0.113.10", IdentityClass::Unknown);
  a.openSessions = 5;
  const Assessment r = d.observe(a);
  EXPECT_THAT(r.reasons, Contains(Field(&Reason::evidence, Evidence::ManySessions)));
}

TEST_F(DetectorTest, ScoresABurstOfDirectAttemptsAsManySessions) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;  // watch the evidence only
  Detector d(clock, cfg);
  Assessment last;
  for (int i = 0; i < 10; ++i) {
    last = d.observe(direct(bot, mx(i)));
    clock.advance(seconds(1));
  }
  EXPECT_THAT(last.reasons, Contains(Field(&Reason::evidence, Evidence::ManySessions)));
  EXPECT_DOUBLE_EQ(last.score, 3.0);
}

TEST_F(DetectorTest, AddsConnectionFailuresWhenTheOutcomeArrives) {
  Detector d(clock);
  d.observe(direct(bot, "203.0.113.1"));  // a success shows port 25 works here
  d.outcome(result(direct(bot, "203.0.113.1"), ConnectOutcome::Established));
  const AttemptEvent a = direct(bot, mx(2));
  d.observe(a);
  const Assessment r = d.outcome(result(a, ConnectOutcome::Refused));
  EXPECT_DOUBLE_EQ(r.score, 0.5);
  EXPECT_EQ(r.channel, Channel::Direct);
  EXPECT_DOUBLE_EQ(r.cusum, 2.0 + 2.0 + 0.5);
}

TEST_F(DetectorTest, WeighsFailuresOnALearnedRelayLess) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  const AttemptEvent a = submit(mua, "203.0.113.10");
  d.observe(a);
  EXPECT_DOUBLE_EQ(d.outcome(result(a, ConnectOutcome::TimedOut)).score, 0.5 * 0.3);
}

TEST_F(DetectorTest, IgnoresPort25FailuresWhilePort25NeverSucceeds) {
  Detector d(clock);
  const AttemptEvent a = direct(bot, mx(1));
  d.observe(a);
  EXPECT_DOUBLE_EQ(d.outcome(result(a, ConnectOutcome::TimedOut)).score, 0.0);
}

TEST_F(DetectorTest, QuarantinesOnH3FanOutWithinAMinute) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;  // only H3 can fire
  Detector d(clock, cfg);
  Assessment a;
  for (int i = 0; i < 20; ++i) {
    a = d.observe(direct(bot, mx(i % 10)));
    clock.advance(seconds(2));
  }
  ASSERT_TRUE(a.alert.has_value());
  EXPECT_EQ(a.tier, Tier::Hard);
  EXPECT_EQ(a.alert->reasons.front().evidence, Evidence::VolumeH3);
}

TEST_F(DetectorTest, DoesNotApplyH3ToPackagedPrograms) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(d.observe(direct(bot, mx(i), IdentityClass::Packaged)).tier, Tier::None);
    clock.advance(seconds(1));
  }
}

TEST_F(DetectorTest, SoftBackstopFiresAfterTwentyDirectDestinationsInADay) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(d.observe(direct(bot, mx(i))).tier, Tier::None);
    clock.advance(minutes(10));
  }
  const Assessment a = d.observe(direct(bot, mx(20)));
  EXPECT_EQ(a.tier, Tier::Soft);
  ASSERT_TRUE(a.alert.has_value());
  EXPECT_EQ(a.alert->reasons.front().evidence, Evidence::BackstopDestinations);
}

TEST_F(DetectorTest, HardBackstopFiresAfterOneHundredFiftyAttemptsInADay) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  Tier t = Tier::None;
  for (int i = 0; i < 151; ++i) {
    t = d.observe(submit(mua, "203.0.113.10")).tier;
    clock.advance(seconds(300));
  }
  EXPECT_EQ(t, Tier::Hard);
}

TEST_F(DetectorTest, BackstopWindowSlidesOverTwentyFourHours) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(d.observe(submit(mua, "203.0.113.10")).tier, Tier::None) << i;
    clock.advance(minutes(10));  // 144 a day
  }
}

TEST_F(DetectorTest, DeclaredBulkLiftsBackstopsAndSoftTierButNotTheHardTier) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  d.declareBulk(bot, 500, hours(2));
  for (int i = 0; i < 200; ++i) {
    EXPECT_EQ(d.observe(direct(bot, mx(i), IdentityClass::Packaged)).tier, Tier::None) << i;
    clock.advance(seconds(30));
  }
  // The CUSUM still quarantines during a declared send.
  Detector strict(clock);
  strict.declareBulk(bot, 500, hours(2));
  Tier t = Tier::None;
  for (int i = 0; i < 5; ++i) t = strict.observe(direct(bot, mx(i))).tier;
  EXPECT_EQ(t, Tier::Hard);
}

TEST_F(DetectorTest, DeclaredBulkEndsAfterItsWindowOrItsRecipients) {
  DetectorConfig cfg;
  cfg.hardThreshold = cfg.softThreshold = 1e9;
  Detector d(clock, cfg);
  d.declareBulk(bot, 5, hours(2));
  for (int i = 0; i < 5; ++i) d.observe(direct(bot, mx(i), IdentityClass::Packaged));
  Tier t = Tier::None;
  for (int i = 5; i < 22; ++i) t = d.observe(direct(bot, mx(i), IdentityClass::Packaged)).tier;
  EXPECT_EQ(t, Tier::Soft);  // 22 destinations, only the first 5 were declared
}

TEST_F(DetectorTest, DoesNotScoreARecognisedMtaForDirectDelivery) {
  Detector d(clock);
  for (int i = 0; i < 500; ++i) {
    const Assessment a = d.observe(fromMta(mx(i)));
    EXPECT_EQ(a.tier, Tier::None);
    EXPECT_DOUBLE_EQ(a.score, 0.0);
    clock.advance(seconds(1));
  }
  EXPECT_TRUE(d.takeAlerts().empty());
}

TEST_F(DetectorTest, ChargesTheMtasFailedDeliveriesToTheLocalSubmitter) {
  Detector d(clock);
  const AttemptEvent ok = fromMta("203.0.113.1");
  d.observe(ok);
  d.outcome(result(ok, ConnectOutcome::Established));  // port 25 works here
  const Assessment sub = d.observe(local(bot));
  EXPECT_EQ(sub.channel, Channel::NewRelay);
  EXPECT_DOUBLE_EQ(sub.score, 0.5 + 1.0);  // new destination, new program on the MTA
  for (int i = 0; i < 4; ++i) {
    const AttemptEvent a = fromMta(mx(i));
    d.observe(a);
    d.outcome(result(a, ConnectOutcome::Refused));
  }
  // 1.5 + 4 x 2.0 = 9.5 >= 9.2: the submitter is quarantined, the MTA is not.
  EXPECT_TRUE(d.quarantined(bot));
  EXPECT_FALSE(d.quarantined(mta));
  const auto alerts = d.takeAlerts();
  ASSERT_FALSE(alerts.empty());
  EXPECT_EQ(alerts.back().principal, bot);
  EXPECT_EQ(alerts.back().reasons.front().evidence, Evidence::MtaDeliveryFailed);
}

TEST_F(DetectorTest, SplitsMtaOutcomesBetweenRecentSubmittersOnly) {
  Detector d(clock);
  const AttemptEvent ok = fromMta("203.0.113.1");
  d.observe(ok);
  d.outcome(result(ok, ConnectOutcome::Established));
  d.observe(local(mua));
  clock.advance(minutes(20));  // mua's submission is outside the window now
  d.observe(local(bot));
  const AttemptEvent a = fromMta(mx(1));
  d.observe(a);
  d.outcome(result(a, ConnectOutcome::Refused));
  const auto state = d.exportState();
  for (const auto& s : state) {
    const double s2 = s.cusum[static_cast<std::size_t>(Channel::NewRelay)];
    if (s.principal == mua) {
      EXPECT_DOUBLE_EQ(s2, 1.5);
    }
    if (s.principal == bot) {
      EXPECT_DOUBLE_EQ(s2, 3.5);
    }
  }
}

TEST_F(DetectorTest, RejectsEveryLaterAttemptOfAQuarantinedPrincipalUntilReleased) {
  Detector d(clock);
  for (int i = 0; i < 5; ++i) d.observe(direct(bot, mx(i)));
  ASSERT_TRUE(d.quarantined(bot));
  const Assessment later = d.observe(direct(bot, mx(99)));
  EXPECT_EQ(later.tier, Tier::Hard);
  EXPECT_FALSE(later.alert.has_value());  // one alert per quarantine
  d.release(bot);
  EXPECT_FALSE(d.quarantined(bot));
  EXPECT_EQ(d.tier(bot), Tier::None);
  const Assessment after = d.observe(direct(bot, mx(100)));
  EXPECT_EQ(after.tier, Tier::None);
  EXPECT_DOUBLE_EQ(after.cusum, 2.0);
}

TEST_F(DetectorTest, ReleaseLearnsTheDestinationsTheProgramReached) {
  Detector d(clock);
  const AttemptEvent a = direct(bot, mx(1));
  d.observe(a);
  d.outcome(result(a, ConnectOutcome::Established));
  for (int i = 2; i < 6; ++i) d.observe(direct(bot, mx(i)));
  ASSERT_TRUE(d.quarantined(bot));
  d.release(bot);
  EXPECT_TRUE(d.learned(bot, mx(1)));
  EXPECT_FALSE(d.learned(bot, mx(2)));  // never connected
}

TEST_F(DetectorTest, ThrottlesNewDestinationsInTheSoftTier) {
  Detector d(clock);
  const Principal pkg = principal("pkg");
  for (int i = 0; i < 4; ++i) d.observe(direct(pkg, mx(i), IdentityClass::Packaged));
  ASSERT_EQ(d.tier(pkg), Tier::Soft);
  clock.advance(seconds(10));
  EXPECT_TRUE(d.observe(direct(pkg, mx(10), IdentityClass::Packaged)).throttle);
  clock.advance(seconds(61));
  const Assessment a = d.observe(direct(pkg, mx(11), IdentityClass::Packaged));
  EXPECT_FALSE(a.throttle);
}

TEST_F(DetectorTest, KeepsStateAcrossExportAndImport) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  for (int i = 0; i < 5; ++i) d.observe(direct(bot, mx(i)));
  ASSERT_TRUE(d.quarantined(bot));
  const std::vector<PrincipalSnapshot> saved = d.exportState();

  Detector restarted(clock);
  restarted.importState(saved);
  EXPECT_TRUE(restarted.quarantined(bot));
  EXPECT_TRUE(restarted.learned(mua, "203.0.113.10"));
  EXPECT_EQ(restarted.observe(direct(bot, mx(50))).tier, Tier::Hard);
  EXPECT_EQ(restarted.exportState().size(), saved.size());
  for (const auto& s : saved) {
    if (s.principal == bot) {
      ASSERT_TRUE(s.quarantineAlert.has_value());
      EXPECT_EQ(s.quarantineAlert->tier, Tier::Hard);
    }
  }
}

// A restart must not raise the soft alert again: neither for a channel that went quiet
// before it (its S stays, but no longer holds the principal in the soft tier) nor while
// the principal is still in the soft tier (the alert is outstanding).
TEST_F(DetectorTest, DoesNotRaiseTheSoftAlertAgainAfterARestart) {
  Detector d(clock);
  const Principal pkg = principal("pkg");
  learnRelay(d, pkg, "203.0.113.10", 3);
  Assessment a;
  for (int i = 0; i < 4; ++i) a = d.observe(direct(pkg, mx(i), IdentityClass::Packaged));
  ASSERT_EQ(a.tier, Tier::Soft);
  ASSERT_EQ(d.takeAlerts().size(), 1U);

  Detector soon(clock);
  soon.importState(d.exportState());
  clock.advance(minutes(1));
  EXPECT_EQ(soon.observe(direct(pkg, mx(20), IdentityClass::Packaged)).tier, Tier::Soft);
  EXPECT_TRUE(soon.takeAlerts().empty());

  clock.advance(hours(25));
  EXPECT_EQ(soon.observe(submit(pkg, "203.0.113.10")).tier, Tier::None);
  Detector later(clock);
  later.importState(soon.exportState());
  clock.advance(minutes(1));
  const Assessment relay = later.observe(submit(pkg, "203.0.113.10"));
  EXPECT_EQ(relay.tier, Tier::None);
  EXPECT_FALSE(relay.alert.has_value());
  EXPECT_TRUE(later.takeAlerts().empty());
}

TEST_F(DetectorTest, RearmsTheSoftAlertOnlyAfterTheScoreFalls) {
  Detector d(clock);
  const Principal pkg = principal("pkg");
  learnRelay(d, pkg, "203.0.113.10", 3);
  int softAlerts = 0;
  auto count = [&](const Assessment& a) {
    softAlerts += a.alert && a.alert->tier == Tier::Soft ? 1 : 0;
  };
  for (int i = 0; i < 4; ++i) count(d.observe(direct(pkg, mx(i), IdentityClass::Packaged)));
  EXPECT_EQ(softAlerts, 1);
  count(d.observe(direct(pkg, mx(4), IdentityClass::Packaged)));  // still soft: no new alert
  EXPECT_EQ(softAlerts, 1);
}

TEST_F(DetectorTest, DropsOutOfTheSoftTierWhenTheChannelGoesQuiet) {
  Detector d(clock);
  const Principal pkg = principal("pkg");
  for (int i = 0; i < 4; ++i) d.observe(direct(pkg, mx(i), IdentityClass::Packaged));
  ASSERT_EQ(d.observe(submit(pkg, "203.0.113.10")).tier, Tier::Soft);
  clock.advance(hours(25));
  EXPECT_EQ(d.observe(submit(pkg, "203.0.113.10")).tier, Tier::None);
}

// I1: a controlling terminal lowers a direct attempt's score, but never below zero (it
// cannot cancel D1), and does nothing for submissions.
TEST_F(DetectorTest, CreditsATerminalOnDirectAttemptsWithoutCancellingDirectToMx) {
  Detector d(clock);
  AttemptEvent e = direct(principal("swaks"), mx(1));
  e.interactive = true;
  const Assessment a = d.observe(e);
  EXPECT_DOUBLE_EQ(a.score, 1.5 + 0.5 - 1.0);
  EXPECT_THAT(a.reasons, Contains(Field(&Reason::evidence, Evidence::Interactive)));
  clock.advance(minutes(6));
  e.dst = mx(1);  // a second contact: D1 alone, still positive after the credit
  EXPECT_GT(d.observe(e).score, 0);

  DetectorConfig strong;
  strong.interactive = -5.0;
  Detector capped(clock, strong);
  AttemptEvent f = direct(principal("dev"), mx(2));
  f.interactive = true;
  capped.observe(f);
  clock.advance(minutes(6));
  EXPECT_GT(capped.observe(f).score, 0);

  AttemptEvent s = submit(principal("mutt"), "203.0.113.10", IdentityClass::Unknown);
  s.interactive = true;
  const Assessment sub = d.observe(s);
  EXPECT_DOUBLE_EQ(sub.score, 0.5);
  EXPECT_THAT(sub.reasons,
              ::testing::Not(Contains(Field(&Reason::evidence, Evidence::Interactive))));
}

// ---- DNS (N1-N3), presence (U1/U2) and the program's own RCPT replies ----

double reasonWeight(const Assessment& a, Evidence e) {
  double w = 0;
  for (const Reason& r : a.reasons) w += r.evidence == e ? r.weight : 0;
  return w;
}

TEST_F(DetectorTest, ScoresAnMxLookupAndAnUnresolvedDestinationWithTheirWeights) {
  const DetectorConfig cfg;
  Detector d(clock);
  AttemptEvent e = direct(bot, mx(1));
  e.dns.seen = true;
  e.dns.mxQueried = true;
  e.dns.dstResolved = true;
  const Assessment n1 = d.observe(e);
  EXPECT_DOUBLE_EQ(n1.score, cfg.directToMx + cfg.newDestination + cfg.mxLookup);
  EXPECT_DOUBLE_EQ(reasonWeight(n1, Evidence::MxLookup), cfg.mxLookup);
  EXPECT_DOUBLE_EQ(reasonWeight(n1, Evidence::NoDnsAnswer), 0);

  AttemptEvent hardCoded = direct(principal("hardcoded"), mx(2));
  hardCoded.dns.seen = true;  // it resolved nothing before connecting
  const Assessment n2 = d.observe(hardCoded);
  EXPECT_DOUBLE_EQ(n2.score, cfg.directToMx + cfg.newDestination + cfg.noDnsAnswer);
  EXPECT_DOUBLE_EQ(reasonWeight(n2, Evidence::NoDnsAnswer), cfg.noDnsAnswer);
}

TEST_F(DetectorTest, NoDnsSeenMeansNoDnsEvidence) {
  Detector d(clock);
  AttemptEvent e = direct(bot, mx(1));
  e.dns.seen = false;  // no tap: the flags mean nothing
  e.dns.mxQueried = true;
  e.dns.mailNameQueried = true;
  const Assessment a = d.observe(e);
  EXPECT_DOUBLE_EQ(a.score, 1.5 + 0.5);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::NoDnsAnswer), 0);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::MxLookup), 0);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::MailHostLookup), 0);
}

TEST_F(DetectorTest, NoDnsAnswerSparesLoopbackAndLearnedRelays) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  AttemptEvent s = submit(mua, "203.0.113.10");
  s.dns.seen = true;  // a cached relay address: no answer seen now
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(s), Evidence::NoDnsAnswer), 0);
  AttemptEvent l = local(bot);
  l.dns.seen = true;
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(l), Evidence::NoDnsAnswer), 0);

  // Reached once already: the program's own cache, not a hard-coded target.
  AttemptEvent first = submit(principal("client"), "203.0.113.20");
  first.dns = DnsEvidence{true, false, true, false};
  d.observe(first);
  d.outcome(result(first, ConnectOutcome::Established));
  clock.advance(minutes(10));
  AttemptEvent cached = first;
  cached.dns.dstResolved = false;
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(cached), Evidence::NoDnsAnswer), 0);
}

// Addresses a home PC's configuration names by number (loopback, the LAN, link-local) are
// never resolved: connecting to one is no sign of a hard-coded target list.
TEST_F(DetectorTest, NoDnsAnswerSparesAddressesConfiguredByNumber) {
  Detector d(clock);
  int n = 0;
  for (const char* dst : {"127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.9.9", "192.168.1.25",
                          "169.254.0.7", "::1", "fe80::1", "fd00::25"}) {
    AttemptEvent e = direct(principal("local" + std::to_string(n++)), dst);
    e.dns.seen = true;
    EXPECT_DOUBLE_EQ(reasonWeight(d.observe(e), Evidence::NoDnsAnswer), 0) << dst;
  }
  AttemptEvent pub = direct(principal("public"), "198.51.100.25");
  pub.dns.seen = true;
  EXPECT_GT(reasonWeight(d.observe(pub), Evidence::NoDnsAnswer), 0);
}

TEST_F(DetectorTest, ScoresMailHostGuessingOnDirectOnly) {
  const DetectorConfig cfg;
  Detector d(clock);
  AttemptEvent e = direct(bot, mx(1));
  e.dns = DnsEvidence{true, false, true, true};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(e), Evidence::MailHostLookup), cfg.mailHostLookup);
  AttemptEvent s = submit(mua, "203.0.113.10");  // smtp.<provider> for a relay
  s.dns = DnsEvidence{true, false, true, true};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(s), Evidence::MailHostLookup), 0);
}

TEST_F(DetectorTest, CreditsRealInputOfTheActiveSessionsUserWithinTheWindow) {
  const DetectorConfig cfg;
  Detector d(clock);
  AttemptEvent s = submit(mua, "203.0.113.10");
  s.presence = PresenceEvidence{true, true, seconds(1)};
  const Assessment a = d.observe(s);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::UserInput), cfg.userInput);
  EXPECT_LT(a.score, cfg.newDestination);

  s.dst = "203.0.113.11";
  s.presence = PresenceEvidence{true, true, seconds(10)};  // too long ago
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(s), Evidence::UserInput), 0);
  s.dst = "203.0.113.12";
  s.presence = PresenceEvidence{true, false, seconds(1)};  // another user's session
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(s), Evidence::UserInput), 0);
  s.dst = "203.0.113.13";
  s.presence = PresenceEvidence{false, true, seconds(1)};  // no source answered
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(s), Evidence::UserInput), 0);
}

TEST_F(DetectorTest, InputNeverCancelsDirectToMxNorStacksWithTheTerminal) {
  DetectorConfig strong;
  strong.userInput = -5.0;
  strong.interactive = -5.0;
  Detector d(clock, strong);
  AttemptEvent e = direct(principal("swaks"), mx(1));
  e.interactive = true;
  e.presence = PresenceEvidence{true, true, seconds(1)};
  d.observe(e);
  clock.advance(minutes(6));
  const Assessment again = d.observe(e);  // D1 alone now, and both credits
  EXPECT_GT(again.score, 0);
  EXPECT_GE(reasonWeight(again, Evidence::UserInput) + reasonWeight(again, Evidence::Interactive),
            -strong.directToMx);

  DetectorConfig both;  // U1 -1.0 and I1 -1.0: one credit of -1.0, not -2.0
  both.userInput = -1.0;
  both.interactive = -1.0;
  Detector one(clock, both);
  AttemptEvent f = direct(principal("dev"), mx(2));
  f.interactive = true;
  f.presence = PresenceEvidence{true, true, seconds(2)};
  const Assessment a = one.observe(f);
  EXPECT_DOUBLE_EQ(a.score, 1.5 + 0.5 - 1.0);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::UserInput), -1.0);
  EXPECT_DOUBLE_EQ(reasonWeight(a, Evidence::Interactive), 0);

  Detector defaults(clock);  // the terminal tops U1 up to the cap, no further
  f.principal = principal("dev2");
  const Assessment b = defaults.observe(f);
  EXPECT_DOUBLE_EQ(reasonWeight(b, Evidence::UserInput) + reasonWeight(b, Evidence::Interactive),
                   std::min(defaults.config().userInput, defaults.config().interactive));
}

TEST_F(DetectorTest, ScoresNobodyAtTheKeyboardOnDirectOnly) {
  const DetectorConfig cfg;
  Detector d(clock);
  AttemptEvent e = direct(bot, mx(1));
  e.presence = PresenceEvidence{true, true, minutes(30)};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(e), Evidence::UserAway), cfg.userAway);
  AttemptEvent n = direct(principal("nosession"), mx(2));
  n.presence = PresenceEvidence{true, false, std::nullopt};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(n), Evidence::UserAway), cfg.userAway);
  AttemptEvent idleUnknown = direct(principal("idle"), mx(3));
  idleUnknown.presence = PresenceEvidence{true, true, std::nullopt};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(idleUnknown), Evidence::UserAway), 0);
  AttemptEvent daemon = submit(principal("davmail"), "203.0.113.10", IdentityClass::Unknown);
  daemon.presence = PresenceEvidence{true, false, std::nullopt};
  EXPECT_DOUBLE_EQ(reasonWeight(d.observe(daemon), Evidence::UserAway), 0);
}

ReplyEvent replies(const AttemptEvent& a, unsigned accepted, unsigned userUnknown,
                   unsigned blocklisted = 0, unsigned rejected = 0) {
  ReplyEvent r;
  r.principal = a.principal;
  r.program = a.program;
  r.idClass = a.idClass;
  r.dst = a.dst;
  r.port = a.port;
  r.accepted = accepted;
  r.userUnknown = userUnknown;
  r.blocklisted = blocklisted;
  r.rejected = rejected;
  return r;
}

TEST_F(DetectorTest, ScoresTheRcptRepliesOfADirectSessionPerRecipient) {
  const DetectorConfig cfg;
  Detector d(clock);
  const AttemptEvent a = direct(bot, mx(1));
  const double before = d.observe(a).cusum;
  const Assessment r = d.replied(replies(a, 3, 1));
  EXPECT_EQ(r.channel, Channel::Direct);
  EXPECT_DOUBLE_EQ(reasonWeight(r, Evidence::UserUnknown), cfg.mtaUserUnknown);
  EXPECT_DOUBLE_EQ(reasonWeight(r, Evidence::Accepted), 3 * cfg.mtaDelivered);
  EXPECT_DOUBLE_EQ(r.cusum, before + cfg.mtaUserUnknown + 3 * cfg.mtaDelivered);

  const AttemptEvent clean = direct(principal("clean"), mx(2));
  const double cleanBefore = d.observe(clean).cusum;
  const Assessment ok = d.replied(replies(clean, 2, 0));
  EXPECT_LT(ok.score, 0);
  EXPECT_DOUBLE_EQ(ok.cusum, cleanBefore + 2 * cfg.mtaDelivered);

  // Deferrals (greylisting) are no evidence; a mostly unknown list scores the clip.
  ReplyEvent deferred = replies(clean, 0, 0);
  deferred.deferred = 5;
  EXPECT_DOUBLE_EQ(d.replied(deferred).score, 0);
  EXPECT_DOUBLE_EQ(d.replied(replies(a, 0, 10)).score, cfg.maxScore);
}

TEST_F(DetectorTest, TwoBlocklistRepliesWithinAnHourQuarantineAcrossBothRoutes) {
  Detector d(clock);
  const AttemptEvent a = direct(bot, mx(1));
  d.observe(a);
  EXPECT_NE(d.replied(replies(a, 0, 0, 1)).tier, Tier::Hard);
  clock.advance(minutes(30));
  const Assessment second = d.replied(replies(a, 0, 0, 1));
  EXPECT_EQ(second.tier, Tier::Hard);
  EXPECT_TRUE(d.quarantined(bot));
  ASSERT_TRUE(second.alert.has_value());
  EXPECT_EQ(second.alert->reasons.front().evidence, Evidence::BlocklistH1);

  // One blocklisted direct session and one blocklisted MTA message count together.
  const Principal both = principal("both");
  const AttemptEvent b = direct(both, mx(2));
  d.observe(b);
  d.replied(replies(b, 0, 0, 1));
  clock.advance(minutes(20));
  DeliveryEvent m;
  m.principal = both;
  m.blocklisted = 1;
  EXPECT_EQ(d.delivered(m).tier, Tier::Hard);

  // Two hours apart: no H1.
  const Principal slow = principal("slow");
  const AttemptEvent c = direct(slow, mx(3));
  d.observe(c);
  d.replied(replies(c, 5, 0, 1));
  clock.advance(hours(2));
  d.replied(replies(c, 5, 0, 1));
  EXPECT_FALSE(d.quarantined(slow));
}

TEST_F(DetectorTest, IgnoresTheRepliesOfARecognisedMtasOwnSessions) {
  Detector d(clock);
  const AttemptEvent a = fromMta(mx(1));
  d.observe(a);
  const Assessment r = d.replied(replies(a, 0, 10, 1));
  EXPECT_DOUBLE_EQ(r.score, 0);
  EXPECT_FALSE(d.quarantined(mta));
}

TEST_F(DetectorTest, RepliesFollowTheCusumTheirAttemptWentTo) {
  Detector d(clock);
  learnRelay(d, mua, "203.0.113.10", 3);
  const AttemptEvent s = submit(mua, "203.0.113.10");
  d.observe(s);
  EXPECT_EQ(d.replied(replies(s, 1, 0)).channel, Channel::Relay);
}

// A snapshot as the first version stored it (no DNS, presence or reply evidence in its
// alert) still loads, and the new evidence then acts on the restored test.
TEST_F(DetectorTest, SnapshotsWrittenBeforeStillLoad) {
  PrincipalSnapshot old;
  old.principal = bot;
  old.program = "/home/u/bin/x";
  old.cusum = {0, 4.0, 0};
  old.cusumUpdated = {TimePoint{}, clock.now(), TimePoint{}};
  old.lastActivity = clock.now();
  old.workingSet.push_back(WorkingSetEntry{mx(1), clock.now(), clock.now(), {}, 0, false});
  Detector d(clock);
  d.importState({old});
  AttemptEvent e = direct(bot, mx(2));
  e.dns = DnsEvidence{true, true, false, false};
  const Assessment a = d.observe(e);
  EXPECT_DOUBLE_EQ(a.cusum, 4.0 + a.score);
  EXPECT_GT(a.score, 1.5 + 0.5);
  const auto saved = d.exportState();
  ASSERT_EQ(saved.size(), 1U);
  EXPECT_DOUBLE_EQ(saved.front().cusum[1], a.cusum);
}

// A same-user copy of the approved client (same bytes, another path) behaving like a bot
// is its own principal: quarantined and named as itself, while the client's tests,
// working set and tier are untouched.
TEST_F(DetectorTest, ACopyOfAClientAtAnotherPathIsQuarantinedAsItselfNotAsTheClient) {
  Detector d(clock);
  rules::ProgramIdentity installed;
  installed.path = "/usr/local/bin/client";
  installed.sha256 = std::string(64, 'c');
  rules::ProgramIdentity copied = installed;
  copied.path = "/home/u/.local/client";
  const Principal owner = Principal::of(installed, 1000);
  const Principal copy = Principal::of(copied, 1000);
  ASSERT_NE(owner, copy);
  ASSERT_NE(owner.key(), copy.key());
  learnRelay(d, owner, "192.0.2.10", 3);
  ASSERT_TRUE(d.learned(owner, "192.0.2.10"));

  // The copy on the owner's relay is a new program there (D3), as any other would be.
  AttemptEvent onRelay = submit(copy, "192.0.2.10", IdentityClass::Unknown);
  onRelay.program = copied.path;
  EXPECT_THAT(d.observe(onRelay).reasons,
              Contains(Field(&Reason::evidence, Evidence::NewRelayKnownHost)));
  std::optional<Alert> hard;
  for (int i = 1; i <= 10 && !hard; ++i) {
    AttemptEvent e = direct(copy, mx(i));
    e.program = copied.path;
    const Assessment a = d.observe(e);
    if (a.alert && a.alert->tier == Tier::Hard) hard = a.alert;
    clock.advance(seconds(5));
  }
  ASSERT_TRUE(hard.has_value()) << "the copy was never quarantined";
  EXPECT_EQ(hard->principal, copy);
  EXPECT_EQ(hard->principal.exePath, "/home/u/.local/client");
  EXPECT_EQ(hard->program, "/home/u/.local/client");
  EXPECT_TRUE(d.quarantined(copy));
  for (const Alert& a : d.takeAlerts()) EXPECT_EQ(a.principal, copy) << a.summary();

  EXPECT_FALSE(d.quarantined(owner));
  EXPECT_EQ(d.tier(owner), Tier::None);
  EXPECT_TRUE(d.learned(owner, "192.0.2.10"));
  AttemptEvent flush = submit(owner, "192.0.2.10", IdentityClass::Unknown);
  flush.program = installed.path;
  const Assessment a = d.observe(flush);
  EXPECT_EQ(a.tier, Tier::None);
  EXPECT_FALSE(a.throttle);
  EXPECT_EQ(a.channel, Channel::Relay);
  // And each keeps its own state across a restart.
  Detector restarted(clock);
  restarted.importState(d.exportState());
  EXPECT_TRUE(restarted.quarantined(copy));
  EXPECT_FALSE(restarted.quarantined(owner));
}

TEST(DestinationKey, GroupsIpv4By24AndIpv6By64) {
  const DetectorConfig cfg;
  EXPECT_EQ(destinationKey("198.51.100.77", cfg), "198.51.100.0/24");
  EXPECT_EQ(destinationKey("2001:db8:1:2:3:4:5:6", cfg), "2001:db8:1:2::/64");
  EXPECT_EQ(destinationKey("not-an-address", cfg), "not-an-address");
  EXPECT_EQ(destinationKey("1.2.3.456", cfg), "1.2.3.456");
}

TEST(PrincipalKey, IncludesTheScriptForInterpreters) {
  rules::ProgramIdentity id;
  id.path = "/usr/bin/python3.11";
  id.sha256 = std::string(64, 'a');
  id.scriptPath = "/home/u/send.py";
  id.scriptSha256 = std::string(64, 'b');
  const Principal p = Principal::of(id, 1000);
  EXPECT_EQ(p.key(), std::string(64, 'a') +
                         ":/usr/bin/python3.11:/home/u/send.py:" + std::string(64, 'b') + "/1000");
  id.scriptPath.clear();
  id.scriptSha256.clear();
  EXPECT_NE(Principal::of(id, 1000), p);
  EXPECT_NE(Principal::of(id, 1000), Principal::of(id, 1001));
}

TEST(PrincipalKey, IncludesThePathSoACopyIsAnotherPrincipal) {
  rules::ProgramIdentity id;
  id.path = "/usr/local/bin/swaks";
  id.sha256 = std::string(64, 'a');
  const Principal p = Principal::of(id, 1000);
  EXPECT_EQ(p.exePath, "/usr/local/bin/swaks");
  EXPECT_EQ(p.key(), std::string(64, 'a') + ":/usr/local/bin/swaks/1000");
  id.path = "/tmp/swaks";
  EXPECT_NE(Principal::of(id, 1000), p);
  EXPECT_NE(Principal::of(id, 1000).key(), p.key());
}

// A path may hold the key's separators: escaped, so no file can take another's key (the
// store keeps one row per key).
TEST(PrincipalKey, PathsCannotForgeAnotherPrincipalsKey) {
  const std::string h(64, 'a');
  Principal interpreted{h, "/usr/bin/python3", "/srv/x.py", h, 1000};
  Principal forged{h, "/usr/bin/python3:/srv/x.py:" + h, "", "", 1000};
  EXPECT_NE(interpreted.key(), forged.key());
  EXPECT_EQ(forged.key(), h + ":/usr/bin/python3%3A/srv/x.py%3A" + h + "/1000");
  Principal percent{h, "/tmp/a%3Ab", "", "", 1000};
  Principal colon{h, "/tmp/a:b", "", "", 1000};
  EXPECT_NE(percent.key(), colon.key());
  EXPECT_EQ(percent.key(), h + ":/tmp/a%253Ab/1000");
}

// Submissions to the local MTA (SubmissionEvent): a message to a recipient domain the
// program never mailed is evidence, one to domains it mailed before is credit.
SubmissionEvent message(const Principal& who, std::vector<std::string> domains) {
  SubmissionEvent e;
  e.principal = who;
  e.program = "/usr/bin/php8.2 /var/www/x.php";
  e.recipients = static_cast<unsigned>(domains.size());
  e.domains = std::move(domains);
  return e;
}

double weightOf(const Assessment& a, Evidence e) {
  double w = 0;
  for (const Reason& r : a.reasons) w += r.evidence == e ? r.weight : 0;
  return w;
}

TEST_F(DetectorTest, ANewRecipientDomainIsEvidenceAndAKnownOneCredit) {
  const DetectorConfig cfg;
  Detector d(clock);
  const Assessment first = d.submitted(message(bot, {"a.example", "b.example"}));
  EXPECT_DOUBLE_EQ(weightOf(first, Evidence::MtaNewDomain), cfg.mtaNewDomain);
  EXPECT_DOUBLE_EQ(first.cusum, cfg.mtaNewDomain);
  clock.advance(hours(1));
  const Assessment again = d.submitted(message(bot, {"b.example"}));
  EXPECT_DOUBLE_EQ(weightOf(again, Evidence::MtaKnownDomains), cfg.mtaKnownDomains);
  EXPECT_DOUBLE_EQ(weightOf(again, Evidence::MtaNewDomain), 0);
  clock.advance(hours(1));
  // One new domain among known ones makes the message new (counted once).
  const Assessment mixed = d.submitted(message(bot, {"a.example", "c.example", "d.example"}));
  EXPECT_DOUBLE_EQ(weightOf(mixed, Evidence::MtaNewDomain), cfg.mtaNewDomain);
  EXPECT_DOUBLE_EQ(weightOf(mixed, Evidence::MtaKnownDomains), 0);
}

// A message held for the owner's decision goes nowhere until they decide: no evidence
// from its domains or its rate, however many (the daily backstops still count it).
TEST_F(DetectorTest, HeldSubmissionsCarryNoDomainOrBurstEvidence) {
  Detector d(clock);
  for (int i = 0; i < 30; ++i) {
    SubmissionEvent e = message(bot, {"d" + std::to_string(i) + ".example"});
    e.held = true;
    const Assessment a = d.submitted(e);
    EXPECT_DOUBLE_EQ(weightOf(a, Evidence::MtaNewDomain), 0);
    EXPECT_DOUBLE_EQ(weightOf(a, Evidence::MtaBurst), 0);
  }
  EXPECT_FALSE(d.quarantined(bot));
  // The same stream once it can go out is a harvested list.
  for (int i = 30; i < 60 && !d.quarantined(bot); ++i) {
    (void)d.submitted(message(bot, {"d" + std::to_string(i) + ".example"}));
  }
  EXPECT_TRUE(d.quarantined(bot));
}

// Submission evidence alone (no TCP attempt, sendmail): 0.94 a message, +1.0 a message
// from the tenth within a minute on.
TEST_F(DetectorTest, AHarvestedListBotIsFlaggedBySubmissionsAlone) {
  Detector d(clock);
  int soft = 0;
  int hard = 0;
  for (int n = 1; n <= 20 && hard == 0; ++n) {
    const Tier tier = d.submitted(message(bot, {"h" + std::to_string(n) + ".example"})).tier;
    if (tier != Tier::None && soft == 0) soft = n;
    if (tier == Tier::Hard) hard = n;
    clock.advance(seconds(2));
  }
  EXPECT_EQ(soft, 5);   // 5 x 0.94 > 4.6
  EXPECT_EQ(hard, 10);  // 9 x 0.94 + 0.94 + 1.0 (S2 at the tenth) > 9.2
}

// The default S1 is one weight per message whatever the number of new domains; the graded
// form (1, 2-3, >= 4 new; detector_eval's ablation row) gives each bin its own.
TEST_F(DetectorTest, S1CountsAMessageOnceUnlessGraded) {
  const DetectorConfig flat;
  EXPECT_FALSE(flat.mtaNewDomainBins.has_value());
  Detector d(clock);
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(message(bot, {"a.example"})), Evidence::MtaNewDomain),
                   flat.mtaNewDomain);
  clock.advance(hours(1));
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(message(bot, {"b.example", "c.example", "d.example",
                                                      "e.example", "f.example"})),
                            Evidence::MtaNewDomain),
                   flat.mtaNewDomain);
}

SubmissionEvent toNew(const Principal& who, int from, int n) {
  std::vector<std::string> domains;
  for (int i = from; i < from + n; ++i) domains.push_back("n" + std::to_string(i) + ".example");
  return message(who, std::move(domains));
}

TEST_F(DetectorTest, GradedS1AppliesEachBinsWeight) {
  DetectorConfig cfg;
  cfg.mtaNewDomainBins = DetectorConfig::NewDomainBins{0.25, 0.59, 1.54};
  cfg.mtaBurst = false;  // the rate is not what this test is about
  Detector d(clock, cfg);
  const auto weight = [&](SubmissionEvent e) {
    clock.advance(hours(1));
    return weightOf(d.submitted(std::move(e)), Evidence::MtaNewDomain);
  };
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 0, 1)), 0.25);
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 1, 2)), 0.59);
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 3, 3)), 0.59);
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 6, 4)), 1.54);
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 10, 20)), 1.54);
  // Only the new domains count: 3 known and 1 new is the one-new bin, 2 known and 2 new
  // the few-new bin.
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 27, 4)), 0.25);
  EXPECT_DOUBLE_EQ(weight(toNew(bot, 29, 4)), 0.59);
  // All known: the credit, as ungraded.
  clock.advance(hours(1));
  const Assessment known = d.submitted(toNew(bot, 0, 10));
  EXPECT_DOUBLE_EQ(weightOf(known, Evidence::MtaKnownDomains), cfg.mtaKnownDomains);
  EXPECT_DOUBLE_EQ(weightOf(known, Evidence::MtaNewDomain), 0);
}

// The structural rules hold for every bin: a mailing, a message just after a click, a held
// message and a declared bulk send carry no S1, however many new domains.
TEST_F(DetectorTest, GradedS1KeepsTheStructuralRules) {
  DetectorConfig cfg;
  cfg.mtaNewDomainBins = DetectorConfig::NewDomainBins{0.25, 0.59, 1.54};
  Detector d(clock, cfg);
  SubmissionEvent list = toNew(bot, 0, 20);
  list.recipients = cfg.mtaListRecipients + 1;
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(list), Evidence::MtaNewDomain), 0);
  SubmissionEvent clicked = toNew(mua, 100, 10);
  clicked.presence = {true, true, seconds(1)};
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(clicked), Evidence::MtaNewDomain), 0);
  SubmissionEvent held = toNew(bot, 200, 10);
  held.held = true;
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(held), Evidence::MtaNewDomain), 0);
  const Principal lists = principal("mailman");
  d.declareBulk(lists, 100, hours(2));
  EXPECT_TRUE(d.submitted(toNew(lists, 300, 10)).reasons.empty());
  // Without those conditions the same sizes are graded.
  clock.advance(hours(1));
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(toNew(bot, 400, 10)), Evidence::MtaNewDomain), 1.54);
  clicked = toNew(mua, 500, 2);
  clicked.presence = {true, true, seconds(30)};
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(clicked), Evidence::MtaNewDomain), 0.59);
}

// A restart (exportState/importState, guardd's snapshot) keeps the domains a program
// mailed: a cron script's one address is not new again after every boot.
TEST_F(DetectorTest, ARestartKeepsTheDomainsAProgramMailed) {
  const DetectorConfig cfg;
  Detector d(clock);
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(message(bot, {"ops.example"})), Evidence::MtaNewDomain),
                   cfg.mtaNewDomain);
  Detector restarted(clock);
  restarted.importState(d.exportState());
  clock.advance(hours(24));
  const Assessment again = restarted.submitted(message(bot, {"ops.example"}));
  EXPECT_DOUBLE_EQ(weightOf(again, Evidence::MtaNewDomain), 0);
  EXPECT_DOUBLE_EQ(weightOf(again, Evidence::MtaKnownDomains), cfg.mtaKnownDomains);
  ASSERT_EQ(restarted.exportState().size(), 1U);
  EXPECT_EQ(restarted.exportState()[0].mailedDomains.size(), 1U);
}

TEST_F(DetectorTest, CronMailingTheSameAddressDriftsDown) {
  Detector d(clock);
  for (int day = 0; day < 60; ++day) {
    const Assessment a = d.submitted(message(bot, {"ops.example"}));
    EXPECT_EQ(a.tier, Tier::None);
    clock.advance(hours(24));
  }
  EXPECT_DOUBLE_EQ(d.submitted(message(bot, {"ops.example"})).cusum, 0);
}

TEST_F(DetectorTest, NoDomainEvidenceForAListMailingOrAPersonsChoice) {
  const DetectorConfig cfg;
  Detector d(clock);
  SubmissionEvent list = message(bot, {"a.example", "b.example"});
  list.recipients = cfg.mtaListRecipients + 1;  // a mailing: the recipient backstops' case
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(list), Evidence::MtaNewDomain), 0);
  SubmissionEvent clicked = message(mua, {"new.example"});
  clicked.presence = {true, true, seconds(1)};  // sent just after a click
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(clicked), Evidence::MtaNewDomain), 0);
  clicked.domains = {"other.example"};
  clicked.presence = {true, true, seconds(30)};  // no input just before
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(clicked), Evidence::MtaNewDomain), cfg.mtaNewDomain);
}

TEST_F(DetectorTest, ManySubmissionsWithinAMinuteAreABurst) {
  const DetectorConfig cfg;
  Detector d(clock);
  for (unsigned i = 1; i < cfg.burstAttempts; ++i) {
    EXPECT_DOUBLE_EQ(weightOf(d.submitted(message(mua, {"same.example"})), Evidence::MtaBurst), 0);
    clock.advance(seconds(1));
  }
  EXPECT_DOUBLE_EQ(weightOf(d.submitted(message(mua, {"same.example"})), Evidence::MtaBurst),
                   cfg.manySessions);
}

TEST_F(DetectorTest, ADeclaredBulkSendCarriesNoSubmissionEvidence) {
  Detector d(clock);
  d.declareBulk(bot, 100, hours(2));
  const Assessment a = d.submitted(message(bot, {"a.example"}));
  EXPECT_TRUE(a.reasons.empty());
}

// A declared mailing over loopback TCP: the connections do not use up the declaration
// (the message is counted by its recipients), and its recipients do not trip the daily
// limits once the declaration is used up (its outcomes come later).
TEST_F(DetectorTest, ADeclaredMailingOverLoopbackStaysWithinItsDeclaration) {
  Detector d(clock);
  d.declareBulk(bot, 2000, hours(2));
  for (int b = 0; b < 4; ++b) {
    d.observe(local(bot));
    SubmissionEvent batch = message(bot, {"a.example"});
    batch.recipients = 500;
    EXPECT_EQ(d.submitted(batch).tier, Tier::None) << "batch " << b;
    clock.advance(seconds(5));
  }
  clock.advance(minutes(30));
  DeliveryEvent outcome;
  outcome.principal = bot;
  outcome.delivered = 500;
  EXPECT_EQ(d.delivered(outcome).tier, Tier::None);
}

}  // namespace
}  // namespace mailguard::detector
