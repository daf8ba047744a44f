#include "mailguard/mta/protocol.hpp"

#include <gtest/gtest.h>

namespace mailguard::mta {
namespace {

TEST(MtaProtocol, ParsesEximQuestion) {
  auto s = parseSubmission(
      "mailguard-mta 1\nmta=exim\nid=1xaRHm-0001Xs-2v\nuid=1000\nsender=a@pc.test\n"
      "rcpt=u@D1.example, v@d2.example\n");
  ASSERT_TRUE(s.has_value()) << s.error().message;
  EXPECT_EQ(s->queueId, "1xaRHm-0001Xs-2v");
  EXPECT_EQ(s->callerUid, 1000u);
  ASSERT_EQ(s->recipients.size(), 2u);
  EXPECT_EQ(recipientDomains(s->recipients),
            (std::vector<std::string>{"d1.example", "d2.example"}));
}

TEST(MtaProtocol, RefusesQuestionWithoutValidQueueId) {
  EXPECT_FALSE(parseSubmission("mailguard-mta 1\nid=-rf x\n").has_value());
  EXPECT_FALSE(parseSubmission("hello\nid=1xaRHm-0001Xs-2v\n").has_value());
}

TEST(MtaProtocol, QueueIdsOfBothMtas) {
  EXPECT_TRUE(isQueueId("1xaRHm-0001Xs-2v"));  // exim
  EXPECT_TRUE(isQueueId("3F2A1B"));            // postfix, short id of a small inode
  EXPECT_TRUE(isQueueId("4Yf7Zk0y2Vz9qRx"));   // postfix, long id
  EXPECT_FALSE(isQueueId("3F2A1"));
  EXPECT_FALSE(isQueueId("-3F2A1B"));
  EXPECT_FALSE(isQueueId("3F2A 1B"));
}

TEST(MtaProtocol, AnswerIsOnePrintableLineWithoutNewline) {
  EXPECT_EQ(formatAnswer(Answer::Accept, "x"), "accept");
  EXPECT_EQ(formatAnswer(Answer::Freeze, "a\nb"), "freeze a b");
  EXPECT_EQ(formatAnswer(Answer::Deny, "no"), "deny no");
}

TEST(MtaProtocol, AgentCommandsCarryOnlyQueueIds) {
  auto c = parseAgentCommand(formatAgentCommand(AgentAction::Remove, {"1xaRHm-0001Xs-2v"}));
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->action, AgentAction::Remove);
  EXPECT_FALSE(parseAgentCommand("release -C/tmp/evil.conf").has_value());
  EXPECT_FALSE(parseAgentCommand("release").has_value());
  EXPECT_FALSE(parseAgentCommand("run 1xaRHm-0001Xs-2v").has_value());
}

TEST(MtaProtocol, AddressWithoutDomainIsLocalhost) {
  EXPECT_EQ(recipientDomains({"root", "<x@A.org>", "y@a.org"}),
            (std::vector<std::string>{"a.org", "localhost"}));
}

}  // namespace
}  // namespace mailguard::mta

namespace mailguard::mta {
namespace {

TEST(MtaProtocol, HoldCarriesOnlyQueueIds) {
  const auto line = formatAgentCommand(AgentAction::Hold, {"1xaRHm-0001Xs-2v", "1xaRHn-0001Xt-3w"});
  EXPECT_EQ(line, "hold 1xaRHm-0001Xs-2v 1xaRHn-0001Xt-3w\n");
  auto c = parseAgentCommand(line);
  ASSERT_TRUE(c.has_value()) << c.error().message;
  EXPECT_EQ(c->action, AgentAction::Hold);
  EXPECT_EQ(c->ids.size(), 2u);
  EXPECT_FALSE(parseAgentCommand("hold").has_value());
  EXPECT_FALSE(parseAgentCommand("hold -bd").has_value());
  EXPECT_FALSE(parseAgentCommand("hold 1xaRHm-0001Xs-2v ;rm").has_value());
}

}  // namespace
}  // namespace mailguard::mta
