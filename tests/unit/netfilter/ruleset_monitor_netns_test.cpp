// RulesetMonitor and RulesetManager::fingerprint against the real kernel, each test in
// a fresh network namespace (netns_main.cpp): what the kernel really announces for
// guardd's own batches and for `nft`'s, and that a re-apply fingerprints the same.
#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <string>

#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/netfilter/ruleset_monitor.hpp"
#include "netns.hpp"

namespace mailguard::netfilter {
namespace {

using testing::mailTable;
using testing::run;

constexpr const char* kTable = "mgtest_monitor";

class RulesetMonitorNetns : public testing::ManagerNetns {
 protected:
  void SetUp() override {
    ManagerNetns::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    auto monitor = RulesetMonitor::open();
    ASSERT_TRUE(monitor) << monitor.error().message;
    monitor_ = std::move(monitor.value());
  }

  void TearDown() override {
    if (manager_) {
      EXPECT_TRUE(manager_->remove(kTable));
    }
  }

  // Everything announced until a NEWGEN arrives (the end of one transaction).
  std::vector<RulesetEvent> transaction() {
    std::vector<RulesetEvent> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{monitor_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      auto batch = monitor_->readAvailable();
      EXPECT_TRUE(batch) << batch.error().message;
      if (!batch) return out;
      EXPECT_FALSE(batch->lost);
      bool ended = false;
      for (auto& e : batch->events) {
        ended = ended || e.kind == RulesetEvent::Kind::Generation;
        out.push_back(std::move(e));
      }
      if (ended) return out;
    }
    ADD_FAILURE() << "no NEWGEN within 5 s";
    return out;
  }

  std::unique_ptr<RulesetMonitor> monitor_;
};

TEST_F(RulesetMonitorNetns, OwnBatchCarriesTheManagersPortId) {
  ASSERT_TRUE(manager_->apply(mailTable(kTable, 9), backend_));
  const auto events = transaction();
  bool sawTable = false;
  for (const auto& e : events) {
    EXPECT_EQ(e.portId, manager_->portId()) << e.describe();
    sawTable = sawTable || e.touches(kTable);
  }
  EXPECT_TRUE(sawTable);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().kind, RulesetEvent::Kind::Generation);
  EXPECT_EQ(events.back().pid, static_cast<std::uint32_t>(::getpid()));
}

TEST_F(RulesetMonitorNetns, NftDeletingTheTableIsAForeignChangeNamingNft) {
  ASSERT_TRUE(manager_->apply(mailTable(kTable, 9), backend_));
  (void)transaction();
  const auto deleted = run(std::string("nft delete table inet ") + kTable);
  ASSERT_EQ(deleted.status, 0) << deleted.out;
  const auto events = transaction();
  bool sawDelete = false;
  for (const auto& e : events) {
    EXPECT_NE(e.portId, manager_->portId());
    if (e.touches(kTable) && e.describe() == "deleted table") sawDelete = true;
  }
  EXPECT_TRUE(sawDelete);
  ASSERT_FALSE(events.empty());
  const auto& gen = events.back();
  ASSERT_EQ(gen.kind, RulesetEvent::Kind::Generation);
  EXPECT_EQ(gen.comm, "nft");
  EXPECT_TRUE(gen.pid.has_value());
}

TEST_F(RulesetMonitorNetns, FingerprintIsStableAcrossReapplyAndSeesForeignRules) {
  ASSERT_TRUE(manager_->apply(mailTable(kTable, 9), backend_));
  auto first = manager_->fingerprint(kTable);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_NE(first->find("mail_out"), std::string::npos) << *first;
  EXPECT_NE(first->find("mail_ports"), std::string::npos) << *first;
  // Traffic moves counters, not the ruleset: a SYN to port 25 (queued to nobody, so
  // dropped) counts in the queue rule and changes no fingerprint.
  (void)run("timeout 0.3 bash -c 'echo > /dev/tcp/127.0.0.1/25' 2>/dev/null");
  const auto listed = run(std::string("nft list table inet ") + kTable);
  EXPECT_NE(listed.out.find("counter packets 1 "), std::string::npos) << listed.out;
  auto counted = manager_->fingerprint(kTable);
  ASSERT_TRUE(counted) << counted.error().message;
  EXPECT_EQ(*first, *counted);
  ASSERT_TRUE(manager_->apply(mailTable(kTable, 9), backend_));
  auto again = manager_->fingerprint(kTable);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(*first, *again);

  const auto added =
      run(std::string("nft insert rule inet ") + kTable + " mail_out tcp dport 25 accept");
  ASSERT_EQ(added.status, 0) << added.out;
  auto tampered = manager_->fingerprint(kTable);
  ASSERT_TRUE(tampered) << tampered.error().message;
  EXPECT_NE(*first, *tampered);

  ASSERT_TRUE(manager_->remove(kTable));
  auto gone = manager_->fingerprint(kTable);
  ASSERT_TRUE(gone) << gone.error().message;
  EXPECT_TRUE(gone->empty());
}

}  // namespace
}  // namespace mailguard::netfilter
