// The whole verdict path of guardd, driven without root: a fake packet source, fake
// attribution, a FakeClock, the real policy, the real program registry and (in the
// last suite) the real zombie detector over a real SQLite store in a temporary folder.
#include "verdict_pipeline.hpp"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "alert_sink.hpp"
#include "detection.hpp"
#include "kernel_fast_path.hpp"
#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"

namespace mailguard::service {
namespace {

using netfilter::PacketVerdict;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr const char* kClient = "/usr/bin/msmtp";
constexpr const char* kBot = "/home/u/.cache/bot";

std::string sha(char c) { return std::string(64, c); }

procinfo::ProcessInfo process(const std::string& path, const std::string& hash, int pid = 4242,
                              std::uint32_t uid = 1000) {
  procinfo::ProcessInfo p;
  p.pid = pid;
  p.ppid = 1;
  p.uid = uid;
  p.identity.path = path;
  p.identity.sha256 = hash;
  p.identity.pathTrusted = path.rfind("/usr/", 0) == 0;
  return p;
}

rules::ApprovalRule rule(rules::RuleAction action, const std::string& path,
                         const std::string& hash) {
  rules::ApprovalRule r;
  static std::int64_t nextId = 1;
  r.id = nextId++;
  r.action = action;
  r.path = path;
  r.sha256 = hash;
  return r;
}

netfilter::QueuedPacket syn(std::uint32_t id, std::uint16_t srcPort, const std::string& dst,
                            std::uint16_t dstPort = 25) {
  netfilter::QueuedPacket p;
  p.id = id;
  rules::ConnectionTuple t;
  t.family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", t.src.data());
  inet_pton(AF_INET, dst.c_str(), t.dst.data());
  t.srcPort = srcPort;
  t.dstPort = dstPort;
  p.tuple = t;
  p.uid = 1000;
  return p;
}

class PipelineTest : public ::testing::Test {
 protected:
  netfilter::FakePacketSource packets;
  FakeAttribution attribution;
  FakeAssessment detector;
  ProgramRegistry programs{64};
  std::vector<rules::ApprovalRule> approvals;
  FakeRecordSink records;
  FakeClock clock;
  std::vector<store::AttemptRecord> signalled;
  std::vector<ProgramView> changed;
  VerdictPipeline pipeline{{packets, attribution, detector, programs, approvals, records, clock},
                           {[this](const store::AttemptRecord& a) { signalled.push_back(a); },
                            [this](const ProgramView& v) { changed.push_back(v); }},
                           /*queueMaxLength=*/1024,
                           /*nextAttemptId=*/1};

  // Queues one SYN from `srcPort`, decides it, returns its verdict.
  PacketVerdict decide(std::uint32_t id, std::uint16_t srcPort,
                       const std::string& dst = "127.1.0.1", std::uint16_t dstPort = 25) {
    packets.push(syn(id, srcPort, dst, dstPort));
    pipeline.onReadable();
    EXPECT_FALSE(packets.verdicts.empty());
    EXPECT_EQ(packets.verdicts.back().first, id);
    return packets.verdicts.back().second;
  }
};

TEST_F(PipelineTest, RecordsAndSignalsTheCommandLineWithItsPasswordsMasked) {
  auto p = process(kClient, sha('c'));
  p.cmdline = {"msmtp", "--passwordeval=echo s3cret", "smtps://me:s3cret@h", "bob@example.org"};
  attribution.bySourcePort[40001] = p;
  decide(1, 40001);
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(records.attempts[0].cmdline,
            "msmtp --passwordeval=*** smtps://me:***@h bob@example.org");
  ASSERT_EQ(signalled.size(), 1U);
  EXPECT_EQ(signalled[0].cmdline, records.attempts[0].cmdline);
}

TEST_F(PipelineTest, HoldsAnUnknownProgramThenAllowsItsRetryOnceApproved) {
  attribution.bySourcePort[40001] = process(kClient, sha('c'));
  EXPECT_EQ(decide(1, 40001), PacketVerdict::Drop);
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(records.attempts[0].verdict, rules::Verdict::Hold);
  EXPECT_THAT(records.attempts[0].reason, StartsWith("not approved yet"));
  EXPECT_EQ(records.attempts[0].path, kClient);
  ASSERT_EQ(programs.list().size(), 1U);
  EXPECT_EQ(programs.list()[0].state, rules::ProgramState::Pending);

  // The owner approves; TCP retransmits the same SYN (same source port).
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(decide(2, 40001), PacketVerdict::RepeatWithAllow);
  ASSERT_EQ(records.attempts.size(), 2U);
  EXPECT_EQ(records.attempts[1].verdict, rules::Verdict::Allow);
  EXPECT_EQ(programs.list()[0].state, rules::ProgramState::Approved);
  EXPECT_EQ(pipeline.counters().held, 1U);
  EXPECT_EQ(pipeline.counters().allowed, 1U);
  EXPECT_EQ(detector.allowedPaths, std::vector<std::string>{kClient});
}

TEST_F(PipelineTest, SynRetransmissionsOfAHeldAttemptAreRecordedAndAssessedOnce) {
  attribution.bySourcePort[40002] = process(kBot, sha('b'));
  for (std::uint32_t i = 1; i <= 4; ++i) {
    EXPECT_EQ(decide(i, 40002), PacketVerdict::Drop);
    clock.advance(std::chrono::seconds(i));
  }
  EXPECT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(signalled.size(), 1U);
  ASSERT_EQ(detector.assessed.size(), 4U);
  EXPECT_TRUE(detector.assessed[0].second);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_FALSE(detector.assessed[i].second) << i;
  EXPECT_EQ(pipeline.counters().held, 4U);

  // Past the retry window the same source port is a new attempt.
  clock.advance(VerdictPipeline::kHeldRetryWindow + std::chrono::seconds(1));
  pipeline.expireHeld();
  EXPECT_EQ(decide(5, 40002), PacketVerdict::Drop);
  EXPECT_EQ(records.attempts.size(), 2U);
  EXPECT_TRUE(detector.assessed.back().second);
}

// Lines of guardd's log (stderr, as written without the journal) that contain `what`.
std::vector<std::string> linesWith(const std::string& log, const std::string& what) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < log.size()) {
    auto end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    const auto line = log.substr(start, end - start);
    if (line.find(what) != std::string::npos) out.push_back(line);
    start = end + 1;
  }
  return out;
}

