// The DNS tap with real BPF, in the test's own network namespace and cgroup2 (see
// kernel_netns_test.cpp): dnsmasq on 127.0.0.2 serves MX and A records of *.test, the
// test's children ask it through glibc's resolver (UDP, and TCP with RES_USEVC) or with a
// bare sendto(), and the packets the tap copies are attributed to the exact child.
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "kernel_netns.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/dns/dns.hpp"
#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel {
namespace {

namespace fs = std::filesystem;
using testing::openTappedHooks;
using testing::PrivateCgroup;
using testing::TestServer;
using namespace std::chrono_literals;

constexpr const char* kServer = "127.0.0.2";

std::uint64_t startTicksOfSelf() {
  std::ifstream in("/proc/self/stat");
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream rest(all.substr(all.rfind(')') + 2));  // field 3 onwards
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  return std::stoull(field);
}

// glibc's resolver pointed at the test's name server only (res_nquery: no resolv.conf).
int resolve(const std::string& name, int type, bool tcp) {
  struct __res_state st {};
  if (res_ninit(&st) != 0) return -1;
  st.nscount = 1;
  st.nsaddr_list[0].sin_family = AF_INET;
  st.nsaddr_list[0].sin_port = htons(53);
  ::inet_pton(AF_INET, kServer, &st.nsaddr_list[0].sin_addr);
  st.retry = 1;
  st.retrans = 2;
  if (tcp) st.options |= RES_USEVC;
  std::array<unsigned char, 1024> answer{};
  const int n =
      res_nquery(&st, name.c_str(), ns_c_in, type, answer.data(), static_cast<int>(answer.size()));
  res_nclose(&st);
  return n;
}

// A query sent with sendto() on an unconnected UDP socket, as resolvers other than
// glibc's do: the cgroup sendmsg4 hook stamps it.
int sendtoQuery(const std::string& name, int type) {
  std::array<unsigned char, 512> q{};
  const int n = res_mkquery(ns_o_query, name.c_str(), ns_c_in, type, nullptr, 0, nullptr, q.data(),
                            static_cast<int>(q.size()));
  if (n <= 0) return -1;
  const Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(53);
  ::inet_pton(AF_INET, kServer, &to.sin_addr);
  timeval tv{2, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::sendto(s.get(), q.data(), static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&to),
               sizeof(to)) != n)
    return -1;
  std::array<unsigned char, 1024> answer{};
  return static_cast<int>(::recv(s.get(), answer.data(), answer.size(), 0));
}

class KernelDns : public ::testing::Test {
 protected:
  void SetUp() override {
    MAILGUARD_REQUIRE_NAMESPACES();
    if (::access("/usr/sbin/dnsmasq", X_OK) != 0)
      GTEST_SKIP() << "dnsmasq is not installed (install/deps.sh --test installs dnsmasq-base)";
    ASSERT_EQ(cgroup_.create(), "");
    ASSERT_TRUE(dnsmasq_.start(
        "dnsmasq",
        {"/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
         "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.2", "--port=53",
         "--user=root", "--pid-file=", "--log-facility=/dev/null",
         "--mx-host=victim.test,mx.victim.test,10", "--host-record=mx.victim.test,127.1.0.25",
         "--host-record=mail.isp.test,127.1.0.26"},
        // Ready when it answers (this process is outside the tapped cgroup).
        [this] { return resolve("mx.victim.test", ns_t_a, false) > 0; }));
    id_ = openTappedHooks(cgroup_);
    ASSERT_TRUE(id_ != nullptr && !HasFailure());
    id_->setDnsSink([this](const DnsPacket& p) { packets_.push_back(p); });
  }
  void TearDown() override {
    id_.reset();
    dnsmasq_.stop();
    cgroup_.remove();
  }

