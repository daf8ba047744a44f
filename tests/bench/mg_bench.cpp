// mg-bench: the load generators and probes behind tests/bench/run.sh. Every
// subcommand prints its figures as one JSON object on stdout; bench.py turns them into
// the tables. Nothing here is a pass/fail test.
//
// Network subcommands work inside named network namespaces (`ip netns add`, files under
// /run/netns): a socket belongs to the namespace its creating thread was in, so one
// client can interleave connections to several namespaces (setns before socket()) and
// the baseline and the guarded case then share every bit of machine noise.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/rules/ruleset.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/store/store.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

std::atomic<bool> gStop{false};

void onSignal(int /*sig*/) { gStop = true; }

void installStopSignals() {
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "mg-bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Options as --name value pairs after the subcommand.
class Args {
 public:
  Args(int argc, char** argv, int first) {
    for (int i = first; i + 1 < argc; i += 2) {
      std::string key = argv[i];
      if (!key.starts_with("--")) {
        std::fprintf(stderr, "mg-bench: expected --option, got %s\n", argv[i]);
        std::exit(2);
      }
      values_[key.substr(2)] = argv[i + 1];
    }
  }
  [[nodiscard]] std::string str(const std::string& k, const std::string& def = "") const {
    const auto it = values_.find(k);
    return it == values_.end() ? def : it->second;
  }
  [[nodiscard]] long num(const std::string& k, long def) const {
    const auto it = values_.find(k);
    return it == values_.end() ? def : std::strtol(it->second.c_str(), nullptr, 10);
  }

 private:
  std::map<std::string, std::string> values_;
};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// Percentiles of a sample, in the unit it was recorded in.
struct Summary {
  std::size_t n = 0;
  double median = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Summary summarize(std::vector<double> v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) {
    const auto i = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  };
  s.median = at(0.5);
  s.p90 = at(0.9);
  s.p99 = at(0.99);
  s.max = v.back();
  double sum = 0;
  for (const double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  return s;
}

std::string json(const Summary& s) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "{\"n\": %zu, \"median\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.1f, "
                "\"mean\": %.1f}",
                s.n, s.median, s.p90, s.p99, s.max, s.mean);
  return buf;
}

void raiseFdLimit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

int openNetns(const std::string& name) {
  const std::string path = name.starts_with("/") ? name : "/run/netns/" + name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open " + path);
  return fd;
}

void enterNetns(int fd) {
  if (::setns(fd, CLONE_NEWNET) != 0) die("setns");
}

// Moves this process into a cgroup v2 directory. A socket is charged to the cgroup of the
// task that created it (sk_cgrp_data is set in socket()), and the cgroup connect hooks
// run for that cgroup: a process must move before it creates the sockets to be measured.
void joinCgroup(const std::string& dir) {
  if (dir.empty()) return;
  std::ofstream procs(dir + "/cgroup.procs");
  procs << ::getpid() << std::flush;
  if (!procs) die("join cgroup " + dir);
}

sockaddr_in v4(const std::string& host, int port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    std::fprintf(stderr, "mg-bench: not an IPv4 address: %s\n", host.c_str());
    std::exit(2);
  }
  return sa;
}

// Closes with a reset (SO_LINGER 0): no TIME_WAIT pile-up over thousands of connections.
void closeHard(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  ::close(fd);
}

// connect() to established or failed, in microseconds; err is 0 when it connected.
double timedConnect(const sockaddr_in& sa, int timeoutMs, int& err) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  const auto start = Clock::now();
  err = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
    } else {
      pollfd p{fd, POLLOUT, 0};
      const int n = ::poll(&p, 1, timeoutMs);
      if (n == 0) {
        err = ETIMEDOUT;
      } else {
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
    }
  }
  const double us = micros(Clock::now() - start);
  closeHard(fd);
  return us;
}

