// The packet path end to end on loopback, in a fresh network namespace: the
// mailguard table queues a SYN, NfqueuePacketSource reads it, and the verdict
// decides whether the non-blocking connect() completes, is refused or waits.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "netns.hpp"

namespace mailguard::netfilter {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kQueue = 3;

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd_, o.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

Endpoint endpoint(const char* ip, std::uint16_t port) {
  Endpoint e;
  if (std::strchr(ip, ':') != nullptr) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&e.addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(port);
    ::inet_pton(AF_INET6, ip, &a->sin6_addr);
    e.len = sizeof(sockaddr_in6);
    e.family = AF_INET6;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&e.addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    ::inet_pton(AF_INET, ip, &a->sin_addr);
    e.len = sizeof(sockaddr_in);
  }
  return e;
}

Fd listenOn(const Endpoint& e) {
  Fd s(::socket(e.family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  const int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0 ||
      ::listen(s.get(), 16) != 0) {
    ADD_FAILURE() << "listen: " << std::strerror(errno);
  }
  return s;
}

// Starts a non-blocking connect; the SYN goes through the output hook inside this call.
Fd startConnect(const Endpoint& e, std::uint16_t& localPort) {
  Fd s(::socket(e.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&e.addr), e.len);
  EXPECT_TRUE(rc == 0 || errno == EINPROGRESS) << std::strerror(errno);
  sockaddr_storage local{};
  socklen_t len = sizeof(local);
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&local), &len);
  localPort = e.family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port)
                                  : ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
  return s;
}

// Waits until the connect finished; returns its SO_ERROR, or -1 when still pending.
int connectResult(const Fd& s, std::chrono::milliseconds within) {
  pollfd p{s.get(), POLLOUT, 0};
  if (::poll(&p, 1, static_cast<int>(within.count())) <= 0) return -1;
  int err = 0;
  socklen_t len = sizeof(err);
  ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

class PacketPathNetns : public testing::ManagerNetns {
 protected:
  void openSourceAndApply() {
    auto source = NfqueuePacketSource::open(kQueue, 64);
    ASSERT_TRUE(source) << source.error().message;
    source_ = std::move(source.value());
    apply();
  }

  void apply() {
    auto applied = manager_->apply(testing::mailTable("mgtest_packets", kQueue), backend_);
    ASSERT_TRUE(applied) << applied.error().message;
  }

  // Collects queued packets until one arrives or `within` passes.
  std::vector<QueuedPacket> waitForPackets(std::chrono::milliseconds within) {
    std::vector<QueuedPacket> got;
    const auto deadline = Clock::now() + within;
    while (got.empty()) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) break;
      pollfd p{source_->fd(), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      auto r = source_->receive([&](const QueuedPacket& q) { got.push_back(q); }, 64);
      EXPECT_TRUE(r) << r.error().message;
    }
    return got;
  }

  // Connects to ip:port, expects exactly this SYN in the queue, checks its tuple.
  std::pair<Fd, QueuedPacket> connectAndCatch(const char* ip, std::uint16_t port) {
    std::uint16_t localPort = 0;
    Fd client = startConnect(endpoint(ip, port), localPort);
    auto packets = waitForPackets(2000ms);
    EXPECT_EQ(packets.size(), 1U);
    if (packets.empty()) return {std::move(client), QueuedPacket{}};
    const QueuedPacket q = packets.front();
    EXPECT_TRUE(q.tuple.has_value());
    if (q.tuple) {
      EXPECT_EQ(q.tuple->dstPort, port);
      EXPECT_EQ(q.tuple->srcPort, localPort);
      EXPECT_EQ(q.tuple->family, std::strchr(ip, ':') != nullptr ? AF_INET6 : AF_INET);
      const auto want = endpoint(ip, port);
      if (want.family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&want.addr);
        EXPECT_EQ(std::memcmp(q.tuple->dst.data(), &a->sin_addr, 4), 0);
      } else {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&want.addr);
        EXPECT_EQ(std::memcmp(q.tuple->dst.data(), &a->sin6_addr, 16), 0);
      }
    }
    EXPECT_EQ(q.uid, std::optional<std::uint32_t>(::getuid()));
    EXPECT_EQ(q.gid, std::optional<std::uint32_t>(::getgid()));
    return {std::move(client), q};
  }

  // See RulesetManagerNetns::TearDown: lets the binary run all tests in one namespace.
  void TearDown() override {
    if (manager_) {
      EXPECT_TRUE(manager_->remove("mgtest_packets"));
    }
  }

  std::unique_ptr<NfqueuePacketSource> source_;
};

TEST_F(PacketPathNetns, AllowVerdictLetsIpv4ConnectComplete) {
  Fd listener = listenOn(endpoint("127.0.0.1", 25));
  openSourceAndApply();
  auto [client, packet] = connectAndCatch("127.0.0.1", 25);
  ASSERT_TRUE(source_->verdict(packet.id, PacketVerdict::RepeatWithAllow));
  EXPECT_EQ(connectResult(client, 2000ms), 0);

  // Established traffic never leaves the kernel.
  ASSERT_EQ(::send(client.get(), "EHLO x\r\n", 8, MSG_NOSIGNAL), 8);
  EXPECT_TRUE(waitForPackets(200ms).empty());
  EXPECT_EQ(source_->stats().received, 1U);
  EXPECT_EQ(source_->stats().kernelDropped, 0U);
}

