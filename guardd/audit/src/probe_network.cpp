// The relay audit's vantage point: a thread of guardd in a network namespace of its
// own (unshare(CLONE_NEWNET) changes only the calling thread), joined to the host's
// namespace by a veth pair configured with iproute2's `ip` (run from the thread that
// needs it, so it acts on that thread's namespace).
//
// Why a thread and not `ip netns add`: the namespace has no name and no bind mount;
// only the thread holds it. When the audit ends, fails or guardd dies (even SIGKILL),
// the kernel frees the namespace and with it the veth end inside, which takes the
// host end along. ProbeNetwork's destructor still deletes the veth explicitly and
// joins the thread, so cleanup is immediate and checked, not left to the kernel.
//
// Addresses: the documentation ranges 198.51.100.77/.78 (RFC 5737) and
// 2001:db8:6d67::1/::2 (RFC 3849) as /32 and /128 point-to-point peers. A server that
// trusts "its own subnets" (postfix mynetworks_style = subnet) learns nothing wider
// than the host's /32 from them, so the probe is a stranger, as it must be.
//
// The LAN vantage: for each directly connected subnet of this namespace (getifaddrs),
// the probe also borrows a free address of that subnet (the first after this PC's own
// that the kernel's neighbour table does not know; see lanSubnets()), puts it on its veth
// end, and this namespace routes that one address (/32, /128: more specific than the
// subnet's connected route) into the veth for the audit's duration. The server then sees
// a client of its own LAN, as an infected device at home would be. Sockets bind their
// source address, so one veth carries every vantage.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <sstream>
#include <thread>
#include <variant>

#include "mailguard/audit/household.hpp"
#include "mailguard/audit/relay.hpp"
#include "mailguard/common/c_deleter.hpp"
#include "mailguard/common/fd.hpp"

extern char** environ;

namespace mailguard::audit {
namespace {

constexpr const char* kHostV4 = "198.51.100.77";
constexpr const char* kProbeV4 = "198.51.100.78";
constexpr const char* kHostV6 = "2001:db8:6d67::1";
constexpr const char* kProbeV6 = "2001:db8:6d67::2";
constexpr std::size_t kMaxReply = 64 * 1024;

Error auditError(const std::string& what, const std::string& reason) {
  return makeError("Failed to " + what + ": " + reason);
}

// Runs `ip ARGS...` (no shell) and waits; returns its output, and the error carries
// ip's own message. The child inherits the calling thread's network namespace.
Result<std::string> runIpOutput(const std::vector<std::string>& args) {
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) return auditError("run 'ip'", std::strerror(errno));
  Fd readEnd{pipeFds[0]};
  Fd writeEnd{pipeFds[1]};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), 2);
  std::vector<std::string> argv = {"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (std::string& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = ::posix_spawnp(&pid, "ip", &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  writeEnd.reset();  // so that the read below ends when ip exits
  std::string output;
  if (spawned == 0) {
    char buf[512];
    ssize_t n = 0;
    while ((n = ::read(readEnd.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
      if (n > 0) output.append(buf, static_cast<std::size_t>(n));
    }
  }
  readEnd.reset();
  std::string command = "ip";
  for (const std::string& a : args) command += " " + a;
  if (spawned != 0) {
    return auditError("run '" + command + "'",
                      std::string(std::strerror(spawned)) + " (iproute2 must be installed)");
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    while (!output.empty() && (output.back() == '\n' || output.back() == ' ')) output.pop_back();
    return auditError("run '" + command + "'", output.empty() ? "failed" : output);
  }
  return output;
}

Result<void> runIp(const std::vector<std::string>& args) {
  auto r = runIpOutput(args);
  if (!r) return r.error();
  return {};
}

// Addresses the kernel's neighbour table knows (`ip neigh show`: "ADDR dev IF lladdr ...
// STATE"); only FAILED ones (nothing answered ARP/NDP) are free.
std::set<std::string> neighbourAddresses() {
  std::set<std::string> out;
  auto listed = runIpOutput({"neigh", "show"});
  if (!listed) return out;
  std::istringstream lines(*listed);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string address;
    std::string word;
    std::string last;
    words >> address;
    while (words >> word) last = word;
    if (!address.empty() && last != "FAILED") out.insert(address);
  }
  return out;
}

int prefixOf(const sockaddr* mask) {
  if (mask == nullptr) return 0;
  const std::uint8_t* bytes = nullptr;
  std::size_t length = 0;
  if (mask->sa_family == AF_INET) {
    bytes = reinterpret_cast<const std::uint8_t*>(
        &reinterpret_cast<const sockaddr_in*>(mask)->sin_addr);
    length = 4;
  } else if (mask->sa_family == AF_INET6) {
    bytes = reinterpret_cast<const std::uint8_t*>(
        &reinterpret_cast<const sockaddr_in6*>(mask)->sin6_addr);
    length = 16;
  } else {
    return 0;
  }
  int bits = 0;
  for (std::size_t i = 0; i < length; ++i) bits += __builtin_popcount(bytes[i]);
  return bits;
}

// This namespace's interface addresses (getifaddrs(3)).
std::vector<InterfaceAddress> interfaceAddresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* raw = nullptr;
  if (::getifaddrs(&raw) != 0) return out;
  const std::unique_ptr<ifaddrs, CDeleter<::freeifaddrs>> list(raw);
  for (const ifaddrs* i = list.get(); i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr || (i->ifa_flags & IFF_UP) == 0) continue;
    const int family = i->ifa_addr->sa_family;
    if (family != AF_INET && family != AF_INET6) continue;
    InterfaceAddress a;
    a.interface = i->ifa_name != nullptr ? i->ifa_name : "";
    a.family = family;
    a.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
    if (family == AF_INET) {
      std::memcpy(a.address.data(), &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr,
                  4);
    } else {
      std::memcpy(a.address.data(), &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr,
                  16);
    }
    a.prefixLength = prefixOf(i->ifa_netmask);
    out.push_back(a);
  }
  return out;
}

