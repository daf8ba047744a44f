// ProcFs over a real directory tree (/proc, or a fake tree in tests).
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

#include "mailguard/common/fd.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {

namespace {

// /proc text files are small; cmdline is the largest and its first MiB holds the
// interpreter's script argument, so longer content is cut rather than refused.
constexpr std::size_t kMaxFileSize = std::size_t{1024} * 1024;
constexpr std::size_t kMaxLinkSize = std::size_t{64} * 1024;

Error failure(const char* verb, const std::filesystem::path& p, int err) {
  return makeError(std::string("Failed to ") + verb + " '" + p.string() +
                   "': " + std::strerror(err));
}

struct DirCloser {
  void operator()(DIR* d) const noexcept { ::closedir(d); }
};

}  // namespace

DirProcFs::DirProcFs(std::filesystem::path root) : root_(std::move(root)) {}

Result<std::string> DirProcFs::read(std::string_view relPath) const {
  const std::filesystem::path p = root_ / relPath;
  Fd fd{::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY)};
  if (!fd) return failure("read", p, errno);
  std::string out;
  char buf[16384];
  while (out.size() < kMaxFileSize) {
    const std::size_t want = std::min(sizeof(buf), kMaxFileSize - out.size());
    const ssize_t n = ::read(fd.get(), buf, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      return failure("read", p, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Result<std::string> DirProcFs::readLink(std::string_view relPath) const {
  const std::filesystem::path p = root_ / relPath;
  std::string buf(256, '\0');
  for (;;) {
    const ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
    if (n < 0) return failure("read", p, errno);
    // readlink(2) truncates silently: a full buffer means the link may be longer.
    if (static_cast<std::size_t>(n) < buf.size()) {
      buf.resize(static_cast<std::size_t>(n));
      return buf;
    }
    if (buf.size() >= kMaxLinkSize) return failure("read", p, ENAMETOOLONG);
    buf.resize(buf.size() * 4);
  }
}

Result<std::vector<std::string>> DirProcFs::list(std::string_view relPath) const {
  const std::filesystem::path p = root_ / relPath;
  Fd fd{::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!fd) return failure("list", p, errno);
  std::unique_ptr<DIR, DirCloser> dir{::fdopendir(fd.get())};
  if (!dir) return failure("list", p, errno);
  fd.release();  // the DIR owns it now
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    const dirent* entry = ::readdir(dir.get());
    if (entry == nullptr) {
      if (errno != 0) return failure("list", p, errno);
      break;
    }
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  return names;
}

}  // namespace mailguard::procinfo
