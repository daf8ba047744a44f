// NFLOG over raw nfnetlink (libmnl): bind a group, copy the first bytes of each logged
// packet, parse source address and TCP destination port.
#include "mailguard/firewall/probe_log.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <tuple>

#include "mailguard/netfilter/netlink.hpp"
#include "mailguard/rules/firewall.hpp"

namespace mailguard::firewall {

using netfilter::messageFits;
namespace {

// Enough for an IPv6 header and the TCP ports behind it.
constexpr std::uint32_t kCopyRange = 96;

std::string addressText(int family, const std::array<std::uint8_t, 16>& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  (void)::inet_ntop(family, a.data(), buf, sizeof buf);
  return buf;
}

std::optional<ProbeEvent> parsePayload(int family, const std::uint8_t* p, std::size_t len) {
  ProbeEvent e;
  e.family = family;
  std::size_t transport = 0;
  if (family == AF_INET) {
    if (len < 20 || (p[0] >> 4) != 4) return std::nullopt;
    const std::size_t ihl = static_cast<std::size_t>(p[0] & 0x0f) * 4;
    if (p[9] != IPPROTO_TCP || ihl < 20) return std::nullopt;
    std::memcpy(e.source.data(), p + 12, 4);
    transport = ihl;
  } else if (family == AF_INET6) {
    // host_in matched `tcp dport`, so TCP follows; extension headers before it are
    // not followed (rare on a SYN, and then the probe is not recorded).
    if (len < 40 || (p[0] >> 4) != 6 || p[6] != IPPROTO_TCP) return std::nullopt;
    std::memcpy(e.source.data(), p + 8, 16);
    transport = 40;
  } else {
    return std::nullopt;
  }
  if (len < transport + 4) return std::nullopt;
  e.port = static_cast<std::uint16_t>((p[transport + 2] << 8) | p[transport + 3]);
  return e;
}

struct ParseState {
  const nlattr* attrs[NFULA_MAX + 1] = {};
};

int collectAttr(const nlattr* attr, void* data) {
  auto* st = static_cast<ParseState*>(data);
  const int type = mnl_attr_get_type(attr);
  if (type >= 0 && type <= NFULA_MAX) st->attrs[type] = attr;
  return MNL_CB_OK;
}

Error logError(const std::string& what, int err) {
  return makeError("Failed to " + what + " 'NFLOG group': " + std::strerror(err));
}

// NFULNL_MSG_CONFIG for `group` with one attribute, acked.
Result<void> sendConfig(int fd, std::uint16_t group, std::uint16_t attrType, const void* data,
                        std::size_t len, std::uint32_t seq) {
  alignas(nlmsghdr) std::array<char, 8192> buf{};
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf.data());
  nlh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  nlh->nlmsg_seq = seq;
  auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
  nfg->nfgen_family = AF_UNSPEC;
  nfg->version = NFNETLINK_V0;
  nfg->res_id = htons(group);
  mnl_attr_put(nlh, attrType, len, data);
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, nlh, nlh->nlmsg_len, 0, reinterpret_cast<const sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return logError("configure", errno);
  }
  for (;;) {
    const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return logError("configure", errno);
    const int ret = mnl_cb_run(buf.data(), static_cast<std::size_t>(n), seq, 0, nullptr, nullptr);
    if (ret == MNL_CB_ERROR) return logError("bind", errno);
    return {};
  }
}

}  // namespace

std::string ProbeEvent::sourceAddress() const { return addressText(family, source); }
std::string ProbeRecord::sourceAddress() const { return addressText(family, source); }

std::vector<ProbeEvent> parseNflogDatagram(std::span<const std::uint8_t> datagram) {
  std::vector<ProbeEvent> out;
  auto len = static_cast<int>(datagram.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(datagram.data()); messageFits(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    if (nlh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) continue;
    if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(nfgenmsg))) continue;
    const auto* nfg = static_cast<const nfgenmsg*>(mnl_nlmsg_get_payload(nlh));
    ParseState st;
    if (mnl_attr_parse(nlh, sizeof(nfgenmsg), collectAttr, &st) < 0) continue;
    const nlattr* prefix = st.attrs[NFULA_PREFIX];
    if (prefix == nullptr) continue;
    // The prefix attribute carries the terminating NUL.
    const std::string_view text(static_cast<const char*>(mnl_attr_get_payload(prefix)),
                                ::strnlen(static_cast<const char*>(mnl_attr_get_payload(prefix)),
                                          mnl_attr_get_payload_len(prefix)));
    if (text != rules::kProbeLogPrefix) continue;
    const nlattr* payload = st.attrs[NFULA_PAYLOAD];
    if (payload == nullptr) continue;
    if (auto e = parsePayload(nfg->nfgen_family,
                              static_cast<const std::uint8_t*>(mnl_attr_get_payload(payload)),
                              mnl_attr_get_payload_len(payload))) {
      out.push_back(*e);
    }
  }
  return out;
}

Result<std::unique_ptr<NflogProbeSource>> NflogProbeSource::open(std::uint16_t group) {
  Fd owned{::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER)};
  if (!owned) return logError("open", errno);
  const int fd = owned.get();
  std::unique_ptr<NflogProbeSource> source(new NflogProbeSource());
  source->fd_ = std::move(owned);
  sockaddr_nl local{};
  local.nl_family = AF_NETLINK;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
    return logError("bind", errno);
  }
  nfulnl_msg_config_cmd bind{NFULNL_CFG_CMD_BIND};
  if (auto r = sendConfig(fd, group, NFULA_CFG_CMD, &bind, sizeof bind, 1); !r) return r.error();
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(kCopyRange);
  mode.copy_mode = NFULNL_COPY_PACKET;
  if (auto r = sendConfig(fd, group, NFULA_CFG_MODE, &mode, sizeof mode, 2); !r) return r.error();
  return source;
}

NflogProbeSource::~NflogProbeSource() = default;

Result<std::vector<ProbeEvent>> NflogProbeSource::readAvailable() {
  std::vector<ProbeEvent> events;
  alignas(nlmsghdr) std::array<std::uint8_t, 8192> buf{};
  for (;;) {
    const ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return events;
    // ENOBUFS: the kernel dropped log messages because we were slow; the limit rule
    // keeps that rare, and losing probe events is acceptable.
    if (n < 0 && errno == ENOBUFS) continue;
    if (n < 0) return logError("read", errno);
    auto parsed = parseNflogDatagram({buf.data(), static_cast<std::size_t>(n)});
    events.insert(events.end(), parsed.begin(), parsed.end());
  }
}

ProbeRecorder::ProbeRecorder(const Clock& clock, std::size_t maxRecords)
    : clock_(clock), maxRecords_(maxRecords) {}

void ProbeRecorder::record(const ProbeEvent& event) {
  ++events_;
  const Key key{event.family, event.source, event.port};
  const TimePoint now = clock_.now();
  auto it = records_.find(key);
  if (it == records_.end()) {
    if (records_.size() >= maxRecords_) {
      ++dropped_;
      return;
    }
    it = records_.emplace(key, ProbeRecord{event.family, event.source, event.port, 0, now, now})
             .first;
  }
  ++it->second.count;
  it->second.last = now;
}

std::vector<ProbeRecord> ProbeRecorder::records() const {
  std::vector<ProbeRecord> out;
  out.reserve(records_.size());
  for (const auto& [key, record] : records_) out.push_back(record);
  return out;
}

std::vector<ProbeRecord> ProbeRecorder::drain() {
  auto out = records();
  records_.clear();
  return out;
}

}  // namespace mailguard::firewall
