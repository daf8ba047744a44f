#include "mailguard/mta/postfix_log.hpp"

#include "mailguard/rules/settings.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace mailguard::mta {
namespace {

// Lines in the format of postfix's log_adhoc.c (delivery agents), qmgr_active.c (expired,
// removed) and what syslog/postlogd put before them.
constexpr const char* kSent =
    "Dec  7 08:26:03 pc postfix/smtp[4242]: 4RkWZq2RZ2z9sVH: to=<ann@d1.example>, "
    "relay=sink[198.18.0.2]:25, delay=0.12, delays=0.03/0.01/0.04/0.04, dsn=2.0.0, "
    "status=sent (250 2.0.0 Ok: queued as 8F1A2B3C4D)";
constexpr const char* kUnknown =
    "Dec  7 08:26:04 pc postfix/smtp[4242]: C93CEB08A046: to=<bob@d2.example>, "
    "relay=sink[198.18.0.2]:25, delay=0.2, delays=0.05/0.01/0.07/0.07, dsn=5.1.1, "
    "status=bounced (host sink[198.18.0.2] said: 550 5.1.1 <bob@d2.example>: Recipient "
    "address rejected: User unknown in local recipient table (in reply to RCPT TO command))";
constexpr const char* kDeferred =
    "Dec  7 08:26:05 pc postfix/smtp[4243]: C93CEB08A046: to=<cy@d3.example>, "
    "relay=sink[198.18.0.2]:25, delay=0.31, delays=0.05/0.01/0.1/0.15, dsn=4.7.1, "
    "status=deferred (host sink[198.18.0.2] said: 451 4.7.1 Greylisted, try again later "
    "(in reply to RCPT TO command))";
constexpr const char* kListed =
    "Dec  7 08:26:06 pc postfix/smtp[4244]: C93CEB08A046: to=<di@d4.example>, "
    "relay=mx.d4.example[192.0.2.4]:25, delay=0.4, delays=0.05/0.01/0.2/0.14, dsn=5.7.1, "
    "status=bounced (host mx.d4.example[192.0.2.4] said: 554 5.7.1 Service unavailable; "
    "Client host [203.0.113.9] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/203.0.113.9 (in reply to RCPT TO command))";
constexpr const char* kRemoved = "Dec  7 08:26:07 pc postfix/qmgr[77]: C93CEB08A046: removed";

TEST(PostfixLog, ParsesSentBouncedDeferredAndRemoved) {
  auto sent = parsePostfixLogLine(kSent);
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->queueId, "4RkWZq2RZ2z9sVH");
  EXPECT_EQ(sent->status, DeliveryStatus::Delivered);
  EXPECT_EQ(sent->recipient, "ann@d1.example");
  EXPECT_EQ(sent->reply, "");

  auto unknown = parsePostfixLogLine(kUnknown);
  ASSERT_TRUE(unknown.has_value());
  EXPECT_EQ(unknown->queueId, "C93CEB08A046");
  EXPECT_EQ(unknown->status, DeliveryStatus::Failed);
  EXPECT_EQ(unknown->recipient, "bob@d2.example");
  EXPECT_EQ(unknown->reply,
            "550 5.1.1 <bob@d2.example>: Recipient address rejected: User unknown in local "
            "recipient table");
  EXPECT_EQ(classifyReply(unknown->reply), ReplyClass::UserUnknown);

  auto deferred = parsePostfixLogLine(kDeferred);
  ASSERT_TRUE(deferred.has_value());
  EXPECT_EQ(deferred->status, DeliveryStatus::Deferred);
  EXPECT_EQ(deferred->reply, "451 4.7.1 Greylisted, try again later");
  EXPECT_EQ(classifyReply(deferred->reply), ReplyClass::Other);

  auto listed = parsePostfixLogLine(kListed);
  ASSERT_TRUE(listed.has_value());
  EXPECT_EQ(listed->status, DeliveryStatus::Failed);
  EXPECT_TRUE(listed->reply.starts_with("554 5.7.1 Service unavailable")) << listed->reply;
  EXPECT_EQ(classifyReply(listed->reply), ReplyClass::Blocklisted);
  // postfix names any list the same way (reject_rbl_client), not only well-known ones.
  EXPECT_EQ(classifyReply("554 5.7.1 Service unavailable; Client host [203.0.113.9] blocked "
                          "using rbl.list.example"),
            ReplyClass::Blocklisted);
  EXPECT_EQ(classifyReply("554 5.7.1 <a@b>: Relay access denied"), ReplyClass::Rejected);

