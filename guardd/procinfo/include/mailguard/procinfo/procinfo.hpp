#pragma once
// packet -> socket -> process -> executable identity (DESIGN.md step 3).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/code_loading.hpp"
#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::procinfo {

struct SocketOwner {
  std::uint64_t inode = 0;
  std::uint32_t uid = 0;
  std::uint64_t cookie = 0;  // SO_COOKIE
};

// The kernel's socket table. Real one: sock_diag (NETLINK_SOCK_DIAG, inet_diag_req_v2
// without NLM_F_DUMP: an exact lookup by the 4-tuple, cookie INET_DIAG_NOCOOKIE).
class SocketTable {
 public:
  virtual ~SocketTable() = default;
  // nullopt: no such socket (closed already). Error: netlink failed.
  virtual Result<std::optional<SocketOwner>> findTcp(const rules::ConnectionTuple& t) = 0;
};

class SockDiagSocketTable final : public SocketTable {
 public:
  static Result<std::unique_ptr<SockDiagSocketTable>> open();
  ~SockDiagSocketTable() override;
  Result<std::optional<SocketOwner>> findTcp(const rules::ConnectionTuple& t) override;

 private:
  SockDiagSocketTable() = default;
  Fd fd_;
  std::uint32_t seq_ = 0;
};

// Read access to a /proc tree; tests point it at tests/data/proc/... .
class ProcFs {
 public:
  virtual ~ProcFs() = default;
  [[nodiscard]] virtual const std::filesystem::path& root() const = 0;
  virtual Result<std::string> read(std::string_view relPath) const = 0;      // "4242/cmdline"
  virtual Result<std::string> readLink(std::string_view relPath) const = 0;  // "4242/fd/3"
  virtual Result<std::vector<std::string>> list(std::string_view relPath) const = 0;  // names
};

class DirProcFs final : public ProcFs {
 public:
  explicit DirProcFs(std::filesystem::path root = "/proc");
  [[nodiscard]] const std::filesystem::path& root() const override { return root_; }
  Result<std::string> read(std::string_view relPath) const override;
  Result<std::string> readLink(std::string_view relPath) const override;
  Result<std::vector<std::string>> list(std::string_view relPath) const override;

 private:
  std::filesystem::path root_;
};

struct ProcessInfo {
  int pid = 0;
  int ppid = 0;
  std::uint32_t uid = 0;        // real uid from status "Uid:"
  std::uint64_t startTime = 0;  // field 22 of stat, in clock ticks since boot
  // A controlling terminal (tty_nr of stat, read afresh by every describe(): setsid()
  // drops it). The detector's I1: a person running swaks has one, a daemonised bot not.
  bool controllingTerminal = false;
  std::string comm;
  std::vector<std::string> cmdline;
  rules::ProgramIdentity identity;
  // Code loaded by its environment (/proc/PID/environ) or options (rules/code_loading.hpp);
  // rules::kEnvironUnreadable when the environment could not be read or was too large.
  std::vector<rules::CodeLoading> codeLoading;
};

// Parsers of /proc text, pure and fuzzed.
struct StatusFields {
  int ppid = -1;
  std::optional<std::uint32_t> uid;  // real uid
  std::string name;
};
std::optional<StatusFields> parseStatus(std::string_view text);
std::vector<std::string> parseCmdline(std::string_view raw);                 // NUL-separated
std::optional<std::uint64_t> parseStatStartTime(std::string_view statText);  // comm may hold ") ("
bool statHasControllingTerminal(std::string_view statText);           // tty_nr (field 7) is not 0
std::optional<std::uint64_t> parseSocketLink(std::string_view link);  // "socket:[123]"
std::optional<std::uint32_t> parseFdinfoFlags(std::string_view fdinfo);  // "flags:\t02000002"

// SHA-256 of an open file and the facts the policy needs, cached by
// (device, inode, size, mtime, ctime) so a running program is hashed once. The ctime is
// what makes the key safe: a file rewritten in place (same size) whose mtime was set back
// with touch(1), or a new file that got a freed inode number, still gets a new ctime,
// which only the kernel sets.
class FileHasher {
 public:
  FileHasher();
  ~FileHasher();  // stops the background worker, if one runs
  FileHasher(const FileHasher&) = delete;
  FileHasher& operator=(const FileHasher&) = delete;

  // Hashes what the fd refers to (for /proc/PID/exe: the file actually mapped), on the
  // caller's thread.
  Result<std::string> sha256OfFd(int fd);
  Result<std::string> sha256OfPath(const std::filesystem::path& p);

  // Off the caller's thread (guardd's loop must not read a 100 MB executable): the hash
  // of what `fd` refers to when it is known (cached, or the error of an earlier try);
  // otherwise a copy of the fd goes to a worker thread and the answer is an error with
  // code Errc::Pending. After each file the worker calls the `onHashed` given to
  // startBackground(), on the worker thread. Without startBackground() this is
  // sha256OfFd.
  Result<std::string> sha256OfFdOrQueue(int fd);
  // The same for a path (a script): opened on the caller's thread, hashed on the worker.
  Result<std::string> sha256OfPathOrQueue(const std::filesystem::path& p);
  // Hashes a path on the worker and calls `done` there (an approval of a file by path).
  void hashPathInBackground(std::filesystem::path p, std::function<void(Result<std::string>)> done);
  void startBackground(std::function<void()> onHashed);

  [[nodiscard]] std::size_t cacheSize() const;
  [[nodiscard]] std::uint64_t hashesComputed() const;

