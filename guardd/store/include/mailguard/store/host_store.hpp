#pragma once
// The host firewall's settings, inbound probes of mail ports and the last mail-server
// audit (issue #6), in the same database as SqliteStore (tables of schema migration 2).
// Open it after SqliteStore::open, which creates or migrates the schema. One connection,
// used on guardd's loop thread: firewall changes are written synchronously (the caller
// is told "done" only once the state is on disk); probes are written once per tick.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

struct sqlite3;

namespace mailguard::store {

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
  std::vector<std::string> transcript;
};

class HostStore {
 public:
  // At most this many probe rows are kept (the newest by last sighting).
  static constexpr std::size_t kMaxProbeRows = 1000;

  static Result<std::unique_ptr<HostStore>> open(const std::filesystem::path& stateDir);
  ~HostStore();
  HostStore(const HostStore&) = delete;
  HostStore& operator=(const HostStore&) = delete;

  Result<StoredFirewall> loadFirewall();
  Result<void> saveFirewall(const StoredFirewall& firewall);

  // Adds the counts of (source, port) rows that exist, inserts the others, then prunes.
  Result<void> addProbes(const std::vector<ProbeRow>& batch);
  // Newest first (by last sighting).
  Result<std::vector<ProbeRow>> probes(std::size_t limit);

  // Replaces the stored audit with these rows (one transaction).
  Result<void> saveAudit(const std::vector<AuditRow>& rows);
  Result<std::vector<AuditRow>> loadAudit();

 private:
  HostStore(sqlite3* db, std::filesystem::path path);
  sqlite3* db_;
  std::filesystem::path path_;
};

}  // namespace mailguard::store
