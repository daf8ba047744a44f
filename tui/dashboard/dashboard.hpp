#pragma once
// guard-tui's loop: one poll() over the terminal, the bus connection and a signalfd.
// Bus signals and key presses become model events; the model's effects become bus
// calls; a frame is drawn only when something changed.
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "mailguard/dbus/host_client.hpp"
#include "mailguard/tui/model.hpp"
#include "mailguard/tui/terminal.hpp"

namespace mailguard::tui {

class Dashboard {
 public:
  explicit Dashboard(Terminal& terminal);
  ~Dashboard();
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // Runs until `q` or SIGINT/SIGTERM/SIGHUP; returns the exit code.
  int run();

 private:
  using SteadyClock = std::chrono::steady_clock;

  void handle(const Event& event);
  void execute(const Command& command);
  // Every policy call of the dashboard (approve, deny, forget, acknowledge) goes out here,
  // without waiting: the answer comes back as an event from dispatch().
  void sendPolicyCall(const Command& command);
  void ownerChanged(bool running);
  void refreshStatus();
  void onTimer();
  void connect();
  void load();
  void lost(const dbus::ClientError& error);
  void dispatchBus();
  void tick();
  void learnUser(std::uint32_t uid);
  void draw();
  void loadAudit();
  void startAudit();
  void finishAudit();
  bool hostClient();  // connects hostClient_ if needed; false (and OutsideFailed) if not
  void loadOutside();
  void startOutside();
  void finishOutside();

  // RunAudit waits until the audit ends (seconds, up to minutes): it runs on a thread
  // with a bus connection of its own, which hands the result over and wakes poll()
  // through a pipe. The job outlives the dashboard if the user quits meanwhile.
  struct AuditJob;
  struct OutsideJob;

  Terminal& terminal_;
  State state_;
  std::unique_ptr<dbus::Client> client_;
  std::unique_ptr<dbus::HostClient> hostClient_;  // Audit() (quick) on the loop's thread
  std::shared_ptr<AuditJob> auditJob_;
  std::shared_ptr<OutsideJob> outsideJob_;
  std::vector<Event> inbox_;  // filled by bus signal handlers during dispatch()
  // Replies to policy calls, also filled during dispatch(); unlike signals they are
  // handled even while disconnected, so that no row stays "busy".
  std::vector<Event> replies_;
  std::optional<bool> guardOwner_;  // NameOwnerChanged seen during dispatch(): running?
  bool statusStale_ = false;        // an event came: the counters may have changed
  SteadyClock::time_point nextStatus_;
  bool redraw_ = true;
  bool quit_ = false;
  int signalFd_ = -1;
  SteadyClock::time_point nextTimer_;
};

}  // namespace mailguard::tui
