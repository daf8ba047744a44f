// mg-connect: a stand-in mail client for integration tests. Connects to HOST:PORT,
// optionally sends a line, and prints one JSON line with the outcome and how long
// connect() took, so tests can tell "refused at once" from "held until timeout".
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

int connectOnce(const std::string& host, int port, int timeoutMs, int& err) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    len = sizeof *v6;
  } else {
    std::fprintf(stderr, "mg-connect: not an address: %s\n", host.c_str());
    std::exit(2);
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
    err = 0;
    return fd;
  }
  if (errno != EINPROGRESS) {
    err = errno;
    close(fd);
    return -1;
  }
  pollfd p{fd, POLLOUT, 0};
  const int n = poll(&p, 1, timeoutMs);
  if (n == 0) {
    err = ETIMEDOUT;
    close(fd);
    return -1;
  }
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
  if (soerr != 0) {
    err = soerr;
    close(fd);
    return -1;
  }
  err = 0;
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: mg-connect HOST PORT [TIMEOUT_MS] [COUNT] [SEND]\n"
                 "  COUNT > 1 makes COUNT sequential connections (one JSON line each)\n");
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]);
  const int timeoutMs = argc > 3 ? std::atoi(argv[3]) : 3000;
  const int count = argc > 4 ? std::atoi(argv[4]) : 1;
  const std::string send = argc > 5 ? argv[5] : "";
  int failures = 0;
  for (int i = 0; i < count; ++i) {
    const auto start = std::chrono::steady_clock::now();
    int err = 0;
    const int fd = connectOnce(host, port, timeoutMs, err);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (fd >= 0 && !send.empty()) (void)!write(fd, send.data(), send.size());
    std::printf(
        "{\"pid\": %d, \"connected\": %s, \"errno\": %d, \"error\": \"%s\", \"ms\": %.3f}\n",
        getpid(), fd >= 0 ? "true" : "false", err, err ? std::strerror(err) : "", ms);
    std::fflush(stdout);
    if (fd >= 0)
      close(fd);
    else
      ++failures;
  }
  return failures == 0 ? 0 : 1;
}
