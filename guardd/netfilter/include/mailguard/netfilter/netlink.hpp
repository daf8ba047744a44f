#pragma once
// What every libmnl reader of guardd/netfilter shares: the socket's owner and the check
// that a received message lies within the bytes received.
#include <libmnl/libmnl.h>

#include <cstdint>
#include <memory>

#include "mailguard/common/c_deleter.hpp"

namespace mailguard::netfilter {

using MnlSocketPtr = std::unique_ptr<mnl_socket, CDeleter<mnl_socket_close>>;

// mnl_nlmsg_ok compares (int)nlmsg_len with the bytes left, so a length of 2^31 or more
// passes it and mnl_nlmsg_next then steps outside the buffer (found by fuzzing the NFLOG
// reader). It checks len >= sizeof(nlmsghdr) before reading the header, so the unsigned
// comparison after it is safe. libmnl's attribute walk (mnl_attr_parse) goes on to the
// message's aligned end, so a last message without its padding (the kernel always pads)
// would let it read up to 3 bytes past the datagram (found by fuzzing the nftables monitor).
inline bool messageFits(const nlmsghdr* nlh, int len) {
  return mnl_nlmsg_ok(nlh, len) && nlh->nlmsg_len <= static_cast<std::uint32_t>(len) &&
         NLMSG_ALIGN(nlh->nlmsg_len) <= static_cast<std::uint32_t>(len);
}

}  // namespace mailguard::netfilter