// --- serve: accept on ADDR:PORT in the current namespace, read and discard --------------
int cmdServe(const Args& a) {
  installStopSignals();
  raiseFdLimit();
  if (!a.str("ns").empty()) enterNetns(openNetns(a.str("ns")));
  const auto sa = v4(a.str("host", "127.0.0.1"), static_cast<int>(a.num("port", 25)));
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) die("bind");
  if (::listen(lfd, 4096) != 0) die("listen");
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::printf("ready\n");
  std::fflush(stdout);
  std::vector<char> buf(1 << 20);
  std::vector<epoll_event> events(256);
  while (!gStop) {
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == lfd) {
        for (;;) {
          const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLRDHUP;
          cev.data.fd = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      for (;;) {
        const ssize_t got = ::read(fd, buf.data(), buf.size());
        if (got > 0) continue;
        if (got < 0 && errno == EAGAIN) break;
        ::close(fd);  // EOF or reset: epoll forgets a closed fd
        break;
      }
    }
  }
  return 0;
}

// --- latency: interleaved connect() latency to several namespaces ----------------------
// One timed connect per request, in a process of its own that lives in one namespace and
// one cgroup (cgroup connect hooks apply per process, not per namespace). The timing is
// taken inside the worker, so the pipe round trip is not part of any figure.
struct LatencyWorker {
  pid_t pid = -1;
  int request = -1;  // the driver writes one byte per connect wanted
  int reply = -1;    // the worker answers with {microseconds or -1, errno}
};

struct LatencyReply {
  double us = -1;
  int err = 0;
};

LatencyWorker startLatencyWorker(int nsFd, const std::string& cgroup, const sockaddr_in& sa,
                                 int timeoutMs, const std::vector<LatencyWorker>& earlier) {
  int req[2], rep[2];
  if (::pipe2(req, O_CLOEXEC) != 0 || ::pipe2(rep, O_CLOEXEC) != 0) die("pipe");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(req[1]);
    ::close(rep[0]);
    for (const auto& w : earlier) {  // inherited at fork: not this worker's to hold
      ::close(w.request);
      ::close(w.reply);
    }
    joinCgroup(cgroup);
    enterNetns(nsFd);
    char c = 0;
    while (::read(req[0], &c, 1) == 1) {
      LatencyReply r;
      r.us = timedConnect(sa, timeoutMs, r.err);
      if (::write(rep[1], &r, sizeof r) != static_cast<ssize_t>(sizeof r)) _exit(1);
    }
    _exit(0);
  }
  ::close(req[0]);
  ::close(rep[1]);
  return LatencyWorker{pid, req[1], rep[0]};
}

