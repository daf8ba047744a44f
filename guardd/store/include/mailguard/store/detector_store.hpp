#pragma once
// The zombie detector's rows (issue #5): alerts and the detector's persisted state.
// Its own connection to the same database (schema version 2 and later, created by
// SqliteStore::open). Writes are synchronous and rare (an alert, a quarantine, a
// periodic state save), so acknowledged means durable, as for approvals. The store
// does not know the detector's types: evidence and state travel as JSON text.
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

struct sqlite3;

namespace mailguard::store {

struct AlertRecord {
  std::int64_t id = 0;  // 0: the store assigns one
  TimePoint time{};
  std::optional<std::int64_t> programId;
  std::string principal;  // the detector's principal key
  std::string path;
  std::string scriptPath;
  std::uint32_t uid = 0;
  std::string tier;                  // "soft" or "hard"
  std::string summary;               // one line a person can read
  std::vector<std::string> reasons;  // "direct-to-mx 6.00 nats (4x)", heaviest first
  std::string evidence;              // JSON object: counts, destinations, parent chain, ...
  bool acknowledged = false;
};

class DetectorStore {
 public:
  // Opens DIR/mailguard.db, which SqliteStore::open has created and migrated.
  static Result<std::unique_ptr<DetectorStore>> open(const std::filesystem::path& stateDir);
  ~DetectorStore();
  DetectorStore(const DetectorStore&) = delete;
  DetectorStore& operator=(const DetectorStore&) = delete;

  // Sets alert.id. When the write fails (a full disk) the alert is kept in memory, id 0,
  // and written before the next one, by flushUnsaved() and before any read, so that an
  // alert is never lost to a transient error; the error is still returned, to be
  // logged. At most kMaxUnsaved are kept; beyond that the oldest is dropped and counted.
  Result<void> addAlert(AlertRecord& alert);
  // Writes the alerts kept by a failed addAlert, oldest first; stops at the first error.
  Result<void> flushUnsaved();
  [[nodiscard]] std::size_t unsavedAlerts() const { return unsaved_.size(); }
  [[nodiscard]] std::uint64_t alertsDropped() const { return dropped_; }
  static constexpr std::size_t kMaxUnsaved = 1000;
  // Newest first, at most `limit`.
  Result<std::vector<AlertRecord>> alerts(std::uint32_t limit);
  Result<std::optional<AlertRecord>> alert(std::int64_t id);
  // True when the alert exists (acknowledging twice is fine).
  Result<bool> acknowledge(std::int64_t id);

  // (principal key, snapshot JSON): replaced as a whole, in one transaction.
  Result<void> saveState(const std::vector<std::pair<std::string, std::string>>& rows);
  Result<std::vector<std::pair<std::string, std::string>>> loadState();

 private:
  explicit DetectorStore(sqlite3* db);
  Result<void> insertAlert(AlertRecord& alert);
  sqlite3* db_;
  std::deque<AlertRecord> unsaved_;
  std::uint64_t dropped_ = 0;
};

}  // namespace mailguard::store
