#include "authorizer.hpp"

#include <gtest/gtest.h>

namespace mailguard::bus {
namespace {

TEST(PolkitAnswer, AuthorizedIsAllowed) {
  EXPECT_EQ(refusalOf(true, false, true), std::nullopt);
  EXPECT_EQ(refusalOf(true, false, false), std::nullopt);
}

TEST(PolkitAnswer, AChallengeWithoutAnAgentSaysHowToAnswerIt) {
  const auto why = refusalOf(false, true, true);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("pkttyagent"), std::string::npos) << *why;
}

TEST(PolkitAnswer, AChallengeToACallThatAllowedNoQuestionSaysSo) {
  const auto why = refusalOf(false, true, false);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("did not allow interactive authorization"), std::string::npos) << *why;
  EXPECT_NE(why->find("sudo"), std::string::npos) << *why;
}

TEST(PolkitAnswer, ARefusalNamesTheActionAndSudo) {
  const auto why = refusalOf(false, false, true);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("org.mailguard.manage"), std::string::npos) << *why;
  EXPECT_NE(why->find("sudo"), std::string::npos) << *why;
}

TEST(PolkitAnswer, NoPolkitOnTheBusMeansOnlyRootAndSaysTheCallersUid) {
  for (const char* name :
       {"org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner"}) {
    const auto why = refusalOfError(name, "no such name", 1000);
    EXPECT_NE(why.find("polkit is not running"), std::string::npos) << why;
    EXPECT_NE(why.find("uid 1000"), std::string::npos) << why;
  }
}

TEST(PolkitAnswer, AnotherErrorOfPolkitIsQuotedInTheRefusal) {
  const auto why = refusalOfError("org.freedesktop.DBus.Error.NoReply", "timed out", 1000);
  EXPECT_NE(why.find("timed out"), std::string::npos) << why;
  EXPECT_NE(why.find("org.mailguard.manage"), std::string::npos) << why;
}

TEST(PolkitSubject, IsTheCallersUniqueBusName) {
  const auto s = polkitSubject(":1.42");
  EXPECT_EQ(s.get<0>(), "system-bus-name");
  EXPECT_EQ(s.get<1>().at("name").get<std::string>(), ":1.42");
}

TEST(Caller, DescribesItselfForTheLogWithTheCommandQuoted) {
  const Caller c{1000, 4242, ":1.42", "guardctl"};
  const auto d = c.describe();
  EXPECT_NE(d.find("uid 1000"), std::string::npos) << d;
  EXPECT_NE(d.find("pid 4242"), std::string::npos) << d;
  EXPECT_NE(d.find("guardctl"), std::string::npos) << d;
  EXPECT_NE(d.find(":1.42"), std::string::npos) << d;
}

}  // namespace
}  // namespace mailguard::bus
