#pragma once
// The zombie detector's rows (issue #5): alerts and the detector's persisted state.
// Its own connection to the same database (schema version 2 and later, created by
// SqliteStore::open). Writes are synchronous and rare (an alert, a quarantine, a
// periodic state save), so acknowledged means durable, as for approvals. The store
// does not know the detector's types: evidence and state travel as JSON text.
#include <cstdint>
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

  // Sets alert.id.
  Result<void> addAlert(AlertRecord& alert);
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
  sqlite3* db_;
};

}  // namespace mailguard::store
