#include "mailguard/store/host_store.hpp"

#include <sqlite3.h>

#include <string_view>
#include <utility>

#include "sqlite_util.hpp"

namespace mailguard::store {
namespace {

// Lists are stored one item a line (joinLines): service names, CIDRs, variant names and
// transcript lines never contain a newline (SMTP replies are split into lines before they
// get here).
using detail::joinLines;
using detail::kBusyTimeoutMs;
using detail::splitLines;
using detail::toMicros;

struct StmtDeleter {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};

// A prepared statement with the few bindings these tables need.
class Stmt {
 public:
  Stmt(sqlite3* db, std::string_view sql) : db_(db) {
    sqlite3_stmt* raw = nullptr;
    rc_ = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    stmt_.reset(raw);
  }
  Stmt& bind(int i, std::int64_t v) {
    keep(sqlite3_bind_int64(stmt_.get(), i, v));
    return *this;
  }
  Stmt& bind(int i, std::string_view v) {
    keep(sqlite3_bind_text64(stmt_.get(), i, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    return *this;
  }
  // True when a row is available.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return makeError(sqlite3_errmsg(db_));
    const int rc = sqlite3_step(stmt_.get());
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return makeError(sqlite3_errmsg(db_));
  }
  Result<void> run() {
    auto r = step();
    if (!r) return r.error();
    return {};
  }
  void reset() {
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
  }
  [[nodiscard]] std::int64_t integer(int col) const {
    return sqlite3_column_int64(stmt_.get(), col);
  }
  [[nodiscard]] std::string text(int col) const { return detail::columnText(stmt_.get(), col); }

 private:
  void keep(int rc) {
    if (rc_ == SQLITE_OK) rc_ = rc;
  }
  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StmtDeleter> stmt_;
  int rc_ = SQLITE_OK;
};

Result<void> exec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, &msg);
  std::string why = msg != nullptr ? msg : sqlite3_errstr(rc);
  sqlite3_free(msg);
  if (rc == SQLITE_OK) return {};
  return makeError(std::move(why));
}

// Rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Result<void> begin() { return exec(db_, "BEGIN IMMEDIATE"); }
  Result<void> commit() {
    auto r = exec(db_, "COMMIT");
    if (r) db_ = nullptr;
    return r;
  }

 private:
  sqlite3* db_;
};

TimePoint fromMicros(std::int64_t us) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds{us})};
}

}  // namespace

HostStore::HostStore(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}

HostStore::~HostStore() { sqlite3_close(db_); }

