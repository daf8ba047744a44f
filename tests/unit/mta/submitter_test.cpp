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
