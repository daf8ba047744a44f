// The real BPF programs, loaded and attached to a child cgroup of a cgroup2 hierarchy the
// test mounts itself (only the test's own children ever join it), with real sockets to
// listeners on 127.0.0.1 inside the test's own network namespace. Every test runs with
// each flavour of taint hooks: BPF LSM (what this kernel offers) and fentry.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "kernel_netns.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel {
namespace {

namespace fs = std::filesystem;
using testing::PrivateCgroup;

constexpr std::uint32_t kMarkBit = 1U << 20;
constexpr std::uint16_t kMailPort = 2525;
constexpr std::uint16_t kOtherPort = 8080;
constexpr uid_t kNobody = 65534;

// What a child tells the test about its connect().
struct Report {
  std::int32_t err = -1;  // connect()'s errno, 0 on success; -1: the child failed before
  std::int32_t pid = 0;
  std::uint64_t cookie = 0;
  std::uint32_t mark = 0;
  std::uint32_t pad = 0;
  std::uint64_t startTicks = 0;  // /proc/self/stat field 22
};

std::uint64_t startTicksOfSelf() {
  std::ifstream in("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));  // field 3 onwards
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  return std::stoull(field);
}

bool sendFd(int over, int fd) {
  char byte = 'x';
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  return ::sendmsg(over, &msg, 0) == 1;
}

Fd receiveFd(int over) {
  char byte = 0;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  if (::recvmsg(over, &msg, 0) != 1) return Fd();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return Fd();
  int fd = -1;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return Fd(fd);
}

socklen_t toSockaddr(const std::string& addr, std::uint16_t port, sockaddr_storage& ss) {
  ss = {};
  if (addr.find(':') != std::string::npos) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    ::inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr);
    return sizeof(*sin6);
  }
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  ::inet_pton(AF_INET, addr.c_str(), &sin->sin_addr);
  return sizeof(*sin);
}

struct ConnectOptions {
  std::uint32_t presetMark = 0;  // set on the socket (SO_MARK, as root) before connect()
  int passTo = -1;               // send the connected socket over this unix socket
  bool fastOpen = false;         // sendto(MSG_FASTOPEN) instead of connect()
  std::uint16_t bindPort = 0;    // bind to this source port first (SO_REUSEADDR)
};

// In the calling (child) process: one TCP connect, reported.
Report connectReport(const std::string& addr, std::uint16_t port, ConnectOptions o = {}) {
  Report r;
  r.pid = ::getpid();
  r.startTicks = startTicksOfSelf();
  sockaddr_storage ss{};
  const socklen_t len = toSockaddr(addr, port, ss);
  const Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return r;
  if (o.presetMark != 0 &&
      ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &o.presetMark, sizeof(o.presetMark)) != 0)
    return r;
  if (o.bindPort != 0) {
    const int one = 1;
    sockaddr_storage local{};
    const socklen_t localLen =
        toSockaddr(ss.ss_family == AF_INET6 ? "::" : "0.0.0.0", o.bindPort, local);
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(fd.get(), reinterpret_cast<sockaddr*>(&local), localLen) != 0) {
      r.err = errno;
      return r;
    }
  }
  int rc = 0;
  if (o.fastOpen) {
    rc = static_cast<int>(
        ::sendto(fd.get(), "x", 1, MSG_FASTOPEN, reinterpret_cast<sockaddr*>(&ss), len));
  } else {
    rc = ::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len);
  }
  r.err = rc >= 0 ? 0 : errno;
  socklen_t optlen = sizeof(r.mark);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_MARK, &r.mark, &optlen);
  optlen = sizeof(r.cookie);
  ::getsockopt(fd.get(), SOL_SOCKET, SO_COOKIE, &r.cookie, &optlen);
  if (o.passTo >= 0 && !sendFd(o.passTo, fd.get())) r.err = -1;
  return r;
}

Fd listenOn(const std::string& addr, std::uint16_t port) {
  sockaddr_storage ss{};
  const socklen_t len = toSockaddr(addr, port, ss);
  Fd fd(::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd.get(), 1024) != 0)
    return Fd();
  return fd;
}

