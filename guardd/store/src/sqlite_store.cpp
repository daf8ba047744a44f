#include <sqlite3.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <limits>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "mailguard/store/store.hpp"

namespace mailguard::store {
namespace {

template <auto Free>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    Free(p);
  }
};
using DbPtr = std::unique_ptr<sqlite3, CDeleter<sqlite3_close>>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, CDeleter<sqlite3_finalize>>;

constexpr int kBusyTimeoutMs = 5000;
constexpr std::uint32_t kMaxPage = 1000;
constexpr std::size_t kMaxCmdline = 4096;

// Schema migrations: entry i moves user_version i to i + 1. Append only; never edit a
// released entry. Text columns are NOT NULL with '' for "none" so that the UNIQUE
// constraints compare them (SQLite treats NULLs as distinct in UNIQUE).
constexpr std::array<const char*, 3> kMigrations = {
    R"sql(
CREATE TABLE programs(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  script_sha256 TEXT NOT NULL DEFAULT '',
  uid INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_attempt INTEGER NOT NULL,
  quarantined INTEGER NOT NULL DEFAULT 0,
  UNIQUE(path, sha256, script_path, script_sha256));

CREATE TABLE rules(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  action TEXT NOT NULL CHECK(action IN ('approve', 'deny')),
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  script_sha256 TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  UNIQUE(path, script_path));

CREATE TABLE rules_version(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  counter INTEGER NOT NULL);
INSERT INTO rules_version(id, counter) VALUES(1, 0);
CREATE TRIGGER rules_inserted AFTER INSERT ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER rules_updated AFTER UPDATE ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER rules_deleted AFTER DELETE ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;

CREATE TABLE attempts(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  program_id INTEGER REFERENCES programs(id) ON DELETE SET NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  uid INTEGER NOT NULL DEFAULT 0,
  path TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  cmdline TEXT NOT NULL DEFAULT '',
  src TEXT NOT NULL DEFAULT '',
  src_port INTEGER NOT NULL DEFAULT 0,
  dst TEXT NOT NULL DEFAULT '',
  dst_port INTEGER NOT NULL DEFAULT 0,
  verdict TEXT NOT NULL CHECK(verdict IN ('allow', 'hold', 'reject')),
  reason TEXT NOT NULL DEFAULT '');
-- Newest-first paging walks the rowid (id) itself; every index below ends in the
-- rowid implicitly, so "filter ... ORDER BY id DESC" is an index range scan.
CREATE INDEX attempts_by_program ON attempts(program_id);
CREATE INDEX attempts_by_verdict ON attempts(verdict);
CREATE INDEX attempts_by_time ON attempts(time);
)sql",
    // 1 -> 2, issue #5: the zombie detector's alerts and its persisted state
    // (guardd/store/src/detector_store.cpp).
    R"sql(
CREATE TABLE alerts(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  program_id INTEGER REFERENCES programs(id) ON DELETE SET NULL,
  principal TEXT NOT NULL,
  path TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  uid INTEGER NOT NULL DEFAULT 0,
  tier TEXT NOT NULL CHECK(tier IN ('soft', 'hard')),
  summary TEXT NOT NULL DEFAULT '',
  reasons TEXT NOT NULL DEFAULT '[]',
  evidence TEXT NOT NULL DEFAULT '{}',
  acknowledged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE detector_state(
  principal TEXT PRIMARY KEY,
  snapshot TEXT NOT NULL);
)sql",
    // 2 -> 3, issue #6: the host firewall, inbound probes and the mail-server audit
    // (guardd/store/src/host_store.cpp). List columns hold one item a line.
    R"sql(
CREATE TABLE firewall(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  enabled INTEGER NOT NULL DEFAULT 0,
  local_subnets TEXT NOT NULL DEFAULT '');
INSERT INTO firewall(id, enabled) VALUES(1, 0);
CREATE TABLE firewall_services(
  name TEXT PRIMARY KEY,
  local_only INTEGER NOT NULL DEFAULT 0);
