#include "mailguard/service/event_loop.hpp"

#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace mailguard::service {
namespace {

class EventFd {
 public:
  EventFd() : fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~EventFd() { close(fd_); }
  EventFd(const EventFd&) = delete;
  EventFd& operator=(const EventFd&) = delete;
  [[nodiscard]] int fd() const { return fd_; }
  void signal() const {
    const std::uint64_t one = 1;
    ASSERT_EQ(write(fd_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
  void drain() const {
    std::uint64_t v = 0;
    (void)!read(fd_, &v, sizeof v);
  }

 private:
  int fd_;
};

TEST(EventLoop, CallsTheCallbackOfAReadyFdAndStopsWhenAsked) {
  EventLoop loop;
  EventFd ev;
  int calls = 0;
  ASSERT_TRUE(loop.add(ev.fd(), EPOLLIN,
                       [&](std::uint32_t events) {
                         EXPECT_TRUE(events & EPOLLIN);
                         ev.drain();
                         if (++calls == 1) loop.stop();
                       })
                  .has_value());
  ev.signal();
  ASSERT_TRUE(loop.run().has_value());
  EXPECT_EQ(calls, 1);
}

TEST(EventLoop, RunsTimersAndPrepareHooksEachRound) {
  EventLoop loop;
  int ticks = 0;
  int prepares = 0;
  loop.addPrepare([&]() -> std::optional<std::chrono::milliseconds> {
    ++prepares;
    return std::chrono::milliseconds(1);
  });
  loop.every(std::chrono::milliseconds(1), [&] {
    if (++ticks == 3) loop.stop();
  });
  ASSERT_TRUE(loop.run().has_value());
  EXPECT_EQ(ticks, 3);
  EXPECT_GE(prepares, 3);
}

TEST(EventLoop, ACallbackMayRemoveItsOwnFd) {
  EventLoop loop;
  EventFd a;
  EventFd b;
  int aCalls = 0;
  ASSERT_TRUE(loop.add(a.fd(), EPOLLIN,
                       [&](std::uint32_t) {
                         ++aCalls;
                         loop.remove(a.fd());
                       })
                  .has_value());
  ASSERT_TRUE(loop.add(b.fd(), EPOLLIN,
                       [&](std::uint32_t) {
                         b.drain();
                         loop.stop();
                       })
                  .has_value());
  a.signal();  // stays readable: only removal keeps it from firing again
  loop.every(std::chrono::milliseconds(5), [&] { b.signal(); });
  ASSERT_TRUE(loop.run().has_value());
  EXPECT_EQ(aCalls, 1);
}

TEST(EventLoop, RefusesAnFdThatCannotBeWatched) {
  EventLoop loop;
  EXPECT_FALSE(loop.add(-1, EPOLLIN, [](std::uint32_t) {}).has_value());
}

}  // namespace
}  // namespace mailguard::service