std::string readFile(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The kernel's active LSM list, from a securityfs mounted in our own mount namespace.
std::string activeLsms() {
  std::string tmpl = "/tmp/mailguard-secfs-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return "";
  std::string lsms;
  if (::mount("none", tmpl.c_str(), "securityfs", 0, nullptr) == 0) {
    lsms = readFile(fs::path(tmpl) / "lsm");
    ::umount2(tmpl.c_str(), MNT_DETACH);
  }
  ::rmdir(tmpl.c_str());
  return lsms;
}

class KernelNetns : public ::testing::TestWithParam<const char*> {
 protected:
  void SetUp() override {
    MAILGUARD_REQUIRE_NAMESPACES();
    flavour_ = GetParam();
    if (flavour_ == "lsm")
      ::unsetenv("MAILGUARD_BPF_TAINT_HOOKS");
    else
      ::setenv("MAILGUARD_BPF_TAINT_HOOKS", flavour_.c_str(), 1);
    const std::string why = cgroup_.create();
    ASSERT_EQ(why, "");
    mailListener_ = listenOn("127.0.0.1", kMailPort);
    otherListener_ = listenOn("127.0.0.1", kOtherPort);
    ASSERT_TRUE(mailListener_ && otherListener_);
    auto self = exeKeyOfPath("/proc/self/exe");
    ASSERT_TRUE(self) << self.error().message;
    self_ = *self;
    open();
    if (HasFatalFailure()) return;
    // The loader takes the first flavour this kernel runs, from the one asked for down.
    if (id_->describe() != flavour_)
      GTEST_SKIP() << "this kernel does not run " << flavour_
                   << " BPF programs (the loader fell back to " << id_->describe()
                   << "; MAILGUARD_BPF_DEBUG=1 shows libbpf's reason)";
  }
  void TearDown() override {
    id_.reset();  // detaches: the links go with the object
    cgroup_.remove();
    ::unsetenv("MAILGUARD_BPF_TAINT_HOOKS");
  }

  void open() {
    BpfOptions options;
    options.cgroup = cgroup_.dir();
    options.markBit = kMarkBit;
    options.mailPorts = {25, kMailPort};
    auto opened = openBpfKernelIdentity(options);
    ASSERT_TRUE(opened) << opened.error().message;
    id_ = std::move(opened.value());
  }

  // Runs `body` in a forked child (joined to the test cgroup unless told otherwise) and
  // returns its report. The child never returns into gtest.
  Report inChild(const std::function<Report()>& body, bool joinCgroup = true) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      Report r;
      if (!joinCgroup || cgroup_.join()) r = body();
      (void)!::write(p[1], &r, sizeof(r));
      ::_exit(0);
    }
    ::close(p[1]);
    Report r;
    if (::read(p[0], &r, sizeof(r)) != sizeof(r)) r = Report{};
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return r;
  }

  // Runs this test binary as `--connect ADDR PORT` (or another program) from a child in
  // the test cgroup; its exit status is connect()'s errno.
  int execConnect(const fs::path& program, const std::string& addr, std::uint16_t port) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (!cgroup_.join()) ::_exit(250);
      const std::string portText = std::to_string(port);
      ::execl(program.c_str(), program.c_str(), "--connect", addr.c_str(), portText.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(251);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Runs this binary as `--rewrite-connect MODE 127.0.0.1 2525 PADDING...` in the test
  // cgroup: the stamp of its socket, the argv area exec gave it, and its
  // /proc/PID/cmdline read while it still runs.
  struct Rewritten {
    int status = -1;
    std::optional<Stamp> stamp;
    std::string execArgv, cmdlineNow;
  };
  Rewritten rewriteConnect(const std::string& mode, const std::vector<std::string>& padding = {}) {
    Rewritten out;
    const std::string self = fs::read_symlink("/proc/self/exe").string();
    std::vector<std::string> args = {self, "--rewrite-connect", mode, "127.0.0.1",
                                     std::to_string(kMailPort)};
    args.insert(args.end(), padding.begin(), padding.end());
    std::vector<char*> argv;
    for (auto& a : args) {
      out.execArgv += a;
      out.execArgv += '\0';
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    int toChild[2], fromChild[2];
    if (::pipe2(toChild, O_CLOEXEC) != 0 || ::pipe2(fromChild, O_CLOEXEC) != 0) return out;
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (!cgroup_.join() || ::dup2(toChild[0], 0) != 0 || ::dup2(fromChild[1], 1) != 1)
        ::_exit(250);
      ::execv(argv[0], argv.data());
      ::_exit(251);
    }
    ::close(toChild[0]);
    ::close(fromChild[1]);
    std::string line;
    char c = 0;
    while (::read(fromChild[0], &c, 1) == 1 && c != '\n') line += c;
    ::close(fromChild[0]);
    if (!line.empty()) {
      out.stamp = id_->stamp(std::stoull(line));
      out.cmdlineNow = readFile("/proc/" + std::to_string(pid) + "/cmdline");
    }
    ::close(toChild[1]);  // the child exits
    int status = 0;
    ::waitpid(pid, &status, 0);
    out.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return out;
  }

  std::vector<ConnectEvent> drain() {
    std::vector<ConnectEvent> out;
    auto r = id_->readEvents([&out](const ConnectEvent& e) { out.push_back(e); });
    EXPECT_TRUE(r) << r.error().message;
    return out;
  }
  std::vector<ConnectEvent> eventsFor(std::uint64_t cookie) {
    std::vector<ConnectEvent> out;
    for (const auto& e : drain())
      if (e.cookie == cookie) out.push_back(e);
    return out;
  }

  std::string flavour_;
  PrivateCgroup cgroup_;
  Fd mailListener_, otherListener_;
  ExeKey self_;
  std::unique_ptr<KernelIdentity> id_;
};

INSTANTIATE_TEST_SUITE_P(TaintHooks, KernelNetns, ::testing::Values("lsm", "fentry", "tracepoint"),
                         [](const auto& p) { return std::string(p.param); });