  auto removed = parsePostfixLogLine(kRemoved);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(removed->queueId, "C93CEB08A046");
  EXPECT_EQ(removed->status, DeliveryStatus::Completed);
}

// Written by postfix 3.7.11 (Debian's package) through postlogd (maillog_file), delivering to
// a sink that answers "550 5.1.1 user unknown" for some recipients: short queue ids, then
// enable_long_queue_ids = yes.
constexpr const char* kRealLog[] = {
    "Dec 07 08:50:52 pc postfix/pickup[24791]: C30081071DC: uid=0 from=<root>",
    "Dec 07 08:50:52 pc postfix/cleanup[24796]: C30081071DC: "
    "message-id=<20261207085052.C30081071DC@pc.test>",
    "Dec 07 08:50:52 pc postfix/qmgr[24792]: C30081071DC: from=<root@pc.test>, size=255, nrcpt=1 "
    "(queue active)",
    "Dec 07 08:50:52 pc postfix/qmgr[24792]: DA85A1071DA: from=<root@pc.test>, size=273, nrcpt=2 "
    "(queue active)",
    "Dec 07 08:50:53 pc postfix/smtp[24806]: DE64D1071DE: to=<live@d2.example>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.25, delays=0.12/0.12/0/0, dsn=2.0.0, status=sent "
    "(250 queued)",
    "Dec 07 08:50:53 pc postfix/qmgr[24792]: DE64D1071DE: removed",
    "Dec 07 08:50:53 pc postfix/smtp[24803]: C30081071DC: to=<dead1@d1.example>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.31, delays=0.15/0.01/0.03/0.11, dsn=5.1.1, "
    "status=bounced (host 198.18.0.2[198.18.0.2] said: 550 5.1.1 user unknown (in reply to RCPT "
    "TO command))",
    "Dec 07 08:50:53 pc postfix/smtp[24804]: DA85A1071DA: to=<dead2@d3.example>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.21, delays=0.04/0.04/0.02/0.12, dsn=5.1.1, "
    "status=bounced (host 198.18.0.2[198.18.0.2] said: 550 5.1.1 user unknown (in reply to RCPT "
    "TO command))",
    "Dec 07 08:50:53 pc postfix/cleanup[24796]: 126CA1071E1: "
    "message-id=<20261207085053.126CA1071E1@pc.test>",
    "Dec 07 08:50:53 pc postfix/bounce[24808]: C30081071DC: sender non-delivery notification: "
    "126CA1071E1",
    "Dec 07 08:50:53 pc postfix/smtp[24804]: DA85A1071DA: to=<live2@d4.example>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.22, delays=0.04/0.04/0.02/0.12, dsn=2.0.0, "
    "status=sent (250 queued)",
    "Dec 07 08:50:53 pc postfix/qmgr[24792]: C30081071DC: removed",
    "Dec 07 08:50:53 pc postfix/qmgr[24792]: DA85A1071DA: removed",
    "Dec 07 08:50:53 pc postfix/smtp[24806]: 126CA1071E1: to=<root@pc.test>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.04, delays=0/0/0.01/0.02, dsn=2.0.0, status=sent "
    "(250 queued)",
    "Dec 07 08:50:53 pc postfix/qmgr[24792]: 126CA1071E1: removed",
    "Dec 07 08:49:40 pc postfix/smtp[23069]: 70465106E3D: to=<dead1@d1.example>, relay=none, "
    "delay=0.05, delays=0.04/0.01/0/0, dsn=4.3.5, status=deferred (mail for 127.0.0.2 loops back "
    "to myself)",
    "Dec 07 08:52:00 pc postfix/smtp[26653]: 4jjbSc4zjtz858j: to=<dead1@d1.example>, "
    "relay=198.18.0.2[198.18.0.2]:25, delay=0.15, delays=0.09/0.01/0.02/0.03, dsn=5.1.1, "
    "status=bounced (host 198.18.0.2[198.18.0.2] said: 550 5.1.1 user unknown (in reply to RCPT "
    "TO command))",
    "Dec 07 08:52:00 pc postfix/qmgr[26638]: 4jjbSc4zjtz858j: removed",
};

