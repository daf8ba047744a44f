#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <future>
#include <mutex>

#include "fake_proc.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {
namespace {

constexpr const char* kSha256Abc =
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kSha256Empty =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr const char* kSha256MillionA =
    "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";

void setMtime(const std::filesystem::path& p, time_t sec) {
  const timespec times[2] = {{sec, 0}, {sec, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), times, 0), 0) << p;
}

TEST(FileHasher, HashesAbcToTheKnownSha256) {
  fake::FakeProcTree tree;
  FileHasher hasher;
  const auto r = hasher.sha256OfPath(tree.addFile("abc", "abc"));
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kSha256Abc);
}

TEST(FileHasher, HashesEmptyAndMultiChunkFiles) {
  fake::FakeProcTree tree;
  FileHasher hasher;
  const auto empty = hasher.sha256OfPath(tree.addFile("empty", ""));
  ASSERT_TRUE(empty) << empty.error().message;
  EXPECT_EQ(*empty, kSha256Empty);
  // 1,000,000 bytes: fifteen full 64 KiB reads and a partial one.
  const auto big = hasher.sha256OfPath(tree.addFile("big", std::string(1'000'000, 'a')));
  ASSERT_TRUE(big) << big.error().message;
  EXPECT_EQ(*big, kSha256MillionA);
}

TEST(FileHasher, HashesAnOpenFdWithoutMovingItsOffset) {
  fake::FakeProcTree tree;
  const auto p = tree.addFile("abc", "abc");
  FileHasher hasher;
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const auto r = hasher.sha256OfFd(fd);
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0);
  ::close(fd);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kSha256Abc);
}

TEST(FileHasher, ComputesNothingTheSecondTime) {
  fake::FakeProcTree tree;
  const auto p = tree.addFile("abc", "abc");
  FileHasher hasher;
  ASSERT_TRUE(hasher.sha256OfPath(p));
  const auto again = hasher.sha256OfPath(p);
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, kSha256Abc);
  EXPECT_EQ(hasher.hashesComputed(), 1U);
  EXPECT_EQ(hasher.cacheSize(), 1U);
}

TEST(FileHasher, RecomputesAFileRewrittenInPlaceWithItsMtimeSetBack) {
  // an approved file outside root-owned folders rewritten by its owner
  // with content of the same size and `touch -d` back to its old time must not keep the
  // approved hash.
  fake::FakeProcTree tree;
  const auto p = tree.addFile("client", "abc");
  FileHasher hasher;
  const auto first = hasher.sha256OfPath(p);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, kSha256Abc);
  fake::rewriteKeepingTimes(p, "xyz");
  const auto second = hasher.sha256OfPath(p);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_NE(*second, kSha256Abc);
  EXPECT_EQ(hasher.hashesComputed(), 2U);
}