TEST_F(PacketPathNetns, AllowVerdictLetsIpv6ConnectComplete) {
  Fd listener = listenOn(endpoint("::1", 587));
  openSourceAndApply();
  auto [client, packet] = connectAndCatch("::1", 587);
  ASSERT_TRUE(source_->verdict(packet.id, PacketVerdict::RepeatWithAllow));
  EXPECT_EQ(connectResult(client, 2000ms), 0);
}

TEST_F(PacketPathNetns, RejectVerdictRefusesTheConnectionAtOnce) {
  Fd listener = listenOn(endpoint("127.0.0.1", 25));
  openSourceAndApply();
  auto [client, packet] = connectAndCatch("127.0.0.1", 25);
  const auto start = Clock::now();
  ASSERT_TRUE(source_->verdict(packet.id, PacketVerdict::RepeatWithReject));
  EXPECT_EQ(connectResult(client, 2000ms), ECONNREFUSED);
  EXPECT_LT(Clock::now() - start, 500ms);
}

TEST_F(PacketPathNetns, RejectVerdictRefusesIpv6Too) {
  Fd listener = listenOn(endpoint("::1", 587));
  openSourceAndApply();
  auto [client, packet] = connectAndCatch("::1", 587);
  ASSERT_TRUE(source_->verdict(packet.id, PacketVerdict::RepeatWithReject));
  EXPECT_EQ(connectResult(client, 2000ms), ECONNREFUSED);
}

TEST_F(PacketPathNetns, DropVerdictHoldsUntilTheRetriedSynIsAllowed) {
  Fd listener = listenOn(endpoint("127.0.0.1", 25));
  openSourceAndApply();
  auto [client, packet] = connectAndCatch("127.0.0.1", 25);
  ASSERT_TRUE(source_->verdict(packet.id, PacketVerdict::Drop));
  EXPECT_EQ(connectResult(client, 300ms), -1) << "connected although the SYN was dropped";

  // TCP retransmits the SYN (after about a second); it is queued again.
  auto retried = waitForPackets(3000ms);
  ASSERT_EQ(retried.size(), 1U);
  ASSERT_TRUE(retried.front().tuple.has_value());
  EXPECT_EQ(retried.front().tuple->srcPort, packet.tuple->srcPort);
  ASSERT_TRUE(source_->verdict(retried.front().id, PacketVerdict::RepeatWithAllow));
  EXPECT_EQ(connectResult(client, 2000ms), 0);
}

TEST_F(PacketPathNetns, WithoutAQueueListenerMailSynsAreDropped) {
  Fd listener = listenOn(endpoint("127.0.0.1", 25));
  apply();  // no NfqueuePacketSource: nobody listens on the queue
  std::uint16_t localPort = 0;
  Fd client = startConnect(endpoint("127.0.0.1", 25), localPort);
  EXPECT_EQ(connectResult(client, 500ms), -1) << "mail connection went through without guardd";
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  EXPECT_NE(::getpeername(client.get(), reinterpret_cast<sockaddr*>(&peer), &len), 0);
}

TEST_F(PacketPathNetns, OtherPortsAreNeverQueued) {
  Fd listener = listenOn(endpoint("127.0.0.1", 8080));
  openSourceAndApply();
  std::uint16_t localPort = 0;
  Fd client = startConnect(endpoint("127.0.0.1", 8080), localPort);
  EXPECT_EQ(connectResult(client, 2000ms), 0);
  EXPECT_TRUE(waitForPackets(200ms).empty());
  EXPECT_EQ(source_->stats().received, 0U);
}

TEST_F(PacketPathNetns, SecondBindOfTheSameQueueFailsClearly) {
  auto first = NfqueuePacketSource::open(kQueue, 64);
  ASSERT_TRUE(first) << first.error().message;
  auto second = NfqueuePacketSource::open(kQueue, 64);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("Failed to bind 'NFQUEUE 3'"), std::string::npos)
      << second.error().message;
  EXPECT_NE(second.error().message.find("held by another process"), std::string::npos)
      << second.error().message;
  // Once the holder closes its socket, the queue is free again.
  first.value().reset();
  auto third = NfqueuePacketSource::open(kQueue, 64);
  EXPECT_TRUE(third) << third.error().message;
}

TEST_F(PacketPathNetns, SourceSocketIsNonBlockingAndCloseOnExec) {
  auto source = NfqueuePacketSource::open(kQueue, 64);
  ASSERT_TRUE(source) << source.error().message;
  const int fd = source.value()->fd();
  EXPECT_NE(::fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  auto r = source.value()->receive([](const QueuedPacket&) { FAIL() << "no packet expected"; }, 64);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(*r);  // nothing more waiting
}

}  // namespace
}  // namespace mailguard::netfilter
