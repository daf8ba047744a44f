#include "mailguard/outside/report.hpp"

#include <gtest/gtest.h>

#include <memory>

#include "fake_resolver.hpp"

namespace mailguard::outside {
namespace {

using std::chrono::hours;

OutsideConfig config() {
  OutsideConfig c;
  c.publicAddress = "198.18.0.7";
  c.blocklists = {"listed.test", "clean.test", "broken.test"};
  c.domains = {"good.test"};
  return c;
}

FakeResolver resolver() {
  FakeResolver dns;
  dns.set("7.0.18.198.listed.test", RecordType::A, {"127.0.0.2"});
  dns.set("7.0.18.198.listed.test", RecordType::Txt, {"spam from this address"});
  dns.fail("7.0.18.198.broken.test", RecordType::A, "timeout");
  dns.set("good.test", RecordType::Txt, {"v=spf1 -all"});
  dns.set("_dmarc.good.test", RecordType::Txt, {"v=DMARC1; p=reject"});
  return dns;
}

TEST(RunChecks, ReportsEachListAndDomain) {
  auto dns = resolver();
  const FakeClock clock;
  const auto r = runChecks(config(), dns, {}, clock.now());
  EXPECT_EQ(r.address.address, "198.18.0.7");
  EXPECT_EQ(r.address.source, "settings");
  ASSERT_EQ(r.blocklists.size(), 3U);
  EXPECT_EQ(r.blocklists[0].listing, Listing::Listed);
  EXPECT_EQ(r.blocklists[0].firstSeen, clock.now());
  EXPECT_EQ(r.blocklists[1].listing, Listing::NotListed);
  EXPECT_EQ(r.blocklists[2].listing, Listing::Error);
  ASSERT_EQ(r.domains.size(), 1U);
  EXPECT_TRUE(r.domains[0].findings.empty());
}

TEST(FindPublicAddress, AsksTheWhatIsMyIpNameAndSkipsPrivateAnswers) {
  OutsideConfig c;
  auto myip = std::make_unique<FakeResolver>();
  myip->set("myip.test", RecordType::A, {"192.168.1.10", "198.18.0.9"});
  DnsAddressSource dnsSource("myip.test", std::move(myip));
  std::vector<AddressSource*> sources{&dnsSource};
  const auto a = findPublicAddress(c, sources);
  EXPECT_EQ(a.address, "198.18.0.9");
  EXPECT_EQ(a.source, "dns:myip.test");

  auto privateOnly = std::make_unique<FakeResolver>();
  privateOnly->set("myip.test", RecordType::A, {"10.0.0.1"});
  DnsAddressSource privateSource("myip.test", std::move(privateOnly));
  std::vector<AddressSource*> privateSources{&privateSource};
  const auto none = findPublicAddress(c, privateSources);
  EXPECT_TRUE(none.address.empty());
  EXPECT_NE(none.error.find("public_address"), std::string::npos);
  EXPECT_NE(none.error.find("dns:myip.test: the answer 10.0.0.1 is private"), std::string::npos)
      << none.error;
  EXPECT_NE(findPublicAddress(c, {}).error.find("address_sources"), std::string::npos);
}

TEST(FindPublicAddress, TheSettingOverridesEverySource) {
  OutsideConfig c;
  c.publicAddress = "198.18.0.7";
  auto myip = std::make_unique<FakeResolver>();
  auto* asked = myip.get();
  DnsAddressSource dnsSource("myip.test", std::move(myip));
  std::vector<AddressSource*> sources{&dnsSource};
  const auto a = findPublicAddress(c, sources);
  EXPECT_EQ(a.address, "198.18.0.7");
  EXPECT_EQ(a.source, "settings");
  EXPECT_TRUE(asked->asked.empty());
}

TEST(RunChecks, WithoutAnAddressAsksNoBlocklist) {
  auto dns = resolver();
  auto c = config();
  c.publicAddress = "auto";
  const auto r = runChecks(c, dns, {}, FakeClock().now());
  EXPECT_TRUE(r.blocklists.empty());
  EXPECT_FALSE(r.address.error.empty());
  for (const auto& name : dns.asked) EXPECT_EQ(name.find("198.18"), std::string::npos);
}

TEST(CarryOver, KeepsTheFirstSightingAndNamesOnlyNewListings) {
  auto dns = resolver();
  FakeClock clock;
  const auto first = runChecks(config(), dns, {}, clock.now());
  clock.advance(hours(24));
  auto second = runChecks(config(), dns, {}, clock.now());
  EXPECT_TRUE(carryOver(first, second).empty());
  EXPECT_EQ(second.blocklists[0].firstSeen, first.time);

  auto other = config();
  other.publicAddress = "198.18.0.8";
  dns.set("8.0.18.198.listed.test", RecordType::A, {"127.0.0.3"});
  auto moved = runChecks(other, dns, {}, clock.now());
  EXPECT_EQ(carryOver(second, moved), (std::vector<std::string>{"listed.test"}));
}

TEST(LikelyCause, NamesOwnRecordsElseLooksElsewhere) {
  EXPECT_NE(likelyCause({}).find("another device at home"), std::string::npos);
  const auto cause = likelyCause({{"/tmp/bot, quarantined 2026-12-01T10:00:00Z"}, {}});
  EXPECT_NE(cause.find("/tmp/bot"), std::string::npos);
  EXPECT_EQ(cause.find("another device"), std::string::npos);
  EXPECT_NE(likelyCause({{}, {"0.0.0.0:25"}}).find("open relay"), std::string::npos);
}

TEST(LikelyCause, AnAddressSharedByCarrierGradeNatPointsAtOtherCustomers) {
  const auto none = likelyCause({}, true);
  EXPECT_NE(none.find("shared with your provider's other customers"), std::string::npos) << none;
  const auto both = likelyCause({{"/tmp/bot, quarantined now"}, {}}, true);
  EXPECT_NE(both.find("/tmp/bot"), std::string::npos);
  EXPECT_NE(both.find("carrier-grade NAT"), std::string::npos) << both;
}

TEST(NextRunDue, DailyAfterTheLastRunAndNotAtFirstStart) {
  FakeClock clock;
  const TimePoint started = clock.now();
  EXPECT_EQ(nextRunDue(TimePoint{}, started, hours(24)), started + hours(24));
  const TimePoint last = started - hours(30);
  EXPECT_LE(nextRunDue(last, started, hours(24)), clock.now());  // overdue: runs now
  clock.advance(hours(1));
  EXPECT_EQ(nextRunDue(clock.now(), started, hours(24)), clock.now() + hours(24));
}

TEST(ReportJson, RoundTrips) {
  auto dns = resolver();
  dns.set("bad.test", RecordType::Txt, {"v=spf1 +all"});
  auto c = config();
  c.domains.push_back("bad.test");
  const auto r = runChecks(c, dns, {}, FakeClock().now());
  auto back = fromJson(toJson(r));
  ASSERT_TRUE(back.has_value()) << back.error().message;
  EXPECT_EQ(back->time, r.time);
  EXPECT_EQ(back->blocklists[0].reason, "spam from this address");
  EXPECT_EQ(back->blocklists[0].firstSeen, r.blocklists[0].firstSeen);
  EXPECT_EQ(back->blocklists[2].listing, Listing::Error);
  ASSERT_EQ(back->domains.size(), 2U);
  EXPECT_EQ(back->domains[1].findings.size(), r.domains[1].findings.size());
  EXPECT_EQ(toJson(*back), toJson(r));
  EXPECT_FALSE(fromJson("{}").has_value());

  OutsideReport noted;
  noted.address.address = "198.18.0.9";
  noted.address.source = "dns:myip.test";
  noted.address.notes = {"router:upnp: the router's own address 100.64.3.4 is not public"};
  noted.address.shared = true;
  auto notedBack = fromJson(toJson(noted));
  ASSERT_TRUE(notedBack.has_value()) << notedBack.error().message;
  EXPECT_EQ(notedBack->address.notes, noted.address.notes);
  EXPECT_EQ(notedBack->address.source, "dns:myip.test");
  EXPECT_TRUE(notedBack->address.shared);
}

}  // namespace
}  // namespace mailguard::outside
