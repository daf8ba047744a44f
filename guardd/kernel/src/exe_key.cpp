// The user-space half of the kernel's identity vocabulary: the same ExeKey the BPF
// programs compute from mm->exe_file, from a stat(2) here; taint words; the cgroup v2
// mount point.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel {
namespace {

ExeKey keyOfStat(const struct stat& st) {
  ExeKey key;
  key.ino = st.st_ino;
  key.dev = kernelDev(st.st_dev);
  // stat's ctime is the inode's ctime (with the multigrain "queried" flag masked, as the
  // BPF side masks it).
  key.ctimeSec = st.st_ctim.tv_sec;
  key.ctimeNsec = st.st_ctim.tv_nsec;
  return key;
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeMountField(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '3') {
      const int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out.push_back(static_cast<char>(v));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::uint32_t kernelDev(std::uint64_t statDev) {
  // The kernel's dev_t is major << 20 | minor (MINORBITS 20); stat(2) hands out the
  // "new" user-space encoding that major()/minor() decode.
  const auto maj = static_cast<std::uint32_t>(major(statDev));
  const auto min = static_cast<std::uint32_t>(minor(statDev));
  return (maj << 20U) | (min & 0xfffffU);
}

Result<ExeKey> exeKeyOfFd(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    return systemError("Failed to stat fd " + std::to_string(fd) + ": " + std::strerror(err), err);
  }
  return keyOfStat(st);
}

Result<ExeKey> exeKeyOfPath(const std::filesystem::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT) return notFound("Failed to stat '" + p.string() + "': no such file");
    return systemError("Failed to stat '" + p.string() + "': " + std::strerror(err), err);
  }
  return keyOfStat(st);
}

std::string describeTaint(std::uint32_t taint) {
  std::string out;
  const auto add = [&out](const char* what) {
    if (!out.empty()) out += ", ";
    out += what;
  };
  if ((taint & kTaintUserMapping) != 0) add("LD_PRELOAD or a user's library");
  if ((taint & kTaintTraced) != 0) add("traced");
  if ((taint & kTaintMemAccess) != 0) add("memory opened by another process");
  const std::uint32_t unknown = taint & ~(kTaintUserMapping | kTaintTraced | kTaintMemAccess);
  if (unknown != 0) {
    std::ostringstream hex;
    hex << "unknown taint 0x" << std::hex << unknown;
    add(hex.str().c_str());
  }
  return out;
}

std::optional<std::filesystem::path> cgroup2Root(const std::filesystem::path& mountinfo) {
  std::ifstream in(mountinfo);
  std::string line;
  std::optional<std::filesystem::path> found;
  while (std::getline(in, line)) {
    // id parent major:minor root mount-point options [optional fields...] - type source ...
    std::istringstream fields(line);
    std::string id, parent, devno, root, mountPoint, options, f;
    if (!(fields >> id >> parent >> devno >> root >> mountPoint >> options)) continue;
    while (fields >> f && f != "-") {
    }
    std::string type;
    if (f != "-" || !(fields >> type) || type != "cgroup2") continue;
    // A mount of the hierarchy's root sees every cgroup; a bind mount of a sub-cgroup
    // (root other than "/") only part of it: take it only when there is nothing better.
    if (root == "/") return std::filesystem::path(unescapeMountField(mountPoint));
    if (!found) found = std::filesystem::path(unescapeMountField(mountPoint));
  }
  return found;
}

}  // namespace mailguard::kernel