TEST_P(KernelNetns, RunsTheTaintHooksAsked) {
  EXPECT_EQ(id_->describe(), flavour_);
  if (flavour_ != "lsm") return;
  const std::string lsms = activeLsms();
  ASSERT_FALSE(lsms.empty()) << "cannot read the active LSM list from securityfs";
  EXPECT_NE(("," + lsms + ",").find(",bpf,"), std::string::npos)
      << "lsm hooks ran but \"bpf\" is not an active LSM: " << lsms;
}

TEST_P(KernelNetns, DeniedKeyFailsWithEpermOnlyOnMailPortsInTheCgroup) {
  ASSERT_TRUE(id_->deny(self_));
  const auto t0 = std::chrono::steady_clock::now();
  const Report denied = inChild([] { return connectReport("127.0.0.1", kMailPort); });
  EXPECT_EQ(denied.err, EPERM);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  // Through an IPv6 socket to an IPv4-mapped address: the same.
  const Report mapped = inChild([] { return connectReport("::ffff:127.0.0.1", kMailPort); });
  EXPECT_EQ(mapped.err, EPERM);
  const Report otherPort = inChild([] { return connectReport("127.0.0.1", kOtherPort); });
  EXPECT_EQ(otherPort.err, 0);
  const Report outside = inChild([] { return connectReport("127.0.0.1", kMailPort); }, false);
  EXPECT_EQ(outside.err, 0);

  const auto events = eventsFor(denied.cookie);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].decision, ConnectEvent::Decision::Denied);
  EXPECT_EQ(events[0].task.tgid, static_cast<std::uint32_t>(denied.pid));
  EXPECT_FALSE(id_->stamp(denied.cookie));

  // Forgotten: queued again.
  ASSERT_TRUE(id_->forget(self_));
  EXPECT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).err, 0);
}

// A denied bot's refusals: the first of an interval is an event, the rest are counted
// in the kernel and reported once per interval, with the count, the latest task and the
// first few distinct destinations.
TEST_P(KernelNetns, RefusalsAfterTheFirstAreCountedInTheKernel) {
  ASSERT_TRUE(id_->deny(self_));
  constexpr int kTries = 500;
  // Round robin over 6 addresses: the count names the first 4 distinct ones.
  const Report bot = inChild([] {
    Report r;
    for (int i = 0; i < kTries; ++i) {
      r = connectReport("127.0.0." + std::to_string(1 + i % 6), kMailPort);
      if (r.err != EPERM) break;
    }
    return r;
  });
  ASSERT_EQ(bot.err, EPERM);

  // Wait on the event fd (as guardd's loop does) until all are reported, or 5 s.
  const Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, id_->eventsFd(), &ev), 0);
  std::uint64_t single = 0, counted = 0, countEvents = 0;
  std::set<std::uint8_t> destinations;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (single + counted < kTries && std::chrono::steady_clock::now() < deadline) {
    if (::epoll_wait(ep.get(), &ev, 1, 500) != 1) continue;
    for (const auto& e : drain()) {
      ASSERT_EQ(e.decision, ConnectEvent::Decision::Denied);
      EXPECT_EQ(e.task.key, self_);
      EXPECT_EQ(e.task.uid, 0U);
      EXPECT_EQ(e.dstPort, kMailPort);
      if (e.cookie != 0) {
        EXPECT_EQ(e.count, 1U);
        EXPECT_TRUE(e.moreDestinations.empty());
        single += 1;
        continue;
      }
      EXPECT_EQ(e.task.tgid, static_cast<std::uint32_t>(bot.pid)) << "the latest task";
      counted += e.count;
      ++countEvents;
      destinations.insert(e.dst[3]);
      for (const auto& d : e.moreDestinations) {
        EXPECT_EQ(d.port, kMailPort);
        EXPECT_EQ(d.family, AF_INET);
        destinations.insert(d.addr[3]);
      }
      EXPECT_LE(e.moreDestinations.size(), kRefusalDestinations - 1);
    }
  }
  EXPECT_EQ(single + counted, static_cast<std::uint64_t>(kTries)) << "every refusal counted";
  EXPECT_GE(single, 1U) << "the first refusal of an interval is an event";
  EXPECT_LE(single, 20U) << "not one event per refusal";
  EXPECT_GE(countEvents, 1U);
  EXPECT_GE(destinations.size(), 4U) << "the first few destinations come with the count";
  EXPECT_EQ(id_->stats().eventsLost, 0U);
}

TEST_P(KernelNetns, ApprovedKeyGetsTheMarkBitOredIntoItsMark) {
  ASSERT_TRUE(id_->allow(self_));
  const Report plain = inChild([] { return connectReport("127.0.0.1", kMailPort); });
  EXPECT_EQ(plain.err, 0);
  EXPECT_EQ(plain.mark, kMarkBit);
  const Report vpn = inChild([] {
    return connectReport("127.0.0.1", kMailPort, {0x5, -1, false});
  });
  EXPECT_EQ(vpn.err, 0);
  EXPECT_EQ(vpn.mark, 0x5U | kMarkBit);
  const Report otherPort = inChild([] {
    return connectReport("127.0.0.1", kOtherPort, {0x5, -1, false});
  });
  EXPECT_EQ(otherPort.mark, 0x5U);
  EXPECT_FALSE(id_->stamp(plain.cookie)) << "an approved socket is not stamped";

  const auto events = eventsFor(vpn.cookie);
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].decision, ConnectEvent::Decision::Approved);

  // deny() takes it out of approved; forgetAll() empties both.
  ASSERT_TRUE(id_->deny(self_));
  EXPECT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).err, EPERM);
  ASSERT_TRUE(id_->allow(self_));
  EXPECT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).mark, kMarkBit);
  ASSERT_TRUE(id_->forgetAll());
  EXPECT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).mark, 0U);
}