TEST(PostfixLog, RealPostfixLinesChargeEachSubmission) {
  DeliveryTracker tracker;
  MonoTime now{};
  // The three messages submitted with sendmail, and the long-id one; not the bounces
  // postfix made itself (126CA1071E1).
  for (const char* id :
       {"C30081071DC", "DA85A1071DA", "DE64D1071DE", "70465106E3D", "4jjbSc4zjtz858j"}) {
    tracker.submitted(id, Submitter{5, {}, 1000, 0, {}}, now);
  }
  std::map<std::string, DeliveryTally> charged;
  unsigned parsed = 0;
  for (const char* l : kRealLog) {
    auto p = parsePostfixLogLine(l);
    if (!p) continue;
    ++parsed;
    if (auto f = tracker.onLine(*p, now)) charged[f->queueId] = f->tally;
  }
  EXPECT_EQ(parsed, 12U);  // the outcomes and removals, not arrivals or notices
  ASSERT_EQ(charged.size(), 4U);
  EXPECT_EQ(charged["DE64D1071DE"].delivered, 1U);
  EXPECT_EQ(charged["C30081071DC"].userUnknown, 1U);
  EXPECT_EQ(charged["C30081071DC"].replies, std::vector<std::string>{"550 5.1.1 user unknown"});
  EXPECT_EQ(charged["DA85A1071DA"].userUnknown, 1U);
  EXPECT_EQ(charged["DA85A1071DA"].delivered, 1U);
  EXPECT_EQ(charged["DA85A1071DA"].domains, (std::vector<std::string>{"d3.example", "d4.example"}));
  EXPECT_EQ(charged["4jjbSc4zjtz858j"].userUnknown, 1U);
  EXPECT_FALSE(charged.contains("126CA1071E1"));
  // Deferred and not yet removed: charged once it settles.
  auto settled = tracker.expire(now + std::chrono::seconds(61));
  ASSERT_EQ(settled.size(), 1U);
  EXPECT_EQ(settled[0].queueId, "70465106E3D");
  EXPECT_EQ(settled[0].tally.deferred, 1U);
  EXPECT_EQ(settled[0].tally.replies,
            std::vector<std::string>{"4.3.5 mail for 127.0.0.2 loops back to myself"});
}

TEST(PostfixLog, ExpiredMessagesFailWithoutARecipient) {
  // qmgr_active.c: what was still deferred is returned to the sender.
  auto expired = parsePostfixLogLine(
      "Dec  7 08:26:08 pc postfix/qmgr[77]: C93CEB08A046: from=<joe@pc.example>, "
      "status=expired, returned to sender");
  ASSERT_TRUE(expired.has_value());
  EXPECT_EQ(expired->status, DeliveryStatus::Failed);
  EXPECT_EQ(expired->recipient, "");
  EXPECT_EQ(expired->reply, "expired, returned to sender");
  EXPECT_EQ(classifyReply(expired->reply), ReplyClass::Other);
  auto forced = parsePostfixLogLine(
      "Dec  7 08:26:08 pc postfix/qmgr[77]: C93CEB08A046: from=<>, status=force-expired, "
      "returned to sender");
  ASSERT_TRUE(forced.has_value());
  EXPECT_EQ(forced->status, DeliveryStatus::Failed);
  // A per-recipient "expired" (what later versions write) fails that recipient.
  auto one =
      parsePostfixMessage("postfix/error",
                          "C93CEB08A046: to=<a@d.example>, relay=none, delay=432000, "
                          "delays=432000/0/0/0, dsn=4.4.1, status=expired, returned to sender");
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->status, DeliveryStatus::Failed);
  EXPECT_EQ(one->recipient, "a@d.example");
  EXPECT_EQ(one->reply, "4.4.1 expired, returned to sender");
  // qmgr's arrival line is not an outcome.
  EXPECT_FALSE(parsePostfixLogLine(
      "Dec  7 08:26:02 pc postfix/qmgr[77]: C93CEB08A046: from=<joe@pc.example>, size=312, "
      "nrcpt=1 (queue active)"));
}

