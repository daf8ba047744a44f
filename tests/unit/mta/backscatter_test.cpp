#include "mailguard/mta/backscatter.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mailguard::mta {
namespace {

using Kind = InboundLine::Kind;
using std::chrono::minutes;
using std::chrono::seconds;

// A remote server's DSN received over SMTP and delivered by local(8), as postfix logs it
// (smtpd, cleanup, qmgr, local, qmgr).
constexpr const char* kSmtpdClient =
    "Dec  7 09:00:01 pc postfix/smtpd[900]: 4F1A2B3C4D: client=mx.d1.example[192.0.2.1]";
constexpr const char* kCleanup =
    "Dec  7 09:00:01 pc postfix/cleanup[901]: 4F1A2B3C4D: "
    "message-id=<20261207090001.ABC@mx.d1.example>";
constexpr const char* kNullArrival =
    "Dec  7 09:00:01 pc postfix/qmgr[77]: 4F1A2B3C4D: from=<>, size=2345, nrcpt=1 (queue active)";
constexpr const char* kLocal =
    "Dec  7 09:00:01 pc postfix/local[902]: 4F1A2B3C4D: to=<ann@pc.example>, orig_to=<ann>, "
    "relay=local, delay=0.05, delays=0.02/0.01/0/0.02, dsn=2.0.0, status=sent (delivered to "
    "mailbox)";
constexpr const char* kRemoved = "Dec  7 09:00:01 pc postfix/qmgr[77]: 4F1A2B3C4D: removed";
// Mail from a person: not a DSN.
constexpr const char* kPersonArrival =
    "Dec  7 09:00:02 pc postfix/qmgr[77]: 5A1B2C3D4E: from=<bob@d2.example>, size=900, nrcpt=1 "
    "(queue active)";
// postfix's own bounce of a message sent from here.
constexpr const char* kBounce =
    "Dec  7 08:26:04 pc postfix/bounce[905]: C93CEB08A046: sender non-delivery notification: "
    "5D2E3F4A5B";
// The expiry of a null-sender message is not an arrival.
constexpr const char* kExpired =
    "Dec  7 08:26:04 pc postfix/qmgr[77]: C93CEB08A046: from=<>, status=expired, returned to "
    "sender";
// A delivery elsewhere is not a delivery here.
constexpr const char* kSmtpSent =
    "Dec  7 08:26:03 pc postfix/smtp[4242]: 4F1A2B3C4D: to=<ann@d1.example>, "
    "relay=sink[198.18.0.2]:25, delay=0.12, delays=0.03/0.01/0.04/0.04, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 8F1A2B3C4D)";
constexpr const char* kLmtp =
    "2026-12-07T09:00:03.123456+00:00 pc postfix/lmtp[903]: 4F1A2B3C4D: to=<ann@pc.example>, "
    "relay=pc[private/dovecot-lmtp], delay=0.1, delays=0.05/0/0.02/0.03, dsn=2.0.0, "
    "status=sent (250 2.0.0 <ann@pc.example> Saved)";

TEST(BackscatterParse, PostfixNullSenderArrivalAndLocalDelivery) {
  auto arrival = parsePostfixInboundLine(kNullArrival);
  ASSERT_TRUE(arrival);
  EXPECT_EQ(arrival->kind, Kind::NullSenderArrival);
  EXPECT_EQ(arrival->queueId, "4F1A2B3C4D");
  EXPECT_TRUE(arrival->about.empty());
  auto local = parsePostfixInboundLine(kLocal);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->kind, Kind::LocalDelivery);
  EXPECT_EQ(local->queueId, "4F1A2B3C4D");
  EXPECT_EQ(local->recipient, "ann@pc.example");
  auto lmtp = parsePostfixInboundLine(kLmtp);
  ASSERT_TRUE(lmtp);
  EXPECT_EQ(lmtp->kind, Kind::LocalDelivery);
}

TEST(BackscatterParse, PostfixBounceNamesTheMessage) {
  auto bounce = parsePostfixInboundLine(kBounce);
  ASSERT_TRUE(bounce);
  EXPECT_EQ(bounce->kind, Kind::Notification);
  EXPECT_EQ(bounce->queueId, "5D2E3F4A5B");
  EXPECT_EQ(bounce->about, "C93CEB08A046");
}

