#pragma once
// guard-notify's core: turns guardd's signals into desktop notifications and the
// notifications' actions into policy requests. It owns no connection: the server is a
// NotificationServer, policy calls go out through `submit`, and time comes in as an
// argument, so the rate limits are decided by the caller's clock.
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "notifications.hpp"
#include "policy_worker.hpp"

namespace mailguard::notify {

using SteadyTime = std::chrono::steady_clock::time_point;

// How much the desktop is told, at most.
struct Limits {
  // A notification already shown is updated in place at most this often (a bot holding
  // 1,000 attempts a second gives one notification whose count moves once a second).
  std::chrono::milliseconds updateEvery{1000};
  // New notifications per window; beyond that they are folded into one summary.
  unsigned newPerWindow = 5;
  std::chrono::milliseconds window{60000};
  // guardd's count of a held program's attempts is read (Programs) at most every
  // updateEvery while attempts come in, and for this long after the last one: signals of
  // a burst may be dropped (a full bus queue, a late start), the count in guardd is not.
  std::chrono::milliseconds readCountsFor{5000};
};

class Agent {
 public:
  Agent(NotificationServer& server, std::function<void(PolicyRequest)> submit, Limits limits = {});

  void attemptRecorded(const dbus::Attempt& attempt, SteadyTime now);
  void programChanged(const dbus::Program& program, SteadyTime now);
  void alertRaised(const dbus::Alert& alert, SteadyTime now);
  void actionInvoked(std::uint32_t id, const std::string& key, SteadyTime now);
  void closed(std::uint32_t id, CloseReason reason);
  void policyDone(const PolicyOutcome& outcome, SteadyTime now);
  // Shows updates that the rate limit held back, once due.
  void flush(SteadyTime now);
  // True when a held notification's count should be read from guardd now: call
  // programsRead() with guardd's Programs.
  [[nodiscard]] bool countsDue(SteadyTime now) const;
  // guardd's programs (empty when they could not be read: tried again after updateEvery);
  // a held notification counts its program's attempts since the first one it showed.
  void programsRead(const std::vector<dbus::Program>& programs, SteadyTime now);
  // When flush() has something to do next, if anything.
  [[nodiscard]] std::optional<SteadyTime> nextDue() const;

 private:
  enum class Kind { Held, Alert, Overflow, Outcome };
  struct Entry {
    Kind kind = Kind::Held;
    std::uint32_t id = 0;  // the server's notification id; 0 when not shown
    std::string target;    // Guard1 target: decimal program id or path
    std::string script;
    std::string path;
    std::string scriptPath;
    std::uint32_t uid = 0;
    std::int64_t programId = 0;  // 0: unattributed, counted from signals only
    std::int64_t count = 0;      // shown: the larger of the two lower bounds below
    std::int64_t signalled = 0;  // attempts signalled to this agent
    // guardd's attempt count of the program before the first held attempt shown; the
    // count is then guardd's count minus this.
    std::optional<std::int64_t> baseline;
    SteadyTime lastActivity{};  // the last signal, or the last read that raised the count
    SteadyTime lastRead{};
    std::string lastDestination;
    std::string sha256;
    bool details = false;  // the user asked for details
    bool busy = false;     // a policy call runs
    bool dirty = false;    // changed since last shown
    bool dismissed = false;
    bool folded = false;  // counted in the overflow notification instead
    std::string refusal;  // why the last Approve/Deny failed, shown until the next one
    SteadyTime lastShown{};
    std::string alertSummary;
    std::vector<std::string> alertReasons;
    std::string alertKind;
  };

  static Entry makeOverflow() {
    Entry e;
    e.kind = Kind::Overflow;
    return e;
  }
  bool supports(const std::string& capability);
  std::string text(const std::string& s);  // escaped where the server takes markup
  Notification heldNotification(const Entry& e);
  Notification alertNotification(const Entry& e);
  Notification overflowNotification(const Entry& e) const;
  // Shows or updates `e` now if the limits allow, else marks it for flush().
  void present(Entry& e, SteadyTime now, bool urgent = false);
  bool takeNewSlot(SteadyTime now);
  void show(Entry& e, const Notification& n, SteadyTime now);
  Entry* byNotification(std::uint32_t id);
  [[nodiscard]] bool wantsCount(const Entry& e, SteadyTime now) const;
  // Takes guardd's attempt count of e's program; shows a higher count.
  void counted(Entry& e, std::int64_t attempts, SteadyTime now);
  std::string name(const Entry& e) const;

  NotificationServer& server_;
  std::function<void(PolicyRequest)> submit_;
  Limits limits_;
  std::optional<std::vector<std::string>> caps_;
  std::map<std::string, Entry> entries_;  // by key: "program:ID", "path:PATH", "alert:ID"
  Entry overflow_ = makeOverflow();
  std::vector<SteadyTime> recentNew_;
  // The last ProgramChanged of a program with no notification: guardd signals it just
  // before the attempt that made the program pending (or new), with the count including
  // that attempt, which gives a new notification its exact baseline.
  std::optional<dbus::Program> lastChanged_;
};

}  // namespace mailguard::notify
