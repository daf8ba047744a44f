#include "mailguard/mta/held_messages.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

namespace mailguard::mta {
namespace {

TEST(MtaHeldMessages, SurviveReopeningAndLeaveWhenRemoved) {
  char dir[] = "/tmp/mg-held-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const auto file = std::filesystem::path(dir) / "mta-held";
  {
    auto held = HeldMessages::open(file);
    ASSERT_TRUE(held.has_value());
    ASSERT_TRUE(held->add(7, "1xaRHm-0001Xs-2v").has_value());
    ASSERT_TRUE(held->add(7, "1xaRHm-0001Xn-2p").has_value());
    ASSERT_TRUE(held->add(9, "1xaRHm-0001Xd-2Z").has_value());
  }
  auto again = HeldMessages::open(file);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->count(7), 2u);
  EXPECT_EQ(again->size(), 3u);
  ASSERT_TRUE(again->remove({"1xaRHm-0001Xs-2v", "1xaRHm-0001Xn-2p"}).has_value());
  EXPECT_EQ(again->programs(), (std::vector<std::int64_t>{9}));
  EXPECT_EQ(HeldMessages::open(file)->size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(MtaHeldMessages, RememberWhichPostfixInstanceHoldsEachMessage) {
  char dir[] = "/tmp/mg-held-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const auto file = std::filesystem::path(dir) / "mta-held";
  {
    auto held = HeldMessages::open(file);
    ASSERT_TRUE(held.has_value());
    ASSERT_TRUE(held->add(7, "1xaRHm-0001Xs-2v").has_value());
    ASSERT_TRUE(held->add(7, "4QZ1cN0xYz2B", "postfix:/etc/postfix-out").has_value());
    EXPECT_FALSE(held->add(7, "4QZ1cN0xYz2C", "postfix:/etc/post fix").has_value());
  }
  auto again = HeldMessages::open(file);
  ASSERT_TRUE(again.has_value());
  const auto entries = again->entries(7);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].where, "");
  EXPECT_EQ(entries[1].id, "4QZ1cN0xYz2B");
  EXPECT_EQ(entries[1].where, "postfix:/etc/postfix-out");
  EXPECT_EQ(again->of(7), (std::vector<std::string>{"1xaRHm-0001Xs-2v", "4QZ1cN0xYz2B"}));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace mailguard::mta
