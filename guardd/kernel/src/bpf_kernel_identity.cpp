// BpfKernelIdentity: the libbpf skeleton of bpf/mailguard.bpf.c, loaded, attached to a
// cgroup v2, and its maps driven from guardd.
//
// The links are owned by the skeleton (destroyed with it) and never pinned: when guardd
// exits or dies the kernel drops them, nothing marks mail sockets any more, and every
// mail connect falls to the nft queue rule, which has no reader then: fail-closed.
#include <fcntl.h>
#include <linux/magic.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/common/c_deleter.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard_bpf.h"

extern "C" {
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "mailguard.skel.h"
}

namespace mailguard::kernel {
namespace {

static_assert(sizeof(mg_exe_key) == 32);
static_assert(sizeof(mg_argv) == 16);
static_assert(sizeof(mg_stamp) == 80);
static_assert(sizeof(mg_event) == 120);
static_assert(MG_ARGV_HASH_BOUND == kArgvHashBound);
static_assert(MG_APPROVED_WAKE_NS == std::chrono::nanoseconds(kApprovedWakeInterval).count());
static_assert(sizeof(mg_dns_event) == 8 + 80 + 8 + MG_DNS_CAPTURE);
static_assert(MG_DNS_CAPTURE == kDnsCaptureBytes);
static_assert(sizeof(mg_smtp_event) == 8 + 80 + 16 + 16 + MG_SMTP_CAPTURE);
static_assert(MG_SMTP_CAPTURE == kSmtpCaptureBytes);
static_assert(sizeof(mg_refusal_key) == 40 && sizeof(mg_dest) == 24 &&
              sizeof(mg_refusal) == 24 + MG_REFUSAL_DSTS * 24);
static_assert(MG_REFUSAL_DSTS == kRefusalDestinations);
static_assert(MG_TAINT_USER_MAPPING == kTaintUserMapping && MG_TAINT_TRACED == kTaintTraced &&
              MG_TAINT_MEM_ACCESS == kTaintMemAccess);
static_assert(MG_DECISION_APPROVED == static_cast<int>(ConnectEvent::Decision::Approved) &&
              MG_DECISION_DENIED == static_cast<int>(ConnectEvent::Decision::Denied) &&
              MG_DECISION_QUEUED == static_cast<int>(ConnectEvent::Decision::Queued));

constexpr const char* kBtfPath = "/sys/kernel/btf/vmlinux";
constexpr std::size_t kMaxMailPorts = 64;  // the mail_ports map's max_entries

// libbpf prints through one global callback. Quiet by default; its warnings are kept (the
// tail only) so an error can quote the verifier's reason. MAILGUARD_BPF_DEBUG=1 prints
// everything to stderr instead.
std::mutex g_logMutex;
std::string g_log;

int libbpfPrint(enum libbpf_print_level level, const char* format, va_list args) {
  static const bool debug = std::getenv("MAILGUARD_BPF_DEBUG") != nullptr;
  if (debug) return std::vfprintf(stderr, format, args);
  if (level == LIBBPF_DEBUG) return 0;
  std::array<char, 1024> line{};
  const int n = std::vsnprintf(line.data(), line.size(), format, args);
  const std::lock_guard lock(g_logMutex);
  g_log += line.data();
  constexpr std::size_t kKeep = 2048;
  if (g_log.size() > kKeep) g_log.erase(0, g_log.size() - kKeep);
  return n;
}

std::string takeLibbpfLog() {
  const std::lock_guard lock(g_logMutex);
  std::string out;
  out.swap(g_log);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? out : " (libbpf: " + out + ")";
}

Error bpfError(const std::string& what, int err) {
  err = std::abs(err);
  std::string msg = "Failed to " + what + ": " + std::strerror(err);
  if (err == EPERM || err == EACCES)
    msg += " (needs root: CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN)";
  return systemError(msg + takeLibbpfLog(), err);
}

mg_exe_key toBpf(const ExeKey& k) {
  mg_exe_key b{};
  b.ino = k.ino;
  b.dev = k.dev;
  b.ctime_sec = k.ctimeSec;
  b.ctime_nsec = k.ctimeNsec;
  return b;
}

ExeKey fromBpf(const mg_exe_key& b) { return ExeKey{b.ino, b.dev, b.ctime_sec, b.ctime_nsec}; }

Stamp fromBpf(const mg_stamp& s) {
  Stamp out;
  out.tgid = s.tgid;
  out.tid = s.tid;
  out.ppid = s.ppid;
  out.uid = s.uid;
  out.startBoottimeNs = s.start_boottime;
  out.key = fromBpf(s.key);
  out.taint = s.taint;
  if (s.argv.known != 0) out.argv = ArgvDigest{s.argv.hash, s.argv.len};
  return out;
}

using Skeleton = std::unique_ptr<mailguard_bpf, CDeleter<mailguard_bpf__destroy>>;
using RingBuffer = std::unique_ptr<ring_buffer, CDeleter<ring_buffer__free>>;

enum class TaintFlavour { Lsm, Fentry, Tracepoint };

const char* nameOf(TaintFlavour f) {
  switch (f) {
    case TaintFlavour::Lsm:
      return "lsm";
    case TaintFlavour::Fentry:
      return "fentry";
    case TaintFlavour::Tracepoint:
      return "tracepoint";
  }
  return "?";
}

// Opens and loads the skeleton with one flavour of taint hooks, attaches them and the
// address-space lifetime hooks. The connect hooks are loaded but not attached yet.
Result<Skeleton> loadWithTaintHooks(TaintFlavour flavour, const ArgvKey& argvKey) {
  Skeleton skel(mailguard_bpf__open());
  if (!skel) return bpfError("open the BPF object", errno);
  // Read-only data, frozen at load: not even guardd can change the key afterwards.
  skel->rodata->argv_key[0] = argvKey[0];
  skel->rodata->argv_key[1] = argvKey[1];
  const bool lsm = flavour == TaintFlavour::Lsm;
  const bool fentry = flavour == TaintFlavour::Fentry;
  const bool tracepoint = flavour == TaintFlavour::Tracepoint;
  auto& p = skel->progs;
  for (bpf_program* prog :
       {p.lsm_mmap_file, p.lsm_file_mprotect, p.lsm_ptrace_access_check, p.lsm_ptrace_traceme})
    bpf_program__set_autoload(prog, lsm);
  for (bpf_program* prog : {p.fentry_mmap_file, p.fentry_file_mprotect,
                            p.fentry_ptrace_access_check, p.fentry_ptrace_traceme})
    bpf_program__set_autoload(prog, fentry);
#if MAILGUARD_BPF_HAS_SYS_ENTER
  bpf_program__set_autoload(p.tp_sys_enter, tracepoint);
#else
  if (tracepoint) return makeError("no tracepoint taint hooks for this architecture");
#endif
  if (const int rc = mailguard_bpf__load(skel.get()); rc != 0)
    return bpfError(std::string("load the BPF programs (") + nameOf(flavour) + " taint hooks)", rc);

  auto& l = skel->links;
  const auto attach = [](bpf_program* prog, bpf_link*& link) -> Result<void> {
    link = bpf_program__attach(prog);
    if (link == nullptr) return bpfError(std::string("attach ") + bpf_program__name(prog), errno);
    return {};
  };
  // Links stored in skel->links are destroyed with the skeleton.
  std::vector<std::pair<bpf_program*, bpf_link**>> hooks = {{p.fork_taint, &l.fork_taint},
                                                            {p.exec_taint, &l.exec_taint}};
  if (lsm) {
    hooks.insert(hooks.end(), {{p.lsm_mmap_file, &l.lsm_mmap_file},
                               {p.lsm_file_mprotect, &l.lsm_file_mprotect},
                               {p.lsm_ptrace_access_check, &l.lsm_ptrace_access_check},
                               {p.lsm_ptrace_traceme, &l.lsm_ptrace_traceme}});
  } else if (fentry) {
    hooks.insert(hooks.end(), {{p.fentry_mmap_file, &l.fentry_mmap_file},
                               {p.fentry_file_mprotect, &l.fentry_file_mprotect},
                               {p.fentry_ptrace_access_check, &l.fentry_ptrace_access_check},
                               {p.fentry_ptrace_traceme, &l.fentry_ptrace_traceme}});
  }
#if MAILGUARD_BPF_HAS_SYS_ENTER
  if (tracepoint) hooks.emplace_back(p.tp_sys_enter, &l.tp_sys_enter);
#endif
  for (auto& [prog, link] : hooks)
    if (auto r = attach(prog, *link); !r) return r.error();
  return skel;
}

std::uint64_t sumPerCpu(int mapFd, std::uint32_t index) {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return 0;
  std::vector<std::uint64_t> values(static_cast<std::size_t>(cpus));
  if (bpf_map_lookup_elem(mapFd, &index, values.data()) != 0) return 0;
  std::uint64_t sum = 0;
  for (const auto v : values) sum += v;
  return sum;
}

// An attached BPF LSM program runs only when the kernel's active LSM list has "bpf"
// (CONFIG_LSM or lsm= on the command line); attaching succeeds either way. So prove it:
// map a file executable and see the hook count it.
bool taintHooksRun(const mailguard_bpf& skel) {
  const int counters = bpf_map__fd(skel.maps.counters);
  const std::uint64_t before = sumPerCpu(counters, MG_COUNTER_TAINT_HOOK_CALLS);
  const Fd self(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!self) return false;
  void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, self.get(), 0);
  if (m != MAP_FAILED) ::munmap(m, 4096);
  // The hook runs before the mapping is made, so even a refused mapping counts.
  return sumPerCpu(counters, MG_COUNTER_TAINT_HOOK_CALLS) > before;
}

std::uint64_t memlockOf(int fd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
  std::string key;
  std::uint64_t value = 0;
  while (in >> key) {
    if (key == "memlock:") {
      in >> value;
      return value;
    }
  }
  return 0;
}

class BpfKernelIdentity final : public KernelIdentity {
 public:
  BpfKernelIdentity(Skeleton skel, std::string flavour, const ArgvKey& argvKey,
                    std::uint64_t argvSinceNs)
      : skel_(std::move(skel)),
        flavour_(std::move(flavour)),
        argvKey_(argvKey),
        argvSinceNs_(argvSinceNs) {}