TEST_F(PipelineTest, AProgramHeldForTheFirstTimeIsLoggedOnceWithTheTime) {
  attribution.bySourcePort[40002] = process(kBot, sha('b'));
  attribution.bySourcePort[40003] = process(kBot, sha('b'));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(decide(1, 40002), PacketVerdict::Drop);
  const auto heldAt = formatRfc3339(clock.now());
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(decide(2, 40002), PacketVerdict::Drop);  // its SYN retry
  EXPECT_EQ(decide(3, 40003), PacketVerdict::Drop);  // a second attempt, still pending
  const auto log = ::testing::internal::GetCapturedStderr();
  const auto lines = linesWith(log, "held for the first time");
  ASSERT_EQ(lines.size(), 1U) << log;
  EXPECT_THAT(lines[0], HasSubstr("guardd: info: held: " + heldAt + ": program 1 '" +
                                  std::string(kBot) + "' (uid 1000, pid 4242)"));
  EXPECT_THAT(lines[0], HasSubstr("a mail connection to 127.1.0.1:25"));
  EXPECT_THAT(lines[0], HasSubstr("sudo guardctl approve 1"));
  EXPECT_EQ(records.attempts.size(), 2U);
}

TEST_F(PipelineTest, AnApprovedOrDeniedProgramIsNotLoggedAsHeld) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.bySourcePort[40001] = process(kClient, sha('c'));
  attribution.bySourcePort[40002] = process(kBot, sha('b'));
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(decide(1, 40001), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(decide(2, 40002), PacketVerdict::RepeatWithReject);
  const auto log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(linesWith(log, "held").empty()) << log;
}

TEST_F(PipelineTest, FirstHeldLinesAreBoundedPerMinuteAndTheRestCounted) {
  // A bot that rewrites itself is a new program on every attempt.
  const int bots = VerdictPipeline::kFirstHeldLinesPerMinute + 5;
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < bots; ++i) {
    const auto port = static_cast<std::uint16_t>(30000 + i);
    attribution.bySourcePort[port] = process(kBot, sha('0') + std::to_string(i));
    EXPECT_EQ(decide(static_cast<std::uint32_t>(i + 1), port), PacketVerdict::Drop);
  }
  clock.advance(std::chrono::minutes(1));
  attribution.bySourcePort[31000] = process(kBot, sha('x'));
  EXPECT_EQ(decide(1000, 31000), PacketVerdict::Drop);
  const auto log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(linesWith(log, "held for the first time:").size(),
            static_cast<std::size_t>(VerdictPipeline::kFirstHeldLinesPerMinute) + 1)
      << log;
  const auto summary = linesWith(log, "more program(s) held for the first time");
  ASSERT_EQ(summary.size(), 1U) << log;
  EXPECT_THAT(summary[0], HasSubstr("held: 5 more program(s)"));
}

TEST_F(PipelineTest, DeniedProgramIsResetAtOnce) {
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.bySourcePort[40003] = process(kBot, sha('b'));
  EXPECT_EQ(decide(1, 40003), PacketVerdict::RepeatWithReject);
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(records.attempts[0].verdict, rules::Verdict::Reject);
  EXPECT_THAT(records.attempts[0].reason, HasSubstr("denied by the owner"));
  EXPECT_EQ(programs.list()[0].state, rules::ProgramState::Denied);
}

TEST_F(PipelineTest, UnattributedConnectionIsHeldWithTheReason) {
  // No process behind source port 40004: the socket was closed before the look-up.
  EXPECT_EQ(decide(1, 40004), PacketVerdict::Drop);
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(records.attempts[0].reason,
            "could not attribute to a process: the socket was already closed");
  EXPECT_FALSE(records.attempts[0].programId.has_value());
  EXPECT_TRUE(detector.assessed.empty());
}