TEST(PostfixLog, EveryDeliveryAgentCounts) {
  auto local =
      parsePostfixMessage("postfix/local",
                          "C93CEB08A046: to=<nobody@pc.example>, orig_to=<nobody>, relay=local, "
                          "delay=0.02, delays=0.01/0/0/0, dsn=5.1.1, status=bounced (unknown user: "
                          "\"nobody\")");
  ASSERT_TRUE(local.has_value());
  EXPECT_EQ(local->recipient, "nobody@pc.example");
  // No server reply: the DSN code leads, so a permanent "unknown user" is O4.
  EXPECT_EQ(local->reply, "5.1.1 unknown user: \"nobody\"");
  EXPECT_EQ(classifyReply(local->reply), ReplyClass::UserUnknown);

  auto lmtp =
      parsePostfixMessage("postfix/lmtp",
                          "C93CEB08A046: to=<a@pc.example>, relay=pc[private/dovecot-lmtp], "
                          "delay=0.05, delays=0.01/0.01/0.01/0.02, dsn=2.0.0, status=sent (250 "
                          "2.0.0 <a@pc.example> 3f8aD7bQ Saved)");
  ASSERT_TRUE(lmtp.has_value());
  EXPECT_EQ(lmtp->status, DeliveryStatus::Delivered);

  auto virt = parsePostfixMessage("postfix/virtual",
                                  "C93CEB08A046: to=<b@v.example>, relay=virtual, delay=0.01, "
                                  "delays=0/0/0/0, dsn=2.0.0, status=sent (delivered to maildir)");
  ASSERT_TRUE(virt.has_value());
  EXPECT_EQ(virt->status, DeliveryStatus::Delivered);

  auto error =
      parsePostfixMessage("postfix/error",
                          "C93CEB08A046: to=<c@v.example>, relay=none, delay=0.01, "
                          "delays=0/0/0/0, dsn=5.0.0, status=bounced (User unknown in virtual "
                          "alias table)");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->status, DeliveryStatus::Failed);
  EXPECT_EQ(classifyReply(error->reply), ReplyClass::UserUnknown);

  auto down = parsePostfixMessage("postfix/smtp",
                                  "C93CEB08A046: to=<d@x.example>, relay=none, delay=30, "
                                  "delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to "
                                  "mx.x.example[192.0.2.9]:25: Connection timed out)");
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->status, DeliveryStatus::Deferred);
  EXPECT_EQ(down->reply, "4.4.1 connect to mx.x.example[192.0.2.9]:25: Connection timed out");
  EXPECT_EQ(classifyReply(down->reply), ReplyClass::Other);

  // Optional fields: conn_use, tls.
  auto reused =
      parsePostfixMessage("postfix/smtp",
                          "C93CEB08A046: to=<e@y.example>, relay=mx.y.example[192.0.2.7]:25, "
                          "conn_use=2, delay=1.1, delays=0.1/0/0.5/0.5, tls=may, dsn=5.2.2, "
                          "status=bounced (host mx.y.example[192.0.2.7] said: 552 5.2.2 Mailbox "
                          "full (in reply to end of DATA command))");
  ASSERT_TRUE(reused.has_value());
  EXPECT_EQ(reused->reply, "552 5.2.2 Mailbox full");
  EXPECT_EQ(classifyReply(reused->reply), ReplyClass::Rejected);

  // Address verification probes are not deliveries.
  EXPECT_FALSE(
      parsePostfixMessage("postfix/smtp",
                          "C93CEB08A046: to=<f@y.example>, relay=mx[192.0.2.7]:25, delay=1, "
                          "delays=0/0/0.5/0.5, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)"));
}

