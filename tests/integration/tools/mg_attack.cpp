// mg-attack: the identity attacks (a copy, a rename, a shared socket), as one small program the
// integration tests copy, rename, replace and delete (test_identity_attacks.py).
// Every mode prints JSON lines on stdout, flushed at once, so a test can follow it.
//
//   wait HOST PORT TIMEOUT_MS        print {"pid", "ready"}, then connect once per line
//                                    read on stdin (same JSON as mg-connect); EOF ends
//   fire HOST PORT                   non-blocking connect(), print, _exit at once
//   fork-fire HOST PORT              a child fires and exits; the parent stays until EOF
//                                    on stdin, so it is alive while guardd decides
//   self-delete HOST PORT TIMEOUT_MS unlink our own executable, then connect once
//   inherit HOST PORT TIMEOUT_MS PROGRAM [ARG...]
//                                    create a socket, start PROGRAM holding it (fd
//                                    inherited over exec), connect once it runs
//   connect-exec HOST PORT PROGRAM [ARG...]
//                                    connect() (non-blocking: the SYN is held), print,
//                                    then exec PROGRAM, which inherits the socket: its
//                                    SYN retries leave as PROGRAM's
//   from-port SRCPORT HOST PORT TIMEOUT_MS
//                                    connect once from source port SRCPORT
//                                    (SO_REUSEADDR), as mg-connect prints
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

namespace {

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

Target parseTarget(const std::string& host, int port) {
  Target t;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&t.addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&t.addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    t.len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    t.family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    t.len = sizeof *v6;
  } else {
    std::fprintf(stderr, "mg-attack: not an address: %s\n", host.c_str());
    std::exit(2);
  }
  return t;
}

// Starts a non-blocking connect() on `fd`: 0 when it is under way or done, else errno.
int startConnect(int fd, const Target& t) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&t.addr), t.len) == 0) return 0;
  return errno == EINPROGRESS ? 0 : errno;
}

// Waits for a connect() started on `fd`: 0 when connected, else errno (ETIMEDOUT).
int finishConnect(int fd, int timeoutMs) {
  pollfd p{fd, POLLOUT, 0};
  const int n = poll(&p, 1, timeoutMs);
  if (n == 0) return ETIMEDOUT;
  if (n < 0) return errno;
  int soerr = 0;
  socklen_t sl = sizeof soerr;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) return errno;
  return soerr;
}

void printResult(int err, double ms, const std::string& extra = "") {
  std::printf(
      "{\"pid\": %d, \"connected\": %s, \"errno\": %d, \"error\": \"%s\", \"ms\": %.3f%s}\n",
      getpid(), err == 0 ? "true" : "false", err, err ? std::strerror(err) : "", ms, extra.c_str());
  std::fflush(stdout);
}

int connectOnce(const Target& t, int timeoutMs, const std::string& extra = "") {
  const auto start = std::chrono::steady_clock::now();
  const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    printResult(errno, 0, extra);
    return 1;
  }
  int err = startConnect(fd, t);
  if (err == 0) err = finishConnect(fd, timeoutMs);
  close(fd);
  printResult(
      err,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count(),
      extra);
  return err == 0 ? 0 : 1;
}

// The SYN leaves with connect(); nothing waits for the answer.
int fire(const Target& t) {
  const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  return startConnect(fd, t);
}

int modeWait(const Target& t, int timeoutMs) {
  std::printf("{\"pid\": %d, \"ready\": true}\n", getpid());
  std::fflush(stdout);
  std::string line;
  int failures = 0;
  while (std::getline(std::cin, line)) failures += connectOnce(t, timeoutMs);
  return failures == 0 ? 0 : 1;
}

int modeFire(const Target& t) {
  const int err = fire(t);
  std::printf("{\"pid\": %d, \"fired\": %s, \"errno\": %d}\n", getpid(),
              err == 0 ? "true" : "false", err);
  std::fflush(stdout);
  _exit(err == 0 ? 0 : 1);  // no clean-up: the socket dies with the process, right now
}

