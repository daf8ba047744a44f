#pragma once
// What guardd does about foreign changes to its nftables table (ruleset
// tampering), as pure logic: which notifications count, when a restore is due, and
// which restores raise an alert. Time comes in as arguments; no system calls, so it is
// unit-tested without a kernel (tests/unit/service/tamper_tracker_test.cpp).
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/netfilter/ruleset_monitor.hpp"

namespace mailguard::service {

// A process that committed a foreign change (from NFT_MSG_NEWGEN, when the kernel says).
struct TamperActor {
  std::uint32_t portId = 0;
  std::optional<std::uint32_t> pid;
  std::string comm;
  friend bool operator==(const TamperActor&, const TamperActor&) = default;
};

// One or more restores folded into one alert.
struct TamperReport {
  std::uint64_t restores = 0;
  // What was changed, in the order first seen, with how often ("deleted table", 3).
  std::vector<std::pair<std::string, std::uint64_t>> changes;
  std::vector<TamperActor> actors;
  // The monitor lost notifications and the re-applied table differed from the kernel's.
  bool lostEvents = false;

  // "deleted table; added rule to chain 'mail_out' (x2)"
  [[nodiscard]] std::string changesText() const;
  // "nft (pid 4242)", "nft (pid 4242), iptables-nft (pid 4250)", or "an unknown process"
  [[nodiscard]] std::string actorsText() const;
  void merge(const TamperReport& other);
};

class TamperTracker {
 public:
  using Steady = std::chrono::steady_clock::time_point;
  // Caps keep one alert readable when a script changes many things.
  static constexpr std::size_t kMaxChanges = 20;
  static constexpr std::size_t kMaxActors = 10;

  // table: the inet table guardd owns; ownPortId: its RulesetManager's netlink port,
  // whose changes (start-up, firewall changes, restores) are never tampering.
  TamperTracker(std::string table, std::uint32_t ownPortId,
                std::chrono::milliseconds alertWindow = std::chrono::minutes(1));

  // Feeds one notification in the order the kernel sent it.
  void observe(const netfilter::RulesetEvent& e);
  // The monitor socket overflowed: a resync (re-apply and compare) is due.
  void lostEvents() { resync_ = true; }

  // A restore is due: a foreign change to the table, or lost notifications.
  [[nodiscard]] bool restorePending() const { return !pending_.changes.empty() || resync_; }
  // Every pending foreign transaction has been committed (its NEWGEN seen), so the
  // report can name the process; the caller waits a little for it otherwise.
  [[nodiscard]] bool pendingComplete() const;

  // The table was put back. `tableDiffered`: for a resync only, whether the table in
  // the kernel was not guardd's. Returns the alert to raise now, or nullopt when there
  // is nothing to report or an alert went out less than alertWindow ago (then it is
  // folded into the next one, see due()).
  std::optional<TamperReport> restored(Steady now, bool tableDiffered = false);
  // The alert for the restores held back during the window, once it has passed.
  std::optional<TamperReport> due(Steady now);
  // When due() has something to say; nullopt: nothing held back.
  [[nodiscard]] std::optional<Steady> nextDue() const;

  [[nodiscard]] std::uint64_t restores() const { return restores_; }
  // What the next restore is for (for its log line).
  [[nodiscard]] const TamperReport& pending() const { return pending_; }
  [[nodiscard]] bool resyncPending() const { return resync_; }

 private:
  static void addChange(TamperReport& r, const std::string& what, std::uint64_t count);

  std::string table_;
  std::uint32_t ownPortId_;
  std::chrono::milliseconds window_;
  TamperReport pending_;
  std::map<std::uint32_t, bool> pendingPorts_;  // port id -> its NEWGEN seen
  bool resync_ = false;
  std::optional<Steady> windowEnd_;
  std::optional<TamperReport> heldBack_;
  std::uint64_t restores_ = 0;
};

}  // namespace mailguard::service