int cmdLatency(const Args& a) {
  installStopSignals();
  const auto names = split(a.str("ns"), ',');
  if (names.empty()) {
    std::fprintf(stderr, "mg-bench latency: --ns NAME[,NAME...] is required\n");
    return 2;
  }
  std::vector<int> nsFds;
  for (const auto& n : names) nsFds.push_back(openNetns(n));
  // --cgroups A,B,..: one worker process per namespace, in that cgroup ("-": stay here).
  std::vector<LatencyWorker> workers;
  const auto cgroups = split(a.str("cgroups"), ',');
  if (!cgroups.empty() && cgroups.size() != names.size()) {
    std::fprintf(stderr, "mg-bench latency: --cgroups needs one entry per namespace\n");
    return 2;
  }
  const auto sa = v4(a.str("host", "127.0.0.1"), static_cast<int>(a.num("port", 25)));
  const long count = a.num("count", 1000);
  const double durationS = static_cast<double>(a.num("duration-ms", 0)) / 1000.0;
  const long rate = a.num("rate", 0);  // rounds per second; 0: back to back
  const int timeoutMs = static_cast<int>(a.num("timeout-ms", 2000));
  const long warmup = a.num("warmup", 20);
  const bool refusedOk = a.num("refused-ok", 0) != 0;
  for (std::size_t i = 0; i < cgroups.size(); ++i) {
    workers.push_back(
        startLatencyWorker(nsFds[i], cgroups[i] == "-" ? "" : cgroups[i], sa, timeoutMs, workers));
  }

  std::vector<std::vector<double>> samples(names.size());
  std::vector<long> failures(names.size(), 0);
  std::vector<std::map<int, long>> errnos(names.size());  // why connects failed
  std::vector<std::size_t> order(names.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 rng(42);
  const auto start = Clock::now();
  auto next = start;
  for (long round = 0; !gStop; ++round) {
    if (durationS > 0) {
      if (std::chrono::duration<double>(Clock::now() - start).count() >= durationS) break;
    } else if (round >= count + warmup) {
      break;
    }
    if (rate > 0) {
      next += std::chrono::microseconds(1'000'000 / rate);
      std::this_thread::sleep_until(next);
    }
    std::shuffle(order.begin(), order.end(), rng);
    for (const std::size_t i : order) {
      int err = 0;
      double us = 0;
      if (workers.empty()) {
        enterNetns(nsFds[i]);
        us = timedConnect(sa, timeoutMs, err);
      } else {
        const char go = 1;
        LatencyReply r;
        if (::write(workers[i].request, &go, 1) != 1 ||
            ::read(workers[i].reply, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
          die("latency worker for " + names[i]);
        }
        us = r.us;
        err = r.err;
      }
      // --refused-ok 1: a TCP reset is the answer being timed (a refusal decided after
      // the SYN was queued), not a failure.
      const bool ok = err == 0 || (refusedOk && err == ECONNREFUSED);
      if (!ok) ++errnos[i][err];
      if (round < warmup && durationS <= 0) continue;
      if (!ok) {
        ++failures[i];
      } else {
        samples[i].push_back(us);
      }
    }
  }
  // Every request pipe closed first: a worker sees EOF and exits once no process holds
  // its pipe's write end, and a later worker inherited the earlier ones' at fork.
  for (const auto& w : workers) {
    ::close(w.request);
    ::close(w.reply);
  }
  for (const auto& w : workers) ::waitpid(w.pid, nullptr, 0);
  std::printf("{\"unit\": \"us\", \"results\": {");
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto s = summarize(samples[i]);
    std::string why;
    for (const auto& [e, n] : errnos[i]) {
      why += (why.empty() ? "" : ", ") + std::string("\"") + std::strerror(e) +
             "\": " + std::to_string(n);
    }
    std::printf("%s\"%s\": {\"stats\": %s, \"failures\": %ld, \"errors\": {%s}}", i ? ", " : "",
                names[i].c_str(), json(s).c_str(), failures[i], why.c_str());
  }
  std::printf("}}\n");
  return 0;
}

// --- flood: a bot opening connections to distinct 127.x.y.z:PORT as fast as it can ------
struct QueueCounters {
  std::uint64_t waiting = 0, dropped = 0, userDropped = 0, idSequence = 0;
};

// /proc/net/netfilter/nfnetlink_queue of this namespace: queue_number peer_portid
// queue_total copy_mode copy_range queue_dropped queue_user_dropped id_sequence 1.
QueueCounters readQueue(int queue) {
  QueueCounters c;
  std::ifstream in("/proc/net/netfilter/nfnetlink_queue");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    long num = -1;
    std::uint64_t portid = 0, mode = 0, range = 0;
    f >> num >> portid >> c.waiting >> mode >> range >> c.dropped >> c.userDropped >> c.idSequence;
    if (num == queue) return c;
  }
  return QueueCounters{};
}

