// main() for kernel_netns_test: moves the process into fresh network and mount
// namespaces before any test runs (so the test's listeners and cgroup2 mount stay its
// own; gtest_discover_tests runs each test in its own process), or, with
// `--connect ADDR PORT`, is the small program the tests' children exec.
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernel_netns.hpp"

namespace mailguard::kernel::testing {
namespace {

bool g_ready = false;
std::string g_reason = "namespaces not set up";

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

void enterPrivateNamespaces() {
  if (::geteuid() != 0) {
    g_reason = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF) for namespaces and BPF";
    return;
  }
  if (::unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    g_reason = std::string("unshare(CLONE_NEWNET|CLONE_NEWNS): ") + std::strerror(errno);
    return;
  }
  // Our mounts (the test's cgroup2) must not propagate to the host's namespace.
  if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    g_reason = std::string("making mounts private: ") + std::strerror(errno);
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

bool inPrivateNamespaces() { return g_ready; }
const std::string& namespaceSkipReason() { return g_reason; }

int connectOnce(const std::string& addr, unsigned port) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = AF_INET;
  if (addr.find(':') != std::string::npos) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET6, addr.c_str(), &sin6->sin6_addr) != 1) return EINVAL;
    family = AF_INET6;
    len = sizeof(*sin6);
  } else {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<std::uint16_t>(port));
    if (::inet_pton(AF_INET, addr.c_str(), &sin->sin_addr) != 1) return EINVAL;
    len = sizeof(*sin);
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  return err;
}

namespace {

// `--rewrite-connect MODE ADDR PORT [PADDING...]`: rewrites its own command line (MODE "plain":
// writes over argv[1] in memory; "mem": the same through /proc/self/mem; "title": overwrites the
// area's final NUL, as setproctitle does; "none": leaves it), connects to ADDR:PORT,
// prints the socket's cookie and waits for stdin to close (so its /proc/PID/cmdline can
// be read meanwhile). Exit status 0, or the step that failed.
int rewriteAndConnect(int argc, char** argv) {
  const std::string mode = argv[2];
  const std::string addr = argv[3];
  const auto port = static_cast<std::uint16_t>(std::atoi(argv[4]));
  char* arg = argv[1];
  const std::size_t argLen = std::strlen(arg);
  if (mode == "plain") {
    std::memset(arg, 'R', argLen);
  } else if (mode == "mem") {
    const int mem = ::open("/proc/self/mem", O_RDWR | O_CLOEXEC);
    if (mem < 0) return 10;
    const std::string over(argLen, 'M');
    const auto at = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(arg));
    const bool ok = ::pwrite(mem, over.data(), over.size(), at) == static_cast<ssize_t>(argLen);
    ::close(mem);
    if (!ok) return 11;
  } else if (mode == "title") {
    argv[argc - 1][std::strlen(argv[argc - 1])] = 'T';  // the last NUL of the area
  } else if (mode != "none") {
    return 12;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  if (::inet_pton(AF_INET, addr.c_str(), &sin.sin_addr) != 1) return 13;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 14;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) != 0) return 15;
  std::uint64_t cookie = 0;
  socklen_t len = sizeof(cookie);
  if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) return 16;
  const std::string line = std::to_string(cookie) + "\n";
  if (::write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return 17;
  char byte = 0;
  while (::read(STDIN_FILENO, &byte, 1) > 0) {
  }
  ::close(fd);
  return 0;
}

}  // namespace

}  // namespace mailguard::kernel::testing

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--connect")
    return mailguard::kernel::testing::connectOnce(argv[2],
                                                   static_cast<unsigned>(std::atoi(argv[3])));
  if (argc >= 5 && std::string(argv[1]) == "--rewrite-connect")
    return mailguard::kernel::testing::rewriteAndConnect(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  // Listing tests (gtest_discover_tests at build time) needs no namespace.
  if (!::testing::GTEST_FLAG(list_tests)) mailguard::kernel::testing::enterPrivateNamespaces();
  return RUN_ALL_TESTS();
}
