#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "fake_proc.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {
namespace {

using fake::FakeProcess;
using fake::writeFile;

constexpr const char* kSha256Abc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

class ProcessResolverTest : public ::testing::Test {
 protected:
  ProcessResolverTest() : fs_(tree_.proc()), resolver_(fs_, hasher_) {}

  // pids 100..400, oldest first; `socketsOf` maps pid -> socket inodes it holds.
  void addFourProcesses(const std::map<int, std::vector<std::uint64_t>>& socketsOf) {
    for (const int pid : {100, 200, 300, 400}) {
      FakeProcess p;
      p.fds = {{0, "/dev/null"}, {1, "pipe:[9]"}};
      int fd = 3;
      if (const auto it = socketsOf.find(pid); it != socketsOf.end()) {
        for (const auto inode : it->second) p.fds[fd++] = "socket:[" + std::to_string(inode) + "]";
      }
      tree_.add(pid, p);
    }
  }

  fake::FakeProcTree tree_;
  DirProcFs fs_;
  FileHasher hasher_;
  ProcessResolver resolver_;
};

TEST_F(ProcessResolverTest, ScansNewestPidFirstAndStopsAtTheFirstHit) {
  addFourProcesses({{400, {4242}}, {100, {4242}}});
  EXPECT_EQ(resolver_.pidForSocket(4242, std::nullopt), 400);
  EXPECT_EQ(resolver_.processesScanned(), 1U);
}

TEST_F(ProcessResolverTest, FindsTheOldestProcessAfterScanningTheRest) {
  addFourProcesses({{100, {4242}}});
  EXPECT_EQ(resolver_.pidForSocket(4242, std::nullopt), 100);
  EXPECT_EQ(resolver_.processesScanned(), 4U);
}

TEST_F(ProcessResolverTest, TriesRecentOwnersBeforeScanning) {
  addFourProcesses({{100, {4242, 4243}}, {200, {5000}}});
  ASSERT_EQ(resolver_.pidForSocket(4242, std::nullopt), 100);
  const auto before = resolver_.processesScanned();
  EXPECT_EQ(resolver_.pidForSocket(4243, std::nullopt), 100);
  EXPECT_EQ(resolver_.processesScanned() - before, 1U);  // only pid 100 was looked at

  // 200 becomes the most recent owner and is tried before 100.
  ASSERT_EQ(resolver_.pidForSocket(5000, std::nullopt), 200);
  const auto before2 = resolver_.processesScanned();
  EXPECT_EQ(resolver_.pidForSocket(5000, std::nullopt), 200);
  EXPECT_EQ(resolver_.processesScanned() - before2, 1U);
}

TEST_F(ProcessResolverTest, DoesNotScanRecentOwnersTwice) {
  addFourProcesses({{100, {4242}}});
  ASSERT_EQ(resolver_.pidForSocket(4242, std::nullopt), 100);
  const auto before = resolver_.processesScanned();
  EXPECT_EQ(resolver_.pidForSocket(9999, std::nullopt), std::nullopt);
  EXPECT_EQ(resolver_.processesScanned() - before, 4U);
}

TEST_F(ProcessResolverTest, ForgetsAPidOnRequest) {
  addFourProcesses({{100, {4242}}});
  ASSERT_EQ(resolver_.pidForSocket(4242, std::nullopt), 100);
  resolver_.forget(100);
  const auto before = resolver_.processesScanned();
  EXPECT_EQ(resolver_.pidForSocket(4242, std::nullopt), 100);
  EXPECT_EQ(resolver_.processesScanned() - before, 4U);  // scanned newest first again
}

TEST_F(ProcessResolverTest, TriesProcessesOfTheSocketsUidFirst) {
  addFourProcesses({{100, {4242}}});
  constexpr std::uint32_t kMailUser = 4321;
  // The owner of /proc/PID is the hint; giving a fake dir another owner needs CAP_CHOWN.
  if (::chown((tree_.proc() / "100").c_str(), kMailUser, kMailUser) != 0) {
    GTEST_SKIP() << "cannot chown the fake /proc/100 (needs CAP_CHOWN): " << std::strerror(errno);
  }
  EXPECT_EQ(resolver_.pidForSocket(4242, kMailUser), 100);
  EXPECT_EQ(resolver_.processesScanned(), 1U);
}

TEST_F(ProcessResolverTest, ReturnsNothingWhenNoProcessHoldsTheSocket) {
  addFourProcesses({});
  fake::writeFile(tree_.proc() / "self" / "status", "");  // non-pid entries are ignored
  std::filesystem::create_directories(tree_.proc() / "sys");
  std::filesystem::create_directories(tree_.proc() / "500");  // vanished: no fd dir
  EXPECT_EQ(resolver_.pidForSocket(4242, ::getuid()), std::nullopt);
  EXPECT_EQ(resolver_.processesScanned(), 5U);
}

TEST_F(ProcessResolverTest, DescribesAPlainExecutable) {
  const auto exe = tree_.addFile("bin/mailer", "abc");
  tree_.add(321, FakeProcess{.name = "mailer",
                             .ppid = 7,
                             .uid = 1000,
                             .startTime = 123456,
                             .cmdline = {"mailer", "--to", "x@example.org"},
                             .exe = exe,
                             .cwd = tree_.files()});
  const auto info = resolver_.describe(321);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->pid, 321);
  EXPECT_EQ(info->ppid, 7);
  EXPECT_EQ(info->uid, 1000U);
  EXPECT_EQ(info->startTime, 123456U);
  EXPECT_EQ(info->comm, "mailer");
  EXPECT_EQ(info->cmdline, (std::vector<std::string>{"mailer", "--to", "x@example.org"}));
  EXPECT_EQ(info->identity.path, exe.string());
  EXPECT_EQ(info->identity.sha256, kSha256Abc);
  EXPECT_FALSE(info->identity.deleted);
  EXPECT_FALSE(info->identity.isInterpreted());
  EXPECT_FALSE(info->identity.pathTrusted);  // it lives under the temp dir
  EXPECT_TRUE(info->controllingTerminal);    // the fake stat's field 7 (tty_nr) is "7"
}