int cmdFlood(const Args& a) {
  installStopSignals();
  raiseFdLimit();
  if (!a.str("ns").empty()) enterNetns(openNetns(a.str("ns")));
  const int port = static_cast<int>(a.num("port", 25));
  const auto duration = std::chrono::milliseconds(a.num("duration-ms", 10'000));
  const auto inflightMax = static_cast<std::size_t>(a.num("inflight", 256));
  const auto giveUp = std::chrono::milliseconds(a.num("timeout-ms", 300));
  const int queue = static_cast<int>(a.num("queue", 4025));
  // --rate N: at most N connects a second (0: as fast as it can).
  const double rate = static_cast<double>(a.num("rate", 0));
  joinCgroup(a.str("cgroup"));

  const int ep = epoll_create1(EPOLL_CLOEXEC);
  struct Pending {
    int fd;
    Clock::time_point started;
  };
  std::map<int, Pending> pending;
  std::uint32_t addr = (127U << 24) | (1U << 16) | 1U;  // 127.1.0.1 onwards
  const auto nextAddr = [&] {
    for (;;) {
      ++addr;
      const auto last = addr & 0xffU;
      if (last == 0 || last == 255) continue;
      if ((addr >> 24) != 127U) addr = (127U << 24) | (1U << 16) | 1U;
      return addr;
    }
  };
  std::uint64_t started = 0, refused = 0, connected = 0, timedOut = 0, otherErrors = 0;
  std::uint64_t refusedAtConnect = 0;  // EPERM from connect(): a cgroup hook said no
  std::vector<std::uint64_t> perSecond;
  std::uint64_t decidedThisSecond = 0;
  const auto q0 = readQueue(queue);
  const auto t0 = Clock::now();
  auto secondEnd = t0 + 1s;
  std::vector<epoll_event> events(512);
  while (!gStop) {
    const auto now = Clock::now();
    if (now >= secondEnd) {
      perSecond.push_back(decidedThisSecond);
      decidedThisSecond = 0;
      secondEnd += 1s;
    }
    if (now - t0 >= duration) break;
    // At most inflightMax new connects per pass: refused at connect() they never stay
    // pending, and the loop must still look at the clock.
    for (std::size_t tries = 0; pending.size() < inflightMax && tries < inflightMax; ++tries) {
      if (rate > 0 &&
          static_cast<double>(started) >= rate * std::chrono::duration<double>(now - t0).count()) {
        break;
      }
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) break;
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_port = htons(static_cast<std::uint16_t>(port));
      sa.sin_addr.s_addr = htonl(nextAddr());
      ++started;
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0) {
        ++connected;
        ++decidedThisSecond;
        closeHard(fd);
        continue;
      }
      if (errno != EINPROGRESS) {
        if (errno == ECONNREFUSED) {
          ++refused;
          ++decidedThisSecond;
        } else if (errno == EPERM) {
          ++refusedAtConnect;
          ++decidedThisSecond;
        } else {
          ++otherErrors;
        }
        ::close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = fd;
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      pending.emplace(fd, Pending{fd, now});
    }
    // Paced: wake up for the next connect due (at most 1 ms late), not 5 ms later.
    // Unpaced with nothing in flight (every connect refused at once): do not sleep at all.
    const int waitMs = rate > 0 ? 1 : (pending.empty() ? 0 : 5);
    const int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), waitMs);
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        ++connected;
        ++decidedThisSecond;
      } else if (err == ECONNREFUSED || err == ECONNRESET) {
        ++refused;
        ++decidedThisSecond;
      } else {
        ++otherErrors;
      }
      pending.erase(fd);
      closeHard(fd);
    }
    // Held SYNs are dropped silently: give up on them after the timeout (a bot would).
    const auto cutoff = Clock::now() - giveUp;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.started < cutoff) {
        ++timedOut;
        closeHard(it->first);
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& [fd, p] : pending) closeHard(fd);
  const auto q1 = readQueue(queue);
  std::printf(
      "{\"seconds\": %.3f, \"started\": %llu, \"refused\": %llu, \"connected\": %llu, "
      "\"timed_out\": %llu, \"other_errors\": %llu, \"refused_at_connect\": %llu, "
      "\"refused_at_connect_per_s\": %.0f, \"decided_per_s\": %.0f, "
      "\"queued\": %llu, \"queue_dropped\": %llu, \"queue_user_dropped\": %llu, "
      "\"per_second\": [",
      secs, static_cast<unsigned long long>(started), static_cast<unsigned long long>(refused),
      static_cast<unsigned long long>(connected), static_cast<unsigned long long>(timedOut),
      static_cast<unsigned long long>(otherErrors),
      static_cast<unsigned long long>(refusedAtConnect),
      static_cast<double>(refusedAtConnect) / secs,
      static_cast<double>(refused + connected + refusedAtConnect) / secs,
      static_cast<unsigned long long>(q1.idSequence - q0.idSequence),
      static_cast<unsigned long long>(q1.dropped - q0.dropped),
      static_cast<unsigned long long>(q1.userDropped - q0.userDropped));
  for (std::size_t i = 0; i < perSecond.size(); ++i) {
    std::printf("%s%llu", i ? ", " : "", static_cast<unsigned long long>(perSecond[i]));
  }
  std::printf("]}\n");
  return 0;
}

