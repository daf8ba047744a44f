#pragma once
// guardd's state in SQLite (DIR/mailguard.db, WAL): programs seen, the owner's approvals
// and denials, attempts, the detector's alerts and state, the host firewall, inbound
// probes and the last mail-server audit.
//
// Reads and writes are apart. SqliteStore is the reader, used on guardd's loop thread;
// its queries are short and never wait for a writer (WAL readers see the last commit).
// StoreWriter is the one writer: a thread of its own that owns every write, so nothing
// on the loop waits for the disk. Records (attempts, program sightings, probes) are
// batched and may be dropped under pressure; durable writes (approvals, alerts, detector
// state, firewall, audit) are committed with a full sync before their `done` runs.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::store {

namespace sql {
class Database;
}

struct ProgramRecord {
  std::int64_t id = 0;
  // path, sha256, scriptPath, scriptSha256, binaryItself (the other flags are not stored)
  rules::ProgramIdentity identity;
  std::uint32_t uid = 0;  // uid of the last process seen running it
  TimePoint firstSeen{};
  TimePoint lastAttempt{};
  std::int64_t attempts = 0;  // filled by loadPrograms from the attempts table
  bool quarantined = false;
  // What the owner last decided for this version (Approved or Denied) before a later
  // decision stopped covering it; nullopt for none. Read by loadPrograms; written only by
  // StoreWriter::setDecided (a sighting leaves it as it is).
  std::optional<rules::ProgramState> decided;
};

struct AttemptRecord {
  std::int64_t id = 0;  // 0: the store assigns one; guardd numbers its own
  TimePoint time{};
  std::optional<std::int64_t> programId;
  int pid = 0;  // 0 when unknown
  std::uint32_t uid = 0;
  std::string path;  // executable, empty when unattributed
  std::string scriptPath;
  std::string cmdline;  // space-joined, bounded to 4 KiB
  std::string src;
  std::uint16_t srcPort = 0;
  std::string dst;
  std::uint16_t dstPort = 0;
  rules::Verdict verdict = rules::Verdict::Hold;
  std::string reason;
  std::string channel;  // "" a connection, "mta" a message handed to the local MTA
  std::string queueId;  // the MTA's queue id (channel "mta"), else empty
};

struct AttemptQuery {
  std::uint32_t limit = 50;              // at most 1000
  std::optional<std::int64_t> beforeId;  // paging: attempts with id < beforeId
  std::optional<std::int64_t> programId;
  std::optional<rules::Verdict> verdict;
  std::optional<TimePoint> since;  // inclusive
  std::optional<TimePoint> until;  // exclusive
};

// The zombie detector's alert. The store does not know the detector's types: evidence
// travels as JSON text.
struct AlertRecord {
  std::int64_t id = 0;  // set by guardd (from lastAlertId() + 1); 0: the store assigns one
  TimePoint time{};
  std::optional<std::int64_t> programId;  // stored only when the program row exists
  std::string principal;                  // the detector's principal key
  std::string path;
  std::string scriptPath;
  std::uint32_t uid = 0;
  std::string tier;                  // "soft" or "hard"
  std::string summary;               // one line a person can read
  std::vector<std::string> reasons;  // "direct-to-mx 6.00 nats (4x)", heaviest first
  std::string evidence;              // JSON object: counts, destinations, parent chain, ...
  bool acknowledged = false;
};

struct StoredService {
  std::string name;  // "ssh", "8080/tcp": what rules::parseService takes back
  bool localOnly = false;
};

struct StoredFirewall {
  bool enabled = false;
  std::vector<StoredService> services;
  std::vector<std::string> localSubnets;  // "192.168.1.0/24"
};

struct ProbeRow {
  std::string source;
  std::uint16_t port = 0;
  std::uint64_t count = 0;
  TimePoint first{};
  TimePoint last{};
};

// At most this many probe rows are kept (the newest by last sighting).
inline constexpr std::size_t kMaxProbeRows = 1000;

// What a host on one LAN subnet met when the audit probed the listener from there.
struct AuditLanRow {
  std::string subnet;        // "198.18.4.0/24"
  std::string probeAddress;  // the address the audit borrowed in it
  std::string target;        // the listener's address it connected to
  std::string relay;         // "open", "closed", "unreachable"
  std::vector<std::string> accepted;
  std::string reason;
  std::vector<std::string> transcript;  // that dialogue, "> ..." and "< ..."
};