CREATE TABLE probes(
  id INTEGER PRIMARY KEY,
  source TEXT NOT NULL,
  port INTEGER NOT NULL,
  count INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  UNIQUE(source, port));
CREATE INDEX probes_by_last_seen ON probes(last_seen);
CREATE TABLE audit_results(
  id INTEGER PRIMARY KEY,
  time INTEGER NOT NULL,
  family INTEGER NOT NULL,
  address TEXT NOT NULL,
  port INTEGER NOT NULL,
  exposure TEXT NOT NULL,
  pid INTEGER NOT NULL DEFAULT 0,
  uid INTEGER NOT NULL DEFAULT 0,
  path TEXT NOT NULL DEFAULT '',
  comm TEXT NOT NULL DEFAULT '',
  relay TEXT NOT NULL CHECK(relay IN ('open', 'closed', 'unreachable')),
  accepted TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  blocked_by_firewall INTEGER NOT NULL DEFAULT 0,
  probed_address TEXT NOT NULL DEFAULT '',
  own_domain TEXT NOT NULL DEFAULT '',
  transcript TEXT NOT NULL DEFAULT '');
)sql",
};

// Local until rules/policy.cpp lands; the strings are the stored (and --json) ones.
std::string_view verdictName(rules::Verdict v) {
  switch (v) {
    case rules::Verdict::Allow:
      return "allow";
    case rules::Verdict::Hold:
      return "hold";
    case rules::Verdict::Reject:
      return "reject";
  }
  return "hold";
}

rules::Verdict verdictFromName(std::string_view s) {
  if (s == "allow") return rules::Verdict::Allow;
  if (s == "reject") return rules::Verdict::Reject;
  return rules::Verdict::Hold;
}

std::int64_t toMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

TimePoint fromMicros(std::int64_t us) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds{us})};
}

// Cuts at a UTF-8 character boundary so that the stored text stays valid.
std::string_view boundedCmdline(std::string_view s) {
  if (s.size() <= kMaxCmdline) return s;
  std::size_t n = kMaxCmdline;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
  return s.substr(0, n);
}

Error failure(std::string_view verb, const std::filesystem::path& path, std::string_view why) {
  std::string m = "Failed to ";
  m.append(verb).append(" '").append(path.string()).append("': ").append(why);
  return makeError(std::move(m));
}