// An approved connect needs nothing from guardd, so a burst of them wakes the reader once
// (then at most every kApprovedWakeInterval), not once each; every one is still read,
// with the next wake-up or on the timer's tick.
TEST_P(KernelNetns, ABurstOfApprovedConnectsWakesTheReaderOnceAndEveryOneIsRead) {
  ASSERT_TRUE(id_->allow(self_));
  (void)drain();
  constexpr int kConnects = 30;
  const auto started = std::chrono::steady_clock::now();
  const Report last = inChild([] {
    Report out;
    for (int i = 0; i < kConnects && out.err <= 0; ++i) {
      out = connectReport("127.0.0.1", kMailPort);
    }
    return out;
  });
  const auto took = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(last.err, 0);
  ASSERT_EQ(last.mark, kMarkBit);

  std::size_t approved = 0;
  const Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, id_->eventsFd(), &ev), 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (approved < kConnects && std::chrono::steady_clock::now() < deadline) {
    (void)::epoll_wait(ep.get(), &ev, 1, 100);
    for (const auto& e : drain()) {
      if (e.decision == ConnectEvent::Decision::Approved) ++approved;
    }
  }
  EXPECT_EQ(approved, static_cast<std::size_t>(kConnects)) << "every approved connect is read";
  // One wake-up for the burst, one more for each kApprovedWakeInterval it lasted (the
  // child's connects may be slow on a loaded machine).
  const auto intervals = static_cast<std::uint64_t>(took / kApprovedWakeInterval);
  EXPECT_GE(id_->stats().approvedWakeups, 1U);
  EXPECT_LE(id_->stats().approvedWakeups, 1 + intervals)
      << kConnects << " approved connects in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
}

TEST_P(KernelNetns, UnknownKeyIsStampedWithTheTaskThatCalledConnect) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const Fd here(pair[0]), there(pair[1]);
  const int to = there.get();
  const Report r = inChild([to] { return connectReport("127.0.0.1", kMailPort, {0, to, false}); });
  ASSERT_EQ(r.err, 0);
  EXPECT_EQ(r.mark, 0U);
  // The child is gone; the socket is ours now. The stamp still names the child.
  const Fd held = receiveFd(here.get());
  ASSERT_TRUE(held);
  std::uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  ASSERT_EQ(::getsockopt(held.get(), SOL_SOCKET, SO_COOKIE, &cookie, &len), 0);
  EXPECT_EQ(cookie, r.cookie);

  const auto s = id_->stamp(cookie);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->tgid, static_cast<std::uint32_t>(r.pid));
  EXPECT_EQ(s->tid, static_cast<std::uint32_t>(r.pid));
  EXPECT_EQ(s->ppid, static_cast<std::uint32_t>(::getpid()));
  EXPECT_EQ(s->uid, 0U);
  EXPECT_EQ(s->key, self_);
  EXPECT_EQ(s->taint, 0U);
  EXPECT_FALSE(s->argv) << "this test was exec'd before the hook was attached, so its forks "
                           "have no command line recorded";
  const auto nsPerTick = 1'000'000'000ULL / static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  EXPECT_EQ(s->startBoottimeNs / nsPerTick, r.startTicks);
  EXPECT_FALSE(id_->stamp(cookie + 1'000'000));
}

// The socket's tuple as its SYN shows it (an IPv4-mapped IPv6 socket's SYN is IPv4).
rules::ConnectionTuple tupleOf(int fd) {
  sockaddr_storage local{}, peer{};
  socklen_t ll = sizeof(local), pl = sizeof(peer);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll);
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl);
  rules::ConnectionTuple t;
  if (local.ss_family == AF_INET) {
    const auto* l = reinterpret_cast<const sockaddr_in*>(&local);
    const auto* p = reinterpret_cast<const sockaddr_in*>(&peer);
    t.family = AF_INET;
    std::memcpy(t.src.data(), &l->sin_addr, 4);
    std::memcpy(t.dst.data(), &p->sin_addr, 4);
    t.srcPort = ntohs(l->sin_port);
    t.dstPort = ntohs(p->sin_port);
    return t;
  }
  const auto* l = reinterpret_cast<const sockaddr_in6*>(&local);
  const auto* p = reinterpret_cast<const sockaddr_in6*>(&peer);
  t.srcPort = ntohs(l->sin6_port);
  t.dstPort = ntohs(p->sin6_port);
  if (IN6_IS_ADDR_V4MAPPED(&p->sin6_addr)) {
    t.family = AF_INET;
    std::memcpy(t.src.data(), l->sin6_addr.s6_addr + 12, 4);
    std::memcpy(t.dst.data(), p->sin6_addr.s6_addr + 12, 4);
  } else {
    t.family = AF_INET6;
    std::memcpy(t.src.data(), l->sin6_addr.s6_addr, 16);
    std::memcpy(t.dst.data(), p->sin6_addr.s6_addr, 16);
  }
  return t;
}

