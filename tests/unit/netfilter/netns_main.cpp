// main() for netfilter_netns_test: moves the process into a fresh network namespace
// and brings up `lo` before any test runs, so nf_tables and NFQUEUE changes never
// reach the host's namespace. gtest_discover_tests runs each test in its own
// process, so every test gets a namespace of its own.
#include <gtest/gtest.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "netns.hpp"

namespace mailguard::netfilter::testing {
namespace {

bool g_ready = false;
std::string g_reason = "network namespace not set up";

bool bringUpLoopback(std::string& why) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  bool ok = ::ioctl(fd, SIOCGIFFLAGS, &ifr) == 0;
  if (ok) {
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    ok = ::ioctl(fd, SIOCSIFFLAGS, &ifr) == 0;
  }
  if (!ok) why = std::string("bringing up lo: ") + std::strerror(errno);
  ::close(fd);
  return ok;
}

void enterPrivateNetns() {
  if (::geteuid() != 0) {
    g_reason = "needs root (CAP_NET_ADMIN) to create a network namespace";
    return;
  }
  if (::unshare(CLONE_NEWNET) != 0) {
    g_reason = std::string("needs root (CAP_NET_ADMIN) to create a network namespace: unshare: ") +
               std::strerror(errno);
    return;
  }
  std::string why;
  if (!bringUpLoopback(why)) {
    g_reason = why;
    return;
  }
  g_ready = true;
}

}  // namespace

bool inPrivateNetns() { return g_ready; }
const std::string& netnsSkipReason() { return g_reason; }

CommandOutput run(const std::string& command) {
  CommandOutput result;
  const std::string full = command + " 2>&1";
  FILE* pipe = ::popen(full.c_str(), "re");
  if (pipe == nullptr) return result;
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) result.out.append(buf.data(), n);
  const int status = ::pclose(pipe);
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace mailguard::netfilter::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Listing tests (gtest_discover_tests at build time) needs no namespace.
  if (!::testing::GTEST_FLAG(list_tests)) mailguard::netfilter::testing::enterPrivateNetns();
  return RUN_ALL_TESTS();
}
