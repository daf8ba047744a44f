#pragma once
// Backscatter floods, from the local MTA's log as MtaGate follows it (or postfix's own
// records in the journal, where it logs nowhere else): each DSN delivered to
// a mailbox here is matched against the mail this PC sent (mailguard/mta/backscatter.hpp
// says on what), and a flood of unmatched ones raises one "backscatter" alert with its
// numbers. Private to guardd/service; lives in Guard::Impl and runs on the loop thread.
#include <string>

#include "alert_sink.hpp"
#include "mailguard/mta/backscatter.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/service/guard.hpp"

namespace mailguard::service {

class BackscatterMonitor {
 public:
  BackscatterMonitor(const Clock& clock, AlertSink& alerts, mta::BackscatterConfig config = {})
      : clock_(clock), alerts_(alerts), config_(config), watch_(config) {}

  // A line of the log at `log` (named in the alert: where the owner can look; for the
  // journal, MtaGate::kJournalPlace).
  void onLine(const mta::InboundLine& line, const std::string& log);
  // A message submitted through the gate reached one more recipient (delivered or refused).
  void sent(const std::string& queueId) { watch_.sent(queueId, clock_.monotonic()); }
  void setWatching(bool watching) { watching_ = watching; }
  [[nodiscard]] BackscatterInfo info() const;

 private:
  void raise(const mta::BackscatterFigures& f, const std::string& log);
  [[nodiscard]] TimePoint wall(MonoTime t) const;

  const Clock& clock_;
  AlertSink& alerts_;
  mta::BackscatterConfig config_;
  mta::BackscatterWatch watch_;
  bool watching_ = false;
  std::int64_t alertId_ = 0;  // the current flood's
};

}  // namespace mailguard::service
