// socket inode -> pid -> program identity, through a ProcFs.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "mailguard/common/fd.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {

namespace {

// Enough for the programs that send mail on one host; older owners fall off the end.
constexpr std::size_t kMaxRecent = 64;
constexpr std::string_view kDeletedSuffix = " (deleted)";

std::optional<int> parsePid(std::string_view name) {
  int pid = 0;
  const char* end = name.data() + name.size();
  const auto [ptr, ec] = std::from_chars(name.data(), end, pid);
  if (name.empty() || ec != std::errc{} || ptr != end || pid <= 0) return std::nullopt;
  return pid;
}

// Bounds of the per-owner fd cache and of the describe() cache.
constexpr std::size_t kMaxCachedFds = 4096;
constexpr std::size_t kMaxDescribed = 256;
// DirProcFs::read stops at 1 MiB. An environment that fills it may have been cut before a
// variable that matters (execve(2) allows more, up to a quarter of the stack limit), so
// it counts as unreadable rather than as clean.
constexpr std::size_t kMaxEnviron = std::size_t{1024} * 1024;
constexpr int kMaxReusedFdProbes = 4;

// The owner of /proc/PID is the process's effective uid (root for non-dumpable ones),
// which is what the socket's uid usually is too. Only an ordering hint: a stat is far
// cheaper than reading status.
std::optional<std::uint32_t> ownerUid(const std::filesystem::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return std::nullopt;
  return static_cast<std::uint32_t>(st.st_uid);
}

bool stripDeletedSuffix(std::string& path) {
  if (!path.ends_with(kDeletedSuffix)) return false;
  path.resize(path.size() - kDeletedSuffix.size());
  return true;
}

// True when `path` names the same file as the open fd; false when it is gone or another
// file now sits there (replaced by an upgrade, or the process runs in another mount
// namespace: both mean the path alone cannot vouch for what runs).
bool pathIsSameFile(const std::string& path, const struct stat& opened) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return false;
  return st.st_dev == opened.st_dev && st.st_ino == opened.st_ino;
}

// Whether the process sees the filesystem as guardd does: the same mount namespace and the
// same root. Links guardd cannot read of itself either (a /proc without namespaces, a test
// tree) count as the same; a link readable on one side only does not.
bool sharesOurView(const ProcFs& proc, const std::string& dir) {
  for (const std::string_view link : {"ns/mnt", "root"}) {
    const auto theirs = proc.readLink(dir + "/" + std::string(link));
    const auto ours = proc.readLink("self/" + std::string(link));
    if (!theirs && !ours) continue;
    if (!theirs || !ours || *theirs != *ours) return false;
  }
  return true;
}

