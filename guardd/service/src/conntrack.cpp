#include "conntrack.hpp"

#include "detection.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {

Result<std::unique_ptr<ConntrackListener>> ConntrackListener::open(Detection& sink) {
  auto socket = netfilter::ConntrackSocket::open();
  if (!socket) return socket.error();
  return std::unique_ptr<ConntrackListener>(new ConntrackListener(std::move(socket.value()), sink));
}

int ConntrackListener::fd() const { return socket_->fd(); }

void ConntrackListener::receive() {
  using Kind = netfilter::ConntrackEvent::Kind;
  auto r = socket_->receive([this](const netfilter::ConntrackEvent& e) {
    switch (e.kind) {
      case Kind::Established:
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::Established);
        break;
      case Kind::Refused:
        // The sink ignores it for a connection it saw established.
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::Refused);
        break;
      case Kind::TimedOut:
        sink_.onOutcome(e.tuple, detector::ConnectOutcome::TimedOut);
        break;
      case Kind::Closed:
        sink_.onClosed(e.tuple);
        break;
    }
  });
  if (!r && !errorLogged_) {
    log::warning(r.error().message);
    errorLogged_ = true;
  }
  if (socket_->overflows() > 0 && !overflowLogged_) {
    log::warning(
        "conntrack events were lost (receive buffer full); outcomes of some "
        "connections are unknown to the detector");
    overflowLogged_ = true;
  }
}

}  // namespace mailguard::service