TEST_F(PipelineTest, NonTcpPacketIsDroppedAndNotRecorded) {
  netfilter::QueuedPacket odd;
  odd.id = 9;
  packets.push(odd);
  pipeline.onReadable();
  ASSERT_EQ(packets.verdicts.size(), 1U);
  EXPECT_EQ(packets.verdicts[0], std::make_pair(std::uint32_t{9}, PacketVerdict::Drop));
  EXPECT_TRUE(records.attempts.empty());
}

TEST_F(PipelineTest, QuarantineByTheDetectorRejectsEvenAnApprovedProgram) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[40005] = process(kClient, sha('c'));
  attribution.bySourcePort[40006] = process(kClient, sha('c'));
  EXPECT_EQ(decide(1, 40005), PacketVerdict::RepeatWithAllow);
  detector.byPath[kClient].quarantined = true;
  EXPECT_EQ(decide(2, 40006), PacketVerdict::RepeatWithReject);
  EXPECT_EQ(records.attempts.back().reason, "quarantined after behaving like a spam bot");
  EXPECT_EQ(programs.list()[0].state, rules::ProgramState::Quarantined);
  EXPECT_EQ(changed.back().state, rules::ProgramState::Quarantined);
  // The quarantined state is written for the store.
  ASSERT_FALSE(records.programs.empty());
  EXPECT_TRUE(records.programs.back().quarantined);
}

TEST_F(PipelineTest, ThrottleHoldsAnApprovedProgramAndItsRetries) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[40007] = process(kClient, sha('c'));
  detector.byPath[kClient].throttle = true;
  detector.byPath[kClient].reason = "throttled: behaves like a spam bot (soft alert)";
  EXPECT_EQ(decide(1, 40007), PacketVerdict::Drop);
  EXPECT_EQ(records.attempts.back().reason, "throttled: behaves like a spam bot (soft alert)");
  EXPECT_TRUE(detector.allowedPaths.empty());
  // Throttle never turns a denial into anything milder.
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.bySourcePort[40008] = process(kBot, sha('b'));
  detector.byPath[kBot].throttle = true;
  EXPECT_EQ(decide(2, 40008), PacketVerdict::RepeatWithReject);
}

TEST_F(PipelineTest, ABulkDeclarationLiftsTheThrottleButNeverTheQuarantine) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[40009] = process(kClient, sha('c'));
  attribution.bySourcePort[40010] = process(kClient, sha('c'));
  attribution.bySourcePort[40011] = process(kClient, sha('c'));
  detector.byPath[kClient] = DetectorVerdict{false, true, true, true, "throttled"};
  EXPECT_EQ(decide(1, 40009), PacketVerdict::RepeatWithAllow);
  // The bulk window ended: the throttle holds again.
  detector.byPath[kClient].bulkDeclared = false;
  EXPECT_EQ(decide(2, 40010), PacketVerdict::Drop);
  detector.byPath[kClient] = DetectorVerdict{true, true, false, true, ""};
  EXPECT_EQ(decide(3, 40011), PacketVerdict::RepeatWithReject);
}

TEST_F(PipelineTest, UnderQueuePressureARejectBecomesASilentDrop) {
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.bySourcePort[40012] = process(kBot, sha('b'));
  attribution.bySourcePort[40013] = process(kBot, sha('b'));
  // The kernel's queue is more than half full.
  packets.counters.waiting = 900;
  pipeline.samplePressure();
  EXPECT_TRUE(pipeline.overloaded());
  EXPECT_EQ(decide(1, 40012), PacketVerdict::Drop);
  EXPECT_THAT(records.attempts.back().reason,
              HasSubstr("dropped, not reset, while the queue is overloaded"));
  // Pressure lasts a while after its last sign, then resets come back.
  packets.counters.waiting = 0;
  clock.advance(std::chrono::seconds(11));
  pipeline.samplePressure();
  EXPECT_FALSE(pipeline.overloaded());
  EXPECT_EQ(decide(2, 40013), PacketVerdict::RepeatWithReject);
}

TEST_F(PipelineTest, AProgramThatChangesItsHashOnEveryAttemptStaysBounded) {
  for (std::uint32_t i = 0; i < 1000; ++i) {
    const auto port = static_cast<std::uint16_t>(20000 + i);
    attribution.bySourcePort[port] = process(kBot, sha('0') + std::to_string(i));
    EXPECT_EQ(decide(i + 1, port), PacketVerdict::Drop);
  }
  EXPECT_EQ(records.attempts.size(), 1000U);
  EXPECT_LE(programs.size(), 64U);
  EXPECT_LE(programs.list().size(), 64U);
  // Every attempt still names its own (new) program id.
  EXPECT_NE(records.attempts.front().programId, records.attempts.back().programId);
}

TEST_F(PipelineTest, VerdictsTheKernelRefusesAreCounted) {
  attribution.bySourcePort[40014] = process(kClient, sha('c'));
  packets.failVerdicts = true;
  packets.push(syn(1, 40014, "127.1.0.1"));
  pipeline.onReadable();
  EXPECT_EQ(pipeline.counters().verdictErrors, 1U);
}

