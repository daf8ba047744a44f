// An alert is listed from the moment it is raised: the store writer may be behind (a
// quarantine visible before its alert was, under load), or the disk full.
#include "alert_sink.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace mailguard::service {
namespace {

store::AlertRecord alert(std::int64_t id, std::string summary = "") {
  store::AlertRecord a;
  a.id = id;
  a.tier = "hard";
  a.summary = summary.empty() ? "alert " + std::to_string(id) : std::move(summary);
  return a;
}

std::vector<std::int64_t> ids(const std::vector<store::AlertRecord>& list) {
  std::vector<std::int64_t> out;
  for (const auto& a : list) out.push_back(a.id);
  return out;
}

TEST(WithUnwritten, AddsWhatTheStoreLacksNewestFirstWithinTheLimit) {
  const auto merged = withUnwritten({alert(3), alert(2), alert(1)}, {alert(5), alert(4)}, 10);
  EXPECT_EQ(ids(merged), (std::vector<std::int64_t>{5, 4, 3, 2, 1}));
  EXPECT_EQ(ids(withUnwritten({alert(3), alert(2)}, {alert(5), alert(4)}, 3)),
            (std::vector<std::int64_t>{5, 4, 3}));
  EXPECT_TRUE(withUnwritten({alert(1)}, {alert(2)}, 0).empty());
}

TEST(WithUnwritten, AStoredAlertWinsOverItsUnwrittenCopy) {
  auto stored = alert(4, "stored");
  stored.acknowledged = true;
  const auto merged = withUnwritten({stored}, {alert(4, "copy")}, 10);
  ASSERT_EQ(merged.size(), 1U);
  EXPECT_EQ(merged[0].summary, "stored");
  EXPECT_TRUE(merged[0].acknowledged);
}

TEST(AlertSink, EveryRaisedAlertIsListedAtOnceAndForgottenOnceWritten) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("mg-alert-sink-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto reader = store::SqliteStore::open(dir);
  ASSERT_TRUE(reader) << reader.error().message;
  auto writer = store::StoreWriter::start(dir);
  ASSERT_TRUE(writer) << writer.error().message;
  const AlertSink::Observer none;
  AlertSink sink(**writer, 0, none);
  for (int i = 0; i < 50; ++i) {
    const auto id = sink.raise(alert(0));
    // Whether the writer has got to it yet or not, a reader sees it: the unwritten ones
    // read first (as Guard::alerts does), so one written in between is in the store.
    const auto unwritten = sink.unwritten();
    auto stored = (*reader)->alerts(100);
    ASSERT_TRUE(stored) << stored.error().message;
    const auto listed = withUnwritten(*stored, unwritten, 100);
    ASSERT_EQ(listed.size(), static_cast<std::size_t>(i + 1));
    EXPECT_EQ(listed.front().id, id);
  }
  (*writer)->flush();
  EXPECT_TRUE(sink.unwritten().empty());
  auto stored = (*reader)->alerts(100);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->size(), 50U);
  writer->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mailguard::service
