// TamperTracker: which notifications are tampering, coalescing a transaction into one
// restore, and one alert per window with a count. Time is passed in; no sleeps.
#include "tamper_tracker.hpp"

#include <gtest/gtest.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

namespace mailguard::service {
namespace {

using netfilter::RulesetEvent;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr std::uint32_t kOwn = 1000;
constexpr std::uint32_t kNft = 2000;

RulesetEvent change(std::uint16_t type, std::uint32_t port, std::string object = {},
                    std::string table = "mailguard", std::uint8_t family = NFPROTO_INET) {
  RulesetEvent e;
  e.type = type;
  e.family = family;
  e.portId = port;
  e.table = std::move(table);
  e.object = std::move(object);
  return e;
}

RulesetEvent generation(std::uint32_t port, std::uint32_t pid, std::string comm) {
  RulesetEvent e;
  e.kind = RulesetEvent::Kind::Generation;
  e.type = NFT_MSG_NEWGEN;
  e.portId = port;
  e.pid = pid;
  e.comm = std::move(comm);
  return e;
}

// `nft delete table inet mailguard`, as the kernel announces it.
void deleteTable(TamperTracker& t, std::uint32_t port, std::uint32_t pid) {
  t.observe(change(NFT_MSG_DELRULE, port, "mail_out"));
  t.observe(change(NFT_MSG_DELRULE, port, "mail_out"));
  t.observe(change(NFT_MSG_DELSET, port, "mail_ports"));
  t.observe(change(NFT_MSG_DELCHAIN, port, "mail_out"));
  t.observe(change(NFT_MSG_DELTABLE, port));
  t.observe(generation(port, pid, "nft"));
}

TEST(TamperTracker, OwnChangesAreNeverTampering) {
  TamperTracker t("mailguard", kOwn);
  deleteTable(t, kOwn, 1);  // guardd's own replace deletes and re-adds the table
  t.observe(change(NFT_MSG_NEWTABLE, kOwn));
  t.observe(change(NFT_MSG_NEWRULE, kOwn, "mail_out"));
  EXPECT_FALSE(t.restorePending());
  EXPECT_FALSE(t.restored(std::chrono::steady_clock::time_point{}).has_value());
  EXPECT_EQ(t.restores(), 0U);
}

TEST(TamperTracker, OtherTablesAreIgnored) {
  TamperTracker t("mailguard", kOwn);
  t.observe(change(NFT_MSG_DELTABLE, kNft, {}, "filter"));
  t.observe(change(NFT_MSG_NEWRULE, kNft, "input", "mailguard", NFPROTO_IPV4));
  t.observe(change(NFT_MSG_DELTABLE, kNft, {}, "mailguard_probe"));
  t.observe(generation(kNft, 7, "nft"));
  EXPECT_FALSE(t.restorePending());
}

TEST(TamperTracker, ATransactionBecomesOneRestoreNamingTheProcess) {
  TamperTracker t("mailguard", kOwn);
  const std::chrono::steady_clock::time_point now{seconds(100)};
  t.observe(change(NFT_MSG_DELTABLE, kNft));
  EXPECT_TRUE(t.restorePending());
  EXPECT_FALSE(t.pendingComplete());  // the NEWGEN naming the process is still to come
  t.observe(generation(kNft, 4242, "nft"));
  EXPECT_TRUE(t.pendingComplete());
  const auto report = t.restored(now);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->restores, 1U);
  EXPECT_EQ(report->changesText(), "deleted table");
  EXPECT_EQ(report->actorsText(), "nft (pid 4242)");
  EXPECT_FALSE(t.restorePending());
  EXPECT_EQ(t.restores(), 1U);
}

TEST(TamperTracker, RepeatedChangesAreCounted) {
  TamperTracker t("mailguard", kOwn);
  t.observe(change(NFT_MSG_DELRULE, kNft, "mail_out"));
  t.observe(change(NFT_MSG_DELRULE, kNft, "mail_out"));
  t.observe(change(NFT_MSG_NEWRULE, kNft, "mail_out"));
  const auto report = t.restored(std::chrono::steady_clock::time_point{seconds(1)});
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->changesText(),
            "deleted rule from chain 'mail_out' (x2); added rule to chain 'mail_out'");
  EXPECT_EQ(report->actorsText(), "an unknown process");
}

TEST(TamperTracker, OneAlertPerWindowWithACountButEveryRestoreCounts) {
  TamperTracker t("mailguard", kOwn, seconds(60));
  std::chrono::steady_clock::time_point now{seconds(1000)};
  deleteTable(t, kNft, 10);
  ASSERT_TRUE(t.restored(now).has_value());  // the first one is reported at once
  EXPECT_FALSE(t.nextDue().has_value());
  // A script deleting the table every 100 ms for ten seconds.
  for (std::uint32_t i = 0; i < 100; ++i) {
    now += milliseconds(100);
    deleteTable(t, kNft + 1 + i, 11 + i);
    EXPECT_TRUE(t.restorePending());
    EXPECT_FALSE(t.restored(now).has_value()) << i;
  }
  EXPECT_EQ(t.restores(), 101U);
  ASSERT_TRUE(t.nextDue().has_value());
  EXPECT_EQ(*t.nextDue(), std::chrono::steady_clock::time_point{seconds(1060)});
  EXPECT_FALSE(t.due(now).has_value());  // still inside the window
  const auto summary = t.due(*t.nextDue());
  ASSERT_TRUE(summary.has_value());
  EXPECT_EQ(summary->restores, 100U);
  EXPECT_EQ(summary->actors.size(), TamperTracker::kMaxActors);
  EXPECT_NE(summary->changesText().find("deleted table (x100)"), std::string::npos);
  EXPECT_FALSE(t.due(*t.nextDue() + seconds(1)).has_value());  // nothing held back now
  EXPECT_FALSE(t.nextDue().has_value());
}

TEST(TamperTracker, AfterAQuietWindowTheNextChangeAlertsAtOnce) {
  TamperTracker t("mailguard", kOwn, seconds(60));
  std::chrono::steady_clock::time_point now{seconds(1000)};
  deleteTable(t, kNft, 10);
  ASSERT_TRUE(t.restored(now).has_value());
  now += seconds(61);
  deleteTable(t, kNft + 1, 11);
  const auto report = t.restored(now);
  ASSERT_TRUE(report.has_value());
  EXPECT_EQ(report->restores, 1U);
}

TEST(TamperTracker, LostEventsResyncAlertsOnlyWhenTheTableDiffered) {
  TamperTracker t("mailguard", kOwn);
  std::chrono::steady_clock::time_point now{seconds(1000)};
  t.lostEvents();
  EXPECT_TRUE(t.restorePending());
  EXPECT_TRUE(t.resyncPending());
  EXPECT_FALSE(t.restored(now, false).has_value());
  EXPECT_EQ(t.restores(), 0U);
  EXPECT_FALSE(t.restorePending());

  t.lostEvents();
  const auto report = t.restored(now, true);
  ASSERT_TRUE(report.has_value());
  EXPECT_TRUE(report->lostEvents);
  EXPECT_NE(report->changesText().find("lost change notifications"), std::string::npos);
  EXPECT_EQ(t.restores(), 1U);
}

}  // namespace
}  // namespace mailguard::service
