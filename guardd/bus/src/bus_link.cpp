#include "bus_link.hpp"

#include <sys/epoll.h>

#include <optional>
#include <utility>

#include "mailguard/dbus/names.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::bus {
namespace {

constexpr auto kReconnectPeriod = std::chrono::milliseconds(1000);
// Bus messages handled per wake-up, so a flood of calls cannot starve the verdict
// queue; sd-bus reports a zero timeout while more are queued, so none is lost.
constexpr int kMaxMessagesPerWake = 64;

}  // namespace

struct BusLink::State {
  State(service::EventLoop& l, std::string name, Attach a, Detach d)
      : loop(l), busName(std::move(name)), attach(std::move(a)), detach(std::move(d)) {}

  service::EventLoop& loop;
  std::string busName;
  Attach attach;
  Detach detach;
  std::unique_ptr<sdbus::IConnection> connection;
  bool attached = false;
  int fd = -1;
  int prepareHandle = 0;
  std::optional<std::string> lost;  // why the connection broke; torn down before the next wait
  std::string lastFailure;          // logged once, not every second

  void connect() {
    try {
      connection = sdbus::createSystemBusConnection();
      attach(*connection);
      attached = true;
      // The object is in place before the name: a caller never finds a name without it.
      connection->requestName(busName);
      const auto poll = connection->getEventLoopPollData();
      if (auto added = loop.add(poll.fd, static_cast<std::uint32_t>(poll.events),
                                [this](std::uint32_t events) { onEvents(events); });
          !added) {
        throw sdbus::Error(dbus::kErrorFailed, added.error().message);
      }
      fd = poll.fd;
      lastFailure.clear();
      log::info("Serving " + busName + " on the system bus");
    } catch (const sdbus::Error& e) {
      close();
      const std::string why = e.getName() + ": " + e.getMessage();
      if (why != lastFailure) {
        log::warning("Failed to serve " + busName + " on the system bus: " + why +
                     " (enforcement goes on; retrying every second)");
        lastFailure = why;
      }
    }
  }

  // The served objects, and with them every reply still owed on this connection, go
  // first: an sdbus-c++ message must not outlive the connection it came from.
  void close() {
    if (fd >= 0) loop.remove(fd);
    fd = -1;
    if (attached) detach();
    attached = false;
    connection.reset();
  }

  void teardown() {
    if (lost) log::warning("Lost the system bus: " + *lost + " (reconnecting)");
    lost.reset();
    close();
  }

  std::optional<std::chrono::milliseconds> prepare() {
    if (lost) teardown();
    if (!connection) return std::nullopt;
    try {
      auto poll = connection->getEventLoopPollData();
      // A zero timeout means sd-bus has work that no fd event will announce: messages
      // it already read into its queue (during a synchronous call, say) or an expired
      // call timeout. Do that work now, a bounded amount per turn of the loop.
      for (int i = 0; i < kMaxMessagesPerWake && poll.getPollTimeout() == 0; ++i) {
        connection->processPendingRequest();
        poll = connection->getEventLoopPollData();
      }
      // poll(2) and epoll share the values of IN, PRI and OUT.
      if (auto modified = loop.modify(fd, static_cast<std::uint32_t>(poll.events)); !modified) {
        throw sdbus::Error(dbus::kErrorFailed, modified.error().message);
      }
      const int timeout = poll.getPollTimeout();
      if (timeout < 0) return std::nullopt;
      return std::chrono::milliseconds(timeout);
    } catch (const sdbus::Error& e) {
      lost = e.getMessage();
      teardown();
      return std::nullopt;
    }
  }

  void onEvents(std::uint32_t events) {
    if (!connection) return;
    try {
      int handled = 0;
      while (handled < kMaxMessagesPerWake && connection->processPendingRequest()) ++handled;
      if (handled == 0 && (events & (EPOLLHUP | EPOLLERR)) != 0) lost = "connection closed";
    } catch (const sdbus::Error& e) {
      lost = e.getMessage();
    }
    if (lost) teardown();
  }
};

BusLink::BusLink(service::EventLoop& loop, std::string busName, Attach attach, Detach detach)
    : state_(
          std::make_shared<State>(loop, std::move(busName), std::move(attach), std::move(detach))) {
  State* state = state_.get();
  state->prepareHandle = loop.addPrepare([state] { return state->prepare(); });
  state->connect();
  // Timers live as long as the loop; the weak pointer makes this one inert after us.
  loop.every(kReconnectPeriod, [weak = std::weak_ptr<State>(state_)] {
    if (auto self = weak.lock(); self && !self->connection) self->connect();
  });
}

BusLink::~BusLink() {
  state_->loop.removePrepare(state_->prepareHandle);
  state_->close();
}

bool BusLink::connected() const { return state_->connection != nullptr && !state_->lost; }

void BusLink::markLost(std::string why) {
  if (state_->connection && !state_->lost) state_->lost = std::move(why);
}

}  // namespace mailguard::bus
