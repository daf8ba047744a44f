#pragma once
// Shared by the store's tests: a temporary state directory, a raw second connection,
// SQLite fault injection, and waiting for a StoreWriter's `done`.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "mailguard/store/store.hpp"

namespace mailguard::store::test {

using namespace std::chrono_literals;

// PRAGMA user_version of a database migrated to the schema this build knows.
inline constexpr const char* kSchemaVersion = "12";

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mailguard-store-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A second connection that bypasses the store, to look at pragmas and to inject failures.
class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& file) {
    if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open failed");
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    if (rc != SQLITE_OK) throw std::runtime_error(sql + ": " + msg);
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(stmt, 0);
      out = p != nullptr ? reinterpret_cast<const char*>(p) : "";
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A VFS that forwards to the default one but fails writes with SQLITE_FULL while
// `full` is set: a full disk, as the store's own connection sees it.
class FullDiskVfs {
 public:
  FullDiskVfs() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.zName = "mailguard-full-disk";
    vfs_.szOsFile = static_cast<int>(sizeof(sqlite3_file)) + real_->szOsFile;
    vfs_.pAppData = this;
    vfs_.xOpen = &open;
    sqlite3_vfs_register(&vfs_, 1);
  }
  ~FullDiskVfs() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, 1);
  }
  FullDiskVfs(const FullDiskVfs&) = delete;
  FullDiskVfs& operator=(const FullDiskVfs&) = delete;

  static inline std::atomic<bool> full{false};

 private:
  static sqlite3_file* inner(sqlite3_file* f) { return f + 1; }
  static const sqlite3_io_methods* m(sqlite3_file* f) { return inner(f)->pMethods; }

  static int open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags,
                  int* outFlags) {
    auto* self = static_cast<FullDiskVfs*>(vfs->pAppData);
    const int rc = self->real_->xOpen(self->real_, name, inner(f), flags, outFlags);
    f->pMethods = inner(f)->pMethods != nullptr ? &kMethods : nullptr;
    return rc;
  }

  static constexpr sqlite3_io_methods kMethods = {
      3,
      [](sqlite3_file* f) { return m(f)->xClose(inner(f)); },
      [](sqlite3_file* f, void* p, int n, sqlite3_int64 o) {
        return m(f)->xRead(inner(f), p, n, o);
      },
      [](sqlite3_file* f, const void* p, int n, sqlite3_int64 o) {
        return full ? SQLITE_FULL : m(f)->xWrite(inner(f), p, n, o);
      },
      [](sqlite3_file* f, sqlite3_int64 n) { return m(f)->xTruncate(inner(f), n); },
      [](sqlite3_file* f, int fl) { return m(f)->xSync(inner(f), fl); },
      [](sqlite3_file* f, sqlite3_int64* n) { return m(f)->xFileSize(inner(f), n); },
      [](sqlite3_file* f, int l) { return m(f)->xLock(inner(f), l); },
      [](sqlite3_file* f, int l) { return m(f)->xUnlock(inner(f), l); },
      [](sqlite3_file* f, int* r) { return m(f)->xCheckReservedLock(inner(f), r); },
      [](sqlite3_file* f, int op, void* a) { return m(f)->xFileControl(inner(f), op, a); },
      [](sqlite3_file* f) { return m(f)->xSectorSize(inner(f)); },
      [](sqlite3_file* f) { return m(f)->xDeviceCharacteristics(inner(f)); },
      [](sqlite3_file* f, int pg, int sz, int ext, void volatile** pp) {
        return m(f)->xShmMap(inner(f), pg, sz, ext, pp);
      },
      [](sqlite3_file* f, int o, int n, int fl) { return m(f)->xShmLock(inner(f), o, n, fl); },
      [](sqlite3_file* f) { m(f)->xShmBarrier(inner(f)); },
      [](sqlite3_file* f, int d) { return m(f)->xShmUnmap(inner(f), d); },
      [](sqlite3_file* f, sqlite3_int64 o, int n, void** pp) {
        return m(f)->xFetch(inner(f), o, n, pp);
      },
      [](sqlite3_file* f, sqlite3_int64 o, void* p) { return m(f)->xUnfetch(inner(f), o, p); },
  };

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
};

inline std::unique_ptr<SqliteStore> openStore(const std::filesystem::path& dir) {
  auto s = SqliteStore::open(dir);
  if (!s) throw std::runtime_error(s.error().message);
  return std::move(*s);
}

inline std::unique_ptr<StoreWriter> startWriter(const std::filesystem::path& dir,
                                                std::size_t maxQueued = 100'000) {
  auto w = StoreWriter::start(dir, maxQueued);
  if (!w) throw std::runtime_error(w.error().message);
  return std::move(*w);
}

// Runs one durable write and returns what its `done` got: flush() returns only after
// `done` has run.
template <class T, class Call>
Result<T> await(StoreWriter& w, Call call) {
  std::optional<Result<T>> out;
  call([&](Result<T> r) { out.emplace(std::move(r)); });
  w.flush();
  if (!out) throw std::runtime_error("done did not run before flush() returned");
  return std::move(*out);
}

inline Result<RuleWritten> addRule(StoreWriter& w, rules::ApprovalRule rule,
                                   std::optional<ProgramRecord> program = {}) {
  return await<RuleWritten>(
      w, [&](auto done) { w.addRule(std::move(rule), std::move(program), std::move(done)); });
}

inline Result<bool> removeRules(StoreWriter& w, std::string path, std::string scriptPath,
                                std::optional<rules::IdentityKind> kind = std::nullopt,
                                std::optional<std::uint32_t> user = std::nullopt) {
  return await<bool>(w, [&](auto done) {
    w.removeRules(std::move(path), std::move(scriptPath), std::move(done), kind, user);
  });
}

template <class Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

}  // namespace mailguard::store::test
