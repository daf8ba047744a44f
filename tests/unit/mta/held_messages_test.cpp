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

}  // namespace
}  // namespace mailguard::mta