 private:
  struct Key {
    std::uint64_t dev, ino, size;
    std::int64_t mtimeSec, mtimeNsec;
    std::int64_t ctimeSec, ctimeNsec;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const noexcept;
  };
  struct Worker;
  static Result<Key> keyOf(int fd);
  std::optional<Result<std::string>> known(const Key& key) const;
  Result<std::string> compute(int fd, const Key& key);

  mutable std::mutex mu_;  // the worker and the caller share the cache
  std::unordered_map<Key, std::string, KeyHash> cache_;
  // Files that could not be hashed, so that a retry answers instead of queueing again.
  std::unordered_map<Key, std::string, KeyHash> failed_;
  std::uint64_t computed_ = 0;
  std::unique_ptr<Worker> worker_;
};

// True when the file and every parent directory up to / are owned by root and not
// writable by group or others (lstat; a symlink in the chain is followed by
// checking its target's chain too).
bool isRootOwnedChain(const std::filesystem::path& p);

// Finds the process owning a socket and describes it.
class ProcessResolver {
 public:
  ProcessResolver(const ProcFs& proc, FileHasher& hasher);

  // pid of the process holding `socket:[inode]`. Tries likely processes first: the
  // pids that owned sockets recently (cache), then processes of `uidHint`, newest
  // pid first, then the rest. Returns nullopt when no process holds it any more.
  // Within a recent owner the fds likely to hold a new socket are read first (see Owner).
  std::optional<int> pidForSocket(std::uint64_t inode, std::optional<std::uint32_t> uidHint);

  // Everything about one process; an error when it vanished mid-way. A process described
  // less than kDescribeTtl ago whose stat start time, executable (device, inode, size,
  // mtime, ctime, link text), /proc/PID owner and command line are unchanged gets its earlier
  // identity again without re-hashing or re-checking its directory chain: the checks
  // that remain are 5 system calls instead of about 25. The environment is read again too:
  // an exec of the same file with the same arguments keeps the pid and start time.
  Result<ProcessInfo> describe(int pid);
  static constexpr auto kDescribeTtl = std::chrono::seconds(2);

  // What describe() last said of `pid` when it had start time `startTime`, less than
  // kDescribeTtl ago, with nothing read again: null when it said nothing (or of another
  // process). Only for what cannot loosen a verdict: the record of an attempt whose verdict
  // the kernel's stamp already decided (the process may have exec'd or changed its command
  // line since).
  [[nodiscard]] const ProcessInfo* described(int pid, std::uint64_t startTime) const;

  // The process holding a socket, described, and still holding it afterwards. A process forked by
  // the owner holds the owner's sockets until it execs (close-on-exec closes them then); found
  // first as the newest pid, it would otherwise be named by the program it became: a helper the
  // owner runs, or the approved client a bot starts after connecting. Retried a few times.
  Result<ProcessInfo> describeHolder(std::uint64_t inode, std::optional<std::uint32_t> uidHint);

  // The other processes that hold socket `inode`, which pidForSocket() just found in `pid`.
  // A socket is shared across fork and exec: a bot can create one and
  // start the approved mail client holding it, then connect with its own copy. Only an fd
  // without close-on-exec can have come through an exec, so only then are all processes
  // read (a full scan, as costly as an unknown socket's lookup); an approved program's
  // close-on-exec socket was made by its own code (or handed over with SCM_RIGHTS by a
  // process it talks to, which this does not cover).
  std::vector<int> otherHolders(int pid, std::uint64_t inode);

  // Forget a pid (it exited or was reused): called when describe() finds a new start time.
  void forget(int pid);

  [[nodiscard]] std::uint64_t processesScanned() const { return scanned_; }

 private:
  // A process that owned a socket recently, with what its fd table held when last read:
  // fd -> (socket inode or 0, attributed). An fd whose socket was already attributed is
  // read first next time: that socket is about to be closed and socket() reuses the
  // lowest free number, so one read usually finds a mail client's next socket, and a
  // bot's many sockets are not all read for every attempt.
  struct Owner {
    int pid = 0;
    std::map<int, std::pair<std::uint64_t, bool>> fds;
  };
  struct Described {
    std::chrono::steady_clock::time_point at;
    std::uint64_t startTime = 0;
    std::uint64_t exeDev = 0, exeIno = 0, exeSize = 0;
    std::int64_t exeMtimeSec = 0, exeMtimeNsec = 0;
    std::int64_t exeCtimeSec = 0, exeCtimeNsec = 0;
    std::uint32_t procOwner = 0;
    std::string exeLink;
    std::string rawCmdline;
    std::string rawEnviron;
    ProcessInfo info;
    // The same process (start time), described less than kDescribeTtl ago.
    [[nodiscard]] bool freshFor(std::uint64_t start,
                                std::chrono::steady_clock::time_point now) const {
      return startTime == start && now - at < kDescribeTtl;
    }
  };
  std::vector<Owner>::iterator recentOwner(int pid);  // recent_.end() when not there
  std::optional<int> findFd(int pid, std::uint64_t inode, Owner* owner);
  void remember(int pid, int fd, std::uint64_t inode);
  Result<ProcessInfo> describeFully(int pid, std::uint64_t startTime, Described* fill);
  // The script part of an interpreter's identity: which file, its hash, and why it may not
  // be what runs (rules::ProgramIdentity::scriptDoubt, foreignView).
  Result<void> describeScript(const std::string& dir, const std::string& script,
                              std::uint64_t startTime, rules::ProgramIdentity& id);
  const ProcFs& proc_;
  FileHasher& hasher_;
  std::vector<Owner> recent_;  // most recent first, bounded
  std::unordered_map<int, Described> described_;
  std::uint64_t scanned_ = 0;
};

}  // namespace mailguard::procinfo
