// Ruleset tampering: the monitor socket and a timerfd on the loop, the
// restore through guardd's start-up apply, and the alert.
#include "tamper.hpp"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

// A foreign transaction's NEWGEN (which names the process) follows its changes within
// microseconds; wait this long at most before restoring without it.
constexpr auto kWaitForCommit = std::chrono::milliseconds(20);
constexpr auto kRetryRestore = std::chrono::milliseconds(500);

std::string tableLabel(const std::string& name) { return "inet " + name; }

// The committing process's executable, while it still runs (nft exits at once, so
// mostly its name is all there is).
std::string programOf(const TamperReport& report) {
  for (const auto& a : report.actors) {
    if (!a.pid) continue;
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(*a.pid) + "/exe", ec);
    if (!ec) return exe.string();
  }
  for (const auto& a : report.actors) {
    if (!a.comm.empty()) return a.comm;
  }
  return "(unknown)";
}

}  // namespace

TamperWatch::TamperWatch(const Guard::Options& options, EventLoop& loop,
                         netfilter::RulesetManager& nft, const Clock& clock, AlertSink& alerts,
                         std::function<Result<void>()> restore)
    : options_(options),
      loop_(loop),
      nft_(nft),
      clock_(clock),
      restore_(std::move(restore)),
      tracker_(options.tableName, nft.portId()),
      alerts_(alerts) {}

TamperWatch::~TamperWatch() {
  if (monitor_) loop_.remove(monitor_->fd());
  if (timerFd_) loop_.remove(timerFd_.get());
}

Result<void> TamperWatch::start() {
  auto opened = netfilter::RulesetMonitor::open();
  if (!opened) return opened.error();
  monitor_ = std::move(opened.value());
  timerFd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timerFd_) {
    return systemError(std::string("Failed to create 'tamper timer': ") + std::strerror(errno),
                       errno);
  }
  if (auto r = loop_.add(monitor_->fd(), EPOLLIN, [this](std::uint32_t) { onReadable(); }); !r) {
    return r.error();
  }
  if (auto r = loop_.add(timerFd_.get(), EPOLLIN, [this](std::uint32_t) { onTimer(); }); !r) {
    return r.error();
  }
  return {};
}

bool TamperWatch::readNotifications() {
  auto batch = monitor_->readAvailable();
  if (!batch) {
    log::error(batch.error().message);
    return false;
  }
  if (batch->lost) {
    log::warning("Lost nf_tables change notifications (monitor socket full); comparing table '" +
                 tableLabel(options_.tableName) + "' with guardd's");
    tracker_.lostEvents();
  }
  for (const auto& e : batch->events) tracker_.observe(e);
  return true;
}

void TamperWatch::onReadable() {
  if (!readNotifications() || !tracker_.restorePending()) return;
  if (tracker_.pendingComplete()) {
    restoreNow();
    return;
  }
  if (!restoreBy_) restoreBy_ = clock_.monotonic() + kWaitForCommit;
  arm();
}

void TamperWatch::onTimer() {
  std::uint64_t expirations = 0;
  (void)::read(timerFd_.get(), &expirations, sizeof expirations);
  const auto now = clock_.monotonic();
  if (restoreBy_ && now >= *restoreBy_) {
    // Whatever arrived meanwhile (the NEWGEN we waited for) goes into this restore.
    (void)readNotifications();
    restoreBy_.reset();
    if (tracker_.restorePending()) restoreNow();
  }
  if (auto report = tracker_.due(clock_.monotonic())) raise(*report);
  arm();
}

