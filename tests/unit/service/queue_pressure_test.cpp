#include "queue_pressure.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace mailguard::service {
namespace {

using namespace std::chrono_literals;
const auto t0 = QueuePressure::Clock::time_point{} + 1h;

TEST(QueuePressure, QuietQueueIsNotOverloaded) {
  QueuePressure p(10s);
  p.observe(0, 0, 64, t0);
  p.observe(0, 10, 64, t0 + 100ms);
  EXPECT_FALSE(p.overloaded(t0 + 100ms));
}

TEST(QueuePressure, DropsSinceTheLastLookAreOverloadForTheHoldTime) {
  QueuePressure p(10s);
  p.observe(0, 0, 64, t0);
  p.observe(5, 0, 64, t0 + 1s);
  EXPECT_TRUE(p.overloaded(t0 + 1s));
  EXPECT_TRUE(p.overloaded(t0 + 10s));
  // No new drops: the pressure ends `hold` after the last one.
  p.observe(5, 0, 64, t0 + 2s);
  EXPECT_TRUE(p.overloaded(t0 + 10s + 999ms));
  EXPECT_FALSE(p.overloaded(t0 + 11s));
}

TEST(QueuePressure, DropsBeforeTheFirstLookDoNotCount) {
  // guardd starts with whatever the counters say: only increases are news.
  QueuePressure p(10s);
  p.observe(1000, 0, 64, t0);
  EXPECT_FALSE(p.overloaded(t0));
}

TEST(QueuePressure, AQueueMoreThanHalfFullIsOverload) {
  QueuePressure p(10s);
  p.observe(0, 32, 64, t0);
  EXPECT_FALSE(p.overloaded(t0));
  p.observe(0, 33, 64, t0 + 1s);
  EXPECT_TRUE(p.overloaded(t0 + 1s));
  EXPECT_FALSE(p.overloaded(t0 + 11s));
}

TEST(QueuePressure, EachSignRestartsTheHold) {
  QueuePressure p(10s);
  p.observe(0, 0, 64, t0);
  p.observe(1, 0, 64, t0 + 1s);
  p.observe(2, 0, 64, t0 + 8s);
  EXPECT_TRUE(p.overloaded(t0 + 17s));
  EXPECT_FALSE(p.overloaded(t0 + 18s));
}

}  // namespace
}  // namespace mailguard::service