TEST_F(PipelineTest, AWakeUpDecidesAtMostItsBoundAndTheRestNext) {
  attribution.bySourcePort[40015] = process(kClient, sha('c'));
  const std::size_t n = VerdictPipeline::kMaxPacketsPerWakeup + 10;
  for (std::uint32_t i = 0; i < n; ++i) packets.push(syn(i + 1, 40015, "127.1.0.1"));
  EXPECT_TRUE(pipeline.onReadable());
  EXPECT_EQ(packets.verdicts.size(), VerdictPipeline::kMaxPacketsPerWakeup);
  EXPECT_FALSE(pipeline.onReadable());
  EXPECT_EQ(packets.verdicts.size(), n);
}

TEST_F(PipelineTest, NeverDecidesBeforeTheFileIsHashedAndDecidesAsSoonAsItIs) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[40016] = process(kClient, sha('c'));
  attribution.hashing.insert(40016);
  packets.push(syn(1, 40016, "127.1.0.1"));
  pipeline.onReadable();
  EXPECT_TRUE(packets.verdicts.empty()) << "decided before its file was hashed";
  EXPECT_TRUE(records.attempts.empty());
  EXPECT_TRUE(detector.assessed.empty());
  // Another file is done: still waiting.
  pipeline.resumeParked();
  EXPECT_TRUE(packets.verdicts.empty());
  attribution.hashing.clear();
  pipeline.resumeParked();
  ASSERT_EQ(packets.verdicts.size(), 1U);
  EXPECT_EQ(packets.verdicts[0], std::make_pair(std::uint32_t{1}, PacketVerdict::RepeatWithAllow));
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(detector.assessed.size(), 1U);
}

TEST_F(PipelineTest, APacketWaitingTooLongForAHashIsHeldNotAllowed) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[40017] = process(kClient, sha('c'));
  attribution.hashing.insert(40017);
  packets.push(syn(1, 40017, "127.1.0.1"));
  pipeline.onReadable();
  clock.advance(VerdictPipeline::kMaxParkTime - std::chrono::milliseconds(1));
  pipeline.expireParked();
  EXPECT_TRUE(packets.verdicts.empty());
  clock.advance(std::chrono::milliseconds(1));
  pipeline.expireParked();
  ASSERT_EQ(packets.verdicts.size(), 1U);
  EXPECT_EQ(packets.verdicts[0].second, PacketVerdict::Drop);
  EXPECT_THAT(records.attempts.back().reason, HasSubstr("being hashed"));
  // TCP's retry, once the file is hashed, is decided on its merits.
  attribution.hashing.clear();
  clock.advance(std::chrono::seconds(1));
  EXPECT_EQ(decide(2, 40017), PacketVerdict::RepeatWithAllow);
}

// With kernel attribution: what the pipeline teaches the kernel, and what it hears back.
// The kernel's stamp names a program guardd attributed before: a Hold or a Reject goes out
// before /proc is read; an Allow only after everything (environment, taint, detector).
TEST_F(PipelineTest, AStampedUnknownProgramIsHeldBeforeItsProcessIsRead) {
  attribution.verdictsSent = [this] { return packets.verdicts.size(); };
  attribution.stamped[40101] = process(kBot, sha('b'));
  attribution.bySourcePort[40101] = process(kBot, sha('b'));
  EXPECT_EQ(decide(1, 40101), PacketVerdict::Drop);
  EXPECT_TRUE(records.attempts.empty()) << "the rest waits until the queue is quiet";
  pipeline.runDeferred();
  EXPECT_EQ(attribution.verdictsBeforeAttribute.at(40101), 1U);
  ASSERT_EQ(packets.verdicts.size(), 1U) << "one verdict per packet";
  ASSERT_EQ(records.attempts.size(), 1U);
  EXPECT_EQ(records.attempts[0].verdict, rules::Verdict::Hold);
  EXPECT_EQ(records.attempts[0].path, kBot);
}

TEST_F(PipelineTest, AStampedDeniedProgramIsRejectedBeforeItsProcessIsRead) {
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.verdictsSent = [this] { return packets.verdicts.size(); };
  attribution.stamped[40102] = process(kBot, sha('b'));
  attribution.bySourcePort[40102] = process(kBot, sha('b'));
  EXPECT_EQ(decide(1, 40102), PacketVerdict::RepeatWithReject);
  pipeline.runDeferred();
  EXPECT_EQ(attribution.verdictsBeforeAttribute.at(40102), 1U);
  ASSERT_EQ(packets.verdicts.size(), 1U);
}