std::uint64_t currentNetnsInode() {
  struct stat st {};
  if (::stat("/proc/thread-self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

// A thread in a fresh network namespace that runs one task at a time for its owner.
class ProbeThread {
 public:
  Result<void> start() {
    thread_ = std::thread([this] { loop(); });
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return started_; });
    if (!startError_.empty()) return auditError("create 'probe network namespace'", startError_);
    return {};
  }
  ~ProbeThread() {
    if (!thread_.joinable()) return;
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  Result<void> run(const std::function<Result<void>()>& task) {
    std::unique_lock lock(mutex_);
    task_ = &task;
    done_ = false;
    cv_.notify_all();
    cv_.wait(lock, [this] { return done_; });
    return result_;
  }
  [[nodiscard]] pid_t tid() const { return tid_; }
  [[nodiscard]] std::uint64_t netnsInode() const { return inode_; }

 private:
  void loop() {
    std::unique_lock lock(mutex_);
    // Needs CAP_SYS_ADMIN; affects this thread only (it shares no fs state that
    // CLONE_NEWNET would need to unshare).
    if (::unshare(CLONE_NEWNET) != 0) {
      startError_ = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
      started_ = true;
      cv_.notify_all();
      return;
    }
    tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
    inode_ = currentNetnsInode();
    started_ = true;
    cv_.notify_all();
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || task_ != nullptr; });
      if (task_ != nullptr) {
        const auto* task = task_;
        task_ = nullptr;
        lock.unlock();
        Result<void> r = (*task)();
        lock.lock();
        result_ = std::move(r);
        done_ = true;
        cv_.notify_all();
        continue;
      }
      if (stop_) return;
    }
  }

  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool started_ = false;
  bool stop_ = false;
  bool done_ = false;
  std::string startError_;
  const std::function<Result<void>()>* task_ = nullptr;
  Result<void> result_;
  pid_t tid_ = 0;
  std::uint64_t inode_ = 0;
};

std::atomic<unsigned> g_counter{0};

// The veth pair and the probe thread; the destructor removes both on every path.
class ProbeNetwork {
 public:
  ProbeNetwork() {
    const unsigned id = (static_cast<unsigned>(::getpid()) * 16 + g_counter++) & 0xffffffU;
    char buf[16];
    (void)std::snprintf(buf, sizeof buf, "mgph%06x", id);
    hostIf_ = buf;
    (void)std::snprintf(buf, sizeof buf, "mgpp%06x", id);
    probeIf_ = buf;
  }
  ProbeNetwork(const ProbeNetwork&) = delete;
  ProbeNetwork& operator=(const ProbeNetwork&) = delete;
  ~ProbeNetwork() {
    // Deleting one end of a veth deletes both. Errors are ignored: the thread's exit
    // frees the namespace, which removes the pair anyway.
    if (vethCreated_) (void)runIp({"link", "del", hostIf_});
  }

