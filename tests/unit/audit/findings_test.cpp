#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "mailguard/audit/findings.hpp"

namespace mailguard::audit {
namespace {

using ::testing::HasSubstr;

ListenerAudit audited(const char* path, RelayVerdict relay, Exposure exposure) {
  ListenerAudit a;
  a.listener.family = AF_INET;
  a.listener.port = 25;
  a.listener.path = path;
  a.listener.exposure = exposure;
  a.relay = relay;
  if (relay == RelayVerdict::Open) a.accepted = {"plain", "percent-hack"};
  return a;
}

TEST(Findings, OpenPostfixRelayNamesMynetworksAndRelayRestrictions) {
  const auto f = findingsFor(
      audited("/usr/lib/postfix/sbin/master", RelayVerdict::Open, Exposure::External), {});
  ASSERT_GE(f.size(), 2U);
  EXPECT_EQ(f[0].severity, Finding::Severity::Critical);
  EXPECT_THAT(f[0].title, HasSubstr("open relay"));
  EXPECT_THAT(f[0].title, HasSubstr("plain, percent-hack"));
  EXPECT_THAT(f[0].fix, HasSubstr("mynetworks"));
  EXPECT_THAT(f[0].fix, HasSubstr("smtpd_relay_restrictions"));
  EXPECT_TRUE(f[1].offerBlock);
  EXPECT_EQ(f[1].blockCommand, "guardctl firewall enable");
  EXPECT_THAT(f[1].fix, HasSubstr("inet_interfaces = loopback-only"));
}

TEST(Findings, OpenEximRelayNamesRelayFromHosts) {
  const auto f =
      findingsFor(audited("/usr/sbin/exim4", RelayVerdict::Open, Exposure::External), {});
  EXPECT_THAT(f[0].fix, HasSubstr("relay_from_hosts"));
}

TEST(Findings, OfferToBlockRemovesTheServiceThatAllowsThePort) {
  rules::FirewallState fw;
  fw.enabled = true;
  fw = rules::withService(fw, *rules::parseService("smtp"));
  const auto f = findingsFor(audited("/usr/sbin/x", RelayVerdict::Closed, Exposure::External), fw);
  ASSERT_EQ(f.size(), 1U);
  EXPECT_EQ(f[0].severity, Finding::Severity::Warning);
  EXPECT_EQ(f[0].blockCommand, "guardctl firewall remove smtp");
}

TEST(Findings, LoopbackOnlyClosedServerHasNothingToSay) {
  EXPECT_TRUE(findingsFor(audited("/usr/sbin/x", RelayVerdict::Unreachable, Exposure::Loopback), {})
                  .empty());
}

}  // namespace
}  // namespace mailguard::audit