// The rest of an early verdict's path (attribution, detector, record) waits for a quiet
// queue, but never past a packet that may be allowed (the detector must have seen every
// attempt before it), a kernel event, kMaxDeferred waiting or kMaxDeferTime.
TEST_F(PipelineTest, AnEarlyVerdictsRecordWaitsForAQuietQueueButNotForAnAllow) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.stamped[40111] = process(kBot, sha('b'));
  attribution.bySourcePort[40111] = process(kBot, sha('b'));
  attribution.stamped[40112] = process(kBot, sha('b'));
  attribution.bySourcePort[40112] = process(kBot, sha('b'));
  EXPECT_EQ(decide(1, 40111), PacketVerdict::Drop);
  EXPECT_EQ(decide(2, 40112), PacketVerdict::Drop);
  EXPECT_TRUE(pipeline.hasDeferred());
  EXPECT_TRUE(detector.assessed.empty());
  EXPECT_TRUE(records.attempts.empty());
  attribution.bySourcePort[40113] = process(kClient, sha('c'));
  EXPECT_EQ(decide(3, 40113), PacketVerdict::RepeatWithAllow);
  EXPECT_FALSE(pipeline.hasDeferred());
  ASSERT_EQ(detector.assessed.size(), 3U);
  EXPECT_EQ(detector.assessed[0].first, kBot);
  EXPECT_EQ(detector.assessed[2].first, kClient);
  ASSERT_EQ(records.attempts.size(), 3U);
  EXPECT_EQ(records.attempts[0].id, 1);
  EXPECT_EQ(records.attempts[0].srcPort, 40111);
  EXPECT_EQ(records.attempts[2].srcPort, 40113);

  // Too long waiting: the next early verdict takes them all along.
  attribution.stamped[40114] = process(kBot, sha('b'));
  attribution.stamped[40115] = process(kBot, sha('b'));
  EXPECT_EQ(decide(4, 40114), PacketVerdict::Drop);
  EXPECT_FALSE(pipeline.deferredDue());
  clock.advance(VerdictPipeline::kMaxDeferTime);
  EXPECT_TRUE(pipeline.deferredDue());
  EXPECT_EQ(decide(5, 40115), PacketVerdict::Drop);
  EXPECT_FALSE(pipeline.hasDeferred());
  ASSERT_EQ(records.attempts.size(), 5U);
  EXPECT_EQ(records.attempts[4].path, kBot) << "the stamp's word when /proc has nothing";

  // Too many waiting.
  for (std::uint32_t i = 0; i < VerdictPipeline::kMaxDeferred; ++i) {
    const auto port = static_cast<std::uint16_t>(41000 + i);
    attribution.stamped[port] = process(kBot, sha('b'));
    decide(100 + i, port);
  }
  EXPECT_FALSE(pipeline.hasDeferred());
  EXPECT_EQ(records.attempts.size(), 5U + VerdictPipeline::kMaxDeferred);
}

// With a verdict thread the loop runs what early verdicts leave: the thread only says
// when the first starts to wait, and runs them itself only at the hard bound.
TEST_F(PipelineTest, WithADeferredWakeTheLoopIsToldOnceAndTheThreadRunsThemOnlyAtTheBound) {
  int wakes = 0;
  pipeline.setDeferredWake([&] { ++wakes; });
  std::uint32_t id = 1;
  const auto early = [&] {
    const auto port = static_cast<std::uint16_t>(42000 + id);
    attribution.stamped[port] = process(kBot, sha('b'));
    EXPECT_EQ(decide(id++, port), PacketVerdict::Drop);
  };
  early();
  EXPECT_EQ(wakes, 1);
  for (std::size_t i = 1; i < VerdictPipeline::kMaxDeferred; ++i) early();
  EXPECT_EQ(wakes, 1) << "one wake for a batch";
  EXPECT_TRUE(pipeline.deferredDue()) << "kMaxDeferred wait: the loop's prepare hook runs them";
  EXPECT_TRUE(records.attempts.empty()) << "not on the thread that decides the next SYN";
  clock.advance(VerdictPipeline::kMaxDeferTime);
  early();
  EXPECT_TRUE(records.attempts.empty()) << "nor when they are due";
  pipeline.runDeferred();  // the loop
  EXPECT_EQ(records.attempts.size(), VerdictPipeline::kMaxDeferred + 1);
  early();
  EXPECT_EQ(wakes, 2) << "the next batch's first wakes the loop again";
  pipeline.runDeferred();

  // A loop that does not come: the thread keeps what waits bounded.
  const auto before = records.attempts.size();
  for (std::size_t i = 0; i < VerdictPipeline::kMaxDeferredWaiting; ++i) early();
  EXPECT_FALSE(pipeline.hasDeferred());
  EXPECT_EQ(records.attempts.size(), before + VerdictPipeline::kMaxDeferredWaiting);
}

TEST_F(PipelineTest, AStampedApprovedProgramIsAllowedOnlyAfterItsProcessIsRead) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.verdictsSent = [this] { return packets.verdicts.size(); };
  attribution.stamped[40103] = process(kClient, sha('c'));
  attribution.bySourcePort[40103] = process(kClient, sha('c'));
  EXPECT_EQ(decide(1, 40103), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(attribution.verdictsBeforeAttribute.at(40103), 0U);
  // The same program, whose process turns out to preload a library: no Allow was sent
  // early, and the full attribution holds it.
  auto preloaded = process(kClient, sha('c'));
  preloaded.codeLoading = {rules::CodeLoading{"LD_PRELOAD", "/home/ann/x.so", false}};
  attribution.stamped[40104] = process(kClient, sha('c'));
  attribution.bySourcePort[40104] = preloaded;
  EXPECT_EQ(decide(2, 40104), PacketVerdict::Drop);
  EXPECT_EQ(attribution.verdictsBeforeAttribute.at(40104), 1U) << "only the first packet's";
  ASSERT_EQ(packets.verdicts.size(), 2U);
  EXPECT_THAT(records.attempts.back().reason, HasSubstr("LD_PRELOAD"));
}

