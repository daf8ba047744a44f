#pragma once
#include <chrono>
#include <string>

namespace mailguard {

using TimePoint = std::chrono::system_clock::time_point;

// Time is injected so that windows and retention can be tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual TimePoint now() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] TimePoint now() const override { return std::chrono::system_clock::now(); }
};

class FakeClock final : public Clock {
 public:
  explicit FakeClock(TimePoint start = TimePoint{std::chrono::seconds{1'700'000'000}})
      : now_(start) {}
  [[nodiscard]] TimePoint now() const override { return now_; }
  void advance(std::chrono::nanoseconds d) {
    now_ += std::chrono::duration_cast<TimePoint::duration>(d);
  }

 private:
  TimePoint now_;
};

// RFC 3339 in UTC with microseconds, the one textual time format of the project.
std::string formatRfc3339(TimePoint t);

}  // namespace mailguard
