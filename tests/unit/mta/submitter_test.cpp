#include "mailguard/mta/submitter.hpp"

#include <gtest/gtest.h>

#include <map>

namespace mailguard::mta {
namespace {

procinfo::ProcessInfo proc(int pid, int ppid, std::string path, std::vector<std::string> argv,
                           bool trusted = true, std::string script = {}) {
  procinfo::ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.identity.path = std::move(path);
  p.identity.pathTrusted = trusted;
  p.identity.scriptPath = std::move(script);
  p.cmdline = std::move(argv);
  return p;
}

Describe from(std::map<int, procinfo::ProcessInfo> table) {
  return [table = std::move(table)](int pid) -> Result<procinfo::ProcessInfo> {
    auto it = table.find(pid);
    if (it == table.end()) return notFound("gone");
    return it->second;
  };
}

TEST(MtaSubmitter, SkipsEximAndShellWrapperToTheScript) {
  auto d = from({{30, proc(30, 20, "/usr/sbin/exim4", {"sendmail", "-t"})},
                 {20, proc(20, 10, "/usr/bin/dash", {"sh", "-c", "sendmail -t"})},
                 {10, proc(10, 1, "/usr/bin/python3.11", {"python3", "/home/u/bot.py"}, true,
                           "/home/u/bot.py")}});
  auto s = findSubmitter(30, d);
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->pid, 10);
}

TEST(MtaSubmitter, ShellRunningAScriptIsTheSubmitter) {
  auto d =
      from({{30, proc(30, 20, "/usr/sbin/exim4", {"exim4", "-t"})},
            {20, proc(20, 1, "/usr/bin/bash", {"bash", "/tmp/send.sh"}, true, "/tmp/send.sh")}});
  auto s = findSubmitter(30, d);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->pid, 20);
}

TEST(MtaSubmitter, ABotNamedSendmailIsNotSkipped) {
  auto d = from({{30, proc(30, 20, "/usr/sbin/exim4", {"exim4", "-t"})},
                 {20, proc(20, 10, "/tmp/sendmail", {"/tmp/sendmail"}, false)},
                 {10, proc(10, 1, "/usr/bin/bash", {"bash"})}});
  auto s = findSubmitter(30, d);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->identity.path, "/tmp/sendmail");
}

TEST(MtaSubmitter, EximAdoptedByInitHasNoSubmitter) {
  auto d = from({{30, proc(30, 1, "/usr/sbin/exim4", {"exim4", "-t"})},
                 {1, proc(1, 0, "/usr/lib/systemd/systemd", {"/sbin/init"})}});
  EXPECT_FALSE(findSubmitter(30, d).has_value());
}

TEST(MtaSubmitter, CronAndMailxArePrograms) {
  auto d = from({{30, proc(30, 20, "/usr/sbin/exim4", {"sendmail", "-t"})},
                 {20, proc(20, 10, "/usr/bin/bsd-mailx", {"mail", "root"})},
                 {10, proc(10, 1, "/usr/sbin/cron", {"/usr/sbin/cron", "-f"})}});
  auto s = findSubmitter(30, d);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->identity.path, "/usr/bin/bsd-mailx");
}

}  // namespace
}  // namespace mailguard::mta

namespace mailguard::mta {
namespace {

TEST(MtaForeignConfig, EximWithAnotherConfigurationIsNotTheSystemMta) {
  auto own =
      proc(5, 1, "/usr/sbin/exim4", {"/usr/sbin/exim4", "-C", "/home/u/x.conf", "-odi", "-t"});
  EXPECT_TRUE(foreignMtaConfig(own, "").has_value());
  EXPECT_TRUE(foreignMtaConfig(own, "/etc/exim4/test.conf").has_value());
  EXPECT_FALSE(foreignMtaConfig(own, "/home/u/x.conf").has_value());
  auto glued = proc(5, 1, "/usr/sbin/exim4", {"exim4", "-C/home/u/x.conf", "-t"});
  EXPECT_TRUE(foreignMtaConfig(glued, "").has_value());
  auto macro = proc(5, 1, "/usr/sbin/exim4", {"exim4", "-DSPOOL=/tmp/s", "-t"});
  EXPECT_TRUE(foreignMtaConfig(macro, "").has_value());
}

TEST(MtaForeignConfig, SystemEximAndOtherProgramsPass) {
  EXPECT_FALSE(
      foreignMtaConfig(proc(5, 1, "/usr/sbin/exim4", {"exim4", "-Mc", "1xaRHm-0001Xs-2v"}), "")
          .has_value());
  EXPECT_FALSE(
      foreignMtaConfig(proc(5, 1, "/usr/bin/swaks", {"swaks", "-C", "x"}), "").has_value());
}

}  // namespace
}  // namespace mailguard::mta