TEST(PostfixLog, TimestampFormsAndSyslogNames) {
  const std::string tail =
      "C93CEB08A046: to=<bob@d2.example>, relay=sink[198.18.0.2]:25, delay=0.2, "
      "delays=0.05/0.01/0.07/0.07, dsn=2.0.0, status=sent (250 2.0.0 Ok)";
  for (const std::string prefix :
       {"Dec  7 08:26:03 pc postfix/smtp[4242]: ",                   // rsyslog, traditional
        "Dec 07 08:26:03 pc postfix/smtp[4242]: ",                   // postlogd (maillog_file)
        "Dec 17 08:26:03 pc postfix/smtp[4242]: ",                   // two-digit day
        "2026-12-07T08:26:03.412345+00:00 pc postfix/smtp[4242]: ",  // RFC 3339
        "2026-12-07T08:26:03+01:00 pc postfix-out/smtp[4242]: ",     // postmulti instance
        "Dec  7 08:26:03 pc postfix/relay/smtp[4242]: ",             // -o syslog_name
        "Dec  7 08:26:03 pc postfix/smtp: "}) {                      // no pid
    auto p = parsePostfixLogLine(prefix + tail);
    ASSERT_TRUE(p.has_value()) << prefix;
    EXPECT_EQ(p->queueId, "C93CEB08A046");
    EXPECT_EQ(p->status, DeliveryStatus::Delivered);
  }
  // Not postfix's tags: anything else on the host writing the same text.
  for (const std::string prefix :
       {"Dec  7 08:26:03 pc bot[4242]: ", "Dec  7 08:26:03 pc postfixx/smtp[4242]: ",
        "Dec  7 08:26:03 pc postfix-/smtp[4242]: ", "Dec  7 08:26:03 pc postfix/[4242]: ",
        "Dec  7 08:26:03 pc exim[4242]: ", "Dec  7 08:26:03 pc ",
        "Foo  7 08:26:03 pc postfix/smtp[4242]: ", "2026-12-07 08:26:03 pc postfix/smtp[4242]: "}) {
    EXPECT_FALSE(parsePostfixLogLine(prefix + tail).has_value()) << prefix;
  }
  // Other records of postfix are not outcomes.
  for (const char* line :
       {"Dec  7 08:26:01 pc postfix/pickup[70]: C93CEB08A046: uid=1000 from=<joe>",
        "Dec  7 08:26:01 pc postfix/cleanup[71]: C93CEB08A046: message-id=<x@pc.example>",
        "Dec  7 08:26:09 pc postfix/bounce[72]: C93CEB08A046: sender non-delivery "
        "notification: 4B1E22A0F1",
        "Dec  7 08:26:09 pc postfix/smtp[4242]: warning: TLS library problem",
        "Dec  7 08:26:09 pc postfix/smtpd[90]: connect from localhost[127.0.0.1]",
        "Dec  7 08:26:09 pc postfix/postsuper[91]: Deleted: 1 message", ""}) {
    EXPECT_FALSE(parsePostfixLogLine(line).has_value()) << line;
  }
}

TEST(PostfixLog, ShortAndLongQueueIds) {
  EXPECT_TRUE(isPostfixQueueId("C93CEB08A046"));
  EXPECT_TRUE(isPostfixQueueId("9C169364A"));
  EXPECT_TRUE(isPostfixQueueId("4RkWZq2RZ2z9sVH"));   // enable_long_queue_ids
  EXPECT_TRUE(isPostfixQueueId("3zXqWy5Hbnz4PBMh"));  // 'z' inside the time part too
  EXPECT_FALSE(isPostfixQueueId("C93CE"));            // too short: no inode
  EXPECT_FALSE(isPostfixQueueId("c93ceb08a046"));     // short ids are upper-case
  EXPECT_FALSE(isPostfixQueueId("4RkWZq2RZ2z"));      // nothing after the separator
  EXPECT_FALSE(isPostfixQueueId("4RkWZa2RZ2z9sVH"));  // a vowel
  EXPECT_FALSE(isPostfixQueueId("4RkWZq2Rz9sVH"));    // time part too short
  EXPECT_FALSE(isPostfixQueueId("NOQUEUE"));
  EXPECT_FALSE(isPostfixQueueId(""));
  EXPECT_FALSE(
      isPostfixQueueId(std::string("C93CEB\0"
                                   "8A046",
                                   12)));
  auto lng = parsePostfixMessage("postfix/qmgr", "4RkWZq2RZ2z9sVH: removed");
  ASSERT_TRUE(lng.has_value());
  EXPECT_EQ(lng->queueId, "4RkWZq2RZ2z9sVH");
  // smtpd's rejections before queueing have no queue id.
  EXPECT_FALSE(
      parsePostfixMessage("postfix/smtpd",
                          "NOQUEUE: reject: RCPT from x[192.0.2.1]: 554 5.7.1 <a@b>: Relay "
                          "access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<x>"));
}

