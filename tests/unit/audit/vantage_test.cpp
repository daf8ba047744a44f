#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>

#include "mailguard/audit/findings.hpp"
#include "mailguard/audit/relay.hpp"

namespace mailguard::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

InterfaceAddress address(const char* interface, const char* text, int prefix,
                         bool loopback = false) {
  InterfaceAddress a;
  a.interface = interface;
  a.family = std::string_view(text).find(':') != std::string_view::npos ? AF_INET6 : AF_INET;
  (void)::inet_pton(a.family, text, a.address.data());
  a.prefixLength = prefix;
  a.loopback = loopback;
  return a;
}

std::vector<std::string> cidrs(const std::vector<LanSubnet>& subnets) {
  std::vector<std::string> out;
  for (const auto& s : subnets) out.push_back(s.cidr + " " + s.hostAddress + " " + s.probeAddress);
  return out;
}

TEST(LanSubnets, BorrowTheFirstAddressAfterThePcsOwnThatNoNeighbourUses) {
  const auto s = lanSubnets({address("lo", "127.0.0.1", 8, true), address("eth0", "198.18.4.1", 24),
                             address("eth0", "2001:db8:4::10", 64)},
                            {"198.18.4.2", "198.18.4.3", "2001:db8:4::11"});
  EXPECT_THAT(cidrs(s), ElementsAre("198.18.4.0/24 198.18.4.1 198.18.4.4",
                                    "2001:db8:4::/64 2001:db8:4::10 2001:db8:4::12"));
}

TEST(LanSubnets, WrapRoundTheSubnetButNeverTakeNetworkOrBroadcast) {
  const auto s = lanSubnets({address("eth0", "198.18.4.253", 30)}, {});
  // 198.18.4.252/30: .253 is ours, .254 next; .255 (broadcast) and .252 (network) never.
  EXPECT_THAT(cidrs(s), ElementsAre("198.18.4.252/30 198.18.4.253 198.18.4.254"));
  const auto full = lanSubnets({address("eth0", "198.18.4.253", 30)}, {"198.18.4.254"});
  EXPECT_THAT(full, IsEmpty()) << "no free host address left";
}

TEST(LanSubnets, SkipPointToPointOwnVethIpv6LinkLocalAndDuplicates) {
  const auto s =
      lanSubnets({address("mgph000001", "198.18.9.1", 24), address("ppp0", "198.18.5.1", 32),
                  address("ptp", "198.18.6.0", 31), address("eth0", "fe80::1", 64),
                  address("eth0", "198.18.4.1", 24), address("eth0:1", "198.18.4.7", 24)},
                 {});
  EXPECT_THAT(cidrs(s), ElementsAre("198.18.4.0/24 198.18.4.1 198.18.4.2"));
}

TEST(LanSubnets, Ipv4LinkLocalOnlyWhenItIsTheOnlyOne) {
  const auto both =
      lanSubnets({address("eth0", "169.254.7.1", 16), address("eth1", "198.18.4.1", 24)}, {});
  EXPECT_THAT(cidrs(both), ElementsAre("198.18.4.0/24 198.18.4.1 198.18.4.2"));
  const auto alone = lanSubnets({address("eth0", "169.254.7.1", 16)}, {});
  EXPECT_THAT(cidrs(alone), ElementsAre("169.254.0.0/16 169.254.7.1 169.254.7.2"));
}

TEST(LanSubnets, AreBounded) {
  std::vector<InterfaceAddress> many;
  for (int i = 0; i < 10; ++i) {
    many.push_back(address("eth0", ("198.18." + std::to_string(i) + ".1").c_str(), 24));
  }
  EXPECT_EQ(lanSubnets(many, {}).size(), kMaxLanSubnets);
}

TEST(LanSubnets, NeverBorrowAnotherAddressOfThePc) {
  const auto s =
      lanSubnets({address("eth0", "198.18.4.1", 24), address("eth1", "198.18.4.2", 32)}, {});
  EXPECT_THAT(cidrs(s), ElementsAre("198.18.4.0/24 198.18.4.1 198.18.4.3"));
}

TEST(AuthMechanisms, ReadTheEhloAuthLineInBothForms) {
  EXPECT_THAT(
      authMechanisms("250-pc.test Hello\n250-SIZE 52428800\n250-AUTH PLAIN LOGIN\n250 HELP"),
      ElementsAre("PLAIN", "LOGIN"));
  EXPECT_THAT(authMechanisms("250-x\n250-AUTH=login cram-md5\n250-AUTH LOGIN\n250 OK"),
              ElementsAre("LOGIN", "CRAM-MD5"));
  EXPECT_THAT(authMechanisms("250-x\n250-STARTTLS\n250-AUTHORITY x\n250 HELP"), IsEmpty());
  EXPECT_THAT(authMechanisms(""), IsEmpty());
}

