#pragma once
#include <chrono>
#include <string>

namespace mailguard {

using TimePoint = std::chrono::system_clock::time_point;
// For intervals (windows, timeouts, "at most once per second"): CLOCK_MONOTONIC does not
// jump when the wall clock is set (NTP step, the owner changing the date), so a window
// measured on it neither stalls nor expires early.
using MonoTime = std::chrono::steady_clock::time_point;

// Time is injected so that windows and retention can be tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time: what records and the owner see.
  [[nodiscard]] virtual TimePoint now() const = 0;
  // Monotonic time: what intervals are measured with.
  [[nodiscard]] virtual MonoTime monotonic() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override { return std::chrono::system_clock::now(); }
  [[nodiscard]] MonoTime monotonic() const override { return std::chrono::steady_clock::now(); }
};

class FakeClock final : public Clock {
 public:
  // The monotonic side starts at an arbitrary point unrelated to the wall clock, as
  // CLOCK_MONOTONIC does (it counts from boot), so no test can rely on the two agreeing.
  static constexpr MonoTime kMonotonicStart = MonoTime{std::chrono::hours{1000}};

  explicit FakeClock(TimePoint start = TimePoint{std::chrono::seconds{1'700'000'000}})
      : now_(start) {}
  [[nodiscard]] TimePoint now() const override { return now_; }
  [[nodiscard]] MonoTime monotonic() const override { return mono_; }
  // Time passes: both sides move.
  void advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
    mono_ += std::chrono::duration_cast<MonoTime::duration>(d);
  }
  // The wall clock is set (a step, forwards or backwards): only now() moves.
  void jumpWallClock(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
  }

 private:
  TimePoint now_;
  MonoTime mono_ = kMonotonicStart;
};

// RFC 3339 in UTC with microseconds, the one textual time format of the project.
std::string formatRfc3339(TimePoint t);

}  // namespace mailguard