// One prepared statement. Bind errors (only possible through a programming error) are
// remembered and reported by the next step().
class Statement {
 public:
  static Result<Statement> prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return makeError(sqlite3_errmsg(db));
    return Statement(db, std::move(stmt));
  }
  // A statement kept prepared by the store (see PreparedCache); reset when this ends, so
  // that it holds no read transaction open between uses.
  static Statement borrow(sqlite3* db, sqlite3_stmt* stmt) { return Statement(db, stmt); }
  Statement(Statement&& o) noexcept
      : db_(o.db_),
        stmt_(std::move(o.stmt_)),
        borrowed_(std::exchange(o.borrowed_, nullptr)),
        bindError_(o.bindError_) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() {
    if (borrowed_ != nullptr) {
      sqlite3_reset(borrowed_);
      sqlite3_clear_bindings(borrowed_);
    }
  }

  Statement& bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(get(), i, v)); }
  Statement& bind(int i, std::string_view v) {
    return check(sqlite3_bind_text64(get(), i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  Statement& bind(int i, const std::optional<std::int64_t>& v) {
    return v ? bind(i, *v) : check(sqlite3_bind_null(get(), i));
  }

  // True when a row is available, false when done.
  Result<bool> step() {
    if (bindError_ != SQLITE_OK) return makeError(sqlite3_errstr(bindError_));
    const int rc = sqlite3_step(get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return makeError(sqlite3_errmsg(db_));
  }

  // Runs to completion, ignoring rows.
  Result<void> run() {
    for (;;) {
      auto r = step();
      if (!r) return r.error();
      if (!*r) return {};
    }
  }

  // Ready for new bindings (sqlite3_reset keeps the old ones; all are rebound).
  void reset() {
    sqlite3_reset(get());
    sqlite3_clear_bindings(get());
  }

  [[nodiscard]] std::int64_t integer(int col) const { return sqlite3_column_int64(get(), col); }
  [[nodiscard]] bool isNull(int col) const {
    return sqlite3_column_type(get(), col) == SQLITE_NULL;
  }
  [[nodiscard]] std::string text(int col) const {
    const auto* p = sqlite3_column_text(get(), col);
    if (p == nullptr) return {};
    return {reinterpret_cast<const char*>(p),
            static_cast<std::size_t>(sqlite3_column_bytes(get(), col))};
  }

 private:
  Statement(sqlite3* db, StmtPtr stmt) : db_(db), stmt_(std::move(stmt)) {}
  Statement(sqlite3* db, sqlite3_stmt* borrowed) : db_(db), borrowed_(borrowed) {}
  [[nodiscard]] sqlite3_stmt* get() const { return borrowed_ != nullptr ? borrowed_ : stmt_.get(); }
  Statement& check(int rc) {
    if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
    return *this;
  }
  sqlite3* db_;
  StmtPtr stmt_;
  sqlite3_stmt* borrowed_ = nullptr;
  int bindError_ = SQLITE_OK;
};

Result<void> exec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  std::unique_ptr<char, CDeleter<sqlite3_free>> owned(msg);
  if (rc == SQLITE_OK) return {};
  return makeError(owned ? owned.get() : sqlite3_errstr(rc));
}

}  // namespace

// Statements used on every verdict or every batch, prepared once per connection: parsing
// SQL cost more than running it (issue #7 profile: rulesVersion per verdict, writeBatch).
struct SqliteStore::PreparedCache {
  std::unordered_map<std::string, StmtPtr> statements;
};

namespace {

Result<Statement> cached(sqlite3* db, SqliteStore::PreparedCache& cache, std::string_view sql) {
  auto it = cache.statements.find(std::string(sql));
  if (it == cache.statements.end()) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return makeError(sqlite3_errmsg(db));
    it = cache.statements.emplace(std::string(sql), std::move(stmt)).first;
  }
  return Statement::borrow(db, it->second.get());
}

Result<std::int64_t> queryInteger(Result<Statement> stmt) {
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return makeError("no row");
  return stmt->integer(0);
}

Result<std::int64_t> queryInteger(sqlite3* db, std::string_view sql) {
  auto stmt = Statement::prepare(db, sql);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return makeError("no row");
  return stmt->integer(0);
}

// BEGIN IMMEDIATE takes the write lock up front (waiting up to the busy timeout), so a
// write transaction never fails half-way with SQLITE_BUSY_SNAPSHOT. Rolls back unless
// committed; after SQLITE_FULL or an I/O error SQLite may already have rolled back.
class Transaction {
 public:
  static Result<Transaction> begin(sqlite3* db) {
    auto r = exec(db, "BEGIN IMMEDIATE");
    if (!r) return r.error();
    return Transaction(db);
  }
  Transaction(Transaction&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Result<void> commit() {
    auto r = exec(db_, "COMMIT");
    if (r) db_ = nullptr;
    return r;
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

Result<void> migrate(sqlite3* db) {
  auto tx = Transaction::begin(db);
  if (!tx) return tx.error();
  auto version = queryInteger(db, "PRAGMA user_version");
  if (!version) return version.error();
  const auto known = static_cast<std::int64_t>(kMigrations.size());
  if (*version > known) {
    return makeError("schema version " + std::to_string(*version) +
                     " is newer than this program knows (" + std::to_string(known) + ")");
  }
  for (auto v = *version; v < known; ++v) {
    auto r = exec(db, kMigrations.at(static_cast<std::size_t>(v)));
    if (!r) return r.error();
  }
  if (*version < known) {
    const std::string set = "PRAGMA user_version = " + std::to_string(known);
    auto r = exec(db, set.c_str());
    if (!r) return r.error();
  }
  return tx->commit();
}

Result<void> configure(sqlite3* db) {
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  {
    auto stmt = Statement::prepare(db, "PRAGMA journal_mode = WAL");
    if (!stmt) return stmt.error();
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row || stmt->text(0) != "wal") return makeError("cannot switch to WAL journal mode");
  }  // finalized: an unfinished statement would keep the migration from committing
  // FULL syncs the WAL at every commit: an acknowledged approval survives power loss.
  auto r = exec(db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON");
  if (!r) return r.error();
  return migrate(db);
}

Result<void> makeStateDir(const std::filesystem::path& dir) {
  std::error_code ec;
  if (dir.has_parent_path()) std::filesystem::create_directories(dir.parent_path(), ec);
  if (ec) return failure("create", dir.parent_path(), ec.message());
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return failure("create", dir, std::error_code(errno, std::generic_category()).message());
  }
  return {};
}

}  // namespace

SqliteStore::SqliteStore(sqlite3* db, std::filesystem::path path)
    : db_(db), path_(std::move(path)), prepared_(std::make_unique<PreparedCache>()) {}

SqliteStore::~SqliteStore() {
  prepared_.reset();  // finalized first: sqlite3_close refuses while statements are open
  sqlite3_close(db_);
}

Result<void> SqliteStore::relaxSync() {
  // WAL with NORMAL: a commit is durable against a crash of guardd, and may be lost (the
  // database staying consistent) on power loss; the sync happens at checkpoints. The
  // approvals connection keeps FULL, and its commits sync every frame written before.
  if (auto r = exec(db_, "PRAGMA synchronous = NORMAL"); !r) {
    return failure("configure", path_, r.error().message);
  }
  return {};
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& stateDir) {
  if (auto r = makeStateDir(stateDir); !r) return r.error();
  auto path = stateDir / "mailguard.db";
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, nullptr);
  DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return failure("open", path, db ? sqlite3_errmsg(db.get()) : sqlite3_errstr(rc));
  }
  if (auto r = configure(db.get()); !r) return failure("open", path, r.error().message);
  return std::unique_ptr<SqliteStore>(new SqliteStore(db.release(), std::move(path)));
}

