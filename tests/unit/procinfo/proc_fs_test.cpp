#include <gtest/gtest.h>

#include <algorithm>

#include "fake_proc.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {
namespace {

TEST(DirProcFs, ReadsFilesLinksAndListsRelativeToItsRoot) {
  fake::FakeProcTree tree;
  tree.add(42, fake::FakeProcess{.name = "x", .fds = {{3, "socket:[7]"}}});
  const DirProcFs fs{tree.proc()};
  EXPECT_EQ(fs.root(), tree.proc());

  const auto status = fs.read("42/status");
  ASSERT_TRUE(status) << status.error().message;
  EXPECT_NE(status->find("Name:\tx\n"), std::string::npos);

  const auto link = fs.readLink("42/fd/3");
  ASSERT_TRUE(link) << link.error().message;
  EXPECT_EQ(*link, "socket:[7]");

  auto names = fs.list("42");
  ASSERT_TRUE(names) << names.error().message;
  std::sort(names->begin(), names->end());
  EXPECT_EQ(*names, (std::vector<std::string>{"cmdline", "environ", "fd", "stat", "status"}));
}

TEST(DirProcFs, ReadsLongLinks) {
  fake::FakeProcTree tree;
  const std::string target = "/" + std::string(1000, 'a');
  std::filesystem::create_symlink(target, tree.proc() / "long");
  const DirProcFs fs{tree.proc()};
  const auto link = fs.readLink("long");
  ASSERT_TRUE(link) << link.error().message;
  EXPECT_EQ(*link, target);
}

TEST(DirProcFs, ReportsMissingFilesWithTheirPath) {
  fake::FakeProcTree tree;
  const DirProcFs fs{tree.proc()};
  const auto path = (tree.proc() / "99/status").string();
  const auto r = fs.read("99/status");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "Failed to read '" + path + "': No such file or directory");
  EXPECT_FALSE(fs.readLink("99/exe"));
  EXPECT_FALSE(fs.list("99/fd"));
}

TEST(DirProcFs, ReadsTheRealProc) {
  const DirProcFs fs;
  EXPECT_EQ(fs.root(), std::filesystem::path("/proc"));
  const auto stat = fs.read("self/stat");
  ASSERT_TRUE(stat) << stat.error().message;
  EXPECT_TRUE(parseStatStartTime(*stat));
  const auto names = fs.list("self/fd");
  ASSERT_TRUE(names) << names.error().message;
  EXPECT_FALSE(names->empty());
}

}  // namespace
}  // namespace mailguard::procinfo
