#include "backscatter_rules.hpp"

#include <gtest/gtest.h>

namespace mailguard::guardctl {
namespace {

TEST(BackscatterRules, TheDomainComesFromTheOptionOrTheMailboxes) {
  dbus::BackscatterStatus s;
  s.recipients = {"ann@pc.example", "bob@other.example"};
  EXPECT_EQ(backscatterDomain(s, ""), "pc.example");
  EXPECT_EQ(backscatterDomain(s, "mail.example.net"), "mail.example.net");
  // What could break out of a rule's quotes is not a domain.
  EXPECT_EQ(backscatterDomain(s, "x\" } fileinto \"INBOX"), "pc.example");
  s.recipients = {"local-only"};
  EXPECT_EQ(backscatterDomain(s, ""), "example.org");
}

TEST(BackscatterRules, EachRuleKeysOnBouncesQuotingNoMessageIdOfTheDomain) {
  const auto r = backscatterRules("mail.example.net");
  EXPECT_NE(r.sieve.find("require [\"fileinto\", \"body\"];"), std::string::npos) << r.sieve;
  EXPECT_NE(r.sieve.find("\"MAILER-DAEMON\""), std::string::npos);
  EXPECT_NE(r.sieve.find("not body :raw :matches \"*Message-I?: <*@mail.example.net>*\""),
            std::string::npos)
      << r.sieve;
  // procmail and maildrop take regular expressions: the dots are escaped.
  EXPECT_NE(r.procmail.find("* ! B ?? ^Message-I[Dd]: *<[^>]*@mail\\.example\\.net>"),
            std::string::npos)
      << r.procmail;
  EXPECT_NE(r.procmail.find("* ^From:.*(MAILER-DAEMON|postmaster)"), std::string::npos);
  EXPECT_NE(r.maildrop.find("!/^Message-I[Dd]: *<[^>]*@mail\\.example\\.net>/:b"),
            std::string::npos)
      << r.maildrop;
  EXPECT_NE(r.thunderbird.find("doesn't contain\" \"@mail.example.net>\""), std::string::npos)
      << r.thunderbird;
}

TEST(BackscatterRules, JsonCarriesTheFiguresAndTheRules) {
  dbus::BackscatterStatus s;
  s.watching = true;
  s.flooding = true;
  s.lastHour = 45;
  s.unmatchedLastHour = 40;
  s.total = 45;
  s.unmatchedTotal = 40;
  s.sinceUs = 1'700'000'000'000'000;
  s.recipients = {"ann@pc.example"};
  s.floodPerHour = 20;
  s.alertId = 7;
  const auto j = backscatterJson(s, "pc.example");
  EXPECT_EQ(j["unmatched_last_hour"], 40);
  EXPECT_EQ(j["alert_id"], 7);
  EXPECT_EQ(j["since"], "2023-11-14T22:13:20.000000Z");
  EXPECT_TRUE(j["last"].is_null());
  EXPECT_EQ(j["rules"]["sieve"], backscatterRules("pc.example").sieve);
  const auto text = backscatterText(s, "pc.example");
  EXPECT_NE(text.find("since then: 45 bounces, 40 for mail this PC did not send"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace mailguard::guardctl
