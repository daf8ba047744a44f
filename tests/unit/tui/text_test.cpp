#include "mailguard/tui/text.hpp"

#include <gtest/gtest.h>

namespace mailguard::tui {
namespace {

TEST(DisplayWidth, CountsWideAndCombiningCharacters) {
  EXPECT_EQ(displayWidth("abc"), 3);
  EXPECT_EQ(displayWidth("j\xC3\xBCrgen"), 6);                         // ü, precomposed
  EXPECT_EQ(displayWidth("ju\xCC\x88rgen"), 6);                        // u + combining diaeresis
  EXPECT_EQ(displayWidth("\xE3\x83\xA1\xE3\x83\xBC\xE3\x83\xAB"), 6);  // メール
  EXPECT_EQ(displayWidth("\xF0\x9F\x93\xA7"), 2);                      // 📧
  EXPECT_EQ(displayWidth(""), 0);
}

TEST(Sanitize, ReplacesControlCharactersAndInvalidBytes) {
  // A program named with an escape sequence must not reach the terminal as one.
  EXPECT_EQ(sanitize("/tmp/\x1b[2Jevil"), "/tmp/\xEF\xBF\xBD[2Jevil");
  EXPECT_EQ(sanitize("a\nb\tc"),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD"
            "c");
  EXPECT_EQ(sanitize("caf\xE9"), "caf\xEF\xBF\xBD");            // Latin-1, not UTF-8
  EXPECT_EQ(sanitize("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong '/'
  EXPECT_EQ(sanitize("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(sanitize("\xC2\x9B"), "\xEF\xBF\xBD");                              // C1 CSI
  EXPECT_EQ(sanitize("ok \xE2\x9C\x93"), "ok \xE2\x9C\x93");
}

TEST(FitEnd, PadsShortTextAndCutsLongTextWithAnEllipsis) {
  EXPECT_EQ(fitEnd("abc", 5), "abc  ");
  EXPECT_EQ(fitEnd("abc", 5, false), "abc");
  EXPECT_EQ(fitEnd("abcdefgh", 5), "abcd\xE2\x80\xA6");
  EXPECT_EQ(fitEnd("abc", 0), "");
}

TEST(FitEnd, NeverSplitsAWideCharacter) {
  // 日本語 is 6 cells; at 4 cells: 日 (2) + … (1) + one space of padding.
  const std::string cut = fitEnd("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E", 4);
  EXPECT_EQ(cut, "\xE6\x97\xA5\xE2\x80\xA6 ");
  EXPECT_EQ(displayWidth(cut), 4);
}

TEST(FitMiddle, KeepsTheStartAndTheFileNameOfALongPath) {
  const std::string path = "/home/alice/.cache/mozilla/extensions/updates/staging/bin/sendbot";
  const std::string cut = fitMiddle(path, 30);
  EXPECT_EQ(displayWidth(cut), 30);
  EXPECT_EQ(cut.rfind("/home", 0), 0u) << cut;
  EXPECT_TRUE(cut.ends_with("/bin/sendbot")) << cut;
  EXPECT_NE(cut.find("\xE2\x80\xA6"), std::string::npos) << cut;
}

TEST(FitMiddle, LeavesShortTextAloneAndPads) {
  EXPECT_EQ(fitMiddle("/usr/bin/msmtp", 16), "/usr/bin/msmtp  ");
  EXPECT_EQ(fitMiddle("/usr/bin/msmtp", 14), "/usr/bin/msmtp");
}

TEST(FitMiddle, CountsCellsNotBytesForUtf8Paths) {
  // /home/jürgen/メール/送信.py: 27 cells, 33 bytes.
  const std::string path =
      "/home/j\xC3\xBCrgen/\xE3\x83\xA1\xE3\x83\xBC\xE3\x83\xAB/\xE9\x80\x81\xE4\xBF\xA1.py";
  EXPECT_EQ(displayWidth(path), 27);
  EXPECT_EQ(path.size(), 33u);
  EXPECT_EQ(fitMiddle(path, 27), path);
  for (int w = 4; w < 27; ++w) {
    const std::string cut = fitMiddle(path, w);
    EXPECT_EQ(displayWidth(cut), w) << w << ": " << cut;
    EXPECT_EQ(sanitize(cut), cut) << "cut inside a UTF-8 sequence at width " << w;
  }
  EXPECT_TRUE(fitMiddle(path, 16).ends_with("\xE9\x80\x81\xE4\xBF\xA1.py")) << fitMiddle(path, 16);
}

TEST(AlignRight, PadsOnTheLeft) {
  EXPECT_EQ(alignRight("42", 5), "   42");
  EXPECT_EQ(alignRight("123456", 3), "12\xE2\x80\xA6");
}

TEST(Wrap, SplitsByCellsAndMarksWhatDoesNotFit) {
  EXPECT_EQ(wrap("abcdefgh", 3, 5), (std::vector<std::string>{"abc", "def", "gh"}));
  const auto two = wrap("abcdefgh", 3, 2);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0], "abc");
  EXPECT_EQ(two[1], "de\xE2\x80\xA6");
  EXPECT_EQ(wrap("", 3, 2), (std::vector<std::string>{""}));
}

TEST(Wrap, WordsBreakBetweenWordsAndLongWordsByCells) {
  EXPECT_EQ(wrapWords("relay only for this computer", 12, 5),
            (std::vector<std::string>{"relay only", "for this", "computer"}));
  EXPECT_EQ(wrapWords("a abcdefghij b", 4, 5),
            (std::vector<std::string>{"a", "abcd", "efgh", "ij b"}));
  EXPECT_EQ(wrapWords("one two three four", 9, 2),
            (std::vector<std::string>{"one two", "three\xE2\x80\xA6"}));
  EXPECT_EQ(wrapWords("", 3, 2), (std::vector<std::string>{""}));
}

}  // namespace
}  // namespace mailguard::tui
