#include "verdict_thread.hpp"

#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <system_error>

#include "mailguard/service/log.hpp"

namespace mailguard::service {

VerdictThread::VerdictThread(EventLoop& loop, int queueFd, std::function<bool()> drain)
    : loop_(loop),
      queueFd_(queueFd),
      drain_(std::move(drain)),
      stopFd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

VerdictThread::~VerdictThread() { stop(); }

Result<void> VerdictThread::start() {
  if (!stopFd_) {
    return systemError(
        std::string("Failed to create the verdict thread's eventfd: ") + std::strerror(errno),
        errno);
  }
  try {
    thread_ =
        std::thread([this, started = go_.get_future()]() mutable { run(std::move(started)); });
  } catch (const std::system_error& e) {
    return systemError(std::string("Failed to start the verdict thread: ") + e.what(),
                       e.code().value());
  }
  return {};
}

void VerdictThread::go() {
  if (std::exchange(released_, true)) return;
  go_.set_value(true);
}

void VerdictThread::stop() {
  if (!thread_.joinable()) return;
  if (!std::exchange(released_, true)) go_.set_value(false);
  stopping_ = true;
  const std::uint64_t one = 1;
  (void)!::write(stopFd_.get(), &one, sizeof one);
  thread_.join();
}

void VerdictThread::run(std::future<bool> started) {
  if (!started.get()) return;
  std::array<pollfd, 2> fds{pollfd{queueFd_, POLLIN, 0}, pollfd{stopFd_.get(), POLLIN, 0}};
  bool pollFailed = false;
  for (;;) {
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      // Unread, the queue fills and the kernel drops its SYNs: closed, not open. Said once.
      if (!std::exchange(pollFailed, true)) {
        log::error(std::string("verdict thread: failed to wait for the queue: ") +
                   std::strerror(errno));
      }
      fds[0].revents = 0;
      ::poll(&fds[1], 1, 100);
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    for (bool more = true; more && !stopping_;) {
      {
        const auto lock = loop_.lockWork();
        more = drain_();
      }
      // A flood fills batch after batch: the loop (D-Bus calls, timers, the records)
      // has its turn between them, as it had when the queue was read on it.
      while (more && loop_.wantsWork()) ::sched_yield();
    }
  }
}

}  // namespace mailguard::service
