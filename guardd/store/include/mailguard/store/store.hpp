#pragma once
// SQLite state (WAL): programs seen, the owner's approvals and denials, attempts.
// Approvals are written synchronously (acknowledged means durable); attempts and
// program sightings go through AttemptWriter, a thread of its own, so a verdict
// never waits for the disk.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/rules/result.hpp"

struct sqlite3;

namespace mailguard::store {

struct ProgramRecord {
  std::int64_t id = 0;
  rules::ProgramIdentity identity;  // path, sha256, scriptPath, scriptSha256 (flags not stored)
  std::uint32_t uid = 0;            // uid of the last process seen running it
  TimePoint firstSeen{};
  TimePoint lastAttempt{};
  std::int64_t attempts = 0;  // filled by loadPrograms from the attempts table
  bool quarantined = false;
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
};

struct AttemptQuery {
  std::uint32_t limit = 50;
  std::optional<std::int64_t> beforeId;  // paging: attempts with id < beforeId
  std::optional<std::int64_t> programId;
  std::optional<rules::Verdict> verdict;
  std::optional<TimePoint> since;
  std::optional<TimePoint> until;
};

class SqliteStore {
 public:
  // Opens (creating) DIR/mailguard.db in WAL mode, creates or migrates the schema.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& stateDir);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  [[nodiscard]] const std::filesystem::path& databasePath() const { return path_; }

  // Approvals and denials. addRule replaces an earlier rule for the same path and
  // script path (the newest decision wins) and returns the new rule's id.
  Result<std::vector<rules::ApprovalRule>> loadRules();
  Result<std::int64_t> addRule(const rules::ApprovalRule& rule);
  Result<void> removeRules(const std::string& path, const std::string& scriptPath);

  // Changes whenever any connection (another process too) changed the approvals:
  // cheap enough to call per verdict (PRAGMA data_version, then a counter row).
  Result<std::int64_t> rulesVersion();

  Result<std::vector<ProgramRecord>> loadPrograms();
  Result<void> setQuarantined(std::int64_t programId, bool quarantined);

  Result<std::vector<AttemptRecord>> attempts(const AttemptQuery& q);
  Result<std::int64_t> attemptCount();

  // Synchronous writes used by AttemptWriter's thread (own connection) and tests.
  Result<void> upsertProgram(const ProgramRecord& p);
  Result<void> insertAttempts(std::vector<AttemptRecord>& batch);  // sets ids
  // Programs, then attempts, in one transaction (AttemptWriter's batch); sets ids.
  // An attempt whose programId names no stored program is kept, unattributed.
  Result<void> writeBatch(const std::vector<ProgramRecord>& programs,
                          std::vector<AttemptRecord>& attempts);
  // Deletes attempts older than `before` and beyond the newest `maxCount` (0 keeps none).
  Result<void> prune(TimePoint before, std::uint64_t maxCount);

  // For AttemptWriter's own connection: sync at WAL checkpoints, not at every commit
  // (attempts may be lost on power loss, never approvals, whose connection keeps FULL).
  Result<void> relaxSync();

  struct PreparedCache;

 private:
  SqliteStore(sqlite3* db, std::filesystem::path path);
  sqlite3* db_;
  std::filesystem::path path_;
  std::unique_ptr<PreparedCache> prepared_;
  std::int64_t lastDataVersion_ = -1;
  std::int64_t lastRulesCounter_ = -1;
};

struct WriterStats {
  std::uint64_t attemptsWritten = 0;
  std::uint64_t attemptsDropped = 0;  // queue full (bounded memory)
  std::uint64_t writeErrors = 0;
  std::string lastError;  // empty when the last batch succeeded
};

// One writer thread with its own connection. submit() never blocks on I/O: it
// appends to a bounded queue (dropping, and counting, when full) and wakes the thread,
// which writes everything queued in one transaction.
class AttemptWriter {
 public:
  static Result<std::unique_ptr<AttemptWriter>> start(const std::filesystem::path& stateDir,
                                                      std::size_t maxQueued = 100'000);
  ~AttemptWriter();  // writes what is queued, then joins
  AttemptWriter(const AttemptWriter&) = delete;
  AttemptWriter& operator=(const AttemptWriter&) = delete;

  void submit(AttemptRecord a);
  void submit(ProgramRecord p);
  // Waits until everything submitted before the call is written (tests, shutdown).
  void flush();
  [[nodiscard]] WriterStats stats() const;
  // Attempt retention (settings [store]): applied by the writer thread at once (a
  // later flush() waits for it), then every ~1000 attempts or 60 s.
  void setRetention(std::chrono::hours maxAge, std::uint64_t maxCount);

 private:
  AttemptWriter() = default;
  void run();
  using Item = std::variant<AttemptRecord, ProgramRecord>;
  std::unique_ptr<SqliteStore> store_;
  mutable std::mutex mu_;
  std::condition_variable wake_, done_;
  std::deque<Item> queue_;
  std::size_t maxQueued_ = 0;
  std::uint64_t submitted_ = 0, completed_ = 0;
  bool stop_ = false;
  bool pruneDue_ = false;
  int flushWaiters_ = 0;
  std::chrono::hours retentionAge_{24 * 90};
  std::uint64_t retentionCount_ = 1'000'000;
  WriterStats stats_;
  std::thread thread_;
};

}  // namespace mailguard::store