TEST(BackscatterParse, PostfixOtherLinesAreNotInbound) {
  for (const char* line : {kSmtpdClient, kCleanup, kRemoved, kPersonArrival, kExpired, kSmtpSent}) {
    EXPECT_FALSE(parsePostfixInboundLine(line)) << line;
  }
  // A forged tag is not postfix's.
  EXPECT_FALSE(parsePostfixInbound("notpostfix/qmgr", "4F1A2B3C4D: from=<>, size=1, nrcpt=1"));
}

TEST(BackscatterParse, Exim) {
  auto arrival = parseEximInboundLine(
      "2026-12-07 09:00:01 1s2QmB-000Bxe-2V <= <> H=mx.d1.example [192.0.2.1] P=esmtp S=2345 "
      "id=20261207.ABC@mx.d1.example");
  ASSERT_TRUE(arrival);
  EXPECT_EQ(arrival->kind, Kind::NullSenderArrival);
  EXPECT_EQ(arrival->queueId, "1s2QmB-000Bxe-2V");
  EXPECT_TRUE(arrival->about.empty());
  auto own = parseEximInboundLine(
      "2026-12-07 09:00:02 [4711] 1s2QmC-000Bxf-3A <= <> R=1s2QmA-000Bxd-1Z U=Debian-exim "
      "P=local S=1890");
  ASSERT_TRUE(own);
  EXPECT_EQ(own->about, "1s2QmA-000Bxd-1Z");
  auto local = parseEximInboundLine(
      "2026-12-07 09:00:01 1s2QmB-000Bxe-2V => ann <ann@pc.example> R=local_user T=mail_spool");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->kind, Kind::LocalDelivery);
  EXPECT_EQ(local->recipient, "ann@pc.example");
  EXPECT_FALSE(parseEximInboundLine(
      "2026-12-07 09:00:01 1s2QmB-000Bxe-2V => bob@d2.example R=dnslookup T=remote_smtp "
      "H=mx.d2.example [192.0.2.2] C=\"250 ok\""));
  EXPECT_FALSE(parseEximInboundLine(
      "2026-12-07 09:00:01 1s2QmB-000Bxe-2V <= ann@pc.example U=ann P=local S=300"));
  EXPECT_FALSE(parseEximInboundLine("2026-12-07 09:00:01 1s2QmB-000Bxe-2V Completed"));
}

// Feeds one DSN's lines, as postfix logs them, into the watch.
std::optional<BackscatterFigures> deliverDsn(BackscatterWatch& w, int n, MonoTime now,
                                             const std::string& about = {}) {
  const std::string id = "ABCDE" + std::to_string(100000 + n);
  if (!about.empty()) {
    w.onLine(InboundLine{Kind::Notification, id, {}, about}, now);
  }
  w.onLine(InboundLine{Kind::NullSenderArrival, id, {}, {}}, now);
  return w.onLine(InboundLine{Kind::LocalDelivery, id, "ann@pc.example", {}}, now);
}

TEST(BackscatterWatch, AFloodIsReportedOnceWithItsFigures) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{20, std::chrono::hours(72)});
  int reports = 0;
  std::optional<BackscatterFigures> report;
  for (int i = 0; i < 40; ++i) {
    clock.advance(seconds(1));
    if (auto r = deliverDsn(w, i, clock.monotonic())) {
      ++reports;
      report = r;
      EXPECT_EQ(i, 19) << "the 20th unmatched DSN within the hour starts the flood";
    }
  }
  EXPECT_EQ(reports, 1);
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->flooding);
  EXPECT_EQ(report->lastHour, 20u);
  EXPECT_EQ(report->unmatchedLastHour, 20u);
  const auto f = w.figures(clock.monotonic());
  EXPECT_TRUE(f.flooding);
  EXPECT_EQ(f.lastHour, 40u);
  EXPECT_EQ(f.unmatchedLastHour, 40u);
  EXPECT_EQ(f.total, 40u);
  EXPECT_EQ(f.unmatchedTotal, 40u);
  EXPECT_EQ(f.recipients, std::vector<std::string>{"ann@pc.example"});
}

