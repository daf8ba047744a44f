#include "mailguard/mta/exim_log.hpp"
#include "mailguard/replies/smtp_replies.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace mailguard::mta {
namespace {

std::vector<std::string> sampleLines(const std::string& name) {
  std::ifstream in(std::string(MAILGUARD_TEST_DATA) + "/exim/" + name);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(EximLog, ParsesDeliveredFailedDeferredAndCompleted) {
  const auto lines = sampleLines("mainlog");
  ASSERT_GE(lines.size(), 8U);
  EXPECT_FALSE(parseEximLogLine(lines[0]).has_value());  // arrival
  auto ok = parseEximLogLine(lines[1]);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->queueId, "1s2QmB-000Bxe-2V");
  EXPECT_EQ(ok->status, DeliveryStatus::Delivered);
  EXPECT_EQ(ok->recipient, "user@d0.example");
  auto bounced = parseEximLogLine(lines[2]);
  ASSERT_TRUE(bounced.has_value());
  EXPECT_EQ(bounced->status, DeliveryStatus::Failed);
  EXPECT_EQ(bounced->reply, "550 5.1.1 user unknown");
  EXPECT_EQ(classifyReply(bounced->reply), ReplyClass::UserUnknown);
  auto deferred = parseEximLogLine(lines[3]);
  ASSERT_TRUE(deferred.has_value());
  EXPECT_EQ(deferred->status, DeliveryStatus::Deferred);
  EXPECT_EQ(deferred->reply, "451 4.7.1 greylisted, try again later");
  EXPECT_EQ(classifyReply(deferred->reply), ReplyClass::Other);
  auto listed = parseEximLogLine(lines[4]);
  ASSERT_TRUE(listed.has_value());
  EXPECT_EQ(classifyReply(listed->reply), ReplyClass::Blocklisted);
  auto big = parseEximLogLine(lines[5]);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(classifyReply(big->reply), ReplyClass::Rejected);
  EXPECT_FALSE(parseEximLogLine(lines[6]).has_value());  // the bounce message's arrival
  auto done = parseEximLogLine(lines[7]);
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->status, DeliveryStatus::Completed);
}

TEST(EximLog, RealEximLinesParse) {
  // Lines written by exim 4.96 in the integration test (test_mta_outcomes.py).
  const auto lines = sampleLines("mainlog-real");
  ASSERT_FALSE(lines.empty());
  unsigned delivered = 0, unknown = 0, completed = 0;
  for (const auto& l : lines) {
    auto p = parseEximLogLine(l);
    if (!p) continue;
    if (p->status == DeliveryStatus::Delivered) ++delivered;
    if (p->status == DeliveryStatus::Failed && classifyReply(p->reply) == ReplyClass::UserUnknown) {
      EXPECT_TRUE(p->reply.starts_with("550 5.1.1")) << p->reply;
      ++unknown;
    }
    if (p->status == DeliveryStatus::Completed) ++completed;
  }
  EXPECT_GT(delivered, 0U);
  EXPECT_GT(unknown, 0U);
  EXPECT_GT(completed, 0U);
}

TEST(EximLog, OptionalZoneAndPidAndOddLines) {
  auto p = parseEximLogLine(
      "2024-05-02 10:00:01.123 +0200 [4242] 1s2QmB-000Bxe-2V => a@b.example R=r T=t\n");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->recipient, "a@b.example");
  // exim 4.97's longer ids.
  EXPECT_TRUE(parseEximLogLine("2024-05-02 10:00:01 1s2QmB-00000000Bxe-0002 Completed"));
  EXPECT_FALSE(parseEximLogLine("2024-05-02 10:00:01 Start queue run: pid=1"));
  EXPECT_FALSE(parseEximLogLine("2024-05-02 10:00:01 1s2QmB-000Bxe-2V Message is frozen"));
  EXPECT_FALSE(parseEximLogLine("garbage"));
  EXPECT_FALSE(parseEximLogLine(""));
  EXPECT_FALSE(parseEximLogLine("2024-05-02 10:00:01 1s2QmB-000Bxe-2V =>"));
  auto own = parseEximLogLine(
      "2024-05-02 10:00:01 1s2QmB-000Bxe-2V ** a@b.example: retry timeout exceeded");
  ASSERT_TRUE(own.has_value());
  EXPECT_EQ(own->reply, "retry timeout exceeded");
  EXPECT_EQ(classifyReply(own->reply), ReplyClass::Other);
}

