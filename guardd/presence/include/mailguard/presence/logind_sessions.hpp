#pragma once
// logind's sessions (org.freedesktop.login1) over the system bus, followed by its
// signals (SessionNew, SessionRemoved, each session's PropertiesChanged) rather than
// polled. Every call is asynchronous: a slow logind never stalls guardd's loop. When
// logind is absent or leaves the bus, known() is false (said once through `log`) and the
// sessions are listed again when the name gets an owner (NameOwnerChanged); when the bus
// itself is gone the connection is retried every few seconds.
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/presence/poller.hpp"
#include "mailguard/presence/presence.hpp"

namespace sdbus {
class IConnection;
class IProxy;
}  // namespace sdbus

namespace mailguard::presence {

class LogindSessions {
 public:
  using Log = std::function<void(bool warning, std::string_view message)>;
  // Sessions beyond this many are not followed (a login storm must not grow guardd).
  static constexpr std::size_t kMaxSessions = 64;

  LogindSessions(Poller& poller, Log log);
  ~LogindSessions();
  LogindSessions(const LogindSessions&) = delete;
  LogindSessions& operator=(const LogindSessions&) = delete;

  std::optional<std::chrono::milliseconds> prepare();
  [[nodiscard]] bool known() const { return known_; }
  [[nodiscard]] std::vector<Session> sessions() const;

 private:
  struct Entry {
    std::unique_ptr<sdbus::IProxy> proxy;
    Session session;
  };
  void connect();
  void teardown();
  void onEvents(std::uint32_t events);
  void list();
  void forget(std::string_view why);
  void addSession(const std::string& path);
  void fetch(const std::string& path);
  void say(bool warning, const std::string& message);

  Poller& poller_;
  Log log_;
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IProxy> bus_;
  std::unique_ptr<sdbus::IProxy> manager_;
  std::map<std::string, Entry> sessions_;  // by object path
  int fd_ = -1;
  bool known_ = false;
  std::optional<std::string> lost_;
  std::string lastSaid_;  // each state is logged once, not on every retry
  std::chrono::steady_clock::time_point nextConnect_{};
};

}  // namespace mailguard::presence
