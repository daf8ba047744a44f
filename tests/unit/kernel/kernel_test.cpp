#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <bit>
#include <filesystem>
#include <fstream>
#include <string>

#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel {
namespace {

TEST(KernelDev, EncodesMajorAndMinorAsTheKernelDoes) {
  EXPECT_EQ(kernelDev(makedev(8, 1)), (8U << 20) | 1U);
  EXPECT_EQ(kernelDev(makedev(259, 0x12345)), (259U << 20) | 0x12345U);
  EXPECT_EQ(kernelDev(makedev(0, 25)), 25U);
}

TEST(ExeKeyOf, PathAndFdAgreeAndFollowStat) {
  const auto exe = std::filesystem::canonical("/proc/self/exe");
  auto byPath = exeKeyOfPath(exe);
  ASSERT_TRUE(byPath) << byPath.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(exe.c_str(), &st), 0);
  EXPECT_EQ(byPath->ino, st.st_ino);
  EXPECT_EQ(byPath->dev, kernelDev(st.st_dev));
  EXPECT_EQ(byPath->ctimeSec, st.st_ctim.tv_sec);
  EXPECT_EQ(byPath->ctimeNsec, st.st_ctim.tv_nsec);
  auto byFd = exeKeyOfPath("/proc/self/exe");  // follows the link
  ASSERT_TRUE(byFd);
  EXPECT_EQ(*byFd, *byPath);
}

TEST(ExeKeyOf, MissingFileIsNotFound) {
  auto r = exeKeyOfPath("/nonexistent/mailguard/x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::NotFound);
  auto bad = exeKeyOfFd(-1);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().sysErrno, EBADF);
}

TEST(DescribeTaint, NamesEachBit) {
  EXPECT_EQ(describeTaint(0), "");
  EXPECT_EQ(describeTaint(kTaintUserMapping | kTaintTraced),
            "LD_PRELOAD or a user's library, traced");
  EXPECT_EQ(describeTaint(kTaintMemAccess), "memory opened by another process");
  EXPECT_EQ(describeTaint(1U << 7), "unknown taint 0x80");
}

class Cgroup2Root : public ::testing::Test {
 protected:
  std::filesystem::path write(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("mailguard-mountinfo-" + std::to_string(::getpid()));
    std::ofstream(path_) << text;
    return path_;
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_;
};

TEST_F(Cgroup2Root, FindsTheHierarchyRootAmongV1Mounts) {
  const auto p = write(
      "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n"
      "30 22 0:26 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
      "31 22 0:27 /user.slice /srv/bound rw - cgroup2 cgroup2 rw\n"
      "32 22 0:27 / /sys/fs/cgroup/my\\040unified rw,relatime shared:10 - cgroup2 cgroup2 rw\n");
  const auto root = cgroup2Root(p);
  ASSERT_TRUE(root);
  EXPECT_EQ(*root, "/sys/fs/cgroup/my unified");
}

TEST_F(Cgroup2Root, NoneWhenOnlyV1) {
  const auto p = write("30 22 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  EXPECT_FALSE(cgroup2Root(p));
  EXPECT_FALSE(cgroup2Root("/nonexistent/mountinfo"));
}

TEST(FakeKernelIdentity, KeyIsInAtMostOneMap) {
  FakeKernelIdentity fake;
  const ExeKey k{1, 2, 3, 4};
  ASSERT_TRUE(fake.allow(k));
  ASSERT_TRUE(fake.deny(k));
  EXPECT_FALSE(fake.allowed.contains(k));
  EXPECT_TRUE(fake.denied.contains(k));
  ASSERT_TRUE(fake.forget(k));
  EXPECT_TRUE(fake.denied.empty());
}

// The digest is SipHash-2-4 (on little-endian machines, where native loads are its
// little-endian ones): the reference vectors of the SipHash paper, key 00..0f.
TEST(ArgvDigest, IsSipHash24OfTheFirstBoundBytesAndCountsAll) {
  const ArgvKey key{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  if constexpr (std::endian::native == std::endian::little) {
    EXPECT_EQ(argvDigest(key, "").hash, 0x726fdb47dd0e0e31ULL);
    std::string fifteen;
    for (char c = 0; c < 15; ++c) fifteen += c;
    EXPECT_EQ(argvDigest(key, fifteen).hash, 0xa129ca6149be45e5ULL);
    EXPECT_EQ(argvDigest(key, fifteen).length, 15U);
  }
  const std::string argv("python3\0/srv/news.py\0", 22);
  EXPECT_EQ(argvDigest(key, argv), argvDigest(key, argv));
  EXPECT_NE(argvDigest(key, argv).hash, argvDigest(ArgvKey{1, 2}, argv).hash);
  std::string other = argv;
  other[9] = 'x';
  EXPECT_NE(argvDigest(key, other).hash, argvDigest(key, argv).hash);
  // Past the bound only the length counts.
  std::string longA(kArgvHashBound, 'a'), longB = longA;
  longA += "tail one";
  longB += "tail two";
  EXPECT_EQ(argvDigest(key, longA), argvDigest(key, longB));
  EXPECT_NE(argvDigest(key, longA), argvDigest(key, longA + "x"));
  FakeKernelIdentity fake;
  EXPECT_EQ(fake.digestArgv(argv), argvDigest(key, argv)) << "the fake's key is 00..0f";
}

}  // namespace
}  // namespace mailguard::kernel
