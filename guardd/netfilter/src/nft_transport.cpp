// NftTransport: libmnl socket, poll with a timeout for every answer, messageFits for
// every message received.
#include "nft_transport.hpp"

#include <libmnl/libmnl.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace mailguard::netfilter {
namespace {

constexpr int kAckTimeoutMs = 5000;
// One ack, one error ack echoing the message it refuses, or one dump datagram.
constexpr std::size_t kReceiveBuffer = 64 * 1024;

std::string errnoHint(int err) {
  switch (err) {
    case EPERM:
    case EACCES:
      return " (guardd needs root / CAP_NET_ADMIN)";
    case EPROTONOSUPPORT:
    case EAFNOSUPPORT:
      return " (the kernel has no nf_tables / nfnetlink support)";
    case EOPNOTSUPP:
    case ENOENT:
      return " (the kernel lacks an nf_tables feature this needs; is the module available?)";
    case EBUSY:
      return " (the table is in use, retry)";
    default:
      return "";
  }
}

}  // namespace

std::string nftErrnoText(int err) { return std::string(std::strerror(err)) + errnoHint(err); }

Result<NftTransport> NftTransport::open() {
  NftTransport t;
  t.socket_.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!t.socket_) {
    const int err = errno;
    return systemError("Failed to open 'netlink netfilter socket': " + nftErrnoText(err), err);
  }
  if (mnl_socket_bind(t.socket_.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    return systemError("Failed to bind 'netlink netfilter socket': " + nftErrnoText(err), err);
  }
  t.portId_ = mnl_socket_get_portid(t.socket_.get());
  // A start that differs between runs, so a late answer to a previous process's
  // request on a reused port id is not taken for ours.
  t.seq_ = static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count() &
                                      0x7fffffff);
  t.rx_.resize(kReceiveBuffer);
  return t;
}

ssize_t NftTransport::receiveOne(int timeoutMs) {
  pollfd p{mnl_socket_get_fd(socket_.get()), POLLIN, 0};
  for (;;) {
    const int n = ::poll(&p, 1, timeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    if (n == 0) return 0;
    const ssize_t got = ::recv(p.fd, rx_.data(), rx_.size(), MSG_DONTWAIT);
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    return got;
  }
}

Result<std::optional<NftTransport::Failure>> NftTransport::send(const NftBatch& batch) {
  seq_ = batch.endSeq;
  if (mnl_socket_sendto(socket_.get(), batch.bytes.data(), batch.bytes.size()) < 0) {
    const int err = errno;
    return systemError(nftErrnoText(err), err);
  }
  std::optional<Failure> first;
  std::size_t acks = 0;
  while (acks < batch.ackCount()) {
    // Once a message failed the kernel may stop acking the rest (ENOMEM); do not
    // wait for acks that will not come.
    const ssize_t n = receiveOne(first ? 0 : kAckTimeoutMs);
    if (n == 0) {
      if (first) break;
      return makeError("no answer from the kernel for " + std::to_string(batch.ackCount() - acks) +
                       " of " + std::to_string(batch.ackCount()) + " messages");
    }
    if (n < 0) {
      const int err = errno;
      return systemError(nftErrnoText(err), err);
    }
    auto* nlh = reinterpret_cast<nlmsghdr*>(rx_.data());
    auto len = static_cast<int>(n);
    for (; messageFits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
      const auto what = batch.describe(nlh->nlmsg_seq);
      if (!what) continue;  // a late answer to an earlier request: not ours
      // Checks the port id, turns NLMSG_ERROR into errno (0 = ack).
      const int ret = mnl_cb_run(nlh, nlh->nlmsg_len, nlh->nlmsg_seq, portId_, nullptr, nullptr);
      if (nlh->nlmsg_type == NLMSG_ERROR) ++acks;
      if (ret < 0 && !first) first = Failure{errno, *what};
    }
  }
  return first;
}

Result<void> NftTransport::request(const nlmsghdr* request,
                                   const std::function<void(const nlmsghdr*)>& each) {
  const std::uint32_t requestSeq = request->nlmsg_seq;
  if (mnl_socket_sendto(socket_.get(), request, request->nlmsg_len) < 0) {
    const int err = errno;
    return systemError(nftErrnoText(err), err);
  }
  for (;;) {
    const ssize_t n = receiveOne(kAckTimeoutMs);
    if (n == 0) return makeError("no answer from the kernel");
    if (n < 0) {
      const int err = errno;
      return systemError(nftErrnoText(err), err);
    }
    auto* msg = reinterpret_cast<nlmsghdr*>(rx_.data());
    auto len = static_cast<int>(n);
    for (; messageFits(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
      if (msg->nlmsg_seq != requestSeq) continue;
      if (msg->nlmsg_type == NLMSG_DONE) return {};
      if (msg->nlmsg_type == NLMSG_ERROR) {
        // An ack (error 0) ends a single-object request; a dump ends with NLMSG_DONE.
        if (mnl_cb_run(msg, msg->nlmsg_len, requestSeq, portId_, nullptr, nullptr) < 0) {
          const int err = errno;
          return systemError(nftErrnoText(err), err);
        }
        return {};
      }
      each(msg);
    }
  }
}

}  // namespace mailguard::netfilter