class KernelPipelineTest : public PipelineTest {
 protected:
  KernelPipelineTest() { pipeline.setFastPath(&fastPath); }
  kernel::FakeKernelIdentity kernel;
  KernelFastPath fastPath{kernel};
  const kernel::ExeKey clientKey{11, 0x800001, 1'700'000'000, 1};
  const kernel::ExeKey botKey{12, 0x800001, 1'700'000'000, 2};

  kernel::ConnectEvent event(kernel::ConnectEvent::Decision d, const kernel::ExeKey& key,
                             std::uint32_t tgid) {
    kernel::ConnectEvent e;
    e.decision = d;
    e.cookie = 1000 + tgid;
    e.task.tgid = tgid;
    e.task.uid = 1000;
    e.task.key = key;
    e.family = AF_INET;
    inet_pton(AF_INET, "127.1.0.9", e.dst.data());
    e.dstPort = 25;
    return e;
  }
};

TEST_F(KernelPipelineTest, TeachesTheKernelAnApprovedFileAndADeniedOne) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  approvals.push_back(rule(rules::RuleAction::Deny, kBot, sha('b')));
  attribution.bySourcePort[41001] = process(kClient, sha('c'));
  attribution.keys[41001] = clientKey;
  attribution.bySourcePort[41002] = process(kBot, sha('b'));
  attribution.keys[41002] = botKey;
  EXPECT_EQ(decide(1, 41001), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(decide(2, 41002), PacketVerdict::RepeatWithReject);
  EXPECT_EQ(kernel.allowed, std::set<kernel::ExeKey>{clientKey});
  EXPECT_EQ(kernel.denied, std::set<kernel::ExeKey>{botKey});
  ASSERT_NE(fastPath.identityOf(clientKey), nullptr);
  EXPECT_EQ(fastPath.identityOf(clientKey)->path, kClient);
}

TEST_F(KernelPipelineTest, NeverTeachesTheKernelATaintedProgramOrAnInterpreter) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  // python3 running inline code, approved as such for its user (uid 1000, process()).
  auto inlineCode = rule(rules::RuleAction::Approve, "/usr/bin/python3", sha('p'));
  inlineCode.kind = rules::IdentityKind::Inline;
  inlineCode.uid = 1000;
  approvals.push_back(inlineCode);
  attribution.bySourcePort[41003] = process(kClient, sha('c'));
  attribution.keys[41003] = clientKey;
  attribution.taints[41003] = "LD_PRELOAD or a user's library";
  EXPECT_EQ(decide(1, 41003), PacketVerdict::Drop);
  EXPECT_THAT(records.attempts.back().reason, HasSubstr("LD_PRELOAD"));
  attribution.bySourcePort[41004] = process("/usr/bin/python3", sha('p'));
  attribution.keys[41004] = botKey;
  EXPECT_EQ(decide(2, 41004), PacketVerdict::RepeatWithAllow);  // approved: the queue allows
  EXPECT_TRUE(kernel.allowed.empty());
  EXPECT_TRUE(kernel.denied.empty());
}

TEST_F(PipelineTest, APinnedApprovalAllowsItsDestinationAndHoldsAnotherWithBoth) {
  auto pinned = rule(rules::RuleAction::Approve, kClient, sha('c'));
  pinned.onlyTo = {*rules::parseDestination("127.0.0.2:25")};
  approvals.push_back(pinned);
  attribution.bySourcePort[40101] = process(kClient, sha('c'));
  attribution.bySourcePort[40102] = process(kClient, sha('c'));
  EXPECT_EQ(decide(1, 40101, "127.0.0.2"), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(decide(2, 40102, "127.0.0.3"), PacketVerdict::Drop);
  ASSERT_EQ(records.attempts.size(), 2U);
  EXPECT_EQ(records.attempts[1].verdict, rules::Verdict::Hold);
  EXPECT_EQ(records.attempts[1].reason, "approved only to 127.0.0.2:25; asked for 127.0.0.3:25");
  // Still an approved program: the held destination is a decision of its own.
  EXPECT_EQ(programs.list()[0].state, rules::ProgramState::Approved);
}

TEST_F(KernelPipelineTest, NeverTeachesTheKernelAnApprovalPinnedToDestinations) {
  auto pinned = rule(rules::RuleAction::Approve, kClient, sha('c'));
  pinned.onlyTo = {*rules::parseDestination("127.1.0.1:25")};
  approvals.push_back(pinned);
  attribution.bySourcePort[41011] = process(kClient, sha('c'));
  attribution.keys[41011] = clientKey;
  // Allowed in user space to its destination, but the kernel, which sees no
  // destination in its approved map, is not taught the file: its next connect elsewhere
  // must reach the queue.
  EXPECT_EQ(decide(1, 41011, "127.1.0.1"), PacketVerdict::RepeatWithAllow);
  EXPECT_TRUE(kernel.allowed.empty());
  EXPECT_EQ(fastPath.size(), 0U);
  attribution.bySourcePort[41012] = process(kClient, sha('c'));
  attribution.keys[41012] = clientKey;
  EXPECT_EQ(decide(2, 41012, "127.1.0.2"), PacketVerdict::Drop);
  EXPECT_THAT(records.attempts.back().reason, StartsWith("approved only to 127.1.0.1:25"));
  EXPECT_TRUE(kernel.allowed.empty());

  // Learned before the pin (an unpinned approval), then pinned: the next decision takes
  // the key off the kernel's approved map.
  approvals.front().onlyTo.clear();
  attribution.bySourcePort[41013] = process(kClient, sha('c'));
  attribution.keys[41013] = clientKey;
  EXPECT_EQ(decide(3, 41013, "127.1.0.2"), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(kernel.allowed, std::set<kernel::ExeKey>{clientKey});
  approvals.front().onlyTo = pinned.onlyTo;
  attribution.bySourcePort[41014] = process(kClient, sha('c'));
  attribution.keys[41014] = clientKey;
  EXPECT_EQ(decide(4, 41014, "127.1.0.1"), PacketVerdict::RepeatWithAllow);
  EXPECT_TRUE(kernel.allowed.empty());
}

TEST_F(KernelPipelineTest, AConnectTheKernelApprovedIsRecordedAndAQuarantineTakesItOffTheFastPath) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[41005] = process(kClient, sha('c'));
  attribution.keys[41005] = clientKey;
  EXPECT_EQ(decide(1, 41005), PacketVerdict::RepeatWithAllow);
  ASSERT_TRUE(kernel.allowed.contains(clientKey));

  pipeline.onKernelEvent(event(kernel::ConnectEvent::Decision::Approved, clientKey, 777));
  ASSERT_EQ(records.attempts.size(), 2U);
  EXPECT_EQ(records.attempts.back().verdict, rules::Verdict::Allow);
  EXPECT_EQ(records.attempts.back().pid, 777);
  EXPECT_EQ(records.attempts.back().dst, "127.1.0.9");
  EXPECT_THAT(records.attempts.back().reason, HasSubstr("decided in the kernel"));
  EXPECT_EQ(detector.assessed.back(), std::make_pair(std::string(kClient), true));

  // The detector quarantines it on the next kernel-approved connect: from then on the
  // kernel no longer approves it (its connects go to the queue, which rejects).
  detector.byPath[kClient].quarantined = true;
  pipeline.onKernelEvent(event(kernel::ConnectEvent::Decision::Approved, clientKey, 778));
  EXPECT_FALSE(kernel.allowed.contains(clientKey));
  attribution.bySourcePort[41006] = process(kClient, sha('c'));
  attribution.keys[41006] = clientKey;
  EXPECT_EQ(decide(2, 41006), PacketVerdict::RepeatWithReject);
  EXPECT_FALSE(kernel.allowed.contains(clientKey));
}

TEST_F(KernelPipelineTest, AKernelDecidedAttemptIsRecordedAtTheTimeTheHookRan) {
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[41008] = process(kClient, sha('c'));
  attribution.keys[41008] = clientKey;
  EXPECT_EQ(decide(1, 41008), PacketVerdict::RepeatWithAllow);
  const auto sinceBoot = [this](std::chrono::milliseconds ago) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        (clock.monotonic() - ago).time_since_epoch());
  };
  // Read 240 ms after the hook ran (approved connects wake guardd at most every 50 ms).
  auto e = event(kernel::ConnectEvent::Decision::Approved, clientKey, 779);
  e.monotonic = sinceBoot(std::chrono::milliseconds{240});
  pipeline.onKernelEvent(e);
  EXPECT_EQ(records.attempts.back().time, clock.now() - std::chrono::milliseconds{240});
  // No stamp (a count of refusals), or one the clocks cannot place: the time it is read.
  e.monotonic = std::chrono::nanoseconds{0};
  pipeline.onKernelEvent(e);
  EXPECT_EQ(records.attempts.back().time, clock.now());
  e.monotonic = sinceBoot(std::chrono::milliseconds{-5});
  pipeline.onKernelEvent(e);
  EXPECT_EQ(records.attempts.back().time, clock.now());
  e.monotonic = sinceBoot(std::chrono::hours{2});
  pipeline.onKernelEvent(e);
  EXPECT_EQ(records.attempts.back().time, clock.now());
}

