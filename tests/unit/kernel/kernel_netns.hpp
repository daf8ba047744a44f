#pragma once
// Shared by kernel_netns_main.cpp and kernel_netns_test.cpp.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel::testing {

// True when this process runs in fresh network and mount namespaces with `lo` up.
bool inPrivateNamespaces();
const std::string& namespaceSkipReason();

// connect() to ADDR:PORT over a fresh TCP socket; the errno (0 on success). What the
// test binary does when run as `kernel_netns_test --connect ADDR PORT` (its exit status).
int connectOnce(const std::string& addr, unsigned port);

// A cgroup2 hierarchy mounted in a temp dir, and a child cgroup in it that holds nothing
// but the test's own children. Removed again whatever happens to the test.
class PrivateCgroup {
 public:
  PrivateCgroup() = default;
  PrivateCgroup(const PrivateCgroup&) = delete;
  PrivateCgroup& operator=(const PrivateCgroup&) = delete;
  ~PrivateCgroup() { remove(); }

  std::string create() {
    std::string tmpl = "/tmp/mailguard-cg-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return std::string("mkdtemp: ") + std::strerror(errno);
    mountDir_ = tmpl;
    if (::mount("none", tmpl.c_str(), "cgroup2", 0, nullptr) != 0)
      return std::string("mount -t cgroup2: ") + std::strerror(errno);
    mounted_ = true;
    const std::filesystem::path child =
        mountDir_ / ("mailguard-test-" + std::to_string(::getpid()));
    if (::mkdir(child.c_str(), 0755) != 0)
      return "mkdir " + child.string() + ": " + std::strerror(errno);
    child_ = child;
    return {};
  }
  [[nodiscard]] const std::filesystem::path& dir() const { return child_; }

  // In a forked child: move the calling process into the test cgroup.
  [[nodiscard]] bool join() const {
    const int fd = ::open((child_ / "cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, "0", 1) == 1;
    ::close(fd);
    return ok;
  }

  void remove() {
    if (!child_.empty()) {
      // The last member leaves the cgroup as it is reaped; poll for the rmdir to pass.
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (::rmdir(child_.c_str()) != 0 && errno == EBUSY &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
      child_.clear();
    }
    if (mounted_) ::umount2(mountDir_.c_str(), MNT_DETACH);
    mounted_ = false;
    if (!mountDir_.empty()) ::rmdir(mountDir_.c_str());
    mountDir_.clear();
  }

 private:
  std::filesystem::path mountDir_, child_;
  bool mounted_ = false;
};

// A server a test forks outside the tapped cgroup (dnsmasq, an SMTP sink): ready once
// `answers` says so (polled every 20 ms, 10 s at most), stopped and reaped when it goes.
class TestServer {
 public:
  TestServer() = default;
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;
  ~TestServer() { stop(); }

  ::testing::AssertionResult start(const char* name, std::vector<const char*> argv,
                                   const std::function<bool()>& answers) {
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execv(argv[0], const_cast<char* const*>(argv.data()));
      ::_exit(127);
    }
    if (pid_ < 0) return ::testing::AssertionFailure() << "cannot fork " << name;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!answers()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) != 0) {
        pid_ = -1;
        return ::testing::AssertionFailure() << name << " exited";
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return ::testing::AssertionFailure() << name << " never answered";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a condition, polled
    }
    return ::testing::AssertionSuccess();
  }
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
};

// The hooks attached to a test's cgroup as the tap tests use them (mail port 25, mark bit
// 20), with the DNS/SMTP tap running.
inline std::unique_ptr<KernelIdentity> openTappedHooks(const PrivateCgroup& cgroup) {
  BpfOptions options;
  options.cgroup = cgroup.dir();
  options.markBit = 1U << 20;
  options.mailPorts = {25};
  auto opened = openBpfKernelIdentity(options);
  EXPECT_TRUE(opened) << opened.error().message;
  if (!opened) return nullptr;
  EXPECT_TRUE(opened.value()->dnsTapRunning()) << opened.value()->dnsTapError();
  return std::move(opened.value());
}

}  // namespace mailguard::kernel::testing

#define MAILGUARD_REQUIRE_NAMESPACES()                                     \
  do {                                                                     \
    if (!::mailguard::kernel::testing::inPrivateNamespaces())              \
      GTEST_SKIP() << ::mailguard::kernel::testing::namespaceSkipReason(); \
  } while (false)
