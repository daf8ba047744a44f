// guardctl's output for people and for scripts, without a bus.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "output.hpp"

namespace mailguard::guardctl {
namespace {

dbus::Status aStatus(std::string attribution) {
  dbus::Status s;
  s.enforcing = true;
  s.backend = "xt-compat";
  s.version = "0.1.0";
  s.attribution = std::move(attribution);
  return s;
}

dbus::Attempt anAttempt(std::string cmdline, std::string hidden) {
  dbus::Attempt a;
  a.id = 1;
  a.pid = 4242;
  a.uid = 0;
  a.path = "/usr/bin/swaks";
  a.dst = "192.0.2.25";
  a.dstPort = 25;
  a.verdict = "hold";
  a.reason = "unknown program";
  a.cmdline = std::move(cmdline);
  a.cmdlineHidden = std::move(hidden);
  return a;
}

TEST(GuardctlAttempts, ShowsTheCommandLineOrWhyItIsHidden) {
  const auto table = attemptsTable(
      {anAttempt("swaks --auth-password *** --to a@b", ""), anAttempt("", "another user's")});
  EXPECT_NE(table.find("COMMAND"), std::string::npos) << table;
  EXPECT_NE(table.find("swaks --auth-password *** --to a@b"), std::string::npos) << table;
  EXPECT_NE(table.find("(hidden: another user's)"), std::string::npos) << table;
  const auto json = toJson(anAttempt("", "another user's"));
  EXPECT_EQ(json["cmdline"], "");
  EXPECT_EQ(json["cmdline_hidden"], "another user's");
  EXPECT_TRUE(toJson(anAttempt("swaks", ""))["cmdline_hidden"].is_null());
}

TEST(GuardctlAttempts, CutsALongCommandLineInTheTable) {
  const auto table = attemptsTable({anAttempt("swaks " + std::string(200, 'x'), "")});
  EXPECT_EQ(table.find(std::string(100, 'x')), std::string::npos) << table;
  EXPECT_NE(table.find("xxx..."), std::string::npos) << table;
}

dbus::Attempt aSubmission() {
  auto a = anAttempt("sendmail -t", "");
  a.path = "/usr/bin/python3.11";
  a.scriptPath = "/home/ann/bot.py";
  a.src = "exim";
  a.dst = "victim.example,other.example";
  a.dstPort = 0;
  a.channel = "mta";
  a.queueId = "1rXyZa-000Abc-7Q";
  return a;
}

TEST(GuardctlAttempts, ShowsTheChannelAndQueueIdOfAMessageHandedToTheMta) {
  const auto table = attemptsTable({aSubmission(), anAttempt("swaks", "")});
  EXPECT_NE(table.find("CHANNEL"), std::string::npos) << table;
  EXPECT_NE(table.find("QUEUE ID"), std::string::npos) << table;
  EXPECT_NE(table.find("mta"), std::string::npos) << table;
  EXPECT_NE(table.find("1rXyZa-000Abc-7Q"), std::string::npos) << table;
  EXPECT_NE(table.find("victim.example,other.example "), std::string::npos) << table;
  EXPECT_EQ(table.find("other.example:0"), std::string::npos) << table;
  EXPECT_NE(table.find("connection"), std::string::npos) << table;
  EXPECT_NE(table.find("192.0.2.25:25"), std::string::npos) << table;

  const auto mta = toJson(aSubmission());
  EXPECT_EQ(mta["channel"], "mta");
  EXPECT_EQ(mta["queue_id"], "1rXyZa-000Abc-7Q");
  EXPECT_EQ(mta["src"], "exim");
  const auto tcp = toJson(anAttempt("swaks", ""));
  EXPECT_EQ(tcp["channel"], "connection");
  EXPECT_TRUE(tcp["queue_id"].is_null());
  EXPECT_NE(attemptLine(aSubmission()).find("queue id 1rXyZa-000Abc-7Q"), std::string::npos);
}

dbus::Program aProgram(std::int64_t id, std::string path, std::string script, std::uint32_t held) {
  dbus::Program p;
  p.id = id;
  p.path = std::move(path);
  p.scriptPath = std::move(script);
  p.state = "pending";
  p.heldMessages = held;
  return p;
}

TEST(GuardctlPrograms, ShowTheMessagesTheMtaHolds) {
  const std::vector<dbus::Program> list{aProgram(3, "/usr/bin/python3.11", "/srv/bot.py", 20),
                                        aProgram(4, "/usr/bin/swaks", "", 0)};
  const auto table = programsTable(list);
  EXPECT_NE(table.find("HELD"), std::string::npos) << table;
  EXPECT_NE(table.find(" 20 "), std::string::npos) << table;
  EXPECT_EQ(toJson(list[0])["held_messages"], 20);
  EXPECT_EQ(toJson(list[1])["held_messages"], 0);
}

TEST(GuardctlPrograms, ARowWithVersionsSaysHowManyAndWhyItIsPending) {
  const std::vector<dbus::Program> list{aProgram(9, "/usr/local/bin/x", "", 0),
                                        aProgram(4, "/usr/bin/swaks", "", 0)};
  VersionsById versions;
  versions[9] = {{9, std::string(64, 'c'), 3, "pending: changed since approved"},
                 {5, std::string(64, 'b'), 2, "not decided, replaced by a newer version"},
                 {1, std::string(64, 'a'), 1, "approved, replaced by a newer version"}};
  versions[4] = {{4, std::string(64, 'd'), 1, "pending"}};
  const auto table = programsTable(list, versions, false);
  EXPECT_NE(table.find("pending: changed since approved"), std::string::npos) << table;
  EXPECT_NE(table.find("/usr/local/bin/x (3 versions)"), std::string::npos) << table;
  EXPECT_EQ(table.find("/usr/bin/swaks ("), std::string::npos) << table;
  EXPECT_EQ(table.find("replaced"), std::string::npos) << table;
  const auto listed = programsTable(list, versions, true);
  EXPECT_NE(listed.find("approved, replaced by a newer version"), std::string::npos) << listed;
  EXPECT_NE(listed.find("sha256 cccccccccccc (current)"), std::string::npos) << listed;
  const auto json = toJson(versions[9][2]);
  EXPECT_EQ(json["id"], 1);
  EXPECT_EQ(json["state"], "approved, replaced by a newer version");
  EXPECT_EQ(json.size(), 4U);
}

TEST(GuardctlDeny, CountsTheHeldMessagesOfTheProgramsItNames) {
  const std::vector<dbus::Program> list{
      aProgram(3, "/usr/bin/python3.11", "/srv/bot.py", 20),
      aProgram(5, "/usr/bin/python3.11", "/srv/bot.py", 2),  // the same path, changed
      aProgram(6, "/usr/bin/python3.11", "/srv/other.py", 7), aProgram(4, "/usr/bin/swaks", "", 0)};
  EXPECT_EQ(heldMessagesOf(list, "3", ""), 20U);
  EXPECT_EQ(heldMessagesOf(list, "/usr/bin/python3.11", "/srv/bot.py"), 22U);
  EXPECT_EQ(heldMessagesOf(list, "/usr/bin/python3.11", ""), 0U);
  EXPECT_EQ(heldMessagesOf(list, "4", ""), 0U);
  EXPECT_EQ(heldMessagesOf(list, "9", ""), 0U);
  EXPECT_EQ(heldNotice(20, "/usr/bin/python3.11 /srv/bot.py"),
            "20 held messages of /usr/bin/python3.11 /srv/bot.py will be deleted");
  EXPECT_EQ(heldNotice(1, "/usr/bin/x"), "1 held message of /usr/bin/x will be deleted");
}

TEST(GuardctlRules, ShowPinnedDestinationsAndAllowedCodeLoading) {
  dbus::Rule pinned;
  pinned.id = 1;
  pinned.action = "approve";
  pinned.path = "/usr/bin/perl";
  pinned.scriptPath = "/srv/news.pl";
  pinned.onlyTo = {"192.0.2.7:587", "[2001:db8::7]:25"};
  pinned.allowEnv = {"PERL5LIB", "-M"};
  dbus::Rule plain;
  plain.id = 2;
  plain.action = "approve";
  plain.path = "/usr/bin/msmtp";
  const auto table = rulesTable({pinned, plain});
  EXPECT_NE(table.find("ALLOWS"), std::string::npos) << table;
  EXPECT_NE(table.find("192.0.2.7:587,[2001:db8::7]:25"), std::string::npos) << table;
  EXPECT_NE(table.find("PERL5LIB,-M"), std::string::npos) << table;
  EXPECT_NE(table.find("anywhere"), std::string::npos) << table;
  const auto json = toJson(pinned);
  EXPECT_EQ(json["allow_env"], (std::vector<std::string>{"PERL5LIB", "-M"}));
  EXPECT_EQ(json["only_to"], (std::vector<std::string>{"192.0.2.7:587", "[2001:db8::7]:25"}));
  EXPECT_TRUE(toJson(plain)["allow_env"].empty());
}

TEST(GuardctlStatus, SaysWhichAttributionPathIsInForce) {
  const std::string kernel = statusText(aStatus("kernel"));
  EXPECT_NE(kernel.find("\nattribution:     kernel (BPF hooks decide approved connects at "
                        "connect())\n"),
            std::string::npos)
      << kernel;
  const std::string proc = statusText(aStatus("proc"));
  EXPECT_NE(proc.find("\nattribution:     proc ("), std::string::npos) << proc;
  EXPECT_NE(proc.find("/proc)\n"), std::string::npos) << proc;
  // Right after the queue backend line.
  EXPECT_LT(proc.find("queue backend:   xt-compat\n"), proc.find("attribution:")) << proc;
  EXPECT_NE(statusText(aStatus("")).find("attribution:     unknown"), std::string::npos);
}

TEST(GuardctlStatus, JsonHasTheAttributionKey) {
  const auto kernel = toJson(aStatus("kernel"));
  ASSERT_TRUE(kernel.contains("attribution"));
  EXPECT_EQ(kernel["attribution"], "kernel");
  EXPECT_EQ(toJson(aStatus("proc"))["attribution"], "proc");
  // An older guardd that does not say: null, not a made-up value.
  EXPECT_TRUE(toJson(aStatus(""))["attribution"].is_null());
  // The keys scripts already use stay.
  EXPECT_EQ(kernel["backend"], "xt-compat");
  EXPECT_EQ(kernel["enforcing"], true);
}

TEST(GuardctlStatus, JsonSaysWhereProgramsDnsIsSeen) {
  dbus::Status s = aStatus("kernel");
  s.dnsSource = "kernel";
  s.dnsQueries = 42;
  s.dnsLost = 1;
  const auto json = toJson(s);
  EXPECT_EQ(json["dns"]["source"], "kernel");
  EXPECT_EQ(json["dns"]["queries"], 42);
  EXPECT_EQ(json["dns"]["lost"], 1);
  s.replySessions = 3;
  s.repliesLost = 2;
  EXPECT_EQ(toJson(s)["replies"]["sessions"], 3);
  EXPECT_EQ(toJson(s)["replies"]["lost"], 2);
  EXPECT_EQ(toJson(aStatus("proc"))["dns"]["source"], "none");
}

TEST(GuardctlStatus, CallsItsCountersPacketVerdictsSinceGuarddStarted) {
  dbus::Status s = aStatus("proc");
  s.allowed = 3;
  s.held = 9;
  s.rejected = 2;
  const std::string text = statusText(s);
  EXPECT_NE(text.find("verdicts:        since guardd started: 14 packet verdicts (3 allowed, 9 "
                      "held, 2 rejected; each SYN retry counts)\n"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("connections:"), std::string::npos) << text;
  const auto j = toJson(s);
  EXPECT_EQ(j["counters"]["verdicts"], 14);
  EXPECT_EQ(j["counters"]["held"], 9);  // the keys scripts use stay
}

TEST(GuardctlStatus, ShowsWhatGuarddSeesOfPresence) {
  dbus::Status s = aStatus("proc");
  s.presenceSource = "logind+input";
  s.presenceActiveUser = 1000;
  s.presenceIdleSeconds = 7;
  EXPECT_NE(statusText(s).find("presence:        logind+input, active user 1000, idle 7 s\n"),
            std::string::npos)
      << statusText(s);
  const auto j = toJson(s);
  EXPECT_EQ(j["presence"]["source"], "logind+input");
  EXPECT_EQ(j["presence"]["active_user"], 1000);
  EXPECT_EQ(j["presence"]["idle_s"], 7);

  dbus::Status none = aStatus("proc");
  none.presenceSource = "none";
  EXPECT_NE(statusText(none).find("presence:        none ("), std::string::npos);
  const auto n = toJson(none);
  EXPECT_EQ(n["presence"]["source"], "none");
  EXPECT_TRUE(n["presence"]["active_user"].is_null());
  EXPECT_TRUE(n["presence"]["idle_s"].is_null());
  // An older guardd that does not say: null.
  EXPECT_TRUE(toJson(aStatus("proc"))["presence"].is_null());
}

class TargetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::temp_directory_path() / ("guardctl-target-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    old_ = std::filesystem::current_path();
    std::filesystem::current_path(dir_);
    std::ofstream("bot.py") << "print()\n";
    std::ofstream("-1") << "odd name\n";
  }
  void TearDown() override {
    std::filesystem::current_path(old_);
    std::filesystem::remove_all(dir_);
  }
  std::filesystem::path dir_, old_;
};

TEST_F(TargetTest, IdsAreDigitsFromOneAndAbsolutePathsPassAsTyped) {
  EXPECT_EQ(programTarget("7").value(), "7");
  EXPECT_EQ(programTarget("007").value(), "7");
  EXPECT_EQ(programTarget("/usr/bin/msmtp").value(), "/usr/bin/msmtp");
}

TEST_F(TargetTest, MinusOneAndZeroAreErrorsNotPaths) {
  // "-1" exists here as a file: still not taken for one, it is a mistyped id.
  auto r = programTarget("-1");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::InvalidArgument);
  EXPECT_NE(r.error().message.find("'-1' is not a program id or path"), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("./-1"), std::string::npos) << r.error().message;
  EXPECT_EQ(programTarget("./-1").value(), (dir_ / "-1").string());
  r = programTarget("0");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("program ids start at 1"), std::string::npos);
  EXPECT_FALSE(programTarget("000"));
  EXPECT_FALSE(programTarget("1234567890123456789012"));
  EXPECT_FALSE(programTarget(""));
}

