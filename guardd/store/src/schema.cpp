// The schema and its migrations, and opening the state database with it.
#include <sys/stat.h>

#include <array>
#include <cerrno>
#include <string>
#include <system_error>

#include "sqlite.hpp"

namespace mailguard::store::sql {
namespace {

// Schema migrations: entry i moves user_version i to i + 1. Append only; never edit a
// released entry. Text columns are NOT NULL with '' for "none" so that the UNIQUE
// constraints compare them (SQLite treats NULLs as distinct in UNIQUE).
constexpr std::array<const char*, 12> kMigrations = {
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
    // 1 -> 2: the zombie detector's alerts and its persisted state.
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
    // 2 -> 3: the host firewall, inbound probes and the mail-server audit. List columns
    // hold one item a line.
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
    // 3 -> 4: destinations an approval is pinned to, one a line ('' for anywhere).
    R"sql(
ALTER TABLE rules ADD COLUMN only_to TEXT NOT NULL DEFAULT '';
)sql",
    // 4 -> 5: the code-loading variables and options (comma-separated names) an approval
    // allows.
    R"sql(
ALTER TABLE rules ADD COLUMN allow_env TEXT NOT NULL DEFAULT '';
)sql",
    // 5 -> 6: command lines stored before guardd masked passwords in them, masked now
    // (mailguard_mask_cmdline is registered by Database::open). secure_delete zeroes the
    // old text in the pages it leaves instead of keeping it as free space; the WAL is
    // truncated after the migration commits.
    R"sql(
PRAGMA secure_delete = ON;
UPDATE attempts SET cmdline = mailguard_mask_cmdline(cmdline)
  WHERE cmdline <> mailguard_mask_cmdline(cmdline);
PRAGMA secure_delete = OFF;
)sql",
    // 6 -> 7: how an attempt left ('' a connection, 'mta' a message handed to the local
    // MTA) and the MTA's queue id, which links a message to its later outcome.
    R"sql(
ALTER TABLE attempts ADD COLUMN channel TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN queue_id TEXT NOT NULL DEFAULT '';
)sql",
    // 7 -> 8: kinds of identity and approvals for one user. A rule names a program, a
    // script or an interpreter's inline code (kind), for every user (scope_uid -1) or one
    // uid; a program row may be an interpreter as a file itself (binary_itself: what
    // `guardctl approve /usr/bin/python3` names), apart from the inline code it runs. Both
    // are in the tables' UNIQUE keys, which SQLite changes only by copying the table
    // (migrate() turns foreign keys off around the migrations, so that dropping the old
    // programs table sets no attempt's or alert's program_id to NULL). Existing rules keep
    // their meaning, for every user; one without a script was of the program.
    R"sql(
CREATE TABLE rules_new(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  action TEXT NOT NULL CHECK(action IN ('approve', 'deny')),
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  script_sha256 TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  only_to TEXT NOT NULL DEFAULT '',
  allow_env TEXT NOT NULL DEFAULT '',
  kind TEXT NOT NULL DEFAULT 'program' CHECK(kind IN ('program', 'script', 'inline')),
  scope_uid INTEGER NOT NULL DEFAULT -1,
  UNIQUE(path, script_path, kind, scope_uid));
INSERT INTO rules_new(id, action, path, sha256, script_path, script_sha256, created, only_to,
                      allow_env, kind)
  SELECT id, action, path, sha256, script_path, script_sha256, created, only_to, allow_env,
         CASE WHEN script_path <> '' THEN 'script' ELSE 'program' END FROM rules;
DROP TABLE rules;
ALTER TABLE rules_new RENAME TO rules;
CREATE TRIGGER rules_inserted AFTER INSERT ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER rules_updated AFTER UPDATE ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;
CREATE TRIGGER rules_deleted AFTER DELETE ON rules
  BEGIN UPDATE rules_version SET counter = counter + 1 WHERE id = 1; END;
UPDATE rules_version SET counter = counter + 1 WHERE id = 1;

CREATE TABLE programs_new(
  id INTEGER PRIMARY KEY,
  path TEXT NOT NULL,
  sha256 TEXT NOT NULL DEFAULT '',
  script_path TEXT NOT NULL DEFAULT '',
  script_sha256 TEXT NOT NULL DEFAULT '',
  uid INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL,
  last_attempt INTEGER NOT NULL,
  quarantined INTEGER NOT NULL DEFAULT 0,
  binary_itself INTEGER NOT NULL DEFAULT 0,
  UNIQUE(path, sha256, script_path, script_sha256, binary_itself));
INSERT INTO programs_new(id, path, sha256, script_path, script_sha256, uid, first_seen,
                         last_attempt, quarantined)
  SELECT id, path, sha256, script_path, script_sha256, uid, first_seen, last_attempt,
         quarantined FROM programs;
