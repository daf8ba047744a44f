#pragma once
// The presence source's own epoll set: guardd's loop polls its one fd, so the bus
// connection and any number of input devices come and go without touching that loop.
// An epoll fd is itself pollable (epoll(7)): it is readable while any fd in it is ready.
#include <cstdint>
#include <functional>
#include <map>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::presence {

class Poller {
 public:
  using Callback = std::function<void(std::uint32_t events)>;
  static Result<Poller> create();

  [[nodiscard]] int fd() const { return ep_.get(); }
  Result<void> add(int fd, std::uint32_t events, Callback cb);
  Result<void> modify(int fd, std::uint32_t events);
  void remove(int fd);
  // Runs the callbacks of the fds ready now (no waiting), at most `maxEvents` of them.
  void dispatch(int maxEvents = 32);

 private:
  explicit Poller(Fd ep) : ep_(std::move(ep)) {}
  Fd ep_;
  std::map<int, Callback> callbacks_;
};

}  // namespace mailguard::presence