  Result<void> setUp(const AuditOptions& options, ProbeTrace* trace,
                     const std::vector<LanSubnet>& subnets) {
    auto stage = [&](std::string_view name) -> Result<void> {
      if (options.faultInjection) return options.faultInjection(name);
      return {};
    };
    if (auto r = thread_.start(); !r) return r;
    if (trace != nullptr) trace->namespaceInode = thread_.netnsInode();
    if (auto r = stage("namespace"); !r) return r;
    // `ip link add ... netns PID` moves the peer into the namespace of that task; the
    // probe thread's tid names its namespace.
    if (auto r = runIp({"link", "add", hostIf_, "type", "veth", "peer", "name", probeIf_, "netns",
                        std::to_string(thread_.tid())});
        !r) {
      return r;
    }
    vethCreated_ = true;
    if (trace != nullptr) trace->hostInterface = hostIf_;
    if (auto r = stage("veth"); !r) return r;
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"addr", "add", std::string(kHostV4) + "/32", "peer", std::string(kProbeV4) + "/32",
              "dev", hostIf_},
             {"-6", "addr", "add", std::string(kHostV6) + "/128", "dev", hostIf_, "nodad"},
             {"link", "set", hostIf_, "up"},
             {"-6", "route", "add", std::string(kProbeV6) + "/128", "dev", hostIf_}}) {
      if (auto r = runIp(args); !r) return r;
    }
    const std::function<Result<void>()> configureProbeSide = [this]() -> Result<void> {
      for (const auto& args : std::vector<std::vector<std::string>>{
               {"link", "set", "lo", "up"},
               {"addr", "add", std::string(kProbeV4) + "/32", "peer", std::string(kHostV4) + "/32",
                "dev", probeIf_},
               {"-6", "addr", "add", std::string(kProbeV6) + "/128", "dev", probeIf_, "nodad"},
               {"link", "set", probeIf_, "up"},
               {"-6", "route", "add", std::string(kHostV6) + "/128", "dev", probeIf_}}) {
        if (auto r = runIp(args); !r) return r;
      }
      return {};
    };
    if (auto r = thread_.run(configureProbeSide); !r) return r;
    for (const LanSubnet& lan : subnets) {
      const bool v4 = lan.family == AF_INET;
      const std::string host = lan.probeAddress + (v4 ? "/32" : "/128");
      std::vector<std::string> route = {"route", "add", host, "dev", hostIf_};
      if (!v4) route.insert(route.begin(), "-6");
      if (auto r = runIp(route); !r) return r;
      const std::function<Result<void>()> borrow = [&]() -> Result<void> {
        std::vector<std::string> args = {"addr", "add", host, "dev", probeIf_};
        if (!v4) {
          args.insert(args.begin(), "-6");
          args.emplace_back("nodad");
        }
        return runIp(args);
      };
      if (auto r = thread_.run(borrow); !r) return r;
    }
    return stage("configured");
  }

  // Sends traffic for a specific listener address through the veth too.
  Result<void> routeTo(int family, const std::string& address) {
    const std::function<Result<void>()> task = [&]() -> Result<void> {
      if (family == AF_INET) {
        return runIp({"route", "replace", address + "/32", "dev", probeIf_, "src", kProbeV4});
      }
      return runIp({"-6", "route", "replace", address + "/128", "dev", probeIf_, "src", kProbeV6});
    };
    return thread_.run(task);
  }

  Result<void> inProbeNamespace(const std::function<Result<void>()>& task) {
    return thread_.run(task);
  }

 private:
  ProbeThread thread_;  // destroyed after the destructor body deleted the veth
  std::string hostIf_;
  std::string probeIf_;
  bool vethCreated_ = false;
};

class TcpSmtpConnection final : public SmtpConnection {
 public:
  TcpSmtpConnection(Fd fd, std::chrono::milliseconds timeout)
      : fd_(std::move(fd)), timeout_(timeout) {}
  ~TcpSmtpConnection() override = default;
  TcpSmtpConnection(const TcpSmtpConnection&) = delete;
  TcpSmtpConnection& operator=(const TcpSmtpConnection&) = delete;