// Reset on close: the socket goes to CLOSE at once (no FIN_WAIT, no TIME_WAIT).
void closeWithReset(Fd fd) {
  const linger hard{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &hard, sizeof(hard));
}

// guardd finds a queued SYN's stamp by the SYN's tuple in one lookup (no sock_diag), for
// as long as the socket lives, and only for a stamped socket.
TEST_P(KernelNetns, AStampedSocketIsFoundByItsTupleUntilItCloses) {
  rules::ConnectionTuple closed;  // the last stamped socket's, after it closed
  for (const std::string to : {"127.0.0.1", "::ffff:127.0.0.1"}) {
    SCOPED_TRACE(to);
    int pair[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    const Fd here(pair[0]), there(pair[1]);
    const int via = there.get();
    const Report r = inChild([to, via] { return connectReport(to, kMailPort, {0, via, false}); });
    ASSERT_EQ(r.err, 0);
    Fd held = receiveFd(here.get());
    ASSERT_TRUE(held);
    const auto tuple = tupleOf(held.get());
    EXPECT_EQ(tuple.family, AF_INET) << "its SYN was an IPv4 packet";
    const auto found = id_->stampOf(tuple);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->cookie, r.cookie);
    EXPECT_EQ(found->stamp.tgid, static_cast<std::uint32_t>(r.pid));
    EXPECT_EQ(found->stamp.key, self_);
    auto other = tuple;
    ++other.srcPort;
    EXPECT_FALSE(id_->stampOf(other));
    closeWithReset(std::move(held));
    EXPECT_FALSE(id_->stampOf(tuple)) << "a closed socket's tuple names nothing";
    closed = tuple;
  }
  // An approved program's socket is marked, not stamped: nothing by its tuple, even when it
  // reuses the very tuple a stamped socket had (its source port, bound again at once after
  // a reset leaves no TIME_WAIT).
  ASSERT_TRUE(id_->allow(self_));
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  const Fd here(pair[0]), there(pair[1]);
  const int via = there.get();
  const std::uint16_t port = closed.srcPort;
  const Report r = inChild([via, port] {
    return connectReport("127.0.0.1", kMailPort, {0, via, false, port});
  });
  ASSERT_EQ(r.err, 0);
  ASSERT_NE(r.mark, 0U);
  Fd held = receiveFd(here.get());
  ASSERT_TRUE(held);
  const auto reused = tupleOf(held.get());
  EXPECT_EQ(reused, closed) << "the same tuple again";
  EXPECT_FALSE(id_->stampOf(reused));
  closeWithReset(std::move(held));
}

TEST_P(KernelNetns, EveryMailConnectIsOneEventWithItsDestination) {
  const int fd = id_->eventsFd();
  ASSERT_GE(fd, 0);
  const auto sinceBoot = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now().time_since_epoch());
  };
  const auto before = sinceBoot();
  const Report v4 = inChild([] { return connectReport("127.0.0.1", kMailPort); });
  const Report mapped = inChild([] { return connectReport("::ffff:127.0.0.1", kMailPort); });
  const Report v6 = inChild([] { return connectReport("::1", kMailPort); });  // refused or not
  const Report other = inChild([] { return connectReport("127.0.0.1", kOtherPort); });
  const auto after = sinceBoot();
  ASSERT_EQ(v4.err, 0);
  ASSERT_EQ(mapped.err, 0);

  // The fd the event loop waits on is readable.
  const Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev), 0);
  EXPECT_EQ(::epoll_wait(ep.get(), &ev, 1, 5000), 1);

  const auto events = drain();
  ASSERT_EQ(events.size(), 3U) << "one per mail connect, none for port " << kOtherPort;
  const std::array<std::uint8_t, 4> loopback{127, 0, 0, 1};
  for (const auto& [report, family] :
       {std::pair{v4, AF_INET}, std::pair{mapped, AF_INET}, std::pair{v6, AF_INET6}}) {
    const auto it = std::find_if(events.begin(), events.end(),
                                 [&](const ConnectEvent& e) { return e.cookie == report.cookie; });
    ASSERT_NE(it, events.end());
    EXPECT_EQ(it->decision, ConnectEvent::Decision::Queued);
    EXPECT_EQ(it->family, family);
    EXPECT_EQ(it->dstPort, kMailPort);
    EXPECT_EQ(it->task.tgid, static_cast<std::uint32_t>(report.pid));
    EXPECT_EQ(it->task.key, self_);
    // Stamped by the hook on CLOCK_MONOTONIC, which steady_clock reads.
    EXPECT_GE(it->monotonic, before);
    EXPECT_LE(it->monotonic, after);
    if (family == AF_INET) {
      EXPECT_TRUE(std::equal(loopback.begin(), loopback.end(), it->dst.begin()));
    } else {
      std::array<std::uint8_t, 16> one{};
      one[15] = 1;
      EXPECT_EQ(it->dst, one);
    }
  }
  (void)other;
}

