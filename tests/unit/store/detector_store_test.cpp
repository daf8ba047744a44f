// The detector's rows: alerts (kept through a full disk) and its persisted state.
#include <gtest/gtest.h>

#include <string>

#include "store_test_util.hpp"

namespace mailguard::store {
namespace {

using namespace test;

AlertRecord alert(std::int64_t id, const std::string& tier,
                  std::optional<std::int64_t> programId = {}) {
  AlertRecord a;
  a.id = id;
  a.time = TimePoint{std::chrono::seconds(1'700'000'000)};
  a.programId = programId;
  a.principal = "ab12/1000";
  a.path = "/tmp/bot";
  a.uid = 1000;
  a.tier = tier;
  a.summary = "quarantined: 9.4 nats on DIRECT";
  a.reasons = {"direct-to-mx 6.00 nats x4", "new-destination 2.00 nats x4"};
  a.evidence = R"({"parents": ["1 /sbin/init"]})";
  return a;
}

Result<void> addAlert(StoreWriter& w, AlertRecord a) {
  return await<void>(w, [&](auto done) { w.addAlert(std::move(a), std::move(done)); });
}

Result<bool> acknowledge(StoreWriter& w, std::int64_t id) {
  return await<bool>(w, [&](auto done) { w.acknowledgeAlert(id, std::move(done)); });
}

struct Fixture {
  TempDir tmp;
  std::unique_ptr<SqliteStore> reader = openStore(tmp.path());
  std::unique_ptr<StoreWriter> writer = startWriter(tmp.path());
};

TEST(DetectorRows, StoresAlertsNewestFirstAndAcknowledgesThem) {
  Fixture f;
  EXPECT_EQ(*f.reader->lastAlertId(), 0);
  const auto soft = alert(1, "soft");
  const auto hard = alert(2, "hard");
  ASSERT_TRUE(addAlert(*f.writer, soft));
  ASSERT_TRUE(addAlert(*f.writer, hard));
  EXPECT_EQ(*f.reader->lastAlertId(), 2);
  auto all = f.reader->alerts(50);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ((*all)[0].id, hard.id);
  EXPECT_EQ((*all)[0].tier, "hard");
  EXPECT_EQ((*all)[0].reasons, hard.reasons);
  EXPECT_EQ((*all)[0].evidence, hard.evidence);
  EXPECT_EQ((*all)[0].time, hard.time);
  EXPECT_FALSE((*all)[0].acknowledged);

  auto acked = acknowledge(*f.writer, hard.id);
  ASSERT_TRUE(acked);
  EXPECT_TRUE(acked.value());
  EXPECT_TRUE(acknowledge(*f.writer, hard.id).value());  // twice is fine
  EXPECT_FALSE(acknowledge(*f.writer, hard.id + 100).value());
  EXPECT_TRUE(f.reader->alert(hard.id).value()->acknowledged);
  EXPECT_FALSE(f.reader->alert(hard.id + 100).value().has_value());
  EXPECT_EQ(f.reader->alerts(1)->size(), 1U);
}

TEST(DetectorRows, KeepsAnAlertWhoseProgramRowIsNotWritten) {
  Fixture f;
  ASSERT_TRUE(addAlert(*f.writer, alert(1, "hard", 42)));
  EXPECT_FALSE(f.reader->alert(1).value()->programId.has_value());
}

TEST(DetectorRows, AttributesAnAlertToAProgramSightedJustBefore) {
  Fixture f;
  ProgramRecord p;
  p.id = 42;
  p.identity.path = "/tmp/bot";
  f.writer->submit(p);  // a record, queued before the durable alert
  ASSERT_TRUE(addAlert(*f.writer, alert(1, "hard", 42)));
  EXPECT_EQ(f.reader->alert(1).value()->programId, 42);
}

TEST(DetectorRows, RefusesAnAlertIdThatIsTakenWithoutKeepingIt) {
  Fixture f;
  ASSERT_TRUE(addAlert(*f.writer, alert(1, "soft")));
  auto dup = addAlert(*f.writer, alert(1, "hard"));
  ASSERT_FALSE(dup);
  EXPECT_NE(dup.error().message.find("alert 1 was refused"), std::string::npos);
  EXPECT_EQ(f.writer->stats().unsavedAlerts, 0U);
  EXPECT_EQ(f.reader->alert(1).value()->tier, "soft");
}

TEST(DetectorRows, KeepsAlertsWhileTheDiskIsFullAndWritesThemWithTheirIdsOnceItHasRoom) {
  TempDir tmp;
  FullDiskVfs vfs;
  auto reader = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  FullDiskVfs::full = true;
  auto first = addAlert(*w, alert(7, "soft"));
  auto second = addAlert(*w, alert(8, "hard"));
  auto acked = acknowledge(*w, 8);  // a kept alert can be acknowledged
  FullDiskVfs::full = false;
  ASSERT_FALSE(first);
  ASSERT_FALSE(second);
  EXPECT_NE(second.error().message.find("database or disk is full"), std::string::npos);
  ASSERT_TRUE(acked) << acked.error().message;  // an UPDATE of no row writes nothing
  EXPECT_TRUE(*acked);
  auto stats = w->stats();
  EXPECT_EQ(stats.unsavedAlerts, 2U);
  EXPECT_EQ(stats.alertsDropped, 0U);
  EXPECT_NE(stats.lastError.find("database or disk is full"), std::string::npos);
  EXPECT_FALSE(reader->alert(7).value().has_value());

  // The next write of any kind takes the kept alerts along.
  w->submit(AttemptRecord{});
  w->flush();
  stats = w->stats();
  EXPECT_EQ(stats.unsavedAlerts, 0U);
  EXPECT_EQ(stats.lastError, "");
  auto all = reader->alerts(10);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ((*all)[0].id, 8);
  EXPECT_EQ((*all)[0].tier, "hard");
  EXPECT_TRUE((*all)[0].acknowledged);
  EXPECT_EQ((*all)[1].id, 7);
}

TEST(DetectorRows, KeepsAtMostTheNewestUnsavedAlertsAndCountsTheDropped) {
  TempDir tmp;
  FullDiskVfs vfs;
  auto reader = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  FullDiskVfs::full = true;
  const std::int64_t n = StoreWriter::kMaxUnsavedAlerts + 3;
  for (std::int64_t id = 1; id <= n; ++id) w->addAlert(alert(id, "soft"), nullptr);
  w->flush();
  FullDiskVfs::full = false;
  auto stats = w->stats();
  EXPECT_EQ(stats.unsavedAlerts, StoreWriter::kMaxUnsavedAlerts);
  EXPECT_EQ(stats.alertsDropped, 3U);

  ASSERT_TRUE(addAlert(*w, alert(n + 1, "hard")));
  EXPECT_EQ(w->stats().unsavedAlerts, 0U);
  EXPECT_FALSE(reader->alert(3).value().has_value()) << "the oldest were dropped";
  EXPECT_TRUE(reader->alert(4).value().has_value());
  EXPECT_EQ(*reader->lastAlertId(), n + 1);
  EXPECT_EQ(reader->alerts(5000)->size(), StoreWriter::kMaxUnsavedAlerts + 1);
}

TEST(DetectorRows, ReplacesTheSavedStateAsAWholeAndKeepsItAcrossReopen) {
  TempDir tmp;
  {
    auto w = startWriter(tmp.path());
    auto save = [&](std::vector<std::pair<std::string, std::string>> rows) {
      return await<void>(*w, [&](auto done) { w->saveDetectorState(rows, std::move(done)); });
    };
    ASSERT_TRUE(save({{"a/0", "{1}"}, {"b/0", "{2}"}}));
    ASSERT_TRUE(save({{"c/1000", "{3}"}}));
  }
  auto reader = openStore(tmp.path());
  auto rows = reader->loadDetectorState();
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ((*rows)[0].first, "c/1000");
  EXPECT_EQ((*rows)[0].second, "{3}");
}

}  // namespace
}  // namespace mailguard::store
