#include "mailguard/mta/journal_follower.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace mailguard::mta {
namespace {

constexpr const char* kJournald = "/lib/systemd/systemd-journald";

TEST(JournalFollower, TrustsOnlyPostfixTagsFromPostfixUids) {
  const std::vector<std::uint32_t> uids{0, 107};
  EXPECT_TRUE(isTrustedPostfixRecord("postfix/smtp", 107, uids));
  EXPECT_TRUE(isTrustedPostfixRecord("postfix-out/local", 0, uids));
  // logger -t postfix/smtp, postlog run by a user: journald recorded their uid.
  EXPECT_FALSE(isTrustedPostfixRecord("postfix/smtp", 1000, uids));
  EXPECT_FALSE(isTrustedPostfixRecord("postfix/smtp", std::nullopt, uids));
  EXPECT_FALSE(isTrustedPostfixRecord("sshd", 0, uids));
  // root always; the mail owner when the account exists.
  const auto found = postfixUids("root");
  EXPECT_EQ(found, std::vector<std::uint32_t>{0});
  EXPECT_EQ(postfixUids("no-such-account-here"), std::vector<std::uint32_t>{0});
}

TEST(JournalFollower, JournaldRunsWhenItsSocketIsThere) {
  char tmpl[] = "/tmp/pfjournal-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir(tmpl);
  const auto path = dir / "socket";
  EXPECT_FALSE(journaldRuns(path));
  { std::ofstream(dir / "file") << "x"; }
  EXPECT_FALSE(journaldRuns(dir / "file"));  // a plain file is not journald
  const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  EXPECT_TRUE(journaldRuns(path));
  ::close(fd);
  std::filesystem::remove_all(dir);
}

// Sends one syslog datagram to journald's socket as `uid` (a child process: journald
// takes the uid from the kernel's SCM_CREDENTIALS, not from the record).
bool sendAs(const std::string& socketPath, uid_t uid, const std::string& record) {
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    if (uid != 0 && (::setgid(65534) != 0 || ::setuid(uid) != 0)) ::_exit(2);
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socketPath.c_str(), sizeof(addr.sun_path) - 1);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::_exit(3);
    }
    ::_exit(::send(fd, record.data(), record.size(), 0) == static_cast<ssize_t>(record.size()) ? 0
                                                                                               : 4);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string outcome(const char* queueId, const char* status) {
  return std::string(queueId) +
         ": to=<a@d.example>, relay=sink[198.18.0.2]:25, delay=0.1, delays=0/0/0.05/0.05, "
         "dsn=5.1.1, status=" +
         status + " (host sink[198.18.0.2] said: 550 5.1.1 User unknown)";
}

