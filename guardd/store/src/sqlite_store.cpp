#include <algorithm>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "mailguard/rules/code_loading.hpp"
#include "mailguard/store/store.hpp"
#include "rows.hpp"
#include "sqlite.hpp"

namespace mailguard::store {
namespace {

using sql::failure;
using sql::fromMicros;
using sql::splitLines;

constexpr std::uint32_t kMaxPage = 1000;

// Runs a query row by row through `each`; errors name the verb and the database.
template <class Each>
Result<void> forEachRow(sql::Database& db, Result<sql::Statement> stmt, std::string_view verb,
                        Each each) {
  if (!stmt) return failure(verb, db.path(), stmt.error().message);
  for (;;) {
    auto row = stmt->step();
    if (!row) return failure(verb, db.path(), row.error().message);
    if (!*row) return {};
    each(*stmt);
  }
}

Result<std::int64_t> integerOf(sql::Database& db, std::string_view sql, std::string_view verb) {
  auto n = db.queryInteger(sql);
  if (!n) return failure(verb, db.path(), n.error().message);
  return n;
}

std::vector<std::string> words(std::string_view text, char sep) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto end = text.find(sep);
    if (end != 0) out.emplace_back(text.substr(0, end));
    if (end == std::string_view::npos) break;
    text.remove_prefix(end + 1);
  }
  return out;
}

bool isRelayVerdict(std::string_view v) {
  return v == "open" || v == "closed" || v == "unreachable";
}

// "CIDR from PROBE to TARGET: VERDICT[ a,b] | reason"
std::optional<AuditLanRow> legacyLanLine(std::string_view rest) {
  AuditLanRow v;
  if (const auto bar = rest.find(" | "); bar != std::string_view::npos) {
    v.reason = std::string(rest.substr(bar + 3));
    rest = rest.substr(0, bar);
  }
  const auto from = rest.find(" from ");
  const auto to = rest.find(" to ");
  const auto colon = rest.find(": ");
  if (from == std::string_view::npos || to == std::string_view::npos ||
      colon == std::string_view::npos || !(from < to && to < colon)) {
    return std::nullopt;
  }
  v.subnet = std::string(rest.substr(0, from));
  v.probeAddress = std::string(rest.substr(from + 6, to - from - 6));
  v.target = std::string(rest.substr(to + 4, colon - to - 4));
  const auto verdict = words(rest.substr(colon + 2), ' ');
  if (verdict.empty() || !isRelayVerdict(verdict[0])) return std::nullopt;
  v.relay = verdict[0];
  if (verdict.size() > 1) v.accepted = words(verdict[1], ',');
  return v;
}

// Rows saved before schema 9 kept the LAN vantages and AUTH-in-clear in the transcript,
// after the stranger's dialogue: "# auth-in-clear MECH ...", and per subnet a "# lan"
// line followed by that subnet's dialogue. Read into their fields; the transcript keeps
// the stranger's dialogue only. A dialogue line is never "# ..." ("> " or "< ").
void readLegacyVantageLines(AuditRow& a) {
  constexpr std::string_view kLan = "# lan ";
  constexpr std::string_view kAuth = "# auth-in-clear ";
  std::vector<std::string> stranger;
  std::optional<std::size_t> current;  // the LAN vantage whose dialogue follows
  for (auto& line : a.transcript) {
    const std::string_view l(line);
    if (l.rfind("# ", 0) != 0) {
      (current ? a.lan[*current].transcript : stranger).push_back(std::move(line));
      continue;
    }
    current.reset();
    if (l.rfind(kAuth, 0) == 0) {
      a.authInClear = words(l.substr(kAuth.size()), ' ');
    } else if (l.rfind(kLan, 0) == 0) {
      if (auto v = legacyLanLine(l.substr(kLan.size()))) {
        a.lan.push_back(std::move(*v));
        current = a.lan.size() - 1;
      }
    }
  }
  a.transcript = std::move(stranger);
}

}  // namespace

SqliteStore::SqliteStore(std::unique_ptr<sql::Database> db) : db_(std::move(db)) {}
SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& stateDir) {
  // The reader never writes after the migration; Full only matters for that.
  auto db = sql::openStateDatabase(stateDir, sql::Sync::Full);
  if (!db) return db.error();
  return std::unique_ptr<SqliteStore>(
      new SqliteStore(std::make_unique<sql::Database>(std::move(*db))));
}

const std::filesystem::path& SqliteStore::databasePath() const { return db_->path(); }

