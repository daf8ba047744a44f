#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {
namespace {

// Owns the test's sockets.
struct Sock {
  int fd = -1;
  explicit Sock(int f) : fd(f) {}
  Sock(const Sock&) = delete;
  Sock& operator=(const Sock&) = delete;
  ~Sock() {
    if (fd >= 0) ::close(fd);
  }
};

std::uint64_t inodeOf(int fd) {
  struct stat st {};
  EXPECT_EQ(::fstat(fd, &st), 0);
  return st.st_ino;
}

rules::ConnectionTuple tupleOf(int fd) {
  sockaddr_storage local{};
  sockaddr_storage peer{};
  socklen_t len = sizeof(local);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len), 0);
  len = sizeof(peer);
  EXPECT_EQ(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len), 0);
  rules::ConnectionTuple t;
  t.family = local.ss_family;
  if (local.ss_family == AF_INET) {
    const auto& l = reinterpret_cast<const sockaddr_in&>(local);
    const auto& p = reinterpret_cast<const sockaddr_in&>(peer);
    std::memcpy(t.src.data(), &l.sin_addr, 4);
    std::memcpy(t.dst.data(), &p.sin_addr, 4);
    t.srcPort = ntohs(l.sin_port);
    t.dstPort = ntohs(p.sin_port);
  } else {
    const auto& l = reinterpret_cast<const sockaddr_in6&>(local);
    const auto& p = reinterpret_cast<const sockaddr_in6&>(peer);
    std::memcpy(t.src.data(), &l.sin6_addr, 16);
    std::memcpy(t.dst.data(), &p.sin6_addr, 16);
    t.srcPort = ntohs(l.sin6_port);
    t.dstPort = ntohs(p.sin6_port);
  }
  return t;
}

class SockDiagSocketTableTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    auto opened = SockDiagSocketTable::open();
    if (!opened) GTEST_SKIP() << "no sock_diag here: " << opened.error().message;
    table_ = std::move(*opened);
  }

  // A listener on the loopback address of `family`, a client connected to it, and the
  // server's end; false when the family is unavailable.
  bool connectPair(int family) {
    listener_ = std::make_unique<Sock>(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (listener_->fd < 0) return false;
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (family == AF_INET) {
      auto& a = reinterpret_cast<sockaddr_in&>(addr);
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof(a);
    } else {
      auto& a = reinterpret_cast<sockaddr_in6&>(addr);
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      len = sizeof(a);
    }
    if (::bind(listener_->fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) return false;
    EXPECT_EQ(::listen(listener_->fd, 4), 0);
    EXPECT_EQ(::getsockname(listener_->fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    client_ = std::make_unique<Sock>(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    EXPECT_EQ(::connect(client_->fd, reinterpret_cast<sockaddr*>(&addr), len), 0)
        << std::strerror(errno);
    server_ = std::make_unique<Sock>(::accept4(listener_->fd, nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_GE(server_->fd, 0);
    return true;
  }

  std::unique_ptr<SockDiagSocketTable> table_;
  std::unique_ptr<Sock> listener_, client_, server_;
};

TEST_P(SockDiagSocketTableTest, FindsTheClientSocketsInodeAndUid) {
  if (!connectPair(GetParam())) GTEST_SKIP() << "no loopback address for this family";
  const auto found = table_->findTcp(tupleOf(client_->fd));
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_TRUE(*found);
  EXPECT_EQ((*found)->inode, inodeOf(client_->fd));
  EXPECT_EQ((*found)->uid, ::geteuid());
}

TEST_P(SockDiagSocketTableTest, FindsTheServerEndByItsOwnTuple) {
  if (!connectPair(GetParam())) GTEST_SKIP() << "no loopback address for this family";
  const auto found = table_->findTcp(tupleOf(server_->fd));
  ASSERT_TRUE(found) << found.error().message;
  ASSERT_TRUE(*found);
  EXPECT_EQ((*found)->inode, inodeOf(server_->fd));
}

TEST_P(SockDiagSocketTableTest, ReturnsNothingForAClosedSocket) {
  if (!connectPair(GetParam())) GTEST_SKIP() << "no loopback address for this family";
  const auto tuple = tupleOf(client_->fd);
  // Linger 0: close() resets the connection, so not even a TIME_WAIT entry is left.
  const linger abort{1, 0};
  ASSERT_EQ(::setsockopt(client_->fd, SOL_SOCKET, SO_LINGER, &abort, sizeof(abort)), 0);
  ::close(std::exchange(client_->fd, -1));
  const auto found = table_->findTcp(tuple);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_FALSE(*found);
}

TEST_P(SockDiagSocketTableTest, ReturnsNothingForAClosedSocketInTimeWait) {
  if (!connectPair(GetParam())) GTEST_SKIP() << "no loopback address for this family";
  const auto tuple = tupleOf(client_->fd);
  ::close(std::exchange(client_->fd, -1));  // the client closes first: FIN_WAIT2 / TIME_WAIT
  ::close(std::exchange(server_->fd, -1));
  const auto found = table_->findTcp(tuple);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_FALSE(*found);
}

TEST_P(SockDiagSocketTableTest, AnswersManyLookupsInARow) {
  if (!connectPair(GetParam())) GTEST_SKIP() << "no loopback address for this family";
  auto tuple = tupleOf(client_->fd);
  for (int i = 0; i < 100; ++i) {
    const auto found = table_->findTcp(tuple);
    ASSERT_TRUE(found) << found.error().message;
    EXPECT_EQ(found->has_value(), i % 2 == 0);
    tuple.dstPort = static_cast<std::uint16_t>(tuple.dstPort ^ 1);  // alternate hit and miss
  }
}

INSTANTIATE_TEST_SUITE_P(Families, SockDiagSocketTableTest, ::testing::Values(AF_INET, AF_INET6),
                         [](const ::testing::TestParamInfo<int>& param) {
                           return param.param == AF_INET ? "Ipv4" : "Ipv6";
                         });

TEST(SockDiagSocketTable, ReturnsNothingForATupleNobodyUses) {
  auto table = SockDiagSocketTable::open();
  if (!table) GTEST_SKIP() << "no sock_diag here: " << table.error().message;
  rules::ConnectionTuple t;
  t.family = AF_INET;
  t.src = {127, 0, 0, 1};
  t.dst = {127, 0, 0, 2};
  t.srcPort = 1;
  t.dstPort = 25;
  const auto found = (*table)->findTcp(t);
  ASSERT_TRUE(found) << found.error().message;
  EXPECT_FALSE(*found);
}

TEST(SockDiagSocketTable, RefusesANonInetFamily) {
  auto table = SockDiagSocketTable::open();
  if (!table) GTEST_SKIP() << "no sock_diag here: " << table.error().message;
  rules::ConnectionTuple t;
  t.family = AF_UNIX;
  EXPECT_FALSE((*table)->findTcp(t));
}

}  // namespace
}  // namespace mailguard::procinfo
