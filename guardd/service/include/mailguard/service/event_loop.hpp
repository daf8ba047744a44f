#pragma once
// The one loop of guardd (STYLE.md section 6): epoll over a signalfd, timers, the
// D-Bus connection and the kernel's ring buffers. Everything it runs holds its work
// lock, which it lets go only while it waits; the one other thread that touches the
// state it drives, the verdict thread (verdict_thread.hpp), takes the same lock, so
// that state needs no locks of its own.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::service {

class EventLoop {
 public:
  using Callback = std::function<void(std::uint32_t events)>;
  // Called before every wait: may change the fd's interest (D-Bus does) and returns
  // how long the loop may sleep at most for its sake.
  using Prepare = std::function<std::optional<std::chrono::milliseconds>()>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Result<void> add(int fd, std::uint32_t events, Callback cb);
  Result<void> modify(int fd, std::uint32_t events);
  void remove(int fd);
  // A prepare hook; returns a handle for removePrepare.
  int addPrepare(Prepare p);
  void removePrepare(int handle);
  // Runs `cb` after every wait that ended with no fd ready (a timeout): work that may
  // wait until nothing else does. Returns a handle for removeIdle.
  int addIdle(std::function<void()> cb);
  void removeIdle(int handle) { idle_.erase(handle); }
  // Runs `cb` every `period` until the loop ends.
  void every(std::chrono::milliseconds period, std::function<void()> cb);
  // Runs `task` on the loop thread soon; callable from any thread (the store writer
  // reports back through it). Tasks posted after the loop ended never run.
  void post(std::function<void()> task);

  // Runs until stop(); an error only when epoll itself fails.
  Result<void> run();
  void stop() { stopping_ = true; }

  // For another thread: the lock everything the loop runs holds (held until the returned
  // lock goes). Not from the loop's own callbacks: they hold it already.
  [[nodiscard]] std::unique_lock<std::mutex> lockWork() { return std::unique_lock(workMu_); }
  // The loop woke and waits for the work lock: a thread that holds it for rounds on end
  // lets it have it first.
  [[nodiscard]] bool wantsWork() const { return wantsWork_.load(std::memory_order_relaxed) != 0; }

 private:
  struct Timer {
    std::chrono::steady_clock::time_point due;
    std::chrono::milliseconds period;
    std::function<void()> cb;
  };
  void runPosted();

  Fd epfd_;
  Fd wakeFd_;  // eventfd: post() from another thread wakes the wait
  bool stopping_ = false;
  std::mutex postedMu_;
  std::mutex workMu_;
  std::atomic<int> wantsWork_{0};
  std::vector<std::function<void()>> posted_;
  std::map<int, Callback> callbacks_;
  std::map<int, Prepare> prepares_;
  std::map<int, std::function<void()>> idle_;
  std::vector<int> handles_;  // run()'s list of prepare hooks, kept to spare an allocation
  int nextPrepare_ = 1;
  std::vector<Timer> timers_;
};

}  // namespace mailguard::service
