#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mailguard/rules/ruleset.hpp"

namespace mailguard::rules {
namespace {

using ::testing::HasSubstr;

FirewallState enabledWith(std::initializer_list<const char*> anywhere,
                          std::initializer_list<const char*> local = {}) {
  FirewallState s;
  s.enabled = true;
  for (const char* spec : anywhere) s = withService(s, *parseService(spec));
  for (const char* spec : local) s = withService(s, *parseService(spec, true));
  return s;
}

const Chain* chain(const Table& t, const std::string& name) {
  for (const Chain& c : t.chains) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

TEST(FirewallRuleset, DisabledFirewallLeavesTheTableExactlyAsBefore) {
  FirewallState off = enabledWith({"ssh"});
  off.enabled = false;
  EXPECT_EQ(toNftText(buildRuleset(Settings{}, kTableName, off)),
            toNftText(buildRuleset(Settings{})));
  EXPECT_EQ(buildRuleset(Settings{}, kTableName, off).chains.size(), 2U);
}

TEST(FirewallRuleset, HostInDropsByPolicyAfterLoopbackEstablishedAndInvalid) {
  const Table t = buildRuleset(Settings{}, kTableName, enabledWith({}));
  const Chain* in = chain(t, "host_in");
  ASSERT_NE(in, nullptr);
  EXPECT_EQ(in->hook, Hook::Input);
  EXPECT_TRUE(in->policyDrop);
  const std::string text = toNftText(t);
  const auto pos = [&](const std::string& s) { return text.find(s); };
  ASSERT_NE(pos("iifname \"lo\" counter accept"), std::string::npos) << text;
  EXPECT_LT(pos("iifname \"lo\""), pos("ct state established,related counter accept\n\t\ticmp"));
  EXPECT_LT(pos("ct state invalid counter drop"), pos("icmp type"));
  EXPECT_NE(pos("type filter hook input priority filter; policy drop;"), std::string::npos);
}

TEST(FirewallRuleset, KeepsEssentialIcmpAndNeighbourDiscoveryAndDhcpv6) {
  const std::string text = toNftText(buildRuleset(Settings{}, kTableName, enabledWith({})));
  for (const char* rule :
       {"icmp type echo-request limit rate 10/second burst 20 packets counter accept",
        "icmp type destination-unreachable counter accept", "icmp type time-exceeded",
        "icmp type parameter-problem", "icmpv6 type packet-too-big counter accept",
        "icmpv6 type nd-neighbor-solicit counter accept",
        "icmpv6 type nd-neighbor-advert counter accept", "icmpv6 type nd-router-advert",
        "icmpv6 type mld-listener-query", "icmpv6 type mld2-listener-report",
        "udp sport 547 udp dport 546 counter accept"}) {
    EXPECT_THAT(text, HasSubstr(rule));
  }
  FirewallState noPing = enabledWith({});
  noPing.allowPing = false;
  EXPECT_THAT(toNftText(buildRuleset(Settings{}, kTableName, noPing)),
              ::testing::Not(HasSubstr("echo-request")));
}

TEST(FirewallRuleset, AllowedServicesGoToSetsAndLocalOnesNeedALocalSource) {
  FirewallState s = enabledWith({"ssh", "mdns"}, {"8080/tcp"});
  s = *withLocalSubnets(s, {"192.168.1.0/24", "fd00::/8"});
  const Table t = buildRuleset(Settings{}, kTableName, s);
  const std::string text = toNftText(t);
  EXPECT_THAT(text, HasSubstr("set fw_tcp {\n\t\ttype inet_service\n\t\telements = { 22 }"));
  EXPECT_THAT(text, HasSubstr("set fw_udp {\n\t\ttype inet_service\n\t\telements = { 5353 }"));
  EXPECT_THAT(text,
              HasSubstr("set fw_local_tcp {\n\t\ttype inet_service\n\t\telements = { 8080 }"));
  EXPECT_THAT(text, HasSubstr("set fw_local_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval\n"
                              "\t\telements = { 192.168.1.0/24 }"));
  EXPECT_THAT(text, HasSubstr("elements = { fd00::/8 }"));
  EXPECT_THAT(text, HasSubstr("tcp dport @fw_tcp counter accept"));
  EXPECT_THAT(text, HasSubstr("ip saddr @fw_local_v4 tcp dport @fw_local_tcp counter accept"));
  EXPECT_THAT(text, HasSubstr("ip6 saddr @fw_local_v6 udp dport @fw_local_udp counter accept"));
}

TEST(FirewallRuleset, LogsRefusedMailPortProbesRateLimitedAsTheLastRule) {
  const Table t = buildRuleset(Settings{}, kTableName, enabledWith({}));
  const Rule& last = chain(t, "host_in")->rules.back();
  EXPECT_EQ(last.action.kind, Action::Kind::Log);
  EXPECT_EQ(last.action.logGroup, 4025);
  EXPECT_EQ(last.action.logPrefix, kProbeLogPrefix);
  EXPECT_THAT(toNftText(t),
              HasSubstr("tcp dport @mail_ports ct state new limit rate 10/second burst 20 packets "
                        "counter log prefix \"mailguard-probe \" group 4025\n"));
}

}  // namespace
}  // namespace mailguard::rules
