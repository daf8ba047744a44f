#pragma once
// The one way the store talks to SQLite: a connection (Database) with its prepared-
// statement cache, statements, transactions and the column conversions shared by the
// reader (SqliteStore) and the writer thread (StoreWriter). Private to mailguard_store.
#include <sqlite3.h>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mailguard/common/c_deleter.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::store::sql {

using DbPtr = std::unique_ptr<sqlite3, CDeleter<sqlite3_close>>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, CDeleter<sqlite3_finalize>>;

// How long a statement waits for another connection's write lock before failing.
inline constexpr int kBusyTimeoutMs = 5000;

// PRAGMA synchronous in WAL mode. Full syncs the WAL at every commit (an acknowledged
// approval survives power loss); Normal syncs only at checkpoints (a commit survives a
// crash of guardd, and may be lost on power loss, the database staying consistent).
enum class Sync { Normal, Full };

// One prepared statement, owned or borrowed from a Database's cache (then reset and
// unbound when this ends, so that it holds no read transaction open between uses).
// Bind errors (only possible through a programming error) are remembered and reported
// by the next step().
class Statement {
 public:
  Statement(Statement&& o) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, std::string_view v);
  Statement& bind(int i, const std::optional<std::int64_t>& v);  // NULL when empty
  // Exactly bool: a string literal must not turn into `true` on its way to string_view.
  template <class B>
  requires std::same_as<B, bool> Statement& bind(int i, B v) {
    return bind(i, std::int64_t{v ? 1 : 0});
  }

  // True when a row is available, false when done.
  Result<bool> step();
  // Runs to completion, ignoring rows.
  Result<void> run();
  // Ready for new bindings (every parameter is rebound).
  void reset();

  [[nodiscard]] std::int64_t integer(int col) const;
  [[nodiscard]] bool isNull(int col) const;
  [[nodiscard]] std::string text(int col) const;  // empty for NULL

 private:
  friend class Database;
  Statement(sqlite3* db, StmtPtr owned);
  Statement(sqlite3* db, sqlite3_stmt* borrowed);
  [[nodiscard]] sqlite3_stmt* get() const {
    return borrowed_ != nullptr ? borrowed_ : owned_.get();
  }
  Statement& check(int rc);
  sqlite3* db_;
  StmtPtr owned_;
  sqlite3_stmt* borrowed_ = nullptr;
  int bindError_ = SQLITE_OK;
};

// One connection: opened with NOFOLLOW (a symlink planted at the database path is
// refused), WAL, a busy timeout, foreign keys and extended result codes. Used by one
// thread at a time.
class Database {
 public:
  static Result<Database> open(const std::filesystem::path& file, Sync sync);
  Database(Database&&) noexcept = default;
  Database& operator=(Database&&) noexcept = default;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  // A statement prepared for this one use.
  Result<Statement> prepare(std::string_view sql);
  // A statement prepared once per connection and kept: for those run per verdict or per
  // batch, where parsing the SQL costs more than running it.
  Result<Statement> cached(std::string_view sql);
  Result<void> exec(const char* sql);
  // The first column of the first row.
  Result<std::int64_t> queryInteger(std::string_view sql);
  Result<void> setSync(Sync sync);
  // Rows changed by the last INSERT, UPDATE or DELETE of this connection.
  [[nodiscard]] std::int64_t changes() const;

 private:
  friend class Transaction;
  Database(DbPtr db, std::filesystem::path path);
  DbPtr db_;
  std::filesystem::path path_;
  // Declared after db_, so finalized before it closes (sqlite3_close refuses while
  // statements are open).
  std::unordered_map<std::string, StmtPtr> cache_;
};

// BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
// write transaction never fails half-way with SQLITE_BUSY_SNAPSHOT. Rolls back unless
// committed; after SQLITE_FULL or an I/O error SQLite may already have rolled back.
class Transaction {
 public:
  static Result<Transaction> begin(Database& db);
  Transaction(Transaction&& o) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  Result<void> commit();

 private:
  explicit Transaction(Database& db) : db_(&db) {}
  Database* db_;
};

// "Failed to <verb> '<path>': <why>".
Error failure(std::string_view verb, const std::filesystem::path& path, std::string_view why);

// Times are stored as microseconds since the epoch.
inline std::int64_t toMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
inline TimePoint fromMicros(std::int64_t us) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds{us})};
}

// Lists are stored one item a line: every caller stores items that hold no newline
// (reasons, service names, CIDRs, variant names, transcript lines split before).
std::string joinLines(const std::vector<std::string>& items);
std::vector<std::string> splitLines(const std::string& text);

// Creates the state directory (0750) and DIR/mailguard.db, and creates or migrates the
// schema: what both the reader and the writer do on start, in either order.
Result<Database> openStateDatabase(const std::filesystem::path& stateDir, Sync sync);

}  // namespace mailguard::store::sql
