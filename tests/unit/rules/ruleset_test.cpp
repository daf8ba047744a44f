#include "mailguard/rules/ruleset.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailguard::rules {
namespace {

using ::testing::ElementsAre;

using K = Match::Kind;

std::vector<K> kinds(const Rule& r) {
  std::vector<K> out;
  for (const Match& m : r.matches) out.push_back(m.kind);
  return out;
}

TEST(BuildRuleset, HasOneSetOfSortedMailPorts) {
  Settings s;
  s.mailPorts = {2525, 25, 587};
  const Table t = buildRuleset(s);
  EXPECT_EQ(t.name, "mailguard");
  ASSERT_EQ(t.sets.size(), 1u);
  EXPECT_EQ(t.sets[0].name, "mail_ports");
  EXPECT_THAT(t.sets[0].ports, ElementsAre(25, 587, 2525));
}

TEST(BuildRuleset, DropsDuplicatePortsTheKernelWouldRefuse) {
  Settings s;
  s.mailPorts = {587, 25, 587};
  EXPECT_THAT(buildRuleset(s).sets[0].ports, ElementsAre(25, 587));
}

TEST(BuildRuleset, UsesTheGivenTableName) {
  EXPECT_EQ(buildRuleset(Settings{}, "mailguard_test").name, "mailguard_test");
}

TEST(BuildRuleset, HasAnOutputChainThatAcceptsByDefaultAndAQuietPreroutingChain) {
  const Table t = buildRuleset(Settings{});
  ASSERT_EQ(t.chains.size(), 2u);
  EXPECT_EQ(t.chains[1].name, "quiet_in");
  EXPECT_EQ(t.chains[1].hook, Hook::Prerouting);
  EXPECT_FALSE(t.chains[1].policyDrop);
  const Chain& c = t.chains[0];
  EXPECT_EQ(c.name, "mail_out");
  EXPECT_EQ(c.hook, Hook::Output);
  EXPECT_EQ(c.priority, 0);
  EXPECT_FALSE(c.policyDrop);
  ASSERT_EQ(c.rules.size(), 5u);
  for (const Rule& r : c.rules) EXPECT_TRUE(r.counter);
}

// Inbound and forwarded connections' conntrack events are off (guardd follows none of
// them); loopback's are left alone, since a local mail connection comes back in on lo.
TEST(BuildRuleset, QuietInSilencesNewConnectionsExceptOnLoopback) {
  const Table t = buildRuleset(Settings{});
  const Chain& c = t.chains[1];
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_THAT(kinds(c.rules[0]), ElementsAre(K::IifnameEquals));
  EXPECT_EQ(c.rules[0].matches[0].text, "lo");
  EXPECT_EQ(c.rules[0].action.kind, Action::Kind::Accept);
  EXPECT_FALSE(c.rules[0].ctEventMask.has_value());
  EXPECT_THAT(kinds(c.rules[1]), ElementsAre(K::CtStateNew));
  EXPECT_EQ(c.rules[1].ctEventMask, 0u);
  EXPECT_EQ(c.rules[1].action.kind, Action::Kind::Continue);
  const std::string text = toNftText(t);
  EXPECT_NE(text.find("\tchain quiet_in {\n\t\ttype filter hook prerouting priority filter; "
                      "policy accept;\n\t\tiifname \"lo\" counter accept\n\t\tct state new "
                      "counter ct event set 0x0\n\t}"),
            std::string::npos)
      << text;
}

TEST(BuildRuleset, AcceptsEstablishedTrafficFirst) {
  const Table t = buildRuleset(Settings{});
  const Rule& r = t.chains[0].rules[0];
  EXPECT_THAT(kinds(r), ElementsAre(K::CtStateEstablishedRelated));
  EXPECT_EQ(r.action.kind, Action::Kind::Accept);
}

TEST(BuildRuleset, RejectsTcpMarkedForRejectWithAReset) {
  const Table t = buildRuleset(Settings{});
  const Rule& r = t.chains[0].rules[1];
  EXPECT_THAT(kinds(r), ElementsAre(K::MarkEquals, K::IsTcp));
  EXPECT_EQ(r.matches[0].value, kMarkReject);
  EXPECT_EQ(r.action.kind, Action::Kind::RejectTcpReset);
}

TEST(BuildRuleset, AcceptsPacketsMarkedForAllow) {
  const Table t = buildRuleset(Settings{});
  const Rule& r = t.chains[0].rules[2];
  EXPECT_THAT(kinds(r), ElementsAre(K::MarkEquals));
  EXPECT_EQ(r.matches[0].value, kMarkAllow);
  EXPECT_EQ(r.action.kind, Action::Kind::Accept);
}

TEST(BuildRuleset, QueuesNewTcpConnectionsToMailPortsOnTheConfiguredQueue) {
  Settings s;
  s.queueNumber = 77;
  const Table t = buildRuleset(s);
  const Rule& r = t.chains[0].rules[3];
  EXPECT_THAT(kinds(r), ElementsAre(K::IsTcp, K::CtStateNew, K::TcpDportInSet));
  EXPECT_EQ(r.matches[2].set, "mail_ports");
  EXPECT_EQ(r.action.kind, Action::Kind::Queue);
  EXPECT_EQ(r.action.queueNumber, 77);
}

TEST(BuildRuleset, HasNoMarkBitRuleWithoutKernelIdentity) {
  const Table t = buildRuleset(Settings{});
  for (const Rule& r : t.chains[0].rules) {
    for (const Match& m : r.matches) EXPECT_NE(m.kind, K::MarkBitSet);
  }
}

TEST(BuildRuleset, AcceptsTheKernelApprovedMarkBitRightAfterEstablishedTraffic) {
  const Table t = buildRuleset(Settings{}, kTableName, FirewallState{}, 0x00100000);
  const auto& rules = t.chains[0].rules;
  ASSERT_EQ(rules.size(), 6u);
  // The approved SYN meets one rule before its own; the verdict marks never carry the
  // bit, so the order between them does not matter.
  EXPECT_THAT(kinds(rules[0]), ElementsAre(K::CtStateEstablishedRelated));
  EXPECT_THAT(kinds(rules[1]), ElementsAre(K::MarkBitSet));
  EXPECT_EQ(rules[1].matches[0].value, 0x00100000u);
  EXPECT_EQ(rules[1].action.kind, Action::Kind::Accept);
  EXPECT_TRUE(rules[1].counter);
  // guardd does not follow its outcome: no conntrack events about it.
  EXPECT_EQ(rules[1].ctEventMask, std::optional<std::uint32_t>(0));
  EXPECT_EQ(rules[2].matches[0].value, kMarkReject);
  EXPECT_EQ(rules[3].matches[0].value, kMarkAllow);
  EXPECT_EQ(rules[4].action.kind, Action::Kind::Queue);
}

TEST(BuildRuleset, SilencesConntrackEventsOfWhatIsNoMailConnection) {
  for (const std::uint32_t bit : {0U, 0x80U}) {
    const Table t = buildRuleset(Settings{}, kTableName, FirewallState{}, bit);
    const Rule& last = t.chains[0].rules.back();
    EXPECT_THAT(kinds(last), ElementsAre(K::CtStateNew));
    EXPECT_EQ(last.ctEventMask, std::optional<std::uint32_t>(0));
    EXPECT_EQ(last.action.kind, Action::Kind::Continue);
    // Nothing guardd follows is silenced: the queue verdict's allow keeps its events.
    for (const Rule& r : t.chains[0].rules) {
      if (!r.matches.empty() && r.matches[0].kind == K::MarkEquals) {
        EXPECT_FALSE(r.ctEventMask);
      }
      if (r.action.kind == Action::Kind::Queue) {
        EXPECT_FALSE(r.ctEventMask);
      }
    }
  }
}

TEST(BuildRuleset, KeepsTheMarkBitRuleWithTheHostFirewall) {
  FirewallState fw;
  fw.enabled = true;
  const Table t = buildRuleset(Settings{}, kTableName, fw, 0x80);
  ASSERT_EQ(t.chains.size(), 3u);
  EXPECT_THAT(kinds(t.chains[0].rules[1]), ElementsAre(K::MarkBitSet));
  EXPECT_EQ(t.chains[0].rules[1].matches[0].value, 0x80u);
}

TEST(ToNftText, RendersTheMarkBitRuleAsNftListsIt) {
  // Captured from `nft -s list table` (nft 1.0.6) after `nft -f` of this rule.
  const std::string text =
      toNftText(buildRuleset(Settings{}, kTableName, FirewallState{}, 0x00100000));
  EXPECT_NE(text.find("\t\tct state established,related counter accept\n"
                      "\t\tmeta mark & 0x00100000 == 0x00100000 counter ct event set 0x0 accept\n"
                      "\t\tmeta mark 0x6d670001 meta l4proto tcp counter reject with tcp reset\n"),
            std::string::npos)
      << text;
}

TEST(ToNftText, RendersTheTableAsNftListsIt) {
  // Captured from `nft -s list table inet mailguard` (nft 1.0.6) after loading the
  // buildRuleset() table; nft drops the "meta l4proto tcp" that "tcp dport" implies.
  const std::string expected =
      "table inet mailguard {\n"
      "\tset mail_ports {\n"
      "\t\ttype inet_service\n"
      "\t\telements = { 25, 465, 587, 2525 }\n"
      "\t}\n"
      "\n"
      "\tchain mail_out {\n"
      "\t\ttype filter hook output priority filter; policy accept;\n"
      "\t\tct state established,related counter accept\n"
      "\t\tmeta mark 0x6d670001 meta l4proto tcp counter reject with tcp reset\n"
      "\t\tmeta mark 0x6d670002 counter accept\n"
      "\t\tct state new tcp dport @mail_ports counter queue num 4025\n"
      "\t\tct state new counter ct event set 0x0\n"
      "\t}\n"
      "\n"
      "\tchain quiet_in {\n"
      "\t\ttype filter hook prerouting priority filter; policy accept;\n"
      "\t\tiifname \"lo\" counter accept\n"
      "\t\tct state new counter ct event set 0x0\n"
      "\t}\n"
      "}\n";
  EXPECT_EQ(toNftText(buildRuleset(Settings{})), expected);
}

TEST(ToNftText, RendersInputChainsDropPolicyAndPriorityOffsets) {
  Table t;
  t.name = "t";
  Chain c{"host_in", Hook::Input, 10, true, {}};
  c.rules.push_back(Rule{{Match{K::CtStateNew, 0, {}}}, Action{Action::Kind::Drop, 0}, false});
  t.chains.push_back(c);
  t.sets.push_back(PortSet{"empty", {}});
  EXPECT_EQ(toNftText(t),
            "table inet t {\n"
            "\tset empty {\n"
            "\t\ttype inet_service\n"
            "\t}\n"
            "\n"
            "\tchain host_in {\n"
            "\t\ttype filter hook input priority filter + 10; policy drop;\n"
            "\t\tct state new drop\n"
            "\t}\n"
            "}\n");
}

}  // namespace
}  // namespace mailguard::rules
