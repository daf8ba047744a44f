#include "caller_context.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace mailguard::service {
namespace {

// A /proc tree of a few processes under a temporary directory, read by the real reader.
class FakeProc {
 public:
  FakeProc()
      : root_(std::filesystem::temp_directory_path() / ("mg-proc-" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(root_);
  }
  ~FakeProc() { std::filesystem::remove_all(root_); }
  void process(int pid, const std::string& comm, int ppid, const std::string& environ = {}) {
    const auto dir = root_ / std::to_string(pid);
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "stat") << pid << " (" << comm << ") S " << ppid << " 1 1 0 -1\n";
    std::ofstream(dir / "environ", std::ios::binary) << environ;
  }
  [[nodiscard]] procinfo::DirProcFs fs() const { return procinfo::DirProcFs(root_); }

 private:
  std::filesystem::path root_;
};

std::string env(std::initializer_list<std::string> vars) {
  std::string out;
  for (const auto& v : vars) out += v + '\0';
  return out;
}

TEST(CallerContext, SshConnectionInTheEnvironmentIsRemoteWithItsServerPort) {
  FakeProc proc;
  proc.process(300, "guardctl", 200,
               env({"HOME=/root", "SSH_CONNECTION=203.0.113.9 50122 10.0.0.2 2222", "TERM=xterm"}));
  const auto c = callerContextOf(proc.fs(), 300);
  EXPECT_TRUE(c.remoteSession);
  EXPECT_EQ(c.sshPort, 2222);
}

TEST(CallerContext, SshdAmongTheAncestorsIsRemoteEvenWhenSudoDroppedTheVariables) {
  FakeProc proc;
  proc.process(100, "sshd", 1);
  proc.process(200, "bash", 100);
  proc.process(250, "sudo", 200);
  proc.process(300, "guardctl", 250, env({"HOME=/root"}));
  const auto c = callerContextOf(proc.fs(), 300);
  EXPECT_TRUE(c.remoteSession);
  EXPECT_EQ(c.sshPort, 22);
}

TEST(CallerContext, ALocalTerminalIsNotRemoteAndAParenthesisInACommandNameIsNoTrap) {
  FakeProc proc;
  proc.process(100, "gnome-terminal-", 1);
  proc.process(200, "bash (sshd) x", 100);  // comm may contain spaces and parentheses
  proc.process(300, "guardctl", 200, env({"DISPLAY=:0"}));
  EXPECT_FALSE(callerContextOf(proc.fs(), 300).remoteSession);
  EXPECT_FALSE(callerContextOf(proc.fs(), 999).remoteSession) << "a vanished caller";
  EXPECT_FALSE(callerContextOf(proc.fs(), 0).remoteSession);
}

}  // namespace
}  // namespace mailguard::service