TEST_F(ProcessResolverTest, TrustsTheNameOfARootOwnedSystemExecutable) {
  if (!isRootOwnedChain("/usr/bin/env")) GTEST_SKIP() << "/usr/bin/env is not root-owned here";
  tree_.add(55, FakeProcess{.name = "env", .cmdline = {"env"}, .exe = "/usr/bin/env"});
  const auto info = resolver_.describe(55);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.path, "/usr/bin/env");
  EXPECT_FALSE(info->identity.deleted);
  EXPECT_TRUE(info->identity.pathTrusted);
}

TEST_F(ProcessResolverTest, MarksADeletedExecutableButHashesWhatIsMapped) {
  // The kernel shows a removed executable as "<path> (deleted)"; the open still works.
  const auto mapped = tree_.addFile("bin/bot (deleted)", "abc");
  tree_.add(66, FakeProcess{.name = "bot", .cmdline = {"./bot"}, .exe = mapped});
  const auto info = resolver_.describe(66);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.path, (tree_.files() / "bin/bot").string());
  EXPECT_EQ(info->identity.sha256, kSha256Abc);
  EXPECT_TRUE(info->identity.deleted);
  EXPECT_FALSE(info->identity.pathTrusted);
}

TEST_F(ProcessResolverTest, MarksAReplacedExecutableAsDeleted) {
  // Another file now sits at the path shown: the path cannot vouch for what runs.
  const auto mapped = tree_.addFile("bin/bot (deleted)", "abc");
  tree_.addFile("bin/bot", "a newer bot");
  tree_.add(67, FakeProcess{.name = "bot", .cmdline = {"bot"}, .exe = mapped});
  const auto info = resolver_.describe(67);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.sha256, kSha256Abc);
  EXPECT_TRUE(info->identity.deleted);
}

TEST_F(ProcessResolverTest, ReusesADescriptionWithinTheTtlWhileNothingChanged) {
  const auto exe = tree_.addFile("bin/client", "abc");
  tree_.add(68, FakeProcess{.name = "client", .cmdline = {"client"}, .exe = exe});
  ASSERT_TRUE(resolver_.describe(68));
  const auto again = resolver_.describe(68);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again->identity.sha256, kSha256Abc);
  EXPECT_EQ(hasher_.hashesComputed(), 1U);
}