TEST_F(KernelPipelineTest, ANewSocketOnAHeldSocketsPortIsANewAttempt) {
  attribution.bySourcePort[41007] = process(kBot, sha('b'));
  attribution.cookies[41007] = 5001;
  EXPECT_EQ(decide(1, 41007), PacketVerdict::Drop);
  // Another socket (another cookie) on the same source port: not a retransmission.
  attribution.cookies[41007] = 5002;
  EXPECT_EQ(decide(2, 41007), PacketVerdict::Drop);
  EXPECT_EQ(records.attempts.size(), 2U);
  ASSERT_EQ(detector.assessed.size(), 2U);
  EXPECT_TRUE(detector.assessed[1].second);
  // The first socket's retransmission is one.
  attribution.cookies[41007] = 5001;
  EXPECT_EQ(decide(3, 41007), PacketVerdict::Drop);
  EXPECT_EQ(records.attempts.size(), 2U);
}

// The same pipeline with the real detector: a bot that sends to many mail servers is
// quarantined, its next attempt rejected, while the owner's approved client goes on.
class PipelineWithDetectorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("mg-pipeline-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir / "proc");
    auto r = store::SqliteStore::open(dir / "state");
    ASSERT_TRUE(r) << r.error().message;
    reader = std::move(r.value());
    auto w = store::StoreWriter::start(dir / "state");
    ASSERT_TRUE(w) << w.error().message;
    writer = std::move(w.value());
    alerts = std::make_unique<AlertSink>(*writer, 0, onAlert);
    proc = std::make_unique<procinfo::DirProcFs>(dir / "proc");
    resolver = std::make_unique<procinfo::ProcessResolver>(*proc, hasher);
    Detection::Deps deps{settings,
                         clock,
                         loop,
                         programs,
                         approvals,
                         *proc,
                         *resolver,
                         *reader,
                         *writer,
                         *alerts,
                         {},
                         [](const ProgramRef&, Done<rules::ProgramIdentity> done) {
                           done(notFound("not in this test"));
                         }};
    deps.dpkgInfo = dir / "no-dpkg";
    deps.conntrack = false;
    detection = std::make_unique<Detection>(std::move(deps));
    ASSERT_TRUE(detection->start());
    pipeline = std::make_unique<VerdictPipeline>(
        VerdictPipeline::Seams{packets, attribution, *detection, programs, approvals, records,
                               clock},
        VerdictPipeline::Observers{}, 1024, 1);
  }
  void TearDown() override {
    pipeline.reset();
    detection.reset();
    writer.reset();
    reader.reset();
    std::filesystem::remove_all(dir);
  }

  std::filesystem::path dir;
  rules::Settings settings;
  FakeClock clock;
  EventLoop loop;
  ProgramRegistry programs;
  std::vector<rules::ApprovalRule> approvals;
  std::unique_ptr<store::SqliteStore> reader;
  std::unique_ptr<store::StoreWriter> writer;
  std::vector<store::AlertRecord> raised;
  AlertSink::Observer onAlert = [this](const store::AlertRecord& a) { raised.push_back(a); };
  std::unique_ptr<AlertSink> alerts;
  std::unique_ptr<procinfo::DirProcFs> proc;
  procinfo::FileHasher hasher;
  std::unique_ptr<procinfo::ProcessResolver> resolver;
  std::unique_ptr<Detection> detection;
  netfilter::FakePacketSource packets;
  FakeAttribution attribution;
  FakeRecordSink records;
  std::unique_ptr<VerdictPipeline> pipeline;
};

