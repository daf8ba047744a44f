#include "mailguard/common/bounded_map.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace mailguard {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

template <class K, class V>
std::vector<K> keysOldestFirst(const BoundedMap<K, V>& map) {
  std::vector<K> keys;
  for (const auto& [k, v] : map) keys.push_back(k);
  return keys;
}

TEST(BoundedMap, EvictsTheOldestNotTheSmallestKey) {
  BoundedMap<int, std::string> map(3);
  map.put(30, "first");
  map.put(10, "second");
  map.put(20, "third");
  map.put(5, "fourth");  // over capacity: 30 is the oldest, 5 the smallest
  EXPECT_FALSE(map.contains(30));
  EXPECT_TRUE(map.contains(5));
  EXPECT_TRUE(map.contains(10));
  EXPECT_TRUE(map.contains(20));
  EXPECT_EQ(map.size(), 3U);
  EXPECT_EQ(map.evicted(), 1U);
  EXPECT_THAT(keysOldestFirst(map), ElementsAre(10, 20, 5));
}

TEST(BoundedMap, PutAssignsAndRefreshesAnExistingEntry) {
  BoundedMap<int, int> map(2);
  map.put(1, 100);
  map.put(2, 200);
  EXPECT_EQ(map.put(1, 101), 101);  // 1 is now the newest
  map.put(3, 300);                  // so 2 goes
  EXPECT_FALSE(map.contains(2));
  ASSERT_NE(map.find(1), nullptr);
  EXPECT_EQ(*map.find(1), 101);
  EXPECT_THAT(keysOldestFirst(map), ElementsAre(1, 3));
}

TEST(BoundedMap, TryPutLeavesAPresentEntryAndItsAgeAlone) {
  BoundedMap<int, int> map(2);
  auto [first, inserted] = map.tryPut(1, 100);
  EXPECT_TRUE(inserted);
  EXPECT_EQ(first, 100);
  map.put(2, 200);
  auto [again, insertedAgain] = map.tryPut(1, 999);
  EXPECT_FALSE(insertedAgain);
  EXPECT_EQ(again, 100);
  map.put(3, 300);  // 1 is still the oldest
  EXPECT_FALSE(map.contains(1));
  EXPECT_THAT(keysOldestFirst(map), ElementsAre(2, 3));
}

TEST(BoundedMap, TryPutReturnsAReferenceThatChangesTheStoredValue) {
  BoundedMap<std::string, int> map(4);
  map.tryPut("a", 1).first += 41;
  EXPECT_EQ(*map.find("a"), 42);
}

TEST(BoundedMap, FindDoesNotRefreshButTouchDoes) {
  BoundedMap<int, int> map(2);
  map.put(1, 1);
  map.put(2, 2);
  ASSERT_NE(map.find(1), nullptr);
  map.put(3, 3);
  EXPECT_FALSE(map.contains(1));  // find() did not keep it

  map.touch(2);
  map.put(4, 4);
  EXPECT_TRUE(map.contains(2));  // touch() did
  EXPECT_FALSE(map.contains(3));
  map.touch(99);  // absent: nothing happens
  EXPECT_EQ(map.size(), 2U);
}

TEST(BoundedMap, EraseAndEraseIfRemoveFromLookUpAndAgeOrder) {
  BoundedMap<int, int> map(10);
  for (int i = 0; i < 6; ++i) map.put(i, i * 10);
  EXPECT_TRUE(map.erase(2));
  EXPECT_FALSE(map.erase(2));
  EXPECT_EQ(map.eraseIf([](const int& k, const int& v) { return k % 2 == 1 || v == 40; }), 4U);
  EXPECT_THAT(keysOldestFirst(map), ElementsAre(0));
  EXPECT_EQ(map.find(3), nullptr);
  EXPECT_EQ(map.evicted(), 0U);  // erasing is not evicting
  // The freed room is usable: nothing is evicted until the capacity is reached again.
  for (int i = 10; i < 19; ++i) map.put(i, i);
  EXPECT_EQ(map.size(), 10U);
  EXPECT_EQ(map.evicted(), 0U);
}

TEST(BoundedMap, WorksWithTupleKeys) {
  using Key = std::tuple<std::string, std::uint16_t>;
  BoundedMap<Key, int> map(2);
  map.put({"192.0.2.1", 40000}, 1);
  map.put({"192.0.2.1", 40001}, 2);
  map.put({"192.0.2.0", 1}, 3);  // the smallest key, and the newest
  EXPECT_FALSE(map.contains({"192.0.2.1", 40000}));
  EXPECT_TRUE(map.contains({"192.0.2.0", 1}));
  EXPECT_EQ(*map.find({"192.0.2.1", 40001}), 2);
}

TEST(BoundedMap, StaysWithinItsCapacityUnderAFloodOfNewKeys) {
  BoundedMap<std::uint32_t, std::uint32_t> map(100);
  for (std::uint32_t i = 0; i < 10'000; ++i) map.put(10'000 - i, i);  // descending keys
  EXPECT_EQ(map.size(), 100U);
  EXPECT_EQ(map.capacity(), 100U);
  EXPECT_EQ(map.evicted(), 9'900U);
  // The newest 100 remain: keys 100 down to 1.
  EXPECT_TRUE(map.contains(1));
  EXPECT_TRUE(map.contains(100));
  EXPECT_FALSE(map.contains(101));
}

TEST(BoundedMap, IteratesOldestFirstAndLetsValuesChange) {
  BoundedMap<std::string, int> map(3);
  map.put("b", 1);
  map.put("a", 2);
  for (auto& [k, v] : map) v *= 10;
  const auto& constMap = map;
  std::vector<std::pair<std::string, int>> seen;
  for (const auto& [k, v] : constMap) seen.emplace_back(k, v);
  EXPECT_THAT(seen, ElementsAre(Pair("b", 10), Pair("a", 20)));
}

TEST(BoundedMap, ZeroCapacityKeepsTheNewestEntry) {
  BoundedMap<int, int> map(0);
  EXPECT_EQ(map.capacity(), 1U);
  int& v = map.put(1, 1);
  EXPECT_EQ(v, 1);
  map.put(2, 2);
  EXPECT_THAT(keysOldestFirst(map), ElementsAre(2));
}

TEST(BoundedMap, MovingKeepsLookUpAndAgeOrder) {
  BoundedMap<int, int> original(2);
  original.put(1, 1);
  original.put(2, 2);
  BoundedMap<int, int> moved(std::move(original));
  moved.put(3, 3);
  EXPECT_THAT(keysOldestFirst(moved), ElementsAre(2, 3));
  EXPECT_EQ(*moved.find(2), 2);
  EXPECT_TRUE(moved.erase(3));
  EXPECT_THAT(keysOldestFirst(moved), ElementsAre(2));
}

}  // namespace
}  // namespace mailguard
