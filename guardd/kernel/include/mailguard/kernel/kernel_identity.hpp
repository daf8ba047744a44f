#pragma once
// Identity the kernel vouches for: BPF programs that know, at connect() time, which task
// calls and which file it executes (DESIGN.md "Identity the kernel vouches for"). The
// daemon sees them through this role interface; BpfKernelIdentity is the real one (a
// libbpf skeleton attached to a cgroup v2), FakeKernelIdentity the one for unit tests.
#include <array>
#include <chrono>
#include <compare>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::kernel {

// What the kernel knows a file by: its inode, the device (the kernel's encoding, major
// << 20 | minor, as in struct super_block's s_dev; not stat's st_dev) and its ctime. An
// in-place rewrite changes the ctime, so the key changes with the content's owner-visible
// history; only the kernel sets a ctime.
struct ExeKey {
  std::uint64_t ino = 0;
  std::uint32_t dev = 0;
  std::int64_t ctimeSec = 0;
  std::int64_t ctimeNsec = 0;
  friend auto operator<=>(const ExeKey&, const ExeKey&) = default;
};

// The kernel encoding of a stat(2) st_dev.
std::uint32_t kernelDev(std::uint64_t statDev);
// The key of the file an open fd refers to (fstat), or of a path (stat, following links).
Result<ExeKey> exeKeyOfFd(int fd);
Result<ExeKey> exeKeyOfPath(const std::filesystem::path& p);

// Why a task cannot vouch for itself, as the kernel saw it at connect().
enum Taint : std::uint32_t {
  kTaintUserMapping = 1U << 0,  // an executable mapping of a file not root-owned in a
                                // root-owned folder (LD_PRELOAD, dlopen of a user's file)
  kTaintTraced = 1U << 1,       // a tracer is attached (ptrace)
  kTaintMemAccess = 1U << 2,    // another process opened its memory for writing
                                // (/proc/PID/mem, process_vm_writev, ptrace attach)
};
std::string describeTaint(std::uint32_t taint);  // "LD_PRELOAD or a user's library, traced"

// A program's command line as exec gave it, recorded by the exec hook before the
// program ran: its argv area (mm->arg_start..arg_end, what /proc/PID/cmdline reads) can
// be rewritten later by the program itself (plain writable memory, or /proc/self/mem).
// `hash` is SipHash-2-4 under guardd's secret key of the area's first kArgvHashBound
// bytes (loaded as native 64-bit words); `length` the whole area's length.
inline constexpr std::size_t kArgvHashBound = 4096;
struct ArgvDigest {
  std::uint64_t hash = 0;
  std::uint32_t length = 0;
  friend bool operator==(const ArgvDigest&, const ArgvDigest&) = default;
};
using ArgvKey = std::array<std::uint64_t, 2>;
// The digest of an argv area's bytes (all of them: the length counts beyond the bound),
// the same the BPF program computes at exec. A length past 4 GiB counts as 0xffffffff.
ArgvDigest argvDigest(const ArgvKey& key, std::string_view argvArea);

// The task that called connect() on a socket that went to the queue.
struct Stamp {
  std::uint32_t tgid = 0;
  std::uint32_t tid = 0;
  std::uint32_t ppid = 0;  // the real parent's tgid
  std::uint32_t uid = 0;
  std::uint64_t startBoottimeNs = 0;  // task->start_boottime: /proc/PID/stat field 22 is
                                      // this in clock ticks
  ExeKey key;
  std::uint32_t taint = 0;
  // Its command line as exec gave it; nullopt when none was recorded (the process was
  // exec'd before the hook was attached, or the record was evicted from its LRU map).
  std::optional<ArgvDigest> argv;
};

// The refusals of one program by one user after the first in an interval of this length
// are counted in the kernel, not sent one by one; each interval's count is reported (as
// one ConnectEvent) at most two intervals after it began.
inline constexpr std::chrono::milliseconds kRefusalReportInterval{250};

