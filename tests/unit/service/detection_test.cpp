// guardd's detector seam (Detection) with the real detector over a real SQLite store in a
// temporary folder, driven through the real verdict pipeline with fake packets and fake
// attribution: which file a quarantine, an alert and the stored state belong to.
#include "detection.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "alert_sink.hpp"
#include "detector_codec.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "verdict_pipeline.hpp"

namespace mailguard::service {
namespace {

namespace det = mailguard::detector;
using netfilter::PacketVerdict;

// The owner's client, root-owned in a root-owned folder, and a same-user copy of its
// bytes in the user's home.
constexpr const char* kInstalled = "/usr/local/bin/client";
constexpr const char* kCopy = "/home/u/client";
constexpr const char* kOtherCopy = "/home/u/other-client";
const std::string kSha(64, 'c');

procinfo::ProcessInfo process(const std::string& path, int pid, std::uint32_t uid = 1000) {
  procinfo::ProcessInfo p;
  p.pid = pid;
  p.ppid = 1;
  p.uid = uid;
  p.identity.path = path;
  p.identity.sha256 = kSha;
  p.identity.pathTrusted = path.rfind("/usr/", 0) == 0;
  return p;
}

netfilter::QueuedPacket syn(std::uint32_t id, std::uint16_t srcPort, const std::string& dst,
                            std::uint16_t dstPort) {
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

class DetectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = std::filesystem::temp_directory_path() /
          ("mg-detection-" + std::to_string(::getpid()) + "-" +
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
    rules::ApprovalRule approve;
    approve.id = 1;
    approve.action = rules::RuleAction::Approve;
    approve.path = kInstalled;
    approve.sha256 = kSha;
    approvals.push_back(approve);
  }
  void TearDown() override {
    pipeline.reset();
    detection.reset();
    writer.reset();
    reader.reset();
    std::filesystem::remove_all(dir);
  }

  // (Re)starts the detection over what the store holds, as guardd's start-up does.
  void startDetection() {
    pipeline.reset();
    detection.reset();
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
    deps.presence = presence;
    detection = std::make_unique<Detection>(std::move(deps));
    auto started = detection->start();
    ASSERT_TRUE(started) << started.error().message;
    pipeline = std::make_unique<VerdictPipeline>(
        VerdictPipeline::Seams{packets, attribution, *detection, programs, approvals, records,
                               clock},
        VerdictPipeline::Observers{}, 1024, 1);
  }
  void stopDetection() {
    detection->stop();
    writer->flush();
  }

  PacketVerdict attempt(const std::string& path, const std::string& dst, std::uint16_t port) {
    const auto srcPort = nextPort++;
    attribution.bySourcePort[srcPort] = process(path, srcPort);
    packets.push(syn(srcPort, srcPort, dst, port));
    pipeline->onReadable();
    return packets.verdicts.back().second;
  }

  rules::ProgramState stateOf(const std::string& path) {
    return programs.find(process(path, 1).identity)->state;
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
  std::uint16_t nextPort = 30000;
  std::function<detector::PresenceEvidence(std::uint32_t, MonoTime)> presence;
};

TEST_F(DetectionTest, ACopyOfTheApprovedClientIsQuarantinedAsItselfAndTheClientKeepsConnecting) {
  startDetection();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(attempt(kInstalled, "127.0.0.1", 587), PacketVerdict::RepeatWithAllow);
  }
  int rejectedAt = 0;
  for (int i = 1; i <= 30 && rejectedAt == 0; ++i) {
    const auto v = attempt(kCopy, "127.1." + std::to_string(i) + ".25", 25);
    EXPECT_NE(v, PacketVerdict::RepeatWithAllow) << "an unapproved copy must not get through";
    if (v == PacketVerdict::RepeatWithReject) rejectedAt = i;
    clock.advance(std::chrono::seconds(2));
  }
  ASSERT_GT(rejectedAt, 0) << "the copy was never quarantined";
  EXPECT_LE(rejectedAt, 10);
  EXPECT_EQ(stateOf(kCopy), rules::ProgramState::Quarantined);
  EXPECT_EQ(stateOf(kInstalled), rules::ProgramState::Approved);
  EXPECT_TRUE(detection->quarantinedIdentity(process(kCopy, 1).identity));
  EXPECT_FALSE(detection->quarantinedIdentity(process(kInstalled, 1).identity));
  EXPECT_FALSE(detection->doubted(process(kInstalled, 1).identity));

  // Every alert names the copy: its path, its program row, its principal.
  ASSERT_FALSE(raised.empty());
  EXPECT_EQ(raised.back().tier, "hard");
  for (const auto& a : raised) {
    EXPECT_EQ(a.path, kCopy) << a.summary;
    EXPECT_EQ(a.programId, programs.find(process(kCopy, 1).identity)->id);
    const auto evidence = nlohmann::json::parse(a.evidence);
    EXPECT_EQ(evidence["principal"]["path"], kCopy) << a.evidence;
    EXPECT_EQ(evidence["program"], kCopy) << a.evidence;
  }
  EXPECT_EQ(attempt(kInstalled, "127.0.0.1", 587), PacketVerdict::RepeatWithAllow);

  // After a restart over the stored state, each file is still judged as itself.
  stopDetection();
  startDetection();
  EXPECT_EQ(stateOf(kCopy), rules::ProgramState::Quarantined);
  EXPECT_EQ(stateOf(kInstalled), rules::ProgramState::Approved);
  EXPECT_EQ(attempt(kInstalled, "127.0.0.1", 587), PacketVerdict::RepeatWithAllow);
  EXPECT_EQ(attempt(kCopy, "127.0.0.1", 587), PacketVerdict::RepeatWithReject);
}

// State an earlier guardd stored (principal without a path): its quarantine goes to the
// file that connected last, never to every copy of the content; a declared bulk send
// holds for the content at each path it was seen at; saved again in the new form.
TEST_F(DetectionTest, StateStoredWithoutPathsIsReadAsTheFileThatConnectedLast) {
  const auto now = clock.now();
  det::PrincipalSnapshot s;
  s.principal = {kSha, kCopy, "", "", 1000};
  s.program = kCopy;
  s.cusum = {0, 9.5, 0};
  s.lastActivity = now;
  s.cusumUpdated.fill(now);
  s.quarantined = true;
  auto v1 = nlohmann::json::parse(encodeSnapshot(s));
  v1["version"] = 1;
  v1["principal"].erase("path");
  auto bulk = nlohmann::json::parse(
      encodeBulk(BulkDeclaration{{kSha, "", "", "", 1000}, 500, now + std::chrono::hours(4)}));
  bulk["version"] = 1;
  bulk["principal"].erase("path");
  const std::string oldKey = kSha + "/1000";
  writer->saveDetectorState({{oldKey, v1.dump()}, {"#bulk:" + oldKey, bulk.dump()}}, {});
  writer->flush();
  for (const char* path : {kInstalled, kCopy}) {
    programs.remember(process(path, 1).identity, 1000, now, clock.monotonic());
  }
  programs.find(process(kInstalled, 1).identity)->state = rules::ProgramState::Approved;

  startDetection();
  EXPECT_EQ(stateOf(kCopy), rules::ProgramState::Quarantined);
  EXPECT_EQ(stateOf(kInstalled), rules::ProgramState::Approved);
  EXPECT_EQ(attempt(kInstalled, "127.0.0.1", 587), PacketVerdict::RepeatWithAllow);
  rules::ConnectionTuple tuple = *syn(1, 1, "127.0.0.1", 587).tuple;
  for (const char* path : {kInstalled, kCopy}) {
    const auto p = process(path, 1);
    EXPECT_TRUE(detection->assess(p, *programs.find(p.identity), tuple, false).bulkDeclared)
        << path;
  }

  stopDetection();
  auto rows = reader->loadDetectorState();
  ASSERT_TRUE(rows) << rows.error().message;
  std::vector<std::string> keys;
  for (const auto& [key, text] : *rows) keys.push_back(key);
  const std::string installedKey = kSha + ":" + kInstalled + "/1000";
  const std::string copyKey = kSha + ":" + kCopy + "/1000";
  EXPECT_EQ(keys, (std::vector<std::string>{"#bulk:" + copyKey, "#bulk:" + installedKey, copyKey,
                                            installedKey}));
}

// What guardd's presence source says reaches the detector: a copy attempting direct
// delivery while its user is away (U2) is quarantined sooner than another with no
// presence known, and the source is asked about the attempting process's user.
TEST_F(DetectionTest, PresenceOfTheAttemptingUserReachesTheDetector) {
  const auto attemptsToQuarantine = [this](const std::string& path, const std::string& net) {
    for (int i = 1; i <= 40; ++i) {
      const auto v = attempt(path, net + std::to_string(i) + ".25", 25);
      clock.advance(std::chrono::seconds(20));
      if (v == PacketVerdict::RepeatWithReject) return i;
    }
    return 0;
  };
  startDetection();
  const int unknown = attemptsToQuarantine(kCopy, "127.1.");
  ASSERT_GT(unknown, 0);

  std::vector<std::uint32_t> askedFor;
  presence = [&askedFor](std::uint32_t uid, MonoTime) {
    askedFor.push_back(uid);
    detector::PresenceEvidence p;
    p.known = true;
    p.activeSession = false;
    return p;
  };
  stopDetection();
  startDetection();
  const int away = attemptsToQuarantine(kOtherCopy, "127.2.");
  ASSERT_GT(away, 0);
  EXPECT_LT(away, unknown) << "U2 (user away) did not move the score";
  ASSERT_FALSE(askedFor.empty());
  EXPECT_EQ(askedFor.front(), process(kOtherCopy, 1).uid);
}

}  // namespace
}  // namespace mailguard::service
