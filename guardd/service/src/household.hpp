#pragma once
// The household's other mail servers: on the owner's request only (never scheduled),
// a bounded connect scan of this PC's own subnets for mail ports and the relay audit
// against each port found, on a worker thread (it takes seconds to a minute); the
// result is stored (one row) and each newly open relay raises one alert. Private to
// guardd/service.
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "alert_sink.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

class HouseholdScanner {
 public:
  // The scan's bounds and pace are [household] in `settings` (kept by the caller).
  HouseholdScanner(const rules::Settings& settings, EventLoop& loop, const Clock& clock,
                   store::SqliteStore& reader, store::StoreWriter& writer, AlertSink& alerts);
  ~HouseholdScanner();  // stops a running scan (no new connects) and waits for it
  HouseholdScanner(const HouseholdScanner&) = delete;
  HouseholdScanner& operator=(const HouseholdScanner&) = delete;

  // Starts a scan, or joins the running one; `done` runs on the loop once it is stored.
  void scan(Done<HouseholdInfo> done);
  [[nodiscard]] HouseholdInfo info() const { return info_; }

 private:
  struct Outcome {
    std::string error;
    std::string json;
    std::vector<std::string> openRelays;  // "address:port"
    std::string alertsJson;               // per open relay: what the alert says
  };
  void finish(Outcome outcome);

  const rules::Settings& settings_;
  EventLoop& loop_;
  const Clock& clock_;
  store::StoreWriter& writer_;
  AlertSink& alerts_;
  HouseholdInfo info_;
  std::vector<Done<HouseholdInfo>> waiting_;
  // "address:port" of the open relays the last scan found: alerted already.
  std::set<std::string> alerted_;
  std::atomic<bool> stop_{false};
  std::thread worker_;
};

}  // namespace mailguard::service