TEST_F(TargetTest, ARelativePathMustNameAFileHere) {
  EXPECT_EQ(programTarget("bot.py").value(), (dir_ / "bot.py").string());
  EXPECT_EQ(scriptTarget("./bot.py").value(), (dir_ / "bot.py").string());
  auto r = programTarget("nothing-here");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("'nothing-here' is neither a program id nor a file in this "
                                   "directory"),
            std::string::npos)
      << r.error().message;
  // A command name that is not a file here: the one $PATH would run is suggested.
  r = programTarget("sh");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("did you mean /"), std::string::npos) << r.error().message;
  EXPECT_FALSE(scriptTarget("-x"));
  EXPECT_FALSE(scriptTarget("3")) << "a script is a file, never an id";
}

TEST(GuardctlStartHint, InANamespaceTrialNamesGuarddItselfNotSystemctl) {
  const dbus::ClientError notRunning{dbus::ClientError::Kind::NotRunning,
                                     "guardd is not running (no org.mailguard.Guard1 on the "
                                     "system bus); start it with: sudo systemctl start guardd",
                                     "org.freedesktop.DBus.Error.ServiceUnknown"};
  const auto trial = withStartHint(notRunning, Machine{true, true});
  EXPECT_EQ(trial.find("systemctl start"), std::string::npos) << trial;
  EXPECT_NE(trial.find("network namespace trial"), std::string::npos) << trial;
  EXPECT_NE(trial.find("sudo guardd &"), std::string::npos) << trial;
  // Outside a trial the client's own hint (systemctl with systemd) stands.
  EXPECT_EQ(withStartHint(notRunning, Machine{true, false}), notRunning.message);
}

TEST(GuardctlStartHint, NamesHowToStartTheBusOnThisMachine) {
  const dbus::ClientError noBus{dbus::ClientError::Kind::NoBus,
                                "cannot connect to the system bus (Connection refused)", ""};
  const auto withSystemd = withStartHint(noBus, Machine{true, true});
  EXPECT_NE(withSystemd.find("sudo systemctl start dbus"), std::string::npos) << withSystemd;
  const auto without = withStartHint(noBus, Machine{false, false});
  EXPECT_EQ(without.find("systemctl"), std::string::npos) << without;
  EXPECT_NE(without.find("sudo dbus-daemon --system --fork"), std::string::npos) << without;
  EXPECT_NE(without.find("stale /run/dbus/system_bus_socket"), std::string::npos) << without;
  const dbus::ClientError other{dbus::ClientError::Kind::NotAuthorized, "x", ""};
  EXPECT_EQ(withStartHint(other, Machine{false, true}), other.message);
}

}  // namespace
}  // namespace mailguard::guardctl