Result<std::vector<rules::ApprovalRule>> SqliteStore::loadRules() {
  std::vector<rules::ApprovalRule> out;
  auto r = forEachRow(
      *db_,
      db_->prepare("SELECT id, action, path, sha256, script_path, script_sha256, only_to, "
                   "allow_env, kind, scope_uid "
                   "FROM rules ORDER BY id"),
      "read rules from", [&](const sql::Statement& s) {
        rules::ApprovalRule rule;
        rule.id = s.integer(0);
        rule.action = s.text(1) == "deny" ? rules::RuleAction::Deny : rules::RuleAction::Approve;
        rule.path = s.text(2);
        rule.sha256 = s.text(3);
        rule.scriptPath = s.text(4);
        rule.scriptSha256 = s.text(5);
        // Written only from parsed destinations; should it not parse back, the approval
        // is left out (the program is asked about again) rather than widened to anywhere.
        auto onlyTo = rules::decodeDestinations(s.text(6));
        if (!onlyTo) return;
        rule.onlyTo = std::move(*onlyTo);
        rule.allowEnv = rules::splitNames(s.text(7));
        // A kind this program does not know is left out too, rather than guessed.
        auto kind = rules::identityKindFromString(s.text(8));
        if (!kind) return;
        rule.kind = *kind;
        if (const auto scope = s.integer(9); scope >= 0) {
          rule.uid = static_cast<std::uint32_t>(scope);
        }
        out.push_back(std::move(rule));
      });
  if (!r) return r.error();
  return out;
}

Result<std::int64_t> SqliteStore::rulesVersion() {
  // PRAGMA data_version changes when another connection (any process) committed. This
  // connection never writes, so every change to the rules moves it.
  auto read = [this](std::string_view sql) -> Result<std::int64_t> {
    auto stmt = db_->cached(sql);
    if (!stmt) return stmt.error();
    auto row = stmt->step();
    if (!row) return row.error();
    if (!*row) return makeError("no row");
    return stmt->integer(0);
  };
  auto dataVersion = read("PRAGMA data_version");
  if (!dataVersion) {
    return failure("read the rules version of", db_->path(), dataVersion.error().message);
  }
  if (*dataVersion == lastDataVersion_ && lastRulesCounter_ >= 0) return lastRulesCounter_;
  auto counter = read("SELECT counter FROM rules_version WHERE id = 1");
  if (!counter) return failure("read the rules version of", db_->path(), counter.error().message);
  lastDataVersion_ = *dataVersion;
  lastRulesCounter_ = *counter;
  return *counter;
}

Result<std::vector<ProgramRecord>> SqliteStore::loadPrograms() {
  std::vector<ProgramRecord> out;
  auto r = forEachRow(
      *db_,
      db_->prepare(
          "SELECT p.id, p.path, p.sha256, p.script_path, p.script_sha256, p.uid, p.first_seen, "
          "  MAX(p.last_attempt, COALESCE(a.last, p.last_attempt)), p.quarantined, "
          "  COALESCE(a.n, 0), p.binary_itself, p.decided "
          "FROM programs p LEFT JOIN ("
          "  SELECT program_id, COUNT(*) AS n, MAX(time) AS last FROM attempts "
          "  WHERE program_id IS NOT NULL GROUP BY program_id) a ON a.program_id = p.id "
          "ORDER BY p.id"),
      "read programs from", [&](const sql::Statement& s) {
        ProgramRecord p;
        p.id = s.integer(0);
        p.identity.path = s.text(1);
        p.identity.sha256 = s.text(2);
        p.identity.scriptPath = s.text(3);
        p.identity.scriptSha256 = s.text(4);
        p.uid = static_cast<std::uint32_t>(s.integer(5));
        p.firstSeen = fromMicros(s.integer(6));
        p.lastAttempt = fromMicros(s.integer(7));
        p.quarantined = s.integer(8) != 0;
        p.attempts = s.integer(9);
        p.identity.binaryItself = s.integer(10) != 0;
        if (const auto decided = s.text(11); decided == "approved") {
          p.decided = rules::ProgramState::Approved;
        } else if (decided == "denied") {
          p.decided = rules::ProgramState::Denied;
        }
        out.push_back(std::move(p));
      });
  if (!r) return r.error();
  return out;
}

