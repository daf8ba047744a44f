#pragma once
// When the kernel queue is overloaded. A bot whose SYNs guardd
// answers with a reset opens its next connection at once, so it refills every slot a
// verdict frees and keeps the one FIFO queue full: an approved program's SYN then finds
// no room and is dropped on every retry. While the queue is under pressure guardd
// drops the SYNs of denied and quarantined programs instead of resetting them (a
// tarpit): the bot waits for its own connect timeout before it tries again, and the
// freed slots go to whoever comes next. A denied program then hangs instead of failing
// fast, only while the queue overflows.
// Private to guardd/service; pure, so tested with made-up times.
#include <chrono>
#include <cstdint>

namespace mailguard::service {

class QueuePressure {
 public:
  using Clock = std::chrono::steady_clock;
  // Pressure lasts `hold` after the last sign of it, so the tarpit does not flap on and
  // off with each burst of a bot that is still running.
  explicit QueuePressure(Clock::duration hold = std::chrono::seconds(10)) : hold_(hold) {}

  // The kernel's counters for the queue: packets dropped so far (queue full or socket
  // buffer full) and packets waiting for a verdict now, out of `maxLength`. A drop since
  // the last call, or a queue more than half full, is pressure.
  void observe(std::uint64_t dropped, std::uint32_t waiting, std::uint32_t maxLength,
               Clock::time_point now) {
    const bool dropping = seen_ && dropped > lastDropped_;
    const bool filling = maxLength > 0 && std::uint64_t{waiting} * 2 > maxLength;
    if (dropping || filling) until_ = now + hold_;
    lastDropped_ = dropped;
    seen_ = true;
  }

  [[nodiscard]] bool overloaded(Clock::time_point now) const { return now < until_; }

 private:
  Clock::duration hold_;
  Clock::time_point until_{};
  std::uint64_t lastDropped_ = 0;
  bool seen_ = false;
};

}  // namespace mailguard::service
