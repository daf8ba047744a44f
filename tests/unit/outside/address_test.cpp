#include "mailguard/outside/address.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mailguard::outside {
namespace {

// A source that answers from a script and counts how often it was asked.
class FakeSource final : public AddressSource {
 public:
  FakeSource(std::string name, Result<std::vector<std::string>> answer)
      : name_(std::move(name)), answer_(std::move(answer)) {}
  [[nodiscard]] std::string name() const override { return name_; }
  Result<std::vector<std::string>> ask() override {
    ++asked;
    return answer_;
  }
  int asked = 0;

 private:
  std::string name_;
  Result<std::vector<std::string>> answer_;
};

using Addresses = std::vector<std::string>;

TEST(AskSources, TakesTheFirstSourceWithAPublicAddressAndAsksNoFurther) {
  FakeSource upnp("router:upnp", Addresses{"198.18.30.5"});
  FakeSource dns("dns:myip.test", Addresses{"198.18.0.9"});
  std::vector<AddressSource*> sources{&upnp, &dns};
  const auto found = askSources(sources);
  EXPECT_EQ(found.address, "198.18.30.5");
  EXPECT_EQ(found.source, "router:upnp");
  EXPECT_TRUE(found.notes.empty());
  EXPECT_EQ(dns.asked, 0);
}

TEST(AskSources, FallsThroughFailingSourcesAndKeepsEachReason) {
  FakeSource upnp("router:upnp", makeError("no UPnP router answered"));
  FakeSource natpmp("router:natpmp", makeError("no IPv4 default gateway to ask"));
  FakeSource https("https:https://myip.test/", makeError("Timeout was reached"));
  FakeSource dns("dns:myip.test", Addresses{"198.18.0.9"});
  std::vector<AddressSource*> sources{&upnp, &natpmp, &https, &dns};
  const auto found = askSources(sources);
  EXPECT_EQ(found.address, "198.18.0.9");
  EXPECT_EQ(found.source, "dns:myip.test");
  ASSERT_EQ(found.notes.size(), 3U);
  EXPECT_EQ(found.notes[0], "router:upnp: no UPnP router answered");
  EXPECT_EQ(found.notes[1], "router:natpmp: no IPv4 default gateway to ask");
  EXPECT_EQ(found.notes[2], "https:https://myip.test/: Timeout was reached");
}

TEST(AskSources, ARouterBehindCarrierGradeNatSaysSoAndTheNextGroupIsAsked) {
  FakeSource upnp("router:upnp", Addresses{"100.64.3.4"});
  FakeSource natpmp("router:natpmp", Addresses{"100.64.3.4"});
  FakeSource dns("dns:myip.test", Addresses{"198.18.0.9"});
  std::vector<AddressSource*> sources{&upnp, &natpmp, &dns};
  const auto found = askSources(sources);
  EXPECT_EQ(found.address, "198.18.0.9");
  EXPECT_EQ(natpmp.asked, 0) << "the same router is not asked twice";
  ASSERT_EQ(found.notes.size(), 1U);
  EXPECT_NE(found.notes[0].find("router:upnp: the router's own address 100.64.3.4 is not public"),
            std::string::npos)
      << found.notes[0];
  EXPECT_NE(found.notes[0].find("carrier-grade NAT"), std::string::npos);
  EXPECT_TRUE(found.shared);
}

TEST(AskSources, ARouterWithAPrivateAddressMeansDoubleNat) {
  FakeSource natpmp("router:natpmp", Addresses{"192.168.178.20"});
  std::vector<AddressSource*> sources{&natpmp};
  const auto found = askSources(sources);
  EXPECT_TRUE(found.address.empty());
  ASSERT_EQ(found.notes.size(), 1U);
  EXPECT_NE(found.notes[0].find("192.168.178.20 is private"), std::string::npos);
  EXPECT_NE(found.notes[0].find("double NAT"), std::string::npos);
  EXPECT_FALSE(found.shared) << "a private address is the household's own second router";
}

TEST(AskSources, SkipsSpecialAnswersAndGarbage) {
  FakeSource loop("dns:a.test", Addresses{"127.0.0.1", "224.0.0.1"});
  FakeSource garbage("https:https://b.test/", Addresses{"<html>\x01"});
  FakeSource empty("router:natpmp", Addresses{});
  std::vector<AddressSource*> sources{&loop, &garbage, &empty};
  const auto found = askSources(sources);
  EXPECT_TRUE(found.address.empty());
  ASSERT_EQ(found.notes.size(), 3U);
  EXPECT_EQ(found.notes[0], "dns:a.test: the answer 127.0.0.1 is not a public address");
  EXPECT_EQ(found.notes[1],
            "https:https://b.test/: answered \"<html>?\", which is not an IPv4 address");
  EXPECT_EQ(found.notes[2], "router:natpmp: gave no address");
}

TEST(AddressFromBody, TakesOneTrimmedDottedQuadOnly) {
  EXPECT_EQ(addressFromBody("198.18.0.9\n").value(), "198.18.0.9");
  EXPECT_EQ(addressFromBody("  \t198.18.0.9\r\n").value(), "198.18.0.9");
  for (const std::string bad :
       {"", " \n", "198.18.0.9 198.18.0.10", "198.18.0", "198.18.0.256", "198.018.0.9",
        "<html><body>198.18.0.9</body></html>", "2001:db8::1", "ip=198.18.0.9"}) {
    EXPECT_FALSE(addressFromBody(bad).has_value()) << "accepted \"" << bad << "\"";
  }
  const auto quoted = addressFromBody("Not found\x1b[31m and a very long tail of text after it");
  ASSERT_FALSE(quoted.has_value());
  EXPECT_NE(quoted.error().message.find("\"Not found?[31m and a very long tail of t...\""),
            std::string::npos)
      << quoted.error().message;
}

TEST(ClassifyAddress, KnowsPrivateSharedAndSpecialRanges) {
  EXPECT_EQ(classifyAddress("100.64.0.1"), AddressKind::SharedCgnat);
  EXPECT_EQ(classifyAddress("100.127.255.254"), AddressKind::SharedCgnat);
  EXPECT_EQ(classifyAddress("100.128.0.1"), AddressKind::Public);
  EXPECT_EQ(classifyAddress("172.31.0.1"), AddressKind::Private);
  EXPECT_EQ(classifyAddress("172.32.0.1"), AddressKind::Public);
  EXPECT_EQ(classifyAddress("169.254.1.1"), AddressKind::Special);
  EXPECT_EQ(classifyAddress("0.0.0.0"), AddressKind::Special);
  EXPECT_EQ(classifyAddress("255.255.255.255"), AddressKind::Special);
  EXPECT_EQ(classifyAddress("198.18.0.9"), AddressKind::Public);
  EXPECT_EQ(classifyAddress("example.org"), AddressKind::NotIpv4);
}

TEST(UpnpUrls, OnlyLanHostsAreTheRouter) {
  EXPECT_EQ(urlHost("http://192.168.1.1:5000/rootDesc.xml"), "192.168.1.1");
  EXPECT_EQ(urlHost("http://198.18.20.1/ctl/IPConn"), "198.18.20.1");
  EXPECT_EQ(urlHost("https://192.168.1.1/"), "");
  EXPECT_TRUE(isLanAddress("192.168.1.1"));
  EXPECT_TRUE(isLanAddress("169.254.7.1"));
  EXPECT_TRUE(isLanAddress("198.19.0.1"));
  EXPECT_FALSE(isLanAddress("198.20.0.1"));
  EXPECT_FALSE(isLanAddress("router.example"));
  EXPECT_FALSE(isLanAddress(urlHost("http://203.0.113.9:80/desc.xml")));
}

TEST(MakeAddressSources, FollowsTheOrderAndLeavesOutWhatIsNotConfigured) {
  AddressSourceConfig c;
  c.order = {"dns", "https", "router"};
  c.myipName = "myip.test";
  c.myipResolver.nameserver = "127.0.0.1:5353";
  auto sources = makeAddressSources(c);
  ASSERT_EQ(sources.size(), 3U) << "https without a URL is left out";
  EXPECT_EQ(sources[0]->name(), "dns:myip.test");
  EXPECT_EQ(sources[1]->name(), "router:upnp");
  EXPECT_EQ(sources[2]->name(), "router:natpmp");
  c.myipUrl = "https://myip.test/";
  c.myipName.clear();
  sources = makeAddressSources(c);
  ASSERT_EQ(sources.size(), 3U);
  EXPECT_EQ(sources[0]->name(), "https:https://myip.test/");
}

TEST(DefaultGateway, IsTheFirstUpRouteToEverywhereThroughAGateway) {
  const std::string table =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t0028A8C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
      // A default route that is down, then one without a gateway (a point-to-point link).
      "eth1\t00000000\t0128A8C6\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
      "ppp0\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n"
      "eth0\t00000000\t0128A8C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
  EXPECT_EQ(defaultGatewayFrom(table), "198.168.40.1");
  EXPECT_EQ(defaultGatewayFrom(table.substr(0, table.find("eth1"))), "");
  EXPECT_EQ(defaultGatewayFrom(""), "");
  EXPECT_EQ(defaultGatewayFrom("header\neth0 00000000 zz 0003 0 0 0 00000000\n"), "");
}

TEST(SsdpLocation, IsTheLocationHeaderOfAnAnswerWhateverItsCase) {
  EXPECT_EQ(ssdpLocation("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\n"
                         "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n"
                         "Location:  http://198.18.40.1:45359/rootDesc.xml \r\n\r\n"),
            "http://198.18.40.1:45359/rootDesc.xml");
  EXPECT_EQ(ssdpLocation("HTTP/1.1 200 OK\nLOCATION:http://198.18.40.1/d.xml"),
            "http://198.18.40.1/d.xml");
  // Not an answer: a NOTIFY, an error, another search, nothing, no header.
  EXPECT_EQ(ssdpLocation("NOTIFY * HTTP/1.1\r\nLOCATION: http://198.18.40.1/d.xml\r\n\r\n"), "");
  EXPECT_EQ(ssdpLocation("HTTP/1.1 404 Not Found\r\nLOCATION: http://198.18.40.1/\r\n\r\n"), "");
  EXPECT_EQ(ssdpLocation("M-SEARCH * HTTP/1.1\r\nLOCATION: http://198.18.40.1/\r\n\r\n"), "");
  EXPECT_EQ(ssdpLocation(""), "");
  EXPECT_EQ(ssdpLocation("HTTP/1.1 200 OK\r\nLOCATIONS: x\r\nSERVER: y\r\n\r\n"), "");
}

}  // namespace
}  // namespace mailguard::outside
