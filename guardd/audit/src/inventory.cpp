// Inventory: a sock_diag dump of listening TCP sockets (sock_diag(7)), then the
// owning process through procinfo.
#include "mailguard/audit/inventory.hpp"
#include "mailguard/common/fd.hpp"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace mailguard::audit {
namespace {

Error dumpError(const std::string& reason) {
  return makeError("Failed to list 'listening TCP sockets': " + reason);
}

struct DumpRequest {
  nlmsghdr header;
  inet_diag_req_v2 body;
};

// One family: NLM_F_DUMP with idiag_states limited to LISTEN; the kernel answers with
// multipart inet_diag_msg messages and NLMSG_DONE.
Result<void> dumpFamily(int fd, int family, std::vector<ListeningSocket>& out) {
  DumpRequest req{};
  req.header.nlmsg_len = sizeof(req);
  req.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.header.nlmsg_seq = static_cast<std::uint32_t>(family);
  req.body.sdiag_family = static_cast<std::uint8_t>(family);
  req.body.sdiag_protocol = IPPROTO_TCP;
  req.body.idiag_states = 1U << TCP_LISTEN;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &req, sizeof req, 0, reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) <
      0) {
    return dumpError(std::string("send: ") + std::strerror(errno));
  }
  alignas(nlmsghdr) std::array<char, 32768> buf{};
  for (;;) {
    const ssize_t got = ::recv(fd, buf.data(), buf.size(), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return dumpError(std::string("receive: ") + std::strerror(errno));
    int len = static_cast<int>(got);
    for (const auto* nlh = reinterpret_cast<const nlmsghdr*>(buf.data()); NLMSG_OK(nlh, len);
         nlh = NLMSG_NEXT(nlh, len)) {
      if (nlh->nlmsg_seq != req.header.nlmsg_seq) continue;
      if (nlh->nlmsg_type == NLMSG_DONE) return {};
      if (nlh->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(nlh));
        return dumpError(std::strerror(-err->error));
      }
      if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
      inet_diag_msg msg{};
      std::memcpy(&msg, NLMSG_DATA(nlh), sizeof msg);
      ListeningSocket s;
      s.family = msg.idiag_family;
      std::memcpy(s.address.data(), msg.id.idiag_src, family == AF_INET ? 4 : 16);
      s.port = ntohs(msg.id.idiag_sport);
      s.inode = msg.idiag_inode;
      s.uid = msg.idiag_uid;
      out.push_back(s);
    }
  }
}

bool isV4MappedLoopback(const std::array<std::uint8_t, 16>& a) {
  static constexpr std::array<std::uint8_t, 12> kMapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kMapped.begin(), kMapped.end(), a.begin()) && a[12] == 127;
}

}  // namespace

Result<std::vector<ListeningSocket>> SockDiagListeningSockets::listTcp() {
  const Fd fd{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG)};
  if (!fd) return dumpError(std::string("socket(NETLINK_SOCK_DIAG): ") + std::strerror(errno));
  std::vector<ListeningSocket> out;
  Result<void> r = dumpFamily(fd.get(), AF_INET, out);
  if (r) r = dumpFamily(fd.get(), AF_INET6, out);
  if (!r) return r.error();
  return out;
}

std::string_view toString(Exposure e) { return e == Exposure::Loopback ? "loopback" : "external"; }

Exposure exposureOf(int family, const std::array<std::uint8_t, 16>& a) {
  if (family == AF_INET) return a[0] == 127 ? Exposure::Loopback : Exposure::External;
  static constexpr std::array<std::uint8_t, 16> kLoopback6{0, 0, 0, 0, 0, 0, 0, 0,
                                                           0, 0, 0, 0, 0, 0, 0, 1};
  if (a == kLoopback6 || isV4MappedLoopback(a)) return Exposure::Loopback;
  return Exposure::External;
}

std::string addressText(int family, const std::array<std::uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  (void)::inet_ntop(family, a.data(), buf, sizeof buf);
  return buf;
}

std::string MailListener::addressText() const { return audit::addressText(family, address); }

bool MailListener::isWildcard() const {
  const std::size_t len = family == AF_INET ? 4 : 16;
  return std::all_of(address.begin(), address.begin() + static_cast<long>(len),
                     [](std::uint8_t b) { return b == 0; });
}

Result<std::vector<MailListener>> takeInventory(ListeningSockets& sockets,
                                                procinfo::ProcessResolver& resolver,
                                                const std::vector<std::uint16_t>& mailPorts) {
  auto listed = sockets.listTcp();
  if (!listed) return listed.error();
  std::vector<MailListener> out;
  for (const ListeningSocket& s : *listed) {
    if (std::find(mailPorts.begin(), mailPorts.end(), s.port) == mailPorts.end()) continue;
    MailListener l;
    l.family = s.family;
    l.address = s.address;
    l.port = s.port;
    l.exposure = exposureOf(s.family, s.address);
    l.inode = s.inode;
    l.uid = s.uid;
    if (s.inode != 0) {
      if (auto info = resolver.describeHolder(s.inode, s.uid); info) {
        l.pid = info->pid;
        l.path = info->identity.path;
        l.comm = info->comm;
      }
    }
    out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(), [](const MailListener& a, const MailListener& b) {
    return std::tie(a.port, a.family, a.address) < std::tie(b.port, b.family, b.address);
  });
  return out;
}

}  // namespace mailguard::audit
