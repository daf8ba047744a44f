#pragma once
// Ruleset tampering (issue #8): watches nf_tables change notifications, puts guardd's
// table back when another process changes or deletes it, and raises a rate-limited
// "tamper" alert. Lives in Guard::Impl and runs on the loop thread.
#include <functional>
#include <memory>

#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/netfilter/ruleset_monitor.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/detector_store.hpp"
#include "tamper_tracker.hpp"

namespace mailguard::service {

class TamperWatch {
 public:
  // restore: installs the table for guardd's current state (the start-up apply).
  TamperWatch(Guard& guard, const Guard::Options& options, EventLoop& loop,
              netfilter::RulesetManager& nft, const Clock& clock,
              std::function<Result<void>()> restore);
  ~TamperWatch();
  TamperWatch(const TamperWatch&) = delete;
  TamperWatch& operator=(const TamperWatch&) = delete;

  // Subscribes to the notifications. Call before guardd's first apply, so no foreign
  // change between that apply and the subscription goes unseen.
  Result<void> start();
  [[nodiscard]] std::uint64_t restores() const { return tracker_.restores(); }
  [[nodiscard]] store::DetectorStore* alertStore() const { return alerts_.get(); }

 private:
  // Takes what the monitor socket holds into the tracker; false on a read error (logged).
  bool readNotifications();
  void onReadable();
  void onTimer();
  void restoreNow();
  void raise(const TamperReport& report);
  void arm();

  Guard& guard_;
  const Guard::Options& options_;
  EventLoop& loop_;
  netfilter::RulesetManager& nft_;
  const Clock& clock_;
  std::function<Result<void>()> restore_;
  TamperTracker tracker_;
  std::unique_ptr<netfilter::RulesetMonitor> monitor_;
  std::unique_ptr<store::DetectorStore> alerts_;
  int timerFd_ = -1;
  // Waiting for the NEWGEN that names the foreign process, at most this long.
  std::optional<std::chrono::steady_clock::time_point> restoreBy_;
};

}  // namespace mailguard::service