TEST_P(KernelNetns, EventsLostToAFullRingBufferAreCountedAndNeverBlock) {
  // An unknown program: each connect is one event (a refusal would only be counted).
  // Port 25 is a mail port with no listener here: the kernel resets each at once.
  constexpr int kConnects = 6000;  // the ring holds about 2,500 events
  const Report r = inChild([] {
    Report out;
    for (int i = 0; i < kConnects; ++i) {
      out = connectReport("127.0.0.1", 25);
      if (out.err != ECONNREFUSED) return out;
    }
    return out;
  });
  ASSERT_EQ(r.err, ECONNREFUSED);
  const auto delivered = drain().size();
  const auto lost = id_->stats().eventsLost;
  EXPECT_GT(lost, 0U);
  EXPECT_EQ(delivered + lost, static_cast<std::uint64_t>(kConnects));
  EXPECT_GT(id_->stats().mapBytes, 256U * 1024U) << "the ring buffer alone is 256 KiB";
}

// Refusals are never lost to a full ring buffer: the first of an entry that finds no room
// is counted with the rest.
TEST_P(KernelNetns, RefusalsAreCountedWhenTheRingBufferIsFull) {
  constexpr int kFill = 4000;
  const Report fill = inChild([] {
    Report out;
    for (int i = 0; i < kFill; ++i) {
      out = connectReport("127.0.0.1", 25);
      if (out.err != ECONNREFUSED) return out;
    }
    return out;
  });
  ASSERT_EQ(fill.err, ECONNREFUSED);
  ASSERT_GT(id_->stats().eventsLost, 0U) << "the ring buffer is full";
  ASSERT_TRUE(id_->deny(self_));
  constexpr int kTries = 50;
  const Report denied = inChild([] {
    Report out;
    for (int i = 0; i < kTries; ++i) {
      out = connectReport("127.0.0.1", kMailPort);
      if (out.err != EPERM) return out;
    }
    return out;
  });
  ASSERT_EQ(denied.err, EPERM);
  const auto lostBefore = id_->stats().eventsLost;
  std::uint64_t refusals = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (refusals < kTries && std::chrono::steady_clock::now() < deadline) {
    for (const auto& e : drain())
      if (e.decision == ConnectEvent::Decision::Denied) refusals += e.count;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // polling the reader
  }
  EXPECT_EQ(refusals, static_cast<std::uint64_t>(kTries));
  EXPECT_EQ(id_->stats().eventsLost, lostBefore);
}

// A file in a folder, with owner and modes, for the executable-mapping tests.
fs::path makeFile(const fs::path& dir, mode_t dirMode, uid_t owner, mode_t fileMode) {
  fs::create_directories(dir);
  ::chmod(dir.c_str(), dirMode);
  const fs::path file = dir / "libx.so";
  std::ofstream(file) << std::string(8192, '\x90');
  ::chown(file.c_str(), owner, 0);
  ::chmod(file.c_str(), fileMode);
  return file;
}

// In a child: map `file` (executable at once, or readable and then mprotect'ed).
bool mapExecutable(const fs::path& file, bool viaMprotect) {
  const Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  void* m = ::mmap(nullptr, 4096, viaMprotect ? PROT_READ : PROT_READ | PROT_EXEC, MAP_PRIVATE,
                   fd.get(), 0);
  if (m == MAP_FAILED) return false;
  return !viaMprotect || ::mprotect(m, 4096, PROT_READ | PROT_EXEC) == 0;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mailguard-kt-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

TEST_P(KernelNetns, AnExecutableMappingOfAFileOthersCouldWriteTaints) {
  ASSERT_TRUE(id_->allow(self_));
  const TempDir tmp;
  ASSERT_FALSE(tmp.path().empty());
  const fs::path rootOwned = makeFile(tmp.path() / "root", 0755, 0, 0644);
  const fs::path inWritableDir = makeFile(tmp.path() / "open", 0777, 0, 0644);
  const fs::path userOwned = makeFile(tmp.path() / "user", 0755, kNobody, 0644);
  const fs::path groupWritable = makeFile(tmp.path() / "group", 0755, 0, 0664);

  // Control: a root-owned library in a root-owned folder keeps the fast path.
  const Report clean = inChild([&] {
    if (!mapExecutable(rootOwned, false)) return Report{};
    return connectReport("127.0.0.1", kMailPort);
  });
  ASSERT_EQ(clean.err, 0);
  EXPECT_EQ(clean.mark, kMarkBit);

  for (const auto& [file, viaMprotect] :
       {std::pair{inWritableDir, false}, std::pair{userOwned, false},
        std::pair{groupWritable, false}, std::pair{userOwned, true}}) {
    SCOPED_TRACE(file.string() + (viaMprotect ? " via mprotect" : " via mmap"));
    const Report r = inChild([&] {
      if (!mapExecutable(file, viaMprotect)) return Report{};
      return connectReport("127.0.0.1", kMailPort);
    });
    ASSERT_EQ(r.err, 0);
    EXPECT_EQ(r.mark, 0U) << "a tainted task never gets the mark";
    const auto s = id_->stamp(r.cookie);
    ASSERT_TRUE(s) << "stamped instead";
    EXPECT_EQ(s->taint, static_cast<std::uint32_t>(kTaintUserMapping)) << describeTaint(s->taint);
    const auto events = eventsFor(r.cookie);
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].decision, ConnectEvent::Decision::Queued);
    EXPECT_EQ(events[0].task.taint, static_cast<std::uint32_t>(kTaintUserMapping));
  }

  // A fork shares the mappings, so it shares the taint; an exec starts clean.
  drain();
  const fs::path self = fs::read_symlink("/proc/self/exe");
  const Report forked = inChild([&] {
    if (!mapExecutable(userOwned, false)) return Report{};
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      (void)testing::connectOnce("127.0.0.1", kMailPort);
      ::_exit(0);
    }
    int status = 0;
    ::waitpid(grandchild, &status, 0);
    const pid_t execed = ::fork();
    if (execed == 0) {
      ::execl(self.c_str(), self.c_str(), "--connect", "127.0.0.1", "2525",
              static_cast<char*>(nullptr));
      ::_exit(251);
    }
    ::waitpid(execed, &status, 0);
    Report r;
    r.err = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r.pid = ::getpid();
    return r;
  });
  ASSERT_EQ(forked.err, 0);
  const auto events = drain();
  ASSERT_EQ(events.size(), 2U);
  // The grandchild's connect came first (the parent waited for it).
  EXPECT_EQ(events[0].task.ppid, static_cast<std::uint32_t>(forked.pid));
  EXPECT_EQ(events[0].task.taint, static_cast<std::uint32_t>(kTaintUserMapping));
  EXPECT_EQ(events[0].decision, ConnectEvent::Decision::Queued);
  EXPECT_EQ(events[1].task.ppid, static_cast<std::uint32_t>(forked.pid));
  EXPECT_EQ(events[1].task.taint, 0U);
  EXPECT_EQ(events[1].decision, ConnectEvent::Decision::Approved);
}

