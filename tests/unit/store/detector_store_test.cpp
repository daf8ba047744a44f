#include "mailguard/store/detector_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "mailguard/store/store.hpp"

namespace mailguard::store {
namespace {

class StateDir {
 public:
  StateDir() {
    std::string tmpl = "/tmp/mailguard-detstore-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    auto opened = SqliteStore::open(path_);  // creates and migrates the schema
    if (!opened) throw std::runtime_error(opened.error().message);
    main_ = std::move(opened.value());
  }
  ~StateDir() {
    main_.reset();
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  SqliteStore& main() { return *main_; }

 private:
  std::filesystem::path path_;
  std::unique_ptr<SqliteStore> main_;
};

AlertRecord alert(const std::string& tier, std::optional<std::int64_t> programId = {}) {
  AlertRecord a;
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

TEST(DetectorStore, StoresAlertsNewestFirstAndAcknowledgesThem) {
  StateDir dir;
  auto s = DetectorStore::open(dir.path());
  ASSERT_TRUE(s) << s.error().message;
  auto& store = *s.value();
  auto soft = alert("soft");
  auto hard = alert("hard");
  ASSERT_TRUE(store.addAlert(soft));
  ASSERT_TRUE(store.addAlert(hard));
  EXPECT_LT(soft.id, hard.id);
  auto all = store.alerts(50);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2U);
  EXPECT_EQ((*all)[0].id, hard.id);
  EXPECT_EQ((*all)[0].reasons, hard.reasons);
  EXPECT_EQ((*all)[0].evidence, hard.evidence);
  EXPECT_EQ((*all)[0].time, hard.time);
  EXPECT_FALSE((*all)[0].acknowledged);

  auto acked = store.acknowledge(hard.id);
  ASSERT_TRUE(acked);
  EXPECT_TRUE(acked.value());
  EXPECT_TRUE(store.acknowledge(hard.id).value());  // twice is fine
  EXPECT_FALSE(store.acknowledge(hard.id + 100).value());
  EXPECT_TRUE(store.alert(hard.id).value()->acknowledged);
  EXPECT_FALSE(store.alert(hard.id + 100).value().has_value());
  EXPECT_EQ(store.alerts(1)->size(), 1U);
}

TEST(DetectorStore, KeepsAnAlertWhoseProgramRowIsNotWrittenYet) {
  StateDir dir;
  auto store = std::move(DetectorStore::open(dir.path()).value());
  auto a = alert("hard", 42);
  ASSERT_TRUE(store->addAlert(a));
  EXPECT_FALSE(store->alert(a.id).value()->programId.has_value());
}

TEST(DetectorStore, ReplacesTheSavedStateAsAWholeAndKeepsItAcrossReopen) {
  StateDir dir;
  {
    auto store = std::move(DetectorStore::open(dir.path()).value());
    ASSERT_TRUE(store->saveState({{"a/0", "{1}"}, {"b/0", "{2}"}}));
    ASSERT_TRUE(store->saveState({{"c/1000", "{3}"}}));
  }
  auto store = std::move(DetectorStore::open(dir.path()).value());
  auto rows = store->loadState();
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1U);
  EXPECT_EQ((*rows)[0].first, "c/1000");
  EXPECT_EQ((*rows)[0].second, "{3}");
}

}  // namespace
}  // namespace mailguard::store