TEST(FileHasher, RecomputesWhenMtimeOrSizeChanges) {
  fake::FakeProcTree tree;
  const auto p = tree.addFile("abc", "abc");
  setMtime(p, 1'600'000'000);
  FileHasher hasher;
  ASSERT_TRUE(hasher.sha256OfPath(p));
  EXPECT_EQ(hasher.hashesComputed(), 1U);

  setMtime(p, 1'600'000'001);  // touched, same content
  const auto touched = hasher.sha256OfPath(p);
  ASSERT_TRUE(touched);
  EXPECT_EQ(*touched, kSha256Abc);
  EXPECT_EQ(hasher.hashesComputed(), 2U);

  fake::writeFile(p, "abcd");  // new size (rewritten in place: same inode)
  setMtime(p, 1'600'000'001);  // even with the old mtime
  const auto grown = hasher.sha256OfPath(p);
  ASSERT_TRUE(grown);
  EXPECT_EQ(*grown, "88d4266fd4e6338d13b845fcf289579d209c897823b9217da3e161936f031589");
  EXPECT_EQ(hasher.hashesComputed(), 3U);
}

TEST(FileHasher, RefusesWhatIsNotARegularFile) {
  fake::FakeProcTree tree;
  FileHasher hasher;
  const auto dir = hasher.sha256OfPath(tree.files());
  ASSERT_FALSE(dir);
  EXPECT_EQ(dir.error().message,
            "Failed to hash '" + tree.files().string() + "': not a regular file");
  const auto fifo = tree.files() / "fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_FALSE(hasher.sha256OfPath(fifo));  // and does not block waiting for a writer
  const auto missing = hasher.sha256OfPath(tree.files() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("No such file or directory"), std::string::npos);
}

TEST(IsRootOwnedChain, TrustsSystemBinaries) {
  struct stat st {};
  ASSERT_EQ(::stat("/usr/bin", &st), 0);
  if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    GTEST_SKIP() << "/usr/bin on this machine is not root-owned and closed";
  }
  EXPECT_TRUE(isRootOwnedChain("/usr/bin/env"));
  EXPECT_TRUE(isRootOwnedChain("/"));
}

TEST(IsRootOwnedChain, DistrustsTmpAndMissingFiles) {
  fake::FakeProcTree tree;
  const auto p = tree.addFile("prog", "x");
  EXPECT_FALSE(isRootOwnedChain(p));  // under the world-writable temp dir
  EXPECT_FALSE(isRootOwnedChain("/tmp"));
  EXPECT_FALSE(isRootOwnedChain(tree.files() / "missing"));
}

TEST(IsRootOwnedChain, JudgesASymlinkByItsTarget) {
  fake::FakeProcTree tree;
  const auto link = tree.files() / "env-link";
  std::filesystem::create_symlink("/usr/bin/env", link);
  EXPECT_EQ(isRootOwnedChain(link), isRootOwnedChain("/usr/bin/env"));
  const auto toTmp = tree.files() / "tmp-link";
  std::filesystem::create_symlink(tree.addFile("prog", "x"), toTmp);
  EXPECT_FALSE(isRootOwnedChain(toTmp));
}

// Background mode: guardd's loop asks, the worker hashes, the loop asks again when told.
class BackgroundHasherTest : public ::testing::Test {
 protected:
  void SetUp() override {
    hasher.startBackground([this] {
      const std::lock_guard lock(mu);
      ++hashed;
      cv.notify_all();
    });
  }
  void waitForHashed(int n) {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return hashed >= n; }))
        << "the worker never reported";
  }
  // Declared before the hasher, so they outlive its worker thread.
  std::mutex mu;
  std::condition_variable cv;
  int hashed = 0;
  fake::FakeProcTree tree;
  FileHasher hasher;
};

TEST_F(BackgroundHasherTest, AnswersPendingUntilTheWorkerHashedTheFile) {
  const auto path = tree.addFile("big", std::string(1'000'000, 'a'));
  const Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  ASSERT_TRUE(fd);
  const auto first = hasher.sha256OfFdOrQueue(fd.get());
  ASSERT_FALSE(first);
  EXPECT_EQ(first.error().code, Errc::Pending);
  waitForHashed(1);
  const auto second = hasher.sha256OfFdOrQueue(fd.get());
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_EQ(*second, kSha256MillionA);
  EXPECT_EQ(hasher.hashesComputed(), 1U);
}

TEST_F(BackgroundHasherTest, QueuesAFileOnceHoweverOftenItIsAskedFor) {
  const auto path = tree.addFile("abc", "abc");
  const Fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  ASSERT_TRUE(fd);
  for (int i = 0; i < 20; ++i) (void)hasher.sha256OfFdOrQueue(fd.get());
  waitForHashed(1);
  auto r = hasher.sha256OfFdOrQueue(fd.get());
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kSha256Abc);
  EXPECT_LE(hasher.hashesComputed(), 2U);  // once, or twice if asked while in hand
}

TEST_F(BackgroundHasherTest, HashesAPathForAnApprovalOnTheWorker) {
  const auto path = tree.addFile("abc", "abc");
  std::promise<Result<std::string>> got;
  hasher.hashPathInBackground(path, [&](Result<std::string> r) { got.set_value(std::move(r)); });
  auto future = got.get_future();
  ASSERT_EQ(future.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  const auto r = future.get();
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, kSha256Abc);
}

}  // namespace
}  // namespace mailguard::procinfo
