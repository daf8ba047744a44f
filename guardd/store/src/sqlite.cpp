#include "sqlite.hpp"

#include <string>
#include <utility>

#include "mailguard/rules/secrets.hpp"

namespace mailguard::store::sql {
namespace {

// mailguard_mask_cmdline(TEXT): rules::maskCommandLine, for the migration that masks
// command lines stored before guardd masked them. NULL and non-text pass through.
void maskCmdlineFunction(sqlite3_context* ctx, int /*argc*/, sqlite3_value** argv) {
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT) {
    sqlite3_result_value(ctx, argv[0]);
    return;
  }
  const auto* text = reinterpret_cast<const char*>(sqlite3_value_text(argv[0]));
  const auto size = static_cast<std::size_t>(sqlite3_value_bytes(argv[0]));
  const std::string masked = rules::maskCommandLine(std::string_view(text, size));
  sqlite3_result_text64(ctx, masked.data(), masked.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

}  // namespace

Statement::Statement(sqlite3* db, StmtPtr owned) : db_(db), owned_(std::move(owned)) {}
Statement::Statement(sqlite3* db, sqlite3_stmt* borrowed) : db_(db), borrowed_(borrowed) {}

Statement::Statement(Statement&& o) noexcept
    : db_(o.db_),
      owned_(std::move(o.owned_)),
      borrowed_(std::exchange(o.borrowed_, nullptr)),
      bindError_(o.bindError_) {}

Statement::~Statement() {
  if (borrowed_ != nullptr) {
    sqlite3_reset(borrowed_);
    sqlite3_clear_bindings(borrowed_);
  }
}

Statement& Statement::check(int rc) {
  if (rc != SQLITE_OK && bindError_ == SQLITE_OK) bindError_ = rc;
  return *this;
}

Statement& Statement::bind(int i, std::int64_t v) { return check(sqlite3_bind_int64(get(), i, v)); }

Statement& Statement::bind(int i, std::string_view v) {
  return check(sqlite3_bind_text64(get(), i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
}

Statement& Statement::bind(int i, const std::optional<std::int64_t>& v) {
  return v ? bind(i, *v) : check(sqlite3_bind_null(get(), i));
}

Result<bool> Statement::step() {
  if (bindError_ != SQLITE_OK) return makeError(sqlite3_errstr(bindError_));
  const int rc = sqlite3_step(get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return makeError(sqlite3_errmsg(db_));
}

Result<void> Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) return r.error();
    if (!*r) return {};
  }
}

void Statement::reset() {
  sqlite3_reset(get());
  sqlite3_clear_bindings(get());
  bindError_ = SQLITE_OK;
}

std::int64_t Statement::integer(int col) const { return sqlite3_column_int64(get(), col); }

bool Statement::isNull(int col) const { return sqlite3_column_type(get(), col) == SQLITE_NULL; }

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(get(), col);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p),
          static_cast<std::size_t>(sqlite3_column_bytes(get(), col))};
}

Database::Database(DbPtr db, std::filesystem::path path)
    : db_(std::move(db)), path_(std::move(path)) {}

Database::~Database() = default;

Result<Database> Database::open(const std::filesystem::path& file, Sync sync) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(file.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOFOLLOW, nullptr);
  DbPtr handle(raw);
  if (rc != SQLITE_OK) {
    return failure("open", file, handle ? sqlite3_errmsg(handle.get()) : sqlite3_errstr(rc));
  }
  sqlite3_extended_result_codes(handle.get(), 1);
  sqlite3_busy_timeout(handle.get(), kBusyTimeoutMs);
  if (const int frc =
          sqlite3_create_function_v2(handle.get(), "mailguard_mask_cmdline", 1,
                                     SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY,
                                     nullptr, maskCmdlineFunction, nullptr, nullptr, nullptr);
      frc != SQLITE_OK) {
    return failure("open", file, sqlite3_errmsg(handle.get()));
  }
  Database db(std::move(handle), file);
  {
    auto mode = db.prepare("PRAGMA journal_mode = WAL");
    if (!mode) return failure("open", file, mode.error().message);
    auto row = mode->step();
    if (!row) return failure("open", file, row.error().message);
    if (!*row || mode->text(0) != "wal") {
      return failure("open", file, "cannot switch to WAL journal mode");
    }
  }  // finalized: an unfinished statement would keep a later migration from committing
  if (auto r = db.exec("PRAGMA foreign_keys = ON"); !r) {
    return failure("open", file, r.error().message);
  }
  if (auto r = db.setSync(sync); !r) return r.error();
  return db;
}

Result<Statement> Database::prepare(std::string_view sql) {
  sqlite3_stmt* raw = nullptr;
  const int rc =
      sqlite3_prepare_v2(db_.get(), sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) return makeError(sqlite3_errmsg(db_.get()));
  return Statement(db_.get(), std::move(stmt));
}

Result<Statement> Database::cached(std::string_view sql) {
  auto it = cache_.find(std::string(sql));
  if (it == cache_.end()) {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    StmtPtr stmt(raw);
    if (rc != SQLITE_OK) return makeError(sqlite3_errmsg(db_.get()));
    it = cache_.emplace(std::string(sql), std::move(stmt)).first;
  }
  return Statement(db_.get(), it->second.get());
}

Result<void> Database::exec(const char* sql) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db_.get(), sql, nullptr, nullptr, &msg);
  const std::unique_ptr<char, CDeleter<sqlite3_free>> owned(msg);
  if (rc == SQLITE_OK) return {};
  return makeError(owned ? owned.get() : sqlite3_errstr(rc));
}

Result<std::int64_t> Database::queryInteger(std::string_view sql) {
  auto stmt = prepare(sql);
  if (!stmt) return stmt.error();
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return makeError("no row");
  return stmt->integer(0);
}

Result<void> Database::setSync(Sync sync) {
  auto r = exec(sync == Sync::Full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
  if (!r) return failure("configure", path_, r.error().message);
  return {};
}

std::int64_t Database::changes() const { return sqlite3_changes64(db_.get()); }

Result<Transaction> Transaction::begin(Database& db) {
  auto r = db.exec("BEGIN IMMEDIATE");
  if (!r) return r.error();
  return Transaction(db);
}

Transaction::Transaction(Transaction&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}

Transaction::~Transaction() {
  if (db_ != nullptr && sqlite3_get_autocommit(db_->db_.get()) == 0) {
    sqlite3_exec(db_->db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

Result<void> Transaction::commit() {
  auto r = db_->exec("COMMIT");
  if (r) db_ = nullptr;
  return r;
}

Error failure(std::string_view verb, const std::filesystem::path& path, std::string_view why) {
  std::string m = "Failed to ";
  m.append(verb).append(" '").append(path.string()).append("': ").append(why);
  return makeError(std::move(m));
}

std::string joinLines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += '\n';
    out += i;
  }
  return out;
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

}  // namespace mailguard::store::sql
