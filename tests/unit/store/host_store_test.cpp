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

TEST(HostRows, TheHouseholdScanIsOneRowReplacedByTheNext) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto none = s->loadHouseholdScan();
  ASSERT_TRUE(none.has_value());
  EXPECT_FALSE(none->has_value());
  const auto save = [&](HouseholdScanRow row) {
    return await<void>(*w,
                       [&](auto done) { w->saveHouseholdScan(std::move(row), std::move(done)); });
  };
  ASSERT_TRUE(save({at(1), "", R"({"hosts":[{"address":"198.18.0.5"}]})"}).has_value());
  ASSERT_TRUE(save({at(2), "no subnet", "{}"}).has_value());
  auto loaded = s->loadHouseholdScan();
  ASSERT_TRUE(loaded.has_value() && loaded->has_value());
  EXPECT_EQ((*loaded)->finished, at(2));
  EXPECT_EQ((*loaded)->error, "no subnet");
  EXPECT_EQ((*loaded)->json, "{}");
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

AuditRow lanAudit() {
  AuditRow row;
  row.time = at(2);
  row.family = 4;
  row.address = "198.18.4.1";
  row.port = 25;
  row.exposure = "external";
  row.relay = "closed";
  row.transcript = {"< 220 pc.test ESMTP", "> QUIT", "< 221 Bye"};
  row.lan = {{"198.18.4.0/24",
              "198.18.4.3",
              "198.18.4.1",
              "open",
              {"plain", "null-sender"},
              "reached from 198.18.4.3 (a host on your LAN 198.18.4.0/24) at 198.18.4.1",
              {"< 220 pc.test ESMTP", "> RCPT TO:<relay-test@example.net>", "< 250 Ok"}},
             {"10.0.0.0/8", "10.0.0.2", "10.0.0.1", "unreachable", {}, "timed out", {}}};
  row.authInClear = {"PLAIN", "LOGIN"};
  return row;
}

void expectSameLan(const AuditLanRow& got, const AuditLanRow& want) {
  EXPECT_EQ(got.subnet, want.subnet);
  EXPECT_EQ(got.probeAddress, want.probeAddress);
  EXPECT_EQ(got.target, want.target);
  EXPECT_EQ(got.relay, want.relay);
  EXPECT_EQ(got.accepted, want.accepted);
  EXPECT_EQ(got.reason, want.reason);
  EXPECT_EQ(got.transcript, want.transcript);
}

TEST(HostRows, LanVantagesAndAuthInClearAreFieldsOfTheirOwnAndReplacedWithTheAudit) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  const AuditRow row = lanAudit();
  AuditRow other = row;
  other.port = 587;
  other.lan.resize(1);
  other.lan[0].relay = "closed";
  other.authInClear.clear();
  ASSERT_TRUE(saveAudit(*w, {row, other}).has_value());
  auto loaded = s->loadAudit();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 2U);
  const auto& a = (*loaded)[0];
  EXPECT_EQ(a.transcript, row.transcript) << "the stranger's dialogue only";
  ASSERT_EQ(a.lan.size(), 2U);
  expectSameLan(a.lan[0], row.lan[0]);
  expectSameLan(a.lan[1], row.lan[1]);
  EXPECT_EQ(a.authInClear, row.authInClear);
  const auto& b = (*loaded)[1];
  ASSERT_EQ(b.lan.size(), 1U) << "each listener gets its own vantages";
  EXPECT_EQ(b.lan[0].relay, "closed");
  EXPECT_TRUE(b.authInClear.empty());

  AuditRow plain = row;
  plain.lan.clear();
  plain.authInClear.clear();
  ASSERT_TRUE(saveAudit(*w, {plain}).has_value());
  loaded = s->loadAudit();
  ASSERT_EQ(loaded->size(), 1U);
  EXPECT_TRUE((*loaded)[0].lan.empty()) << "the vantages went with the audit they belonged to";
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("SELECT count(*) FROM audit_lan"), "0");

  AuditRow bad = row;
  bad.lan[1].relay = "maybe";  // refused by the table's CHECK: the whole save rolls back
  ASSERT_FALSE(saveAudit(*w, {bad}));
  loaded = s->loadAudit();
  ASSERT_EQ(loaded->size(), 1U);
  EXPECT_TRUE((*loaded)[0].lan.empty());
}

TEST(HostRows, AnAuditStoredWithLanAndAuthLinesInItsTranscriptReadsIntoTheFields) {
  TempDir tmp;
  const auto file = tmp.path() / "mailguard.db";
  { auto w = startWriter(tmp.path()); }
  {
    // The schema before: the LAN vantages and AUTH mechanisms were summary lines after the
    // stranger's dialogue, each "# lan" line followed by that subnet's dialogue.
    RawDb raw(file);
    raw.exec(
        "ALTER TABLE programs DROP COLUMN decided; DROP TABLE audit_lan; ALTER TABLE audit_results "
        "DROP COLUMN auth_in_clear; "
        "PRAGMA user_version = 8");
    raw.exec(
        "INSERT INTO audit_results(time, family, address, port, exposure, relay, transcript) "
        "VALUES(1, 4, '198.18.4.1', 25, 'external', 'closed', '< 220 pc.test ESMTP\n> QUIT\n"
        "# auth-in-clear PLAIN LOGIN\n"
        "# lan 198.18.4.0/24 from 198.18.4.3 to 198.18.4.1: open plain,null-sender | reached "
        "from 198.18.4.3 (a host on your LAN 198.18.4.0/24) at 198.18.4.1\n"
        "< 220 pc.test ESMTP\n> RCPT TO:<relay-test@example.net>\n< 250 Ok\n"
        "# lan garbage without the parts\n"
        "# lan 10.0.0.0/8 from 10.0.0.2 to 10.0.0.1: unreachable | timed out'), "
        "(2, 4, '127.0.0.1', 587, 'loopback', 'closed', '< 220 pc.test ESMTP')");
  }
  auto s = openStore(tmp.path());
  auto loaded = s->loadAudit();
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  ASSERT_EQ(loaded->size(), 2U);
  const AuditRow want = lanAudit();
  const auto& a = (*loaded)[0];
  EXPECT_EQ(a.transcript, (std::vector<std::string>{"< 220 pc.test ESMTP", "> QUIT"}));
  ASSERT_EQ(a.lan.size(), 2U);
  expectSameLan(a.lan[0], want.lan[0]);
  expectSameLan(a.lan[1], want.lan[1]);
  EXPECT_EQ(a.authInClear, want.authInClear);
  EXPECT_TRUE((*loaded)[1].lan.empty());
  EXPECT_EQ((*loaded)[1].transcript, (std::vector<std::string>{"< 220 pc.test ESMTP"}));
  RawDb raw(file);
  EXPECT_EQ(raw.text("PRAGMA user_version"), kSchemaVersion);
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
