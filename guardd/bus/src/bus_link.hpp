#pragma once
// guardd's connection to the system bus inside its one loop: connect, serve, notice a
// lost bus, reconnect in the background (every second), all without blocking the
// verdicts. What is served on the connection comes and goes through two hooks, so the
// served object always goes before the connection it lives on.
#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "mailguard/service/event_loop.hpp"

namespace mailguard::bus {

class BusLink {
 public:
  // attach(connection) puts the objects on a new connection (may throw sdbus::Error);
  // detach() removes them again, before the connection is closed and destroyed.
  using Attach = std::function<void(sdbus::IConnection&)>;
  using Detach = std::function<void()>;

  // Connects now if it can; never throws for want of a bus.
  BusLink(service::EventLoop& loop, std::string busName, Attach attach, Detach detach);
  ~BusLink();
  BusLink(const BusLink&) = delete;
  BusLink& operator=(const BusLink&) = delete;

  [[nodiscard]] bool connected() const;

  // The connection broke where the link could not see it (a signal failed to send):
  // torn down at the next turn of the loop, outside the caller's stack.
  void markLost(std::string why);

  struct State;

 private:
  std::shared_ptr<State> state_;
};

}  // namespace mailguard::bus