Result<std::vector<AttemptRecord>> SqliteStore::attempts(const AttemptQuery& q) {
  std::string sql =
      "SELECT id, time, program_id, pid, uid, path, script_path, cmdline, src, src_port, dst, "
      "dst_port, verdict, reason, channel, queue_id FROM attempts WHERE 1";
  if (q.beforeId) sql += " AND id < ?1";
  if (q.programId) sql += " AND program_id = ?2";
  if (q.verdict) sql += " AND verdict = ?3";
  if (q.since) sql += " AND time >= ?4";
  if (q.until) sql += " AND time < ?5";
  sql += " ORDER BY id DESC LIMIT ?6";
  auto stmt = db_->prepare(sql);
  if (stmt) {
    if (q.beforeId) stmt->bind(1, *q.beforeId);
    if (q.programId) stmt->bind(2, *q.programId);
    if (q.verdict) stmt->bind(3, rules::toString(*q.verdict));
    if (q.since) stmt->bind(4, sql::toMicros(*q.since));
    if (q.until) stmt->bind(5, sql::toMicros(*q.until));
    stmt->bind(6, std::int64_t{std::min(q.limit, kMaxPage)});
  }
  std::vector<AttemptRecord> out;
  auto r = forEachRow(*db_, std::move(stmt), "read attempts from", [&](const sql::Statement& s) {
    AttemptRecord a;
    a.id = s.integer(0);
    a.time = fromMicros(s.integer(1));
    if (!s.isNull(2)) a.programId = s.integer(2);
    a.pid = static_cast<int>(s.integer(3));
    a.uid = static_cast<std::uint32_t>(s.integer(4));
    a.path = s.text(5);
    a.scriptPath = s.text(6);
    a.cmdline = s.text(7);
    a.src = s.text(8);
    a.srcPort = static_cast<std::uint16_t>(s.integer(9));
    a.dst = s.text(10);
    a.dstPort = static_cast<std::uint16_t>(s.integer(11));
    a.verdict = rules::verdictFromString(s.text(12)).value_or(rules::Verdict::Hold);
    a.reason = s.text(13);
    a.channel = s.text(14);
    a.queueId = s.text(15);
    out.push_back(std::move(a));
  });
  if (!r) return r.error();
  return out;
}

Result<std::int64_t> SqliteStore::attemptCount() {
  return integerOf(*db_, "SELECT COUNT(*) FROM attempts", "count attempts in");
}

Result<std::int64_t> SqliteStore::lastAttemptId() {
  return integerOf(*db_, "SELECT COALESCE(MAX(id), 0) FROM attempts", "read attempts from");
}

Result<std::vector<AlertRecord>> SqliteStore::alerts(std::uint32_t limit) {
  auto stmt = db_->prepare(std::string("SELECT ") + detail::kAlertColumns +
                           " FROM alerts ORDER BY id DESC LIMIT ?1");
  if (stmt) stmt->bind(1, std::int64_t{limit});
  std::vector<AlertRecord> out;
  auto r = forEachRow(*db_, std::move(stmt), "read alerts from",
                      [&](const sql::Statement& s) { out.push_back(detail::alertFrom(s)); });
  if (!r) return r.error();
  return out;
}

Result<std::optional<AlertRecord>> SqliteStore::alert(std::int64_t id) {
  auto stmt =
      db_->prepare(std::string("SELECT ") + detail::kAlertColumns + " FROM alerts WHERE id = ?1");
  if (stmt) stmt->bind(1, id);
  std::optional<AlertRecord> out;
  auto r = forEachRow(*db_, std::move(stmt), "read an alert from",
                      [&](const sql::Statement& s) { out = detail::alertFrom(s); });
  if (!r) return r.error();
  return out;
}

Result<std::int64_t> SqliteStore::lastAlertId() {
  return integerOf(*db_, "SELECT COALESCE(MAX(id), 0) FROM alerts", "read alerts from");
}

Result<std::vector<std::pair<std::string, std::string>>> SqliteStore::loadDetectorState() {
  std::vector<std::pair<std::string, std::string>> out;
  auto r = forEachRow(*db_,
                      db_->prepare("SELECT principal, snapshot FROM detector_state "
                                   "ORDER BY principal"),
                      "read the detector state from",
                      [&](const sql::Statement& s) { out.emplace_back(s.text(0), s.text(1)); });
  if (!r) return r.error();
  return out;
}

Result<StoredFirewall> SqliteStore::loadFirewall() {
  StoredFirewall out;
  auto r =
      forEachRow(*db_, db_->prepare("SELECT enabled, local_subnets FROM firewall WHERE id = 1"),
                 "read the firewall from", [&](const sql::Statement& s) {
                   out.enabled = s.integer(0) != 0;
                   out.localSubnets = splitLines(s.text(1));
                 });
  if (!r) return r.error();
  r = forEachRow(*db_, db_->prepare("SELECT name, local_only FROM firewall_services ORDER BY name"),
                 "read the firewall from", [&](const sql::Statement& s) {
                   out.services.push_back({s.text(0), s.integer(1) != 0});
                 });
  if (!r) return r.error();
  return out;
}