// One listener's audit result as stored; the transcript lines are "> ..." and "< ...".
struct AuditRow {
  TimePoint time{};
  int family = 0;  // 4 or 6
  std::string address;
  std::uint16_t port = 0;
  std::string exposure;  // "loopback", "external"
  int pid = 0;           // 0 when unknown
  std::uint32_t uid = 0;
  std::string path;
  std::string comm;
  std::string relay;                  // "open", "closed", "unreachable"
  std::vector<std::string> accepted;  // variant names
  std::string reason;
  bool blockedByFirewall = false;
  std::string probedAddress;
  std::string ownDomain;
  std::vector<std::string> transcript;  // the stranger's dialogue
  std::vector<AuditLanRow> lan;         // one per LAN subnet probed from
  // The SASL mechanisms offered on a plain-text connection (to the stranger or a LAN host).
  std::vector<std::string> authInClear;
};

// The last scan of the household's other mail servers, as one row: the results as the
// JSON guardd builds (hosts with their verdicts and findings), kept whole so that keys
// can be added without a schema step.
struct HouseholdScanRow {
  TimePoint finished{};
  std::string error;  // "" when it ran
  std::string json;
};

// The reader: one connection, every query guardd makes, no writes. Use it from one
// thread (guardd's loop). Errors read "Failed to <verb> '<database path>': <reason>".
class SqliteStore {
 public:
  // Opens (creating) DIR/mailguard.db in WAL mode, creating DIR (0750) and creating or
  // migrating the schema.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& stateDir);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  [[nodiscard]] const std::filesystem::path& databasePath() const;

  // Approvals and denials, oldest first.
  Result<std::vector<rules::ApprovalRule>> loadRules();
  // Changes whenever the approvals changed (any connection, any process): cheap enough
  // to call per verdict (PRAGMA data_version, then a counter row only when it moved).
  Result<std::int64_t> rulesVersion();

  // By id, with the number of stored attempts and the newest attempt's time.
  Result<std::vector<ProgramRecord>> loadPrograms();

  // Newest first.
  Result<std::vector<AttemptRecord>> attempts(const AttemptQuery& q);
  Result<std::int64_t> attemptCount();
  Result<std::int64_t> lastAttemptId();  // 0 when none

  // Newest first, at most `limit`. Alerts StoreWriter keeps in memory while the disk
  // refuses them are not here (see WriterStats::unsavedAlerts).
  Result<std::vector<AlertRecord>> alerts(std::uint32_t limit);
  Result<std::optional<AlertRecord>> alert(std::int64_t id);
  Result<std::int64_t> lastAlertId();  // 0 when none

  // (principal key, snapshot JSON), by principal.
  Result<std::vector<std::pair<std::string, std::string>>> loadDetectorState();
  Result<StoredFirewall> loadFirewall();
  // Newest first (by last sighting).
  Result<std::vector<ProbeRow>> probes(std::size_t limit);
  // By port, then address.
  Result<std::vector<AuditRow>> loadAudit();
  // nullopt before the first scan.
  Result<std::optional<HouseholdScanRow>> loadHouseholdScan();
  // The last outside check as stored (JSON, mailguard::outside::toJson); "" when none.
  Result<std::string> loadOutsideReport();

 private:
  explicit SqliteStore(std::unique_ptr<sql::Database> db);
  std::unique_ptr<sql::Database> db_;
  std::int64_t lastDataVersion_ = -1;
  std::int64_t lastRulesCounter_ = -1;
};

struct RuleWritten {
  std::int64_t ruleId = 0;
  std::int64_t programId = 0;  // 0 when addRule was given no program
};

struct WriterStats {
  std::uint64_t attemptsWritten = 0, attemptsDropped = 0, writeErrors = 0;
  std::size_t unsavedAlerts = 0;    // alerts kept in memory while the disk refuses them
  std::uint64_t alertsDropped = 0;  // beyond kMaxUnsavedAlerts, the oldest
  std::string lastError;            // empty once a later write of the same kind succeeded
};

