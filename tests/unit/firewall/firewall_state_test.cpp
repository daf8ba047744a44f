#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mailguard/firewall/host_firewall.hpp"
#include "mailguard/rules/firewall.hpp"

namespace mailguard {
namespace {

using rules::FirewallState;
using rules::Protocol;
using rules::ServicePort;

TEST(ParseService, KnowsNamedServicesAndBarePorts) {
  auto ssh = rules::parseService("ssh");
  ASSERT_TRUE(ssh) << ssh.error().message;
  EXPECT_EQ(ssh->ports, (std::vector<ServicePort>{{Protocol::Tcp, 22}}));
  EXPECT_EQ(rules::parseService("dhcpv6-client")->ports,
            (std::vector<ServicePort>{{Protocol::Udp, 546}}));
  EXPECT_EQ(rules::parseService("mdns")->ports, (std::vector<ServicePort>{{Protocol::Udp, 5353}}));
  EXPECT_EQ(rules::parseService("8080")->name, "8080/tcp");
  EXPECT_EQ(rules::parseService("53/udp")->ports, (std::vector<ServicePort>{{Protocol::Udp, 53}}));
}

TEST(ParseService, RefusesUnknownNamesAndBadPortsSayingWhatIsAccepted) {
  for (const char* bad : {"sshd", "0", "70000", "22/sctp", ""}) {
    auto r = rules::parseService(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_THAT(r.error().message, ::testing::HasSubstr(bad)) << bad;
  }
  EXPECT_THAT(rules::parseService("sshd").error().message, ::testing::HasSubstr("ssh"));
}

TEST(ParsePrefix, ClearsHostBitsAndDefaultsToASingleAddress) {
  EXPECT_EQ(rules::toString(*rules::parsePrefix("192.168.1.77/24")), "192.168.1.0/24");
  EXPECT_EQ(rules::toString(*rules::parsePrefix("fd00::1/8")), "fd00::/8");
  EXPECT_EQ(rules::toString(*rules::parsePrefix("10.1.2.3")), "10.1.2.3/32");
  EXPECT_FALSE(rules::parsePrefix("10.0.0.0/33"));
  EXPECT_FALSE(rules::parsePrefix("example.org"));
}

TEST(MergedRanges, MergesOverlappingAndAdjacentPrefixesOfOneFamily) {
  std::vector<rules::IpPrefix> prefixes;
  for (const char* p : {"10.0.0.128/25", "10.0.0.0/25", "10.0.0.7", "192.168.0.0/16", "fd00::/8"}) {
    prefixes.push_back(*rules::parsePrefix(p));
  }
  const auto v4 = rules::mergedRanges(prefixes, 4);
  ASSERT_EQ(v4.size(), 2U);
  EXPECT_EQ(v4[0].first, rules::parsePrefix("10.0.0.0")->addr);
  EXPECT_EQ(v4[0].last, rules::parsePrefix("10.0.0.255")->addr);
  EXPECT_EQ(rules::mergedRanges(prefixes, 6).size(), 1U);
  // The whole address space: no "address after the last" to store.
  EXPECT_EQ(rules::mergedRanges({*rules::parsePrefix("0.0.0.0/0")}, 4)[0].last,
            rules::parsePrefix("255.255.255.255")->addr);
}

TEST(FirewallState, AllowReplacesByNameAndRemoveAcceptsTheShortForm) {
  FirewallState s = rules::withService({}, *rules::parseService("8080"));
  s = rules::withService(s, *rules::parseService("8080/tcp", true));
  ASSERT_EQ(s.services.size(), 1U);
  EXPECT_TRUE(s.services[0].localOnly);
  EXPECT_TRUE(rules::allowsFromLocal(s, {Protocol::Tcp, 8080}));
  EXPECT_FALSE(rules::allowsFromAnywhere(s, {Protocol::Tcp, 8080}));
  auto removed = rules::withoutService(s, "8080");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(removed->services.empty());
  EXPECT_FALSE(rules::withoutService(*removed, "ssh"));
}

TEST(CheckEnable, AsksARemoteCallerToConfirmWhenSshIsNotAllowed) {
  const rules::CallerContext remote{true, 22};
  const auto check = rules::checkEnable({}, remote);
  EXPECT_TRUE(check.needsConfirmation);
  EXPECT_THAT(check.warning, ::testing::HasSubstr("guardctl firewall allow ssh"));
  EXPECT_FALSE(rules::checkEnable({}, rules::CallerContext{false, 22}).needsConfirmation);
  const FirewallState withSsh = rules::withService({}, *rules::parseService("ssh"));
  EXPECT_FALSE(rules::checkEnable(withSsh, remote).needsConfirmation);
  const FirewallState localSsh = rules::withService({}, *rules::parseService("ssh", true));
  EXPECT_TRUE(rules::checkEnable(localSsh, remote).needsConfirmation);
}

class RecordingApplier final : public firewall::TableApplier {
 public:
  Result<void> apply(const rules::Table& table) override {
    tables.push_back(table);
    if (fail) return makeError("refused");
    return {};
  }
  std::vector<rules::Table> tables;
  bool fail = false;
};

bool hasHostIn(const rules::Table& t) {
  for (const auto& c : t.chains) {
    if (c.name == "host_in") return true;
  }
  return false;
}

TEST(HostFirewall, KeepsTheOldStateWhenTheKernelRefusesTheTable) {
  RecordingApplier applier;
  firewall::HostFirewall fw(applier, rules::Settings{});
  ASSERT_TRUE(fw.enable());
  ASSERT_TRUE(fw.allow("ssh", false));
  const FirewallState before = fw.state();
  applier.fail = true;
  EXPECT_FALSE(fw.allow("8080/tcp", false));
  EXPECT_FALSE(fw.disable());
  EXPECT_EQ(fw.state(), before);
  EXPECT_TRUE(hasHostIn(fw.table()));
  applier.fail = false;
  ASSERT_TRUE(fw.disable());
  EXPECT_FALSE(hasHostIn(applier.tables.back()));
  EXPECT_EQ(applier.tables.size(), 5U);  // every change is one whole table
}

TEST(HostFirewall, RefusesBadInputWithoutTouchingTheKernel) {
  RecordingApplier applier;
  firewall::HostFirewall fw(applier, rules::Settings{});
  EXPECT_FALSE(fw.allow("nonsense", false));
  EXPECT_FALSE(fw.remove("ssh"));
  EXPECT_FALSE(fw.setLocalSubnets({"10.0.0.0/99"}));
  EXPECT_TRUE(applier.tables.empty());
}

// Whether mail_out has the kernel-approved mark rule, and for which bit (0: none).
std::uint32_t markBitOf(const rules::Table& t) {
  for (const auto& c : t.chains) {
    if (c.name != "mail_out") continue;
    for (const auto& r : c.rules) {
      for (const auto& m : r.matches) {
        if (m.kind == rules::Match::Kind::MarkBitSet) return m.value;
      }
    }
  }
  return 0;
}

TEST(HostFirewall, KeepsTheMarkBitRuleInEveryTableItApplies) {
  RecordingApplier applier;
  firewall::HostFirewall fw(applier, rules::Settings{}, rules::kTableName, {}, 0x00100000);
  EXPECT_EQ(fw.acceptMarkBit(), 0x00100000U);
  ASSERT_TRUE(fw.applyCurrent());  // start-up, and a tamper restore
  ASSERT_TRUE(fw.enable());
  ASSERT_TRUE(fw.allow("ssh", false));
  ASSERT_TRUE(fw.setLocalSubnets({"192.168.1.0/24"}));
  ASSERT_TRUE(fw.remove("ssh"));
  ASSERT_TRUE(fw.disable());
  rules::Settings other;
  other.mailPorts = {25};
  ASSERT_TRUE(fw.setSettings(other));
  ASSERT_EQ(applier.tables.size(), 7U);
  for (const auto& t : applier.tables) EXPECT_EQ(markBitOf(t), 0x00100000U);
  EXPECT_EQ(markBitOf(fw.table()), 0x00100000U);
}

TEST(HostFirewall, DropsOrChangesTheMarkBitRuleOnlyWhenTheKernelTakesIt) {
  RecordingApplier applier;
  firewall::HostFirewall fw(applier, rules::Settings{}, rules::kTableName, {}, 0x00100000);
  applier.fail = true;
  EXPECT_FALSE(fw.setAcceptMarkBit(0));
  EXPECT_EQ(fw.acceptMarkBit(), 0x00100000U);
  EXPECT_EQ(markBitOf(fw.table()), 0x00100000U);
  applier.fail = false;
  // The hooks are gone (the /proc path): the rule goes with them.
  ASSERT_TRUE(fw.setAcceptMarkBit(0));
  EXPECT_EQ(fw.acceptMarkBit(), 0U);
  EXPECT_EQ(markBitOf(applier.tables.back()), 0U);
  ASSERT_TRUE(fw.enable());
  EXPECT_EQ(markBitOf(applier.tables.back()), 0U);
  ASSERT_TRUE(fw.setAcceptMarkBit(0x80));
  EXPECT_EQ(markBitOf(applier.tables.back()), 0x80U);
  EXPECT_EQ(markBitOf(fw.table()), 0x80U);
}

TEST(HostFirewall, HasNoMarkBitRuleByDefault) {
  RecordingApplier applier;
  firewall::HostFirewall fw(applier, rules::Settings{});
  ASSERT_TRUE(fw.applyCurrent());
  EXPECT_EQ(markBitOf(applier.tables.back()), 0U);
}

}  // namespace
}  // namespace mailguard