int modeForkFire(const Target& t) {
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("mg-attack: fork");
    return 1;
  }
  if (child == 0) modeFire(t);
  int status = 0;
  waitpid(child, &status, 0);
  std::printf("{\"pid\": %d, \"child\": %d, \"child_exit\": %d}\n", getpid(), child,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int modeSelfDelete(const Target& t, int timeoutMs) {
  std::vector<char> self(PATH_MAX + 1, '\0');
  const ssize_t n = readlink("/proc/self/exe", self.data(), PATH_MAX);
  if (n <= 0 || unlink(self.data()) != 0) {
    std::perror("mg-attack: cannot delete my own executable");
    return 1;
  }
  return connectOnce(t, timeoutMs, ", \"deleted\": \"" + std::string(self.data()) + "\"");
}

int modeInherit(const Target& t, int timeoutMs, char** program) {
  // No SOCK_CLOEXEC: the socket is meant to survive the exec of `program`.
  const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    std::perror("mg-attack: socket");
    return 1;
  }
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) {
    std::perror("mg-attack: pipe");
    return 1;
  }
  std::fflush(stdout);
  const pid_t child = fork();
  if (child < 0) {
    std::perror("mg-attack: fork");
    return 1;
  }
  if (child == 0) {
    // The program's stdout is the pipe: its first line says it runs (exec done).
    dup2(ready[1], STDOUT_FILENO);
    execv(program[0], program);
    std::perror("mg-attack: exec");
    _exit(127);
  }
  close(ready[1]);
  char c = 0;
  while (read(ready[0], &c, 1) == 1 && c != '\n') {
  }
  const auto start = std::chrono::steady_clock::now();
  int err = startConnect(fd, t);
  if (err == 0) err = finishConnect(fd, timeoutMs);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  printResult(err, ms, ", \"holder\": " + std::to_string(child));
  kill(child, SIGTERM);
  waitpid(child, nullptr, 0);
  close(fd);
  return err == 0 ? 0 : 1;
}

}  // namespace

int modeConnectExec(const Target& t, char** program) {
  // No SOCK_CLOEXEC: the socket is meant to survive the exec.
  const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    std::perror("mg-attack: socket");
    return 1;
  }
  const int err = startConnect(fd, t);
  std::printf("{\"pid\": %d, \"fired\": %s, \"errno\": %d, \"fd\": %d}\n", getpid(),
              err == 0 ? "true" : "false", err, fd);
  std::fflush(stdout);
  execv(program[0], program);
  std::perror("mg-attack: exec");
  return 127;
}

int modeFromPort(int srcPort, const Target& t, int timeoutMs) {
  const auto start = std::chrono::steady_clock::now();
  const int fd = socket(t.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    printResult(errno, 0);
    return 1;
  }
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_storage local{};
  socklen_t len = 0;
  if (t.family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&local);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(srcPort));
    len = sizeof *v4;
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&local);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(srcPort));
    len = sizeof *v6;
  }
  if (bind(fd, reinterpret_cast<const sockaddr*>(&local), len) != 0) {
    printResult(errno, 0);
    return 1;
  }
  int err = startConnect(fd, t);
  if (err == 0) err = finishConnect(fd, timeoutMs);
  close(fd);
  printResult(
      err,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  return err == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr,
                 "usage: mg-attack wait|fire|fork-fire|self-delete|inherit|connect-exec HOST PORT "
                 "[TIMEOUT_MS] [PROGRAM ARG...]\n"
                 "       mg-attack from-port SRCPORT HOST PORT TIMEOUT_MS\n");
    return 2;
  }
  const std::string mode = argv[1];
  if (mode == "from-port" && argc > 5) {
    return modeFromPort(std::atoi(argv[2]), parseTarget(argv[3], std::atoi(argv[4])),
                        std::atoi(argv[5]));
  }
  const Target t = parseTarget(argv[2], std::atoi(argv[3]));
  const int timeoutMs = argc > 4 ? std::atoi(argv[4]) : 3000;
  if (mode == "wait") return modeWait(t, timeoutMs);
  if (mode == "fire") return modeFire(t);
  if (mode == "fork-fire") return modeForkFire(t);
  if (mode == "self-delete") return modeSelfDelete(t, timeoutMs);
  if (mode == "inherit" && argc > 5) return modeInherit(t, timeoutMs, argv + 5);
  if (mode == "connect-exec" && argc > 4) return modeConnectExec(t, argv + 4);
  std::fprintf(stderr, "mg-attack: unknown mode or missing PROGRAM: %s\n", mode.c_str());
  return 2;
}
