// The firewall table against the real kernel, each test in a fresh network namespace
// (netfilter's netns_main.cpp): what nft lists is what rules::toNftText says, and a
// refused update leaves the old table.
#include <gtest/gtest.h>

#include <string>

#include "mailguard/firewall/host_firewall.hpp"
#include "mailguard/firewall/probe_log.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "netns.hpp"

namespace mailguard::firewall {
namespace {

using netfilter::testing::run;

std::string fromChain(const std::string& text, const std::string& chain) {
  const auto pos = text.find("chain " + chain);
  return pos == std::string::npos ? std::string() : text.substr(pos);
}

class FirewallNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    MAILGUARD_REQUIRE_NETNS();
    auto opened = netfilter::RulesetManager::open();
    ASSERT_TRUE(opened) << opened.error().message;
    manager_ = std::move(opened.value());
    auto backend = manager_->probeQueueBackend();
    ASSERT_TRUE(backend) << backend.error().message;
    applier_ = std::make_unique<KernelTableApplier>(*manager_, *backend);
  }
  void TearDown() override {
    if (manager_) {
      EXPECT_TRUE(manager_->remove("mgtest_fw"));
    }
  }
  std::unique_ptr<netfilter::RulesetManager> manager_;
  std::unique_ptr<KernelTableApplier> applier_;
};

TEST_F(FirewallNetns, NftListsHostInExactlyAsToNftTextRendersIt) {
  HostFirewall fw(*applier_, rules::Settings{}, "mgtest_fw");
  ASSERT_TRUE(fw.setLocalSubnets({"192.168.1.0/24", "10.0.0.0/8", "10.1.0.0/16", "fd00::/8"}));
  ASSERT_TRUE(fw.allow("ssh", true));
  ASSERT_TRUE(fw.allow("mdns", false));
  ASSERT_TRUE(fw.allow("dhcpv6-client", false));
  auto enabled = fw.enable();
  ASSERT_TRUE(enabled) << enabled.error().message;
  const auto listed = run("nft -s list table inet mgtest_fw");
  ASSERT_EQ(listed.status, 0) << listed.out;
  // Everything from the first firewall set on, sets and host_in included (the mail_out
  // queue action is printed differently for the xt-compat backend, see netfilter tests).
  const std::string expected = rules::toNftText(fw.table());
  EXPECT_EQ(fromChain(listed.out, "host_in"), fromChain(expected, "host_in")) << listed.out;
  const auto setsAt = [](const std::string& s) {
    return s.substr(s.find("\tset fw_tcp"), s.find("\tchain mail_out") - s.find("\tset fw_tcp"));
  };
  EXPECT_EQ(setsAt(listed.out), setsAt(expected)) << listed.out;
}

TEST_F(FirewallNetns, RefusedUpdateKeepsTheOldTableAndState) {
  HostFirewall fw(*applier_, rules::Settings{}, "mgtest_fw");
  ASSERT_TRUE(fw.enable());
  const auto before = run("nft -s list table inet mgtest_fw");
  const rules::FirewallState state = fw.state();

  // The kernel refuses a chain name longer than NFT_NAME_MAXLEN, after it accepted the
  // table delete earlier in the same batch.
  class Breaking final : public TableApplier {
   public:
    explicit Breaking(TableApplier& inner) : inner_(inner) {}
    Result<void> apply(const rules::Table& table) override {
      rules::Table t = table;
      t.chains.push_back({std::string(300, 'x'), rules::Hook::Input, 0, false, {}});
      return inner_.apply(t);
    }
    TableApplier& inner_;
  } breaking(*applier_);
  HostFirewall broken(breaking, rules::Settings{}, "mgtest_fw", state);
  EXPECT_FALSE(broken.allow("8080/tcp", false));
  EXPECT_FALSE(broken.disable());
  EXPECT_EQ(broken.state(), state);
  EXPECT_EQ(run("nft -s list table inet mgtest_fw").out, before.out);
}

TEST_F(FirewallNetns, HostFirewallChangesKeepTheMarkBitRuleInTheKernel) {
  HostFirewall fw(*applier_, rules::Settings{}, "mgtest_fw", {}, 0x00100000);
  ASSERT_TRUE(fw.applyCurrent());
  ASSERT_TRUE(fw.enable());
  ASSERT_TRUE(fw.allow("ssh", false));
  const auto listed = run("nft -s list table inet mgtest_fw");
  ASSERT_EQ(listed.status, 0) << listed.out;
  // mail_out up to and including the mark rule, as toNftText renders it (the queue
  // action after it prints differently for the xt-compat backend).
  const std::string rule =
      "\t\tmeta mark & 0x00100000 == 0x00100000 counter ct event set 0x0 accept\n";
  const auto upToMarkRule = [&rule](const std::string& s) {
    const auto from = s.find("\tchain mail_out");
    const auto to = s.find(rule);
    return from == std::string::npos || to == std::string::npos ? std::string()
                                                                : s.substr(from, to - from);
  };
  const std::string expected = rules::toNftText(fw.table());
  ASSERT_FALSE(upToMarkRule(expected).empty()) << expected;
  EXPECT_EQ(upToMarkRule(listed.out), upToMarkRule(expected)) << listed.out;
  EXPECT_EQ(fromChain(listed.out, "host_in"), fromChain(expected, "host_in")) << listed.out;

  // The /proc path again: the rule leaves the kernel's table.
  ASSERT_TRUE(fw.setAcceptMarkBit(0));
  const auto without = run("nft -s list table inet mgtest_fw");
  EXPECT_EQ(without.out.find("meta mark &"), std::string::npos) << without.out;
  EXPECT_NE(without.out.find("chain host_in"), std::string::npos) << without.out;
}

TEST_F(FirewallNetns, NflogReaderBindsTheProbeGroup) {
  auto source = NflogProbeSource::open(4025);
  ASSERT_TRUE(source) << source.error().message;
  auto events = (*source)->readAvailable();
  ASSERT_TRUE(events) << events.error().message;
  EXPECT_TRUE(events->empty());
}

}  // namespace
}  // namespace mailguard::firewall
