#pragma once
// The zombie detector inside guardd (issue #5): turns each new connection into an
// AttemptEvent, acts on the Assessment (quarantine, throttle), stores alerts, keeps the
// detector's state in the store, and feeds connection outcomes from conntrack.
// Private to guardd/service; Guard::Impl owns one.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "detector_codec.hpp"
#include "dpkg_sums.hpp"
#include "mailguard/detector/detector.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/connection.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/detector_store.hpp"

namespace mailguard::service {

class ConntrackListener;

// What decide() needs from the detector for one packet.
struct DetectorVerdict {
  bool quarantined = false;  // the principal is quarantined (now or before): reject
  bool throttle = false;     // soft tier and a new destination too soon: hold
  std::string reason;        // why, for the attempt's reason
};

class Detection {
 public:
  explicit Detection(Guard::Impl& guard);
  ~Detection();
  Detection(const Detection&) = delete;
  Detection& operator=(const Detection&) = delete;

  // Opens the alerts store, imports the detector state, marks quarantined programs,
  // starts the conntrack listener (a warning, not an error, when it cannot).
  Result<void> start();
  // Saves the state (shutdown).
  void stop();

  // Per queued packet of an attributed process. `firstSyn` is false for a SYN
  // retransmit of a held attempt: the detector sees each connection once.
  DetectorVerdict assess(const procinfo::ProcessInfo& process, ProgramView& program,
                         const rules::ConnectionTuple& tuple, bool firstSyn);
  // Stores and signals the alerts raised since (by assess() or an outcome); called once
  // the verdict is sent, and after conntrack events.
  void afterVerdict();
  // The connection was let through: its outcome (conntrack) goes to the detector.
  void allowed(const procinfo::ProcessInfo& process, const rules::ConnectionTuple& tuple);

  [[nodiscard]] bool quarantinedIdentity(const rules::ProgramIdentity& identity) const;

  Result<std::vector<store::AlertRecord>> alerts(std::uint32_t limit);
  [[nodiscard]] store::DetectorStore* alertStore() const { return store_.get(); }
  Result<bool> ackAlert(std::int64_t id);
  Result<ProgramView> release(const ProgramRef& ref);
  Result<ProgramView> declareBulk(const ProgramRef& ref, unsigned recipients,
                                  std::chrono::hours window);

  // For the conntrack listener: one connection's result.
  void onOutcome(const rules::ConnectionTuple& tuple, detector::ConnectOutcome outcome);
  void onClosed(const rules::ConnectionTuple& tuple);

 private:
  struct Tracked {
    detector::Principal principal;
    std::string dst;
    std::uint16_t port = 0;
    bool reported = false;
    std::chrono::steady_clock::time_point since;
  };
  using TupleKey = std::tuple<std::string, std::uint16_t, std::string, std::uint16_t>;
  static TupleKey keyOf(const rules::ConnectionTuple& t);

  detector::IdentityClass classify(const rules::ProgramIdentity& identity);
  bool isMta(const rules::ProgramIdentity& identity);
  bool localMtaListens(const std::string& dst, std::uint16_t port);
  unsigned openSessions(const detector::Principal& principal) const;
  std::vector<std::string> parentChain(int ppid) const;
  void drainAlerts(const procinfo::ProcessInfo* process);
  void markQuarantined(const detector::Principal& principal);
  void save();
  Result<std::vector<ProgramView*>> programsFor(const ProgramRef& ref,
                                                rules::ProgramIdentity& identity);

  Guard::Impl& g_;
  detector::DetectorConfig config_;
  std::unique_ptr<detector::Detector> detector_;
  std::unique_ptr<store::DetectorStore> store_;
  std::unique_ptr<ConntrackListener> conntrack_;
  std::map<TupleKey, Tracked> tracked_;
  // Held by the throttle: its SYN retries stay held (the held attempt is one attempt).
  std::map<TupleKey, std::chrono::steady_clock::time_point> throttled_;
  // dpkg's recorded MD5 per file ("/usr/sbin/exim4"): 100k lines, so read by a thread
  // started with guardd rather than by the first verdict that needs it; read again when
  // dpkg has changed its database since (an upgraded MTA must still be recognised).
  struct DpkgState {
    std::filesystem::file_time_type infoTime;
    DpkgSums sums;
  };
  std::future<DpkgState> dpkgLoading_;
  std::optional<DpkgState> dpkgSums_;
  static DpkgState readDpkgState();
  const DpkgSums& dpkgSums();
  bool dpkgChanged() const;
  std::unordered_map<std::string, detector::IdentityClass> classCache_;  // by path + sha256
  // By port only: the answer does not depend on the loopback address, and a bot
  // flooding 127.x.y.z must cost neither a /proc/net/tcp scan each nor an entry each.
  std::map<std::uint16_t, std::pair<bool, std::chrono::steady_clock::time_point>> mtaListenerCache_;
  bool dirty_ = false;
  std::map<std::string, BulkDeclaration> bulk_;  // by principal key, until they end
  bool alertsPending_ = false;
  std::optional<procinfo::ProcessInfo> alertProcess_;  // whose attempt raised them
};

}  // namespace mailguard::service