TEST_P(KernelNetns, ATracedProcessIsTainted) {
  ASSERT_TRUE(id_->allow(self_));
  // PTRACE_TRACEME: traced at connect time.
  const Report traceme = inChild([] {
    if (::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) return Report{};
    return connectReport("127.0.0.1", kMailPort);
  });
  ASSERT_EQ(traceme.err, 0);
  EXPECT_EQ(traceme.mark, 0U);
  auto s = id_->stamp(traceme.cookie);
  ASSERT_TRUE(s);
  EXPECT_NE(s->taint & kTaintTraced, 0U) << describeTaint(s->taint);

  // PTRACE_ATTACH by the parent, detached again before the connect: the address space
  // stays tainted (the tracer could have written to it).
  int go[2], done[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  ASSERT_EQ(::pipe2(done, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    Report r;
    char byte = 0;
    if (cgroup_.join() && ::read(go[0], &byte, 1) == 1) r = connectReport("127.0.0.1", kMailPort);
    (void)!::write(done[1], &r, sizeof(r));
    ::_exit(0);
  }
  ::close(go[0]);
  ::close(done[1]);
  ASSERT_EQ(::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr), 0) << std::strerror(errno);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSTOPPED(status));
  ASSERT_EQ(::ptrace(PTRACE_DETACH, pid, nullptr, nullptr), 0);
  ASSERT_EQ(::write(go[1], "g", 1), 1);
  Report attached;
  ASSERT_EQ(::read(done[0], &attached, sizeof(attached)), static_cast<ssize_t>(sizeof(attached)));
  ::waitpid(pid, &status, 0);
  ::close(go[1]);
  ::close(done[0]);
  ASSERT_EQ(attached.err, 0);
  EXPECT_EQ(attached.mark, 0U);
  s = id_->stamp(attached.cookie);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->taint, static_cast<std::uint32_t>(kTaintMemAccess)) << describeTaint(s->taint);
}

TEST_P(KernelNetns, AnInPlaceRewriteOrACopyIsANewKey) {
  const TempDir tmp;
  const fs::path prog = tmp.path() / "prog";
  fs::copy_file("/proc/self/exe", prog);
  ::chmod(prog.c_str(), 0755);
  auto before = exeKeyOfPath(prog);
  ASSERT_TRUE(before);
  ASSERT_TRUE(id_->deny(*before));
  // The kernel computes the same key from mm->exe_file as stat(2) gives here.
  EXPECT_EQ(execConnect(prog, "127.0.0.1", kMailPort), EPERM);

  {  // Rewrite one byte with itself: same inode, same content, new ctime.
    const Fd fd(::open(prog.c_str(), O_RDWR | O_CLOEXEC));
    ASSERT_TRUE(fd);
    char byte = 0;
    ASSERT_EQ(::pread(fd.get(), &byte, 1, 0), 1);
    ASSERT_EQ(::pwrite(fd.get(), &byte, 1, 0), 1);
  }
  auto after = exeKeyOfPath(prog);
  ASSERT_TRUE(after);
  EXPECT_EQ(after->ino, before->ino);
  EXPECT_NE(*after, *before);
  EXPECT_EQ(execConnect(prog, "127.0.0.1", kMailPort), 0) << "the denial was for the old file";

  const fs::path copy = tmp.path() / "copy";
  fs::copy_file(prog, copy);
  ::chmod(copy.c_str(), 0755);
  ASSERT_TRUE(id_->deny(*after));
  EXPECT_EQ(execConnect(prog, "127.0.0.1", kMailPort), EPERM);
  EXPECT_EQ(execConnect(copy, "127.0.0.1", kMailPort), 0) << "a copy is another file";
}

