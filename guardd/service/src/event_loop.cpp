#include "mailguard/service/event_loop.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string>

namespace mailguard::service {

EventLoop::EventLoop()
    : epfd_(epoll_create1(EPOLL_CLOEXEC)), wakeFd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  // Without its wake-up fd the loop cannot run: run() reports it.
  if (epfd_ && wakeFd_ && !add(wakeFd_.get(), EPOLLIN, [this](std::uint32_t) { runPosted(); })) {
    wakeFd_.reset();
  }
}

EventLoop::~EventLoop() = default;

void EventLoop::post(std::function<void()> task) {
  {
    const std::lock_guard lock(postedMu_);
    posted_.push_back(std::move(task));
  }
  const std::uint64_t one = 1;
  // EAGAIN: the counter is already non-zero, so the loop wakes anyway.
  (void)!::write(wakeFd_.get(), &one, sizeof one);
}

void EventLoop::runPosted() {
  std::uint64_t count = 0;
  (void)!::read(wakeFd_.get(), &count, sizeof count);
  std::vector<std::function<void()>> tasks;
  {
    const std::lock_guard lock(postedMu_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) {
    if (stopping_) break;
    task();
  }
}

Result<void> EventLoop::add(int fd, std::uint32_t events, Callback cb) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    return systemError(std::string("Failed to watch fd: ") + std::strerror(errno), errno);
  }
  callbacks_[fd] = std::move(cb);
  return {};
}

Result<void> EventLoop::modify(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (epoll_ctl(epfd_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) {
    return systemError(std::string("Failed to change watch of fd: ") + std::strerror(errno), errno);
  }
  return {};
}

void EventLoop::remove(int fd) {
  epoll_ctl(epfd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

int EventLoop::addPrepare(Prepare p) {
  const int handle = nextPrepare_++;
  prepares_[handle] = std::move(p);
  return handle;
}

void EventLoop::removePrepare(int handle) { prepares_.erase(handle); }

int EventLoop::addIdle(std::function<void()> cb) {
  const int handle = nextPrepare_++;
  idle_[handle] = std::move(cb);
  return handle;
}

void EventLoop::every(std::chrono::milliseconds period, std::function<void()> cb) {
  timers_.push_back(Timer{std::chrono::steady_clock::now() + period, period, std::move(cb)});
}

Result<void> EventLoop::run() {
  if (!epfd_ || !wakeFd_) {
    return systemError(std::string("Failed to create the event loop: ") + std::strerror(errno),
                       errno);
  }
  std::array<epoll_event, 64> events{};
  std::unique_lock work(workMu_);
  while (!stopping_) {
    auto wait = std::chrono::milliseconds(1000);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& t : timers_) {
      wait = std::min(wait,
                      std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(t.due - now)));
    }
    // By handle: a prepare hook may remove itself (a lost D-Bus connection does).
    handles_.clear();
    for (const auto& entry : prepares_) handles_.push_back(entry.first);
    for (const int handle : handles_) {
      const auto it = prepares_.find(handle);
      if (it == prepares_.end()) continue;
      auto prepare = it->second;
      if (auto w = prepare()) wait = std::min(wait, *w);
    }
    work.unlock();
    const int n = epoll_wait(epfd_.get(), events.data(), static_cast<int>(events.size()),
                             static_cast<int>(wait.count()));
    wantsWork_.fetch_add(1, std::memory_order_relaxed);
    work.lock();
    wantsWork_.fetch_sub(1, std::memory_order_relaxed);
    if (n < 0) {
      if (errno == EINTR) continue;
      return systemError(std::string("Failed to wait for events: ") + std::strerror(errno), errno);
    }
    if (n == 0) {
      for (auto it = idle_.begin(); it != idle_.end() && !stopping_;) {
        auto cb = (it++)->second;  // it may remove itself
        cb();
      }
    }
    for (int i = 0; i < n && !stopping_; ++i) {
      const auto it = callbacks_.find(events[static_cast<std::size_t>(i)].data.fd);
      if (it == callbacks_.end()) continue;
      auto cb = it->second;  // the callback may remove its own fd
      cb(events[static_cast<std::size_t>(i)].events);
    }
    const auto after = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < timers_.size() && !stopping_; ++i) {
      if (timers_[i].due <= after) {
        timers_[i].due = after + timers_[i].period;
        auto cb = timers_[i].cb;  // every() from inside a timer may grow the vector
        cb();
      }
    }
  }
  return {};
}

}  // namespace mailguard::service
