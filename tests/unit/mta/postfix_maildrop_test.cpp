#include "mailguard/mta/postfix_maildrop.hpp"

#include <gtest/gtest.h>

namespace mailguard::mta {
namespace {

MaildropFiles::Creator writer(int pid) {
  procinfo::ProcessInfo p;
  p.pid = pid;
  p.identity.path = "/usr/bin/python3";
  return {p, 1000, MonoTime{}};
}

TEST(MaildropFiles, NamesTheWriterOfTheFilePickupReadsOnce) {
  MaildropFiles files;
  files.opened({1, 10}, true, writer(42));
  files.opened({1, 11}, true, writer(43));
  files.pickedUp("postfix:/etc/postfix", {1, 11});
  auto creator = files.takeCurrent("postfix:/etc/postfix");
  ASSERT_TRUE(creator.has_value());
  ASSERT_TRUE(creator->submitter.has_value());
  EXPECT_EQ(creator->submitter->pid, 43);
  EXPECT_EQ(creator->uid, 1000u);
  // Decided once: the same message is not decided again from the same note.
  EXPECT_FALSE(files.takeCurrent("postfix:/etc/postfix").has_value());
  EXPECT_EQ(files.size(), 1u);
}

TEST(MaildropFiles, KeepsTheFirstWriterUnlessTheFileIsNew) {
  MaildropFiles files;
  files.opened({1, 10}, true, writer(42));
  files.opened({1, 10}, false, writer(99));  // root's postsuper reading it later
  files.pickedUp("a", {1, 10});
  EXPECT_EQ(files.takeCurrent("a")->submitter->pid, 42);
  // A new file on an inode a removed file had: its creator replaces the old note.
  files.opened({1, 12}, true, writer(50));
  files.opened({1, 12}, true, writer(51));
  files.pickedUp("a", {1, 12});
  EXPECT_EQ(files.takeCurrent("a")->submitter->pid, 51);
}

TEST(MaildropFiles, KnowsNothingOfAFileNotSeenWrittenAndStaysBounded) {
  MaildropFiles files(2);
  files.pickedUp("a", {1, 5});
  EXPECT_FALSE(files.takeCurrent("a").has_value());
  EXPECT_FALSE(files.takeCurrent("b").has_value());
  files.opened({1, 1}, true, writer(1));
  files.opened({1, 2}, true, writer(2));
  files.opened({1, 3}, true, writer(3));
  EXPECT_EQ(files.size(), 2u);
  EXPECT_FALSE(files.knows({1, 1}));
  EXPECT_TRUE(files.knows({1, 3}));
}

}  // namespace
}  // namespace mailguard::mta
