// SHA-256 of files with a cache keyed by what fstat says about them, and the
// root-owned-chain check behind path-only approvals.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string_view>
#include <thread>

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

// The worker of the background mode: one thread, files hashed in the order asked, each
// at most once at a time.
struct FileHasher::Worker {
  struct Job {
    Fd fd;  // a copy: the caller's may be closed before the worker reads
    Key key{};
    std::function<void(Result<std::string>)> done;  // a path job's; empty for a fd job
    std::filesystem::path path;
  };
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Job> jobs;
  std::vector<Key> queued;  // keys of the fd jobs waiting or in hand
  bool stop = false;
  std::function<void()> onHashed;
  std::thread thread;
};

FileHasher::FileHasher() = default;

FileHasher::~FileHasher() {
  if (!worker_) return;
  {
    const std::lock_guard lock(worker_->mu);
    worker_->stop = true;
  }
  worker_->wake.notify_all();
  worker_->thread.join();
}

std::size_t FileHasher::cacheSize() const {
  const std::lock_guard lock(mu_);
  return cache_.size();
}

std::uint64_t FileHasher::hashesComputed() const {
  const std::lock_guard lock(mu_);
  return computed_;
}

Result<FileHasher::Key> FileHasher::keyOf(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return hashError(fd, std::strerror(errno));
  // Only regular files: reading a FIFO or a device could block or never end.
  if (!S_ISREG(st.st_mode)) return hashError(fd, "not a regular file");
  return Key{static_cast<std::uint64_t>(st.st_dev),
             static_cast<std::uint64_t>(st.st_ino),
             static_cast<std::uint64_t>(st.st_size),
             st.st_mtim.tv_sec,
             st.st_mtim.tv_nsec,
             st.st_ctim.tv_sec,
             st.st_ctim.tv_nsec};
}

std::optional<Result<std::string>> FileHasher::known(const Key& key) const {
  const std::lock_guard lock(mu_);
  if (const auto it = cache_.find(key); it != cache_.end()) return Result<std::string>{it->second};
  if (const auto it = failed_.find(key); it != failed_.end()) {
    return Result<std::string>{makeError(it->second)};
  }
  return std::nullopt;
}

Result<std::string> FileHasher::sha256OfFd(int fd) {
  auto key = keyOf(fd);
  if (!key) return key.error();
  if (auto hit = known(*key)) return std::move(*hit);
  return compute(fd, *key);
}

Result<std::string> FileHasher::compute(int fd, const Key& before) {
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
  std::string hex = toHex(digest.data(), digestLen);

  // Cache only when the file did not change while it was read; otherwise the hash may mix
  // two versions and must not be reused (the next call reads it again).
  auto after = keyOf(fd);
  const std::lock_guard lock(mu_);
  ++computed_;
  if (after && *after == before && offset == static_cast<off_t>(before.size)) {
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(before, hex);
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

void FileHasher::startBackground(std::function<void()> onHashed) {
  if (worker_) return;
  worker_ = std::make_unique<Worker>();
  worker_->onHashed = std::move(onHashed);
  worker_->thread = std::thread([this] {
    Worker& w = *worker_;
    std::unique_lock lock(w.mu);
    for (;;) {
      w.wake.wait(lock, [&] { return w.stop || !w.jobs.empty(); });
      if (w.stop) return;
      Worker::Job job = std::move(w.jobs.front());
      w.jobs.pop_front();
      lock.unlock();
      if (job.done) {
        job.done(sha256OfPath(job.path));
      } else {
        auto hash = compute(job.fd.get(), job.key);
        if (!hash) {
          const std::lock_guard failedLock(mu_);
          if (failed_.size() >= kMaxCacheEntries) failed_.clear();
          failed_.emplace(job.key, hash.error().message);
        }
        if (w.onHashed) w.onHashed();
      }
      lock.lock();
      if (!job.done) std::erase(w.queued, job.key);
    }
  });
}

Result<std::string> FileHasher::sha256OfFdOrQueue(int fd) {
  if (!worker_) return sha256OfFd(fd);
  auto key = keyOf(fd);
  if (!key) return key.error();
  if (auto hit = known(*key)) return std::move(*hit);
  {
    const std::lock_guard lock(worker_->mu);
    if (std::find(worker_->queued.begin(), worker_->queued.end(), *key) == worker_->queued.end()) {
      Fd copy{::fcntl(fd, F_DUPFD_CLOEXEC, 0)};
      if (!copy) return hashError(fd, std::strerror(errno));
      worker_->queued.push_back(*key);
      worker_->jobs.push_back(Worker::Job{std::move(copy), *key, {}, {}});
    }
  }
  worker_->wake.notify_one();
  return makeError("its file is being hashed", Errc::Pending);
}

Result<std::string> FileHasher::sha256OfPathOrQueue(const std::filesystem::path& p) {
  Fd fd{::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)};
  if (!fd) return makeError("Failed to hash '" + p.string() + "': " + std::strerror(errno));
  return sha256OfFdOrQueue(fd.get());
}

void FileHasher::hashPathInBackground(std::filesystem::path p,
                                      std::function<void(Result<std::string>)> done) {
  if (!worker_) return done(sha256OfPath(p));
  {
    const std::lock_guard lock(worker_->mu);
    worker_->jobs.push_back(Worker::Job{Fd{}, Key{}, std::move(done), std::move(p)});
  }
  worker_->wake.notify_one();
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