// --- holders: N background processes holding M sockets each ----------------------------
int cmdHolders(const Args& a) {
  raiseFdLimit();
  const long count = a.num("count", 2000);
  const long sockets = a.num("sockets", 20);
  std::vector<pid_t> children;
  children.reserve(static_cast<std::size_t>(count));
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) die("pipe");
  for (long i = 0; i < count; ++i) {
    const pid_t pid = ::fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      ::close(ready[0]);
      for (long s = 0; s < sockets; ++s) {
        if (::socket(AF_INET, SOCK_STREAM, 0) < 0) _exit(1);
      }
      const char ok = 1;
      (void)!::write(ready[1], &ok, 1);
      ::close(ready[1]);
      for (;;) ::pause();
    }
    children.push_back(pid);
  }
  ::close(ready[1]);
  long up = 0;
  char c = 0;
  while (up < count && ::read(ready[0], &c, 1) == 1) ++up;
  std::printf("ready %ld\n", up);
  std::fflush(stdout);
  // Until stdin closes (the driver ends us), then stop exactly the children started here.
  while (::read(STDIN_FILENO, &c, 1) > 0) {
  }
  for (const pid_t pid : children) ::kill(pid, SIGKILL);
  for (const pid_t pid : children) ::waitpid(pid, nullptr, 0);
  return 0;
}

// --- bulk: TCP throughput on a non-mail port, interleaved across namespaces -------------
int cmdBulk(const Args& a) {
  const auto names = split(a.str("ns"), ',');
  std::vector<int> nsFds;
  for (const auto& n : names) nsFds.push_back(openNetns(n));
  const auto sa = v4(a.str("host", "127.0.0.1"), static_cast<int>(a.num("port", 8080)));
  const auto perRound = std::chrono::milliseconds(a.num("ms", 1000));
  const long rounds = a.num("rounds", 3);
  std::vector<std::vector<double>> rates(names.size());
  std::vector<char> buf(std::size_t{1} << 20, 'x');
  std::vector<std::size_t> order(names.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::mt19937 rng(7);
  for (long r = 0; r < rounds; ++r) {
    std::shuffle(order.begin(), order.end(), rng);
    for (const std::size_t i : order) {
      enterNetns(nsFds[i]);
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (::connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) die("connect");
      std::uint64_t bytes = 0;
      const auto start = Clock::now();
      while (Clock::now() - start < perRound) {
        const ssize_t n = ::write(fd, buf.data(), buf.size());
        if (n <= 0) die("write");
        bytes += static_cast<std::uint64_t>(n);
      }
      const double secs = std::chrono::duration<double>(Clock::now() - start).count();
      ::close(fd);
      rates[i].push_back(static_cast<double>(bytes) / secs / 1e6);
    }
  }
  std::printf("{\"unit\": \"MB/s\", \"results\": {");
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::printf("%s\"%s\": %s", i ? ", " : "", names[i].c_str(), json(summarize(rates[i])).c_str());
  }
  std::printf("}}\n");
  return 0;
}