// The one writer: a thread with its own connection. Nothing here blocks the caller on
// I/O. Work is done in the order it was submitted: a durable write sees the records
// submitted before it (a program sighting, say), and records submitted after it see
// its rows (the program row of an approval).
class StoreWriter {
 public:
  static constexpr std::size_t kMaxUnsavedAlerts = 1000;
  // Opens (creating and migrating, as SqliteStore::open does) DIR/mailguard.db.
  // maxQueued bounds the records (attempts, sightings, probes) waiting to be written.
  static Result<std::unique_ptr<StoreWriter>> start(const std::filesystem::path& stateDir,
                                                    std::size_t maxQueued = 100'000);
  ~StoreWriter();  // writes what is queued, then joins
  StoreWriter(const StoreWriter&) = delete;
  StoreWriter& operator=(const StoreWriter&) = delete;

  // Records, batched into one transaction per wake-up (lingering up to 10 ms or 512 items
  // to batch a burst); dropped (and counted) when the queue is full. A failed batch is
  // retried with back-off (50 ms doubling, five times), then dropped. Synced at WAL
  // checkpoints only: a crash of guardd loses none, a power loss may lose the last ones.
  void submit(AttemptRecord a);  // a programId naming no stored program is stored as none
  // Inserts the program, or updates it when one with its id or its identity (path,
  // sha256, scriptPath, scriptSha256, binaryItself) exists: uid, lastAttempt (the later one) and
  // quarantined change; firstSeen and the identity stay as first recorded.
  void submit(ProgramRecord p);
  // Adds counts to existing (source, port) rows, inserts the others, prunes to
  // kMaxProbeRows.
  void submit(std::vector<ProbeRow> probes);

  // Durable writes: committed with a full sync before `done` runs. `done` runs ON THE
  // WRITER THREAD (post it to your own thread; do not call flush() or the destructor
  // from it). Never dropped for a full queue. Errors read "Failed to <verb> '<database
  // path>': <reason>".
  //
  // The rule replaces the earlier rules for the same path, script path and kind that it
  // contradicts (the newest decision wins, with a new id): every one, except that an
  // approval for one user keeps the approvals for other single users; the program row (upserted as
  // submit(ProgramRecord) does) commits in the same transaction, and its id comes back in
  // programId.
  void addRule(rules::ApprovalRule rule, std::optional<ProgramRecord> program,
               std::function<void(Result<RuleWritten>)> done);
  // True when a rule was removed. Every kind of rule for the path and script path, or only
  // those of `kind`; of every scope, or only the approvals for one user (`user`).
  void removeRules(std::string path, std::string scriptPath, std::function<void(Result<bool>)> done,
                   std::optional<rules::IdentityKind> kind = std::nullopt,
                   std::optional<std::uint32_t> user = std::nullopt);
  // On failure (a full disk) the alert is kept in memory and written with later writes
  // (at most kMaxUnsavedAlerts, the oldest dropped and counted); `done` gets the error.
  // An id already stored is an error, and that alert is not kept.
  void addAlert(AlertRecord alert, std::function<void(Result<void>)> done);
  // False: no such alert (stored or kept unsaved). Acknowledging twice is fine.
  void acknowledgeAlert(std::int64_t id, std::function<void(Result<bool>)> done);
  // (principal key, snapshot JSON): replaced as a whole, in one transaction.
  void saveDetectorState(std::vector<std::pair<std::string, std::string>> rows,
                         std::function<void(Result<void>)> done);
  void saveFirewall(StoredFirewall firewall, std::function<void(Result<void>)> done);
  // Replaces the stored audit with these rows.
  void saveAudit(std::vector<AuditRow> rows, std::function<void(Result<void>)> done);
  // Replaces the stored household scan.
  void saveHouseholdScan(HouseholdScanRow row, std::function<void(Result<void>)> done);
  // Replaces the stored outside check (JSON text).
  void saveOutsideReport(std::string json, std::function<void(Result<void>)> done);

  // Fire and forget, batched with the records (never dropped for a full queue); a
  // programId not stored changes nothing.
  void setQuarantined(std::int64_t programId, bool quarantined);
  // Likewise for what the owner last decided for a version (ProgramRecord::decided):
  // Approved or Denied, or nullopt (forgotten). Other states are stored as nullopt.
  void setDecided(std::int64_t programId, std::optional<rules::ProgramState> decided);
  // Attempt retention (settings [store]): applied at once (a later flush() waits for
  // it), then every ~1000 attempts or 60 s. maxCount 0 keeps none.
  void setRetention(std::chrono::hours maxAge, std::uint64_t maxCount);

  // Waits until everything submitted before the call is written or failed (a durable
  // write's `done` has returned; a failing record batch has been retried).
  void flush();
  [[nodiscard]] WriterStats stats() const;

 private:
  struct Impl;
  explicit StoreWriter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::store
