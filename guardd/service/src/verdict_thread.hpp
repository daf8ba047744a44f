#pragma once
// The queue socket's own thread. A queued SYN's program waits in connect() for its
// verdict; decided on the loop, each wake-up also carried the loop's own turn (its timers,
// prepare hooks, the kernel's events, the deferred records), and the program, woken by the
// verdict, waited for that CPU or for an idle one to wake (tests/bench/README.md, "A thread
// for the verdicts"). This thread only reads the queue and decides, holding the loop's work
// lock while it does (EventLoop::lockWork), so what it touches is never touched by both at
// once; everything else stays on the loop.
#include <atomic>
#include <functional>
#include <future>
#include <thread>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/result.hpp"
#include "mailguard/service/event_loop.hpp"

namespace mailguard::service {

class VerdictThread {
 public:
  // `drain` decides what the queue holds, one batch at most, with the work lock held;
  // true when more may be waiting.
  VerdictThread(EventLoop& loop, int queueFd, std::function<bool()> drain);
  ~VerdictThread();
  VerdictThread(const VerdictThread&) = delete;
  VerdictThread& operator=(const VerdictThread&) = delete;

  // Starts the thread, which waits for go() before it reads anything: what its caller
  // and the loop's owner still set up before the loop runs is not theirs to share.
  Result<void> start();
  // From the loop (a posted task): reading may begin.
  void go();
  // Ends the thread (idempotent). Not while holding the work lock: the thread may wait
  // for it to finish its batch.
  void stop();

 private:
  void run(std::future<bool> started);

  EventLoop& loop_;
  int queueFd_;
  std::function<bool()> drain_;
  Fd stopFd_;                          // eventfd: stop() wakes the thread's poll
  std::atomic<bool> stopping_{false};  // and ends a flood's batches
  std::promise<bool> go_;
  bool released_ = false;  // go_ has its value
  std::thread thread_;
};

}  // namespace mailguard::service