TEST(PostfixLog, AReplyQuotingAnotherMessageIsChargedToItsOwn) {
  // The server's reply (or a recipient) may carry any text, a whole forged line included:
  // the line belongs to the queue id it starts with, and its status is the field postfix
  // wrote, not a "status=" inside the reply.
  auto p = parsePostfixLogLine(
      "Dec  7 08:26:04 pc postfix/smtp[4242]: C93CEB08A046: to=<bob@d2.example>, "
      "relay=evil[198.18.0.66]:25, delay=0.2, delays=0.05/0.01/0.07/0.07, dsn=5.1.1, "
      "status=bounced (host evil[198.18.0.66] said: 550 5.1.1 x Dec  7 08:26:04 pc "
      "postfix/smtp[1]: 4B1E22A0F1: to=<v@x.example>, relay=y, delay=1, delays=0/0/0/1, "
      "dsn=2.0.0, status=sent (250 ok) (in reply to RCPT TO command))");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->queueId, "C93CEB08A046");
  EXPECT_EQ(p->status, DeliveryStatus::Failed);
  EXPECT_EQ(p->recipient, "bob@d2.example");
  EXPECT_TRUE(p->reply.starts_with("550 5.1.1 x Dec")) << p->reply;

  // A quoted local part holding a fake ending of the address and a fake status.
  auto quoted = parsePostfixMessage(
      "postfix/smtp",
      "C93CEB08A046: to=<\"x>, relay=a, delay=0, delays=0/0/0/0, dsn=2.0.0, status=sent "
      "(\\\" ok\"@d.example>, relay=sink[198.18.0.2]:25, delay=0.2, delays=0/0/0/0.2, "
      "dsn=5.1.1, status=bounced (host sink[198.18.0.2] said: 550 5.1.1 no such user)");
  ASSERT_TRUE(quoted.has_value());
  EXPECT_EQ(quoted->status, DeliveryStatus::Failed);
  EXPECT_TRUE(quoted->recipient.ends_with("@d.example")) << quoted->recipient;
  EXPECT_EQ(quoted->reply, "550 5.1.1 no such user");

  // An address that never closes is not a line postfix wrote.
  EXPECT_FALSE(parsePostfixMessage(
      "postfix/smtp", "C93CEB08A046: to=<\"a@b>, relay=x, dsn=2.0.0, status=sent (ok)"));
}

TEST(PostfixLog, HostileLinesStayBoundedAndPrintable) {
  // Overlong reply: kept, cut.
  const std::string longReply(100'000, 'x');
  auto big =
      parsePostfixMessage("postfix/smtp",
                          "C93CEB08A046: to=<a@b.example>, relay=r, delay=0, delays=0/0/0/0, "
                          "dsn=5.7.1, status=bounced (host r said: 554 5.7.1 " +
                              longReply + ")");
  ASSERT_TRUE(big.has_value());
  EXPECT_LE(big->reply.size(), 300U);
  EXPECT_EQ(classifyReply(big->reply), ReplyClass::Rejected);
  // Overlong recipient: not a line to charge.
  EXPECT_FALSE(parsePostfixMessage("postfix/smtp", "C93CEB08A046: to=<" + std::string(5000, 'a') +
                                                       "@b.example>, relay=r, delay=0, "
                                                       "delays=0/0/0/0, dsn=2.0.0, status=sent "
                                                       "(ok)"));
  // Binary: control bytes and invalid UTF-8 never reach D-Bus strings.
  const std::string binary = std::string("550 5.1.1 \x01\x02\xff\xfe") + '\0' + "end";
  auto bin =
      parsePostfixMessage("postfix/smtp",
                          "C93CEB08A046: to=<a\x07@b.example>, relay=r, delay=0, delays=0/0/0/0, "
                          "dsn=5.1.1, status=bounced (host r said: " +
                              binary + ")");
  ASSERT_TRUE(bin.has_value());
  for (const char c : bin->reply + bin->recipient) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7f) << static_cast<int>(c);
  }
  EXPECT_EQ(bin->reply, "550 5.1.1 ?????end");
  // Garbage and truncated lines.
  EXPECT_FALSE(parsePostfixLogLine(std::string(20'000, '\xff')).has_value());
  EXPECT_FALSE(parsePostfixLogLine(std::string("Dec  7 08:26:03 pc postfix/smtp[1]: ") + '\0'));
  EXPECT_FALSE(parsePostfixMessage("postfix/smtp", "C93CEB08A046: to=<a@b>"));
  EXPECT_FALSE(parsePostfixMessage("postfix/smtp", "C93CEB08A046: to=<a@b>, relay=r"));
  EXPECT_FALSE(parsePostfixMessage("postfix/smtp", "C93CEB08A046: to=<a@b>, status=maybe (x)"));
  std::string manyFields = "C93CEB08A046: to=<a@b>";
  for (int i = 0; i < 100; ++i) manyFields += ", k=v";
  EXPECT_FALSE(parsePostfixMessage("postfix/smtp", manyFields + ", status=sent (ok)"));
}

// Lines spliced from pieces of real ones and random bytes: whatever the parser makes of
// them stays a postfix queue id, a bounded recipient and a bounded printable reply.
TEST(PostfixLog, SplicedAndRandomLinesStayWellFormed) {
  const std::vector<std::string> pieces{"Dec  7 08:26:03 pc ",
                                        "postfix/smtp[1]: ",
                                        "C93CEB08A046: ",
                                        "to=<",
                                        "a@b.example",
                                        ">",
                                        ", relay=r",
                                        ", dsn=5.1.1",
                                        ", status=bounced",
                                        ", status=sent",
                                        " (",
                                        ")",
                                        "\"",
                                        "\\",
                                        "removed",
                                        "from=<>",
                                        ", returned to sender",
                                        ", status=expired",
                                        " said: 550 ",
                                        ", orig_to=<",
                                        "\xff",
                                        std::string(1, '\0'),
                                        "\n",
                                        ", ",
                                        "="};
  unsigned seed = 12345;
  auto next = [&seed] {
    seed = seed * 1103515245U + 12345U;
    return (seed >> 16) & 0x7fffU;
  };
  unsigned parsed = 0;
  for (int i = 0; i < 20'000; ++i) {
    std::string line = "Dec  7 08:26:03 pc postfix/smtp[1]: C93CEB08A046: ";
    const auto n = next() % 14;
    for (unsigned k = 0; k < n; ++k) {
      if (next() % 5 == 0) {
        line += static_cast<char>(next() & 0xff);
      } else {
        line += pieces[next() % pieces.size()];
      }
    }
    auto p = parsePostfixLogLine(line);
    if (!p) continue;
    ++parsed;
    EXPECT_TRUE(isPostfixQueueId(p->queueId)) << line;
    EXPECT_LE(p->reply.size(), 300U);
    EXPECT_LE(p->recipient.size(), 1024U);
    for (const char c : p->reply + p->recipient) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7f) << line;
    }
  }
  EXPECT_GT(parsed, 0U);  // the splices do make lines postfix could have written
}