// --- nfq-accept: the floor of this design ----------------------------------------------
// guardd's own table (same rules, same queue encoding), and a listener that answers every
// queued packet at once with guardd's allow verdict (NF_REPEAT + allow mark) without
// looking at it: what any NFQUEUE-based guard costs before it does any work.
int cmdNfqAccept(const Args& a) {
  using namespace mailguard;
  installStopSignals();
  rules::Settings settings;
  settings.queueNumber = static_cast<std::uint16_t>(a.num("queue", 4025));
  auto manager = netfilter::RulesetManager::open();
  if (!manager) {
    std::fprintf(stderr, "mg-bench: %s\n", manager.error().message.c_str());
    return 1;
  }
  auto backend = (*manager)->probeQueueBackend();
  if (!backend) {
    std::fprintf(stderr, "mg-bench: %s\n", backend.error().message.c_str());
    return 1;
  }
  auto source = netfilter::NfqueuePacketSource::open(settings.queueNumber, settings.queueMaxLength);
  if (!source) {
    std::fprintf(stderr, "mg-bench: %s\n", source.error().message.c_str());
    return 1;
  }
  if (auto r = (*manager)->apply(rules::buildRuleset(settings), *backend); !r) {
    std::fprintf(stderr, "mg-bench: %s\n", r.error().message.c_str());
    return 1;
  }
  // --verdict reject: answer with guardd's reject verdict instead (a TCP reset from the
  // table), the floor of a refusal decided in user space.
  const auto verdict = a.str("verdict", "allow") == "reject"
                           ? netfilter::PacketVerdict::RepeatWithReject
                           : netfilter::PacketVerdict::RepeatWithAllow;
  std::printf("ready %s\n", std::string(netfilter::toString(*backend)).c_str());
  std::fflush(stdout);
  auto& queue = **source;
  std::uint64_t packets = 0;
  while (!gStop) {
    pollfd p{queue.fd(), POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    // Drained in wake-ups of at most 256 packets, as guardd's pipeline does.
    for (;;) {
      auto r = queue.receive(
          [&](const netfilter::QueuedPacket& packet) {
            ++packets;
            (void)queue.verdict(packet.id, verdict);
          },
          256);
      if (!r) std::fprintf(stderr, "mg-bench: %s\n", r.error().message.c_str());
      if (!r || !*r) break;
    }
  }
  std::fprintf(stderr, "mg-bench nfq-accept: %llu packets\n",
               static_cast<unsigned long long>(packets));
  return 0;
}

// --- apply-time: how long replacing the whole table takes -------------------------------
int cmdApplyTime(const Args& a) {
  using namespace mailguard;
  if (!a.str("ns").empty()) enterNetns(openNetns(a.str("ns")));
  const long rounds = a.num("rounds", 50);
  const auto t0 = Clock::now();
  auto manager = netfilter::RulesetManager::open();
  if (!manager) {
    std::fprintf(stderr, "mg-bench: %s\n", manager.error().message.c_str());
    return 1;
  }
  auto backend = (*manager)->probeQueueBackend();
  if (!backend) {
    std::fprintf(stderr, "mg-bench: %s\n", backend.error().message.c_str());
    return 1;
  }
  const double probeUs = micros(Clock::now() - t0);
  rules::Settings settings;
  settings.queueNumber = static_cast<std::uint16_t>(a.num("queue", 4026));
  const auto table = rules::buildRuleset(settings, a.str("table", "mailguard_bench"));
  std::vector<double> us;
  for (long i = 0; i < rounds; ++i) {
    const auto s = Clock::now();
    if (auto r = (*manager)->apply(table, *backend); !r) {
      std::fprintf(stderr, "mg-bench: %s\n", r.error().message.c_str());
      return 1;
    }
    us.push_back(micros(Clock::now() - s));
  }
  (void)(*manager)->remove(table.name);
  std::printf("{\"unit\": \"us\", \"backend\": \"%s\", \"open_and_probe\": %.1f, \"apply\": %s}\n",
              std::string(netfilter::toString(*backend)).c_str(), probeUs,
              json(summarize(us)).c_str());
  return 0;
}

// --- store: growth of the attempts table through guardd's own writer --------------------
long rssKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

std::uint64_t fileSize(const std::filesystem::path& p) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(p, ec);
  return ec ? 0 : n;
}