struct Destination {
  int family = 0;                       // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> addr{};  // IPv4 in the first 4 bytes
  std::uint16_t port = 0;               // host order
  friend bool operator==(const Destination&, const Destination&) = default;
};

// An approved connect wakes the reader only when no approved connect did in this long
// (MG_APPROVED_WAKE_NS): the rest of a burst are read with the next wake-up or on the
// refusal timer's tick.
inline constexpr std::chrono::milliseconds kApprovedWakeInterval{50};

// One connect() to a mail port, as the hook saw it (every one: approved, denied, queued; a
// queued one wakes no reader, its SYN reaches guardd's queue: it is read with the next event
// or on the refusal timer's tick; approved ones wake it at most every kApprovedWakeInterval),
// or a count of refusals (decision Denied, cookie 0): the refusals of one program by one
// user in one interval after its first (which came as an event of its own), `task` the
// latest one (its tgid and ppid; the rest of the stamp is not kept per refusal), family/
// dst/dstPort the first destination of the interval and `moreDestinations` the next few
// distinct ones (at most kRefusalDestinations in all).
inline constexpr std::size_t kRefusalDestinations = 4;
struct ConnectEvent {
  enum class Decision : std::uint8_t { Approved, Denied, Queued };
  Decision decision = Decision::Queued;
  std::uint64_t cookie = 0;  // the socket cookie (SO_COOKIE, sock_diag's idiag_cookie)
  std::uint64_t count = 1;   // connects this event stands for
  Stamp task;
  int family = 0;                      // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> dst{};  // IPv4 in the first 4 bytes
  std::uint16_t dstPort = 0;           // host order
  std::vector<Destination> moreDestinations;
  // When the hook ran (CLOCK_MONOTONIC; zero for a count of refusals): an approved
  // connect's event may be read up to a timer tick later.
  std::chrono::nanoseconds monotonic{0};
};

// One packet to or from port 53 of a socket a task connected or sent to port 53 (the DNS
// tap): its payload as the kernel saw it, with the task that stamped the socket. A UDP
// payload is one DNS message; a TCP one is a segment, starting (when it starts a message)
// with the 2-byte length prefix. At most kDnsCaptureBytes of it are copied.
inline constexpr std::size_t kDnsCaptureBytes = 1024;
struct DnsPacket {
  std::uint64_t cookie = 0;
  Stamp task;             // who connected or sent to port 53 on this socket
  bool response = false;  // from port 53 (received), else to it (sent)
  bool tcp = false;
  std::uint32_t wireLength = 0;       // the payload's whole length
  std::vector<std::uint8_t> payload;  // its first kDnsCaptureBytes at most
};

// One TCP segment a mail server sent on port 25 to a socket the connect hook let through
// (approved or queued): the reply tap. Only the server's side is ever copied. `seq` is the
// segment's TCP sequence number (retransmissions repeat it; a lost event leaves a gap);
// `closed` marks the server's FIN or RST, after which nothing more comes for the cookie.
inline constexpr std::size_t kSmtpCaptureBytes = 1024;
struct SmtpSegment {
  std::uint64_t cookie = 0;
  Stamp task;  // who connected the socket
  Destination server;
  std::uint32_t seq = 0;
  std::uint32_t wireLength = 0;  // the payload's whole length
  bool closed = false;
  std::vector<std::uint8_t> payload;  // its first kSmtpCaptureBytes at most
};

struct KernelStats {
  std::uint64_t eventsLost = 0;       // ring buffer full: connects not reported (never blocked)
  std::uint64_t dnsLost = 0;          // DNS tap's ring buffer full: packets not copied (never held)
  std::uint64_t smtpLost = 0;         // reply tap's ring buffer full: segments not copied
  std::uint64_t approvedWakeups = 0;  // approved connects whose event woke the reader
  std::uint64_t mapBytes = 0;         // memory of the BPF maps, as the kernel accounts it
};

class KernelIdentity {
 public:
  virtual ~KernelIdentity() = default;