  Result<std::string> readReply() override {
    std::string reply;
    for (;;) {
      auto line = readLine();
      if (!line) return line.error();
      if (!reply.empty()) reply += "\n";
      reply += *line;
      // "250-..." continues, "250 ..." (or a bare code) ends the reply.
      if (line->size() < 4 || (*line)[3] != '-') return reply;
      if (reply.size() > kMaxReply) return makeError("reply too long");
    }
  }
  Result<void> sendLine(std::string_view line) override {
    std::string out(line);
    out += "\r\n";
    std::size_t sent = 0;
    while (sent < out.size()) {
      const ssize_t n = ::send(fd_.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return makeError(std::string("send: ") + std::strerror(errno));
      sent += static_cast<std::size_t>(n);
    }
    return {};
  }

 private:
  Result<std::string> readLine() {
    for (;;) {
      const auto eol = buffer_.find('\n');
      if (eol != std::string::npos) {
        std::string line = buffer_.substr(0, eol);
        buffer_.erase(0, eol + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buffer_.size() > kMaxReply) return makeError("reply line too long");
      pollfd p{fd_.get(), POLLIN, 0};
      const int ready = ::poll(&p, 1, static_cast<int>(timeout_.count()));
      if (ready < 0 && errno == EINTR) continue;
      if (ready == 0)
        return makeError("no reply within " + std::to_string(timeout_.count()) + " ms");
      char buf[4096];
      const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return makeError(std::string("receive: ") + std::strerror(errno));
      if (n == 0) return makeError("the server closed the connection");
      buffer_.append(buf, static_cast<std::size_t>(n));
    }
  }
  Fd fd_;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
};

struct ConnectFailure {
  int err = 0;
};

// Non-blocking connect with a deadline. Returns the fd, or the errno (ETIMEDOUT when
// nothing answered: the SYN was dropped).
socklen_t socketAddress(int family, const std::string& address, std::uint16_t port,
                        sockaddr_storage& ss) {
  ss = {};
  if (family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    (void)::inet_pton(AF_INET, address.c_str(), &sin->sin_addr);
    return sizeof(sockaddr_in);
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  (void)::inet_pton(AF_INET6, address.c_str(), &sin6->sin6_addr);
  return sizeof(sockaddr_in6);
}

std::variant<Fd, ConnectFailure> connectTo(int family, const std::string& source,
                                           const std::string& address, std::uint16_t port,
                                           std::chrono::milliseconds timeout,
                                           std::uint32_t mark = 0) {
  sockaddr_storage ss{};
  const socklen_t len = socketAddress(family, address, port, ss);
  Fd fd{::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)};
  if (!fd) return ConnectFailure{errno};
  if (mark != 0 && ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0) {
    return ConnectFailure{errno};
  }
  // The vantage is the source address: bound explicitly, not left to route selection.
  sockaddr_storage from{};
  const socklen_t fromLen = socketAddress(family, source, 0, from);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&from), fromLen) != 0) {
    return ConnectFailure{errno};
  }
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS) {
    return ConnectFailure{errno};
  }
  pollfd p{fd.get(), POLLOUT, 0};
  int ready = 0;
  do {
    ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  int err = ETIMEDOUT;
  if (ready > 0) {
    socklen_t errLen = sizeof err;
    (void)::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &errLen);
  }
  if (err != 0) return ConnectFailure{err};
  const int flags = ::fcntl(fd.get(), F_GETFL);
  (void)::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}

// One relay dialogue from `source` to `target`, as a vantage sees it.
struct Outcome {
  RelayVerdict relay = RelayVerdict::Unreachable;
  std::vector<std::string> accepted;
  DialogueResult dialogue;
  int connectErrno = 0;
  bool transient = false;
};

