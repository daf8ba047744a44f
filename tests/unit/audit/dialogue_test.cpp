#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>

#include "mailguard/audit/relay.hpp"

namespace mailguard::audit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A server that answers by a rule; records what the client sent.
class ScriptedServer final : public SmtpConnection {
 public:
  using Rule = std::function<std::string(const std::string&)>;
  ScriptedServer(std::string banner, Rule rule, int hangUpAfter = -1)
      : rule_(std::move(rule)), hangUpAfter_(hangUpAfter) {
    replies_.push_back(std::move(banner));
  }
  Result<std::string> readReply() override {
    if (replies_.empty()) return makeError("the server closed the connection");
    std::string r = replies_.front();
    replies_.pop_front();
    return r;
  }
  Result<void> sendLine(std::string_view line) override {
    sent.emplace_back(line);
    if (hangUpAfter_ >= 0 && static_cast<int>(sent.size()) > hangUpAfter_) return {};
    replies_.push_back(rule_(std::string(line)));
    return {};
  }
  std::vector<std::string> sent;

 private:
  Rule rule_;
  int hangUpAfter_;
  std::deque<std::string> replies_;
};

std::string openRelay(const std::string& line) {
  if (line.rfind("QUIT", 0) == 0) return "221 Bye";
  return "250 Ok";
}

std::string closedRelay(const std::string& line) {
  if (line.rfind("RCPT", 0) == 0) return "554 5.7.1 Relay access denied";
  if (line.rfind("QUIT", 0) == 0) return "221 Bye";
  return "250 Ok";
}

TEST(RelayVariants, CoverTheClassicTricksWithTheOwnDomain) {
  std::vector<std::string> names;
  for (const auto& v : relayVariants("example.org")) names.push_back(v.name);
  EXPECT_THAT(names, ElementsAre("plain", "null-sender", "own-domain-sender", "percent-hack",
                                 "bang-path", "quoted-recipient", "source-routed", "ip-literal"));
  const auto v = relayVariants("example.org");
  EXPECT_EQ(v[1].mailFrom, "<>");
  EXPECT_EQ(v[2].mailFrom, "<postmaster@example.org>");
  EXPECT_EQ(v[3].rcptTo, "<relay-test%example.net@example.org>");
  EXPECT_EQ(v[4].rcptTo, "<example.net!relay-test@example.org>");
  EXPECT_EQ(v[5].rcptTo, "<\"relay-test@example.net\"@example.org>");
  EXPECT_EQ(v[6].rcptTo, "<@example.org:relay-test@example.net>");
  EXPECT_EQ(v[7].rcptTo, "<relay-test@[203.0.113.25]>");
}

TEST(RelayDialogue, OpenRelayAcceptsEveryVariantAndNoBodyIsEverSent) {
  ScriptedServer server("220 mail.example.org ESMTP", openRelay);
  const auto r = runRelayDialogue(server, nullptr, "");
  EXPECT_FALSE(r.error);
  EXPECT_EQ(r.ownDomain, "mail.example.org");
  ASSERT_EQ(r.variants.size(), 8U);
  for (const auto& v : r.variants) EXPECT_TRUE(v.accepted) << v.name;
  for (const auto& line : server.sent) EXPECT_NE(line.rfind("DATA", 0), 0U) << line;
  EXPECT_EQ(server.sent.front(), "EHLO mailguard-audit.invalid");
  EXPECT_EQ(server.sent.back(), "QUIT");
}

TEST(RelayDialogue, ClosedRelayKeepsTheRefusals) {
  ScriptedServer server("220 example.org ESMTP", closedRelay);
  const auto r = runRelayDialogue(server, nullptr, "own.example");
  EXPECT_EQ(r.ownDomain, "own.example");
  for (const auto& v : r.variants) {
    EXPECT_FALSE(v.accepted) << v.name;
    EXPECT_EQ(v.rcptReply, "554 5.7.1 Relay access denied");
  }
  EXPECT_THAT(r.transcript, ::testing::Contains("< 554 5.7.1 Relay access denied"));
}

TEST(RelayDialogue, FallsBackToHeloAndStopsAtARefusedBanner) {
  ScriptedServer helo("220 example.org", [](const std::string& line) -> std::string {
    if (line.rfind("EHLO", 0) == 0) return "502 no";
    return "250 Ok";
  });
  EXPECT_FALSE(runRelayDialogue(helo, nullptr, "").error);
  EXPECT_EQ(helo.sent[1], "HELO mailguard-audit.invalid");

  ScriptedServer refusing("554 go away", openRelay);
  const auto r = runRelayDialogue(refusing, nullptr, "");
  ASSERT_TRUE(r.error);
  EXPECT_THAT(*r.error, HasSubstr("554 go away"));
  EXPECT_TRUE(r.variants.empty());
}

TEST(RelayDialogue, ReconnectsWhenTheServerHangsUpPartWay) {
  ScriptedServer first("220 example.org", closedRelay, 4);  // EHLO + one variant
  int reconnects = 0;
  const std::function<std::unique_ptr<SmtpConnection>()> reconnect = [&] {
    ++reconnects;
    return std::make_unique<ScriptedServer>("220 example.org", closedRelay);
  };
  const auto r = runRelayDialogue(first, reconnect, "");
  EXPECT_FALSE(r.error) << *r.error;
  EXPECT_EQ(r.variants.size(), 8U);
  EXPECT_EQ(reconnects, 1);
}

TEST(RelayDialogue, KeepsTheEhloReplyForTheAuthCheck) {
  ScriptedServer server("220 example.org ESMTP", [](const std::string& line) -> std::string {
    if (line.rfind("EHLO", 0) == 0) return "250-example.org\n250-AUTH PLAIN LOGIN\n250 HELP";
    return closedRelay(line);
  });
  const auto r = runRelayDialogue(server, nullptr, "");
  EXPECT_THAT(authMechanisms(r.ehlo), ElementsAre("PLAIN", "LOGIN"));
}

}  // namespace
}  // namespace mailguard::audit
