// Socket lookup by exact 4-tuple through NETLINK_SOCK_DIAG (see sock_diag(7)).
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>

#include "mailguard/common/fd.hpp"
#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::procinfo {

namespace {

std::string errnoText(int err) { return std::strerror(err); }

Error diagError(const std::string& reason) {
  return makeError("Failed to look up socket with sock_diag: " + reason);
}

struct DiagRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};

DiagRequest buildRequest(const rules::ConnectionTuple& t, std::uint32_t seq) {
  DiagRequest req{};
  req.header.nlmsg_len = sizeof(req);
  req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  // No NLM_F_DUMP: the kernel does an exact lookup (inet_diag_find_one_icsk) and answers
  // with one inet_diag_msg or one NLMSG_ERROR (-ENOENT when no socket matches).
  req.header.nlmsg_flags = NLM_F_REQUEST;
  req.header.nlmsg_seq = seq;
  req.body.sdiag_family = static_cast<std::uint8_t>(t.family);
  req.body.sdiag_protocol = IPPROTO_TCP;
  req.body.idiag_states = ~0U;
  // For the exact lookup "src" is the local end of the socket and "dst" the peer, which
  // is how an outgoing packet's tuple reads.
  req.body.id.idiag_sport = htons(t.srcPort);
  req.body.id.idiag_dport = htons(t.dstPort);
  const std::size_t addrLen = t.family == AF_INET ? 4 : 16;
  std::memcpy(req.body.id.idiag_src, t.src.data(), addrLen);
  std::memcpy(req.body.id.idiag_dst, t.dst.data(), addrLen);
  req.body.id.idiag_if = 0;
  req.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  req.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  return req;
}

}  // namespace

Result<std::unique_ptr<SockDiagSocketTable>> SockDiagSocketTable::open() {
  Fd fd{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (!fd) return diagError("socket(NETLINK_SOCK_DIAG): " + errnoText(errno));
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), sizeof(local)) != 0) {
    return diagError("bind: " + errnoText(errno));
  }
  std::unique_ptr<SockDiagSocketTable> table{new SockDiagSocketTable()};
  table->fd_ = std::move(fd);
  return table;
}

SockDiagSocketTable::~SockDiagSocketTable() = default;

Result<std::optional<SocketOwner>> SockDiagSocketTable::findTcp(const rules::ConnectionTuple& t) {
  if (t.family != AF_INET && t.family != AF_INET6) {
    return diagError("address family " + std::to_string(t.family) + " is not inet");
  }
  const std::uint32_t seq = ++seq_;
  const DiagRequest req = buildRequest(t, seq);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  ssize_t sent = 0;
  do {
    sent = ::sendto(fd_.get(), &req, sizeof(req), 0, reinterpret_cast<const sockaddr*>(&kernel),
                    sizeof(kernel));
  } while (sent < 0 && errno == EINTR);
  if (sent < 0) return diagError("send: " + errnoText(errno));
  if (static_cast<std::size_t>(sent) != sizeof(req)) return diagError("short send");

  // The kernel handles the request inside sendto() and queues its answer before returning,
  // so the answer is already waiting: read without blocking. Messages with another seq are
  // leftovers of an earlier request and are skipped.
  alignas(nlmsghdr) std::array<char, 8192> buf{};
  for (;;) {
    sockaddr_nl from{};
    socklen_t fromLen = sizeof(from);
    const ssize_t got = ::recvfrom(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT,
                                   reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return diagError("no answer from the kernel");
      return diagError("receive: " + errnoText(errno));
    }
    if (from.nl_pid != 0) continue;  // only the kernel answers; ignore anything else
    int len = static_cast<int>(got);
    for (const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(nlh, len);
         nlh = NLMSG_NEXT(nlh, len)) {
      if (nlh->nlmsg_seq != seq) continue;
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return diagError("truncated error");
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
        if (err->error == -ENOENT) return std::optional<SocketOwner>{};
        if (err->error == 0) return diagError("acknowledged without an answer");
        return diagError(errnoText(-err->error));
      }
      if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
        return diagError("truncated inet_diag_msg");
      }
      inet_diag_msg msg{};
      std::memcpy(&msg, NLMSG_DATA(nlh), sizeof(msg));
      // A socket without an inode (TIME_WAIT, orphaned after close) has no owner any more.
      if (msg.idiag_inode == 0) return std::optional<SocketOwner>{};
      // The cookie is the kernel's name for the socket (SO_COOKIE; the BPF hooks key their
      // stamps by it): two 32-bit halves, low first.
      const std::uint64_t cookie =
          std::uint64_t{msg.id.idiag_cookie[0]} | (std::uint64_t{msg.id.idiag_cookie[1]} << 32);
      return std::optional<SocketOwner>{SocketOwner{msg.idiag_inode, msg.idiag_uid, cookie}};
    }
  }
}

}  // namespace mailguard::procinfo