Result<std::vector<rules::ApprovalRule>> SqliteStore::loadRules() {
  auto stmt = Statement::prepare(
      db_, "SELECT id, action, path, sha256, script_path, script_sha256 FROM rules ORDER BY id");
  if (!stmt) return failure("read rules from", path_, stmt.error().message);
  std::vector<rules::ApprovalRule> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return failure("read rules from", path_, row.error().message);
    if (!*row) break;
    rules::ApprovalRule r;
    r.id = stmt->integer(0);
    r.action = stmt->text(1) == "deny" ? rules::RuleAction::Deny : rules::RuleAction::Approve;
    r.path = stmt->text(2);
    r.sha256 = stmt->text(3);
    r.scriptPath = stmt->text(4);
    r.scriptSha256 = stmt->text(5);
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::int64_t> SqliteStore::addRule(const rules::ApprovalRule& rule) {
  // REPLACE deletes the earlier rule for (path, script_path) and inserts a new row, so
  // the newest decision gets a new id; the insert trigger bumps rules_version.
  auto stmt = Statement::prepare(
      db_,
      "INSERT OR REPLACE INTO rules(action, path, sha256, script_path, script_sha256, created) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6) RETURNING id");
  if (!stmt) return failure("add a rule to", path_, stmt.error().message);
  stmt->bind(1, rule.action == rules::RuleAction::Deny ? "deny" : "approve")
      .bind(2, rule.path)
      .bind(3, rule.sha256)
      .bind(4, rule.scriptPath)
      .bind(5, rule.scriptSha256)
      .bind(6, toMicros(std::chrono::system_clock::now()));
  auto row = stmt->step();
  if (!row) return failure("add a rule to", path_, row.error().message);
  if (!*row) return failure("add a rule to", path_, "no id returned");
  const auto id = stmt->integer(0);
  // The statement commits when it is finished; finish it before reporting success.
  if (auto done = stmt->run(); !done) return failure("add a rule to", path_, done.error().message);
  lastDataVersion_ = -1;  // data_version ignores this connection's own commits
  return id;
}

Result<void> SqliteStore::removeRules(const std::string& path, const std::string& scriptPath) {
  auto stmt = Statement::prepare(db_, "DELETE FROM rules WHERE path = ?1 AND script_path = ?2");
  if (!stmt) return failure("remove rules from", path_, stmt.error().message);
  stmt->bind(1, path).bind(2, scriptPath);
  if (auto r = stmt->run(); !r) return failure("remove rules from", path_, r.error().message);
  lastDataVersion_ = -1;
  return {};
}

Result<std::int64_t> SqliteStore::rulesVersion() {
  // PRAGMA data_version changes when another connection (any process) committed; it
  // does not change for this connection's commits, which reset lastDataVersion_.
  auto dataVersion = queryInteger(cached(db_, *prepared_, "PRAGMA data_version"));
  if (!dataVersion) return failure("read the rules version of", path_, dataVersion.error().message);
  if (*dataVersion == lastDataVersion_ && lastRulesCounter_ >= 0) return lastRulesCounter_;
  auto counter =
      queryInteger(cached(db_, *prepared_, "SELECT counter FROM rules_version WHERE id = 1"));
  if (!counter) return failure("read the rules version of", path_, counter.error().message);
  lastDataVersion_ = *dataVersion;
  lastRulesCounter_ = *counter;
  return *counter;
}

Result<std::vector<ProgramRecord>> SqliteStore::loadPrograms() {
  auto stmt = Statement::prepare(
      db_,
      "SELECT p.id, p.path, p.sha256, p.script_path, p.script_sha256, p.uid, p.first_seen, "
      "  MAX(p.last_attempt, COALESCE(a.last, p.last_attempt)), p.quarantined, COALESCE(a.n, 0) "
      "FROM programs p LEFT JOIN ("
      "  SELECT program_id, COUNT(*) AS n, MAX(time) AS last FROM attempts "
      "  WHERE program_id IS NOT NULL GROUP BY program_id) a ON a.program_id = p.id "
      "ORDER BY p.id");
  if (!stmt) return failure("read programs from", path_, stmt.error().message);
  std::vector<ProgramRecord> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return failure("read programs from", path_, row.error().message);
    if (!*row) break;
    ProgramRecord p;
    p.id = stmt->integer(0);
    p.identity.path = stmt->text(1);
    p.identity.sha256 = stmt->text(2);
    p.identity.scriptPath = stmt->text(3);
    p.identity.scriptSha256 = stmt->text(4);
    p.uid = static_cast<std::uint32_t>(stmt->integer(5));
    p.firstSeen = fromMicros(stmt->integer(6));
    p.lastAttempt = fromMicros(stmt->integer(7));
    p.quarantined = stmt->integer(8) != 0;
    p.attempts = stmt->integer(9);
    out.push_back(std::move(p));
  }
  return out;
}

