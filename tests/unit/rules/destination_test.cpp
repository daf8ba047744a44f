#include "mailguard/rules/destination.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

namespace mailguard::rules {
namespace {

using ::testing::HasSubstr;

ConnectionTuple to4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d,
                    std::uint16_t port) {
  ConnectionTuple t;
  t.family = AF_INET;
  t.dst = {a, b, c, d};
  t.dstPort = port;
  return t;
}

ConnectionTuple to6(std::uint8_t last, std::uint16_t port) {
  ConnectionTuple t;
  t.family = AF_INET6;
  t.dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, last};
  t.dstPort = port;
  return t;
}

Destination parsed(std::string_view text) {
  auto d = parseDestination(text);
  EXPECT_TRUE(d.has_value()) << text << ": " << (d ? "" : d.error().message);
  return d ? *d : Destination{};
}

TEST(ParseDestination, TakesAnIpv4AddressWithAndWithoutPort) {
  EXPECT_EQ(toString(parsed("127.0.0.2")), "127.0.0.2");
  EXPECT_EQ(parsed("127.0.0.2").port, 0);
  EXPECT_EQ(toString(parsed("127.0.0.2:25")), "127.0.0.2:25");
  EXPECT_EQ(parsed("127.0.0.2:25").port, 25);
  EXPECT_EQ(parsed("127.0.0.2:25").prefix.length, 32);
}

TEST(ParseDestination, TakesPrefixesAndClearsTheirHostBits) {
  EXPECT_EQ(toString(parsed("192.0.2.77/24")), "192.0.2.0/24");
  EXPECT_EQ(toString(parsed("192.0.2.0/24:587")), "192.0.2.0/24:587");
  EXPECT_EQ(toString(parsed("2001:db8::/32")), "2001:db8::/32");
  EXPECT_EQ(toString(parsed("[2001:db8::/32]:25")), "[2001:db8::/32]:25");
}

TEST(ParseDestination, TakesIpv6BareOrBracketedWithPort) {
  EXPECT_EQ(toString(parsed("2001:db8::7")), "2001:db8::7");
  EXPECT_EQ(toString(parsed("[2001:db8::7]")), "2001:db8::7");
  EXPECT_EQ(toString(parsed("[2001:0db8:0::7]:587")), "[2001:db8::7]:587");
  EXPECT_EQ(parsed("[::1]:25").port, 25);
  EXPECT_EQ(parsed("::1").port, 0);
}

TEST(ParseDestination, RefusesNamesWithAClearMessage) {
  auto d = parseDestination("smtp.example.org:587");
  ASSERT_FALSE(d.has_value());
  EXPECT_EQ(d.error().code, Errc::InvalidArgument);
  EXPECT_THAT(d.error().message, HasSubstr("host names are not accepted"));
}

TEST(ParseDestination, RefusesMalformedInput) {
  for (const char* bad : {"", "127.0.0.2:", "127.0.0.2:0", "127.0.0.2:65536", "127.0.0.2:25x",
                          "127.0.0.2:-1", "[2001:db8::7", "[2001:db8::7]25", "[127.0.0.1]:25",
                          "300.0.0.1", "10.0.0.0/33", "10.0.0.0/", "[::1]:", ":25", "1.2.3.4 "}) {
    auto d = parseDestination(bad);
    EXPECT_FALSE(d.has_value()) << "accepted '" << bad << "'";
    if (!d) {
      EXPECT_EQ(d.error().code, Errc::InvalidArgument) << bad;
    }
  }
}

TEST(DestinationMatch, MatchesAddressAndPortWhenGiven) {
  const auto d = parsed("127.0.0.2:25");
  EXPECT_TRUE(matches(d, to4(127, 0, 0, 2, 25)));
  EXPECT_FALSE(matches(d, to4(127, 0, 0, 2, 587)));
  EXPECT_FALSE(matches(d, to4(127, 0, 0, 3, 25)));
}

TEST(DestinationMatch, MatchesAnyPortWithoutOne) {
  const auto d = parsed("127.0.0.2");
  EXPECT_TRUE(matches(d, to4(127, 0, 0, 2, 25)));
  EXPECT_TRUE(matches(d, to4(127, 0, 0, 2, 465)));
}

TEST(DestinationMatch, MatchesInsideAPrefixOfTheSameFamilyOnly) {
  EXPECT_TRUE(matches(parsed("192.0.2.0/24"), to4(192, 0, 2, 200, 25)));
  EXPECT_FALSE(matches(parsed("192.0.2.0/24"), to4(192, 0, 3, 1, 25)));
  EXPECT_TRUE(matches(parsed("[2001:db8::7]:587"), to6(7, 587)));
  EXPECT_FALSE(matches(parsed("[2001:db8::7]:587"), to6(8, 587)));
  EXPECT_TRUE(matches(parsed("2001:db8::/32"), to6(9, 25)));
  // An IPv4 destination never matches an IPv6 connection, even with equal leading bytes.
  EXPECT_FALSE(matches(parsed("32.1.13.184/32"), to6(7, 25)));
}

TEST(DestinationList, RoundTripsThroughTheStoredForm) {
  const std::vector<Destination> list = {parsed("127.0.0.2:25"), parsed("[::1]:587"),
                                         parsed("10.0.0.0/8")};
  const auto text = encodeDestinations(list);
  EXPECT_EQ(text, "127.0.0.2:25\n[::1]:587\n10.0.0.0/8\n");
  auto back = decodeDestinations(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, list);
  EXPECT_TRUE(decodeDestinations("")->empty());
  EXPECT_FALSE(decodeDestinations("127.0.0.2\nnot an address\n").has_value());
  EXPECT_EQ(toString(list), "127.0.0.2:25, [::1]:587, 10.0.0.0/8");
}

TEST(DestinationList, MergesWithoutDuplicates) {
  const auto merged = mergedDestinations({parsed("127.0.0.2:25")},
                                         {parsed("127.0.0.3:25"), parsed("127.0.0.2:25")});
  EXPECT_EQ(toString(merged), "127.0.0.2:25, 127.0.0.3:25");
}

}  // namespace
}  // namespace mailguard::rules