  // The mail ports the hooks act on (others are never touched).
  virtual Result<void> setMailPorts(const std::vector<std::uint16_t>& ports) = 0;
  // Approved keys: an untainted task executing one gets the mark bit on its socket, and
  // the table accepts its SYN before the queue rule. Denied keys: connect() fails with
  // EPERM. A key is in at most one of the two; setting one removes it from the other.
  virtual Result<void> allow(const ExeKey& key) = 0;
  virtual Result<void> deny(const ExeKey& key) = 0;
  virtual Result<void> forget(const ExeKey& key) = 0;  // neither: queued again
  virtual Result<void> forgetAll() = 0;                // after any change of policy

  // The task that connected the socket with this cookie, when it went to the queue.
  virtual std::optional<Stamp> stamp(std::uint64_t cookie) = 0;
  // The same by the socket's tuple, as its queued SYN shows it, with the socket's cookie:
  // one lookup, no sock_diag. nullopt when nothing is kept for it (no tuple hook, an entry
  // evicted, or no stamp): ask stamp() with the cookie sock_diag finds.
  struct TupleStamp {
    std::uint64_t cookie = 0;
    Stamp stamp;
  };
  virtual std::optional<TupleStamp> stampOf(const rules::ConnectionTuple& tuple) {
    (void)tuple;
    return std::nullopt;
  }

  // The connect events: fd for the event loop (EPOLLIN; readable for the ring buffer and
  // for the refusal-count timer), and a read of everything pending (non-blocking): ring
  // buffer events, then the refusal counts when their report is due.
  [[nodiscard]] virtual int eventsFd() const = 0;
  virtual Result<void> readEvents(const std::function<void(const ConnectEvent&)>& onEvent) = 0;
  [[nodiscard]] virtual KernelStats stats() const = 0;
  // Which taint hooks run ("lsm", "fentry" or "tracepoint"), for status and logs.
  [[nodiscard]] virtual std::string describe() const = 0;

  // The digest of an argv area read now (the bytes of /proc/PID/cmdline), under the key
  // the exec hook uses: equal to a stamp's `argv` when the command line is unchanged.
  [[nodiscard]] virtual ArgvDigest digestArgv(std::string_view argvArea) const = 0;
  // CLOCK_BOOTTIME (ns) when the exec hook began recording command lines: a process
  // started (forked) before then may have none recorded, one started after always has,
  // unless the record was evicted (its map is an LRU) or its parent had none.
  [[nodiscard]] virtual std::uint64_t argvRecordedSinceNs() const = 0;

  // The DNS tap: its packets go to `sink`, from readEvents() (the same fd); without a sink
  // they are read and dropped. Whether the tap's programs are attached (their attachment
  // failing does not stop the connect hooks: it is reported here and in dnsTapError()).
  virtual void setDnsSink(std::function<void(const DnsPacket&)> sink) { (void)sink; }
  [[nodiscard]] virtual bool dnsTapRunning() const { return false; }
  [[nodiscard]] virtual std::string dnsTapError() const { return "not built in"; }

  // The reply tap (attached with the DNS tap's skb programs): segments go to `sink` from
  // readEvents(). stopSmtp() ends the copying for a socket (its session turned to TLS, or
  // enough was read).
  virtual void setSmtpSink(std::function<void(const SmtpSegment&)> sink) { (void)sink; }
  virtual void stopSmtp(std::uint64_t cookie) { (void)cookie; }
};

struct BpfOptions {
  std::filesystem::path cgroup;  // a cgroup v2 directory: the programs attach here
  std::uint32_t markBit = 0;     // the one mark bit OR-ed into approved sockets' marks
  std::vector<std::uint16_t> mailPorts;
};

// The real one: loads and attaches the BPF programs (links owned here, not pinned: they
// go when guardd goes). An error names what is missing (BTF, BPF LSM not needed, cgroup
// v2, CAP_BPF/CAP_SYS_ADMIN) so guardd can say why it falls back to /proc attribution.
Result<std::unique_ptr<KernelIdentity>> openBpfKernelIdentity(const BpfOptions& options);