Summary newestPage(mailguard::store::SqliteStore& db, int repeats, std::size_t& rows) {
  std::vector<double> ms;
  for (int i = 0; i < repeats; ++i) {
    mailguard::store::AttemptQuery q;  // guardctl attempts: newest first, default page
    const auto s = Clock::now();
    auto page = db.attempts(q);
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - s).count());
    if (!page) {
      std::fprintf(stderr, "mg-bench: %s\n", page.error().message.c_str());
      std::exit(1);
    }
    rows = page->size();
  }
  return summarize(ms);
}

int cmdStoreFill(const Args& a) {
  using namespace mailguard;
  const std::filesystem::path dir = a.str("dir");
  const long total = a.num("attempts", 1'000'000);
  const long checkpoint = a.num("checkpoint", 100'000);
  const long chunk = 5'000;  // stays well below the writer's queue bound
  auto writer = store::StoreWriter::start(dir);
  if (!writer) {
    std::fprintf(stderr, "mg-bench: %s\n", writer.error().message.c_str());
    return 1;
  }
  (*writer)->setRetention(std::chrono::hours(24 * 90),
                          static_cast<std::uint64_t>(a.num("max", 1'000'000)));
  auto reader = store::SqliteStore::open(dir);
  if (!reader) {
    std::fprintf(stderr, "mg-bench: %s\n", reader.error().message.c_str());
    return 1;
  }
  store::ProgramRecord bot;
  bot.id = 1;
  bot.identity.path = "/home/user/.cache/bot/sendmail-helper";
  bot.identity.sha256 = std::string(64, 'a');
  bot.firstSeen = std::chrono::system_clock::now();
  bot.lastAttempt = bot.firstSeen;
  (*writer)->submit(bot);
  std::printf("{\"checkpoints\": [");
  const auto t0 = Clock::now();
  auto tPrev = t0;
  long written = 0;
  bool first = true;
  while (written < total) {
    const long n = std::min(chunk, total - written);
    for (long i = 0; i < n; ++i) {
      const long k = written + i;
      store::AttemptRecord r;
      r.id = k + 1;
      r.time = std::chrono::system_clock::now();
      r.programId = 1;
      r.pid = 40000 + static_cast<int>(k % 1000);
      r.uid = 1000;
      r.path = bot.identity.path;
      r.cmdline = "/home/user/.cache/bot/sendmail-helper --batch /home/user/.cache/bot/q";
      r.src = "127.0.0.1";
      r.srcPort = static_cast<std::uint16_t>(32768 + k % 28000);
      r.dst = "127." + std::to_string((k >> 16) & 0xff) + "." + std::to_string((k >> 8) & 0xff) +
              "." + std::to_string(k & 0xff);
      r.dstPort = 25;
      r.verdict = rules::Verdict::Reject;
      r.reason = "denied by the owner (rule 1)";
      (*writer)->submit(std::move(r));
    }
    (*writer)->flush();
    written += n;
    if (written % checkpoint == 0 || written == total) {
      const auto now = Clock::now();
      std::size_t rows = 0;
      const auto page = newestPage(**reader, 20, rows);
      const auto count = (*reader)->attemptCount();
      const auto db = (*reader)->databasePath();
      const auto stats = (*writer)->stats();
      std::printf(
          "%s{\"written\": %ld, \"rows\": %lld, \"db_bytes\": %llu, \"wal_bytes\": %llu, "
          "\"rss_kb\": %ld, \"writes_per_s\": %.0f, \"newest_page_ms\": %s, \"page_rows\": %zu, "
          "\"dropped\": %llu, \"errors\": %llu}",
          first ? "" : ", ", written, count ? static_cast<long long>(*count) : -1LL,
          static_cast<unsigned long long>(fileSize(db)),
          static_cast<unsigned long long>(fileSize(db.string() + "-wal")), rssKb(),
          static_cast<double>(checkpoint) / std::chrono::duration<double>(now - tPrev).count(),
          json(page).c_str(), rows, static_cast<unsigned long long>(stats.attemptsDropped),
          static_cast<unsigned long long>(stats.writeErrors));
      std::fflush(stdout);
      first = false;
      tPrev = Clock::now();
    }
  }
  std::printf("], \"seconds\": %.1f}\n", std::chrono::duration<double>(Clock::now() - t0).count());
  return 0;
}

int cmdNewestPage(const Args& a) {
  auto db = mailguard::store::SqliteStore::open(a.str("dir"));
  if (!db) {
    std::fprintf(stderr, "mg-bench: %s\n", db.error().message.c_str());
    return 1;
  }
  std::size_t rows = 0;
  const auto s = newestPage(**db, static_cast<int>(a.num("repeats", 20)), rows);
  std::printf("{\"unit\": \"ms\", \"newest_page\": %s, \"rows\": %zu}\n", json(s).c_str(), rows);
  return 0;
}

// --- quarantine: a program record marked quarantined, as the detector would leave it -----
// (mg-seed writes the owner's rules; a quarantine is the program's state in the store.)
int cmdQuarantine(const Args& a) {
  using namespace mailguard;
  auto writer = store::StoreWriter::start(a.str("dir"));
  if (!writer) {
    std::fprintf(stderr, "mg-bench: %s\n", writer.error().message.c_str());
    return 1;
  }
  store::ProgramRecord p;
  p.identity.path = a.str("path");
  p.identity.sha256 = a.str("sha256");
  p.uid = static_cast<std::uint32_t>(a.num("uid", 0));
  p.firstSeen = std::chrono::system_clock::now();
  p.lastAttempt = p.firstSeen;
  p.quarantined = true;
  (*writer)->submit(p);
  (*writer)->flush();
  std::printf("{\"quarantined\": \"%s\"}\n", p.identity.path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: mg-bench COMMAND [--option value ...]\n"
                 "  serve --ns NS --host H --port P          accept and discard (a stand-in MTA)\n"
                 "  latency --ns A,B,.. --port P --count N   interleaved connect() latency\n"
                 "          [--cgroups C1,C2,..]             (one worker per namespace, in Ci)\n"
                 "  flood --ns NS --duration-ms MS --inflight K   bot to distinct 127.x.y.z\n"
                 "          [--rate N] [--cgroup C]\n"
                 "  holders --count N --sockets M            background processes (ends on EOF)\n"
                 "  bulk --ns A,B --port P --ms MS --rounds R    TCP throughput\n"
                 "  nfq-accept --queue Q [--verdict reject]  the do-nothing NFQUEUE listener\n"
                 "  apply-time --ns NS --rounds N            replacing the table\n"
                 "  store-fill --dir D --attempts N          attempts through StoreWriter\n"
                 "  newest-page --dir D                      the newest page of attempts\n"
                 "  quarantine --dir D --path P --sha256 H   a quarantined program record\n");
    return 2;
  }
  const std::string cmd = argv[1];
  const Args args(argc, argv, 2);
  if (cmd == "serve") return cmdServe(args);
  if (cmd == "latency") return cmdLatency(args);
  if (cmd == "flood") return cmdFlood(args);
  if (cmd == "holders") return cmdHolders(args);
  if (cmd == "bulk") return cmdBulk(args);
  if (cmd == "nfq-accept") return cmdNfqAccept(args);
  if (cmd == "apply-time") return cmdApplyTime(args);
  if (cmd == "store-fill") return cmdStoreFill(args);
  if (cmd == "newest-page") return cmdNewestPage(args);
  if (cmd == "quarantine") return cmdQuarantine(args);
  std::fprintf(stderr, "mg-bench: unknown command %s\n", cmd.c_str());
  return 2;
}
