// SHA-256 of files with a cache keyed by what fstat says about them, and the
// root-owned-chain check behind path-only approvals.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

#include "mailguard/common/fd.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {

namespace {

constexpr std::size_t kChunk = std::size_t{64} * 1024;
// Distinct executables and scripts on one host are few; the bound only stops growth from
// files rewritten over and over (each version gets a new key).
constexpr std::size_t kMaxCacheEntries = 4096;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};

std::string toHex(const unsigned char* data, std::size_t len) {
  constexpr std::string_view kDigits = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (std::size_t i = 0; i < len; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0x0f]);
  }
  return out;
}

Error hashError(int fd, const std::string& reason) {
  return makeError("Failed to hash fd " + std::to_string(fd) + ": " + reason);
}

}  // namespace

std::size_t FileHasher::KeyHash::operator()(const Key& k) const noexcept {
  std::size_t h = std::hash<std::uint64_t>{}(k.ino);
  const auto mix = [&h](std::uint64_t v) {
    h ^= std::hash<std::uint64_t>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  };
  mix(k.dev);
  mix(k.size);
  mix(static_cast<std::uint64_t>(k.mtimeSec));
  mix(static_cast<std::uint64_t>(k.mtimeNsec));
  mix(static_cast<std::uint64_t>(k.ctimeSec));
  mix(static_cast<std::uint64_t>(k.ctimeNsec));
  return h;
}

Result<std::string> FileHasher::sha256OfFd(int fd) {
  struct stat before {};
  if (::fstat(fd, &before) != 0) return hashError(fd, std::strerror(errno));
  // Only regular files: reading a FIFO or a device could block or never end.
  if (!S_ISREG(before.st_mode)) return hashError(fd, "not a regular file");
  const Key key{static_cast<std::uint64_t>(before.st_dev),
                static_cast<std::uint64_t>(before.st_ino),
                static_cast<std::uint64_t>(before.st_size),
                before.st_mtim.tv_sec,
                before.st_mtim.tv_nsec,
                before.st_ctim.tv_sec,
                before.st_ctim.tv_nsec};
  if (const auto it = cache_.find(key); it != cache_.end()) return it->second;

  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx{EVP_MD_CTX_new()};
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return hashError(fd, "EVP_DigestInit_ex failed");
  }
  std::vector<unsigned char> buf(kChunk);
  off_t offset = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      return hashError(fd, std::strerror(errno));
    }
    if (n == 0) break;
    if (EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<std::size_t>(n)) != 1) {
      return hashError(fd, "EVP_DigestUpdate failed");
    }
    offset += n;
  }
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digestLen = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest.data(), &digestLen) != 1) {
    return hashError(fd, "EVP_DigestFinal_ex failed");
  }
  ++computed_;
  std::string hex = toHex(digest.data(), digestLen);

  // Cache only when the file did not change while it was read; otherwise the hash may mix
  // two versions and must not be reused (the next call reads it again).
  struct stat after {};
  if (::fstat(fd, &after) == 0 && after.st_size == before.st_size &&
      after.st_mtim.tv_sec == before.st_mtim.tv_sec &&
      after.st_mtim.tv_nsec == before.st_mtim.tv_nsec &&
      after.st_ctim.tv_sec == before.st_ctim.tv_sec &&
      after.st_ctim.tv_nsec == before.st_ctim.tv_nsec && offset == before.st_size) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(key, hex);
  }
  return hex;
}

Result<std::string> FileHasher::sha256OfPath(const std::filesystem::path& p) {
  // Follows symlinks (a script may be reached through one); O_NONBLOCK keeps open() of a
  // FIFO from waiting for a writer, and sha256OfFd refuses anything but a regular file.
  Fd fd{::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!fd) return makeError("Failed to hash '" + p.string() + "': " + std::strerror(errno));
  auto hash = sha256OfFd(fd.get());
  if (!hash) {
    // Name the path rather than the short-lived fd number.
    const std::string fdPrefix = "Failed to hash fd " + std::to_string(fd.get());
    std::string reason = hash.error().message;
    if (reason.starts_with(fdPrefix))
      reason.replace(0, fdPrefix.size(), "Failed to hash '" + p.string() + "'");
    return makeError(std::move(reason));
  }
  return hash;
}

bool isRootOwnedChain(const std::filesystem::path& p) {
  // Resolve symlinks first, so the chain checked is the one of the file actually opened.
  std::unique_ptr<char, decltype(&std::free)> real{::realpath(p.c_str(), nullptr), &std::free};
  if (!real) return false;
  std::filesystem::path current{real.get()};
  for (;;) {
    struct stat st {};
    if (::lstat(current.c_str(), &st) != 0) return false;
    // Any write bit for group or others disqualifies, sticky or not: whatever lies under
    // /tmp was placed there by someone who may not be root.
    if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) return false;
    if (!current.has_relative_path()) return true;  // reached "/"
    current = current.parent_path();
  }
}

}  // namespace mailguard::procinfo