TEST(EximLog, RepliesReadAsTheDirectSessionsAre) {
  // The same server reply is the same evidence whether guardd saw it in a program's own
  // session or in the MTA's log.
  for (const std::string reply :
       {"550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
        "554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        "550 5.7.1 Your IP is listed in an RBL", "550 5.1.1 Recipient not listed in directory",
        "554 5.7.1 Relay access denied"}) {
    const auto direct = replies::classifyRcptReply(reply);
    const auto logged = classifyReply(reply);
    switch (direct) {
      case replies::RcptReply::UserUnknown:
        EXPECT_EQ(logged, ReplyClass::UserUnknown) << reply;
        break;
      case replies::RcptReply::Blocklisted:
        EXPECT_EQ(logged, ReplyClass::Blocklisted) << reply;
        break;
      default:
        EXPECT_EQ(logged, ReplyClass::Rejected) << reply;
    }
  }
  // Transient, or exim's own words: no evidence, unless it names a blocklist.
  EXPECT_EQ(classifyReply("451 4.7.1 greylisted"), ReplyClass::Other);
  EXPECT_EQ(classifyReply("451 4.7.1 listed at zen.spamhaus.org"), ReplyClass::Blocklisted);
  EXPECT_EQ(classifyReply("all hosts for 'example.org' have been failing for a long time"),
            ReplyClass::Other);
  EXPECT_EQ(classifyReply("550 mailbox unavailable"), ReplyClass::Rejected);
}

TEST(EximLog, TrackerChargesOnCompletionOrAfterSettling) {
  DeliveryTracker tracker(4, std::chrono::seconds(60));
  MonoTime now{};
  Submitter who;
  who.programId = 7;
  tracker.submitted("1s2QmB-000Bxe-2V", who, now);
  std::optional<DeliveryTracker::Finished> finished;
  for (const auto& l : sampleLines("mainlog")) {
    if (auto p = parseEximLogLine(l)) {
      if (auto f = tracker.onLine(*p, now)) finished = f;
    }
  }
  ASSERT_TRUE(finished.has_value());
  EXPECT_TRUE(finished->completed);
  EXPECT_EQ(finished->submitter.programId, 7);
  EXPECT_EQ(finished->tally.delivered, 1U);
  EXPECT_EQ(finished->tally.userUnknown, 1U);
  EXPECT_EQ(finished->tally.deferred, 1U);
  EXPECT_EQ(finished->tally.blocklisted, 1U);
  EXPECT_EQ(finished->tally.rejected, 1U);
  EXPECT_EQ(finished->tally.domains.size(), 5U);
  EXPECT_NE(finished->tally.summary().find("550 5.1.1 user unknown"), std::string::npos);
  EXPECT_EQ(tracker.size(), 0U);

  // A message being retried: what is final is charged once no line came for a while.
  tracker.submitted("1s2QmC-000Bxe-2V", who, now);
  EximLogLine d{"1s2QmC-000Bxe-2V", DeliveryStatus::Deferred, "a@x.example", "451 later"};
  EXPECT_FALSE(tracker.onLine(d, now).has_value());
  EXPECT_TRUE(tracker.expire(now + std::chrono::seconds(30)).empty());
  auto settled = tracker.expire(now + std::chrono::seconds(61));
  ASSERT_EQ(settled.size(), 1U);
  EXPECT_FALSE(settled[0].completed);
  EXPECT_EQ(settled[0].tally.deferred, 1U);
  EXPECT_TRUE(tracker.knows("1s2QmC-000Bxe-2V"));
  EXPECT_TRUE(tracker.expire(now + std::chrono::seconds(200)).empty());  // charged once

  // Unknown ids (exim's own bounces, mail submitted over TCP) are not charged here.
  EximLogLine other{"1s2QmZ-000Bxe-2V", DeliveryStatus::Failed, "a@x.example", "550 5.1.1 no"};
  EXPECT_FALSE(tracker.onLine(other, now).has_value());

  // Bounded: the oldest submissions go first.
  for (int i = 0; i < 10; ++i)
    tracker.submitted("1s2QmD-000Bxe-" + std::to_string(10 + i), who, now);
  EXPECT_EQ(tracker.size(), 4U);
  EXPECT_TRUE(tracker.knows("1s2QmD-000Bxe-19"));
  EXPECT_FALSE(tracker.knows("1s2QmD-000Bxe-10"));
}

