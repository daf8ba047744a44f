#pragma once
// User presence (detector evidence U1/U2), read the way the desktop already exposes it:
// logind's sessions over the system bus and, only where the owner enables it, the time of
// the last key press or click on a real input device. Only timestamps are kept: no key
// code, no text, nothing typed ever leaves the kernel's event struct.
//
// The source lives in guardd's loop: it owns one epoll fd (pollFd()) that holds its bus
// connection, the /dev/input watch and the devices; guardd polls that fd, calls
// prepare() before each wait and dispatch() when it is readable. No threads.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/detector/detector.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::presence {

// One logind session as far as presence is concerned.
struct Session {
  std::string id;
  std::uint32_t uid = 0;
  std::string seat;                   // "" for sessions on no seat (ssh, cron): they never count
  std::string sessionClass;           // "user", "greeter", "lock-screen", "background", ...
  bool active = false;                // the foreground session of its seat
  bool idle = false;                  // IdleHint: the desktop says nobody has used it for a while
  std::optional<MonoTime> idleSince;  // IdleSinceHintMonotonic (CLOCK_MONOTONIC)
};

// Whether a session stands for a person at a seat: class "user" on a seat (seat0, ...).
bool countsForPresence(const Session& s);

// The window arithmetic, pure: what the detector is told about `uid` at `now`.
//   known          = logind answered (sessions are known; maybe none)
//   activeSession  = `uid` owns the active session of a seat (class "user")
//   sinceInput     = for that user only: now - the last real key press/click when the
//                    input reader runs and saw one; otherwise, when logind says the
//                    session is idle, now - IdleSinceHint (a lower bound: the last input
//                    came before the session went idle); else unknown.
// Input devices belong to the seat, so their presses are credited to the user of the
// seat's active session and to nobody else.
detector::PresenceEvidence evidenceFrom(bool logindKnown, const std::vector<Session>& sessions,
                                        std::optional<MonoTime> lastInput, std::uint32_t uid,
                                        MonoTime now);

// What `guardctl status` shows: what guardd sees.
struct PresenceStatus {
  std::string source = "none";               // "logind", "logind+input" or "none"
  std::optional<std::uint32_t> activeUser;   // uid of a seat's active user session
  std::optional<std::chrono::seconds> idle;  // that user's time since input (as above)
};

struct PresenceOptions {
  bool inputDevices = false;  // [presence] input_devices
  std::filesystem::path devInput = "/dev/input";
  std::filesystem::path sysRoot = "/sys";
  // One line for guardd's log, each state change once (logind gone, device limit hit).
  std::function<void(bool warning, std::string_view message)> log = {};
};

class Poller;
class LogindSessions;
class InputActivity;

class PresenceSource {
 public:
  // Never fails for want of logind or input devices (then evidence is `known = false`
  // or without input); an error only when the epoll fd cannot be made.
  static Result<std::unique_ptr<PresenceSource>> create(PresenceOptions options);
  ~PresenceSource();
  PresenceSource(const PresenceSource&) = delete;
  PresenceSource& operator=(const PresenceSource&) = delete;

  [[nodiscard]] int pollFd() const;
  // Before each wait: flushes the bus connection's queued work and says how long the
  // loop may sleep at most (sd-bus call timeouts, the bus reconnect timer).
  std::optional<std::chrono::milliseconds> prepare();
  // pollFd() is readable: handles what is ready, a bounded amount.
  void dispatch();

  [[nodiscard]] detector::PresenceEvidence evidence(std::uint32_t uid, MonoTime now) const;
  [[nodiscard]] PresenceStatus status(MonoTime now) const;
  [[nodiscard]] bool logindKnown() const;
  [[nodiscard]] std::vector<Session> sessions() const;
  [[nodiscard]] std::optional<MonoTime> lastInput() const;
  [[nodiscard]] std::size_t inputDevices() const;

 private:
  explicit PresenceSource(PresenceOptions options);
  PresenceOptions options_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<LogindSessions> logind_;
  std::unique_ptr<InputActivity> input_;
};

}  // namespace mailguard::presence
