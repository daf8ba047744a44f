#pragma once
// Ruleset tampering: watches nf_tables change notifications, puts guardd's
// table back when another process changes or deletes it, and raises a rate-limited
// "tamper" alert. Lives in Guard::Impl and runs on the loop thread.
#include <functional>
#include <memory>

#include "alert_sink.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/netfilter/ruleset_monitor.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "tamper_tracker.hpp"

namespace mailguard::service {

class TamperWatch {
 public:
  // restore: installs the table for guardd's current state (the start-up apply).
  TamperWatch(const Guard::Options& options, EventLoop& loop, netfilter::RulesetManager& nft,
              const Clock& clock, AlertSink& alerts, std::function<Result<void>()> restore);
  ~TamperWatch();
  TamperWatch(const TamperWatch&) = delete;
  TamperWatch& operator=(const TamperWatch&) = delete;

  // Subscribes to the notifications. Call before guardd's first apply, so no foreign
  // change between that apply and the subscription goes unseen.
  Result<void> start();
  [[nodiscard]] std::uint64_t restores() const { return tracker_.restores(); }

 private:
  // Takes what the monitor socket holds into the tracker; false on a read error (logged).
  bool readNotifications();
  void onReadable();
  void onTimer();
  void restoreNow();
  void raise(const TamperReport& report);
  void arm();

  const Guard::Options& options_;
  EventLoop& loop_;
  netfilter::RulesetManager& nft_;
  const Clock& clock_;
  std::function<Result<void>()> restore_;
  TamperTracker tracker_;
  std::unique_ptr<netfilter::RulesetMonitor> monitor_;
  AlertSink& alerts_;
  Fd timerFd_;
  // Waiting for the NEWGEN that names the foreign process, at most this long.
  std::optional<MonoTime> restoreBy_;
};

}  // namespace mailguard::service
