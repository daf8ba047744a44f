#include "pending_replies.hpp"

#include <gtest/gtest.h>
#include <sdbus-c++/sdbus-c++.h>

#include <memory>
#include <string>

namespace mailguard::bus {
namespace {

TEST(PendingReplies, TakesAParkedReplyOnceByItsToken) {
  PendingReplies table;
  const auto a = table.park(std::string("a"));
  const auto b = table.park(std::string("b"));
  EXPECT_NE(a, b);
  EXPECT_EQ(table.take<std::string>(b), "b");
  EXPECT_EQ(table.take<std::string>(b), std::nullopt) << "a reply is sent at most once";
  EXPECT_EQ(table.take<std::string>(a), "a");
  EXPECT_EQ(table.size(), 0U);
}

TEST(PendingReplies, DroppedRepliesAreGoneAndTokensAreNotReused) {
  PendingReplies table;
  const auto old = table.park(std::string("owed on the old connection"));
  table.drop();
  EXPECT_EQ(table.size(), 0U);
  const auto fresh = table.park(std::string("new"));
  EXPECT_NE(fresh, old);
  EXPECT_EQ(table.take<std::string>(old), std::nullopt);
  EXPECT_EQ(table.take<std::string>(fresh), "new");
}

TEST(PendingReplies, ATokenTakenAsAnotherTypeGivesNothingAndKeepsTheReply) {
  PendingReplies table;
  const auto t = table.park(42);
  EXPECT_EQ(table.take<std::string>(t), std::nullopt);
  EXPECT_EQ(table.take<int>(t), 42);
}

TEST(PendingReplies, HoldsSdbusResultsWhichAreMoveOnly) {
  PendingReplies table;
  const auto t = table.park(sdbus::Result<bool>{});
  EXPECT_TRUE(table.take<sdbus::Result<bool>>(t).has_value());
}

TEST(CompleteReply, SendsWhileTheReplyIsOwed) {
  auto table = std::make_shared<PendingReplies>();
  const auto t = table->park(std::string("reply"));
  std::string sent;
  completeReply<std::string>(table, t, [&](const std::string& r) { sent = r; });
  EXPECT_EQ(sent, "reply");
  int sends = 0;
  completeReply<std::string>(table, t, [&](const std::string&) { ++sends; });
  EXPECT_EQ(sends, 0) << "a second completion finds the token gone";
}

TEST(CompleteReply, ALateCompletionAfterTeardownDoesNothing) {
  auto table = std::make_shared<PendingReplies>();
  const std::weak_ptr<PendingReplies> handle = table;
  const auto dropped = table->park(std::string("dropped"));
  table->drop();  // the connection is being torn down
  const auto gone = table->park(std::string("owed when the object went"));
  table.reset();  // the object, and its table, are gone
  int sends = 0;
  completeReply<std::string>(handle, dropped, [&](const std::string&) { ++sends; });
  completeReply<std::string>(handle, gone, [&](const std::string&) { ++sends; });
  EXPECT_EQ(sends, 0);
}

}  // namespace
}  // namespace mailguard::bus