Outcome probeOnce(int family, const std::string& source, const std::string& target,
                  std::uint16_t port, const AuditOptions& options) {
  Outcome out;
  auto connected =
      connectTo(family, source, target, port, options.connectTimeout, options.socketMark);
  if (const auto* failure = std::get_if<ConnectFailure>(&connected)) {
    out.connectErrno = failure->err;
    out.transient = isTransientFailure(failure->err, out.dialogue);
    return out;
  }
  TcpSmtpConnection conn(std::get<Fd>(std::move(connected)), options.replyTimeout);
  const std::function<std::unique_ptr<SmtpConnection>()> reconnect =
      [&]() -> std::unique_ptr<SmtpConnection> {
    auto again =
        connectTo(family, source, target, port, options.connectTimeout, options.socketMark);
    if (!std::holds_alternative<Fd>(again)) return nullptr;
    return std::make_unique<TcpSmtpConnection>(std::get<Fd>(std::move(again)),
                                               options.replyTimeout);
  };
  out.dialogue = runRelayDialogue(conn, reconnect, options.ownDomain);
  out.transient = isTransientFailure(0, out.dialogue);
  // No banner: nothing was learnt about relaying, but the port took the connection, so
  // other computers reach it (an exposed listener, whatever it speaks).
  out.relay = RelayVerdict::Closed;
  if (out.transient) return out;
  for (const VariantResult& v : out.dialogue.variants) {
    if (v.accepted) out.accepted.push_back(v.name);
  }
  out.relay = out.accepted.empty() ? RelayVerdict::Closed : RelayVerdict::Open;
  return out;
}

// A server restarting (refused, or closed before its banner) is retried with backoff
// before it counts as gone; runs on the probe thread, which has nothing else to do.
Outcome probe(int family, const std::string& source, const std::string& target, std::uint16_t port,
              const AuditOptions& options) {
  Outcome out = probeOnce(family, source, target, port, options);
  for (const auto wait : retryBackoff()) {
    if (!out.transient) break;
    std::this_thread::sleep_for(wait);
    out = probeOnce(family, source, target, port, options);
  }
  return out;
}

std::string failureReason(const Outcome& o, const std::string& target) {
  if (o.connectErrno == ETIMEDOUT)
    return "no answer from " + target + " (something drops the connection)";
  if (o.connectErrno != 0) {
    return "connecting to " + target + " failed: " + std::strerror(o.connectErrno);
  }
  return "the server at " + target + " sent no greeting: " + o.dialogue.error.value_or("?");
}

void addAuth(ListenerAudit& a, const DialogueResult& d) {
  for (auto& m : authMechanisms(d.ehlo)) {
    if (std::find(a.authInClear.begin(), a.authInClear.end(), m) == a.authInClear.end()) {
      a.authInClear.push_back(std::move(m));
    }
  }
}

// Probes one listener from inside the probe namespace: as a stranger, then from each
// LAN subnet of its family.
void probeListener(ListenerAudit& a, const std::string& target, const AuditOptions& options,
                   const std::vector<std::pair<LanSubnet, std::string>>& lanTargets) {
  a.probedAddress = target;
  const int family = a.listener.family;
  const std::string stranger = family == AF_INET ? kProbeV4 : kProbeV6;
  Outcome o = probe(family, stranger, target, a.listener.port, options);
  a.dialogue = o.dialogue;
  a.relay = o.relay;
  a.accepted = o.accepted;
  a.transientFailure = o.transient;
  if (o.relay == RelayVerdict::Unreachable) {
    const bool dropped = o.connectErrno == ETIMEDOUT;
    const rules::ServicePort port{rules::Protocol::Tcp, a.listener.port};
    a.blockedByFirewall =
        dropped && options.firewall.enabled && !rules::allowsFromAnywhere(options.firewall, port);
    if (a.blockedByFirewall) {
      a.reason = "the host firewall drops connections from other computers to port " +
                 std::to_string(a.listener.port);
    } else {
      a.reason = failureReason(o, target);
      if (o.transient) a.reason += " (still, after retrying for a few seconds)";
    }
  } else {
    addAuth(a, o.dialogue);
    a.reason = "reached from " + stranger + " (a stranger's address) at " + target;
    if (a.dialogue.error && a.accepted.empty()) {
      a.reason += "; the dialogue ended early: " + *a.dialogue.error;
    }
  }
  for (const auto& [subnet, lanTarget] : lanTargets) {
    LanVantage v;
    v.subnet = subnet.cidr;
    v.probeAddress = subnet.probeAddress;
    v.target = lanTarget;
    Outcome lan = probe(subnet.family, subnet.probeAddress, lanTarget, a.listener.port, options);
    v.relay = lan.relay;
    v.transient = lan.transient;
    v.accepted = lan.accepted;
    v.dialogue = lan.dialogue;
    if (lan.relay == RelayVerdict::Unreachable) {
      v.reason = failureReason(lan, lanTarget);
    } else {
      addAuth(a, lan.dialogue);
      v.reason = "reached from " + subnet.probeAddress + " (a host on your LAN " + subnet.cidr +
                 ") at " + lanTarget;
    }
    a.lan.push_back(std::move(v));
  }
}

