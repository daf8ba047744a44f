#include "mailguard/store/host_store.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "mailguard/store/store.hpp"

namespace mailguard::store {
namespace {

class HostStateDir {
 public:
  HostStateDir() {
    std::string tmpl = "/tmp/mailguard-hoststore-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    auto opened = SqliteStore::open(path_);  // creates and migrates the schema
    if (!opened) throw std::runtime_error(opened.error().message);
    main_ = std::move(opened.value());
  }
  ~HostStateDir() {
    main_.reset();
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  HostStateDir(const HostStateDir&) = delete;
  HostStateDir& operator=(const HostStateDir&) = delete;
  std::unique_ptr<HostStore> open() {
    auto s = HostStore::open(path_);
    if (!s) throw std::runtime_error(s.error().message);
    return std::move(s.value());
  }

 private:
  std::filesystem::path path_;
  std::unique_ptr<SqliteStore> main_;
};

TimePoint at(int seconds) { return TimePoint{} + std::chrono::seconds(1'700'000'000 + seconds); }

TEST(HostStore, FirewallIsOffAtFirstAndWhatWasSavedComesBackAfterReopening) {
  HostStateDir dir;
  {
    auto s = dir.open();
    auto fresh = s->loadFirewall();
    ASSERT_TRUE(fresh.has_value()) << fresh.error().message;
    EXPECT_FALSE(fresh->enabled);
    EXPECT_TRUE(fresh->services.empty());
    StoredFirewall fw{true, {{"8080/tcp", true}, {"ssh", false}}, {"10.0.0.0/8", "fd00::/8"}};
    ASSERT_TRUE(s->saveFirewall(fw).has_value());
    fw.services = {{"ssh", false}};
    ASSERT_TRUE(s->saveFirewall(fw).has_value());  // replaces, not adds
  }
  auto loaded = dir.open()->loadFirewall();
  ASSERT_TRUE(loaded.has_value());
  EXPECT_TRUE(loaded->enabled);
  ASSERT_EQ(loaded->services.size(), 1U);
  EXPECT_EQ(loaded->services[0].name, "ssh");
  EXPECT_EQ(loaded->localSubnets, (std::vector<std::string>{"10.0.0.0/8", "fd00::/8"}));
}

TEST(HostStore, ProbesOfTheSameSourceAndPortAddUpAndTheTableStaysBounded) {
  HostStateDir dir;
  auto s = dir.open();
  ASSERT_TRUE(s->addProbes({{"192.0.2.1", 25, 3, at(0), at(1)}}).has_value());
  ASSERT_TRUE(
      s->addProbes({{"192.0.2.1", 25, 4, at(5), at(6)}, {"192.0.2.1", 587, 1, at(6), at(6)}})
          .has_value());
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
  ASSERT_TRUE(s->addProbes(flood).has_value());
  auto all = s->probes(5000);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(all->size(), HostStore::kMaxProbeRows);
  EXPECT_EQ(all->front().last, at(100 + 1499)) << "newest first; the oldest were pruned";
}

TEST(HostStore, TheAuditIsReplacedAsAWholeAndListsKeepTheirItems) {
  HostStateDir dir;
  auto s = dir.open();
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
  ASSERT_TRUE(s->saveAudit({open, local}).has_value());
  auto loaded = s->loadAudit();
  ASSERT_TRUE(loaded.has_value());
  ASSERT_EQ(loaded->size(), 2U);
  EXPECT_EQ((*loaded)[0].accepted, open.accepted);
  EXPECT_EQ((*loaded)[0].transcript, open.transcript);
  EXPECT_TRUE((*loaded)[1].accepted.empty());
  ASSERT_TRUE(s->saveAudit({local}).has_value());
  EXPECT_EQ(s->loadAudit()->size(), 1U);
}

}  // namespace
}  // namespace mailguard::store
