// RulesetMonitor: one NETLINK_NETFILTER socket in the NFNLGRP_NFTABLES group. The
// kernel sends every committed nf_tables change there, each message stamped with the
// sender's port id, and closes each transaction with NFT_MSG_NEWGEN naming the
// committing process (NFTA_GEN_PROC_PID / NFTA_GEN_PROC_NAME).
#include "mailguard/netfilter/ruleset_monitor.hpp"

#include "mailguard/netfilter/netlink.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

namespace mailguard::netfilter {
namespace {

// Notifications are built in skbs of at most a few pages; 64 KiB holds any of them.
constexpr std::size_t kReceiveBuffer = 64 * 1024;
// Deleting a large table announces every rule; a roomy queue makes overflow (and the
// resync it forces) rare.
constexpr int kSocketBuffer = 4 * 1024 * 1024;

// Every nf_tables object message carries its table as attribute 1 (NFTA_TABLE_NAME,
// NFTA_CHAIN_TABLE, NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE,
// NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE); the object's own name is attribute 2 or 3.
constexpr std::uint16_t kTableAttr = 1;
constexpr std::size_t kMaxAttr = 16;

struct Attrs {
  std::array<const nlattr*, kMaxAttr + 1> at{};
};

int collectAttr(const nlattr* attr, void* data) {
  const auto type = mnl_attr_get_type(attr);
  if (type <= kMaxAttr) static_cast<Attrs*>(data)->at[type] = attr;
  return MNL_CB_OK;
}

std::string stringAttr(const nlattr* attr) {
  if (attr == nullptr) return {};
  const auto* text = static_cast<const char*>(mnl_attr_get_payload(attr));
  return {text, ::strnlen(text, mnl_attr_get_payload_len(attr))};
}

std::optional<std::uint32_t> u32Attr(const nlattr* attr) {
  if (attr == nullptr || mnl_attr_get_payload_len(attr) != sizeof(std::uint32_t)) {
    return std::nullopt;
  }
  return ntohl(mnl_attr_get_u32(attr));
}

// The attribute naming the object within its table, by message type; 0: none.
std::uint16_t objectAttr(std::uint16_t type) {
  switch (type) {
    case NFT_MSG_NEWCHAIN:
    case NFT_MSG_DELCHAIN:
      return NFTA_CHAIN_NAME;
    case NFT_MSG_NEWRULE:
    case NFT_MSG_DELRULE:
      return NFTA_RULE_CHAIN;
    case NFT_MSG_NEWSET:
    case NFT_MSG_DELSET:
      return NFTA_SET_NAME;
    case NFT_MSG_NEWSETELEM:
    case NFT_MSG_DELSETELEM:
      return NFTA_SET_ELEM_LIST_SET;
    case NFT_MSG_NEWOBJ:
    case NFT_MSG_DELOBJ:
      return NFTA_OBJ_NAME;
    case NFT_MSG_NEWFLOWTABLE:
    case NFT_MSG_DELFLOWTABLE:
      return NFTA_FLOWTABLE_NAME;
    default:
      return 0;
  }
}

// Names come from whoever made the change: control characters could forge log lines.
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out + "'";
}

}  // namespace

std::string RulesetEvent::describe() const {
  const std::string name = object.empty() ? std::string() : " " + quoted(object);
  switch (type) {
    case NFT_MSG_NEWTABLE:
      return "added or changed table";
    case NFT_MSG_DELTABLE:
      return "deleted table";
    case NFT_MSG_NEWCHAIN:
      return "added or changed chain" + name;
    case NFT_MSG_DELCHAIN:
      return "deleted chain" + name;
    case NFT_MSG_NEWRULE:
      return "added rule to chain" + name;
    case NFT_MSG_DELRULE:
      return "deleted rule from chain" + name;
    case NFT_MSG_NEWSET:
      return "added set" + name;
    case NFT_MSG_DELSET:
      return "deleted set" + name;
    case NFT_MSG_NEWSETELEM:
      return "added elements to set" + name;
    case NFT_MSG_DELSETELEM:
      return "deleted elements from set" + name;
    case NFT_MSG_NEWOBJ:
      return "added or changed object" + name;
    case NFT_MSG_DELOBJ:
      return "deleted object" + name;
    case NFT_MSG_NEWFLOWTABLE:
      return "added or changed flowtable" + name;
    case NFT_MSG_DELFLOWTABLE:
      return "deleted flowtable" + name;
    case NFT_MSG_NEWGEN:
      return "committed generation " + std::to_string(generation);
    default:
      return "changed (nf_tables message " + std::to_string(type) + ")" + name;
  }
}

