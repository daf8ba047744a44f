// The host firewall's settings, inbound probes and the last mail-server audit.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "store_test_util.hpp"

namespace mailguard::store {
namespace {

using namespace test;

TimePoint at(int seconds) { return TimePoint{} + std::chrono::seconds(1'700'000'000 + seconds); }

Result<void> saveFirewall(StoreWriter& w, StoredFirewall fw) {
  return await<void>(w, [&](auto done) { w.saveFirewall(std::move(fw), std::move(done)); });
}

Result<void> saveAudit(StoreWriter& w, std::vector<AuditRow> rows) {
  return await<void>(w, [&](auto done) { w.saveAudit(std::move(rows), std::move(done)); });
}

TEST(HostRows, FirewallIsOffAtFirstAndWhatWasSavedComesBackAfterReopening) {
  TempDir tmp;
  {
    auto reader = openStore(tmp.path());
    auto w = startWriter(tmp.path());
    auto fresh = reader->loadFirewall();
    ASSERT_TRUE(fresh.has_value()) << fresh.error().message;
    EXPECT_FALSE(fresh->enabled);
    EXPECT_TRUE(fresh->services.empty());
    StoredFirewall fw{true, {{"8080/tcp", true}, {"ssh", false}}, {"10.0.0.0/8", "fd00::/8"}};
    ASSERT_TRUE(saveFirewall(*w, fw).has_value());
    fw.services = {{"ssh", false}};
    ASSERT_TRUE(saveFirewall(*w, fw).has_value());  // replaces, not adds
  }
  auto loaded = openStore(tmp.path())->loadFirewall();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_TRUE(loaded->enabled);
  ASSERT_EQ(loaded->services.size(), 1U);
  EXPECT_EQ(loaded->services[0].name, "ssh");
  EXPECT_EQ(loaded->localSubnets, (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
}

TEST(HostRows, ProbesOfTheSameSourceAndPortAddUpAndTheTableStaysBounded) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  w->submit(std::vector<ProbeRow>{{"192.0.2.1", 25, 3, at(0), at(1)}});
  w->submit(std::vector<ProbeRow>{{"192.0.2.1", 25, 4, at(5), at(6)},
                                  {"192.0.2.1", 587, 1, at(6), at(6)}});
  w->flush();
  auto rows = s->probes(10);
  ASSERT_TRUE(rows.has_value());
  ASSERT_EQ(rows->size(), 2U);
  const auto& smtp = (*rows)[0].port == 25 ? (*rows)[0] : (*rows)[1];
  EXPECT_EQ(smtp.count, 7U);
  EXPECT_EQ(smtp.first, at(0));
  EXPECT_EQ(smtp.last, at(6));

  std::vector<ProbeRow> flood;
  for (int i = 0; i < 1500; ++i) {
    flood.push_back({"198.51.100." + std::to_string(i % 250) + "." + std::to_string(i), 25, 1,
                     at(100 + i), at(100 + i)});
  }
  w->submit(flood);
  w->flush();
  auto all = s->probes(5000);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), kMaxProbeRows);
  EXPECT_EQ(all->front().last, at(100 + 1499)) << "newest first; the oldest were pruned";
  EXPECT_EQ(w->stats().writeErrors, 0U);
}

TEST(HostRows, TheAuditIsReplacedAsAWholeAndListsKeepTheirItems) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  AuditRow open;
  open.time = at(1);
  open.family = 4;
  open.address = "0.0.0.0";
  open.port = 25;
  open.exposure = "external";
  open.relay = "open";
  open.accepted = {"plain", "percent-hack"};
  open.transcript = {"< 220 example.org ESMTP", "> QUIT"};
  AuditRow local = open;
  local.address = "127.0.0.1";
  local.port = 587;
  local.relay = "unreachable";
  local.accepted = {};
  ASSERT_TRUE(saveAudit(*w, {open, local}).has_value());
  auto loaded = s->loadAudit();
  ASSERT_TRUE(loaded.has_value());
  ASSERT_EQ(loaded->size(), 2U);
  EXPECT_EQ((*loaded)[0].accepted, open.accepted);
  EXPECT_EQ((*loaded)[0].transcript, open.transcript);
  EXPECT_EQ((*loaded)[0].time, open.time);
  EXPECT_TRUE((*loaded)[1].accepted.empty());
  ASSERT_TRUE(saveAudit(*w, {local}).has_value());
  EXPECT_EQ(s->loadAudit()->size(), 1U);
}

TEST(HostRows, AFailedAuditSaveKeepsThePreviousAudit) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  AuditRow row;
  row.address = "0.0.0.0";
  row.port = 25;
  row.exposure = "external";
  row.relay = "closed";
  ASSERT_TRUE(saveAudit(*w, {row}));
  AuditRow bad = row;
  bad.relay = "maybe";  // refused by the table's CHECK: the whole save rolls back
  auto failed = saveAudit(*w, {row, bad});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message.rfind("Failed to save the audit in '", 0), 0U);
  EXPECT_EQ(s->loadAudit()->size(), 1U);
}

TEST(HostRows, TheOutsideReportIsEmptyAtFirstThenTheLastOneSavedSurvivesReopening) {
  TempDir tmp;
  {
    auto s = openStore(tmp.path());
    auto w = startWriter(tmp.path());
    auto fresh = s->loadOutsideReport();
    ASSERT_TRUE(fresh.has_value()) << fresh.error().message;
    EXPECT_EQ(*fresh, "");
    ASSERT_TRUE(await<void>(*w, [&](auto done) { w->saveOutsideReport("{\"a\":1}", done); }));
    ASSERT_TRUE(await<void>(*w, [&](auto done) { w->saveOutsideReport("{\"b\":2}", done); }));
  }
  auto loaded = openStore(tmp.path())->loadOutsideReport();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(*loaded, "{\"b\":2}");
}

}  // namespace
}  // namespace mailguard::store
