#include "mailguard/service/log.hpp"

#include <gtest/gtest.h>

namespace mailguard::log {
namespace {

TEST(LogQuote, EscapesControlCharactersSoNamesCannotForgeLogLines) {
  EXPECT_EQ(quote("/usr/bin/mutt"), "'/usr/bin/mutt'");
  EXPECT_EQ(quote("evil\nguardd: info: approved"), "'evil\\x0aguardd: info: approved'");
  EXPECT_EQ(quote("it's"), "'it\\'s'");
  EXPECT_EQ(quote(std::string_view("a\0b", 3)), "'a\\x00b'");
}

TEST(LogLevel, ParsesTheFourLevelsAndNothingElse) {
  Level l{};
  EXPECT_TRUE(parseLevel("debug", l));
  EXPECT_EQ(l, Level::Debug);
  EXPECT_TRUE(parseLevel("error", l));
  EXPECT_EQ(l, Level::Error);
  EXPECT_FALSE(parseLevel("verbose", l));
}

TEST(LogLevel, DebugIsOffAtInfo) {
  setLevel(Level::Info);
  EXPECT_FALSE(enabled(Level::Debug));
  EXPECT_TRUE(enabled(Level::Warning));
}

}  // namespace
}  // namespace mailguard::log
