#pragma once
// Connection outcomes from conntrack events (ctnetlink over NETLINK_NETFILTER, the
// `conntrack -E -p tcp` stream): an UPDATE to ESTABLISHED means the connection was
// accepted, CLOSE before that means refused or reset, a DESTROY still in SYN_SENT
// means it timed out. Needs CAP_NET_ADMIN, which guardd has.
#include <memory>

#include "mailguard/rules/result.hpp"

struct mnl_socket;

namespace mailguard::service {

class Detection;

class ConntrackListener {
 public:
  static Result<std::unique_ptr<ConntrackListener>> open(Detection& sink);
  ~ConntrackListener();
  ConntrackListener(const ConntrackListener&) = delete;
  ConntrackListener& operator=(const ConntrackListener&) = delete;

  [[nodiscard]] int fd() const;
  // Reads every pending event (non-blocking) and passes results to the sink.
  void receive();

 private:
  ConntrackListener(mnl_socket* nl, Detection& sink) : nl_(nl), sink_(sink) {}
  mnl_socket* nl_;
  Detection& sink_;
  bool overflowLogged_ = false;
};

}  // namespace mailguard::service