Result<std::vector<ProbeRow>> SqliteStore::probes(std::size_t limit) {
  auto stmt = db_->prepare(
      "SELECT source, port, count, first_seen, last_seen FROM probes "
      "ORDER BY last_seen DESC, id DESC LIMIT ?1");
  if (stmt) stmt->bind(1, static_cast<std::int64_t>(limit));
  std::vector<ProbeRow> out;
  auto r = forEachRow(*db_, std::move(stmt), "read probes from", [&](const sql::Statement& s) {
    out.push_back({s.text(0), static_cast<std::uint16_t>(s.integer(1)),
                   static_cast<std::uint64_t>(s.integer(2)), fromMicros(s.integer(3)),
                   fromMicros(s.integer(4))});
  });
  if (!r) return r.error();
  return out;
}

Result<std::optional<HouseholdScanRow>> SqliteStore::loadHouseholdScan() {
  std::optional<HouseholdScanRow> out;
  auto r = forEachRow(
      *db_, db_->prepare("SELECT finished, error, result FROM household_scan WHERE id = 1"),
      "read the household scan from", [&](const sql::Statement& s) {
        HouseholdScanRow row;
        row.finished = fromMicros(s.integer(0));
        row.error = s.text(1);
        row.json = s.text(2);
        out = std::move(row);
      });
  if (!r) return r.error();
  return out;
}

Result<std::string> SqliteStore::loadOutsideReport() {
  std::string out;
  auto r =
      forEachRow(*db_, db_->prepare("SELECT report FROM outside_report WHERE id = 1"),
                 "read the outside check from", [&](const sql::Statement& s) { out = s.text(0); });
  if (!r) return r.error();
  return out;
}

Result<std::vector<AuditRow>> SqliteStore::loadAudit() {
  // Both queries read one snapshot (a deferred transaction in WAL mode): the writer may
  // replace the audit, listeners and LAN rows together, between them.
  if (auto begun = db_->exec("BEGIN"); !begun) {
    return failure("read the audit from", db_->path(), begun.error().message);
  }
  struct EndRead {
    sql::Database& db;
    ~EndRead() { (void)db.exec("COMMIT"); }
  } endRead{*db_};
  std::vector<AuditRow> out;
  std::vector<std::int64_t> ids;
  auto r = forEachRow(
      *db_,
      db_->prepare(
          "SELECT time, family, address, port, exposure, pid, uid, path, comm, relay, accepted, "
          "reason, blocked_by_firewall, probed_address, own_domain, transcript, auth_in_clear, "
          "id FROM audit_results ORDER BY port, address"),
      "read the audit from", [&](const sql::Statement& s) {
        AuditRow a;
        a.time = fromMicros(s.integer(0));
        a.family = static_cast<int>(s.integer(1));
        a.address = s.text(2);
        a.port = static_cast<std::uint16_t>(s.integer(3));
        a.exposure = s.text(4);
        a.pid = static_cast<int>(s.integer(5));
        a.uid = static_cast<std::uint32_t>(s.integer(6));
        a.path = s.text(7);
        a.comm = s.text(8);
        a.relay = s.text(9);
        a.accepted = splitLines(s.text(10));
        a.reason = s.text(11);
        a.blockedByFirewall = s.integer(12) != 0;
        a.probedAddress = s.text(13);
        a.ownDomain = s.text(14);
        a.transcript = splitLines(s.text(15));
        a.authInClear = splitLines(s.text(16));
        ids.push_back(s.integer(17));
        out.push_back(std::move(a));
      });
  if (!r) return r.error();
  std::map<std::int64_t, std::vector<AuditLanRow>> lan;
  r = forEachRow(
      *db_,
      db_->prepare("SELECT audit_id, subnet, probe_address, target, relay, accepted, "
                   "reason, transcript FROM audit_lan ORDER BY audit_id, id"),
      "read the audit from", [&](const sql::Statement& s) {
        lan[s.integer(0)].push_back({s.text(1), s.text(2), s.text(3), s.text(4),
                                     splitLines(s.text(5)), s.text(6), splitLines(s.text(7))});
      });
  if (!r) return r.error();
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (auto found = lan.find(ids[i]); found != lan.end()) out[i].lan = std::move(found->second);
    if (out[i].lan.empty() && out[i].authInClear.empty()) readLegacyVantageLines(out[i]);
  }
  return out;
}

}  // namespace mailguard::store
