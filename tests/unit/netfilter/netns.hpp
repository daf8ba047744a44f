#pragma once
// Shared by the netns tests: the namespace state set up by netns_main.cpp, and a
// way to run `nft` inside it (child processes inherit the namespace).
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <string>

#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/rules/ruleset.hpp"

namespace mailguard::netfilter::testing {

// The table of rules/ruleset.hpp's comment, built by hand (rules::buildRuleset may
// not exist yet):
//   set mail_ports { type inet_service; elements = { 25, 465, 587, 2525 } }
//   chain mail_out { type filter hook output priority filter; policy accept;
//     ct state established,related counter accept
//     meta mark 0x6d670001 meta l4proto tcp counter reject with tcp reset
//     meta mark 0x6d670002 counter accept
//     meta l4proto tcp ct state new tcp dport @mail_ports counter queue num N }
inline rules::Table mailTable(const std::string& name, std::uint16_t queue) {
  using rules::Action;
  using rules::Match;
  rules::Table t;
  t.name = name;
  t.sets.push_back({"mail_ports", {25, 465, 587, 2525}});
  rules::Chain out{"mail_out", rules::Hook::Output, 0, false, {}};
  out.rules.push_back(
      {{{Match::Kind::CtStateEstablishedRelated, 0, ""}}, {Action::Kind::Accept, 0}, true});
  out.rules.push_back(
      {{{Match::Kind::MarkEquals, rules::kMarkReject, ""}, {Match::Kind::IsTcp, 0, ""}},
       {Action::Kind::RejectTcpReset, 0},
       true});
  out.rules.push_back(
      {{{Match::Kind::MarkEquals, rules::kMarkAllow, ""}}, {Action::Kind::Accept, 0}, true});
  out.rules.push_back({{{Match::Kind::IsTcp, 0, ""},
                        {Match::Kind::CtStateNew, 0, ""},
                        {Match::Kind::TcpDportInSet, 0, "mail_ports"}},
                       {Action::Kind::Queue, queue},
                       true});
  t.chains.push_back(std::move(out));
  return t;
}

// True when this process runs in a fresh network namespace of its own with `lo` up.
bool inPrivateNetns();
// Why not, when it does not (shown by GTEST_SKIP).
const std::string& netnsSkipReason();

struct CommandOutput {
  int status = -1;
  std::string out;  // stdout and stderr together
};
CommandOutput run(const std::string& command);

}  // namespace mailguard::netfilter::testing

// Skips the test unless it runs in its own network namespace: never the host's.
#define MAILGUARD_REQUIRE_NETNS()                                         \
  do {                                                                    \
    if (!::mailguard::netfilter::testing::inPrivateNetns())               \
      GTEST_SKIP() << ::mailguard::netfilter::testing::netnsSkipReason(); \
  } while (false)

namespace mailguard::netfilter::testing {

// What every netns fixture starts from: a RulesetManager in the test's own namespace and
// the queue backend this kernel offers. A derived SetUp() calls this one first and
// returns if it skipped or failed (IsSkipped(), HasFatalFailure()).
class ManagerNetns : public ::testing::Test {
 protected:
  void SetUp() override {
    MAILGUARD_REQUIRE_NETNS();
    auto opened = RulesetManager::open();
    ASSERT_TRUE(opened) << opened.error().message;
    manager_ = std::move(opened.value());
    auto probed = manager_->probeQueueBackend();
    ASSERT_TRUE(probed) << probed.error().message;
    backend_ = *probed;
  }

  std::unique_ptr<RulesetManager> manager_;
  QueueBackend backend_ = QueueBackend::NativeQueue;
};

}  // namespace mailguard::netfilter::testing