TEST_F(ProcessResolverTest, ARewrittenExecutableDoesNotRideOnTheCachedIdentity) {
  // same pid, start time, inode, size, mtime, link text and command line
  // as a process described a moment ago (an exec of a file that took over the inode
  // number, with size and mtime copied): only the ctime tells, and it must.
  const auto exe = tree_.addFile("bin/client", "abc");
  tree_.add(69, FakeProcess{.name = "client", .cmdline = {"client"}, .exe = exe});
  const auto first = resolver_.describe(69);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(first->identity.sha256, kSha256Abc);
  fake::rewriteKeepingTimes(exe, "xyz");
  const auto second = resolver_.describe(69);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(second->identity.sha256, kSha256Abc);
}

TEST_F(ProcessResolverTest, FindsCodeLoadingInTheEnvironmentAndOptions) {
  const auto exe = tree_.addFile("bin/mailer", "abc");
  tree_.add(70, FakeProcess{.name = "mailer",
                            .cmdline = {"mailer"},
                            .exe = exe,
                            .env = std::vector<std::string>{"HOME=/home/ann", "PERL5OPT=-MBot",
                                                            "LD_PRELOAD=/home/ann/x.so"}});
  const auto info = resolver_.describe(70);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_EQ(info->codeLoading.size(), 1U);  // PERL5OPT means nothing to a non-perl
  EXPECT_EQ(info->codeLoading[0].name, "LD_PRELOAD");
  EXPECT_EQ(info->codeLoading[0].value, "/home/ann/x.so");

  const auto perl = tree_.addFile("bin/perl", "perl");
  const auto script = tree_.addFile("srv/news.pl", "print 1");
  tree_.add(71, FakeProcess{.name = "perl",
                            .cmdline = {"perl", "-MBot", script.string()},
                            .exe = perl,
                            .env = std::vector<std::string>{"PERL5LIB=/home/ann/lib"}});
  const auto interpreted = resolver_.describe(71);
  ASSERT_TRUE(interpreted) << interpreted.error().message;
  ASSERT_EQ(interpreted->codeLoading.size(), 2U);
  EXPECT_EQ(interpreted->codeLoading[0].name, "-M");
  EXPECT_EQ(interpreted->codeLoading[1].name, "PERL5LIB");
}

TEST_F(ProcessResolverTest, AnUnreadableEnvironmentIsAFindingNotAPass) {
  const auto exe = tree_.addFile("bin/mailer", "abc");
  tree_.add(72, FakeProcess{.name = "mailer", .cmdline = {"mailer"}, .exe = exe, .env = {}});
  const auto info = resolver_.describe(72);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_EQ(info->codeLoading.size(), 1U);
  EXPECT_EQ(info->codeLoading[0].name, rules::kEnvironUnreadable);
}

TEST_F(ProcessResolverTest, AnEnvironmentTooLargeToReadWhollyIsAFinding) {
  const auto exe = tree_.addFile("bin/mailer", "abc");
  // The variable that matters sits after 1 MiB of padding, where the read stops.
  tree_.add(73, FakeProcess{.name = "mailer",
                            .cmdline = {"mailer"},
                            .exe = exe,
                            .env = std::vector<std::string>{"PAD=" + std::string(1U << 20U, 'x'),
                                                            "LD_PRELOAD=/home/ann/x.so"}});
  const auto info = resolver_.describe(73);
  ASSERT_TRUE(info) << info.error().message;
  ASSERT_EQ(info->codeLoading.size(), 1U);
  EXPECT_EQ(info->codeLoading[0].name, rules::kEnvironUnreadable);
  EXPECT_EQ(info->codeLoading[0].value, "larger than 1 MiB");
}

TEST_F(ProcessResolverTest, ANewEnvironmentDoesNotRideOnTheCachedDescription) {
  // An exec of the same file with the same arguments keeps pid and start time; only the
  // environment differs.
  const auto exe = tree_.addFile("bin/client", "abc");
  tree_.add(74, FakeProcess{.name = "client", .cmdline = {"client"}, .exe = exe});
  const auto first = resolver_.describe(74);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(first->codeLoading.empty());
  fake::writeFile(tree_.proc() / "74/environ", std::string("LD_PRELOAD=/home/a/x.so\0", 24));
  const auto second = resolver_.describe(74);
  ASSERT_TRUE(second) << second.error().message;
  ASSERT_EQ(second->codeLoading.size(), 1U);
  EXPECT_EQ(second->codeLoading[0].name, "LD_PRELOAD");
}