TEST(EximLog, TrackerListsAProgramsMessagesStillQueued) {
  DeliveryTracker tracker(8, std::chrono::seconds(60));
  MonoTime now{};
  Submitter a;
  a.programId = 7;
  Submitter b;
  b.programId = 8;
  b.where = "postfix:/etc/postfix";
  tracker.submitted("1s2QmA-000Bxe-2V", a, now);
  tracker.submitted("4QZ1cN0xYz2B", b, now);
  tracker.submitted("1s2QmB-000Bxe-2V", a, now);
  tracker.submitted("1s2QmA-000Bxe-2V", a, now);  // again: listed once
  // A deferred message stays queued (and listed); a completed one leaves.
  tracker.onLine({"1s2QmA-000Bxe-2V", DeliveryStatus::Deferred, "x@d.example", "451 later"}, now);
  tracker.onLine({"1s2QmB-000Bxe-2V", DeliveryStatus::Completed, "", ""}, now);
  const auto open = tracker.openOf(7);
  ASSERT_EQ(open.size(), 1U);
  EXPECT_EQ(open[0].queueId, "1s2QmA-000Bxe-2V");
  const auto other = tracker.openOf(8);
  ASSERT_EQ(other.size(), 1U);
  EXPECT_EQ(other[0].where, "postfix:/etc/postfix");
  EXPECT_TRUE(tracker.openOf(9).empty());
}

class LogFollowerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/mg-eximlog-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    file_ = dir_ / "mainlog";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void append(const std::string& text) {
    std::ofstream out(file_, std::ios::app);
    out << text;
  }
  std::vector<std::string> poll(LogFollower& f) {
    std::vector<std::string> lines;
    auto r = f.poll([&](std::string_view l) { lines.emplace_back(l); });
    EXPECT_TRUE(r.has_value());
    return lines;
  }
  std::filesystem::path dir_;
  std::filesystem::path file_;
};

TEST_F(LogFollowerTest, StartsAtTheEndFollowsRotationAndTruncation) {
  append("old line\n");
  LogFollower f(file_);
  EXPECT_TRUE(poll(f).empty());  // history is not replayed
  append("one\ntw");
  EXPECT_EQ(poll(f), std::vector<std::string>{"one"});
  append("o\n");
  EXPECT_EQ(poll(f), std::vector<std::string>{"two"});
  // Rotation: the rest of the old file, then the new file from its start.
  append("last of old\n");
  std::filesystem::rename(file_, dir_ / "mainlog.1");
  EXPECT_EQ(poll(f), std::vector<std::string>{"last of old"});
  append("first of new\n");
  EXPECT_EQ(poll(f), std::vector<std::string>{"first of new"});
  // copytruncate (seen as a size below what was read, as by tail -F)
  std::filesystem::resize_file(file_, 0);
  EXPECT_TRUE(poll(f).empty());
  append("after truncation\n");
  EXPECT_EQ(poll(f), std::vector<std::string>{"after truncation"});
}

TEST_F(LogFollowerTest, MissingFileThenCreatedAndOverlongLinesDropped) {
  LogFollower f(file_);
  EXPECT_TRUE(poll(f).empty());
  append("created\n");
  EXPECT_EQ(poll(f), std::vector<std::string>{"created"});
  append(std::string(LogFollower::kMaxLine + 10, 'x') + "\nnext\n");
  EXPECT_EQ(poll(f), std::vector<std::string>{"next"});
}

}  // namespace
}  // namespace mailguard::mta