  Result<void> init(const BpfOptions& options) {
    const std::uint32_t zero = 0;
    config_.mark_bit = options.markBit;
    config_.generation = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mg_config), &zero, &config_, BPF_ANY) != 0)
      return bpfError("set the mark bit in the BPF config map", errno);
    if (auto r = setMailPorts(options.mailPorts); !r) return r;

    ring_.reset(ring_buffer__new(bpf_map__fd(skel_->maps.events), &BpfKernelIdentity::onSample,
                                 this, nullptr));
    if (!ring_) return bpfError("set up the BPF event ring buffer", errno);
    // The DNS tap's ring in the same manager: one epoll fd, one consume for both.
    if (const int rc = ring_buffer__add(ring_.get(), bpf_map__fd(skel_->maps.dns_events),
                                        &BpfKernelIdentity::onDnsSample, this);
        rc != 0)
      return bpfError("set up the DNS tap's ring buffer", rc);
    if (const int rc = ring_buffer__add(ring_.get(), bpf_map__fd(skel_->maps.smtp_events),
                                        &BpfKernelIdentity::onSmtpSample, this);
        rc != 0)
      return bpfError("set up the reply tap's ring buffer", rc);
    // One fd for the event loop: the ring buffer's own epoll fd and the timer of the
    // refusal counts, both level-triggered, so this one is readable while either is.
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    timer_ = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!epoll_ || !timer_) return systemError("Failed to create the BPF event fds", errno);
    for (const int fd : {ring_buffer__epoll_fd(ring_.get()), timer_.get()}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
        return systemError("Failed to watch the BPF event fds", errno);
    }
    // Always ticking (guardd wakes every 100 ms anyway): a refusal whose first event found
    // the ring buffer full is counted in the map all the same, and reported on time.
    constexpr auto kNs =
        std::chrono::duration_cast<std::chrono::nanoseconds>(kRefusalReportInterval).count();
    itimerspec tick{};
    tick.it_value.tv_sec = kNs / 1'000'000'000;
    tick.it_value.tv_nsec = kNs % 1'000'000'000;
    tick.it_interval = tick.it_value;
    if (::timerfd_settime(timer_.get(), 0, &tick, nullptr) != 0)
      return systemError("Failed to start the refusal report timer", errno);

    // Attach last: from here on connects are decided, with ports and mark already set.
    const Fd cgroup(::open(options.cgroup.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cgroup) {
      const int err = errno;
      return systemError(
          "Failed to open cgroup '" + options.cgroup.string() + "': " + std::strerror(err), err);
    }
    struct statfs fs {};
    if (::fstatfs(cgroup.get(), &fs) != 0 || fs.f_type != CGROUP2_SUPER_MAGIC)
      return invalidArgument("'" + options.cgroup.string() +
                             "' is not a cgroup v2 directory (no cgroup v2 mounted there; "
                             "mount one with: mount -t cgroup2 none <dir>)");
    // A link-based cgroup attachment always runs beside others (BPF_F_ALLOW_MULTI
    // semantics): systemd's own programs on the same cgroup keep running. The link holds
    // the cgroup, so the fd can go.
    auto& p = skel_->progs;
    auto& l = skel_->links;
    for (auto [prog, link] :
         {std::pair{p.connect4, &l.connect4}, std::pair{p.connect6, &l.connect6}}) {
      *link = bpf_program__attach_cgroup(prog, cgroup.get());
      if (*link == nullptr)
        return bpfError("attach " + std::string(bpf_program__name(prog)) + " to cgroup '" +
                            options.cgroup.string() + "'",
                        errno);
    }
    // The DNS tap is evidence, not enforcement: when it cannot attach, the connect hooks
    // stay and dnsTapError() says why (guardd then treats DNS as unseen).
    for (auto [prog, link] :
         {std::pair{p.dns_sendmsg4, &l.dns_sendmsg4}, std::pair{p.dns_sendmsg6, &l.dns_sendmsg6},
          std::pair{p.dns_egress, &l.dns_egress}, std::pair{p.dns_ingress, &l.dns_ingress}}) {
      *link = bpf_program__attach_cgroup(prog, cgroup.get());
      if (*link == nullptr) {
        dnsError_ = bpfError("attach " + std::string(bpf_program__name(prog)) + " to cgroup '" +
                                 options.cgroup.string() + "'",
                             errno)
                        .message;
        break;
      }
    }
    if (dnsError_.empty()) dnsRunning_ = true;
    // The stamp by tuple only spares guardd a sock_diag round trip: without it, stampOf()
    // finds nothing and attribution asks sock_diag as before.
    l.tuple_stamp = bpf_program__attach_cgroup(p.tuple_stamp, cgroup.get());
    tupleHook_ = l.tuple_stamp != nullptr;
    return {};
  }

  void setDnsSink(std::function<void(const DnsPacket&)> sink) override {
    dnsSink_ = std::move(sink);
  }
  [[nodiscard]] bool dnsTapRunning() const override { return dnsRunning_; }
  [[nodiscard]] std::string dnsTapError() const override { return dnsError_; }
  void setSmtpSink(std::function<void(const SmtpSegment&)> sink) override {
    smtpSink_ = std::move(sink);
  }
  void stopSmtp(std::uint64_t cookie) override {
    // ENOENT: the server's FIN already ended it, or the LRU map evicted it.
    (void)bpf_map_delete_elem(bpf_map__fd(skel_->maps.smtp_socks), &cookie);
  }

  Result<void> setMailPorts(const std::vector<std::uint16_t>& ports) override {
    std::vector<std::uint16_t> want = ports;
    std::sort(want.begin(), want.end());
    want.erase(std::unique(want.begin(), want.end()), want.end());
    if (want.size() > kMaxMailPorts)
      return invalidArgument("Failed to set the mail ports: at most " +
                             std::to_string(kMaxMailPorts) + " ports, got " +
                             std::to_string(want.size()));
    const int fd = bpf_map__fd(skel_->maps.mail_ports);
    // Add the new ones first, then drop the old: no moment with neither set in force.
    const std::uint8_t one = 1;
    for (const std::uint16_t port : want)
      if (bpf_map_update_elem(fd, &port, &one, BPF_ANY) != 0)
        return bpfError("add mail port " + std::to_string(port), errno);
    std::vector<std::uint16_t> stale;
    std::uint16_t key = 0;
    const std::uint16_t* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &key) == 0) {
      if (!std::binary_search(want.begin(), want.end(), key)) stale.push_back(key);
      prev = &key;
    }
    for (const std::uint16_t port : stale)
      if (bpf_map_delete_elem(fd, &port) != 0 && errno != ENOENT)
        return bpfError("remove mail port " + std::to_string(port), errno);
    return {};
  }

  // A key is in at most one map. The order of each pair of updates keeps every moment
  // safe: a denial is in force before the approval goes, and an approval arrives only
  // after the denial is gone (in between, the key is queued).
  Result<void> allow(const ExeKey& key) override {
    if (auto r = remove(skel_->maps.denied, key, "denied"); !r) return r;
    return insert(skel_->maps.approved, key, "approved");
  }
  Result<void> deny(const ExeKey& key) override {
    if (auto r = insert(skel_->maps.denied, key, "denied"); !r) return r;
    return remove(skel_->maps.approved, key, "approved");
  }
  Result<void> forget(const ExeKey& key) override {
    if (auto r = remove(skel_->maps.approved, key, "approved"); !r) return r;
    return remove(skel_->maps.denied, key, "denied");
  }
  Result<void> forgetAll() override {
    if (auto r = clear(skel_->maps.approved, "approved"); !r) return r;
    return clear(skel_->maps.denied, "denied");
  }

  std::optional<Stamp> stamp(std::uint64_t cookie) override {
    mg_stamp s{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.stamps), &cookie, &s) != 0) return std::nullopt;
    return fromBpf(s);
  }

  std::optional<TupleStamp> stampOf(const rules::ConnectionTuple& tuple) override {
    if (!tupleHook_) return std::nullopt;
    mg_tuple key{};
    key.family = static_cast<__u8>(tuple.family);
    key.sport = tuple.srcPort;
    key.dport = tuple.dstPort;
    std::memcpy(key.saddr, tuple.src.data(), sizeof(key.saddr));
    std::memcpy(key.daddr, tuple.dst.data(), sizeof(key.daddr));
    mg_tuple_stamp v{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.tuple_stamps), &key, &v) != 0)
      return std::nullopt;
    return TupleStamp{v.cookie, fromBpf(v.stamp)};
  }

  [[nodiscard]] int eventsFd() const override { return epoll_.get(); }

  Result<void> readEvents(const std::function<void(const ConnectEvent&)>& onEvent) override {
    onEvent_ = &onEvent;
    const int rc = ring_buffer__consume(ring_.get());
    onEvent_ = nullptr;
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
    if (rc < 0) return bpfError("read the BPF event ring buffer", rc);
    std::uint64_t ticks = 0;
    if (::read(timer_.get(), &ticks, sizeof(ticks)) == sizeof(ticks))
      return reportRefusals(onEvent);
    return {};
  }

  [[nodiscard]] KernelStats stats() const override {
    KernelStats s;
    s.eventsLost = sumPerCpu(bpf_map__fd(skel_->maps.counters), MG_COUNTER_EVENTS_LOST);
    s.dnsLost = sumPerCpu(bpf_map__fd(skel_->maps.counters), MG_COUNTER_DNS_LOST);
    s.smtpLost = sumPerCpu(bpf_map__fd(skel_->maps.counters), MG_COUNTER_SMTP_LOST);
    s.approvedWakeups = sumPerCpu(bpf_map__fd(skel_->maps.counters), MG_COUNTER_APPROVED_WAKEUPS);
    for (const bpf_map* m :
         {skel_->maps.mail_ports, skel_->maps.approved, skel_->maps.denied, skel_->maps.stamps,
          skel_->maps.taints, skel_->maps.argvs, skel_->maps.argv_scratch, skel_->maps.refusals,
          skel_->maps.events, skel_->maps.counters, skel_->maps.mg_config, skel_->maps.dns_stamps,
          skel_->maps.dns_events, skel_->maps.smtp_socks, skel_->maps.smtp_events,
          skel_->maps.tuple_stamps})
      s.mapBytes += memlockOf(bpf_map__fd(m));
    return s;
  }

  [[nodiscard]] std::string describe() const override { return flavour_; }

  [[nodiscard]] ArgvDigest digestArgv(std::string_view argvArea) const override {
    return argvDigest(argvKey_, argvArea);
  }
  [[nodiscard]] std::uint64_t argvRecordedSinceNs() const override { return argvSinceNs_; }

 private:
  // ring_buffer's C callback. An exception must not cross libbpf's C frames: it is kept
  // and rethrown by readEvents once consume has returned.
  static int onSample(void* ctx, void* data, std::size_t size) {
    auto* self = static_cast<BpfKernelIdentity*>(ctx);
    if (size < sizeof(mg_event) || self->onEvent_ == nullptr) return 0;
    mg_event e{};
    std::memcpy(&e, data, sizeof(e));
    ConnectEvent out;
    out.decision = static_cast<ConnectEvent::Decision>(e.decision);
    out.cookie = e.cookie;
    out.task = fromBpf(e.task);
    out.family = e.family;
    std::copy(std::begin(e.dst), std::end(e.dst), out.dst.begin());
    out.dstPort = e.dst_port;
    out.monotonic = std::chrono::nanoseconds{e.time_ns};
    try {
      (*self->onEvent_)(out);
    } catch (...) {
      self->failure_ = std::current_exception();
      return -1;  // stops ring_buffer__consume
    }
    return 0;
  }

  static int onDnsSample(void* ctx, void* data, std::size_t size) {
    auto* self = static_cast<BpfKernelIdentity*>(ctx);
    if (size < sizeof(mg_dns_event) || !self->dnsSink_) return 0;
    const auto* e = static_cast<const mg_dns_event*>(data);
    DnsPacket out;
    out.cookie = e->cookie;
    out.task = fromBpf(e->task);
    out.response = e->ingress != 0;
    out.tcp = e->tcp != 0;
    out.wireLength = e->len;
    const std::size_t n = std::min<std::size_t>(e->captured, MG_DNS_CAPTURE);
    out.payload.assign(e->data, e->data + n);
    try {
      self->dnsSink_(out);
    } catch (...) {
      self->failure_ = std::current_exception();
      return -1;
    }
    return 0;
  }

  static int onSmtpSample(void* ctx, void* data, std::size_t size) {
    auto* self = static_cast<BpfKernelIdentity*>(ctx);
    if (size < sizeof(mg_smtp_event) || !self->smtpSink_) return 0;
    const auto* e = static_cast<const mg_smtp_event*>(data);
    SmtpSegment out;
    out.cookie = e->cookie;
    out.task = fromBpf(e->task);
    out.server.family = e->family;
    std::copy(std::begin(e->server), std::end(e->server), out.server.addr.begin());
    out.server.port = MG_SMTP_PORT;
    out.seq = e->seq;
    out.wireLength = e->len;
    out.closed = e->closed != 0;
    const std::size_t n = std::min<std::size_t>(e->captured, MG_SMTP_CAPTURE);
    out.payload.assign(e->data, e->data + n);
    try {
      self->smtpSink_(out);
    } catch (...) {
      self->failure_ = std::current_exception();
      return -1;
    }
    return 0;
  }

  // At each tick: the entries of the generation before the current one (no program has
  // written them since the last tick: a BPF program runs for microseconds) are reported,
  // one event per program and user with a count, and deleted; then the generation flips.
  // So every refusal is counted exactly once, and reported within two intervals.
  Result<void> reportRefusals(const std::function<void(const ConnectEvent&)>& onEvent) {
    const int fd = bpf_map__fd(skel_->maps.refusals);
    const std::uint32_t frozen = 1U - config_.generation;
    std::vector<mg_refusal_key> keys;
    mg_refusal_key key{}, next{};
    while (bpf_map_get_next_key(fd, keys.empty() ? nullptr : &key, &next) == 0) {
      keys.push_back(next);
      key = next;
    }
    std::vector<ConnectEvent> due;
    for (const auto& k : keys) {
      if (k.generation != frozen) continue;
      mg_refusal value{};
      if (bpf_map_lookup_elem(fd, &k, &value) != 0) continue;
      if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
        return bpfError("remove a reported entry of the refusals map", errno);
      if (value.count == 0) continue;  // its one refusal came as an event
      ConnectEvent e;
      e.decision = ConnectEvent::Decision::Denied;
      e.count = value.count;
      e.task.tgid = value.tgid;
      e.task.tid = value.tgid;
      e.task.ppid = value.ppid;
      e.task.uid = k.uid;
      e.task.key = fromBpf(k.key);
      const auto n = std::min<std::size_t>(value.ndst, MG_REFUSAL_DSTS);
      for (std::size_t i = 0; i < n; ++i) {
        Destination d;
        d.family = value.dst[i].family;
        std::copy(std::begin(value.dst[i].addr), std::end(value.dst[i].addr), d.addr.begin());
        d.port = value.dst[i].port;
        if (i == 0) {
          e.family = d.family;
          e.dst = d.addr;
          e.dstPort = d.port;
        } else if (std::find(e.moreDestinations.begin(), e.moreDestinations.end(), d) ==
                   e.moreDestinations.end()) {
          e.moreDestinations.push_back(d);
        }
      }
      due.push_back(std::move(e));
    }
    mg_config flipped = config_;
    flipped.generation = frozen;
    const std::uint32_t zero = 0;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.mg_config), &zero, &flipped, BPF_ANY) != 0)
      return bpfError("flip the generation of the refusal counts", errno);
    config_ = flipped;
    for (const auto& e : due) onEvent(e);
    return {};
  }

  static Result<void> insert(const bpf_map* map, const ExeKey& key, const char* name) {
    const mg_exe_key k = toBpf(key);
    const std::uint8_t one = 1;
    if (bpf_map_update_elem(bpf_map__fd(map), &k, &one, BPF_ANY) != 0)
      return bpfError(std::string("add a key to the ") + name + " map", errno);
    return {};
  }
  static Result<void> remove(const bpf_map* map, const ExeKey& key, const char* name) {
    const mg_exe_key k = toBpf(key);
    if (bpf_map_delete_elem(bpf_map__fd(map), &k) != 0 && errno != ENOENT)
      return bpfError(std::string("remove a key from the ") + name + " map", errno);
    return {};
  }
  static Result<void> clear(const bpf_map* map, const char* name) {
    const int fd = bpf_map__fd(map);
    mg_exe_key k{};
    // Deleting while walking a hash map restarts the walk; start from the top each time.
    while (bpf_map_get_next_key(fd, nullptr, &k) == 0)
      if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT)
        return bpfError(std::string("clear the ") + name + " map", errno);
    return {};
  }

  Skeleton skel_;    // owns the programs, maps and links
  RingBuffer ring_;  // declared after skel_: freed before the maps it reads
  std::string flavour_;
  ArgvKey argvKey_;
  std::uint64_t argvSinceNs_;
  Fd epoll_;            // eventsFd(): the ring buffer's epoll fd and timer_
  Fd timer_;            // ticks every kRefusalReportInterval
  mg_config config_{};  // as last written to the config map
  const std::function<void(const ConnectEvent&)>* onEvent_ = nullptr;
  std::function<void(const DnsPacket&)> dnsSink_;
  std::function<void(const SmtpSegment&)> smtpSink_;
  bool tupleHook_ = false;  // tuple_stamp attached: stampOf() can answer
  bool dnsRunning_ = false;
  std::string dnsError_;
  std::exception_ptr failure_;
};

}  // namespace