DROP TABLE programs;
ALTER TABLE programs_new RENAME TO programs;
)sql",
    // 8 -> 9: the relay audit's LAN vantages (one row per subnet probed, in the order
    // probed) and the AUTH mechanisms offered in clear as fields of their own. Rows saved
    // before kept them as "# lan ..." and "# auth-in-clear ..." lines in the transcript;
    // SqliteStore::loadAudit still reads those.
    R"sql(
ALTER TABLE audit_results ADD COLUMN auth_in_clear TEXT NOT NULL DEFAULT '';
CREATE TABLE audit_lan(
  id INTEGER PRIMARY KEY,
  audit_id INTEGER NOT NULL REFERENCES audit_results(id) ON DELETE CASCADE,
  subnet TEXT NOT NULL,
  probe_address TEXT NOT NULL DEFAULT '',
  target TEXT NOT NULL DEFAULT '',
  relay TEXT NOT NULL CHECK(relay IN ('open', 'closed', 'unreachable')),
  accepted TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  transcript TEXT NOT NULL DEFAULT '');
CREATE INDEX audit_lan_by_audit ON audit_lan(audit_id);
)sql",
    // 9 -> 10: what the owner last decided for a version ('approved', 'denied'; '' for
    // nothing) once a later decision stopped covering it (approving a new content of the
    // file replaces the path's approval), so that an older version's history still says
    // "approved, replaced by a newer version" after guardd restarts.
    R"sql(
ALTER TABLE programs ADD COLUMN decided TEXT NOT NULL DEFAULT '';
)sql",
    // 10 -> 11: the last scan of the household's other mail servers (one row; IF NOT EXISTS:
    // a database set back to an older version keeps its newer tables).
    R"sql(
CREATE TABLE IF NOT EXISTS household_scan(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  finished INTEGER NOT NULL,
  error TEXT NOT NULL DEFAULT '',
  result TEXT NOT NULL DEFAULT '{}');
)sql",
    // 11 -> 12: the last outside check (blocklists, SPF/DMARC) as the JSON that
    // mailguard::outside::toJson wrote: one row, replaced by each run.
    R"sql(
CREATE TABLE IF NOT EXISTS outside_report(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  report TEXT NOT NULL);
)sql",
};

Result<bool> migrateInTransaction(Database& db) {
  auto tx = Transaction::begin(db);
  if (!tx) return tx.error();
  auto version = db.queryInteger("PRAGMA user_version");
  if (!version) return version.error();
  const auto known = static_cast<std::int64_t>(kMigrations.size());
  if (*version > known) {
    return makeError("schema version " + std::to_string(*version) +
                     " is newer than this program knows (" + std::to_string(known) + ")");
  }
  for (auto v = *version; v < known; ++v) {
    if (auto r = db.exec(kMigrations.at(static_cast<std::size_t>(v))); !r) return r.error();
  }
  if (*version < known) {
    const std::string set = "PRAGMA user_version = " + std::to_string(known);
    if (auto r = db.exec(set.c_str()); !r) return r.error();
  }
  if (auto r = tx->commit(); !r) return r.error();
  return *version < known;
}

// True when it changed the schema. Foreign keys are off while it runs: a migration that
// copies a table to change its constraints drops the old one, which with them on would
// act on the rows referring to it (ON DELETE SET NULL). The pragma is a no-op inside a
// transaction (sqlite.org/pragma.html#pragma_foreign_keys), so it is set around it.
Result<bool> migrate(Database& db) {
  if (auto r = db.exec("PRAGMA foreign_keys = OFF"); !r) return r.error();
  auto migrated = migrateInTransaction(db);
  if (auto r = db.exec("PRAGMA foreign_keys = ON"); !r) return r.error();
  return migrated;
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

Result<Database> openStateDatabase(const std::filesystem::path& stateDir, Sync sync) {
  if (auto r = makeStateDir(stateDir); !r) return r.error();
  auto db = Database::open(stateDir / "mailguard.db", sync);
  if (!db) return db.error();
  // Migrating twice (reader and writer, either first) is harmless: the second finds the
  // schema current under the same write lock.
  // A page cache of 512 KiB a connection, not SQLite's 2 MiB: guardd appends records and
  // reads pages of them; after a flood of attempts the default kept 2 MiB of each of its
  // connections in guardd's memory for nothing.
  if (auto r = db->exec("PRAGMA cache_size = -512"); !r) return r.error();
  auto migrated = migrate(*db);
  if (!migrated) return failure("open", db->path(), migrated.error().message);
  if (*migrated) {
    // The WAL still holds pages from before (a migration may have rewritten what must not
    // stay readable): copied back and cut to nothing. When another connection is busy
    // it is only partly done, and the next automatic checkpoint overwrites the rest.
    (void)db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  return db;
}

}  // namespace mailguard::store::sql
