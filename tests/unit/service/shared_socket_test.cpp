// a socket held by the approved mail client and by the bot that made it.
#include "shared_socket.hpp"

#include <gtest/gtest.h>

#include "fake_proc.hpp"

namespace mailguard::service {
namespace {

using procinfo::fake::FakeProcess;

class SharedSocketTest : public ::testing::Test {
 protected:
  SharedSocketTest() : fs_(tree_.proc()), resolver_(fs_, hasher_) {
    client_ = tree_.addFile("opt/mail/bin/client", "the mail client");
    bot_ = tree_.addFile("home/ann/.cache/bot", "a bot");
  }

  // The bot (pid 100) made socket 4242 and started the client (pid 200) holding it, without
  // close-on-exec; `flags` is what /proc/200/fdinfo/3 says.
  procinfo::ProcessInfo shareSocket(const std::string& flags = "02") {
    tree_.add(
        100,
        FakeProcess{.name = "bot", .cmdline = {"bot"}, .exe = bot_, .fds = {{5, "socket:[4242]"}}});
    tree_.add(200, FakeProcess{.name = "client",
                               .ppid = 100,
                               .cmdline = {"client"},
                               .exe = client_,
                               .fds = {{3, "socket:[4242]"}}});
    procinfo::fake::writeFile(tree_.proc() / "200/fdinfo/3", "pos:\t0\nflags:\t" + flags + "\n");
    const auto pid = resolver_.pidForSocket(4242, std::nullopt);
    EXPECT_EQ(pid, 200);  // newest first: the client
    auto info = resolver_.describe(200);
    EXPECT_TRUE(info) << info.error().message;
    return *info;
  }

  [[nodiscard]] bool isClient(const procinfo::ProcessInfo& p) const {
    return p.identity.path == client_.string();
  }

  procinfo::fake::FakeProcTree tree_;
  procinfo::DirProcFs fs_;
  procinfo::FileHasher hasher_;
  procinfo::ProcessResolver resolver_;
  std::filesystem::path client_;
  std::filesystem::path bot_;
};

TEST_F(SharedSocketTest, ChargesTheAttemptToTheUnapprovedHolder) {
  const auto client = shareSocket();
  const auto shared = unapprovedCoHolder(
      resolver_, client, 4242, [&](const procinfo::ProcessInfo& p) { return isClient(p); });
  ASSERT_TRUE(shared) << shared.error().message;
  ASSERT_TRUE(*shared);
  EXPECT_EQ((*shared)->holder.pid, 100);
  EXPECT_EQ((*shared)->holder.identity.path, bot_.string());
  EXPECT_EQ((*shared)->note,
            "; its socket is also held by the approved " + client_.string() + " (pid 200)");
}

TEST_F(SharedSocketTest, KeepsTheHolderWhenEveryHolderWouldBeAllowed) {
  const auto client = shareSocket();
  EXPECT_FALSE(unapprovedCoHolder(resolver_, client, 4242, [](const procinfo::ProcessInfo&) {
                 return true;
               }).value());
}

TEST_F(SharedSocketTest, LooksForNoOtherHolderWhenTheFoundOneIsNotAllowed) {
  const auto client = shareSocket();
  const auto before = resolver_.processesScanned();
  EXPECT_FALSE(unapprovedCoHolder(resolver_, client, 4242, [](const procinfo::ProcessInfo&) {
                 return false;
               }).value());
  EXPECT_EQ(resolver_.processesScanned(), before);
}

TEST_F(SharedSocketTest, TrustsACloseOnExecSocketToBeTheClientsOwn) {
  const auto client = shareSocket("02000002");
  EXPECT_FALSE(unapprovedCoHolder(resolver_, client, 4242, [&](const procinfo::ProcessInfo& p) {
                 return isClient(p);
               }).value());
}

}  // namespace
}  // namespace mailguard::service