// A dual-stack socket on [::] (IPV6_V6ONLY off, as postfix and exim open them when
// they have no IPv4 socket of their own) takes IPv4 connections too: its LAN probe
// covers the IPv4 subnets, unless an IPv4 socket on the port (which the kernel prefers)
// answers them.
bool reachesIpv4Too(const MailListener& l, const std::vector<MailListener>& all,
                    const LanSubnet& subnet) {
  if (subnet.family != AF_INET || l.family != AF_INET6 || !l.isWildcard()) return false;
  return std::none_of(all.begin(), all.end(), [&](const MailListener& other) {
    return other.family == AF_INET && other.port == l.port;
  });
}

}  // namespace

Result<std::vector<ListenerAudit>> auditRelays(const std::vector<MailListener>& listeners,
                                               const AuditOptions& options, ProbeTrace* trace) {
  std::vector<ListenerAudit> out;
  bool anyExternal = false;
  for (const MailListener& l : listeners) {
    ListenerAudit a;
    a.listener = l;
    if (l.exposure == Exposure::Loopback) {
      a.relay = RelayVerdict::Unreachable;
      a.reason = "listens on loopback only: other computers cannot connect";
    } else {
      anyExternal = true;
    }
    out.push_back(std::move(a));
  }
  if (!anyExternal) return out;

  // Read before the probe veth exists, from this (guardd's) namespace.
  std::vector<LanSubnet> subnets;
  if (options.lanVantage) subnets = lanSubnets(interfaceAddresses(), neighbourAddresses());

  ProbeNetwork network;
  if (auto r = network.setUp(options, trace, subnets); !r) return r.error();
  bool first = true;
  for (ListenerAudit& a : out) {
    if (a.listener.exposure == Exposure::Loopback) continue;
    std::string target;
    if (a.listener.isWildcard()) {
      target = a.listener.family == AF_INET ? kHostV4 : kHostV6;
    } else {
      target = a.listener.addressText();
      if (auto r = network.routeTo(a.listener.family, target); !r) return r.error();
    }
    // A wildcard listener is reached at this PC's address in the subnet, as a LAN host
    // would; one bound to an address at that address.
    std::vector<std::pair<LanSubnet, std::string>> lanTargets;
    for (const LanSubnet& subnet : subnets) {
      if (subnet.family != a.listener.family && !reachesIpv4Too(a.listener, listeners, subnet)) {
        continue;
      }
      std::string lanTarget = a.listener.isWildcard() ? subnet.hostAddress : target;
      if (auto r = network.routeTo(subnet.family, lanTarget); !r) return r.error();
      lanTargets.emplace_back(subnet, std::move(lanTarget));
    }
    if (first && options.faultInjection) {
      if (auto r = options.faultInjection("probing"); !r) return r.error();
    }
    first = false;
    const std::function<Result<void>()> task = [&]() -> Result<void> {
      probeListener(a, target, options, lanTargets);
      return {};
    };
    if (auto r = network.inProbeNamespace(task); !r) return r.error();
  }
  return out;
}

std::vector<InterfaceAddress> ownInterfaceAddresses() { return interfaceAddresses(); }

HouseholdHostAudit auditHouseholdHost(const std::string& subnet, const std::string& address,
                                      std::uint16_t port, const AuditOptions& options) {
  HouseholdHostAudit h;
  h.subnet = subnet;
  h.address = address;
  h.port = port;
  if (port == 465) {
    h.relay = RelayVerdict::Unreachable;
    h.reason = "port 465 speaks TLS from the first byte; the audit does not speak TLS";
    return h;
  }
  // Source 0.0.0.0: the kernel picks this PC's address on the subnet, as it does for
  // any program here.
  const Outcome o = probe(AF_INET, "0.0.0.0", address, port, options);
  h.relay = o.relay;
  h.accepted = o.accepted;
  h.dialogue = o.dialogue;
  if (o.relay == RelayVerdict::Unreachable) {
    h.reason = failureReason(o, address);
    return h;
  }
  h.authInClear = authMechanisms(o.dialogue.ehlo);
  h.reason = "reached from this computer (a host on your LAN " + subnet + ") at " + address;
  if (o.dialogue.error && o.accepted.empty()) {
    h.reason += "; the dialogue ended early: " + *o.dialogue.error;
  }
  return h;
}

}  // namespace mailguard::audit