// pid 400 (found first, newest) and pid 100 hold socket 4242.
class OtherHoldersTest : public ProcessResolverTest {
 protected:
  void addSharedSocket(std::optional<std::string_view> flagsOf400) {
    addFourProcesses({{100, {4242}}, {400, {4242}}});
    if (flagsOf400) {
      fake::writeFile(tree_.proc() / "400/fdinfo/3",
                      "pos:\t0\nflags:\t" + std::string(*flagsOf400) + "\nmnt_id:\t9\n");
    }
    ASSERT_EQ(resolver_.pidForSocket(4242, std::nullopt), 400);
  }
};

TEST_F(OtherHoldersTest, FindsTheOtherHolderOfASocketInheritedOverExec) {
  addSharedSocket("02");  // O_RDWR, no O_CLOEXEC
  EXPECT_EQ(resolver_.otherHolders(400, 4242), std::vector<int>{100});
}

TEST_F(OtherHoldersTest, ReadsNoOtherProcessForACloseOnExecSocket) {
  addSharedSocket("02000002");
  const auto before = resolver_.processesScanned();
  EXPECT_TRUE(resolver_.otherHolders(400, 4242).empty());
  EXPECT_EQ(resolver_.processesScanned(), before);
}

TEST_F(OtherHoldersTest, ReadsEveryProcessWhenTheFlagsCannotBeRead) {
  addSharedSocket(std::nullopt);
  EXPECT_EQ(resolver_.otherHolders(400, 4242), std::vector<int>{100});
}

TEST_F(OtherHoldersTest, FindsNoneWhenTheSocketIsNotShared) {
  addFourProcesses({{400, {4242}}});
  ASSERT_EQ(resolver_.pidForSocket(4242, std::nullopt), 400);
  EXPECT_TRUE(resolver_.otherHolders(400, 4242).empty());
}

// /proc as a process exec()s while it is being read: the first look at pid 400's exe
// first turns pid 400 into `becomes`, closing its close-on-exec socket fd 3.
class ExecingProcFs final : public ProcFs {
 public:
  ExecingProcFs(const std::filesystem::path& root, std::filesystem::path becomes)
      : inner_(root), becomes_(std::move(becomes)) {}
  [[nodiscard]] const std::filesystem::path& root() const override { return inner_.root(); }
  Result<std::string> read(std::string_view rel) const override { return inner_.read(rel); }
  Result<std::vector<std::string>> list(std::string_view rel) const override {
    return inner_.list(rel);
  }
  Result<std::string> readLink(std::string_view rel) const override {
    if (rel == "400/exe" && !execed_) {
      execed_ = true;
      std::filesystem::remove(root() / "400/fd/3");
      std::filesystem::remove(root() / "400/exe");
      std::filesystem::create_symlink(becomes_, root() / "400/exe");
    }
    return inner_.readLink(rel);
  }

 private:
  DirProcFs inner_;
  std::filesystem::path becomes_;
  mutable bool execed_ = false;
};

// A listening server (pid 100) forks a child (pid 400) that runs a helper: until its
// exec the child holds the listener too, and as the newest pid it is found first. The
// listener must still be named after the server, not after the helper (a CI find: the
// audit named busctl, run by the test, as the program listening on port 25).
TEST(DescribeHolder, NamesTheListenerNotAChildThatExecedWhileBeingRead) {
  fake::FakeProcTree tree;
  const auto server = tree.addFile("bin/server", "abc");
  const auto helper = tree.addFile("bin/helper", "xyz");
  for (const int pid : {100, 400}) {
    tree.add(pid, FakeProcess{.name = "server",
                              .startTime = static_cast<std::uint64_t>(pid),
                              .cmdline = {"server"},
                              .exe = server,
                              .fds = {{3, "socket:[4242]"}}});
  }
  ExecingProcFs fs(tree.proc(), helper);
  FileHasher hasher;
  ProcessResolver resolver(fs, hasher);
  const auto info = resolver.describeHolder(4242, std::nullopt);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->pid, 100);
  EXPECT_EQ(info->identity.path, server.string());
}

TEST_F(ProcessResolverTest, DescribeHolderGivesNothingWhenNoProcessHoldsTheSocket) {
  addFourProcesses({{100, {5000}}});
  const auto info = resolver_.describeHolder(4242, std::nullopt);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().message, "no process holds the socket any more");
}

