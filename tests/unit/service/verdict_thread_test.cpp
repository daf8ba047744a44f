// The queue's own thread (verdict_thread.hpp) against a real EventLoop, with a pipe for
// the queue socket: it decides only once the loop runs, never while the loop's work does,
// lets the loop in between the batches of a flood, and stops.
#include "verdict_thread.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <thread>

namespace mailguard::service {
namespace {

using namespace std::chrono_literals;

class Pipe {
 public:
  Pipe() { EXPECT_EQ(::pipe2(fds_.data(), O_CLOEXEC | O_NONBLOCK), 0); }
  ~Pipe() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  [[nodiscard]] int readEnd() const { return fds_[0]; }
  void put() const { ASSERT_EQ(::write(fds_[1], "x", 1), 1); }
  // One "packet": true when one was there.
  [[nodiscard]] bool take() const {
    char c = 0;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  std::array<int, 2> fds_{-1, -1};
};

TEST(VerdictThread, DecidesOnlyOnceTheLoopLetsItAndNeverWhileTheLoopWorks) {
  EventLoop loop;
  Pipe queue;
  std::atomic<int> drained{0};
  std::atomic<bool> loopWorking{false};
  std::atomic<int> overlaps{0};
  VerdictThread thread(loop, queue.readEnd(), [&] {
    if (loopWorking) ++overlaps;
    while (queue.take()) ++drained;
    std::this_thread::sleep_for(200us);  // long enough for an overlap to show
    if (loopWorking) ++overlaps;
    return false;
  });
  ASSERT_TRUE(thread.start().has_value());
  queue.put();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(drained, 0) << "read before go(): set-up and the loop's owner are not done";

  loop.post([&] { thread.go(); });
  int rounds = 0;
  loop.every(1ms, [&] {
    loopWorking = true;
    queue.put();  // a SYN arrives while the loop works
    std::this_thread::sleep_for(300us);
    loopWorking = false;
    if (++rounds == 50) loop.stop();
  });
  ASSERT_TRUE(loop.run().has_value());
  thread.stop();
  EXPECT_GE(drained, 25) << "the thread read the queue while the loop ran";
  EXPECT_EQ(overlaps, 0) << "the thread decided while a loop callback ran";
}

TEST(VerdictThread, AFloodLetsTheLoopServeItsTimersAndStopEndsIt) {
  EventLoop loop;
  Pipe queue;
  queue.put();
  std::atomic<long> batches{0};
  // Every batch says more is waiting, as a 20,000 SYN/s flood does.
  VerdictThread thread(loop, queue.readEnd(), [&] {
    ++batches;
    // Busy, as deciding is: the thread never sleeps between batches.
    const auto until = std::chrono::steady_clock::now() + 50us;
    while (std::chrono::steady_clock::now() < until) {
    }
    return true;
  });
  ASSERT_TRUE(thread.start().has_value());
  loop.post([&] { thread.go(); });
  int ticks = 0;
  loop.every(2ms, [&] {
    if (++ticks == 20) loop.stop();
  });
  ASSERT_TRUE(loop.run().has_value());
  // A tick is due every 2 ms, 40 batches' worth: the loop waits for at most the batch
  // in hand. Without the thread letting it in, the loop waited for hundreds (a flood held
  // guardd's D-Bus calls and timers).
  EXPECT_LT(batches / ticks, 200) << batches << " batches for " << ticks << " ticks";
  EXPECT_GT(batches, 20);
  thread.stop();  // returns although every batch says there is more
  const long after = batches;
  std::this_thread::sleep_for(5ms);
  EXPECT_EQ(batches, after);
}

TEST(VerdictThread, StopsWithoutEverStarting) {
  EventLoop loop;
  Pipe queue;
  queue.put();
  bool drained = false;
  {
    VerdictThread thread(loop, queue.readEnd(), [&] {
      drained = true;
      return false;
    });
    ASSERT_TRUE(thread.start().has_value());
    // The loop never ran: its owner failed to set up and shuts down.
  }
  EXPECT_FALSE(drained);
}

}  // namespace
}  // namespace mailguard::service