namespace mailguard::mta {
namespace {

constexpr std::uint32_t kEximUid = 101;

procinfo::ProcessInfo as(procinfo::ProcessInfo p, std::uint32_t uid, std::uint64_t start) {
  p.uid = uid;
  p.startTime = start;
  return p;
}

TEST(MtaOwnMessage, BounceFromEximsDeliveryProcessIsExims) {
  const auto asker =
      as(proc(40, 30, "/usr/sbin/exim4",
              {"/usr/sbin/exim4", "-t", "-oem", "-oi", "-f", "<>", "-E1xaRHm-0001Xs-2v"}),
         kEximUid, 200);
  for (const std::uint32_t parentUid : {0U, kEximUid}) {
    auto d = from({{30, as(proc(30, 1, "/usr/sbin/exim4", {"/usr/sbin/exim4", "-Mc", "x"}),
                           parentUid, 100)}});
    auto own = isEximOwnMessage(asker, "", kEximUid, d);
    ASSERT_TRUE(own.has_value());
    EXPECT_TRUE(*own);
    EXPECT_TRUE(*isEximOwnMessage(asker, "<>", kEximUid, d));
    // Not a bounce: a message with a sender is a submission, whoever started it.
    EXPECT_FALSE(*isEximOwnMessage(asker, "root@pc.test", kEximUid, d));
    // Not made from a message exim was delivering (no -E<queue id>).
    auto plain = asker;
    plain.cmdline = {"/usr/sbin/exim4", "-t", "-oem", "-oi", "-f", "<>"};
    EXPECT_FALSE(*isEximOwnMessage(plain, "", kEximUid, d));
    plain.cmdline.push_back("-E-C/tmp/x");
    EXPECT_FALSE(*isEximOwnMessage(plain, "", kEximUid, d));
  }
}

TEST(MtaOwnMessage, OrphanedSendmailOfABotIsNot) {
  // The middle process exited: init (or a subreaper) adopted the bot's exim.
  const auto orphan =
      as(proc(40, 1, "/usr/sbin/exim4", {"sendmail", "-t", "-E1xaRHm-0001Xs-2v"}), 1000, 200);
  auto d = from({{1, as(proc(1, 0, "/usr/lib/systemd/systemd", {"/sbin/init"}), 0, 1)}});
  EXPECT_FALSE(*isEximOwnMessage(orphan, "", kEximUid, d));
  const auto adopted =
      as(proc(40, 7, "/usr/sbin/exim4", {"sendmail", "-t", "-E1xaRHm-0001Xs-2v"}), 1000, 200);
  auto sub =
      from({{7, as(proc(7, 1, "/usr/lib/systemd/systemd", {"systemd", "--user"}), 1000, 5)}});
  EXPECT_FALSE(*isEximOwnMessage(adopted, "", kEximUid, sub));
}

TEST(MtaOwnMessage, EximParentOfTheUsersOwnUidIsNot) {
  // exim started by a user keeps the user's real uid (setuid sets the effective uid only),
  // and so would an exim it ran with -C or -D (it drops root for the user).
  const auto asker =
      as(proc(40, 30, "/usr/sbin/exim4", {"exim4", "-t", "-E1xaRHm-0001Xs-2v"}), 1000, 200);
  auto d = from(
      {{30, as(proc(30, 20, "/usr/sbin/exim4", {"exim4", "-C", "/home/u/x", "-bs"}), 1000, 100)}});
  EXPECT_FALSE(*isEximOwnMessage(asker, "", kEximUid, d));
}

TEST(MtaOwnMessage, ParentMustBeTheSystemsEximAndOlder) {
  const auto asker =
      as(proc(40, 30, "/usr/sbin/exim4", {"exim4", "-t", "-E1xaRHm-0001Xs-2v"}), kEximUid, 200);
  // A root-run program named exim that is not root's file, or a shell: not exim.
  auto fake = from({{30, as(proc(30, 1, "/tmp/exim4", {"exim4"}, false), 0, 100)}});
  EXPECT_FALSE(*isEximOwnMessage(asker, "", kEximUid, fake));
  auto shell = from({{30, as(proc(30, 1, "/usr/bin/dash", {"sh", "-c", "exim4 -t"}), 0, 100)}});
  EXPECT_FALSE(*isEximOwnMessage(asker, "", kEximUid, shell));
  // The parent's pid now names a younger process: the parent exited and the pid was reused.
  auto reused = from({{30, as(proc(30, 1, "/usr/sbin/exim4", {"exim4", "-q"}), 0, 300)}});
  EXPECT_FALSE(*isEximOwnMessage(asker, "", kEximUid, reused));
  // Gone: no longer exim's child.
  EXPECT_FALSE(*isEximOwnMessage(asker, "", kEximUid, from({})));
  // The asker itself must be the MTA's program.
  const auto bot = as(proc(40, 30, "/tmp/sendmail", {"sendmail"}, false), kEximUid, 200);
  auto d = from({{30, as(proc(30, 1, "/usr/sbin/exim4", {"exim4", "-Mc", "x"}), 0, 100)}});
  EXPECT_FALSE(*isEximOwnMessage(bot, "", kEximUid, d));
}

TEST(MtaOwnMessage, PendingParentIsAskedAgain) {
  const auto asker =
      as(proc(40, 30, "/usr/sbin/exim4", {"exim4", "-t", "-E1xaRHm-0001Xs-2v"}), kEximUid, 200);
  Describe pending = [](int) -> Result<procinfo::ProcessInfo> {
    return Error{"hashing", Errc::Pending, 0};
  };
  auto r = isEximOwnMessage(asker, "", kEximUid, pending);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, Errc::Pending);
}

}  // namespace
}  // namespace mailguard::mta