TEST_F(ProcessResolverTest, ResolvesARelativeScriptAgainstTheWorkingDirectory) {
  const auto python = tree_.addFile("usr/bin/python3", "not really python");
  const auto script = tree_.addFile("home/ann/bot.py", "abc");
  tree_.add(77, FakeProcess{.name = "python3",
                            .cmdline = {"python3", "./sub/../bot.py", "--fast"},
                            .exe = python,
                            .cwd = tree_.files() / "home/ann"});
  std::filesystem::create_directories(tree_.files() / "home/ann/sub");
  const auto info = resolver_.describe(77);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.path, python.string());
  EXPECT_EQ(info->identity.scriptPath, script.string());
  EXPECT_EQ(info->identity.scriptSha256, kSha256Abc);
  EXPECT_FALSE(info->identity.deleted);
  EXPECT_FALSE(info->identity.pathTrusted);
  // The path is only shown: a chdir after the interpreter opened the name would make it
  // another file, so no approval may rest on it.
  EXPECT_THAT(info->identity.scriptDoubt, ::testing::HasSubstr("relative path (./sub/../bot.py)"));
}

TEST_F(ProcessResolverTest, AnAbsoluteScriptInOurOwnViewIsNotInDoubt) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  const auto script = tree_.addFile("srv/news.py", "abc");
  tree_.add(
      81,
      FakeProcess{
          .name = "python3", .cmdline = {"python3", script.string()}, .exe = python, .cwd = "/"});
  const auto info = resolver_.describe(81);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.scriptDoubt, "");
  EXPECT_FALSE(info->identity.foreignView);
  EXPECT_EQ(info->identity.scriptSha256, kSha256Abc);
}

TEST_F(ProcessResolverTest, ReadsTheScriptOfAnotherMountNamespaceThroughItsOwnRoot) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  const auto ours = tree_.addFile("srv/news.py", "abc");
  // What the process sees at the same path: another file, and an absolute symlink that
  // must resolve inside its root, not in guardd's.
  tree_.addFile("theirs/bot/code.py", "bot code");
  std::filesystem::create_directories(tree_.files() / "theirs" /
                                      ours.parent_path().relative_path());
  std::filesystem::create_symlink("/bot/code.py", tree_.files() / "theirs" / ours.relative_path());
  tree_.add(
      82, FakeProcess{
              .name = "python3", .cmdline = {"python3", ours.string()}, .exe = python, .cwd = "/"});
  std::filesystem::create_directories(tree_.proc() / "82/ns");
  std::filesystem::create_symlink("mnt:[4026532001]", tree_.proc() / "82/ns/mnt");
  std::filesystem::create_symlink(tree_.files() / "theirs", tree_.proc() / "82/root");
  std::filesystem::create_directories(tree_.proc() / "self/ns");
  std::filesystem::create_symlink("mnt:[4026531841]", tree_.proc() / "self/ns/mnt");
  std::filesystem::create_symlink("/", tree_.proc() / "self/root");
  const auto info = resolver_.describe(82);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->identity.foreignView);
  EXPECT_FALSE(info->identity.pathTrusted);
  EXPECT_EQ(info->identity.scriptPath, ours.string());
  EXPECT_EQ(info->identity.scriptSha256,
            FileHasher().sha256OfPath(tree_.files() / "theirs/bot/code.py").value());
}

TEST_F(ProcessResolverTest, DoubtsAScriptChangedAfterTheProcessStarted) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  const auto script = tree_.addFile("srv/late.py", "abc");
  // Started 10 s after a boot an hour ago; the script's inode changed just now.
  tree_.add(83, FakeProcess{.name = "python3",
                            .startTime = 1000,
                            .cmdline = {"python3", script.string()},
                            .exe = python,
                            .cwd = "/"});
  const auto boot = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() -
                    3600;
  writeFile(tree_.proc() / "stat", "cpu  1 2 3\nbtime " + std::to_string(boot) + "\nprocesses 9\n");
  const auto info = resolver_.describe(83);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_THAT(info->identity.scriptDoubt,
              ::testing::HasSubstr("changed after the program started"));
  // Started after the change: no doubt.
  writeFile(tree_.proc() / "stat", "cpu  1 2 3\nbtime " + std::to_string(boot + 3600) + "\n");
  const auto later = resolver_.describe(83);
  ASSERT_TRUE(later) << later.error().message;
  EXPECT_EQ(later->identity.scriptDoubt, "");
}