TEST(BackscatterWatch, BouncesOfMailSentFromHereAreNoFlood) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{5, std::chrono::hours(72)});
  // Ten recipients mailed from here; ten remote bounces and ten of the MTA's own.
  for (int i = 0; i < 10; ++i) w.sent("SENT" + std::to_string(i), clock.monotonic());
  clock.advance(minutes(30));
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(deliverDsn(w, i, clock.monotonic()));
    EXPECT_FALSE(deliverDsn(w, 100 + i, clock.monotonic(), "LOCALMSG" + std::to_string(i)));
  }
  auto f = w.figures(clock.monotonic());
  EXPECT_FALSE(f.flooding);
  EXPECT_EQ(f.lastHour, 20u);
  EXPECT_EQ(f.unmatchedLastHour, 0u);
  // The eleventh remote one matches nothing: every recipient has had its bounce.
  deliverDsn(w, 50, clock.monotonic());
  EXPECT_EQ(w.figures(clock.monotonic()).unmatchedLastHour, 1u);
}

TEST(BackscatterWatch, SentMailIsRememberedForThreeDaysOnly) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{1, std::chrono::hours(72)});
  w.sent("OLD", clock.monotonic());
  clock.advance(std::chrono::hours(73));
  EXPECT_TRUE(deliverDsn(w, 1, clock.monotonic())) << "a bounce for mail sent four days ago";
}

TEST(BackscatterWatch, AQuietHourEndsTheFloodAndTheNextIsReportedAgain) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{3, std::chrono::hours(72)});
  int reports = 0;
  for (int i = 0; i < 5; ++i) reports += deliverDsn(w, i, clock.monotonic()) ? 1 : 0;
  EXPECT_EQ(reports, 1);
  clock.advance(minutes(59));
  // Still within the hour of the flood's DSNs: the same flood.
  reports += deliverDsn(w, 10, clock.monotonic()) ? 1 : 0;
  EXPECT_EQ(reports, 1);
  EXPECT_EQ(w.figures(clock.monotonic()).total, 6u);
  clock.advance(minutes(61));
  EXPECT_FALSE(w.figures(clock.monotonic()).flooding);
  for (int i = 20; i < 23; ++i) reports += deliverDsn(w, i, clock.monotonic()) ? 1 : 0;
  EXPECT_EQ(reports, 2);
}

TEST(BackscatterWatch, SlowDsnsAreNoFlood) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{20, std::chrono::hours(72)});
  for (int i = 0; i < 100; ++i) {
    clock.advance(minutes(4));  // 15 an hour
    EXPECT_FALSE(deliverDsn(w, i, clock.monotonic()));
  }
  EXPECT_EQ(w.figures(clock.monotonic()).unmatchedLastHour, 15u);
}

TEST(BackscatterWatch, ADeliveryWithoutANullSenderIsNotADsn) {
  FakeClock clock;
  BackscatterWatch w(BackscatterConfig{1, std::chrono::hours(72)});
  EXPECT_FALSE(w.onLine(InboundLine{Kind::LocalDelivery, "ABCDEF1", "ann@pc.example", {}},
                        clock.monotonic()));
  EXPECT_EQ(w.figures(clock.monotonic()).lastHour, 0u);
  // One DSN delivered to two mailboxes is one bounce.
  w.onLine(InboundLine{Kind::NullSenderArrival, "ABCDEF2", {}, {}}, clock.monotonic());
  EXPECT_TRUE(w.onLine(InboundLine{Kind::LocalDelivery, "ABCDEF2", "ann@pc.example", {}},
                       clock.monotonic()));
  EXPECT_FALSE(w.onLine(InboundLine{Kind::LocalDelivery, "ABCDEF2", "bob@pc.example", {}},
                        clock.monotonic()));
  EXPECT_EQ(w.figures(clock.monotonic()).lastHour, 1u);
}

}  // namespace
}  // namespace mailguard::mta
