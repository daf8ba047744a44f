#include "mailguard/rules/connection.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>

namespace mailguard::rules {
namespace {

TEST(ConnectionTuple, FormatsIpv4Addresses) {
  ConnectionTuple t;
  t.family = AF_INET;
  t.src = {127, 0, 0, 1};
  t.dst = {192, 0, 2, 25};
  EXPECT_EQ(t.srcAddress(), "127.0.0.1");
  EXPECT_EQ(t.dstAddress(), "192.0.2.25");
}

TEST(ConnectionTuple, FormatsIpv6AddressesCanonically) {
  ConnectionTuple t;
  t.family = AF_INET6;
  t.src[15] = 1;
  t.dst = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x19};
  EXPECT_EQ(t.srcAddress(), "::1");
  EXPECT_EQ(t.dstAddress(), "2001:db8::19");
}

TEST(ConnectionTuple, FormatsNothingForAnUnknownFamily) {
  ConnectionTuple t;
  EXPECT_EQ(t.srcAddress(), "");
}

}  // namespace
}  // namespace mailguard::rules
