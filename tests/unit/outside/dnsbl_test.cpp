#include "mailguard/outside/dnsbl.hpp"

#include <gtest/gtest.h>

#include "fake_resolver.hpp"

namespace mailguard::outside {
namespace {

Result<DnsReply> answer(std::vector<std::string> a) { return DnsReply{true, std::move(a)}; }

TEST(BlocklistQueryName, ReversesTheOctetsBeforeTheZone) {
  auto name = blocklistQueryName("198.18.0.7", "zen.test-bl.test");
  ASSERT_TRUE(name.has_value());
  EXPECT_EQ(*name, "7.0.18.198.zen.test-bl.test");
}

TEST(BlocklistQueryName, RefusesWhatIsNoIpv4Address) {
  EXPECT_FALSE(blocklistQueryName("2001:db8::1", "zen.test-bl.test").has_value());
  EXPECT_FALSE(blocklistQueryName("198.18.0", "zen.test-bl.test").has_value());
  EXPECT_FALSE(blocklistQueryName("198.18.0.7", "").has_value());
}

TEST(ClassifyBlocklistAnswer, NxdomainIsNotListed) {
  const auto r = classifyBlocklistAnswer("z", DnsReply{false, {}});
  EXPECT_EQ(r.listing, Listing::NotListed);
  EXPECT_TRUE(r.error.empty());
}

TEST(ClassifyBlocklistAnswer, LoopbackCodesAreListings) {
  const auto r = classifyBlocklistAnswer("z", answer({"127.0.0.2", "127.0.0.4"}));
  EXPECT_EQ(r.listing, Listing::Listed);
  EXPECT_EQ(r.codes, (std::vector<std::string>{"127.0.0.2", "127.0.0.4"}));
}

TEST(ClassifyBlocklistAnswer, AnAnswerOutsideLoopbackIsAnError) {
  const auto r = classifyBlocklistAnswer("z", answer({"93.184.216.34"}));
  EXPECT_EQ(r.listing, Listing::Error);
  EXPECT_NE(r.error.find("outside 127.0.0.0/8"), std::string::npos);
}

TEST(ClassifyBlocklistAnswer, SpamhausRefusalCodesAreErrorsNotListings) {
  for (const char* code : {"127.255.255.252", "127.255.255.254", "127.255.255.255"}) {
    const auto r = classifyBlocklistAnswer("zen.spamhaus.org", answer({code}));
    EXPECT_EQ(r.listing, Listing::Error) << code;
    EXPECT_NE(r.error.find(code), std::string::npos) << r.error;
  }
  const auto open = classifyBlocklistAnswer("zen.spamhaus.org", answer({"127.255.255.254"}));
  EXPECT_NE(open.error.find("public or open resolvers"), std::string::npos);
}

TEST(ClassifyBlocklistAnswer, OneBadCodeAmongListingsMakesAnError) {
  EXPECT_EQ(classifyBlocklistAnswer("z", answer({"127.0.0.2", "10.0.0.1"})).listing,
            Listing::Error);
  EXPECT_EQ(classifyBlocklistAnswer("z", answer({"127.0.0.1"})).listing, Listing::Error);
}

TEST(ClassifyBlocklistAnswer, AFailedLookupIsAnError) {
  const auto r = classifyBlocklistAnswer("z", makeError("timeout"));
  EXPECT_EQ(r.listing, Listing::Error);
  EXPECT_EQ(r.error, "timeout");
}

TEST(CheckBlocklist, AsksForTheReasonOnlyWhenListed) {
  FakeResolver dns;
  dns.set("7.0.18.198.listed.test", RecordType::A, {"127.0.0.2"});
  dns.set("7.0.18.198.listed.test", RecordType::Txt, {"Listed: see https://bl.test/7"});
  const auto listed = checkBlocklist(dns, "198.18.0.7", "listed.test");
  EXPECT_EQ(listed.listing, Listing::Listed);
  EXPECT_EQ(listed.reason, "Listed: see https://bl.test/7");

  dns.asked.clear();
  const auto clean = checkBlocklist(dns, "198.18.0.7", "clean.test");
  EXPECT_EQ(clean.listing, Listing::NotListed);
  EXPECT_EQ(dns.asked.size(), 1U);
}

}  // namespace
}  // namespace mailguard::outside