TEST_P(KernelNetns, TcpFastOpenToAMailPortGoesThroughTheHook) {
  // Client fast open on in this namespace (bit 1), no cookie needed (0x4).
  std::ofstream("/proc/sys/net/ipv4/tcp_fastopen") << "5";
  ASSERT_TRUE(id_->deny(self_));
  const Report r = inChild([] { return connectReport("127.0.0.1", kMailPort, {0, -1, true}); });
  EXPECT_EQ(r.err, EPERM) << "sendto(MSG_FASTOPEN) connects without connect(): "
                          << std::strerror(r.err);
  ASSERT_TRUE(id_->allow(self_));
  const Report approved = inChild([] {
    return connectReport("127.0.0.1", kMailPort, {0, -1, true});
  });
  EXPECT_EQ(approved.err, 0);
  EXPECT_EQ(approved.mark, kMarkBit);
}

TEST_P(KernelNetns, DestroyedObjectLeavesNoHook) {
  ASSERT_TRUE(id_->deny(self_));
  ASSERT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).err, EPERM);
  id_.reset();
  EXPECT_EQ(inChild([] { return connectReport("127.0.0.1", kMailPort); }).err, 0);
}

TEST_P(KernelNetns, RejectsAMarkThatIsNotOneBit) {
  BpfOptions options;
  options.cgroup = cgroup_.dir();
  options.markBit = 0x3;
  auto r = openBpfKernelIdentity(options);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::InvalidArgument);
  options.markBit = kMarkBit;
  options.cgroup = "/tmp";
  r = openBpfKernelIdentity(options);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("not a cgroup v2 directory"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace mailguard::kernel

namespace mailguard::kernel {
namespace {

TEST_P(KernelNetns, AStampCarriesTheCommandLineExecGaveIt) {
  const auto r = rewriteConnect("none");
  ASSERT_EQ(r.status, 0);
  ASSERT_TRUE(r.stamp);
  ASSERT_TRUE(r.stamp->argv) << "exec'd after the hook was attached: recorded";
  EXPECT_EQ(r.stamp->argv->length, r.execArgv.size());
  EXPECT_EQ(*r.stamp->argv, id_->digestArgv(r.execArgv));
  // Unchanged: /proc/PID/cmdline is the same bytes, so the same digest.
  EXPECT_EQ(r.cmdlineNow, r.execArgv);
  EXPECT_EQ(id_->digestArgv(r.cmdlineNow), *r.stamp->argv);
  // Another key gives another digest: the BPF program used guardd's.
  EXPECT_NE(argvDigest(ArgvKey{1, 2}, r.execArgv).hash, r.stamp->argv->hash);
}

TEST_P(KernelNetns, OnlyTheFirstBoundOfALongCommandLineIsHashedButAllOfItIsCounted) {
  const std::vector<std::string> padding = {std::string(3000, 'a'), std::string(3000, 'b')};
  const auto r = rewriteConnect("none", padding);
  ASSERT_EQ(r.status, 0);
  ASSERT_TRUE(r.stamp && r.stamp->argv);
  ASSERT_GT(r.execArgv.size(), kArgvHashBound);
  EXPECT_EQ(r.stamp->argv->length, r.execArgv.size());
  EXPECT_EQ(*r.stamp->argv, id_->digestArgv(r.execArgv));
  EXPECT_EQ(id_->digestArgv(r.cmdlineNow), *r.stamp->argv);
}

// A program that rewrites its own argv area (in memory, through /proc/self/mem, or over
// its final NUL as setproctitle does): the stamp keeps what exec gave it, and the
// command line read now digests to something else.
TEST_P(KernelNetns, AProcessThatRewritesItsCommandLineNoLongerMatchesItsStamp) {
  for (const char* mode : {"plain", "mem", "title"}) {
    SCOPED_TRACE(mode);
    const auto r = rewriteConnect(mode);
    ASSERT_EQ(r.status, 0);
    ASSERT_TRUE(r.stamp && r.stamp->argv);
    EXPECT_EQ(*r.stamp->argv, id_->digestArgv(r.execArgv)) << "what exec gave it";
    EXPECT_NE(r.cmdlineNow, r.execArgv) << "the kernel shows the rewritten text";
    EXPECT_NE(id_->digestArgv(r.cmdlineNow), *r.stamp->argv);
    if (std::string_view(mode) != "title") {
      EXPECT_EQ(r.cmdlineNow.size(), r.execArgv.size()) << "same length: only the hash tells";
      EXPECT_NE(id_->digestArgv(r.cmdlineNow).hash, r.stamp->argv->hash);
    }
  }
}

}  // namespace
}  // namespace mailguard::kernel
