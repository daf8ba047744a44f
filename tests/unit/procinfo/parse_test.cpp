#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {
namespace {

using namespace std::string_literals;

TEST(ParseStatus, ReadsNameParentAndRealUid) {
  const auto s = parseStatus(
      "Name:\tthunderbird\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4242\n"
      "PPid:\t17\nTracerPid:\t0\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "thunderbird");
  EXPECT_EQ(s->ppid, 17);
  ASSERT_TRUE(s->uid);
  EXPECT_EQ(*s->uid, 1000U);  // the real uid, not the effective one
}

TEST(ParseStatus, KeepsBlanksInsideTheName) {
  const auto s = parseStatus("Name:\tWeb Content \nPPid:\t1\nUid:\t0\t0\t0\t0\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->name, "Web Content ");
}

TEST(ParseStatus, LeavesMissingFieldsUnset) {
  const auto s = parseStatus("Name:\tx\n");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->ppid, -1);
  EXPECT_FALSE(s->uid);
}

TEST(ParseStatus, RejectsGarbageAndBadNumbers) {
  EXPECT_FALSE(parseStatus(""));
  EXPECT_FALSE(parseStatus("no colon here\n\x01\x02"));
  EXPECT_FALSE(parseStatus("PPid:\t-3\n"));
  EXPECT_FALSE(parseStatus("PPid:\tabc\n"));
  EXPECT_FALSE(parseStatus("Uid:\t99999999999999999999\t0\t0\t0\n"));
  EXPECT_FALSE(parseStatus("Uid:\t\n"));
}

TEST(ParseCmdline, SplitsOnNulAndDropsTheTrailingOne) {
  EXPECT_EQ(parseCmdline("python3\0-u\0bot.py\0"s),
            (std::vector<std::string>{"python3", "-u", "bot.py"}));
}

TEST(ParseCmdline, KeepsEmptyArgumentsAndToleratesNoTrailingNul) {
  EXPECT_EQ(parseCmdline("a\0\0b"s), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_TRUE(parseCmdline("").empty());
  EXPECT_EQ(parseCmdline("\0"s), (std::vector<std::string>{""}));
}

TEST(ParseStatStartTime, ReadsField22) {
  const std::string stat =
      "4242 (sendmail) S 1 4242 4242 0 -1 4194560 300 0 0 0 5 3 0 0 20 0 1 0 987654 "
      "12345678 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
  EXPECT_EQ(parseStatStartTime(stat), 987654U);
}

TEST(ParseStatStartTime, TakesTheLastParenthesisWhenCommHoldsOne) {
  // A process may name itself ") (x) S 1 2 3": only the last ')' ends comm.
  const std::string stat =
      "77 (a) (b) S 9 9 9 9 9 9 9 9) S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n";
  EXPECT_EQ(parseStatStartTime(stat), 555U);
}

TEST(ParseStatStartTime, RejectsShortOrGarbledText) {
  EXPECT_FALSE(parseStatStartTime(""));
  EXPECT_FALSE(parseStatStartTime("77 (x"));
  EXPECT_FALSE(parseStatStartTime("77 x) S 1"));
  EXPECT_FALSE(parseStatStartTime("77 (x) S 1 2 3\n"));
  EXPECT_FALSE(parseStatStartTime(")("));
  EXPECT_FALSE(parseStatStartTime("77 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 -5 1"));
  EXPECT_FALSE(parseStatStartTime("77 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 1x 1"));
}

TEST(StatHasControllingTerminal, ReadsTtyNr) {
  EXPECT_TRUE(statHasControllingTerminal("4242 (swaks) S 4200 4242 4200 34817 4242 4194304 0 0"));
  EXPECT_FALSE(statHasControllingTerminal("4243 (kworker) S 1 4243 4243 0 -1 4194368 0 0"));
  // comm may contain spaces and parentheses: fields count from the last ')'.
  EXPECT_TRUE(statHasControllingTerminal("7 (a (b) c) R 1 7 7 34816 7 0"));
  EXPECT_FALSE(statHasControllingTerminal("7 (a (b) c) R 1 7 7 0 7 0"));
  EXPECT_FALSE(statHasControllingTerminal(""));
  EXPECT_FALSE(statHasControllingTerminal("garbage"));
  EXPECT_FALSE(statHasControllingTerminal("1 (x) S 1"));
}

TEST(ParseStatStartTime, ParsesThisProcessesRealStat) {
  std::ifstream in("/proc/self/stat");
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_TRUE(parseStatStartTime(ss.str()));
}

TEST(ParseSocketLink, ReadsTheInode) {
  EXPECT_EQ(parseSocketLink("socket:[4242]"), 4242U);
  EXPECT_EQ(parseSocketLink("socket:[18446744073709551615]"), 18446744073709551615ULL);
}

TEST(ParseSocketLink, RejectsOtherLinks) {
  EXPECT_FALSE(parseSocketLink("pipe:[4242]"));
  EXPECT_FALSE(parseSocketLink("/dev/null"));
  EXPECT_FALSE(parseSocketLink("socket:[]"));
  EXPECT_FALSE(parseSocketLink("socket:["));
  EXPECT_FALSE(parseSocketLink("socket:[12"));
  EXPECT_FALSE(parseSocketLink("socket:[-1]"));
  EXPECT_FALSE(parseSocketLink("socket:[+1]"));
  EXPECT_FALSE(parseSocketLink("socket:[1 ]"));
  EXPECT_FALSE(parseSocketLink("socket:[18446744073709551616]"));
  EXPECT_FALSE(parseSocketLink("socket:[1]x"));
}

TEST(ParseFdinfoFlags, ReadsTheOctalFlags) {
  EXPECT_EQ(parseFdinfoFlags("pos:\t0\nflags:\t02000002\nmnt_id:\t10\nino:\t3898913\n"), 02000002U);
  EXPECT_EQ(parseFdinfoFlags("pos:\t0\nflags:\t02\n"), 02U);
  EXPECT_EQ(parseFdinfoFlags("flags: 0"), 0U);
}

TEST(ParseFdinfoFlags, RejectsAnythingElse) {
  EXPECT_FALSE(parseFdinfoFlags(""));
  EXPECT_FALSE(parseFdinfoFlags("pos:\t0\nmnt_id:\t10\n"));
  EXPECT_FALSE(parseFdinfoFlags("flags:\t\n"));
  EXPECT_FALSE(parseFdinfoFlags("flags:\t09\n"));
  EXPECT_FALSE(parseFdinfoFlags("flags:\t-2\n"));
  EXPECT_FALSE(parseFdinfoFlags("flags:\t777777777777\n"));
  EXPECT_FALSE(parseFdinfoFlags(" flags:\t02\n"));
}

}  // namespace
}  // namespace mailguard::procinfo