// The cgroup v2 mount point of this mount namespace (from /proc/self/mountinfo), if any.
std::optional<std::filesystem::path> cgroup2Root(
    const std::filesystem::path& mountinfo = "/proc/self/mountinfo");

// For unit tests of the daemon: maps as plain containers, events pushed by the test.
class FakeKernelIdentity final : public KernelIdentity {
 public:
  std::vector<std::uint16_t> ports;
  std::set<ExeKey> allowed, denied;
  std::map<std::uint64_t, Stamp> stamps;
  std::vector<ConnectEvent> pending;  // delivered by the next readEvents()
  KernelStats kernelStats;
  Result<void> setMailPorts(const std::vector<std::uint16_t>& p) override {
    ports = p;
    return {};
  }
  Result<void> allow(const ExeKey& k) override {
    denied.erase(k);
    allowed.insert(k);
    return {};
  }
  Result<void> deny(const ExeKey& k) override {
    allowed.erase(k);
    denied.insert(k);
    return {};
  }
  Result<void> forget(const ExeKey& k) override {
    allowed.erase(k);
    denied.erase(k);
    return {};
  }
  Result<void> forgetAll() override {
    allowed.clear();
    denied.clear();
    return {};
  }
  std::optional<Stamp> stamp(std::uint64_t cookie) override {
    const auto it = stamps.find(cookie);
    if (it == stamps.end()) return std::nullopt;
    return it->second;
  }
  [[nodiscard]] int eventsFd() const override { return -1; }
  Result<void> readEvents(const std::function<void(const ConnectEvent&)>& onEvent) override {
    auto events = std::move(pending);
    pending.clear();
    for (const auto& e : events) onEvent(e);
    auto dns = std::move(pendingDns);
    pendingDns.clear();
    if (dnsSink)
      for (const auto& p : dns) dnsSink(p);
    auto smtp = std::move(pendingSmtp);
    pendingSmtp.clear();
    if (smtpSink)
      for (const auto& s : smtp) smtpSink(s);
    return {};
  }
  [[nodiscard]] KernelStats stats() const override { return kernelStats; }
  [[nodiscard]] std::string describe() const override { return "fake"; }
  ArgvKey argvKey{0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
  // By default no process was started after recording began: a stamp without `argv`
  // casts no doubt (set it to test one that should have had a record).
  std::uint64_t recordedSinceNs = std::numeric_limits<std::uint64_t>::max();
  [[nodiscard]] ArgvDigest digestArgv(std::string_view argvArea) const override {
    return argvDigest(argvKey, argvArea);
  }
  [[nodiscard]] std::uint64_t argvRecordedSinceNs() const override { return recordedSinceNs; }
  // The DNS tap: packets pushed by the test go to the sink with the next readEvents().
  std::vector<DnsPacket> pendingDns;
  std::function<void(const DnsPacket&)> dnsSink;
  bool dnsRunning = true;
  void setDnsSink(std::function<void(const DnsPacket&)> sink) override {
    dnsSink = std::move(sink);
  }
  [[nodiscard]] bool dnsTapRunning() const override { return dnsRunning; }
  [[nodiscard]] std::string dnsTapError() const override { return {}; }
  // The reply tap: segments pushed by the test go to the sink with the next readEvents()
  // (after the DNS packets); stopped cookies are recorded.
  std::vector<SmtpSegment> pendingSmtp;
  std::function<void(const SmtpSegment&)> smtpSink;
  std::set<std::uint64_t> smtpStopped;
  void setSmtpSink(std::function<void(const SmtpSegment&)> sink) override {
    smtpSink = std::move(sink);
  }
  void stopSmtp(std::uint64_t cookie) override { smtpStopped.insert(cookie); }
};

}  // namespace mailguard::kernel