TEST(TransientFailure, RefusedOrClosedBeforeTheBannerIsARestartNotATimeout) {
  DialogueResult none;
  EXPECT_TRUE(isTransientFailure(ECONNREFUSED, none));
  EXPECT_FALSE(isTransientFailure(ETIMEDOUT, none)) << "a firewall dropping the SYN";
  DialogueResult closed;
  closed.error = "the server closed the connection";
  EXPECT_TRUE(isTransientFailure(0, closed));
  DialogueResult silent;
  silent.error = "no reply within 5000 ms";
  EXPECT_FALSE(isTransientFailure(0, silent)) << "TLS from the first byte, port 465";
  DialogueResult late = closed;
  late.banner = "220 pc.test ESMTP";
  EXPECT_FALSE(isTransientFailure(0, late)) << "it answered: a real result";
  EXPECT_FALSE(isTransientFailure(0, DialogueResult{}));
  EXPECT_FALSE(retryBackoff().empty());
}

ListenerAudit lanOpen() {
  ListenerAudit a;
  a.listener.family = AF_INET;
  a.listener.port = 25;
  a.listener.path = "/usr/sbin/exim4";
  a.listener.exposure = Exposure::External;
  (void)::inet_pton(AF_INET, "198.18.4.1", a.listener.address.data());
  a.relay = RelayVerdict::Closed;
  LanVantage v;
  v.subnet = "198.18.4.0/24";
  v.probeAddress = "198.18.4.2";
  v.target = "198.18.4.1";
  v.relay = RelayVerdict::Open;
  v.accepted = {"plain", "null-sender"};
  v.reason = "reached from 198.18.4.2 (a host on your LAN 198.18.4.0/24) at 198.18.4.1";
  v.dialogue.transcript = {"< 220 pc.test ESMTP", "> QUIT"};
  a.lan.push_back(v);
  a.authInClear = {"PLAIN", "LOGIN"};
  return a;
}

std::vector<std::string> kinds(const std::vector<Finding>& findings) {
  std::vector<std::string> out;
  for (const auto& f : findings) out.push_back(f.kind);
  return out;
}

TEST(Findings, ARelayForTheLanIsItsOwnFindingNamingTheSubnet) {
  const auto f = findingsFor(lanOpen(), {});
  EXPECT_THAT(kinds(f), ElementsAre("open-relay-lan", "auth-without-tls", "exposed"));
  EXPECT_EQ(f[0].severity, Finding::Severity::Critical);
  EXPECT_THAT(f[0].title, HasSubstr("relays mail for anyone on your LAN 198.18.4.0/24: any "
                                    "infected device at home can send spam through it"));
  EXPECT_THAT(f[0].fix, HasSubstr("relay_from_hosts"));
  EXPECT_THAT(f[0].fix, HasSubstr("198.18.4.0/24"));
  EXPECT_THAT(f[1].title, HasSubstr("passwords would cross the network in clear"));
  EXPECT_THAT(f[1].title, HasSubstr("PLAIN LOGIN"));
  EXPECT_EQ(f[1].severity, Finding::Severity::Warning);
}

TEST(Findings, OpenForStrangersCoversTheLanAndAClosedLanIsNoFinding) {
  ListenerAudit a = lanOpen();
  a.authInClear.clear();
  a.relay = RelayVerdict::Open;
  a.accepted = {"plain"};
  EXPECT_THAT(kinds(findingsFor(a, {})), ElementsAre("open-relay-stranger", "exposed"));
  a.relay = RelayVerdict::Closed;
  a.lan[0].relay = RelayVerdict::Closed;
  EXPECT_THAT(kinds(findingsFor(a, {})), ElementsAre("exposed"));
}

TEST(Findings, PostfixLanRelayFixNamesMynetworks) {
  ListenerAudit a = lanOpen();
  a.listener.path = "/usr/lib/postfix/sbin/master";
  const auto f = findingsFor(a, {});
  EXPECT_THAT(f[0].fix, HasSubstr("mynetworks"));
  EXPECT_THAT(f[1].fix, HasSubstr("smtpd_tls_auth_only = yes"));
}

}  // namespace
}  // namespace mailguard::audit
