#include "mailguard/mta/milter_session.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mailguard::mta {
namespace {

std::string u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>((v >> 16) & 0xff),
          static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

// What postfix's cleanup sends for one message: OPTNEG, then (connect, helo skipped) the
// MAIL macros with the queue id, MAIL, RCPT x2, end of body.
std::string oneMessage() {
  std::string in = MilterSession::packet('O', u32(6) + u32(0x1ff) + u32(0x1fffff));
  in += MilterSession::packet('D', std::string("M") + "i" + '\0' + "4QZ1cN0xYz2B" + '\0' +
                                       "{auth_type}" + '\0' + "" + '\0');
  in += MilterSession::packet('M', std::string("<bot@pc.test>") + '\0');
  in += MilterSession::packet('R', std::string("<a@d1.example>") + '\0');
  in += MilterSession::packet('R', std::string("<b@d2.example>") + '\0');
  in += MilterSession::packet('E', "");
  return in;
}

TEST(MilterSession, NegotiatesQuarantineAndOnlyTheStagesItNeeds) {
  MilterSession session;
  std::string out;
  auto r = session.feed(MilterSession::packet('O', u32(6) + u32(0x1ff) + u32(0x1fffff)), out);
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(out.size(), 4u + 1 + 12);
  EXPECT_EQ(out.substr(0, 5), u32(13) + "O");
  EXPECT_EQ(out.substr(5, 4), u32(6));
  EXPECT_EQ(out.substr(9, 4), u32(0x20));  // SMFIF_QUARANTINE only
  EXPECT_EQ(out.substr(13, 4), u32(0x1 | 0x2 | 0x10 | 0x20 | 0x40 | 0x100 | 0x200));
  out.clear();
  // An MTA that offers fewer skips is asked for no more than it offers.
  MilterSession older;
  ASSERT_TRUE(older.feed(MilterSession::packet('O', u32(2) + u32(0x3f) + u32(0x3)), out));
  EXPECT_EQ(out.substr(5, 4), u32(2));
  EXPECT_EQ(out.substr(13, 4), u32(0x3));
}

TEST(MilterSession, ReturnsTheMessageAtItsEndAndWaitsForTheVerdict) {
  MilterSession session;
  std::string out;
  const auto in = oneMessage();
  // Byte by byte: packets split anywhere are put back together.
  std::optional<MilterSession::Message> message;
  for (const char c : in) {
    auto r = session.feed(std::string(1, c), out);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    if (*r) message = **r;
  }
  ASSERT_TRUE(message.has_value());
  EXPECT_EQ(message->queueId, "4QZ1cN0xYz2B");
  EXPECT_EQ(message->sender, "bot@pc.test");
  EXPECT_EQ(message->recipients, (std::vector<std::string>{"a@d1.example", "b@d2.example"}));
  EXPECT_TRUE(session.waiting());
  // OPTNEG's reply and three CONTINUEs (MAIL, RCPT, RCPT); macros get none.
  EXPECT_EQ(out.size(), 17u + 3 * 5);
  out.clear();
  session.verdict(MilterVerdict::Quarantine, "held\nby mailguard", out);
  const std::string reason = "held by mailguard";
  EXPECT_EQ(out, MilterSession::packet('q', reason + '\0') + MilterSession::packet('c', ""));
  EXPECT_FALSE(session.waiting());
}

TEST(MilterSession, DiscardsAndAcceptsAndClosesOnQuit) {
  MilterSession session;
  std::string out;
  ASSERT_TRUE(session.feed(oneMessage(), out).has_value());
  out.clear();
  session.verdict(MilterVerdict::Discard, "", out);
  EXPECT_EQ(out, MilterSession::packet('d', ""));
  out.clear();
  // The next message on the same connection, then QUIT.
  auto next = session.feed(MilterSession::packet('M', std::string("<x@pc.test>") + '\0') +
                               MilterSession::packet('E', "") + MilterSession::packet('Q', ""),
                           out);
  ASSERT_TRUE(next.has_value());
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->sender, "x@pc.test");
  EXPECT_FALSE(session.closed());  // QUIT is not read before the verdict
  out.clear();
  session.verdict(MilterVerdict::Accept, "", out);
  EXPECT_EQ(out, MilterSession::packet('c', ""));
  ASSERT_TRUE(session.feed("", out).has_value());
  EXPECT_TRUE(session.closed());
}

TEST(MilterSession, RefusesGarbage) {
  MilterSession session;
  std::string out;
  EXPECT_FALSE(session.feed(MilterSession::packet('M', "x"), out).has_value());  // no OPTNEG
  MilterSession big;
  EXPECT_FALSE(big.feed(u32(0x7fffffff) + "O", out).has_value());
}

}  // namespace
}  // namespace mailguard::mta
