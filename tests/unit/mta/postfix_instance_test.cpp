#include "mailguard/mta/postfix_instance.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace mailguard::mta {
namespace {

TEST(PostfixMainCf, JoinsContinuationLinesAndSkipsComments) {
  const auto p = parsePostfixMainCf(
      "# a comment\n"
      "myhostname = pc.example\n"
      "non_smtpd_milters = inet:localhost:8891,\n"
      "    # a comment inside\n"
      "    unix:/opendkim.sock\n"
      "queue_directory=/srv/q\n");
  EXPECT_EQ(p.at("myhostname"), "pc.example");
  EXPECT_EQ(p.at("non_smtpd_milters"), "inet:localhost:8891, unix:/opendkim.sock");
  EXPECT_EQ(p.at("queue_directory"), "/srv/q");
}

TEST(PostfixInstance, ReadsDirectoriesExpandingParametersAndDefaultsTheRest) {
  char dir[] = "/tmp/mg-postfix-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::ofstream(std::filesystem::path(dir) / "main.cf")
      << "base = /srv/pf\nqueue_directory = ${base}/spool\ndaemon_directory = $base/libexec\n";
  auto p = readPostfixInstance(dir);
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->queueDirectory, "/srv/pf/spool");
  EXPECT_EQ(p->maildrop(), "/srv/pf/spool/maildrop");
  EXPECT_EQ(p->pickup(), "/srv/pf/libexec/pickup");
  EXPECT_EQ(p->commandDirectory, "/usr/sbin");
  EXPECT_EQ(p->milterSocket(), "/srv/pf/spool/mailguard/milter.sock");
  EXPECT_EQ(p->where(), std::string("postfix:") + dir);
  EXPECT_EQ(p->mailOwner, "postfix");  // Debian's default
  std::ofstream(std::filesystem::path(dir) / "main.cf", std::ios::app) << "mail_owner = mgpf\n";
  EXPECT_EQ(readPostfixInstance(dir)->mailOwner, "mgpf");
  std::filesystem::remove_all(dir);
  EXPECT_FALSE(readPostfixInstance(dir).has_value());
}

TEST(PostfixCommand, RoundTripsAndRefusesWhatCouldBeMoreThanOneArgument) {
  const auto line = formatPostfixCommand(AgentAction::Remove, "/etc/postfix", {"4QZ1cN0xYz2B"});
  EXPECT_EQ(line, "postfix remove /etc/postfix 4QZ1cN0xYz2B\n");
  ASSERT_TRUE(isPostfixCommand(line));
  auto c = parsePostfixCommand(line);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->action, AgentAction::Remove);
  EXPECT_EQ(c->configDir, "/etc/postfix");
  EXPECT_EQ(c->ids, (std::vector<std::string>{"4QZ1cN0xYz2B"}));
  EXPECT_FALSE(isPostfixCommand("release 1xaRHm-0001Xs-2v"));
  EXPECT_FALSE(parsePostfixCommand("postfix release etc/postfix 4QZ1cN0xYz2B").has_value());
  EXPECT_FALSE(parsePostfixCommand("postfix release /etc/../tmp 4QZ1cN0xYz2B").has_value());
  EXPECT_FALSE(parsePostfixCommand("postfix release /etc/postfix -d").has_value());
  EXPECT_FALSE(parsePostfixCommand("postfix release /etc/postfix").has_value());
  EXPECT_FALSE(parsePostfixCommand("postfix flush /etc/postfix 4QZ1cN0xYz2B").has_value());
  const auto hold = formatPostfixCommand(AgentAction::Hold, "/etc/postfix", {"4QZ1cN0xYz2B"});
  EXPECT_EQ(hold, "postfix hold /etc/postfix 4QZ1cN0xYz2B\n");
  auto held = parsePostfixCommand(hold);
  ASSERT_TRUE(held.has_value()) << held.error().message;
  EXPECT_EQ(held->action, AgentAction::Hold);
  EXPECT_FALSE(parsePostfixCommand("postfix hold /etc/postfix -d").has_value());
}

}  // namespace
}  // namespace mailguard::mta
