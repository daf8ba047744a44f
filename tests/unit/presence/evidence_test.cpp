#include <gtest/gtest.h>

#include "mailguard/presence/presence.hpp"

namespace mailguard::presence {
namespace {

using std::chrono::seconds;

const MonoTime kNow = MonoTime{std::chrono::hours{1000}};

Session seatSession(std::uint32_t uid, bool active) {
  Session s;
  s.id = "c" + std::to_string(uid);
  s.uid = uid;
  s.seat = "seat0";
  s.sessionClass = "user";
  s.active = active;
  return s;
}

TEST(PresenceEvidence, UnknownWhenLogindDidNotAnswer) {
  const auto e = evidenceFrom(false, {seatSession(1000, true)}, kNow - seconds(1), 1000, kNow);
  EXPECT_FALSE(e.known);
  EXPECT_FALSE(e.activeSession);
  EXPECT_FALSE(e.sinceInput.has_value());
}

TEST(PresenceEvidence, CreditsInputToTheActiveSeatUserOnly) {
  const std::vector<Session> sessions{seatSession(1000, true), seatSession(1001, false)};
  const auto owner = evidenceFrom(true, sessions, kNow - seconds(2), 1000, kNow);
  EXPECT_TRUE(owner.known);
  EXPECT_TRUE(owner.activeSession);
  ASSERT_TRUE(owner.sinceInput.has_value());
  EXPECT_EQ(*owner.sinceInput, seconds(2));

  const auto other = evidenceFrom(true, sessions, kNow - seconds(2), 1001, kNow);
  EXPECT_TRUE(other.known);
  EXPECT_FALSE(other.activeSession);
  EXPECT_FALSE(other.sinceInput.has_value());
}

TEST(PresenceEvidence, SessionsOffASeatOrNotOfClassUserDoNotCount) {
  auto ssh = seatSession(1000, true);
  ssh.seat.clear();
  auto greeter = seatSession(1001, true);
  greeter.sessionClass = "greeter";
  EXPECT_FALSE(evidenceFrom(true, {ssh}, kNow, 1000, kNow).activeSession);
  EXPECT_FALSE(evidenceFrom(true, {greeter}, kNow, 1001, kNow).activeSession);
}

TEST(PresenceEvidence, InputFromTheFutureCountsAsNow) {
  const auto e = evidenceFrom(true, {seatSession(1000, true)}, kNow + seconds(3), 1000, kNow);
  ASSERT_TRUE(e.sinceInput.has_value());
  EXPECT_EQ(*e.sinceInput, detector::Duration::zero());
}

TEST(PresenceEvidence, IdleSessionWithoutInputReaderGivesTimeSinceIdle) {
  auto s = seatSession(1000, true);
  s.idle = true;
  s.idleSince = kNow - seconds(600);
  const auto e = evidenceFrom(true, {s}, std::nullopt, 1000, kNow);
  ASSERT_TRUE(e.sinceInput.has_value());
  EXPECT_EQ(*e.sinceInput, seconds(600));
}

TEST(PresenceEvidence, NotIdleWithoutInputReaderLeavesSinceInputUnknown) {
  const auto e = evidenceFrom(true, {seatSession(1000, true)}, std::nullopt, 1000, kNow);
  EXPECT_TRUE(e.activeSession);
  EXPECT_FALSE(e.sinceInput.has_value());
}

TEST(PresenceEvidence, RealInputIsPreferredOverLogindsIdleTime) {
  auto s = seatSession(1000, true);
  s.idle = true;
  s.idleSince = kNow - seconds(600);
  const auto e = evidenceFrom(true, {s}, kNow - seconds(4), 1000, kNow);
  ASSERT_TRUE(e.sinceInput.has_value());
  EXPECT_EQ(*e.sinceInput, seconds(4));
}

}  // namespace
}  // namespace mailguard::presence