Result<std::unique_ptr<HostStore>> HostStore::open(const std::filesystem::path& stateDir) {
  const auto path = stateDir / "mailguard.db";
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, nullptr);
  std::unique_ptr<HostStore> store(new HostStore(db, path));
  if (rc != SQLITE_OK) {
    return makeError("Failed to open '" + path.string() +
                     "': " + (db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // FULL: an acknowledged firewall change survives power loss, like an approval.
  if (auto r = exec(db, "PRAGMA synchronous = FULL"); !r) {
    return makeError("Failed to open '" + path.string() + "': " + r.error().message);
  }
  Stmt check(db, "SELECT count(*) FROM sqlite_master WHERE name = 'firewall'");
  auto row = check.step();
  if (!row || !*row || check.integer(0) != 1) {
    return makeError("Failed to open '" + path.string() +
                     "': no firewall table (open SqliteStore first, it migrates the schema)");
  }
  return store;
}

Result<StoredFirewall> HostStore::loadFirewall() {
  StoredFirewall out;
  Stmt state(db_, "SELECT enabled, local_subnets FROM firewall WHERE id = 1");
  auto row = state.step();
  if (!row)
    return makeError("Failed to read the firewall from '" + path_.string() +
                     "': " + row.error().message);
  if (*row) {
    out.enabled = state.integer(0) != 0;
    out.localSubnets = splitLines(state.text(1));
  }
  Stmt services(db_, "SELECT name, local_only FROM firewall_services ORDER BY name");
  for (;;) {
    auto r = services.step();
    if (!r)
      return makeError("Failed to read the firewall from '" + path_.string() +
                       "': " + r.error().message);
    if (!*r) break;
    out.services.push_back({services.text(0), services.integer(1) != 0});
  }
  return out;
}

Result<void> HostStore::saveFirewall(const StoredFirewall& firewall) {
  auto failed = [&](const Error& e) {
    return makeError("Failed to save the firewall in '" + path_.string() + "': " + e.message);
  };
  Transaction tx(db_);
  if (auto r = tx.begin(); !r) return failed(r.error());
  Stmt state(db_,
             "INSERT INTO firewall(id, enabled, local_subnets) VALUES(1, ?1, ?2) "
             "ON CONFLICT(id) DO UPDATE SET enabled = excluded.enabled, "
             "local_subnets = excluded.local_subnets");
  if (auto r =
          state.bind(1, firewall.enabled ? 1 : 0).bind(2, joinLines(firewall.localSubnets)).run();
      !r) {
    return failed(r.error());
  }
  if (auto r = exec(db_, "DELETE FROM firewall_services"); !r) return failed(r.error());
  Stmt insert(db_, "INSERT INTO firewall_services(name, local_only) VALUES(?1, ?2)");
  for (const auto& s : firewall.services) {
    if (auto r = insert.bind(1, s.name).bind(2, s.localOnly ? 1 : 0).run(); !r) {
      return failed(r.error());
    }
    insert.reset();
  }
  if (auto r = tx.commit(); !r) return failed(r.error());
  return {};
}

Result<void> HostStore::addProbes(const std::vector<ProbeRow>& batch) {
  if (batch.empty()) return {};
  auto failed = [&](const Error& e) {
    return makeError("Failed to record probes in '" + path_.string() + "': " + e.message);
  };
  Transaction tx(db_);
  if (auto r = tx.begin(); !r) return failed(r.error());
  Stmt upsert(db_,
              "INSERT INTO probes(source, port, count, first_seen, last_seen) "
              "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(source, port) DO UPDATE SET "
              "count = count + excluded.count, last_seen = max(last_seen, excluded.last_seen)");
  for (const auto& p : batch) {
    if (auto r = upsert.bind(1, p.source)
                     .bind(2, static_cast<std::int64_t>(p.port))
                     .bind(3, static_cast<std::int64_t>(p.count))
                     .bind(4, toMicros(p.first))
                     .bind(5, toMicros(p.last))
                     .run();
        !r) {
      return failed(r.error());
    }
    upsert.reset();
  }
  Stmt prune(db_,
             "DELETE FROM probes WHERE id NOT IN "
             "(SELECT id FROM probes ORDER BY last_seen DESC, id DESC LIMIT ?1)");
  if (auto r = prune.bind(1, static_cast<std::int64_t>(kMaxProbeRows)).run(); !r) {
    return failed(r.error());
  }
  if (auto r = tx.commit(); !r) return failed(r.error());
  return {};
}

Result<std::vector<ProbeRow>> HostStore::probes(std::size_t limit) {
  Stmt q(db_,
         "SELECT source, port, count, first_seen, last_seen FROM probes "
         "ORDER BY last_seen DESC, id DESC LIMIT ?1");
  q.bind(1, static_cast<std::int64_t>(limit));
  std::vector<ProbeRow> out;
  for (;;) {
    auto r = q.step();
    if (!r)
      return makeError("Failed to read probes from '" + path_.string() + "': " + r.error().message);
    if (!*r) break;
    out.push_back({q.text(0), static_cast<std::uint16_t>(q.integer(1)),
                   static_cast<std::uint64_t>(q.integer(2)), fromMicros(q.integer(3)),
                   fromMicros(q.integer(4))});
  }
  return out;
}

Result<void> HostStore::saveAudit(const std::vector<AuditRow>& rows) {
  auto failed = [&](const Error& e) {
    return makeError("Failed to save the audit in '" + path_.string() + "': " + e.message);
  };
  Transaction tx(db_);
  if (auto r = tx.begin(); !r) return failed(r.error());
  if (auto r = exec(db_, "DELETE FROM audit_results"); !r) return failed(r.error());
  Stmt insert(db_,
              "INSERT INTO audit_results(time, family, address, port, exposure, pid, uid, path, "
              "comm, relay, accepted, reason, blocked_by_firewall, probed_address, own_domain, "
              "transcript) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, "
              "?15, ?16)");
  for (const auto& a : rows) {
    if (auto r = insert.bind(1, toMicros(a.time))
                     .bind(2, static_cast<std::int64_t>(a.family))
                     .bind(3, a.address)
                     .bind(4, static_cast<std::int64_t>(a.port))
                     .bind(5, a.exposure)
                     .bind(6, static_cast<std::int64_t>(a.pid))
                     .bind(7, static_cast<std::int64_t>(a.uid))
                     .bind(8, a.path)
                     .bind(9, a.comm)
                     .bind(10, a.relay)
                     .bind(11, joinLines(a.accepted))
                     .bind(12, a.reason)
                     .bind(13, a.blockedByFirewall ? 1 : 0)
                     .bind(14, a.probedAddress)
                     .bind(15, a.ownDomain)
                     .bind(16, joinLines(a.transcript))
                     .run();
        !r) {
      return failed(r.error());
    }
    insert.reset();
  }
  if (auto r = tx.commit(); !r) return failed(r.error());
  return {};
}

Result<std::vector<AuditRow>> HostStore::loadAudit() {
  Stmt q(db_,
         "SELECT time, family, address, port, exposure, pid, uid, path, comm, relay, accepted, "
         "reason, blocked_by_firewall, probed_address, own_domain, transcript FROM audit_results "
         "ORDER BY port, address");
  std::vector<AuditRow> out;
  for (;;) {
    auto r = q.step();
    if (!r)
      return makeError("Failed to read the audit from '" + path_.string() +
                       "': " + r.error().message);
    if (!*r) break;
    AuditRow a;
    a.time = fromMicros(q.integer(0));
    a.family = static_cast<int>(q.integer(1));
    a.address = q.text(2);
    a.port = static_cast<std::uint16_t>(q.integer(3));
    a.exposure = q.text(4);
    a.pid = static_cast<int>(q.integer(5));
    a.uid = static_cast<std::uint32_t>(q.integer(6));
    a.path = q.text(7);
    a.comm = q.text(8);
    a.relay = q.text(9);
    a.accepted = splitLines(q.text(10));
    a.reason = q.text(11);
    a.blockedByFirewall = q.integer(12) != 0;
    a.probedAddress = q.text(13);
    a.ownDomain = q.text(14);
    a.transcript = splitLines(q.text(15));
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace mailguard::store