  struct Child {
    int status = -1;
    dns::Asker asker;
  };
  // Runs `body` in a forked child in the test cgroup (or not); its result and identity.
  Child inChild(const std::function<int()>& body, bool joinCgroup = true) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(p[0]);
      std::uint64_t ticks = startTicksOfSelf();
      (void)!::write(p[1], &ticks, sizeof(ticks));
      const int rc = (!joinCgroup || cgroup_.join()) ? body() : -2;
      ::_exit(rc > 0 ? 0 : 1);
    }
    ::close(p[1]);
    Child c;
    std::uint64_t ticks = 0;
    if (::read(p[0], &ticks, sizeof(ticks)) != sizeof(ticks)) ticks = 0;
    ::close(p[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    c.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    c.asker = dns::Asker{static_cast<std::uint32_t>(pid), ticks};
    return c;
  }

  // Reads the tap until `done` holds for what it recorded, or 5 s pass.
  void readUntil(const std::function<bool()>& done) {
    const Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, id_->eventsFd(), &ev), 0);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (true) {
      auto r = id_->readEvents([](const ConnectEvent&) {});
      ASSERT_TRUE(r) << r.error().message;
      record();
      if (done() || std::chrono::steady_clock::now() > deadline) return;
      ::epoll_wait(ep.get(), &ev, 1, 200);
    }
  }
  void record() {
    for (const auto& p : packets_) {
      auto m = dns::parsePayload(p.payload, p.tcp);
      if (!m) {
        observations_.unparsed();
        continue;
      }
      observations_.record(dns::Asker::ofBoottime(p.task.tgid, p.task.startBoottimeNs), *m,
                           MonoTime{} + 1s);
      askers_.push_back(p.task.tgid);
    }
    packets_.clear();
  }
  detector::DnsEvidence evidence(const Child& c, const std::string& dst) {
    return observations_.evidence(c.asker, dst, MonoTime{} + 2s, true);
  }
  bool asked(pid_t pid) const {
    return std::find(askers_.begin(), askers_.end(), static_cast<std::uint32_t>(pid)) !=
           askers_.end();
  }

  PrivateCgroup cgroup_;
  TestServer dnsmasq_;
  std::unique_ptr<KernelIdentity> id_;
  std::vector<DnsPacket> packets_;
  std::vector<std::uint32_t> askers_;
  dns::Observations observations_{false};
};

TEST_F(KernelDns, AnMxLookupOverUdpIsChargedToTheExactProcess) {
  const auto bot = inChild([] { return resolve("victim.test", ns_t_mx, false); });
  ASSERT_EQ(bot.status, 0) << "the MX lookup failed";
  const auto quiet = inChild([] { return 1; });
  ASSERT_EQ(quiet.status, 0);
  readUntil([&] { return evidence(bot, "127.1.0.25").dstResolved; });
  const auto e = evidence(bot, "127.1.0.25");
  EXPECT_TRUE(e.mxQueried);
  EXPECT_TRUE(e.dstResolved) << "the A record came in the MX answer's additional section";
  EXPECT_FALSE(e.mailNameQueried);
  const auto q = evidence(quiet, "127.1.0.25");
  EXPECT_FALSE(q.mxQueried);
  EXPECT_FALSE(q.dstResolved);
  EXPECT_FALSE(asked(static_cast<pid_t>(quiet.asker.pid)));
  EXPECT_FALSE(asked(::getpid())) << "the test's own lookups are outside the cgroup";
  EXPECT_EQ(observations_.unparsedCount(), 0U);
  EXPECT_EQ(id_->stats().dnsLost, 0U);
}

TEST_F(KernelDns, AnMxLookupOverTcpIsChargedToTheExactProcess) {
  const auto bot = inChild([] { return resolve("victim.test", ns_t_mx, true); });
  ASSERT_EQ(bot.status, 0) << "the MX lookup over TCP failed";
  readUntil([&] { return evidence(bot, "127.1.0.25").dstResolved; });
  const auto e = evidence(bot, "127.1.0.25");
  EXPECT_TRUE(e.mxQueried);
  EXPECT_TRUE(e.dstResolved);
}

TEST_F(KernelDns, ABareSendtoAndAMailNameLookupAreSeen) {
  const auto client = inChild([] { return sendtoQuery("mail.isp.test", ns_t_a); });
  ASSERT_EQ(client.status, 0);
  readUntil([&] { return evidence(client, "127.1.0.26").dstResolved; });
  const auto e = evidence(client, "127.1.0.26");
  EXPECT_TRUE(e.mailNameQueried);
  EXPECT_TRUE(e.dstResolved);
  EXPECT_FALSE(e.mxQueried);
}

TEST_F(KernelDns, ALookupOutsideTheCgroupIsNotTapped) {
  const auto outside = inChild([] { return resolve("victim.test", ns_t_mx, false); }, false);
  ASSERT_EQ(outside.status, 0);
  // A lookup inside, after it, proves the tap ran meanwhile.
  const auto inside = inChild([] { return resolve("victim.test", ns_t_mx, false); });
  ASSERT_EQ(inside.status, 0);
  readUntil([&] { return evidence(inside, "127.1.0.25").dstResolved; });
  EXPECT_TRUE(evidence(inside, "127.1.0.25").mxQueried);
  EXPECT_FALSE(evidence(outside, "127.1.0.25").mxQueried);
  EXPECT_FALSE(asked(static_cast<pid_t>(outside.asker.pid)));
}

}  // namespace
}  // namespace mailguard::kernel
