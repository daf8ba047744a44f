// guard-notify: a per-user agent of the desktop session. Listens to guardd's signals on
// the system bus and tells the user through the session's notification server when a
// program is first held, quarantined, an audit finds an open relay (on this PC or on the
// LAN), a backscatter flood arrives, or the public address is on a blocklist. It needs no
// privilege: reading guardd's signals is open to every local user, and Approve/Deny are
// decided by guardd (root or polkit), exactly as for guardctl run by this user.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iostream>
#include <memory>
#include <system_error>
#include <variant>
#include <vector>

#include "agent.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/dbus/client.hpp"
#include "notifications.hpp"
#include "policy_worker.hpp"

namespace {

using namespace mailguard;
using Clock = std::chrono::steady_clock;

// guardd or the system bus may come later than the session (or restart): try again.
// Owned on the session bus while guard-notify runs (the user unit's BusName).
constexpr const char* kAgentName = "org.mailguard.Notify";
constexpr auto kReconnectEvery = std::chrono::seconds(5);

using Event = std::variant<dbus::Attempt, dbus::Program, dbus::Alert>;

class Loop {
 public:
  Loop(notify::SessionNotifications& session, bool verbose)
      : session_(session),
        verbose_(verbose),
        agent_(session, [this](notify::PolicyRequest r) { worker_.submit(std::move(r)); }) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
      throw std::system_error(errno, std::generic_category(), "sigprocmask");
    }
    signals_ = Fd(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!signals_) throw std::system_error(errno, std::generic_category(), "signalfd");
    session_.onActionInvoked(
        [this](std::uint32_t id, const std::string& key) { actions_.emplace_back(id, key); });
    session_.onClosed(
        [this](std::uint32_t id, notify::CloseReason reason) { closes_.emplace_back(id, reason); });
  }

  int run() {
    connectSystem();
    std::cerr << "guard-notify: ready" << (client_ ? "" : " (system bus not reachable yet)")
              << "\n";
    for (;;) {
      auto now = Clock::now();
      auto due = now + std::chrono::hours(1);
      if (!client_) due = std::min(due, nextConnect_);
      if (auto d = agent_.nextDue()) due = std::min(due, *d);
      int timeout = static_cast<int>(std::max<std::int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count() + 1));

      pollfd fds[4] = {
          {signals_.get(), POLLIN, 0}, {worker_.readyFd(), POLLIN, 0}, {-1, 0, 0}, {-1, 0, 0}};
      auto s = session_.pollSpec();
      if (!s) return fail(s.error().message);
      fds[2] = {s->fd, s->events, 0};
      if (s->timeoutMs >= 0) timeout = std::min(timeout, s->timeoutMs);
      if (client_) {
        const auto spec = client_->pollSpec();
        if (const auto* p = std::get_if<dbus::Client::PollSpec>(&spec)) {
          fds[3] = {p->fd, p->events, 0};
          if (p->timeoutMs >= 0) timeout = std::min(timeout, p->timeoutMs);
        } else {
          lostSystem(std::get<dbus::ClientError>(spec).message);
        }
      }
      if (::poll(fds, 4, timeout) < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "poll");
      }
      now = Clock::now();
      if (fds[0].revents & POLLIN) return 0;  // SIGTERM, SIGINT or SIGHUP: the session ends

      if (auto r = session_.dispatch(); !r) return fail(r.error().message);
      if (fds[2].revents & (POLLHUP | POLLERR)) return fail("the session bus closed");
      if (client_) {
        auto r = client_->dispatch();
        if (const auto* e = dbus::errorOf(r)) lostSystem(e->message);
        if (fds[3].revents & (POLLHUP | POLLERR)) lostSystem("the system bus closed");
      }
      for (auto& ev : std::exchange(events_, {})) {
        std::visit([&](const auto& v) { handle(v, now); }, ev);
      }
      for (const auto& [id, key] : std::exchange(actions_, {})) {
        if (verbose_) std::cerr << "guard-notify: action '" << key << "' on " << id << "\n";
        agent_.actionInvoked(id, key, now);
      }
      for (const auto& [id, reason] : std::exchange(closes_, {})) agent_.closed(id, reason);
      if (fds[1].revents & POLLIN) {
        for (const auto& o : worker_.take()) agent_.policyDone(o, now);
      }
      if (agent_.countsDue(now)) readCounts(now);
      agent_.flush(now);
      if (!client_ && now >= nextConnect_) connectSystem();
    }
  }

 private:
  void handle(const dbus::Attempt& a, Clock::time_point now) { agent_.attemptRecorded(a, now); }
  void handle(const dbus::Program& p, Clock::time_point now) { agent_.programChanged(p, now); }
  void handle(const dbus::Alert& a, Clock::time_point now) { agent_.alertRaised(a, now); }

  // Programs is the one call that gives a program's attempt count. It is read-only and
  // answered from guardd's memory, so it runs here, between dispatches; signals that come
  // meanwhile wait in the connection's queue for the next dispatch.
  void readCounts(Clock::time_point now) {
    if (!client_) {
      agent_.programsRead({}, now);  // tried again after updateEvery
      return;
    }
    auto r = client_->programs(/*withVersions=*/false);
    if (const auto* e = dbus::errorOf(r)) {
      if (verbose_) std::cerr << "guard-notify: Failed to read programs: " << e->message << "\n";
      agent_.programsRead({}, now);
      if (e->kind == dbus::ClientError::Kind::NoBus) lostSystem(e->message);
      return;
    }
    agent_.programsRead(std::get<std::vector<dbus::Program>>(r), now);
  }

  void connectSystem() {
    nextConnect_ = Clock::now() + kReconnectEvery;
    auto r = dbus::Client::connect();
    if (const auto* e = dbus::errorOf(r)) {
      if (!warned_) std::cerr << "guard-notify: " << e->message << "\n";
      warned_ = true;
      return;
    }
    warned_ = false;
    client_ = std::move(std::get<std::unique_ptr<dbus::Client>>(r));
    // Handlers only queue: the agent calls the session bus, outside this dispatch.
    client_->onAttemptRecorded([this](const dbus::Attempt& a) { events_.emplace_back(a); });
    client_->onProgramChanged([this](const dbus::Program& p) { events_.emplace_back(p); });
    client_->onAlertRaised([this](const dbus::Alert& a) { events_.emplace_back(a); });
  }

  void lostSystem(const std::string& why) {
    std::cerr << "guard-notify: lost the system bus: " << why << "\n";
    client_.reset();
    nextConnect_ = Clock::now() + kReconnectEvery;
  }

  static int fail(const std::string& why) {
    std::cerr << "guard-notify: " << why << "\n";
    return 1;
  }

  notify::SessionNotifications& session_;
  bool verbose_ = false;
  notify::PolicyWorker worker_;
  notify::Agent agent_;
  Fd signals_;
  std::unique_ptr<dbus::Client> client_;
  Clock::time_point nextConnect_{};
  bool warned_ = false;
  std::vector<Event> events_;
  std::vector<std::pair<std::uint32_t, std::string>> actions_;
  std::vector<std::pair<std::uint32_t, notify::CloseReason>> closes_;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "guard-notify: desktop notifications of mailguard. Tells you when a program's mail is\n"
      "held, when a program is quarantined, when an audit finds an open relay (on this PC\n"
      "or your network), when bounces flood in for mail you never sent and when your public\n"
      "address is on a spam blocklist, with\n"
      "Approve, Deny and Details where the notification server offers actions. Started with\n"
      "the desktop session; needs no privileges.",
      "guard-notify"};
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log the actions the notification server reports");
  app.set_version_flag("--version", std::string("guard-notify ") + MAILGUARD_VERSION);
  CLI11_PARSE(app, argc, argv);

  if (::geteuid() == 0) {
    std::cerr << "guard-notify: running as root; it needs no privileges (start it as the "
                 "desktop user)\n";
  }
  auto session = notify::SessionNotifications::connect();
  if (!session) {
    std::cerr << "guard-notify: " << session.error().message
              << " (no desktop session? guardctl watch and the journal still show held programs)\n";
    return 1;
  }
  auto claimed = session.value()->claimName(kAgentName);
  if (!claimed) {
    std::cerr << "guard-notify: " << claimed.error().message << "\n";
    return 1;
  }
  if (!claimed.value()) {
    std::cerr << "guard-notify: another one runs in this session already\n";
    return 0;
  }
  try {
    Loop loop(*session.value(), verbose);
    return loop.run();
  } catch (const std::exception& e) {
    std::cerr << "guard-notify: " << e.what() << "\n";
    return 1;
  }
}