bool RulesetEvent::touches(std::string_view name) const {
  return kind == Kind::Change && family == NFPROTO_INET && table == name;
}

std::vector<RulesetEvent> parseRulesetEvents(std::span<const std::uint8_t> datagram) {
  std::vector<RulesetEvent> out;
  auto len = static_cast<int>(std::min<std::size_t>(datagram.size(), INT32_MAX));
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); messageFits(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    if (NFNL_SUBSYS_ID(nlh->nlmsg_type) != NFNL_SUBSYS_NFTABLES) continue;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) continue;
    const auto type = static_cast<std::uint16_t>(NFNL_MSG_TYPE(nlh->nlmsg_type));
    // Requests for data and traces are not changes.
    if (type == NFT_MSG_GETGEN || type == NFT_MSG_TRACE) continue;
    Attrs attrs;
    if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collectAttr, &attrs) < 0) continue;
    const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    RulesetEvent e;
    e.type = type;
    e.family = nfg->nfgen_family;
    e.portId = nlh->nlmsg_pid;
    if (type == NFT_MSG_NEWGEN) {
      e.kind = RulesetEvent::Kind::Generation;
      e.generation = u32Attr(attrs.at[NFTA_GEN_ID]).value_or(0);
      e.pid = u32Attr(attrs.at[NFTA_GEN_PROC_PID]);
      e.comm = stringAttr(attrs.at[NFTA_GEN_PROC_NAME]);
    } else {
      e.table = stringAttr(attrs.at[kTableAttr]);
      if (const auto a = objectAttr(type); a != 0) e.object = stringAttr(attrs.at[a]);
    }
    out.push_back(std::move(e));
  }
  return out;
}

struct RulesetMonitor::Impl {
  MnlSocketPtr socket;
  std::vector<std::uint8_t> rx = std::vector<std::uint8_t>(kReceiveBuffer);
};

RulesetMonitor::RulesetMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RulesetMonitor::~RulesetMonitor() = default;

int RulesetMonitor::fd() const { return mnl_socket_get_fd(impl_->socket.get()); }

Result<std::unique_ptr<RulesetMonitor>> RulesetMonitor::open() {
  auto fail = [](const char* verb) {
    const int err = errno;
    std::string hint;
    if (err == EPERM || err == EACCES) hint = " (guardd needs root / CAP_NET_ADMIN)";
    return makeError(std::string("Failed to ") + verb +
                     " 'nf_tables monitor socket': " + std::strerror(err) + hint);
  };
  auto impl = std::make_unique<Impl>();
  impl->socket.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!impl->socket) return fail("open");
  if (mnl_socket_bind(impl->socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) return fail("bind");
  int group = NFNLGRP_NFTABLES;
  if (mnl_socket_setsockopt(impl->socket.get(), NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
    return fail("subscribe");
  }
  // FORCE goes past net.core.rmem_max with CAP_NET_ADMIN; otherwise take what is allowed.
  const int fd = mnl_socket_get_fd(impl->socket.get());
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &kSocketBuffer, sizeof kSocketBuffer) < 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &kSocketBuffer, sizeof kSocketBuffer);
  }
  return std::unique_ptr<RulesetMonitor>(new RulesetMonitor(std::move(impl)));
}

Result<RulesetMonitor::Batch> RulesetMonitor::readAvailable() {
  Batch batch;
  for (;;) {
    const ssize_t n = ::recv(fd(), impl_->rx.data(), impl_->rx.size(), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return batch;
      // The kernel could not queue some notifications; the socket goes on working.
      if (errno == ENOBUFS) {
        batch.lost = true;
        continue;
      }
      return makeError(std::string("Failed to read 'nf_tables monitor socket': ") +
                       std::strerror(errno));
    }
    auto events = parseRulesetEvents(std::span(impl_->rx.data(), static_cast<std::size_t>(n)));
    for (auto& e : events) batch.events.push_back(std::move(e));
  }
}

}  // namespace mailguard::netfilter
