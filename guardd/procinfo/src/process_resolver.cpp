// socket inode -> pid -> program identity, through a ProcFs.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "fd.hpp"
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

void moveToFront(std::vector<int>& recent, int pid) {
  std::erase(recent, pid);
  recent.insert(recent.begin(), pid);
  if (recent.size() > kMaxRecent) recent.resize(kMaxRecent);
}

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

bool isAnonymousFile(std::string_view path) {
  return path.starts_with("memfd:") || path.starts_with("/memfd:");
}

}  // namespace

ProcessResolver::ProcessResolver(const ProcFs& proc, FileHasher& hasher)
    : proc_(proc), hasher_(hasher) {}

bool ProcessResolver::holdsSocket(int pid, std::uint64_t inode) {
  ++scanned_;
  const std::string fdDir = std::to_string(pid) + "/fd";
  const auto names = proc_.list(fdDir);
  if (!names) return false;  // exited, or not ours to look at
  std::string linkPath;
  return std::ranges::any_of(*names, [&](const std::string& name) {
    linkPath.assign(fdDir).append("/").append(name);
    const auto link = proc_.readLink(linkPath);
    return link && parseSocketLink(*link) == inode;  // no link: the fd was closed meanwhile
  });
}

std::optional<int> ProcessResolver::pidForSocket(std::uint64_t inode,
                                                 std::optional<std::uint32_t> uidHint) {
  // 1. Programs that sent mail recently are likely to again.
  const std::vector<int> recent = recent_;
  for (const int pid : recent) {
    if (holdsSocket(pid, inode)) {
      moveToFront(recent_, pid);
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
    if (holdsSocket(pid, inode)) {
      moveToFront(recent_, pid);
      return pid;
    }
  }
  for (const int pid : others) {
    if (holdsSocket(pid, inode)) {
      moveToFront(recent_, pid);
      return pid;
    }
  }
  return std::nullopt;
}

Result<ProcessInfo> ProcessResolver::describe(int pid) {
  const std::string dir = std::to_string(pid);
  const auto parseError = [&](const char* file) {
    return makeError("Failed to parse '" + (proc_.root() / dir / file).string() +
                     "': unexpected content");
  };

  ProcessInfo info;
  info.pid = pid;

  // The start time, read first and again last, tells whether the pid still names the same
  // process: everything read in between belongs to it.
  const auto statText = proc_.read(dir + "/stat");
  if (!statText) return statText.error();
  const auto startTime = parseStatStartTime(*statText);
  if (!startTime) return parseError("stat");
  info.startTime = *startTime;

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

  // Open the executable through /proc/PID/exe: that is the file actually mapped, even
  // when the path now holds another file or nothing at all.
  const std::filesystem::path exeLink = proc_.root() / dir / "exe";
  const detail::Fd exe{::open(exeLink.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!exe) {
    return makeError("Failed to open '" + exeLink.string() + "': " + std::strerror(errno));
  }
  struct stat exeStat {};
  if (::fstat(exe.get(), &exeStat) != 0) {
    return makeError("Failed to stat '" + exeLink.string() + "': " + std::strerror(errno));
  }
  auto exeHash = hasher_.sha256OfFd(exe.get());
  if (!exeHash) return exeHash.error();

  auto exePath = proc_.readLink(dir + "/exe");
  if (!exePath) return exePath.error();
  rules::ProgramIdentity& id = info.identity;
  id.path = std::move(*exePath);
  id.sha256 = std::move(*exeHash);
  id.deleted = stripDeletedSuffix(id.path);
  if (isAnonymousFile(id.path) || !pathIsSameFile(id.path, exeStat)) id.deleted = true;

  const std::string exeName = std::filesystem::path(id.path).filename().string();
  std::optional<std::string> script;
  if (rules::isInterpreter(exeName)) script = rules::scriptArgument(exeName, info.cmdline);
  if (script) {
    std::string absolute;
    if (script->starts_with('/')) {
      absolute = rules::normalisePath("/", *script);
    } else {
      auto cwd = proc_.readLink(dir + "/cwd");
      if (!cwd) return cwd.error();
      stripDeletedSuffix(*cwd);
      absolute = rules::normalisePath(*cwd, *script);
    }
    // The identity names the real file, so a symlink cannot stand in for its target.
    std::error_code ec;
    const auto real = std::filesystem::canonical(absolute, ec);
    if (ec) {
      id.scriptPath = absolute;
      id.deleted = true;  // the script is not (or no longer) where the command line says
    } else {
      id.scriptPath = real.string();
    }
    auto scriptHash = hasher_.sha256OfPath(id.scriptPath);
    id.scriptSha256 = scriptHash ? std::move(*scriptHash) : std::string{};
  }

  id.pathTrusted = !id.deleted && isRootOwnedChain(id.path) && !rules::isUnsafeLocation(id.path) &&
                   (!id.isInterpreted() ||
                    (isRootOwnedChain(id.scriptPath) && !rules::isUnsafeLocation(id.scriptPath)));

  const auto statAgain = proc_.read(dir + "/stat");
  if (!statAgain || parseStatStartTime(*statAgain) != startTime) {
    return makeError("Failed to describe process " + dir +
                     ": it exited or its pid was reused while it was read");
  }
  return info;
}

void ProcessResolver::forget(int pid) { std::erase(recent_, pid); }

}  // namespace mailguard::procinfo