TEST_F(PipelineWithDetectorTest, ABotSendingToManyMailServersIsQuarantinedWithinTenAttempts) {
  approvals.push_back(rule(rules::RuleAction::Approve, kBot, sha('b')));  // even approved
  int rejectedAt = 0;
  for (int i = 1; i <= 30 && rejectedAt == 0; ++i) {
    const auto port = static_cast<std::uint16_t>(30000 + i);
    attribution.bySourcePort[port] = process(kBot, sha('b'));
    packets.push(syn(static_cast<std::uint32_t>(i), port, "127.1." + std::to_string(i) + ".25"));
    pipeline->onReadable();
    if (packets.verdicts.back().second == PacketVerdict::RepeatWithReject) rejectedAt = i;
    clock.advance(std::chrono::seconds(2));
  }
  ASSERT_GT(rejectedAt, 0) << "never quarantined";
  EXPECT_LE(rejectedAt, 10);
  EXPECT_EQ(programs.list().at(0).state, rules::ProgramState::Quarantined);
  ASSERT_FALSE(raised.empty());
  EXPECT_EQ(raised.back().tier, "hard");
  EXPECT_EQ(raised.back().path, kBot);
  // The owner's client, approved, still gets through to its relay.
  approvals.push_back(rule(rules::RuleAction::Approve, kClient, sha('c')));
  attribution.bySourcePort[45000] = process(kClient, sha('c'));
  packets.push(syn(100, 45000, "127.0.0.1", 587));
  pipeline->onReadable();
  EXPECT_EQ(packets.verdicts.back().second, PacketVerdict::RepeatWithAllow);
  // The alert reaches the store.
  writer->flush();
  auto stored = reader->alerts(10);
  ASSERT_TRUE(stored) << stored.error().message;
  EXPECT_FALSE(stored->empty());
}

}  // namespace
}  // namespace mailguard::service
