#pragma once
// Guard's outside check: is the household's public address on a DNS blocklist, and do
// the owner's domains publish SPF and DMARC that stop forgeries. On request and every
// [outside] interval_hours; the DNS lookups block for seconds, so they run on a worker
// thread of their own and report back through EventLoop::post. Private to
// guardd/service.
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "alert_sink.hpp"
#include "mailguard/outside/report.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

class OutsideCheck {
 public:
  using Evidence = std::function<outside::LocalEvidence()>;
  // `evidence` is asked (on the loop thread) when a new listing is found.
  OutsideCheck(const rules::Settings& settings, EventLoop& loop, const Clock& clock,
               store::SqliteStore& reader, store::StoreWriter& writer, AlertSink& alerts,
               Evidence evidence);
  ~OutsideCheck();  // waits for a running check (bounded by the DNS timeouts)
  OutsideCheck(const OutsideCheck&) = delete;
  OutsideCheck& operator=(const OutsideCheck&) = delete;

  // Loads the stored report and starts the schedule.
  void start();
  // The last report as JSON (outside::toJson) with "running" and "next_run" added.
  [[nodiscard]] std::string reportJson() const;
  // Runs the check now; a call while one runs joins it. `done` gets reportJson().
  void run(std::function<void(const std::string&)> done);
  // Runs the check when the schedule says it is due (called by the loop's timer).
  void runIfDue();
  // Called on the loop with reportJson() each time a check ended, however it was started
  // (Guard::onOutsideChecked: the OutsideChecked signal).
  void onFinished(std::function<void(const std::string&)> finished) {
    finished_ = std::move(finished);
  }

 private:
  void finish(outside::OutsideReport report);

  const rules::Settings& settings_;
  EventLoop& loop_;
  const Clock& clock_;
  store::SqliteStore& reader_;
  store::StoreWriter& writer_;
  AlertSink& alerts_;
  Evidence evidence_;
  TimePoint started_{};
  outside::OutsideReport last_;
  std::thread worker_;
  bool running_ = false;
  std::vector<std::function<void(const std::string&)>> waiting_;
  std::function<void(const std::string&)> finished_;
};

}  // namespace mailguard::service