void TamperWatch::restoreNow() {
  const std::string table = tableLabel(options_.tableName);
  const bool resync = tracker_.resyncPending();
  std::optional<std::string> before;
  if (resync) {
    if (auto f = nft_.fingerprint(options_.tableName); f) {
      before = std::move(f.value());
    } else {
      log::warning(f.error().message);
    }
  }
  const auto started = clock_.monotonic();
  if (auto r = restore_(); !r) {
    // Keep what is pending and try again: the table must come back.
    log::error("Failed to restore table '" + table +
               "' after a foreign change: " + r.error().message);
    restoreBy_ = clock_.monotonic() + kRetryRestore;
    arm();
    return;
  }
  const auto tookUs =
      std::chrono::duration_cast<std::chrono::microseconds>(clock_.monotonic() - started).count();
  bool differed = false;
  if (resync) {
    auto after = nft_.fingerprint(options_.tableName);
    // Unknown counts as changed: lost notifications may have hidden anything.
    differed = !before || !after || *before != after.value();
  }
  const TamperReport& pending = tracker_.pending();
  const std::string took =
      std::to_string(tookUs / 1000) + "." + std::to_string(tookUs % 1000 / 100) + " ms";
  if (!pending.changes.empty()) {
    log::warning("Ruleset tampering: " + pending.changesText() + " in table '" + table + "' by " +
                 pending.actorsText() + "; restored it in " + took);
  } else if (resync) {
    log::warning(std::string("Re-applied table '") + table + "' after lost notifications in " +
                 took + (differed ? ": it had been changed" : ": it was unchanged"));
  }
  if (auto report = tracker_.restored(clock_.monotonic(), differed)) raise(*report);
  arm();
}

void TamperWatch::raise(const TamperReport& report) {
  const std::string table = tableLabel(options_.tableName);
  store::AlertRecord record;
  record.time = clock_.now();
  record.principal = "tamper:" + table;
  record.path = programOf(report);
  record.tier = "soft";  // nothing is quarantined; the table is back already
  const std::string by = report.actorsText();
  if (report.restores == 1) {
    record.summary = "Firewall table '" + table + "' was changed by " + by + ": " +
                     report.changesText() + "; guardd restored it";
  } else {
    record.summary = "Firewall table '" + table + "' was changed " +
                     std::to_string(report.restores) + " times within a minute by " + by +
                     "; guardd restored it each time";
  }
  record.reasons = {
      "changed by " + by + ": " + report.changesText(),
      "guardd restored the table " + std::to_string(report.restores) + " time(s) (" +
          std::to_string(tracker_.restores()) + " since it started)",
      "Only root can change the firewall: if nobody here did, find the program that ran (see "
      "the process above) and remove it; 'guardd --remove-rules' is meant for a stopped guardd"};
  nlohmann::ordered_json changes = nlohmann::ordered_json::array();
  for (const auto& [what, count] : report.changes) {
    changes.push_back({{"what", what}, {"count", count}});
  }
  nlohmann::ordered_json actors = nlohmann::ordered_json::array();
  for (const auto& a : report.actors) {
    actors.push_back({{"pid", a.pid ? nlohmann::ordered_json(*a.pid) : nullptr},
                      {"comm", a.comm},
                      {"netlink_port", a.portId}});
  }
  // "kind" first: clients tell a tamper alert from a detector or audit one by it.
  nlohmann::ordered_json evidence{{"kind", "tamper"},
                                  {"table", table},
                                  {"changes", changes},
                                  {"processes", actors},
                                  {"restores", report.restores},
                                  {"restores_total", tracker_.restores()},
                                  {"lost_events", report.lostEvents}};
  record.evidence = evidence.dump();
  alerts_.raise(std::move(record));
}

void TamperWatch::arm() {
  std::optional<MonoTime> when = restoreBy_;
  if (const auto due = tracker_.nextDue(); due && (!when || *due < *when)) when = due;
  itimerspec spec{};
  if (when) {
    const auto ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(when->time_since_epoch()).count();
    // 0 would disarm: a deadline already passed fires at once instead.
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
  }
  if (::timerfd_settime(timerFd_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) < 0) {
    log::error(std::string("Failed to arm 'tamper timer': ") + std::strerror(errno));
  }
}

}  // namespace mailguard::service
