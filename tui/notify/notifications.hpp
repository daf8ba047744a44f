#pragma once
// The desktop's notification server (org.freedesktop.Notifications, Desktop Notifications
// Specification 1.2) as guard-notify needs it. sdbus-c++ stays inside notifications.cpp.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::notify {

struct Notification {
  std::string summary;
  std::string body;
  // (key, label) pairs; sent only where the server lists the "actions" capability.
  std::vector<std::pair<std::string, std::string>> actions;
  std::uint8_t urgency = 1;    // the spec's "urgency" hint: 0 low, 1 normal, 2 critical
  std::int32_t expireMs = -1;  // -1: the server's default; 0: until the user closes it
};

// NotificationClosed reasons of the specification.
enum class CloseReason : std::uint32_t { Expired = 1, Dismissed = 2, Closed = 3, Other = 4 };

// What the agent's core calls; SessionNotifications is the real one.
class NotificationServer {
 public:
  virtual ~NotificationServer() = default;
  // The server's capabilities ("actions", "body", "body-markup", ...).
  virtual Result<std::vector<std::string>> capabilities() = 0;
  // Shows `n`, replacing notification `replacesId` in place when it is still shown (0: a
  // new one); returns the id the server gave it.
  virtual Result<std::uint32_t> show(std::uint32_t replacesId, const Notification& n) = 0;
  virtual Result<void> close(std::uint32_t id) = 0;
};

// org.freedesktop.Notifications on the session bus (DBUS_SESSION_BUS_ADDRESS).
class SessionNotifications final : public NotificationServer {
 public:
  static Result<std::unique_ptr<SessionNotifications>> connect();
  ~SessionNotifications() override;
  SessionNotifications(const SessionNotifications&) = delete;
  SessionNotifications& operator=(const SessionNotifications&) = delete;

  // Owns `name` on the session bus, so that one guard-notify runs per session (the
  // autostart entry and the user unit may both start one); false when another has it.
  Result<bool> claimName(const std::string& name);

  Result<std::vector<std::string>> capabilities() override;
  Result<std::uint32_t> show(std::uint32_t replacesId, const Notification& n) override;
  Result<void> close(std::uint32_t id) override;

  // Signals of the server; handlers run inside dispatch().
  void onActionInvoked(std::function<void(std::uint32_t id, const std::string& key)> handler);
  void onClosed(std::function<void(std::uint32_t id, CloseReason reason)> handler);

  struct PollSpec {
    int fd = -1;
    short events = 0;
    int timeoutMs = -1;
  };
  Result<PollSpec> pollSpec() const;
  // Handles everything pending; an error means the session bus is gone.
  Result<void> dispatch();

 private:
  struct Impl;
  explicit SessionNotifications(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::notify