Result<std::unique_ptr<KernelIdentity>> openBpfKernelIdentity(const BpfOptions& options) {
  libbpf_set_print(&libbpfPrint);
  takeLibbpfLog();
  if (::access(kBtfPath, R_OK) != 0)
    return makeError(std::string("this kernel has no BTF at ") + kBtfPath +
                     " (CONFIG_DEBUG_INFO_BTF): kernel identity needs it");
  if (!std::has_single_bit(options.markBit))
    return invalidArgument("Failed to set the BPF mark bit: " + std::to_string(options.markBit) +
                           " is not exactly one bit");

  // BPF LSM hooks where the kernel runs the "bpf" LSM; fentry on the security_*
  // functions elsewhere (same information, no LSM needed); syscall-entry tracepoints
  // where the kernel refuses trampoline programs altogether. MAILGUARD_BPF_TAINT_HOOKS=
  // fentry or =tracepoint starts further down that list (tests cover every flavour the
  // kernel takes).
  std::vector<TaintFlavour> order = {TaintFlavour::Lsm, TaintFlavour::Fentry,
                                     TaintFlavour::Tracepoint};
  if (const char* force = std::getenv("MAILGUARD_BPF_TAINT_HOOKS"); force != nullptr) {
    const std::string_view f(force);
    if (f == "fentry") order.erase(order.begin());
    if (f == "tracepoint") order.erase(order.begin(), order.begin() + 2);
  }
  // The key of the command-line digests: secret (only root reads BPF maps and programs),
  // fresh each start.
  ArgvKey argvKey{};
  if (::getrandom(argvKey.data(), sizeof(argvKey), 0) != static_cast<ssize_t>(sizeof(argvKey)))
    return systemError("Failed to draw the command-line digest key", errno);
  // Taken before the exec hook is attached: a process forked after this instant was
  // exec'd (or forked from one exec'd) with the hook in place.
  timespec since{};
  ::clock_gettime(CLOCK_BOOTTIME, &since);
  const auto sinceNs = static_cast<std::uint64_t>(since.tv_sec) * 1'000'000'000ULL +
                       static_cast<std::uint64_t>(since.tv_nsec);
  std::optional<Skeleton> loaded;
  std::string flavour, tried;
  for (const TaintFlavour f : order) {
    ::malloc_trim(0);  // what the last attempt freed (see below), before the next parse
    auto attempt = loadWithTaintHooks(f, argvKey);
    if (attempt && taintHooksRun(*attempt.value())) {
      loaded = std::move(attempt.value());
      flavour = nameOf(f);
      break;
    }
    tried += std::string(tried.empty() ? "" : "; ") + nameOf(f) + ": " +
             (attempt ? "attached but never called" : attempt.error().message);
  }
  // Every load parsed the kernel's BTF (5 MiB or more, for CO-RE relocations) and libbpf
  // freed it when the load was done, but glibc keeps freed heap memory mapped: the first
  // parse's buffer was mmap'd and its unmapping raised malloc's mmap threshold (and trim
  // threshold, twice that) to its size, so the next parses came from the heap and stayed
  // resident after free (10 MB or more: most of the kernel path's extra RSS). Give it back.
  ::malloc_trim(0);
  if (!loaded) return makeError("Failed to start the BPF taint hooks: " + tried);
  auto identity =
      std::make_unique<BpfKernelIdentity>(std::move(*loaded), flavour, argvKey, sinceNs);
  if (auto r = identity->init(options); !r) return r.error();
  return std::unique_ptr<KernelIdentity>(std::move(identity));
}

}  // namespace mailguard::kernel
