#include "program_registry.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace mailguard::service {
namespace {

using namespace std::chrono_literals;
using rules::ProgramIdentity;
using rules::ProgramState;

// A distinct, valid-looking SHA-256 per number.
std::string hashOf(unsigned n) {
  char buf[17];
  (void)std::snprintf(buf, sizeof buf, "%016x", n);
  return std::string(48, 'f') + buf;
}

ProgramIdentity program(std::string path, unsigned hash) {
  ProgramIdentity id;
  id.path = std::move(path);
  id.sha256 = hashOf(hash);
  return id;
}

std::vector<std::int64_t> idsOf(const std::vector<ProgramView>& views) {
  std::vector<std::int64_t> ids;
  for (const auto& v : views) ids.push_back(v.id);
  return ids;
}

class ProgramRegistryTest : public ::testing::Test {
 protected:
  // Each sighting one second after the last, as the attempts of a bot would come.
  ProgramView& see(ProgramRegistry& registry, const ProgramIdentity& identity,
                   std::optional<std::uint32_t> uid = 1000, bool* created = nullptr) {
    clock_.advance(1s);
    return registry.remember(identity, uid, clock_.now(), clock_.monotonic(), created);
  }

  FakeClock clock_;
};

TEST_F(ProgramRegistryTest, AnInterpreterItselfAndTheInlineCodeItRunsAreTwoPrograms) {
  ProgramRegistry registry;
  const ProgramIdentity inlineCode = program("/usr/bin/python3.11", 1);
  ProgramIdentity itself = inlineCode;
  itself.binaryItself = true;
  bool created = false;
  const auto inlineId = see(registry, inlineCode, 1000, &created).id;
  EXPECT_TRUE(created);
  const auto itselfId = see(registry, itself, std::nullopt, &created).id;
  EXPECT_TRUE(created);
  EXPECT_NE(inlineId, itselfId);
  EXPECT_EQ(registry.find(inlineCode)->identity.kind(), rules::IdentityKind::Inline);
  EXPECT_EQ(registry.find(itself)->identity.kind(), rules::IdentityKind::Program);
}

TEST_F(ProgramRegistryTest, ABotThatRewritesItselfOnEveryAttemptStaysBounded) {
  ProgramRegistry registry;
  const ProgramIdentity client = program("/usr/bin/thunderbird", 1);
  see(registry, client).state = ProgramState::Approved;
  for (unsigned i = 0; i < 10'000; ++i) see(registry, program("/tmp/.x/bot", 100 + i));

  EXPECT_EQ(registry.size(), ProgramRegistry::kDefaultMaxPrograms);
  EXPECT_EQ(registry.list().size(), ProgramRegistry::kDefaultMaxPrograms);
  EXPECT_EQ(registry.evicted(), 10'001 - ProgramRegistry::kDefaultMaxPrograms);
  // The newest copy of the bot is listed, the first ones are gone, the client stays.
  EXPECT_NE(registry.find(program("/tmp/.x/bot", 100 + 9'999)), nullptr);
  EXPECT_EQ(registry.find(program("/tmp/.x/bot", 100)), nullptr);
  ASSERT_NE(registry.find(client), nullptr);
  EXPECT_EQ(registry.find(client)->id, 1);
}

TEST_F(ProgramRegistryTest, ProgramsTheOwnerDecidedAboutOrQuarantinedAreNeverEvicted) {
  ProgramRegistry registry(4);
  see(registry, program("/usr/bin/thunderbird", 1)).state = ProgramState::Approved;
  see(registry, program("/usr/local/bin/spammer", 2)).state = ProgramState::Denied;
  see(registry, program("/home/bob/.cache/x", 3)).state = ProgramState::Quarantined;
  for (unsigned i = 0; i < 50; ++i) see(registry, program("/tmp/bot", 100 + i));

  EXPECT_EQ(registry.size(), 4U);
  EXPECT_EQ(registry.find(std::int64_t{1})->state, ProgramState::Approved);
  EXPECT_EQ(registry.find(std::int64_t{2})->state, ProgramState::Denied);
  EXPECT_EQ(registry.find(std::int64_t{3})->state, ProgramState::Quarantined);
  EXPECT_NE(registry.find(program("/tmp/bot", 149)), nullptr);  // the one pending slot
}

TEST_F(ProgramRegistryTest, GrowsBeyondItsBoundOnlyWhenEveryOtherProgramIsPinned) {
  ProgramRegistry registry(2);
  see(registry, program("/usr/bin/a", 1)).state = ProgramState::Approved;
  see(registry, program("/usr/bin/b", 2)).state = ProgramState::Approved;
  bool created = false;
  const auto& newest = see(registry, program("/usr/bin/c", 3), 1000, &created);
  EXPECT_TRUE(created);
  EXPECT_EQ(newest.id, 3);  // returned, so never evicted itself
  EXPECT_EQ(registry.size(), 3U);
  see(registry, program("/usr/bin/d", 4));  // the pending c makes room for d
  EXPECT_EQ(registry.size(), 3U);
  EXPECT_EQ(registry.find(std::int64_t{3}), nullptr);
  EXPECT_NE(registry.find(std::int64_t{4}), nullptr);
}

TEST_F(ProgramRegistryTest, EvictsTheProgramSeenLeastRecentlyNotTheSmallestId) {
  ProgramRegistry registry(3);
  const ProgramIdentity a = program("/usr/bin/a", 1);
  see(registry, a);                         // id 1
  see(registry, program("/usr/bin/b", 2));  // id 2
  see(registry, program("/usr/bin/c", 3));  // id 3
  see(registry, a);                         // a is the newest now
  see(registry, program("/usr/bin/d", 4));  // id 4: b goes
  EXPECT_THAT(idsOf(registry.list()), ::testing::ElementsAre(1, 3, 4));
  EXPECT_EQ(registry.evicted(), 1U);
}

TEST_F(ProgramRegistryTest, LookUpsDoNotCountAsASighting) {
  ProgramRegistry registry(2);
  see(registry, program("/usr/bin/a", 1));
  see(registry, program("/usr/bin/b", 2));
  ASSERT_NE(registry.find(program("/usr/bin/a", 1)), nullptr);
  ASSERT_NE(registry.find(std::int64_t{1}), nullptr);
  see(registry, program("/usr/bin/c", 3));
  EXPECT_EQ(registry.find(std::int64_t{1}), nullptr);
  EXPECT_NE(registry.find(std::int64_t{2}), nullptr);
}

TEST_F(ProgramRegistryTest, RememberKeepsTheIdOfTheSameIdentityAndItsNewestFlags) {
  ProgramRegistry registry;
  ProgramIdentity tb = program("/usr/bin/thunderbird", 1);
  bool created = false;
  const auto& first = see(registry, tb, 1000, &created);
  EXPECT_TRUE(created);
  const auto id = first.id;
  const auto firstSeen = first.firstSeen;
  EXPECT_EQ(first.uid, 1000U);

  tb.pathTrusted = true;  // the flags are not part of the identity
  tb.deleted = true;
  const auto& again = see(registry, tb, std::nullopt, &created);
  EXPECT_FALSE(created);
  EXPECT_EQ(again.id, id);
  EXPECT_EQ(again.firstSeen, firstSeen);
  EXPECT_TRUE(again.identity.pathTrusted);
  EXPECT_TRUE(again.identity.deleted);
  EXPECT_EQ(again.uid, 1000U);  // nullopt keeps the uid last seen
  EXPECT_EQ(see(registry, tb, 1001).uid, 1001U);
  EXPECT_EQ(registry.size(), 1U);

  // Any part of the identity that differs is another program.
  ProgramIdentity script = tb;
  script.scriptPath = "/home/alice/send.py";
  script.scriptSha256 = hashOf(7);
  EXPECT_NE(see(registry, script).id, id);
  EXPECT_NE(see(registry, program("/usr/bin/thunderbird", 2)).id, id);
  EXPECT_EQ(registry.size(), 3U);
}

TEST_F(ProgramRegistryTest, ANewProgramStartsPendingWithUidZeroWhenNoneIsKnown) {
  ProgramRegistry registry;
  const auto& view = see(registry, program("/usr/bin/a", 1), std::nullopt);
  EXPECT_EQ(view.uid, 0U);
  EXPECT_EQ(view.state, ProgramState::Pending);
  EXPECT_EQ(view.firstSeen, clock_.now());
  EXPECT_EQ(view.attempts, 0);
  EXPECT_EQ(registry.lastSeen(view.id), clock_.monotonic());
}

TEST_F(ProgramRegistryTest, AnEvictedProgramThatComesBackGetsANewId) {
  ProgramRegistry registry(1);
  const ProgramIdentity a = program("/usr/bin/a", 1);
  EXPECT_EQ(see(registry, a).id, 1);
  EXPECT_EQ(see(registry, program("/usr/bin/b", 2)).id, 2);
  EXPECT_EQ(see(registry, a).id, 3);
  EXPECT_EQ(registry.find(std::int64_t{1}), nullptr);
}

TEST_F(ProgramRegistryTest, LoadKeepsTheNewestAndThePinnedAndGivesIdsAboveEveryStoredOne) {
  const TimePoint t0 = clock_.now();
  std::vector<ProgramView> stored;
  for (int i = 0; i < 6; ++i) {
    ProgramView v;
    v.id = 10 + i;
    v.identity = program("/usr/bin/p" + std::to_string(i), static_cast<unsigned>(i));
    v.lastAttempt = t0 + std::chrono::minutes(i);
    stored.push_back(v);
  }
  stored[0].state = ProgramState::Quarantined;  // the oldest, but pinned
  stored[5].id = 99;                            // the newest has the highest id
  std::swap(stored[1], stored[4]);              // the store's order is not the age order

  ProgramRegistry registry(3);
  registry.load(stored);
  // Kept: the quarantined one and the two newest by last attempt (ids 14 and 99).
  EXPECT_THAT(idsOf(registry.list()), ::testing::ElementsAre(10, 14, 99));
  EXPECT_EQ(registry.evicted(), 3U);
  EXPECT_EQ(registry.lastSeen(14), std::nullopt);

  // The next id is above every stored id, also the dropped ones.
  EXPECT_EQ(see(registry, program("/usr/bin/new", 50)).id, 100);
  // Now the oldest loaded pending program (14) goes, not the quarantined one.
  EXPECT_THAT(idsOf(registry.list()), ::testing::ElementsAre(10, 99, 100));
  // A stored program seen again keeps its stored id.
  EXPECT_EQ(see(registry, program("/usr/bin/p5", 5)).id, 99);
}

TEST_F(ProgramRegistryTest, LoadDropsADuplicateIdentity) {
  ProgramView a;
  a.id = 1;
  a.identity = program("/usr/bin/a", 1);
  ProgramView dup = a;
  dup.id = 2;
  ProgramRegistry registry;
  registry.load({a, dup});
  EXPECT_EQ(registry.size(), 1U);
  EXPECT_EQ(see(registry, program("/usr/bin/b", 2)).id, 3);
}

TEST_F(ProgramRegistryTest, ForEachVisitsByIdAndItsStateChangesDecideWhatIsPinned) {
  ProgramRegistry registry(2);
  see(registry, program("/usr/bin/b", 2));
  see(registry, program("/usr/bin/a", 1));
  std::vector<std::int64_t> visited;
  registry.forEach([&](ProgramView& v) {
    visited.push_back(v.id);
    v.state = ProgramState::Approved;
  });
  EXPECT_THAT(visited, ::testing::ElementsAre(1, 2));
  see(registry, program("/usr/bin/c", 3));
  EXPECT_EQ(registry.size(), 3U);  // both pinned

  // The owner forgets the rules: both are pending again, and the next new program brings
  // the registry back within its bound, the least recently seen going first.
  registry.forEach([](ProgramView& v) { v.state = ProgramState::Pending; });
  see(registry, program("/usr/bin/d", 4));
  EXPECT_THAT(idsOf(registry.list()), ::testing::ElementsAre(3, 4));
}

TEST_F(ProgramRegistryTest, ASightingIsDueWhenChangedOrOncePerInterval) {
  ProgramRegistry registry;
  const auto id = see(registry, program("/usr/bin/a", 1)).id;
  const MonoTime t = clock_.monotonic();
  EXPECT_TRUE(registry.sightingDue(id, t, false));  // never written
  EXPECT_FALSE(registry.sightingDue(id, t + 500ms, false));
  EXPECT_TRUE(registry.sightingDue(id, t + 600ms, true));     // changed: at once
  EXPECT_FALSE(registry.sightingDue(id, t + 1500ms, false));  // 900 ms after the last
  EXPECT_TRUE(registry.sightingDue(id, t + 1600ms, false));   // 1 s after the last
  EXPECT_FALSE(registry.sightingDue(id, t + 1700ms, false, 200ms));
  EXPECT_TRUE(registry.sightingDue(id, t + 1800ms, false, 200ms));
  EXPECT_FALSE(registry.sightingDue(4242, t, true));  // unknown
}

TEST_F(ProgramRegistryTest, AWallClockStepDoesNotDelaySightings) {
  ProgramRegistry registry;
  const auto id = see(registry, program("/usr/bin/a", 1)).id;
  EXPECT_TRUE(registry.sightingDue(id, clock_.monotonic(), false));
  clock_.jumpWallClock(-24h);
  clock_.advance(1s);
  EXPECT_TRUE(registry.sightingDue(id, clock_.monotonic(), false));
}

TEST_F(ProgramRegistryTest, AnEvictedProgramTakesItsSightingTimeWithIt) {
  ProgramRegistry registry(1);
  const ProgramIdentity a = program("/usr/bin/a", 1);
  const auto first = see(registry, a).id;
  EXPECT_TRUE(registry.sightingDue(first, clock_.monotonic(), false));
  see(registry, program("/usr/bin/b", 2));
  EXPECT_FALSE(registry.sightingDue(first, clock_.monotonic(), false));  // gone
  const auto back = see(registry, a).id;
  EXPECT_TRUE(registry.sightingDue(back, clock_.monotonic(), false));  // a new row is due
}

TEST_F(ProgramRegistryTest, NewContentsOfAFileAreVersionsOnOneRowTheNewestCurrent) {
  ProgramRegistry registry;
  const auto v1 = see(registry, program("/usr/local/bin/x", 1)).id;
  const auto other = see(registry, program("/usr/bin/msmtp", 9)).id;
  const auto v2 = see(registry, program("/usr/local/bin/x", 2)).id;
  const auto v3 = see(registry, program("/usr/local/bin/x", 3)).id;
  const auto rows = foldVersions(registry.list());
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].current.id, other);
  EXPECT_THAT(idsOf(rows[0].versions), ::testing::ElementsAre(other));
  EXPECT_EQ(rows[1].current.id, v3);
  EXPECT_THAT(idsOf(rows[1].versions), ::testing::ElementsAre(v3, v2, v1));
}

TEST_F(ProgramRegistryTest, AScriptsNewContentIsAVersionButInlineCodeIsAnotherProgram) {
  ProgramRegistry registry;
  ProgramIdentity script = program("/usr/bin/python3.11", 1);
  script.scriptPath = "/home/alice/bot.py";
  script.scriptSha256 = hashOf(10);
  const auto s1 = see(registry, script).id;
  script.scriptSha256 = hashOf(11);
  const auto s2 = see(registry, script).id;
  const auto inlineCode = see(registry, program("/usr/bin/python3.11", 1)).id;
  ProgramIdentity itself = program("/usr/bin/python3.11", 1);
  itself.binaryItself = true;
  const auto interpreter = see(registry, itself).id;
  const auto rows = foldVersions(registry.list());
  ASSERT_EQ(rows.size(), 3U);
  EXPECT_THAT(idsOf(rows[0].versions), ::testing::ElementsAre(s2, s1));
  EXPECT_THAT(idsOf(rows[1].versions), ::testing::ElementsAre(inlineCode));
  EXPECT_THAT(idsOf(rows[2].versions), ::testing::ElementsAre(interpreter));
  EXPECT_TRUE(sameProgram(registry.find(s1)->identity, registry.find(s2)->identity));
  EXPECT_FALSE(
      sameProgram(registry.find(inlineCode)->identity, registry.find(interpreter)->identity));
}

TEST_F(ProgramRegistryTest, TheCurrentVersionIsTheOneFirstSeenLastNotTheLastAttempt) {
  ProgramRegistry registry;
  const auto v1 = see(registry, program("/usr/local/bin/x", 1)).id;
  const auto v2 = see(registry, program("/usr/local/bin/x", 2)).id;
  see(registry, program("/usr/local/bin/x", 1));  // an old process of v1 connects again
  const auto rows = foldVersions(registry.list());
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].current.id, v2);
  EXPECT_THAT(idsOf(rows[0].versions), ::testing::ElementsAre(v2, v1));
}

}  // namespace
}  // namespace mailguard::service
