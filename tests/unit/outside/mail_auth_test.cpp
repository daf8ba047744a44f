#include "mailguard/outside/mail_auth.hpp"

#include <gtest/gtest.h>

#include "fake_resolver.hpp"

namespace mailguard::outside {
namespace {

std::vector<std::string> kinds(const DomainReport& r) {
  std::vector<std::string> out;
  for (const auto& f : r.findings) out.push_back(f.kind);
  return out;
}

DomainReport spf(std::vector<std::string> txt) {
  DomainReport r;
  r.domain = "example.test";
  judgeSpf(txt, r);
  return r;
}

DomainReport dmarc(std::vector<std::string> txt) {
  DomainReport r;
  r.domain = "example.test";
  judgeDmarc(txt, r);
  return r;
}

TEST(JudgeSpf, HardAndSoftFailAreFine) {
  EXPECT_TRUE(spf({"v=spf1 mx -all"}).findings.empty());
  const auto soft = spf({"google-site-verification=abc", "v=spf1 include:_spf.test ~all"});
  EXPECT_TRUE(soft.findings.empty());
  EXPECT_EQ(soft.spfAll, "~all");
  EXPECT_EQ(soft.spf, "v=spf1 include:_spf.test ~all");
}

TEST(JudgeSpf, PassAllIsCritical) {
  for (const char* rec : {"v=spf1 +all", "v=spf1 a mx all"}) {
    const auto r = spf({rec});
    ASSERT_EQ(kinds(r), (std::vector<std::string>{"spf-pass-all"})) << rec;
    EXPECT_EQ(r.findings[0].severity, "critical");
    EXPECT_NE(r.findings[0].fix.find("-all"), std::string::npos);
  }
}

TEST(JudgeSpf, NeutralAllMissingAllAndNoRecordAreFindings) {
  EXPECT_EQ(kinds(spf({"v=spf1 mx ?all"})), (std::vector<std::string>{"spf-neutral-all"}));
  EXPECT_EQ(kinds(spf({"v=spf1 mx"})), (std::vector<std::string>{"spf-no-all"}));
  EXPECT_TRUE(spf({"v=spf1 redirect=_spf.example.test"}).findings.empty());
  const auto none = spf({"v=spf10 -all", "hello"});
  EXPECT_EQ(kinds(none), (std::vector<std::string>{"spf-missing"}));
  EXPECT_NE(none.findings[0].fix.find("v=spf1"), std::string::npos);
}

TEST(JudgeSpf, TwoRecordsAreAFindingEvenWhenEachIsGood) {
  EXPECT_EQ(kinds(spf({"v=spf1 -all", "V=SPF1 mx -all"})),
            (std::vector<std::string>{"spf-multiple"}));
}

TEST(JudgeDmarc, QuarantineAndRejectAreFine) {
  EXPECT_TRUE(dmarc({"v=DMARC1; p=quarantine; rua=mailto:d@example.test"}).findings.empty());
  const auto r = dmarc({"v=DMARC1;p=Reject"});
  EXPECT_TRUE(r.findings.empty());
  EXPECT_EQ(r.dmarcPolicy, "reject");
}

TEST(JudgeDmarc, NoneMissingAndBrokenRecordsAreFindings) {
  const auto none = dmarc({"v=DMARC1; p=none; rua=mailto:d@example.test"});
  ASSERT_EQ(kinds(none), (std::vector<std::string>{"dmarc-none"}));
  EXPECT_NE(none.findings[0].fix.find("v=DMARC1; p=quarantine"), std::string::npos);
  EXPECT_NE(none.findings[0].fix.find("_dmarc.example.test"), std::string::npos);
  EXPECT_EQ(kinds(dmarc({})), (std::vector<std::string>{"dmarc-missing"}));
  // The version tag is case-sensitive and must come first (RFC 7489 6.4).
  EXPECT_EQ(kinds(dmarc({"p=reject; v=DMARC1"})), (std::vector<std::string>{"dmarc-missing"}));
  EXPECT_EQ(kinds(dmarc({"v=DMARC1; rua=mailto:d@example.test"})),
            (std::vector<std::string>{"dmarc-invalid"}));
  EXPECT_EQ(kinds(dmarc({"v=DMARC1; p=reject", "v=DMARC1; p=none"})),
            (std::vector<std::string>{"dmarc-multiple"}));
}

TEST(CheckDomain, ReadsTheDomainAndItsDmarcName) {
  FakeResolver dns;
  dns.set("good.test", RecordType::Txt, {"v=spf1 -all"});
  dns.set("_dmarc.good.test", RecordType::Txt, {"v=DMARC1; p=reject"});
  EXPECT_TRUE(checkDomain(dns, "good.test").findings.empty());

  dns.fail("broken.test", RecordType::Txt, "SERVFAIL");
  const auto broken = checkDomain(dns, "broken.test");
  EXPECT_EQ(kinds(broken), (std::vector<std::string>{"lookup-failed", "dmarc-missing"}));
}

}  // namespace
}  // namespace mailguard::outside
