#include "mailguard/audit/household.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

#include "mailguard/common/fd.hpp"

namespace mailguard::audit {
namespace {

InterfaceAddress v4(const char* interface, const char* address, int prefix, bool loopback = false) {
  InterfaceAddress ia;
  ia.interface = interface;
  ia.family = AF_INET;
  in_addr a{};
  EXPECT_EQ(::inet_pton(AF_INET, address, &a), 1);
  std::memcpy(ia.address.data(), &a, 4);
  ia.prefixLength = prefix;
  ia.loopback = loopback;
  return ia;
}

TEST(HouseholdSubnets, OnlyTheOwnersIpv4Subnets) {
  InterfaceAddress v6;
  v6.interface = "eth0";
  v6.family = AF_INET6;
  v6.address[0] = 0xfd;
  v6.prefixLength = 64;
  const auto subnets = householdSubnets(
      {v4("lo", "127.0.0.1", 8, true), v6, v4("mgph00abcd", "198.51.100.1", 30),
       v4("wg0", "10.9.0.2", 32), v4("eth0", "198.18.4.1", 24), v4("eth0", "198.18.4.7", 24)});
  ASSERT_EQ(subnets.size(), 1u);
  EXPECT_EQ(subnets[0].cidr, "198.18.4.0/24");
  EXPECT_EQ(subnets[0].configured, "");
  EXPECT_EQ(subnets[0].hostAddress, "198.18.4.1");
  const auto hosts = householdHosts(subnets[0]);
  // 254 host addresses, not this PC's own.
  ASSERT_EQ(hosts.size(), 253u);
  EXPECT_EQ(hosts.front(), "198.18.4.2");
  EXPECT_EQ(hosts.back(), "198.18.4.254");
}

TEST(HouseholdSubnets, ALargeSubnetIsCappedAroundThePc) {
  auto subnets = householdSubnets({v4("eth0", "10.1.6.9", 16)});
  ASSERT_EQ(subnets.size(), 1u);
  EXPECT_EQ(subnets[0].cidr, "10.1.4.0/22");
  EXPECT_EQ(subnets[0].configured, "10.1.0.0/16");
  auto hosts = householdHosts(subnets[0]);
  // Inside a /16, 10.1.4.0 and 10.1.7.255 are hosts: 1024 addresses but the PC's.
  EXPECT_EQ(hosts.size(), 1023u);
  EXPECT_EQ(hosts.front(), "10.1.4.0");
  EXPECT_EQ(hosts.back(), "10.1.7.255");
  // Told otherwise: a /24 block.
  subnets = householdSubnets({v4("eth0", "10.1.6.9", 16)}, 24);
  ASSERT_EQ(subnets.size(), 1u);
  EXPECT_EQ(subnets[0].cidr, "10.1.6.0/24");
  EXPECT_EQ(householdHosts(subnets[0]).size(), 255u);
  // Never wider than a /16, whatever is asked.
  EXPECT_EQ(householdSubnets({v4("eth0", "10.1.6.9", 8)}, 4)[0].cidr, "10.1.0.0/16");
}

TEST(HouseholdSubnets, AtMostMaxSubnetsInInterfaceOrder) {
  const std::vector<InterfaceAddress> five{
      v4("eth0", "198.18.1.1", 24), v4("eth1", "198.18.2.1", 24), v4("eth2", "198.18.3.1", 24),
      v4("eth3", "198.18.4.1", 24), v4("eth4", "198.18.5.1", 24)};
  EXPECT_EQ(householdSubnets(five).size(), kMaxHouseholdSubnets);
  // [household] max_subnets = 2: the first two interfaces'.
  const auto two = householdSubnets(five, kHouseholdPrefix, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].cidr, "198.18.1.0/24");
  EXPECT_EQ(two[1].cidr, "198.18.2.0/24");
  EXPECT_EQ(householdSubnets(five, kHouseholdPrefix, 16).size(), 5u);
  // Zero would scan nothing the owner asked for: one at least.
  EXPECT_EQ(householdSubnets(five, kHouseholdPrefix, 0).size(), 1u);
}

// A listener on a loopback address of the test's choosing (127.0.0.0/8 is all loopback).
Fd listenOn(const char* address, std::uint16_t& port) {
  Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &a.sin_addr);
  const int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  EXPECT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::listen(s.get(), 16), 0);
  socklen_t len = sizeof a;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  port = ntohs(a.sin_port);
  return s;
}