// The bounce storm: 20 messages from one program, the sink refusing 18 recipients
// as unknown users. Every message's tally is charged to its submitter when qmgr removes it.
TEST(PostfixLog, TrackerChargesABounceStormToTheSubmitter) {
  DeliveryTracker tracker;
  MonoTime now{};
  Submitter bot;
  bot.programId = 42;
  bot.uid = 1000;
  std::vector<std::string> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back("4B1E22A0F" + std::to_string(10 + i));
    tracker.submitted(ids.back(), bot, now);
  }
  // Mail postfix queued that was not submitted through the gate: never charged.
  tracker.submitted("ABCDEF0123", Submitter{7, {}, 0, 0, {}}, now);
  std::vector<std::string> lines;
  for (int i = 0; i < 20; ++i) {
    const std::string rcpt = "u" + std::to_string(i) + "@d" + std::to_string(i) + ".example";
    const std::string head = "Dec  7 08:30:" + std::to_string(10 + i) +
                             " pc postfix/smtp[5000]: " + ids[static_cast<std::size_t>(i)] +
                             ": to=<" + rcpt +
                             ">, relay=sink[198.18.0.2]:25, delay=0.1, delays=0/0/0.05/0.05, ";
    if (i < 18) {
      lines.push_back(head + "dsn=5.1.1, status=bounced (host sink[198.18.0.2] said: 550 5.1.1 <" +
                      rcpt +
                      ">: Recipient address rejected: User unknown in local recipient table (in "
                      "reply to RCPT TO command))");
    } else {
      lines.push_back(head + "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 1A2B3C4D5E)");
    }
    lines.push_back("Dec  7 08:30:" + std::to_string(10 + i) +
                    " pc postfix/qmgr[77]: " + ids[static_cast<std::size_t>(i)] + ": removed");
  }
  unsigned unknown = 0, delivered = 0, finished = 0;
  for (const auto& l : lines) {
    auto p = parsePostfixLogLine(l);
    ASSERT_TRUE(p.has_value()) << l;
    if (auto f = tracker.onLine(*p, now)) {
      ++finished;
      EXPECT_TRUE(f->completed);
      EXPECT_EQ(f->submitter.programId, 42);
      EXPECT_EQ(f->tally.domains.size(), 1U);
      unknown += f->tally.userUnknown;
      delivered += f->tally.delivered;
      if (f->tally.userUnknown > 0) {
        EXPECT_NE(f->tally.summary().find("550 5.1.1"), std::string::npos) << f->tally.summary();
      }
    }
  }
  EXPECT_EQ(finished, 20U);
  EXPECT_EQ(unknown, 18U);
  EXPECT_EQ(delivered, 2U);
  EXPECT_TRUE(tracker.knows("ABCDEF0123"));
  EXPECT_EQ(tracker.size(), 1U);
}