TEST_F(ProcessResolverTest, RecordsTheRealPathOfAScriptReachedThroughASymlink) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  const auto script = tree_.addFile("opt/real.py", "abc");
  std::filesystem::create_directories(tree_.files() / "work");
  std::filesystem::create_symlink(script, tree_.files() / "work/link.py");
  tree_.add(78, FakeProcess{.name = "python3",
                            .cmdline = {"python3", (tree_.files() / "work/link.py").string()},
                            .exe = python,
                            .cwd = "/"});
  const auto info = resolver_.describe(78);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.scriptPath, script.string());
  EXPECT_EQ(info->identity.scriptSha256, kSha256Abc);
}

TEST_F(ProcessResolverTest, MarksAMissingScriptAsDeletedWithoutAHash) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  tree_.add(79, FakeProcess{.name = "python3",
                            .cmdline = {"python3", "gone.py"},
                            .exe = python,
                            .cwd = tree_.files()});
  const auto info = resolver_.describe(79);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.scriptPath, (tree_.files() / "gone.py").string());
  EXPECT_EQ(info->identity.scriptSha256, "");
  EXPECT_TRUE(info->identity.deleted);
}

TEST_F(ProcessResolverTest, DoubtsAScriptReachedThroughALinkMadeAfterTheProcessStarted) {
  const auto python = tree_.addFile("usr/bin/python3", "py");
  const auto script = tree_.addFile("srv/news.py", "abc");
  struct stat made {};
  ASSERT_EQ(::stat(script.c_str(), &made), 0);
  // The process started with the script's inode as it is; a link on the path named on its
  // command line appears 3 s later.
  while (std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() < made.st_ctim.tv_sec + 3) {
    ::usleep(50'000);
  }
  std::filesystem::create_directories(tree_.files() / "home/bot");
  std::filesystem::create_symlink(tree_.files() / "srv", tree_.files() / "home/bot/x");
  tree_.add(84, FakeProcess{.name = "python3",
                            .startTime = 1000,
                            .cmdline = {"python3", (tree_.files() / "home/bot/x/news.py").string()},
                            .exe = python,
                            .cwd = "/"});
  writeFile(tree_.proc() / "stat",
            "cpu  1 2 3\nbtime " + std::to_string(made.st_ctim.tv_sec - 10) + "\n");
  const auto info = resolver_.describe(84);
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->identity.scriptPath, script.string());
  EXPECT_THAT(info->identity.scriptDoubt, ::testing::HasSubstr("a link on its script's path"));
  // Named by its real path, the same process's script is not in doubt.
  tree_.add(85, FakeProcess{.name = "python3",
                            .startTime = 1000,
                            .cmdline = {"python3", script.string()},
                            .exe = python,
                            .cwd = "/"});
  const auto direct = resolver_.describe(85);
  ASSERT_TRUE(direct) << direct.error().message;
  EXPECT_EQ(direct->identity.scriptDoubt, "");
}

TEST_F(ProcessResolverTest, GivesAnErrorForAVanishedProcess) {
  const auto missing = resolver_.describe(999);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("999/stat"), std::string::npos);

  tree_.add(998, FakeProcess{.name = "kworker"});  // no exe link, like a kernel thread
  const auto noExe = resolver_.describe(998);
  ASSERT_FALSE(noExe);
  EXPECT_NE(noExe.error().message.find("998/exe"), std::string::npos);
}

TEST(ProcessResolver, FindsAndDescribesThisTestProcessInTheRealProc) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const DirProcFs fs;
  FileHasher hasher;
  ProcessResolver resolver{fs, hasher};
  const auto pid = resolver.pidForSocket(st.st_ino, ::geteuid());
  ::close(fd);
  EXPECT_EQ(pid, ::getpid());

  const auto info = resolver.describe(::getpid());
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_EQ(info->uid, ::getuid());
  EXPECT_EQ(info->ppid, ::getppid());
  EXPECT_EQ(info->identity.path, std::filesystem::read_symlink("/proc/self/exe").string());
  const auto ownHash = hasher.sha256OfPath("/proc/self/exe");
  ASSERT_TRUE(ownHash);
  EXPECT_EQ(info->identity.sha256, *ownHash);
  EXPECT_FALSE(info->identity.deleted);
}

}  // namespace
}  // namespace mailguard::procinfo
