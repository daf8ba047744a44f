#pragma once
// Connection outcomes for the detector from conntrack events: a thin adapter over
// netfilter::ConntrackSocket (which parses them) that hands each event to Detection.
// Needs CAP_NET_ADMIN, which guardd has.
#include <memory>

#include "mailguard/netfilter/conntrack.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::service {

class Detection;

class ConntrackListener {
 public:
  static Result<std::unique_ptr<ConntrackListener>> open(Detection& sink);
  ConntrackListener(const ConntrackListener&) = delete;
  ConntrackListener& operator=(const ConntrackListener&) = delete;

  [[nodiscard]] int fd() const;
  // Reads every pending event (non-blocking) and passes results to the sink.
  void receive();

 private:
  ConntrackListener(std::unique_ptr<netfilter::ConntrackSocket> socket, Detection& sink)
      : socket_(std::move(socket)), sink_(sink) {}
  std::unique_ptr<netfilter::ConntrackSocket> socket_;
  Detection& sink_;
  bool overflowLogged_ = false;
  bool errorLogged_ = false;
};

}  // namespace mailguard::service
