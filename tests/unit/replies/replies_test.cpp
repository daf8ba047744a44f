#include <gtest/gtest.h>

#include <string>

#include "mailguard/replies/smtp_replies.hpp"

namespace mailguard::replies {
namespace {

TEST(RcptReply, GmailsNoSuchUserIsUserUnknown) {
  EXPECT_EQ(classifyRcptReply(
                "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
                "550-5.1.1 double-checking the recipient's email address for typos or\n"
                "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser\n"),
            RcptReply::UserUnknown);
}

TEST(RcptReply, PostfixAndEximUserUnknown) {
  EXPECT_EQ(classifyRcptReply("550 5.1.1 <bob@example.org>: Recipient address rejected: User "
                              "unknown in virtual mailbox table"),
            RcptReply::UserUnknown);
  EXPECT_EQ(classifyRcptReply("550 5.1.1 <bob@example.org>: Recipient address rejected: User "
                              "unknown in local recipient table"),
            RcptReply::UserUnknown);
  EXPECT_EQ(classifyRcptReply("550 Unknown user"), RcptReply::UserUnknown);
}

TEST(RcptReply, BlocklistTextsWhateverTheCode) {
  EXPECT_EQ(
      classifyRcptReply("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
                        "using zen.spamhaus.org; https://www.spamhaus.org/query/ip/192.0.2.1"),
      RcptReply::Blocklisted);
  EXPECT_EQ(classifyRcptReply("554 Service unavailable; Client host [192.0.2.1] blocked using "
                              "Barracuda Reputation; "
                              "http://www.barracudanetworks.com/reputation/?pr=1&ip=192.0.2.1"),
            RcptReply::Blocklisted);
  EXPECT_EQ(classifyRcptReply("550 5.7.1 Service unavailable, Client host [192.0.2.1] blocked "
                              "using Spamhaus. To request removal from this list see "
                              "https://www.spamhaus.org/query/ip/192.0.2.1 (AS3130)."),
            RcptReply::Blocklisted);
  EXPECT_EQ(classifyRcptReply("451 4.7.1 Your IP 192.0.2.1 is listed in an RBL, try later"),
            RcptReply::Blocklisted);
  EXPECT_NE(classifyRcptReply("550 5.7.1 unlisted sender domain"), RcptReply::Blocklisted)
      << "'listed' only as a word";
}

TEST(RcptReply, BlocklistNamesOfZeekAndPostfixsRblReplyAreBlocklisted) {
  EXPECT_EQ(classifyRcptReply("550 5.7.1 Rejected: listed at cbl.abuseat.org"),
            RcptReply::Blocklisted);
  EXPECT_EQ(classifyRcptReply("554 5.7.1 Client host [192.0.2.1] blocked using psbl.surriel.com"),
            RcptReply::Blocklisted);
  EXPECT_EQ(classifyRcptReply("550 Your address is on dnsbl-1.uceprotect.net"),
            RcptReply::Blocklisted);
  EXPECT_NE(classifyRcptReply("550 5.1.1 verbless"), RcptReply::Blocklisted);
}

TEST(RcptReply, AnUnknownAddressIsUnknownEvenWhenItIsNotListed) {
  // Lotus Domino's user-unknown text: "listed" here is no blocklist.
  EXPECT_EQ(classifyRcptReply("550 5.1.1 Recipient not listed in public Name & Address Book"),
            RcptReply::UserUnknown);
  EXPECT_EQ(classifyRcptReply("550 Recipient not listed, no such user here"),
            RcptReply::UserUnknown);
  // A transient reply says nothing of the address: deferred, whatever its words.
  EXPECT_EQ(classifyRcptReply("450 4.1.1 <bob@example.org>: Recipient address rejected: User "
                              "unknown in local recipient table"),
            RcptReply::Deferred);
  // RFC 5321's text for any 550, policy rejections included: no evidence of a bad list.
  EXPECT_EQ(classifyRcptReply("550 Requested action not taken: mailbox unavailable"),
            RcptReply::Rejected);
}

TEST(RcptReply, OtherRejectionsDeferralsAndAcceptance) {
  EXPECT_EQ(classifyRcptReply("554 5.7.1 <bob@example.org>: Relay access denied"),
            RcptReply::Rejected);
  EXPECT_EQ(
      classifyRcptReply("450 4.2.0 <bob@example.org>: Recipient address rejected: "
                        "Greylisted, see http://postgrey.schweikert.ch/help/example.org.html"),
      RcptReply::Deferred);
  EXPECT_EQ(classifyRcptReply("451 4.7.1 Please try again later"), RcptReply::Deferred);
  EXPECT_EQ(classifyRcptReply("250 2.1.5 Ok"), RcptReply::Accepted);
}

// A postfix session as its client received it: greeting, EHLO, MAIL, three RCPTs,
// DATA, end of data, a second transaction, QUIT.
TEST(SessionReplies, CountsOnlyTheRcptReplies) {
  SessionReplies s;
  s.feed("220 mx.example.org ESMTP Postfix (Debian/GNU)\r\n");
  s.feed(
      "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
      "250 8BITMIME\r\n");
  s.feed("250 2.1.0 Ok\r\n");
  s.feed(
      "250 2.1.5 Ok\r\n550 5.1.1 <a@example.org>: Recipient address rejected: User unknown"
      " in local recipient table\r\n55");  // split mid-reply
  s.feed(
      "0 5.1.1 <b@example.org>: Recipient address rejected: User unknown in local "
      "recipient table\r\n");
  s.feed("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as 4Q1xyz\r\n");
  s.feed(
      "250 2.1.0 Ok\r\n554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
      "using zen.spamhaus.org\r\n450 4.2.0 <c@example.org>: Greylisted\r\n");
  s.feed("221 2.0.0 Bye\r\n");
  EXPECT_EQ(s.counts().accepted, 1U);
  EXPECT_EQ(s.counts().userUnknown, 2U);
  EXPECT_EQ(s.counts().blocklisted, 1U);
  EXPECT_EQ(s.counts().deferred, 1U);
  EXPECT_EQ(s.counts().rejected, 0U);
  EXPECT_TRUE(s.stopped());
}

TEST(SessionReplies, StopsAtStartTlsAndSkipsAuth) {
  SessionReplies tls;
  tls.feed("220 mx.example.org ESMTP\r\n250-mx.example.org\r\n250 STARTTLS\r\n");
  tls.feed("220 2.0.0 Ready to start TLS\r\n");
  EXPECT_TRUE(tls.stopped());
  tls.feed("250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n");  // would be ciphertext: never read
  EXPECT_EQ(tls.counts().total(), 0U);

  SessionReplies auth;
  auth.feed(
      "220 relay.example.net ESMTP\r\n250 AUTH PLAIN\r\n334 \r\n235 2.7.0 Authentication "
      "successful\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
  EXPECT_EQ(auth.counts().accepted, 1U);
  EXPECT_EQ(auth.counts().total(), 1U);
}

TEST(SessionReplies, StopsOnWhatIsNotSmtp) {
  SessionReplies s;
  s.feed("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(s.stopped());
  SessionReplies longLine;
  longLine.feed("220 " + std::string(5000, 'x'));
  EXPECT_TRUE(longLine.stopped());
}

TEST(OrderedSession, ReadsSegmentsInSequenceAndSkipsRetransmissions) {
  const std::string greet = "220 mx.test ESMTP\r\n250 mx.test\r\n250 2.1.0 Ok\r\n";
  const std::string rcpt = "550 5.1.1 <a@b.test>: User unknown\r\n";
  const std::string ok = "250 2.1.5 Ok\r\n";
  OrderedSession s;
  const std::uint32_t base = 0xfffffff0U;  // wraps past 2^32 within the session
  s.segment(base, greet, static_cast<std::uint32_t>(greet.size()));
  s.segment(base, greet, static_cast<std::uint32_t>(greet.size()));  // retransmitted
  auto at = base + static_cast<std::uint32_t>(greet.size());
  s.segment(at, rcpt, static_cast<std::uint32_t>(rcpt.size()));
  // A retransmission that overlaps the last segment and carries the next reply too.
  const std::string overlap = rcpt + ok;
  s.segment(at, overlap, static_cast<std::uint32_t>(overlap.size()));
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.counts().userUnknown, 1U);
  EXPECT_EQ(s.counts().accepted, 1U);
}

TEST(OrderedSession, AGapOrACutCopyStopsTheReadingAndKeepsWhatCameBefore) {
  const std::string head = "220 mx.test ESMTP\r\n250 mx.test\r\n250 2.1.0 Ok\r\n";
  const std::string rcpt = "550 5.1.1 User unknown\r\n";
  OrderedSession gap;
  gap.segment(1000, head, static_cast<std::uint32_t>(head.size()));
  gap.segment(1000 + static_cast<std::uint32_t>(head.size()), rcpt,
              static_cast<std::uint32_t>(rcpt.size()));
  gap.segment(5000, "250 2.1.5 Ok\r\n", 14);  // bytes before it were never seen
  EXPECT_TRUE(gap.gap());
  EXPECT_TRUE(gap.stopped());
  EXPECT_FALSE(gap.startedTls());
  EXPECT_EQ(gap.counts().userUnknown, 1U);
  EXPECT_EQ(gap.counts().accepted, 0U);

  OrderedSession cut;
  cut.segment(1, head, static_cast<std::uint32_t>(head.size()) + 2000);  // copy cut short
  EXPECT_TRUE(cut.gap());

  OrderedSession tls;
  const std::string starttls = "220 mx.test ESMTP\r\n250 STARTTLS\r\n220 2.0.0 Ready\r\n";
  tls.segment(7, starttls, static_cast<std::uint32_t>(starttls.size()));
  EXPECT_TRUE(tls.startedTls());
  EXPECT_FALSE(tls.gap());

  OrderedSession quit;
  const std::string bye = "220 mx.test ESMTP\r\n250 mx.test\r\n221 2.0.0 Bye\r\n";
  quit.segment(7, bye, static_cast<std::uint32_t>(bye.size()));
  EXPECT_TRUE(quit.stopped());
  EXPECT_TRUE(quit.closing());
  EXPECT_FALSE(quit.startedTls());
}

}  // namespace
}  // namespace mailguard::replies