TEST(PostfixLog, AnExpiredMessageAddsNoEmptyDomain) {
  DeliveryTracker tracker;
  MonoTime now{};
  tracker.submitted("C93CEB08A046", Submitter{9, {}, 1000, 0, {}}, now);
  for (const char* l :
       {"Dec  7 08:26:05 pc postfix/smtp[1]: C93CEB08A046: to=<cy@d3.example>, relay=none, "
        "delay=30, delays=0/0/30/0, dsn=4.4.1, status=deferred (connect to "
        "mx.d3.example[192.0.2.3]:25: Connection refused)",
        "Dec 12 08:26:05 pc postfix/qmgr[2]: C93CEB08A046: from=<joe@pc.example>, "
        "status=expired, returned to sender"}) {
    auto p = parsePostfixLogLine(l);
    ASSERT_TRUE(p.has_value()) << l;
    EXPECT_FALSE(tracker.onLine(*p, now).has_value());
  }
  auto f = tracker.onLine(*parsePostfixLogLine(kRemoved), now);
  ASSERT_TRUE(f.has_value());
  EXPECT_EQ(f->tally.deferred, 1U);
  EXPECT_EQ(f->tally.otherFailed, 1U);
  EXPECT_EQ(f->tally.domains, std::vector<std::string>{"d3.example"});
}

TEST(PostfixLog, FollowedThroughTheLogFollower) {
  char tmpl[] = "/tmp/pflog-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  const auto file = dir / "mail.log";
  { std::ofstream(file) << kSent << "\n"; }  // history: not replayed
  LogFollower follower(file);
  std::vector<MtaLogLine> seen;
  auto collect = [&](std::string_view text) {
    if (auto p = parsePostfixLogLine(text)) seen.push_back(*p);
  };
  ASSERT_TRUE(follower.poll(collect));
  EXPECT_TRUE(seen.empty());
  {
    std::ofstream out(file, std::ios::app);
    out << kUnknown << "\n"
        << "Dec  7 08:26:04 pc CRON[12]: (root) CMD (true)\n"
        << kRemoved;
  }
  ASSERT_TRUE(follower.poll(collect));
  ASSERT_EQ(seen.size(), 1U);  // "removed" has no newline yet
  EXPECT_EQ(seen[0].status, DeliveryStatus::Failed);
  { std::ofstream(file, std::ios::app) << "\n"; }
  ASSERT_TRUE(follower.poll(collect));
  ASSERT_EQ(seen.size(), 2U);
  EXPECT_EQ(seen[1].status, DeliveryStatus::Completed);
  std::filesystem::remove_all(dir);
}

TEST(PostfixLog, InstalledWhenAConfigDirHasMainCf) {
  char tmpl[] = "/tmp/pfconf-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  EXPECT_FALSE(postfixInstalled({dir.string(), "/nonexistent/postfix"}));
  EXPECT_FALSE(postfixInstalled({}));
  { std::ofstream(dir / "main.cf") << "myhostname = pc.example\n"; }
  EXPECT_TRUE(postfixInstalled({"/nonexistent/postfix", dir.string()}));
  std::filesystem::remove_all(dir);
}

TEST(PostfixLog, SettingNamesTheLogToFollow) {
  auto defaults = rules::parseSettings("", "guardd.conf");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->postfixLog, "/var/log/mail.log");
  auto set = rules::parseSettings("[mta]\npostfix_log = \"/var/log/postfix.log\"\n", "x");
  ASSERT_TRUE(set.has_value());
  EXPECT_EQ(set->postfixLog, "/var/log/postfix.log");
  auto off = rules::parseSettings("[mta]\npostfix_log = \"\"\n", "x");
  ASSERT_TRUE(off.has_value());
  EXPECT_EQ(off->postfixLog, "");
  auto relative = rules::parseSettings("[mta]\n\npostfix_log = \"mail.log\"\n", "guardd.conf");
  ASSERT_FALSE(relative.has_value());
  EXPECT_NE(relative.error().message.find("guardd.conf:3"), std::string::npos)
      << relative.error().message;
  EXPECT_FALSE(rules::parseSettings("[mta]\npostfix_log = 1\n", "x").has_value());
}

}  // namespace
}  // namespace mailguard::mta
