#pragma once
// TCP connection outcomes from conntrack events (ctnetlink over NETLINK_NETFILTER, the
// stream `conntrack -E -e UPDATES,DESTROY -p tcp` prints): a connection reaching
// ESTABLISHED was accepted, CLOSE before that means refused (an RST answered the SYN),
// a DESTROY still in SYN_SENT means it timed out.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::netfilter {

struct ConntrackEvent {
  enum class Kind {
    Established,  // the TCP state is ESTABLISHED or later (FIN_WAIT ... TIME_WAIT)
    Refused,      // CLOSE: an RST; a refusal when it answers our SYN, a reset later (the
                  // consumer ignores it for a connection it saw established)
    TimedOut,     // conntrack destroyed the entry still in SYN_SENT (or without state)
    Closed,       // either side closed (FIN or RST) or conntrack forgot the entry
  };
  Kind kind = Kind::Established;
  rules::ConnectionTuple tuple;  // CTA_TUPLE_ORIG: the direction of the SYN
};

// Every TCP event in one datagram from the conntrack groups, in order; one message can
// give two events (an outcome, then Closed). Messages that are not ctnetlink
// conntrack messages, not TCP, or truncated are skipped; lengths are checked with
// messageFits and every attribute's payload size before it is read. Pure: unit-tested
// and fuzzed. Returns how many events it reported.
std::size_t parseConntrackEvents(std::span<const std::uint8_t> datagram,
                                 const std::function<void(const ConntrackEvent&)>& onEvent);

class ConntrackSocket {
 public:
  // A non-blocking NETLINK_NETFILTER socket in the NFNLGRP_CONNTRACK_UPDATE and
  // NFNLGRP_CONNTRACK_DESTROY groups (joining needs CAP_NET_ADMIN), with a 4 MiB
  // receive buffer where the caller may force one (SO_RCVBUFFORCE, CAP_NET_ADMIN).
  static Result<std::unique_ptr<ConntrackSocket>> open();
  ~ConntrackSocket();
  ConntrackSocket(const ConntrackSocket&) = delete;
  ConntrackSocket& operator=(const ConntrackSocket&) = delete;

  [[nodiscard]] int fd() const;  // for the event loop (EPOLLIN)

  // Reads what is pending without blocking, at most kMaxDatagrams datagrams a call
  // (epoll is level-triggered: the rest comes on the next wake-up), and calls onEvent
  // for each event. ENOBUFS (the kernel dropped events) is counted, not an error.
  static constexpr int kMaxDatagrams = 64;
  Result<void> receive(const std::function<void(const ConntrackEvent&)>& onEvent);

  // Times the receive buffer overflowed and events were lost.
  [[nodiscard]] std::uint64_t overflows() const;

 private:
  struct Impl;
  explicit ConntrackSocket(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::netfilter
