#pragma once
// Shared by kernel_netns_main.cpp and kernel_netns_test.cpp.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

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

}  // namespace mailguard::kernel::testing

#define MAILGUARD_REQUIRE_NAMESPACES()                                     \
  do {                                                                     \
    if (!::mailguard::kernel::testing::inPrivateNamespaces())              \
      GTEST_SKIP() << ::mailguard::kernel::testing::namespaceSkipReason(); \
  } while (false)
