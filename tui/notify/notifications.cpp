#include "notifications.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <map>

namespace mailguard::notify {
namespace {

constexpr const char* kService = "org.freedesktop.Notifications";
constexpr const char* kPath = "/org/freedesktop/Notifications";
constexpr const char* kIface = "org.freedesktop.Notifications";
constexpr const char* kAppName = "mailguard";
// A server answers at once; a hung one must not stall guard-notify's loop for the
// 25 s sd-bus default.
constexpr std::chrono::microseconds kCallTimeout = std::chrono::seconds(5);

Error fromSdbus(const char* what, const sdbus::Error& e) {
  return makeError(std::string("Failed to ") + what + ": " + e.getName() + ": " + e.getMessage());
}

}  // namespace

struct SessionNotifications::Impl {
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<sdbus::IProxy> proxy;
  std::function<void(std::uint32_t, const std::string&)> actionHandler;
  std::function<void(std::uint32_t, CloseReason)> closedHandler;

  ~Impl() {
    proxy.reset();  // before the connection it refers to
  }
};

SessionNotifications::SessionNotifications(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SessionNotifications::~SessionNotifications() = default;

Result<std::unique_ptr<SessionNotifications>> SessionNotifications::connect() {
  auto impl = std::make_unique<Impl>();
  try {
    impl->connection = sdbus::createSessionBusConnection();
    impl->proxy = sdbus::createProxy(*impl->connection, kService, kPath);
    auto* raw = impl.get();
    // The match rules name the server's well-known name, so the bus delivers the signals
    // of whichever program owns it now, also after the server restarted.
    impl->proxy->uponSignal("ActionInvoked")
        .onInterface(kIface)
        .call([raw](const std::uint32_t& id, const std::string& key) {
          if (raw->actionHandler) raw->actionHandler(id, key);
        });
    impl->proxy->uponSignal("NotificationClosed")
        .onInterface(kIface)
        .call([raw](const std::uint32_t& id, const std::uint32_t& reason) {
          if (raw->closedHandler) raw->closedHandler(id, static_cast<CloseReason>(reason));
        });
    impl->proxy->finishRegistration();
  } catch (const sdbus::Error& e) {
    return fromSdbus("connect to the session bus", e);
  }
  return std::unique_ptr<SessionNotifications>(new SessionNotifications(std::move(impl)));
}

Result<bool> SessionNotifications::claimName(const std::string& name) {
  try {
    impl_->connection->requestName(name);
    return true;
  } catch (const sdbus::Error& e) {
    // sd_bus_request_name(3) without flags fails with EEXIST when another owns it; sd-bus
    // names that errno org.freedesktop.DBus.Error.FileExists.
    if (e.getName() == "org.freedesktop.DBus.Error.FileExists" ||
        e.getName() == "System.Error.EEXIST") {
      return false;
    }
    return fromSdbus(("own '" + name + "' on the session bus").c_str(), e);
  }
}

Result<std::vector<std::string>> SessionNotifications::capabilities() {
  try {
    std::vector<std::string> caps;
    impl_->proxy->callMethod("GetCapabilities")
        .onInterface(kIface)
        .withTimeout(kCallTimeout)
        .storeResultsTo(caps);
    return caps;
  } catch (const sdbus::Error& e) {
    return fromSdbus("ask the notification server for its capabilities", e);
  }
}

Result<std::uint32_t> SessionNotifications::show(std::uint32_t replacesId, const Notification& n) {
  std::vector<std::string> actions;
  for (const auto& [key, label] : n.actions) {
    actions.push_back(key);
    actions.push_back(label);
  }
  std::map<std::string, sdbus::Variant> hints;
  hints.emplace("urgency", sdbus::Variant(n.urgency));
  hints.emplace("desktop-entry", sdbus::Variant(std::string("guard-notify")));
  try {
    std::uint32_t id = 0;
    impl_->proxy->callMethod("Notify")
        .onInterface(kIface)
        .withTimeout(kCallTimeout)
        .withArguments(std::string(kAppName), replacesId, std::string("security-high"), n.summary,
                       n.body, actions, hints, n.expireMs)
        .storeResultsTo(id);
    return id;
  } catch (const sdbus::Error& e) {
    return fromSdbus("show a notification", e);
  }
}

Result<void> SessionNotifications::close(std::uint32_t id) {
  try {
    impl_->proxy->callMethod("CloseNotification")
        .onInterface(kIface)
        .withTimeout(kCallTimeout)
        .withArguments(id);
    return {};
  } catch (const sdbus::Error& e) {
    return fromSdbus("close a notification", e);
  }
}

void SessionNotifications::onActionInvoked(
    std::function<void(std::uint32_t id, const std::string& key)> handler) {
  impl_->actionHandler = std::move(handler);
}

void SessionNotifications::onClosed(std::function<void(std::uint32_t id, CloseReason)> handler) {
  impl_->closedHandler = std::move(handler);
}

Result<SessionNotifications::PollSpec> SessionNotifications::pollSpec() const {
  try {
    const auto d = impl_->connection->getEventLoopPollData();
    return PollSpec{d.fd, d.events, d.getPollTimeout()};
  } catch (const sdbus::Error& e) {
    return fromSdbus("poll the session bus", e);
  }
}

Result<void> SessionNotifications::dispatch() {
  try {
    while (impl_->connection->processPendingRequest()) {
    }
    return {};
  } catch (const sdbus::Error& e) {
    return fromSdbus("read the session bus", e);
  }
}

}  // namespace mailguard::notify