// Opens `absolute` as the process behind `rootLink` (/proc/PID/root) sees it: every
// component, symlinks included, resolved inside that root and its mount namespace, never
// in guardd's (RESOLVE_IN_ROOT; an absolute symlink stays inside too).
Fd openInRoot(const std::filesystem::path& rootLink, const std::string& absolute) {
  const Fd root{::open(rootLink.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (!root) return Fd{};
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  const long fd = ::syscall(SYS_openat2, root.get(), absolute.c_str(), &how, sizeof how);
  return Fd{static_cast<int>(fd)};
}

// Boot time in seconds since the epoch ("btime" of /proc/stat), to put a process's start
// time (clock ticks since boot) on the clock file times use.
std::optional<std::int64_t> bootTime(const ProcFs& proc) {
  const auto stat = proc.read("stat");
  if (!stat) return std::nullopt;
  const auto at = stat->find("\nbtime ");
  if (at == std::string::npos) return std::nullopt;
  std::int64_t value = 0;
  const char* begin = stat->data() + at + 7;
  const auto [ptr, ec] = std::from_chars(begin, stat->data() + stat->size(), value);
  if (ec != std::errc{} || ptr == begin) return std::nullopt;
  return value;
}

// realpath(3) of an absolute, normalised path, and the newest ctime (seconds) of the
// symbolic links it passed through: a link is never changed in place, so a link made or
// replaced after the interpreter opened the name shows a ctime after the process started
// (a bot's `python3 ~/x/news.py` whose ~/x becomes a link to the approved script's
// folder). nullopt when a component is missing or the links loop.
struct Resolved {
  std::string path;
  std::int64_t newestLinkCtime = 0;
};
std::optional<Resolved> resolveWatchingLinks(const std::string& absolute) {
  constexpr int kMaxLinks = 40;      // as the kernel's MAXSYMLINKS
  std::vector<std::string> pending;  // components still to walk, the next one last
  const auto push = [&pending](std::string_view path) {
    std::vector<std::string> parts;
    std::size_t at = 0;
    while (at <= path.size()) {
      const auto slash = path.find('/', at);
      const auto part =
          path.substr(at, slash == std::string_view::npos ? std::string_view::npos : slash - at);
      if (!part.empty() && part != ".") parts.emplace_back(part);
      if (slash == std::string_view::npos) break;
      at = slash + 1;
    }
    pending.insert(pending.end(), parts.rbegin(), parts.rend());
  };
  Resolved out;
  std::string current;  // "" is the root
  int links = 0;
  push(absolute);
  while (!pending.empty()) {
    const std::string part = std::move(pending.back());
    pending.pop_back();
    if (part == "..") {
      current.resize(current.empty() ? 0 : current.rfind('/'));
      continue;
    }
    const std::string next = current + "/" + part;
    struct stat st {};
    if (::lstat(next.c_str(), &st) != 0) return std::nullopt;
    if (!S_ISLNK(st.st_mode)) {
      current = next;
      continue;
    }
    if (++links > kMaxLinks) return std::nullopt;
    out.newestLinkCtime = std::max<std::int64_t>(out.newestLinkCtime, st.st_ctim.tv_sec);
    std::string target(static_cast<std::size_t>(st.st_size) + 1, '\0');
    const auto n = ::readlink(next.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<std::size_t>(n) >= target.size()) return std::nullopt;
    target.resize(static_cast<std::size_t>(n));
    if (target.starts_with('/')) current.clear();
    push(target);
  }
  out.path = current.empty() ? "/" : current;
  return out;
}

bool isAnonymousFile(std::string_view path) {
  return path.starts_with("memfd:") || path.starts_with("/memfd:");
}

}  // namespace

ProcessResolver::ProcessResolver(const ProcFs& proc, FileHasher& hasher)
    : proc_(proc), hasher_(hasher) {}

std::optional<int> ProcessResolver::findFd(int pid, std::uint64_t inode, Owner* owner) {
  ++scanned_;
  const std::string fdDir = std::to_string(pid) + "/fd";
  std::string linkPath;
  // The socket inode an fd refers to (0: not a socket); nullopt: no such fd (closed).
  const auto probe = [&](int fd) -> std::optional<std::uint64_t> {
    linkPath.assign(fdDir).append("/").append(std::to_string(fd));
    const auto link = proc_.readLink(linkPath);
    if (!link) return std::nullopt;
    return parseSocketLink(*link).value_or(0);
  };

  std::vector<int> tried;
  if (owner != nullptr) {
    // 0. An fd that held this very socket when the fd table was last read: a process with
    // many connections in flight (a bot) had the socket open already at its previous
    // lookup, since the queue hands them over oldest first.
    for (auto& [fd, entry] : owner->fds) {
      if (entry.first != inode) continue;
      tried.push_back(fd);
      const auto got = probe(fd);
      if (got == inode) {
        entry.second = true;
        return fd;
      }
      break;
    }
  }
  // 1. A recent owner: the fds whose socket was attributed before, lowest first; a few
  // only: this is for a client with one connection at a time, step 2 reads the rest.
  if (owner != nullptr) {
    int budget = kMaxReusedFdProbes;
    for (auto it = owner->fds.begin(); it != owner->fds.end();) {
      auto& [fd, entry] = *it;
      if (budget == 0) break;
      if (!entry.second || std::find(tried.begin(), tried.end(), fd) != tried.end()) {
        ++it;
        continue;
      }
      --budget;
      tried.push_back(fd);
      const auto got = probe(fd);
      if (!got) {
        it = owner->fds.erase(it);
        continue;
      }
      // Still the attributed socket: keep the mark; another socket: not attributed yet.
      entry = {*got, *got == inode || (*got == entry.first)};
      if (*got == inode) return fd;
      ++it;
    }
  }

  // 2. Every fd, those this cache has not seen first (new numbers), then the rest.
  const auto names = proc_.list(fdDir);
  if (!names) return std::nullopt;  // exited, or not ours to look at
  std::vector<int> fresh;
  std::vector<int> seen;
  for (const auto& name : *names) {
    const auto fd = parsePid(name);  // fd numbers parse like pids (>= 0 checked below)
    if (!fd) {
      if (name == "0") fresh.push_back(0);
      continue;
    }
    if (std::find(tried.begin(), tried.end(), *fd) != tried.end()) continue;
    const bool known = owner != nullptr && owner->fds.contains(*fd);
    (known ? seen : fresh).push_back(*fd);
  }
  if (owner != nullptr) {
    // Forget fds that are gone.
    std::erase_if(owner->fds, [&](const auto& e) {
      return std::find(names->begin(), names->end(), std::to_string(e.first)) == names->end();
    });
  }
  // A recent owner's table is read to the end, so that step 0 finds its other sockets
  // next time; anyone else's only until the socket turns up.
  std::optional<int> found;
  for (const auto* group : {&fresh, &seen}) {
    for (const int fd : *group) {
      const auto got = probe(fd);
      if (!got) continue;  // closed meanwhile
      if (owner != nullptr && (owner->fds.size() < kMaxCachedFds || owner->fds.contains(fd))) {
        auto& entry = owner->fds[fd];
        entry = {*got, *got == inode || (entry.second && entry.first == *got)};
      }
      if (*got == inode) {
        found = fd;
        if (owner == nullptr) return found;
      }
    }
  }
  return found;
}

std::vector<ProcessResolver::Owner>::iterator ProcessResolver::recentOwner(int pid) {
  return std::find_if(recent_.begin(), recent_.end(), [&](const Owner& o) { return o.pid == pid; });
}

void ProcessResolver::remember(int pid, int fd, std::uint64_t inode) {
  auto it = recentOwner(pid);
  Owner owner;
  if (it != recent_.end()) {
    owner = std::move(*it);
    recent_.erase(it);
  }
  owner.pid = pid;
  owner.fds[fd] = {inode, true};
  recent_.insert(recent_.begin(), std::move(owner));
  if (recent_.size() > kMaxRecent) recent_.resize(kMaxRecent);
}

std::optional<int> ProcessResolver::pidForSocket(std::uint64_t inode,
                                                 std::optional<std::uint32_t> uidHint) {
  // 1. Programs that sent mail recently are likely to again.
  std::vector<int> recent;
  recent.reserve(recent_.size());
  for (const auto& o : recent_) recent.push_back(o.pid);
  for (const int pid : recent) {
    auto owner = recentOwner(pid);
    if (owner == recent_.end()) continue;
    if (const auto fd = findFd(pid, inode, &*owner)) {
      remember(pid, *fd, inode);
      return pid;
    }
  }

  // 2. Every other process, newest first (a fresh connection is more often made by a
  // fresh process), those of the socket's uid before the rest.
  const auto names = proc_.list("");
  if (!names) return std::nullopt;
  std::vector<int> pids;
  pids.reserve(names->size());
  for (const auto& name : *names) {
    if (const auto pid = parsePid(name)) pids.push_back(*pid);
  }
  std::sort(pids.begin(), pids.end(), std::greater<>());

  std::vector<int> others;
  others.reserve(pids.size());
  for (const int pid : pids) {
    if (std::find(recent.begin(), recent.end(), pid) != recent.end()) continue;  // tried
    if (!uidHint || ownerUid(proc_.root() / std::to_string(pid)) != uidHint) {
      others.push_back(pid);
      continue;
    }
    if (const auto fd = findFd(pid, inode, nullptr)) {
      remember(pid, *fd, inode);
      return pid;
    }
  }
  for (const int pid : others) {
    if (const auto fd = findFd(pid, inode, nullptr)) {
      remember(pid, *fd, inode);
      return pid;
    }
  }
  return std::nullopt;
}

Result<ProcessInfo> ProcessResolver::describeHolder(std::uint64_t inode,
                                                    std::optional<std::uint32_t> uidHint) {
  constexpr int kAttempts = 4;
  for (int i = 0; i < kAttempts; ++i) {
    const auto pid = pidForSocket(inode, uidHint);
    if (!pid) return makeError("no process holds the socket any more");
    auto info = describe(*pid);
    if (!info) return info;
    // pidForSocket() just remembered the fd: one readlink tells whether it is still there.
    auto owner = recentOwner(*pid);
    if (findFd(*pid, inode, owner == recent_.end() ? nullptr : &*owner)) return info;
    forget(*pid);
  }
  return makeError("the socket moved between processes while they were read");
}

Result<ProcessInfo> ProcessResolver::describe(int pid) {
  const std::string dir = std::to_string(pid);
  // The start time, read first and again last, tells whether the pid still names the same
  // process: everything read in between belongs to it.
  const auto statText = proc_.read(dir + "/stat");
  if (!statText) return statText.error();
  const auto startTime = parseStatStartTime(*statText);
  if (!startTime) {
    return makeError("Failed to parse '" + (proc_.root() / dir / "stat").string() +
                     "': unexpected content");
  }

  const auto now = std::chrono::steady_clock::now();
  if (const auto it = described_.find(pid); it != described_.end()) {
    Described& d = it->second;
    struct stat exe {};
    const auto exeLink = proc_.root() / dir / "exe";
    if (d.freshFor(*startTime, now) && ::stat(exeLink.c_str(), &exe) == 0 &&
        static_cast<std::uint64_t>(exe.st_dev) == d.exeDev &&
        static_cast<std::uint64_t>(exe.st_ino) == d.exeIno &&
        static_cast<std::uint64_t>(exe.st_size) == d.exeSize &&
        exe.st_mtim.tv_sec == d.exeMtimeSec && exe.st_mtim.tv_nsec == d.exeMtimeNsec &&
        exe.st_ctim.tv_sec == d.exeCtimeSec && exe.st_ctim.tv_nsec == d.exeCtimeNsec &&
        ownerUid(proc_.root() / dir) == d.procOwner) {
      const auto link = proc_.readLink(dir + "/exe");
      const auto cmdline = proc_.read(dir + "/cmdline");
      const auto env = proc_.read(dir + "/environ");
      // A pid reused meanwhile would have to match all of the above to be taken for the
      // process described before, and would then run the same file with the same arguments.
      // The environment changes only with an exec, which may keep all of those.
      if (link && cmdline && env && *link == d.exeLink && *cmdline == d.rawCmdline &&
          *env == d.rawEnviron) {
        ProcessInfo info = d.info;
        info.controllingTerminal = statHasControllingTerminal(*statText);
        return info;
      }
    }
    described_.erase(it);
  }
  Described fill;
  auto info = describeFully(pid, *startTime, &fill);
  if (info) info->controllingTerminal = statHasControllingTerminal(*statText);
  // Interpreted programs are not cached: their identity depends on the working directory
  // and the script file too.
  if (info && !info->identity.isInterpreted()) {
    if (described_.size() >= kMaxDescribed) described_.clear();
    fill.at = now;
    fill.info = *info;
    described_.emplace(pid, std::move(fill));
  }
  return info;
}

const ProcessInfo* ProcessResolver::described(int pid, std::uint64_t startTime) const {
  const auto it = described_.find(pid);
  if (it == described_.end() || !it->second.freshFor(startTime, std::chrono::steady_clock::now())) {
    return nullptr;
  }
  return &it->second.info;
}

Result<ProcessInfo> ProcessResolver::describeFully(int pid, std::uint64_t startTime,
                                                   Described* fill) {
  const std::string dir = std::to_string(pid);
  const auto parseError = [&](const char* file) {
    return makeError("Failed to parse '" + (proc_.root() / dir / file).string() +
                     "': unexpected content");
  };

  ProcessInfo info;
  info.pid = pid;
  info.startTime = startTime;
  const auto owner = ownerUid(proc_.root() / dir);

  const auto statusText = proc_.read(dir + "/status");
  if (!statusText) return statusText.error();
  const auto status = parseStatus(*statusText);
  if (!status || !status->uid) return parseError("status");
  info.uid = *status->uid;
  info.ppid = status->ppid;
  info.comm = status->name;

  const auto cmdline = proc_.read(dir + "/cmdline");
  if (!cmdline) return cmdline.error();
  info.cmdline = parseCmdline(*cmdline);
  fill->rawCmdline = *cmdline;

  // Open the executable through /proc/PID/exe: that is the file actually mapped, even
  // when the path now holds another file or nothing at all.
  const std::filesystem::path exeLink = proc_.root() / dir / "exe";
  const Fd exe{::open(exeLink.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!exe) {
    return makeError("Failed to open '" + exeLink.string() + "': " + std::strerror(errno));
  }
  struct stat exeStat {};
  if (::fstat(exe.get(), &exeStat) != 0) {
    return makeError("Failed to stat '" + exeLink.string() + "': " + std::strerror(errno));
  }
  // With the hasher in background mode a file not hashed yet makes this an Errc::Pending
  // error: the caller asks again once the hasher says it is done.
  auto exeHash = hasher_.sha256OfFdOrQueue(exe.get());
  if (!exeHash) return exeHash.error();

  auto exePath = proc_.readLink(dir + "/exe");
  if (!exePath) return exePath.error();
  fill->startTime = startTime;
  fill->exeDev = static_cast<std::uint64_t>(exeStat.st_dev);
  fill->exeIno = static_cast<std::uint64_t>(exeStat.st_ino);
  fill->exeSize = static_cast<std::uint64_t>(exeStat.st_size);
  fill->exeMtimeSec = exeStat.st_mtim.tv_sec;
  fill->exeMtimeNsec = exeStat.st_mtim.tv_nsec;
  // ctime too: an exec of a new file that got the inode number of a freed one, with size
  // and mtime copied, must not pass for the process described before.
  fill->exeCtimeSec = exeStat.st_ctim.tv_sec;
  fill->exeCtimeNsec = exeStat.st_ctim.tv_nsec;
  fill->procOwner = owner.value_or(~0U);
  fill->exeLink = *exePath;
  rules::ProgramIdentity& id = info.identity;
  id.path = std::move(*exePath);
  id.sha256 = std::move(*exeHash);
  id.deleted = stripDeletedSuffix(id.path);
  if (isAnonymousFile(id.path) || !pathIsSameFile(id.path, exeStat)) id.deleted = true;

  const std::string exeName = std::filesystem::path(id.path).filename().string();
  std::optional<std::string> script;
  if (rules::isInterpreter(exeName)) script = rules::scriptArgument(exeName, info.cmdline);
  if (script) {
    auto scripted = describeScript(dir, *script, startTime, id);
    if (!scripted) return scripted.error();
  }

  // /proc/PID/environ is the block execve(2) set up (man proc(5)): later setenv() calls
  // do not show, but the loader and the interpreter read exactly this block at start-up.
  // A process may overwrite it in its own memory after its code is loaded; the kernel's
  // exec-time view is what the BPF path has.
  if (auto env = proc_.read(dir + "/environ"); !env) {
    info.codeLoading = {rules::environUnreadable(env.error().message)};
  } else if (env->size() >= kMaxEnviron) {
    info.codeLoading = {rules::environUnreadable("larger than 1 MiB")};
  } else {
    info.codeLoading = rules::codeLoadingFindings(exeName, info.cmdline, parseCmdline(*env));
    fill->rawEnviron = std::move(*env);
  }

  id.pathTrusted = !id.deleted && isRootOwnedChain(id.path) && !rules::isUnsafeLocation(id.path) &&
                   (!id.isInterpreted() ||
                    (id.scriptDoubt.empty() && !id.foreignView && isRootOwnedChain(id.scriptPath) &&
                     !rules::isUnsafeLocation(id.scriptPath)));

  const auto statAgain = proc_.read(dir + "/stat");
  if (!statAgain || parseStatStartTime(*statAgain) != std::optional<std::uint64_t>{startTime}) {
    return makeError("Failed to describe process " + dir +
                     ": it exited or its pid was reused while it was read");
  }
  return info;
}

Result<void> ProcessResolver::describeScript(const std::string& dir, const std::string& script,
                                             std::uint64_t startTime, rules::ProgramIdentity& id) {
  id.foreignView = !sharesOurView(proc_, dir);
  std::string absolute;
  if (script.starts_with('/')) {
    absolute = rules::normalisePath("/", script);
  } else {
    // Resolved against the working directory only to show the owner a path: the
    // interpreter opened the name relative to the directory it had then, and a chdir since
    // (to the approved script's folder) would make it name the approved file.
    auto cwd = proc_.readLink(dir + "/cwd");
    if (!cwd) return cwd.error();
    stripDeletedSuffix(*cwd);
    absolute = rules::normalisePath(*cwd, script);
    id.scriptDoubt = "its script is named by a relative path (" + script +
                     "), which a change of directory makes another file; run it by its full "
                     "path for an approval to apply";
  }

  Fd file;
  std::int64_t newestLinkCtime = 0;
  if (id.foreignView) {
    // Another mount namespace or root: the path is the process's, and so is the file that
    // counts (a bind mount over an approved script's path must not show guardd the
    // approved one). Its name is kept as given; guardd's realpath would walk its own tree.
    id.scriptPath = absolute;
    file = openInRoot(proc_.root() / dir / "root", absolute);
  } else {
    // The identity names the real file, so a symlink cannot stand in for its target.
    const auto real = resolveWatchingLinks(absolute);
    id.scriptPath = real ? real->path : absolute;
    newestLinkCtime = real ? real->newestLinkCtime : 0;
    if (real)
      file = Fd{::open(id.scriptPath.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  }
  if (!file) {
    id.deleted = true;  // the script is not (or no longer) where the command line says
    id.scriptSha256.clear();
    return {};
  }

  struct stat st {};
  if (::fstat(file.get(), &st) == 0) {
    // A file whose inode changed after the process started may not hold what it read: a
    // script that ran bot code and then wrote the approved text back would hash as
    // approved. A second of slack: btime and clock ticks are both coarse.
    const auto boot = bootTime(proc_);
    const long ticks = ::sysconf(_SC_CLK_TCK);
    if (boot && ticks > 0) {
      const std::int64_t started =
          *boot + static_cast<std::int64_t>(startTime / static_cast<std::uint64_t>(ticks));
      if (st.st_ctim.tv_sec > started + 1 && id.scriptDoubt.empty()) {
        id.scriptDoubt =
            "its script changed after the program started, so what it runs is not "
            "known; restart it for an approval to apply";
      } else if (newestLinkCtime > started + 1 && id.scriptDoubt.empty()) {
        id.scriptDoubt =
            "a link on its script's path was made after the program started, so the path "
            "may now name another file than the one it ran; restart it for an approval to "
            "apply";
      }
    }
  }
  auto scriptHash = hasher_.sha256OfFdOrQueue(file.get());
  if (!scriptHash && scriptHash.error().code == Errc::Pending) return scriptHash.error();
  id.scriptSha256 = scriptHash ? std::move(*scriptHash) : std::string{};
  return {};
}

std::vector<int> ProcessResolver::otherHolders(int pid, std::uint64_t inode) {
  constexpr std::uint32_t kCloseOnExec = 02000000;  // O_CLOEXEC as fdinfo prints it
  const auto owner = recentOwner(pid);
  if (owner != recent_.end()) {
    for (const auto& [fd, entry] : owner->fds) {
      if (entry.first != inode) continue;
      const auto info = proc_.read(std::to_string(pid) + "/fdinfo/" + std::to_string(fd));
      const auto flags = info ? parseFdinfoFlags(*info) : std::nullopt;
      if (flags && (*flags & kCloseOnExec) != 0) return {};
      break;
    }
  }
  // Not known to be close-on-exec (or unreadable): every other process is read.
  std::vector<int> holders;
  const auto names = proc_.list("");
  if (!names) return holders;
  for (const auto& name : *names) {
    const auto other = parsePid(name);
    if (!other || *other == pid) continue;
    if (findFd(*other, inode, nullptr)) holders.push_back(*other);
  }
  return holders;
}

void ProcessResolver::forget(int pid) {
  std::erase_if(recent_, [&](const Owner& o) { return o.pid == pid; });
  described_.erase(pid);
}

}  // namespace mailguard::procinfo