Result<void> SqliteStore::setQuarantined(std::int64_t programId, bool quarantined) {
  auto stmt = Statement::prepare(db_, "UPDATE programs SET quarantined = ?1 WHERE id = ?2");
  if (!stmt) return failure("update a program in", path_, stmt.error().message);
  stmt->bind(1, std::int64_t{quarantined ? 1 : 0}).bind(2, programId);
  if (auto r = stmt->run(); !r) return failure("update a program in", path_, r.error().message);
  if (sqlite3_changes64(db_) == 0) {
    return failure("update a program in", path_, "no program with id " + std::to_string(programId));
  }
  return {};
}

Result<std::vector<AttemptRecord>> SqliteStore::attempts(const AttemptQuery& q) {
  std::string sql =
      "SELECT id, time, program_id, pid, uid, path, script_path, cmdline, src, src_port, dst, "
      "dst_port, verdict, reason FROM attempts WHERE 1";
  if (q.beforeId) sql += " AND id < ?1";
  if (q.programId) sql += " AND program_id = ?2";
  if (q.verdict) sql += " AND verdict = ?3";
  if (q.since) sql += " AND time >= ?4";
  if (q.until) sql += " AND time < ?5";
  sql += " ORDER BY id DESC LIMIT ?6";
  auto stmt = Statement::prepare(db_, sql);
  if (!stmt) return failure("read attempts from", path_, stmt.error().message);
  if (q.beforeId) stmt->bind(1, *q.beforeId);
  if (q.programId) stmt->bind(2, *q.programId);
  if (q.verdict) stmt->bind(3, verdictName(*q.verdict));
  if (q.since) stmt->bind(4, toMicros(*q.since));
  if (q.until) stmt->bind(5, toMicros(*q.until));
  stmt->bind(6, std::int64_t{std::min(q.limit, kMaxPage)});

  std::vector<AttemptRecord> out;
  for (;;) {
    auto row = stmt->step();
    if (!row) return failure("read attempts from", path_, row.error().message);
    if (!*row) break;
    AttemptRecord a;
    a.id = stmt->integer(0);
    a.time = fromMicros(stmt->integer(1));
    if (!stmt->isNull(2)) a.programId = stmt->integer(2);
    a.pid = static_cast<int>(stmt->integer(3));
    a.uid = static_cast<std::uint32_t>(stmt->integer(4));
    a.path = stmt->text(5);
    a.scriptPath = stmt->text(6);
    a.cmdline = stmt->text(7);
    a.src = stmt->text(8);
    a.srcPort = static_cast<std::uint16_t>(stmt->integer(9));
    a.dst = stmt->text(10);
    a.dstPort = static_cast<std::uint16_t>(stmt->integer(11));
    a.verdict = verdictFromName(stmt->text(12));
    a.reason = stmt->text(13);
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::int64_t> SqliteStore::attemptCount() {
  auto n = queryInteger(db_, "SELECT COUNT(*) FROM attempts");
  if (!n) return failure("count attempts in", path_, n.error().message);
  return n;
}

Result<void> SqliteStore::upsertProgram(const ProgramRecord& p) {
  std::vector<AttemptRecord> none;
  return writeBatch({p}, none);
}

Result<void> SqliteStore::insertAttempts(std::vector<AttemptRecord>& batch) {
  return writeBatch({}, batch);
}

Result<void> SqliteStore::writeBatch(const std::vector<ProgramRecord>& programs,
                                     std::vector<AttemptRecord>& attempts) {
  if (programs.empty() && attempts.empty()) return {};
  auto fail = [this](const Error& e) { return failure("write attempts to", path_, e.message); };
  auto tx = Transaction::begin(db_);
  if (!tx) return fail(tx.error());

  if (!programs.empty()) {
    // A sighting of a known program (same id, or same identity) refreshes uid, last
    // attempt and quarantine; first_seen and the identity stay as first recorded.
    auto stmt = cached(
        db_, *prepared_,
        "INSERT INTO programs(id, path, sha256, script_path, script_sha256, uid, first_seen, "
        "  last_attempt, quarantined) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT(id) DO UPDATE SET uid = excluded.uid, "
        "  last_attempt = MAX(last_attempt, excluded.last_attempt), "
        "  quarantined = excluded.quarantined "
        "ON CONFLICT(path, sha256, script_path, script_sha256) DO UPDATE SET "
        "  uid = excluded.uid, last_attempt = MAX(last_attempt, excluded.last_attempt), "
        "  quarantined = excluded.quarantined");
    if (!stmt) return fail(stmt.error());
    for (const auto& p : programs) {
      stmt->reset();
      stmt->bind(1, p.id > 0 ? std::optional<std::int64_t>{p.id} : std::nullopt)
          .bind(2, p.identity.path)
          .bind(3, p.identity.sha256)
          .bind(4, p.identity.scriptPath)
          .bind(5, p.identity.scriptSha256)
          .bind(6, std::int64_t{p.uid})
          .bind(7, toMicros(p.firstSeen))
          .bind(8, toMicros(p.lastAttempt))
          .bind(9, std::int64_t{p.quarantined ? 1 : 0});
      if (auto r = stmt->run(); !r) return fail(r.error());
    }
  }

  std::vector<std::int64_t> ids;
  if (!attempts.empty()) {
    // A programId the programs table does not hold (its sighting was dropped) becomes
    // NULL instead of failing the foreign key and with it the whole batch.
    auto stmt = cached(
        db_, *prepared_,
        "INSERT INTO attempts(id, time, program_id, pid, uid, path, script_path, cmdline, src, "
        "  src_port, dst, dst_port, verdict, reason) "
        "VALUES(NULLIF(?14, 0), ?1, (SELECT id FROM programs WHERE id = ?2), ?3, ?4, ?5, ?6, ?7, "
        "  ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id");
    if (!stmt) return fail(stmt.error());
    ids.reserve(attempts.size());
    for (const auto& a : attempts) {
      stmt->reset();
      stmt->bind(1, toMicros(a.time))
          .bind(2, a.programId)
          .bind(3, std::int64_t{a.pid})
          .bind(4, std::int64_t{a.uid})
          .bind(5, a.path)
          .bind(6, a.scriptPath)
          .bind(7, boundedCmdline(a.cmdline))
          .bind(8, a.src)
          .bind(9, std::int64_t{a.srcPort})
          .bind(10, a.dst)
          .bind(11, std::int64_t{a.dstPort})
          .bind(12, verdictName(a.verdict))
          .bind(13, a.reason)
          .bind(14, a.id);  // guardd numbers attempts itself so its signals carry the id
      auto row = stmt->step();
      if (!row) return fail(row.error());
      if (!*row) return fail(makeError("no id returned"));
      ids.push_back(stmt->integer(0));
      if (auto r = stmt->run(); !r) return fail(r.error());
    }
  }

  if (auto r = tx->commit(); !r) return fail(r.error());
  for (std::size_t i = 0; i < ids.size(); ++i) attempts[i].id = ids[i];
  return {};
}

Result<void> SqliteStore::prune(TimePoint before, std::uint64_t maxCount) {
  auto fail = [this](const Error& e) { return failure("prune attempts in", path_, e.message); };
  auto tx = Transaction::begin(db_);
  if (!tx) return fail(tx.error());
  auto byAge = Statement::prepare(db_, "DELETE FROM attempts WHERE time < ?1");
  if (!byAge) return fail(byAge.error());
  byAge->bind(1, toMicros(before));
  if (auto r = byAge->run(); !r) return fail(r.error());
  // Everything at or below the id of the (maxCount + 1)-th newest attempt goes.
  auto byCount = Statement::prepare(db_,
                                    "DELETE FROM attempts WHERE id <= "
                                    "(SELECT id FROM attempts ORDER BY id DESC LIMIT 1 OFFSET ?1)");
  if (!byCount) return fail(byCount.error());
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  byCount->bind(1, static_cast<std::int64_t>(std::min(maxCount, kMax)));
  if (auto r = byCount->run(); !r) return fail(r.error());
  if (auto r = tx->commit(); !r) return fail(r.error());
  return {};
}

}  // namespace mailguard::store
