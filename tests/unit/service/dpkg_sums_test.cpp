// DpkgSums: dpkg's recorded MD5s, kept compact ("package-owned" identity).
#include "dpkg_sums.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

namespace mailguard::service {
namespace {

class DpkgSumsTest : public ::testing::Test {
 protected:
  DpkgSumsTest() {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "dpkg-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
  }
  ~DpkgSumsTest() override { std::filesystem::remove_all(dir_); }
  DpkgSumsTest(const DpkgSumsTest&) = delete;
  DpkgSumsTest& operator=(const DpkgSumsTest&) = delete;

  void write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  std::filesystem::path dir_;
};

constexpr const char* kPostfix = "0123456789abcdef0123456789abcdef";
constexpr const char* kOther = "fedcba9876543210fedcba9876543210";

TEST_F(DpkgSumsTest, ReadsEveryMd5sumsFileAndMatchesPathAndContent) {
  write("postfix.md5sums",
        std::string(kPostfix) + "  usr/sbin/postfix\n" + kOther + "  usr/lib/postfix/sbin/smtp\n");
  write("exim4.md5sums", std::string(kOther) + "  usr/sbin/exim4\n");
  write("postfix.list", "/usr/sbin/postfix\n");  // not a sums file
  const auto sums = DpkgSums::read(dir_);
  EXPECT_EQ(sums.size(), 3U);
  EXPECT_TRUE(sums.knows("/usr/sbin/postfix"));
  EXPECT_TRUE(sums.recorded("/usr/sbin/postfix", kPostfix));
  EXPECT_TRUE(sums.recorded("/usr/sbin/postfix", "0123456789ABCDEF0123456789ABCDEF"));
  EXPECT_FALSE(sums.recorded("/usr/sbin/postfix", kOther));  // a different file's content
  EXPECT_TRUE(sums.recorded("/usr/sbin/exim4", kOther));
  EXPECT_FALSE(sums.knows("/home/u/bin/postfix"));
  EXPECT_FALSE(sums.recorded("/home/u/bin/postfix", kPostfix));
}

TEST_F(DpkgSumsTest, UsrmergeFindsWhatDpkgListsUnderBin) {
  write("coreutils.md5sums", std::string(kPostfix) + "  bin/true\n");
  const auto sums = DpkgSums::read(dir_);
  EXPECT_TRUE(sums.knows("/usr/bin/true"));
  EXPECT_TRUE(sums.recorded("/usr/bin/true", kPostfix));
  EXPECT_TRUE(sums.recorded("/bin/true", kPostfix));
  EXPECT_FALSE(sums.recorded("/usr/bin/true", kOther));
}

TEST_F(DpkgSumsTest, SkipsMalformedLinesAndAMissingDirectory) {
  write("bad.md5sums", "not a sum\n" + std::string(31, 'a') + "  usr/bin/short\n" +
                           std::string(32, 'g') + "  usr/bin/nothex\n" + kPostfix +
                           " usr/bin/one-space\n" + kPostfix + "  usr/bin/good\n");
  const auto sums = DpkgSums::read(dir_);
  EXPECT_EQ(sums.size(), 1U);
  EXPECT_TRUE(sums.recorded("/usr/bin/good", kPostfix));
  EXPECT_FALSE(sums.recorded("/usr/bin/good", "zz"));  // not an MD5 at all
  EXPECT_EQ(DpkgSums::read(dir_ / "missing").size(), 0U);
}

// The real database of this machine: what guardd reads at start-up.
TEST(DpkgSumsOfThisMachine, FindsCoreutilsEnvAsDpkgRecordedIt) {
  const std::filesystem::path list = "/var/lib/dpkg/info/coreutils.md5sums";
  std::ifstream in(list);
  if (!in) GTEST_SKIP() << "no " << list << " (not a Debian system)";
  std::string line;
  std::string md5;
  while (std::getline(in, line)) {
    if (line.size() > 34 && line.substr(34) == "usr/bin/env") md5 = line.substr(0, 32);
  }
  if (md5.empty()) GTEST_SKIP() << list << " lists no usr/bin/env";
  const auto sums = DpkgSums::read("/var/lib/dpkg/info");
  EXPECT_GT(sums.size(), 1000U);
  EXPECT_TRUE(sums.recorded("/usr/bin/env", md5));
  EXPECT_FALSE(sums.recorded("/usr/bin/env", std::string(32, '0')));
}

}  // namespace
}  // namespace mailguard::service
