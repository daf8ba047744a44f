#include "mailguard/rules/clock.hpp"

#include <gtest/gtest.h>

namespace mailguard {
namespace {

using namespace std::chrono;

TEST(FormatRfc3339, WritesUtcWithMicroseconds) {
  // 2026-11-26T21:31:56Z is 1795728716 seconds after the epoch.
  const TimePoint t = TimePoint{seconds{1'795'728'716}} + microseconds{123'456};
  EXPECT_EQ(formatRfc3339(t), "2026-11-26T21:31:56.123456Z");
}

TEST(FormatRfc3339, WritesTheEpochWithZeroFraction) {
  EXPECT_EQ(formatRfc3339(TimePoint{}), "1970-01-01T00:00:00.000000Z");
}

TEST(FormatRfc3339, TruncatesNanosecondsRatherThanRounding) {
  const TimePoint t = TimePoint{seconds{1'700'000'000}} +
                      duration_cast<TimePoint::duration>(nanoseconds{999'999'999});
  EXPECT_EQ(formatRfc3339(t), "2023-11-14T22:13:20.999999Z");
}

TEST(FormatRfc3339, HandlesLeapDays) {
  // 2024-02-29T23:59:59Z
  EXPECT_EQ(formatRfc3339(TimePoint{seconds{1'709'251'199}}), "2024-02-29T23:59:59.000000Z");
}

TEST(FormatRfc3339, FloorsInstantsBeforeTheEpoch) {
  EXPECT_EQ(formatRfc3339(TimePoint{} - microseconds{1}), "1969-12-31T23:59:59.999999Z");
}

TEST(FakeClock, AdvancesOnlyWhenTold) {
  FakeClock clock;
  const TimePoint start = clock.now();
  EXPECT_EQ(clock.now(), start);
  clock.advance(seconds{90});
  EXPECT_EQ(clock.now() - start, seconds{90});
  EXPECT_EQ(formatRfc3339(start), "2023-11-14T22:13:20.000000Z");
}

TEST(FakeClock, AdvanceMovesTheWallAndMonotonicSidesTogether) {
  FakeClock clock;
  const TimePoint wall = clock.now();
  const MonoTime mono = clock.monotonic();
  clock.advance(milliseconds{1500});
  EXPECT_EQ(clock.now() - wall, milliseconds{1500});
  EXPECT_EQ(clock.monotonic() - mono, milliseconds{1500});
}

TEST(FakeClock, WallClockJumpLeavesTheMonotonicSideAlone) {
  FakeClock clock;
  const TimePoint wall = clock.now();
  const MonoTime mono = clock.monotonic();
  clock.jumpWallClock(-hours{2});  // the owner sets the date back
  EXPECT_EQ(wall - clock.now(), hours{2});
  EXPECT_EQ(clock.monotonic(), mono);
  clock.jumpWallClock(hours{24});
  EXPECT_EQ(clock.monotonic(), mono);
}

TEST(FakeClock, MonotonicSideStartsApartFromTheWallClock) {
  // Like CLOCK_MONOTONIC (time since boot): equal starts would hide code that mixes them.
  const FakeClock clock;
  EXPECT_EQ(clock.monotonic(), FakeClock::kMonotonicStart);
  EXPECT_NE(clock.monotonic().time_since_epoch(),
            duration_cast<MonoTime::duration>(clock.now().time_since_epoch()));
}

TEST(SystemClock, MonotonicSideIsTheSteadyClock) {
  const SystemClock clock;
  const MonoTime before = std::chrono::steady_clock::now();
  const MonoTime read = clock.monotonic();
  const MonoTime after = std::chrono::steady_clock::now();
  EXPECT_LE(before, read);
  EXPECT_LE(read, after);
}

}  // namespace
}  // namespace mailguard
