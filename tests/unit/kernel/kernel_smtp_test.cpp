// The reply tap with real BPF, in the test's own network namespace and cgroup2 (see
// kernel_netns_test.cpp): a python SMTP sink on 127.0.0.25:25, outside the cgroup, answers
// a child's plaintext session ("550 5.1.1" to some recipients); the tap delivers the
// server's bytes, in order, under the cookie the connect hook reported, and never a byte
// the child sent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernel_netns.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard/replies/smtp_replies.hpp"

namespace mailguard::kernel {
namespace {

using testing::openTappedHooks;
using testing::PrivateCgroup;
using testing::TestServer;
using namespace std::chrono_literals;

constexpr const char* kSink = "127.0.0.25";

// Answers each session in order; a recipient containing "unknown" gets 550 5.1.1, one
// containing "listed" a Spamhaus rejection, others 250. STARTTLS is answered 220 and the
// session goes on in plaintext (a real server would start TLS: nothing after it counts).
constexpr const char* kSinkScript = R"PY(
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = lambda s: (self.wfile.write(s.encode()), self.wfile.flush())
        w("220 sink.test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            c = line.decode(errors="replace").strip()
            u = c.upper()
            if u.startswith("EHLO"):
                w("250-sink.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            elif u.startswith("RCPT"):
                if "unknown" in c:
                    w("550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n" % c[8:].strip("<>"))
                elif "listed" in c:
                    w("554 5.7.1 Service unavailable; blocked using zen.spamhaus.org\r\n")
                else:
                    w("250 2.1.5 Ok\r\n")
            elif u == "DATA":
                w("354 End data with <CR><LF>.<CR><LF>\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                w("250 2.0.0 Ok: queued\r\n")
            elif u == "STARTTLS":
                w("220 2.0.0 Ready to start TLS\r\n")
            elif u == "QUIT":
                w("221 2.0.0 Bye\r\n")
                return
            else:
                w("250 2.0.0 Ok\r\n")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((sys.argv[1], 25), H).serve_forever()
)PY";

// Reads one whole reply (up to the line with a space after the code); false at EOF.
bool readReply(int fd, std::string& buffer) {
  while (true) {
    std::size_t start = 0;
    for (std::size_t nl = buffer.find('\n'); nl != std::string::npos;
         nl = buffer.find('\n', start)) {
      const bool last = nl - start >= 4 && buffer[start + 3] == ' ';
      start = nl + 1;
      if (last) {
        buffer.erase(0, start);
        return true;
      }
    }
    char chunk[512];
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<std::size_t>(n));
  }
}

// A plaintext session with the sink: each command waits for its reply. 1 on success.
int smtpSession(const std::vector<std::string>& commands) {
  const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(25);
  ::inet_pton(AF_INET, kSink, &to.sin_addr);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) return -1;
  std::string buffer;
  if (!readReply(s.get(), buffer)) return -1;
  for (const auto& c : commands) {
    const std::string line = c + "\r\n";
    if (::send(s.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(line.size()))
      return -1;
    if (c == "DATA") {
      if (!readReply(s.get(), buffer)) return -1;
      const std::string body = "Subject: secret body\r\n\r\nnever copied\r\n.\r\n";
      if (::send(s.get(), body.data(), body.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(body.size()))
        return -1;
    }
    if (!readReply(s.get(), buffer)) return -1;
  }
  // Wait for the server's close after QUIT, so its FIN is in before the child exits.
  char rest[64];
  while (::recv(s.get(), rest, sizeof(rest), 0) > 0) {
  }
  return 1;
}

const std::vector<std::string> kHarvest = {"EHLO bot",
                                           "MAIL FROM:<a@bot.test>",
                                           "RCPT TO:<unknown1@victim.test>",
                                           "RCPT TO:<ok@victim.test>",
                                           "RCPT TO:<unknown2@victim.test>",
                                           "RCPT TO:<listed@victim.test>",
                                           "DATA",
                                           "QUIT"};

class KernelSmtp : public ::testing::Test {
 protected:
  void SetUp() override {
    MAILGUARD_REQUIRE_NAMESPACES();
    if (::access("/usr/bin/python3", X_OK) != 0) GTEST_SKIP() << "python3 is not installed";
    ASSERT_EQ(cgroup_.create(), "");
    ASSERT_TRUE(sink_.start("the SMTP sink", {"/usr/bin/python3", "-c", kSinkScript, kSink},
                            // Ready when it greets (this process is outside the tapped cgroup).
                            [this] { return smtpSession({"QUIT"}) == 1; }));
    id_ = openTappedHooks(cgroup_);
    ASSERT_TRUE(id_ != nullptr && !HasFailure());
    id_->setSmtpSink([this](const SmtpSegment& s) { segments_.push_back(s); });
  }
  void TearDown() override {
    id_.reset();
    sink_.stop();
    cgroup_.remove();
  }

  // Runs `body` in a forked child in the test cgroup; its pid, or -1 when it failed.
  pid_t inChild(const std::function<int()>& body) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(cgroup_.join() && body() > 0 ? 0 : 1);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? pid : -1;
  }

  // Reads the taps until `done` holds, or 5 s pass.
  void readUntil(const std::function<bool()>& done) {
    const Fd ep(::epoll_create1(EPOLL_CLOEXEC));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ASSERT_EQ(::epoll_ctl(ep.get(), EPOLL_CTL_ADD, id_->eventsFd(), &ev), 0);
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (true) {
      auto r = id_->readEvents([this](const ConnectEvent& e) { connects_.push_back(e); });
      ASSERT_TRUE(r) << r.error().message;
      if (done() || std::chrono::steady_clock::now() > deadline) return;
      ::epoll_wait(ep.get(), &ev, 1, 200);
    }
  }
  bool closed(std::uint64_t cookie) const {
    return std::any_of(segments_.begin(), segments_.end(),
                       [&](const SmtpSegment& s) { return s.cookie == cookie && s.closed; });
  }
  std::uint64_t cookieOf(pid_t pid) const {
    for (const auto& c : connects_)
      if (c.task.tgid == static_cast<std::uint32_t>(pid) && c.dstPort == 25) return c.cookie;
    return 0;
  }
  // The cookie's bytes in sequence order, retransmissions dropped.
  std::string streamOf(std::uint64_t cookie) const {
    std::map<std::uint32_t, std::string> bySeq;
    for (const auto& s : segments_)
      if (s.cookie == cookie && !s.payload.empty())
        bySeq.emplace(s.seq, std::string(s.payload.begin(), s.payload.end()));
    std::string all;
    for (const auto& [seq, bytes] : bySeq) all += bytes;
    return all;
  }

  PrivateCgroup cgroup_;
  TestServer sink_;
  std::unique_ptr<KernelIdentity> id_;
  std::vector<SmtpSegment> segments_;
  std::vector<ConnectEvent> connects_;
};

void expectServerSideOnly(const std::string& stream) {
  EXPECT_EQ(stream.find("RCPT TO"), std::string::npos);
  EXPECT_EQ(stream.find("MAIL FROM"), std::string::npos);
  EXPECT_EQ(stream.find("EHLO bot"), std::string::npos);
  EXPECT_EQ(stream.find("secret body"), std::string::npos);
}

TEST_F(KernelSmtp, AQueuedSessionsRepliesArriveUnderItsCookieAndNothingTheProgramSent) {
  const pid_t bot = inChild([] { return smtpSession(kHarvest); });
  ASSERT_GT(bot, 0) << "the SMTP session failed";
  std::uint64_t cookie = 0;
  readUntil([&] { return (cookie = cookieOf(bot)) != 0 && closed(cookie); });
  ASSERT_NE(cookie, 0U) << "no connect event for the child";
  EXPECT_TRUE(closed(cookie)) << "the server's FIN ends the session";
  for (const auto& s : segments_) {
    EXPECT_EQ(s.cookie, cookie) << "only the child's socket is tapped, not the test's own";
    EXPECT_EQ(s.task.tgid, static_cast<std::uint32_t>(bot));
    EXPECT_EQ(s.server.family, AF_INET);
    EXPECT_EQ(s.server.addr[0], 127);
    EXPECT_EQ(s.server.addr[3], 25);
  }
  const auto stream = streamOf(cookie);
  EXPECT_EQ(stream.rfind("220 sink.test ESMTP\r\n", 0), 0U) << stream;
  EXPECT_NE(stream.find("221 2.0.0 Bye"), std::string::npos) << stream;
  expectServerSideOnly(stream);

  replies::SessionReplies session;
  session.feed(stream);
  EXPECT_EQ(session.counts().userUnknown, 2U);
  EXPECT_EQ(session.counts().accepted, 1U);
  EXPECT_EQ(session.counts().blocklisted, 1U);
  EXPECT_EQ(id_->stats().smtpLost, 0U);
}

TEST_F(KernelSmtp, AnApprovedSessionIsTappedToo) {
  auto self = exeKeyOfPath("/proc/self/exe");
  ASSERT_TRUE(self) << self.error().message;
  ASSERT_TRUE(id_->allow(self.value()));
  const pid_t client = inChild([] { return smtpSession(kHarvest); });
  ASSERT_GT(client, 0);
  std::uint64_t cookie = 0;
  readUntil([&] { return (cookie = cookieOf(client)) != 0 && closed(cookie); });
  ASSERT_NE(cookie, 0U);
  ASSERT_FALSE(connects_.empty());
  EXPECT_EQ(connects_.front().decision, ConnectEvent::Decision::Approved);
  replies::SessionReplies session;
  session.feed(streamOf(cookie));
  EXPECT_EQ(session.counts().userUnknown, 2U);
}

TEST_F(KernelSmtp, StopSmtpEndsTheCopyingForThatSocket) {
  // The child waits on a pipe between two halves of its session, so the test can stop the
  // tap in between, as guardd does when a session says STARTTLS.
  int go[2];
  ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(go[1]);
    if (!cgroup_.join()) ::_exit(1);
    const Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(25);
    ::inet_pton(AF_INET, kSink, &to.sin_addr);
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) ::_exit(1);
    std::string buffer;
    auto say = [&](const std::string& c) {
      const std::string line = c + "\r\n";
      return ::send(s.get(), line.data(), line.size(), MSG_NOSIGNAL) > 0 &&
             readReply(s.get(), buffer);
    };
    if (!readReply(s.get(), buffer) || !say("EHLO c") || !say("STARTTLS")) ::_exit(1);
    char c = 0;
    if (::read(go[0], &c, 1) != 1) ::_exit(1);
    ::_exit(say("RCPT TO:<unknown@victim.test>") && say("QUIT") ? 0 : 1);
  }
  ::close(go[0]);
  const Fd release(go[1]);
  std::uint64_t cookie = 0;
  readUntil([&] {
    cookie = cookieOf(pid);
    return cookie != 0 && streamOf(cookie).find("Ready to start TLS") != std::string::npos;
  });
  ASSERT_NE(cookie, 0U);
  id_->stopSmtp(cookie);
  const std::size_t before = segments_.size();
  ASSERT_EQ(::write(release.get(), "x", 1), 1);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // Something after the child's exit proves the tap ran meanwhile: another session.
  const pid_t other = inChild([] { return smtpSession({"QUIT"}); });
  ASSERT_GT(other, 0);
  readUntil([&] { return cookieOf(other) != 0 && closed(cookieOf(other)); });
  ASSERT_TRUE(closed(cookieOf(other)));
  for (std::size_t i = before; i < segments_.size(); ++i)
    EXPECT_NE(segments_[i].cookie, cookie) << "copied after stopSmtp";
  EXPECT_EQ(streamOf(cookie).find("User unknown"), std::string::npos);
}

}  // namespace
}  // namespace mailguard::kernel