// The whole check in a child with its own mount namespace: a journald of its own (a journal
// namespace, as systemd-journald@.service runs it) on tmpfs, so the host's journal and
// /run stay untouched. Returns what failed, empty when all held.
std::string checkRealJournal() {
  if (::unshare(CLONE_NEWNS) != 0) return "unshare: " + std::string(std::strerror(errno));
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return "mount private";
  for (const char* dir : {"/run/systemd", "/var/log/journal"}) {
    std::filesystem::create_directories(dir);
    if (::mount("none", dir, "tmpfs", 0, nullptr) != 0) return std::string("mount ") + dir;
  }
  const std::string ns = "mgtest" + std::to_string(::getpid());
  const std::string socketPath = "/run/systemd/journal." + ns + "/dev-log";
  const pid_t journald = ::fork();
  if (journald == 0) {
    // Ends with the check even if the check dies without stopping it.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    ::execl(kJournald, kJournald, ns.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  struct Stop {
    pid_t pid;
    ~Stop() {
      ::kill(pid, SIGTERM);
      ::waitpid(pid, nullptr, 0);
    }
  } stop{journald};
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!std::filesystem::exists(socketPath)) {
    if (std::chrono::steady_clock::now() > deadline) return "journald made no " + socketPath;
    ::poll(nullptr, 0, 20);  // journald has no readiness signal here but its socket
  }
  // History: written before the follower starts, never replayed. A first follower waits
  // until journald has stored it, so that it is history when the second one starts.
  const auto earlier = JournalFollower::openNamespace(ns.c_str(), {0});
  if (!earlier) return earlier.error().message;
  if (!sendAs(socketPath, 0, "<22>postfix/smtp[10]: " + outcome("AAAAA11111", "bounced"))) {
    return "send history";
  }
  for (bool stored = false; !stored;) {
    if (std::chrono::steady_clock::now() > deadline) return "history not stored";
    pollfd p{(*earlier)->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!(*earlier)->poll([&](const MtaLogLine& l) { stored = l.queueId == "AAAAA11111"; })) {
      return "poll history";
    }
  }
  auto follower = JournalFollower::openNamespace(ns.c_str(), {0});
  // (107 stands for postfix's mail_owner below, trusted only once the test says so.)
  if (!follower) return follower.error().message;
  std::vector<MtaLogLine> seen;
  auto collect = [&](const MtaLogLine& l) { seen.push_back(l); };
  if (!(*follower)->poll(collect)) return "first poll";
  if (!sendAs(socketPath, 65534, "<22>postfix/smtp[11]: " + outcome("BBBBB22222", "sent")) ||
      !sendAs(socketPath, 0, "<22>bot[12]: " + outcome("CCCCC33333", "sent")) ||
      !sendAs(socketPath, 0, "<30>postfix/smtp[13]: " + outcome("DDDDD44444", "sent")) ||
      !sendAs(socketPath, 0, "<22>postfix/smtp[14]: " + outcome("EEEEE55555", "bounced"))) {
    return "send";
  }
  while (seen.empty()) {
    if (std::chrono::steady_clock::now() > deadline) return "no record came through";
    pollfd p{(*follower)->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!(*follower)->poll(collect)) return "poll";
  }
  if (seen.size() != 1) return "records: " + std::to_string(seen.size());
  // Only the record written by root with postfix's tag in the mail facility; the others
  // (nobody's, another tag, the daemon facility) and the history are not there.
  if (seen[0].queueId != "EEEEE55555") return "record of " + seen[0].queueId;
  if (seen[0].status != DeliveryStatus::Failed || seen[0].reply != "550 5.1.1 User unknown") {
    return "parsed as " + seen[0].reply;
  }

  // A bounce received here: its arrival from <> (qmgr, as the mail owner 107 once trusted)
  // and its delivery to a mailbox (local, root) reach the backscatter watch; the same
  // records forged by nobody, or written by 107 before it was trusted, do not.
  std::vector<InboundLine> inbound;
  auto collectInbound = [&](const InboundLine& l) { inbound.push_back(l); };
  const std::string arrival = ": from=<>, size=2345, nrcpt=1 (queue active)";
  const std::string delivery =
      ": to=<ann@pc.test>, relay=local, delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, "
      "status=sent (delivered to mailbox)";
  // The marker, a trusted outcome sent after them, says when both have been read.
  if (!sendAs(socketPath, 107, "<22>postfix/qmgr[20]: AAAAA77777" + arrival) ||
      !sendAs(socketPath, 65534, "<22>postfix/qmgr[21]: BBBBB77777" + arrival) ||
      !sendAs(socketPath, 0, "<22>postfix/smtp[25]: " + outcome("ABCDE88888", "sent"))) {
    return "send inbound";
  }
  while (seen.back().queueId != "ABCDE88888") {
    if (std::chrono::steady_clock::now() > deadline) return "no marker came through";
    pollfd p{(*follower)->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!(*follower)->poll(collect, collectInbound)) return "poll inbound";
  }
  if (!inbound.empty()) return "an untrusted inbound record: " + inbound[0].queueId;
  (*follower)->trust(107);
  if (!sendAs(socketPath, 107, "<22>postfix/qmgr[22]: CCCCC77777" + arrival) ||
      !sendAs(socketPath, 65534, "<22>postfix/local[23]: CCCCC77777" + delivery) ||
      !sendAs(socketPath, 0, "<22>postfix/local[24]: CCCCC77777" + delivery)) {
    return "send inbound";
  }
  while (inbound.size() < 2) {
    if (std::chrono::steady_clock::now() > deadline) {
      return "inbound records: " + std::to_string(inbound.size());
    }
    pollfd p{(*follower)->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!(*follower)->poll(collect, collectInbound)) return "poll inbound";
  }
  if (inbound.size() != 2) return "inbound records: " + std::to_string(inbound.size());
  if (inbound[0].kind != InboundLine::Kind::NullSenderArrival ||
      inbound[0].queueId != "CCCCC77777") {
    return "first inbound record: " + inbound[0].queueId;
  }
  if (inbound[1].kind != InboundLine::Kind::LocalDelivery ||
      inbound[1].recipient != "ann@pc.test") {
    return "second inbound record: " + inbound[1].recipient;
  }
  return {};
}

TEST(JournalFollower, ReadsPostfixRecordsFromARealJournal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root: runs its own journald in a mount namespace";
  if (!std::filesystem::exists(kJournald)) GTEST_SKIP() << kJournald << " is not installed";
  // journald names its files by the machine id and refuses to run without one.
  if (!std::filesystem::exists("/etc/machine-id")) GTEST_SKIP() << "no /etc/machine-id";
  int pipeFds[2];
  ASSERT_EQ(::pipe2(pipeFds, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(pipeFds[0]);
    const auto failure = checkRealJournal();
    (void)!::write(pipeFds[1], failure.data(), failure.size());
    ::_exit(failure.empty() ? 0 : 1);
  }
  ::close(pipeFds[1]);
  std::string failure;
  char buf[512];
  for (ssize_t n; (n = ::read(pipeFds[0], buf, sizeof(buf))) > 0;) failure.append(buf, n);
  ::close(pipeFds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << failure;
  EXPECT_EQ(failure, "");
}

}  // namespace
}  // namespace mailguard::mta