TEST(ScanMailHosts, FindsTheHostsThatAnswerAndOnlyThose) {
  std::uint16_t port = 0;
  auto listener = listenOn("127.0.0.3", port);
  std::uint16_t other = 0;
  auto second = listenOn("127.0.0.5", other);
  std::vector<std::string> hosts;
  for (int i = 1; i <= 8; ++i) hosts.push_back("127.0.0." + std::to_string(i));
  ScanOptions options;
  options.ports = {port, other};
  options.perSecond = 1000;
  options.inFlight = 4;
  ScanStats stats;
  auto found = scanMailHosts(hosts, options, &stats);
  ASSERT_TRUE(found.has_value()) << found.error().message;
  ASSERT_EQ(found->size(), 2u);
  EXPECT_EQ((*found)[0].address, "127.0.0.3");
  EXPECT_EQ((*found)[0].ports, std::vector<std::uint16_t>{port});
  EXPECT_EQ((*found)[1].address, "127.0.0.5");
  EXPECT_EQ((*found)[1].ports, std::vector<std::uint16_t>{other});
  EXPECT_EQ(stats.connects, 16u);
  EXPECT_LE(stats.maxInFlight, 4u);
}

TEST(ScanMailHosts, KeepsItsPace) {
  std::vector<std::string> hosts;
  for (int i = 1; i <= 11; ++i) hosts.push_back("127.0.1." + std::to_string(i));
  ScanOptions options;
  options.ports = {9};  // discard: nothing listens on loopback here
  options.perSecond = 50;
  ScanStats stats;
  auto found = scanMailHosts(hosts, options, &stats);
  ASSERT_TRUE(found.has_value());
  EXPECT_TRUE(found->empty());
  EXPECT_EQ(stats.connects, 11u);
  // The 11th connect waits for its turn: 10 intervals of 20 ms.
  EXPECT_GE(stats.took.count(), 200);
}

TEST(ScanMailHosts, RefusesWhatIsNotAnAddress) {
  EXPECT_FALSE(scanMailHosts({"printer.local"}, ScanOptions{}).has_value());
  ScanOptions none;
  none.inFlight = 0;
  EXPECT_FALSE(scanMailHosts({"127.0.0.1"}, none).has_value());
}

// A scripted SMTP server on loopback (a unit test's fake): accepts every command, AUTH
// offered in clear; serves one connection.
void serveOpenRelay(int listener) {
  Fd c(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  if (!c) return;
  const auto say = [&](const std::string& line) {
    (void)::send(c.get(), line.data(), line.size(), MSG_NOSIGNAL);
  };
  say("220 neighbour.example ESMTP Exim 4.96\r\n");
  std::string buffer;
  char chunk[512];
  for (;;) {
    const ssize_t n = ::recv(c.get(), chunk, sizeof chunk, 0);
    if (n <= 0) return;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t eol = 0;
    while ((eol = buffer.find("\r\n")) != std::string::npos) {
      const std::string line = buffer.substr(0, eol);
      buffer.erase(0, eol + 2);
      if (line.rfind("EHLO", 0) == 0) {
        say("250-neighbour.example\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n");
      } else if (line == "QUIT") {
        say("221 bye\r\n");
        return;
      } else {
        say("250 OK\r\n");
      }
    }
  }
}

TEST(AuditHouseholdHost, AnOpenRelayOnTheLanIsOpenWithTheSameFindings) {
  std::uint16_t port = 0;
  auto listener = listenOn("127.0.0.7", port);
  std::thread server(serveOpenRelay, listener.get());
  AuditOptions options;
  options.replyTimeout = std::chrono::milliseconds(3000);
  const auto host = auditHouseholdHost("127.0.0.0/24", "127.0.0.7", port, options);
  server.join();
  EXPECT_EQ(host.relay, RelayVerdict::Open) << host.reason;
  EXPECT_EQ(host.accepted.size(), relayVariants("neighbour.example").size());
  EXPECT_EQ(host.authInClear, (std::vector<std::string>{"PLAIN", "LOGIN"}));
  const auto findings = householdFindings(host);
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].kind, "open-relay-lan");
  EXPECT_NE(findings[0].title.find("the mail server at 127.0.0.7:" + std::to_string(port)),
            std::string::npos)
      << findings[0].title;
  EXPECT_NE(findings[0].fix.find("exim4"), std::string::npos) << findings[0].fix;
  EXPECT_FALSE(findings[0].offerBlock);
  EXPECT_EQ(findings[1].kind, "auth-without-tls");
}

TEST(AuditHouseholdHost, NothingListeningIsUnreachableWithoutFindings) {
  AuditOptions options;
  options.connectTimeout = std::chrono::milliseconds(500);
  const auto host = auditHouseholdHost("127.0.2.0/24", "127.0.2.9", 9, options);
  EXPECT_EQ(host.relay, RelayVerdict::Unreachable);
  EXPECT_NE(host.reason.find("127.0.2.9"), std::string::npos);
  EXPECT_TRUE(householdFindings(host).empty());
  // Implicit TLS is listed, never spoken to.
  const auto tls = auditHouseholdHost("127.0.2.0/24", "127.0.2.9", 465, options);
  EXPECT_EQ(tls.relay, RelayVerdict::Unreachable);
  EXPECT_TRUE(tls.dialogue.transcript.empty());
}

}  // namespace
}  // namespace mailguard::audit
