// mg-flood: a stand-in spam bot for the overload tests. Opens non-blocking
// TCP connections to distinct addresses 127.1.0.2, 127.1.0.3, ... on one port, keeping
// INFLIGHT of them pending, for DURATION_MS; a connection not decided within GIVEUP_MS
// (a held or kernel-dropped SYN) is abandoned, as a bot would. Prints one JSON line
// with what happened to its connections. Python cannot open sockets fast enough to
// outrun guardd.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t gStop = 0;

void onSignal(int) { gStop = 1; }

// 127.1.0.2 onwards, skipping .0 and .255 in the last byte; wraps inside 127/8.
std::uint32_t nextAddress(std::uint32_t addr) {
  for (;;) {
    ++addr;
    if ((addr >> 24) != 127U) addr = (127U << 24) | (1U << 16) | 1U;
    const auto last = addr & 0xffU;
    if (last != 0 && last != 255) return addr;
  }
}

// Close without lingering in TIME_WAIT or sending a FIN to a server that never answered.
void closeHard(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: mg-flood PORT DURATION_MS INFLIGHT [GIVEUP_MS]\n"
                 "  connects to 127.1.0.2, 127.1.0.3, ... on PORT, INFLIGHT at a time\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const auto duration = std::chrono::milliseconds(std::atol(argv[2]));
  const auto inflight = static_cast<std::size_t>(std::atol(argv[3]));
  const auto giveUp = std::chrono::milliseconds(argc > 4 ? std::atol(argv[4]) : 300);
  if (port <= 0 || port > 65535 || inflight == 0) {
    std::fprintf(stderr, "mg-flood: bad PORT or INFLIGHT\n");
    return 2;
  }
  std::signal(SIGTERM, onSignal);
  std::signal(SIGINT, onSignal);
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = std::min<rlim_t>(nofile.rlim_max, inflight + 64);
  setrlimit(RLIMIT_NOFILE, &nofile);

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    std::perror("mg-flood: epoll_create1");
    return 1;
  }
  std::map<int, Clock::time_point> pending;
  std::uint32_t addr = (127U << 24) | (1U << 16) | 1U;
  std::uint64_t started = 0, connected = 0, refused = 0, timedOut = 0, otherErrors = 0;
  int lastOtherError = 0;
  std::vector<epoll_event> events(512);
  const auto t0 = Clock::now();
  while (gStop == 0) {
    const auto now = Clock::now();
    if (now - t0 >= duration) break;
    while (pending.size() < inflight) {
      const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) {
        ++otherErrors;
        lastOtherError = errno;
        break;
      }
      addr = nextAddress(addr);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<std::uint16_t>(port));
      sa.sin_addr.s_addr = htonl(addr);
      ++started;
      if (connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        ++connected;
        closeHard(fd);
        continue;
      }
      if (errno != EINPROGRESS) {
        if (errno == ECONNREFUSED) {
          ++refused;
        } else {
          ++otherErrors;
          lastOtherError = errno;
        }
        close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      pending.emplace(fd, now);
    }
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 5);
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        ++connected;
      } else if (err == ECONNREFUSED || err == ECONNRESET) {
        ++refused;
      } else {
        ++otherErrors;
        lastOtherError = err;
      }
      pending.erase(fd);
      closeHard(fd);
    }
    const auto cutoff = Clock::now() - giveUp;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second < cutoff) {
        ++timedOut;
        closeHard(it->first);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  for (const auto& [fd, since] : pending) closeHard(fd);
  close(ep);
  std::printf(
      "{\"seconds\": %.3f, \"started\": %llu, \"connected\": %llu, \"refused\": %llu, "
      "\"timed_out\": %llu, \"other_errors\": %llu, \"last_other_error\": \"%s\", "
      "\"started_per_s\": %.0f}\n",
      seconds, static_cast<unsigned long long>(started), static_cast<unsigned long long>(connected),
      static_cast<unsigned long long>(refused), static_cast<unsigned long long>(timedOut),
      static_cast<unsigned long long>(otherErrors),
      lastOtherError != 0 ? std::strerror(lastOtherError) : "",
      seconds > 0 ? static_cast<double>(started) / seconds : 0.0);
  return 0;
}
