// RulesetManager: turns a rules::Table into one nf_tables netlink batch (pure
// builders below, no socket) and sends it through one small transport that reads
// every ack. Only the table named in the rules::Table is created, replaced or
// deleted; the probe uses its own throw-away table, created exclusively.
#include "mailguard/netfilter/ruleset_manager.hpp"

#include "mailguard/netfilter/netlink.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mailguard::netfilter {
namespace {

using NftTablePtr = std::unique_ptr<nftnl_table, CDeleter<nftnl_table_free>>;
using NftChainPtr = std::unique_ptr<nftnl_chain, CDeleter<nftnl_chain_free>>;
using NftSetPtr = std::unique_ptr<nftnl_set, CDeleter<nftnl_set_free>>;
using NftSetElemPtr = std::unique_ptr<nftnl_set_elem, CDeleter<nftnl_set_elem_free>>;
using NftRulePtr = std::unique_ptr<nftnl_rule, CDeleter<nftnl_rule_free>>;
using NftExprPtr = std::unique_ptr<nftnl_expr, CDeleter<nftnl_expr_free>>;

constexpr const char* kProbeTable = "mailguard_probe";
constexpr const char* kProbeChain = "probe";
// nftables' datatype id for inet_service (src/datatype.h TYPE_INET_SERVICE): lets
// `nft list` print `type inet_service` for a set we created without user data.
constexpr std::uint32_t kTypeInetService = 13;
// ... and for ipv4_addr / ipv6_addr (TYPE_IPADDR, TYPE_IP6ADDR).
constexpr std::uint32_t kTypeIpv4Addr = 7;
constexpr std::uint32_t kTypeIpv6Addr = 8;
// Well below the netlink socket's default send buffer (net.core.wmem_default).
constexpr std::size_t kBatchLimit = 128 * 1024;
// Room after the limit for the one message that overflows it (mnl_nlmsg_batch).
constexpr std::size_t kBatchSlack = 64 * 1024;
constexpr int kAckTimeoutMs = 5000;
// One ack, or one error ack echoing the message it refuses.
constexpr std::size_t kReceiveBuffer = 64 * 1024;

// ct state bits as nf_tables sees them (linux/netfilter/nf_conntrack_common.h:
// NF_CT_STATE_BIT(ctinfo) = 1 << (ctinfo + 1)).
constexpr std::uint32_t kCtEstablished = 1U << 1;
constexpr std::uint32_t kCtRelated = 1U << 2;
constexpr std::uint32_t kCtNew = 1U << 3;
constexpr std::uint32_t kCtInvalid = 1U << 0;  // NF_CT_STATE_INVALID_BIT

template <class T>
T checkedAlloc(T p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

NftExprPtr newExpr(const char* name) { return NftExprPtr(checkedAlloc(nftnl_expr_alloc(name))); }

std::string tableLabel(const std::string& name) { return "inet " + name; }

// ---- expression builders -------------------------------------------------

// `ct state established,related` / `ct state new`:
//   ct load state => reg 1; bitwise reg 1 = (reg 1 & mask) ^ 0; cmp neq reg 1 0
void addCtState(nftnl_rule* r, std::uint32_t mask) {
  auto ct = newExpr("ct");
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r, ct.release());

  const std::uint32_t zero = 0;
  auto bitwise = newExpr("bitwise");
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_LEN, sizeof(std::uint32_t));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
  nftnl_rule_add_expr(r, bitwise.release());

  auto cmp = newExpr("cmp");
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_NEQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, &zero, sizeof(zero));
  nftnl_rule_add_expr(r, cmp.release());
}

// `meta <key> == value` for a key loaded into reg 1 (meta mark: 4 bytes host order;
// meta l4proto: 1 byte).
void addMetaCmp(nftnl_rule* r, std::uint32_t key, const void* value, std::uint32_t len) {
  auto meta = newExpr("meta");
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r, meta.release());

  auto cmp = newExpr("cmp");
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, value, len);
  nftnl_rule_add_expr(r, cmp.release());
}

// `meta mark 0x6d670001`: meta load mark => reg 1; cmp eq reg 1 0x6d670001
void addMarkEquals(nftnl_rule* r, std::uint32_t mark) {
  addMetaCmp(r, NFT_META_MARK, &mark, sizeof(mark));
}

// `meta l4proto tcp`: meta load l4proto => reg 1; cmp eq reg 1 0x06
void addIsTcp(nftnl_rule* r) {
  const std::uint8_t tcp = IPPROTO_TCP;
  addMetaCmp(r, NFT_META_L4PROTO, &tcp, sizeof(tcp));
}

// `tcp dport @mail_ports` (needs `meta l4proto tcp` before it in the rule):
//   payload load 2b @ transport header + 2 => reg 1; lookup reg 1 set mail_ports
void addDportLookup(nftnl_rule* r, const std::string& set, std::uint32_t setId) {
  auto payload = newExpr("payload");
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, 2);  // struct tcphdr.dest
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, sizeof(std::uint16_t));
  nftnl_rule_add_expr(r, payload.release());

  auto lookup = newExpr("lookup");
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(lookup.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, setId);
  nftnl_rule_add_expr(r, lookup.release());
}

// `payload load LEN b @ BASE + OFFSET => reg 1`
void addPayloadLoad(nftnl_rule* r, std::uint32_t base, std::uint32_t offset, std::uint32_t len) {
  auto payload = newExpr("payload");
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_rule_add_expr(r, payload.release());
}

// `cmp eq reg 1 value`
void addCmpEq(nftnl_rule* r, const void* value, std::uint32_t len) {
  auto cmp = newExpr("cmp");
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, value, len);
  nftnl_rule_add_expr(r, cmp.release());
}

// `lookup reg 1 set NAME`
void addLookup(nftnl_rule* r, const std::string& set, std::uint32_t setId) {
  auto lookup = newExpr("lookup");
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(lookup.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, setId);
  nftnl_rule_add_expr(r, lookup.release());
}

// `meta l4proto udp` (any IPPROTO_*): meta load l4proto => reg 1; cmp eq reg 1 0x11
void addL4Proto(nftnl_rule* r, std::uint8_t proto) {
  addMetaCmp(r, NFT_META_L4PROTO, &proto, sizeof(proto));
}

// `meta nfproto ipv4|ipv6`: meta load nfproto => reg 1; cmp eq reg 1 0x02|0x0a. In an
// inet table the network header means IPv4 or IPv6 only after this.
void addNfproto(nftnl_rule* r, std::uint8_t nfproto) {
  addMetaCmp(r, NFT_META_NFPROTO, &nfproto, sizeof(nfproto));
}

// `iifname "lo"`: meta load iifname => reg 1; cmp eq reg 1 "lo\0..." (IFNAMSIZ bytes,
// so "lo" does not also match "lo0")
void addIifname(nftnl_rule* r, const std::string& name) {
  char padded[IFNAMSIZ] = {};
  std::strncpy(padded, name.c_str(), IFNAMSIZ - 1);
  addMetaCmp(r, NFT_META_IIFNAME, padded, IFNAMSIZ);
}

// `icmp type echo-request` / `icmpv6 type nd-neighbor-solicit`:
//   meta nfproto ipv4|ipv6; meta l4proto icmp|ipv6-icmp;
//   payload load 1b @ transport header + 0 => reg 1; cmp eq reg 1 TYPE
void addIcmpType(nftnl_rule* r, bool v6, std::uint8_t type) {
  addNfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
  addL4Proto(r, static_cast<std::uint8_t>(v6 ? int{IPPROTO_ICMPV6} : int{IPPROTO_ICMP}));
  addPayloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1);
  addCmpEq(r, &type, sizeof(type));
}

// `tcp dport 22` / `udp dport 546` / `udp sport 547` (after the l4proto match):
//   payload load 2b @ transport header + 2|0 => reg 1; cmp eq reg 1 PORT (big endian)
void addPortEquals(nftnl_rule* r, std::uint32_t offset, std::uint32_t port) {
  addPayloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, offset, sizeof(std::uint16_t));
  const std::uint16_t key = htons(static_cast<std::uint16_t>(port));
  addCmpEq(r, &key, sizeof(key));
}

// `ip saddr @set` / `ip6 saddr @set`:
//   meta nfproto ipv4|ipv6; payload load 4b @ network header + 12 (16b @ + 8) => reg 1;
//   lookup reg 1 set NAME
void addSaddrLookup(nftnl_rule* r, bool v6, const std::string& set, std::uint32_t setId) {
  addNfproto(r, v6 ? NFPROTO_IPV6 : NFPROTO_IPV4);
  if (v6) {
    addPayloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, 8, 16);  // struct ipv6hdr.saddr
  } else {
    addPayloadLoad(r, NFT_PAYLOAD_NETWORK_HEADER, 12, 4);  // struct iphdr.saddr
  }
  addLookup(r, set, setId);
}

// `limit rate N/second burst B packets`: limit rate N/second burst B type packets flags 0
void addLimit(nftnl_rule* r, std::uint32_t perSecond, std::uint32_t burst) {
  auto limit = newExpr("limit");
  nftnl_expr_set_u64(limit.get(), NFTNL_EXPR_LIMIT_RATE, perSecond);
  nftnl_expr_set_u64(limit.get(), NFTNL_EXPR_LIMIT_UNIT, 1);  // seconds
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_BURST, burst);
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_TYPE, NFT_LIMIT_PKTS);
  nftnl_expr_set_u32(limit.get(), NFTNL_EXPR_LIMIT_FLAGS, 0);
  nftnl_rule_add_expr(r, limit.release());
}

// `log prefix "P" group G`: sends the packet to NFLOG group G (nfnetlink_log); the
// reader chooses how much of it to copy. Not a verdict: the next rule follows.
void addLogGroup(nftnl_rule* r, std::uint16_t group, const std::string& prefix) {
  auto log = newExpr("log");
  nftnl_expr_set_u16(log.get(), NFTNL_EXPR_LOG_GROUP, group);
  if (!prefix.empty()) nftnl_expr_set_str(log.get(), NFTNL_EXPR_LOG_PREFIX, prefix.c_str());
  nftnl_rule_add_expr(r, log.release());
}

// `counter`: counter pkts 0 bytes 0
void addCounter(nftnl_rule* r) { nftnl_rule_add_expr(r, newExpr("counter").release()); }

// `accept` / `drop`: immediate reg 0 (verdict) accept|drop
void addVerdict(nftnl_rule* r, std::uint32_t verdict) {
  auto imm = newExpr("immediate");
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_VERDICT, verdict);
  nftnl_rule_add_expr(r, imm.release());
}

// `reject with tcp reset` (inet table: nft_reject_inet, type NFT_REJECT_TCP_RST)
void addRejectTcpReset(nftnl_rule* r) {
  auto reject = newExpr("reject");
  nftnl_expr_set_u32(reject.get(), NFTNL_EXPR_REJECT_TYPE, NFT_REJECT_TCP_RST);
  nftnl_expr_set_u8(reject.get(), NFTNL_EXPR_REJECT_CODE, 0);
  nftnl_rule_add_expr(r, reject.release());
}

// `queue num N` (native nft_queue; no `bypass` flag, so without a listener the
// kernel drops the packet: fail-closed)
void addNativeQueue(nftnl_rule* r, std::uint16_t queue) {
  auto q = newExpr("queue");
  nftnl_expr_set_u16(q.get(), NFTNL_EXPR_QUEUE_NUM, queue);
  nftnl_expr_set_u16(q.get(), NFTNL_EXPR_QUEUE_TOTAL, 1);
  nftnl_rule_add_expr(r, q.release());
}

// `queue num N` as nft lists it, but encoded as the xtables-compat target
// (iptables `-j NFQUEUE --queue-num N`, revision 3, flags 0: no bypass, fail-closed).
// nft_compat needs it for kernels without CONFIG_NFT_QUEUE.
void addCompatQueue(nftnl_rule* r, std::uint16_t queue) {
  // The kernel compares the info length with XT_ALIGN(targetsize) (xt_check_target).
  constexpr std::size_t kInfoLen = XT_ALIGN(sizeof(xt_NFQ_info_v3));
  // libnftnl takes ownership of NFTNL_EXPR_TG_INFO and frees it with free().
  auto* info = static_cast<xt_NFQ_info_v3*>(checkedAlloc(std::calloc(1, kInfoLen)));
  info->queuenum = queue;
  info->queues_total = 1;
  info->flags = 0;
  auto target = newExpr("target");
  nftnl_expr_set_str(target.get(), NFTNL_EXPR_TG_NAME, "NFQUEUE");
  nftnl_expr_set_u32(target.get(), NFTNL_EXPR_TG_REV, 3);
  nftnl_expr_set(target.get(), NFTNL_EXPR_TG_INFO, info, kInfoLen);
  nftnl_rule_add_expr(r, target.release());
}

void addQueue(nftnl_rule* r, std::uint16_t queue, QueueBackend backend) {
  if (backend == QueueBackend::NativeQueue) {
    addNativeQueue(r, queue);
  } else {
    addCompatQueue(r, queue);
  }
}

// ---- batch builder (pure: owns no socket) ----------------------------------

class Batch {
 public:
  explicit Batch(std::uint32_t firstSeq)
      : buffer_(kBatchLimit + kBatchSlack),
        batch_(mnl_nlmsg_batch_start(buffer_.data(), kBatchLimit)),
        seq_(firstSeq) {
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    next();
    firstAcked_ = seq_;
  }
  ~Batch() { mnl_nlmsg_batch_stop(batch_); }
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Starts one acked message; the caller fills in the payload, then calls next().
  nlmsghdr* begin(std::uint16_t type, std::uint16_t flags, std::string what) {
    what_.push_back(std::move(what));
    return nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type,
                                 NFPROTO_INET, static_cast<std::uint16_t>(flags | NLM_F_ACK),
                                 seq_++);
  }
  void next() {
    if (!mnl_nlmsg_batch_next(batch_)) overflow_ = true;
  }

  Result<void> finish() {
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    next();
    if (overflow_) return makeError("the ruleset does not fit in one netlink batch");
    return {};
  }

  [[nodiscard]] const void* data() const { return mnl_nlmsg_batch_head(batch_); }
  [[nodiscard]] std::size_t size() const { return mnl_nlmsg_batch_size(batch_); }
  [[nodiscard]] std::uint32_t firstAcked() const { return firstAcked_; }
  // What message `seq` did, for error messages; nullopt when it is not ours.
  [[nodiscard]] std::optional<std::string> describe(std::uint32_t seq) const {
    if (seq < firstAcked_ || seq - firstAcked_ >= what_.size()) return std::nullopt;
    return what_[seq - firstAcked_];
  }
  [[nodiscard]] std::size_t ackCount() const { return what_.size(); }
  [[nodiscard]] std::uint32_t endSeq() const { return seq_; }

 private:
  std::vector<char> buffer_;
  mnl_nlmsg_batch* batch_;
  std::uint32_t seq_;
  std::uint32_t firstAcked_ = 0;
  std::vector<std::string> what_;
  bool overflow_ = false;
};

NftTablePtr makeTable(const std::string& name) {
  NftTablePtr t(checkedAlloc(nftnl_table_alloc()));
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
  return t;
}

// `add table inet NAME` (flags: NLM_F_CREATE, or NLM_F_EXCL to refuse an existing one)
void putNewTable(Batch& b, const std::string& name, std::uint16_t flags) {
  auto t = makeTable(name);
  nftnl_table_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWTABLE, flags, "adding table '" + tableLabel(name) + "'"), t.get());
  b.next();
}

// `delete table inet NAME`
void putDelTable(Batch& b, const std::string& name) {
  auto t = makeTable(name);
  nftnl_table_nlmsg_build_payload(
      b.begin(NFT_MSG_DELTABLE, 0, "deleting table '" + tableLabel(name) + "'"), t.get());
  b.next();
}

// `add set inet T NAME { type inet_service; }` then
// `add element inet T NAME { 25, 465, ... }`
void putSet(Batch& b, const std::string& table, const rules::PortSet& s, std::uint32_t setId) {
  NftSetPtr set(checkedAlloc(nftnl_set_alloc()));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kTypeInetService);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, sizeof(std::uint16_t));
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, setId);
  nftnl_set_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSET, NLM_F_CREATE, "adding set '" + s.name + "'"), set.get());
  b.next();

  const std::set<std::uint16_t> ports(s.ports.begin(), s.ports.end());
  if (ports.empty()) return;
  for (const std::uint16_t port : ports) {
    NftSetElemPtr e(checkedAlloc(nftnl_set_elem_alloc()));
    const std::uint16_t key = htons(port);  // inet_service is big endian
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, &key, sizeof(key));
    nftnl_set_elem_add(set.get(), e.release());
  }
  nftnl_set_elems_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE, "adding elements to set '" + s.name + "'"),
      set.get());
  b.next();
}

// `add set inet T NAME { type ipv4_addr|ipv6_addr; flags interval; }` then
// `add element inet T NAME { 10.0.0.0/8, ... }`. An interval set stores each range as
// its first address and, flagged NFT_SET_ELEM_INTERVAL_END, the address after its last
// (none when the range runs to the end of the address space); like nft, an end element
// at address 0 opens the set when the first range does not start there.
void putAddressSet(Batch& b, const std::string& table, const rules::AddressSet& s,
                   std::uint32_t setId) {
  const bool v6 = s.family == 6;
  const std::uint32_t len = v6 ? 16 : 4;
  NftSetPtr set(checkedAlloc(nftnl_set_alloc()));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, s.name.c_str());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, v6 ? kTypeIpv6Addr : kTypeIpv4Addr);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, len);
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, setId);
  nftnl_set_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSET, NLM_F_CREATE, "adding set '" + s.name + "'"), set.get());
  b.next();

  const auto ranges = rules::mergedRanges(s.prefixes, s.family);
  if (ranges.empty()) return;
  auto addElement = [&](const std::array<std::uint8_t, 16>& key, bool end) {
    NftSetElemPtr e(checkedAlloc(nftnl_set_elem_alloc()));
    nftnl_set_elem_set(e.get(), NFTNL_SET_ELEM_KEY, key.data(), len);
    if (end) nftnl_set_elem_set_u32(e.get(), NFTNL_SET_ELEM_FLAGS, NFT_SET_ELEM_INTERVAL_END);
    nftnl_set_elem_add(set.get(), e.release());
  };
  const std::array<std::uint8_t, 16> zero{};
  if (ranges.front().first != zero) addElement(zero, true);
  for (const rules::AddressRange& r : ranges) {
    addElement(r.first, false);
    std::array<std::uint8_t, 16> after = r.last;
    bool carried = true;  // after = last + 1 over `len` bytes
    for (std::size_t i = len; i-- > 0 && carried;) {
      carried = ++after[i] == 0;
    }
    if (!carried) addElement(after, true);
  }
  nftnl_set_elems_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSETELEM, NLM_F_CREATE, "adding elements to set '" + s.name + "'"),
      set.get());
  b.next();
}

// `add chain inet T NAME { type filter hook output priority P; policy accept|drop; }`
void putChain(Batch& b, const std::string& table, const rules::Chain& c) {
  NftChainPtr chain(checkedAlloc(nftnl_chain_alloc()));
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, c.name.c_str());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM,
                      c.hook == rules::Hook::Output ? NF_INET_LOCAL_OUT : NF_INET_LOCAL_IN);
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, c.priority);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, c.policyDrop ? NF_DROP : NF_ACCEPT);
  nftnl_chain_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "adding chain '" + c.name + "'"), chain.get());
  b.next();
}

NftRulePtr makeRule(const std::string& table, const std::string& chain) {
  NftRulePtr r(checkedAlloc(nftnl_rule_alloc()));
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  return r;
}

void putRule(Batch& b, const NftRulePtr& r, const std::string& what) {
  nftnl_rule_nlmsg_build_payload(b.begin(NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, what),
                                 r.get());
  b.next();
}

// `add rule inet T CHAIN <matches> [counter] <action>`
Result<NftRulePtr> buildRule(const std::string& table, const std::string& chain,
                             const rules::Rule& rule, QueueBackend backend,
                             const std::map<std::string, std::uint32_t>& setIds) {
  auto r = makeRule(table, chain);
  bool tcpKnown = false;
  int l4proto = -1;
  for (const rules::Match& m : rule.matches) {
    switch (m.kind) {
      case rules::Match::Kind::CtStateEstablishedRelated:
        addCtState(r.get(), kCtEstablished | kCtRelated);
        break;
      case rules::Match::Kind::CtStateNew:
        addCtState(r.get(), kCtNew);
        break;
      case rules::Match::Kind::MarkEquals:
        addMarkEquals(r.get(), m.value);
        break;
      case rules::Match::Kind::IsTcp:
        addIsTcp(r.get());
        tcpKnown = true;
        break;
      case rules::Match::Kind::TcpDportInSet: {
        const auto it = setIds.find(m.set);
        if (it == setIds.end()) {
          return makeError("rule in chain '" + chain + "' refers to unknown set '" + m.set + "'");
        }
        // The transport header offset means TCP only after `meta l4proto tcp`.
        if (!tcpKnown) addIsTcp(r.get());
        tcpKnown = true;
        addDportLookup(r.get(), m.set, it->second);
        break;
      }
      case rules::Match::Kind::CtStateInvalid:
        addCtState(r.get(), kCtInvalid);
        break;
      case rules::Match::Kind::IifnameEquals:
        addIifname(r.get(), m.text);
        break;
      case rules::Match::Kind::L4ProtoEquals:
        addL4Proto(r.get(), static_cast<std::uint8_t>(m.value));
        l4proto = static_cast<int>(m.value);
        break;
      case rules::Match::Kind::IcmpTypeEquals:
      case rules::Match::Kind::Icmpv6TypeEquals:
        addIcmpType(r.get(), m.kind == rules::Match::Kind::Icmpv6TypeEquals,
                    static_cast<std::uint8_t>(m.value));
        break;
      case rules::Match::Kind::TcpDportEquals:
        if (!tcpKnown) addIsTcp(r.get());
        tcpKnown = true;
        addPortEquals(r.get(), 2, m.value);  // struct tcphdr.dest
        break;
      case rules::Match::Kind::UdpDportEquals:
      case rules::Match::Kind::UdpSportEquals:
      case rules::Match::Kind::UdpDportInSet: {
        // The transport header offset means UDP only after `meta l4proto udp`.
        if (l4proto != IPPROTO_UDP) addL4Proto(r.get(), IPPROTO_UDP);
        l4proto = IPPROTO_UDP;
        if (m.kind == rules::Match::Kind::UdpDportInSet) {
          const auto it = setIds.find(m.set);
          if (it == setIds.end()) {
            return makeError("rule in chain '" + chain + "' refers to unknown set '" + m.set + "'");
          }
          addDportLookup(r.get(), m.set, it->second);  // struct udphdr.dest is at 2 too
        } else {
          // struct udphdr: source at 0, dest at 2
          addPortEquals(r.get(), m.kind == rules::Match::Kind::UdpSportEquals ? 0 : 2, m.value);
        }
        break;
      }
      case rules::Match::Kind::Ip4SaddrInSet:
      case rules::Match::Kind::Ip6SaddrInSet: {
        const auto it = setIds.find(m.set);
        if (it == setIds.end()) {
          return makeError("rule in chain '" + chain + "' refers to unknown set '" + m.set + "'");
        }
        addSaddrLookup(r.get(), m.kind == rules::Match::Kind::Ip6SaddrInSet, m.set, it->second);
        break;
      }
      case rules::Match::Kind::LimitRate:
        addLimit(r.get(), m.value, m.burst);
        break;
    }
  }
  if (rule.counter) addCounter(r.get());
  switch (rule.action.kind) {
    case rules::Action::Kind::Accept:
      addVerdict(r.get(), NF_ACCEPT);
      break;
    case rules::Action::Kind::Drop:
      addVerdict(r.get(), NF_DROP);
      break;
    case rules::Action::Kind::RejectTcpReset:
      addRejectTcpReset(r.get());
      break;
    case rules::Action::Kind::Queue:
      addQueue(r.get(), rule.action.queueNumber, backend);
      break;
    case rules::Action::Kind::Log:
      addLogGroup(r.get(), rule.action.logGroup, rule.action.logPrefix);
      break;
  }
  return r;
}

// The whole replacement: NEWTABLE (creates it when absent, so the DELTABLE cannot
// fail), DELTABLE (drops the old contents), NEWTABLE, sets, chains, rules. The
// kernel commits all of it or nothing.
Result<void> buildApplyBatch(Batch& b, const rules::Table& table, QueueBackend backend) {
  if (table.name.empty()) return makeError("the table has no name");
  putNewTable(b, table.name, NLM_F_CREATE);
  putDelTable(b, table.name);
  putNewTable(b, table.name, NLM_F_CREATE);

  std::map<std::string, std::uint32_t> setIds;
  for (const rules::PortSet& s : table.sets) {
    const auto id = static_cast<std::uint32_t>(setIds.size() + 1);
    if (!setIds.emplace(s.name, id).second) return makeError("duplicate set '" + s.name + "'");
    putSet(b, table.name, s, id);
  }
  for (const rules::AddressSet& s : table.addressSets) {
    const auto id = static_cast<std::uint32_t>(setIds.size() + 1);
    if (!setIds.emplace(s.name, id).second) return makeError("duplicate set '" + s.name + "'");
    putAddressSet(b, table.name, s, id);
  }
  for (const rules::Chain& c : table.chains) putChain(b, table.name, c);
  for (const rules::Chain& c : table.chains) {
    for (std::size_t i = 0; i < c.rules.size(); ++i) {
      auto r = buildRule(table.name, c.name, c.rules[i], backend, setIds);
      if (!r) return r.error();
      putRule(b, *r, "adding rule " + std::to_string(i + 1) + " to chain '" + c.name + "'");
    }
  }
  return b.finish();
}

// A table, a regular chain and one queue rule, deleted again in the same batch: the
// kernel validates the rule (and loads modules) but nothing stays behind. The table
// is created exclusively so a foreign table of that name is never touched.
Result<void> buildProbeBatch(Batch& b, QueueBackend backend) {
  const std::string table = kProbeTable;
  putNewTable(b, table, NLM_F_CREATE | NLM_F_EXCL);

  NftChainPtr chain(checkedAlloc(nftnl_chain_alloc()));
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, kProbeChain);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "adding chain '" + std::string(kProbeChain) + "'"),
      chain.get());
  b.next();

  // `add rule inet mailguard_probe probe queue num 0`
  auto r = makeRule(table, kProbeChain);
  addQueue(r.get(), 0, backend);
  putRule(b, r, std::string("adding a ") + std::string(toString(backend)) + " rule");

  putDelTable(b, table);
  return b.finish();
}

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

std::string errnoText(int err) { return std::string(std::strerror(err)) + errnoHint(err); }

}  // namespace

std::string_view toString(QueueBackend b) {
  return b == QueueBackend::NativeQueue ? "nft-queue" : "xt-compat";
}

// ---- transport: one socket, sends a batch, reads every ack -------------------

struct RulesetManager::Impl {
  MnlSocketPtr socket;
  std::uint32_t portId = 0;
  std::uint32_t seq = 0;
  std::vector<char> rx = std::vector<char>(kReceiveBuffer);

  struct Failure {
    int err = 0;
    std::string what;  // which message failed, when known
  };

  // Waits for the next datagram; 0 on timeout, <0 with errno on error.
  ssize_t receiveOne(int timeoutMs) {
    pollfd p{mnl_socket_get_fd(socket.get()), POLLIN, 0};
    for (;;) {
      const int n = ::poll(&p, 1, timeoutMs);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return -1;
      if (n == 0) return 0;
      const ssize_t got = ::recv(p.fd, rx.data(), rx.size(), MSG_DONTWAIT);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      return got;
    }
  }

  // One NLM_F_DUMP request (`nft list ...` over netlink); every answer for it goes to
  // `each` until NLMSG_DONE.
  Result<void> dump(nlmsghdr* request, const std::function<void(const nlmsghdr*)>& each) {
    const std::uint32_t requestSeq = request->nlmsg_seq;
    if (mnl_socket_sendto(socket.get(), request, request->nlmsg_len) < 0) {
      return makeError(errnoText(errno));
    }
    for (;;) {
      const ssize_t n = receiveOne(kAckTimeoutMs);
      if (n == 0) return makeError("no answer from the kernel");
      if (n < 0) return makeError(errnoText(errno));
      auto* msg = reinterpret_cast<nlmsghdr*>(rx.data());
      auto len = static_cast<int>(n);
      for (; messageFits(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
        if (msg->nlmsg_seq != requestSeq) continue;
        if (msg->nlmsg_type == NLMSG_DONE) return {};
        if (msg->nlmsg_type == NLMSG_ERROR) {
          if (mnl_cb_run(msg, msg->nlmsg_len, requestSeq, portId, nullptr, nullptr) < 0) {
            return makeError(errnoText(errno));
          }
          continue;
        }
        each(msg);
      }
    }
  }

  // Sends the batch and reads one ack per acked message (nfnetlink processes a
  // batch synchronously inside sendmsg, so they are all queued when send returns).
  // Returns the first failure, if any.
  Result<std::optional<Failure>> talk(const Batch& b) {
    seq = b.endSeq();
    if (mnl_socket_sendto(socket.get(), b.data(), b.size()) < 0) {
      return makeError(std::strerror(errno));
    }
    std::optional<Failure> first;
    std::size_t acks = 0;
    while (acks < b.ackCount()) {
      // Once a message failed the kernel may stop acking the rest (ENOMEM); do not
      // wait for acks that will not come.
      const ssize_t n = receiveOne(first ? 0 : kAckTimeoutMs);
      if (n == 0) {
        if (first) break;
        return makeError("no answer from the kernel for " + std::to_string(b.ackCount() - acks) +
                         " of " + std::to_string(b.ackCount()) + " messages");
      }
      if (n < 0) return makeError(std::strerror(errno));
      auto* nlh = reinterpret_cast<nlmsghdr*>(rx.data());
      auto len = static_cast<int>(n);
      for (; messageFits(nlh, len); nlh = mnl_nlmsg_next(nlh, &len)) {
        const auto what = b.describe(nlh->nlmsg_seq);
        if (!what) continue;  // a late answer to an earlier request: not ours
        // Checks the port id, turns NLMSG_ERROR into errno (0 = ack).
        const int ret = mnl_cb_run(nlh, nlh->nlmsg_len, nlh->nlmsg_seq, portId, nullptr, nullptr);
        if (nlh->nlmsg_type == NLMSG_ERROR) ++acks;
        if (ret < 0 && !first) first = Failure{errno, *what};
      }
    }
    return first;
  }
};

RulesetManager::RulesetManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RulesetManager::~RulesetManager() = default;

Result<std::unique_ptr<RulesetManager>> RulesetManager::open() {
  auto impl = std::make_unique<Impl>();
  impl->socket.reset(mnl_socket_open2(NETLINK_NETFILTER, SOCK_CLOEXEC));
  if (!impl->socket) {
    const int err = errno;
    return makeError("Failed to open 'netlink netfilter socket': " + errnoText(err));
  }
  if (mnl_socket_bind(impl->socket.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
    const int err = errno;
    return makeError("Failed to bind 'netlink netfilter socket': " + errnoText(err));
  }
  impl->portId = mnl_socket_get_portid(impl->socket.get());
  impl->seq = static_cast<std::uint32_t>(
      std::chrono::steady_clock::now().time_since_epoch().count() & 0x7fffffff);
  auto manager = std::unique_ptr<RulesetManager>(new RulesetManager(std::move(impl)));
  // Every nfnetlink request needs CAP_NET_ADMIN: ask a harmless question now so a
  // missing capability shows up at start-up, not at the first apply.
  if (auto probe = manager->exists(rules::kTableName); !probe) {
    const std::string& message = probe.error().message;
    const auto reason = message.find("': ");
    return makeError("Failed to open 'nf_tables netlink': " +
                     (reason == std::string::npos ? message : message.substr(reason + 3)));
  }
  return manager;
}

Result<QueueBackend> RulesetManager::probeQueueBackend() {
  std::string nativeError;
  for (const QueueBackend backend : {QueueBackend::NativeQueue, QueueBackend::XtCompat}) {
    Batch b(impl_->seq);
    if (auto built = buildProbeBatch(b, backend); !built) return built.error();
    auto answer = impl_->talk(b);
    const std::string object = "inet " + std::string(kProbeTable);
    if (!answer) return makeError("Failed to probe '" + object + "': " + answer.error().message);
    if (!answer->has_value()) return backend;
    const Impl::Failure& f = **answer;
    // Only a refused queue rule means "try the other encoding"; anything else (no
    // capability, a foreign table of the probe's name) is the answer.
    if (f.what.find(" rule") == std::string::npos) {
      return makeError("Failed to probe '" + object + "': " + errnoText(f.err) + " (" + f.what +
                       ")");
    }
    if (backend == QueueBackend::NativeQueue) {
      nativeError = std::strerror(f.err);
      continue;
    }
    return makeError("Failed to probe '" + object +
                     "': the kernel accepts neither the nftables queue expression (" + nativeError +
                     ") nor the xtables NFQUEUE target (" + std::strerror(f.err) +
                     "); load nft_queue or xt_NFQUEUE / nft_compat");
  }
  return makeError("unreachable");
}

Result<void> RulesetManager::apply(const rules::Table& table, QueueBackend backend) {
  const std::string object = tableLabel(table.name);
  Batch b(impl_->seq);
  if (auto built = buildApplyBatch(b, table, backend); !built) {
    return makeError("Failed to apply table '" + object + "': " + built.error().message);
  }
  auto answer = impl_->talk(b);
  if (!answer)
    return makeError("Failed to apply table '" + object + "': " + answer.error().message);
  if (answer->has_value()) {
    const Impl::Failure& f = **answer;
    return makeError("Failed to apply table '" + object + "': " + errnoText(f.err) + " (" + f.what +
                     ")");
  }
  return {};
}

Result<void> RulesetManager::remove(const std::string& tableName) {
  const std::string object = tableLabel(tableName);
  Batch b(impl_->seq);
  putDelTable(b, tableName);
  if (auto built = b.finish(); !built) return built.error();
  auto answer = impl_->talk(b);
  if (!answer)
    return makeError("Failed to remove table '" + object + "': " + answer.error().message);
  if (answer->has_value() && (*answer)->err != ENOENT) {
    return makeError("Failed to remove table '" + object + "': " + errnoText((*answer)->err));
  }
  return {};
}

std::uint32_t RulesetManager::portId() const { return impl_->portId; }

namespace {

// libnftnl's debug text of an object (what `nft --debug=netlink` prints).
template <class T, int (*Print)(char*, std::size_t, const T*, std::uint32_t, std::uint32_t)>
std::string printed(const T* object) {
  std::vector<char> text(64 * 1024);
  const int n = Print(text.data(), text.size(), object, NFTNL_OUTPUT_DEFAULT, 0);
  if (n <= 0) return {};
  return std::string(text.data(),
                     std::min<std::size_t>(static_cast<std::size_t>(n), text.size() - 1));
}

// Counter values change with traffic, not with the ruleset.
std::string withoutCounterValues(std::string text) {
  const std::string marker = "[ counter pkts ";
  for (std::size_t at = text.find(marker); at != std::string::npos;
       at = text.find(marker, at + 1)) {
    const auto end = text.find(" ]", at);
    if (end == std::string::npos) break;
    text.replace(at, end - at, "[ counter");
  }
  return text;
}

}  // namespace

Result<std::string> RulesetManager::fingerprint(const std::string& tableName) {
  const std::string object = tableLabel(tableName);
  auto present = exists(tableName);
  if (!present) return present.error();
  if (!present.value()) return std::string();
  std::string out = "table " + object + "\n";
  std::vector<char> buf(kReceiveBuffer);
  auto fail = [&](const Error& e) {
    return makeError("Failed to list table '" + object + "': " + e.message);
  };

  // `nft list chains inet`: every chain of the family; ours are kept.
  nlmsghdr* nlh =
      nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP, impl_->seq++);
  if (auto r = impl_->dump(nlh,
                           [&](const nlmsghdr* m) {
                             NftChainPtr c(checkedAlloc(nftnl_chain_alloc()));
                             if (nftnl_chain_nlmsg_parse(m, c.get()) < 0) return;
                             const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
                             if (table == nullptr || tableName != table) return;
                             for (const auto attr : {NFTNL_CHAIN_HANDLE, NFTNL_CHAIN_USE,
                                                     NFTNL_CHAIN_PACKETS, NFTNL_CHAIN_BYTES}) {
                               nftnl_chain_unset(c.get(), attr);
                             }
                             out += "chain " + printed<nftnl_chain, nftnl_chain_snprintf>(c.get()) +
                                    "\n";
                           });
      !r) {
    return fail(r.error());
  }

  // `nft list sets inet`, then each set's elements.
  std::vector<std::string> sets;
  nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP, impl_->seq++);
  if (auto r = impl_->dump(nlh,
                           [&](const nlmsghdr* m) {
                             NftSetPtr set(checkedAlloc(nftnl_set_alloc()));
                             if (nftnl_set_nlmsg_parse(m, set.get()) < 0) return;
                             const char* table = nftnl_set_get_str(set.get(), NFTNL_SET_TABLE);
                             const char* name = nftnl_set_get_str(set.get(), NFTNL_SET_NAME);
                             if (table == nullptr || name == nullptr || tableName != table) return;
                             sets.emplace_back(name);
                             nftnl_set_unset(set.get(), NFTNL_SET_HANDLE);
                             out +=
                                 "set " + printed<nftnl_set, nftnl_set_snprintf>(set.get()) + "\n";
                           });
      !r) {
    return fail(r.error());
  }
  for (const std::string& name : sets) {
    NftSetPtr set(checkedAlloc(nftnl_set_alloc()));
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, tableName.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP,
                                impl_->seq++);
    nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
    NftSetPtr elements(checkedAlloc(nftnl_set_alloc()));
    if (auto r = impl_->dump(
            nlh, [&](const nlmsghdr* m) { (void)nftnl_set_elems_nlmsg_parse(m, elements.get()); });
        !r) {
      return fail(r.error());
    }
    out += "elements " + name + " " + printed<nftnl_set, nftnl_set_snprintf>(elements.get()) + "\n";
  }

  // `nft list table inet NAME` rules, in chain order.
  NftRulePtr filter = makeRule(tableName, "");
  nftnl_rule_unset(filter.get(), NFTNL_RULE_CHAIN);
  nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP, impl_->seq++);
  nftnl_rule_nlmsg_build_payload(nlh, filter.get());
  if (auto r = impl_->dump(nlh,
                           [&](const nlmsghdr* m) {
                             NftRulePtr rule(checkedAlloc(nftnl_rule_alloc()));
                             if (nftnl_rule_nlmsg_parse(m, rule.get()) < 0) return;
                             const char* table = nftnl_rule_get_str(rule.get(), NFTNL_RULE_TABLE);
                             if (table == nullptr || tableName != table) return;
                             nftnl_rule_unset(rule.get(), NFTNL_RULE_HANDLE);
                             nftnl_rule_unset(rule.get(), NFTNL_RULE_POSITION);
                             out += "rule " +
                                    withoutCounterValues(
                                        printed<nftnl_rule, nftnl_rule_snprintf>(rule.get())) +
                                    "\n";
                           });
      !r) {
    return fail(r.error());
  }
  return out;
}

Result<bool> RulesetManager::exists(const std::string& tableName) {
  const std::string object = tableLabel(tableName);
  const std::uint32_t seq = impl_->seq++;
  std::vector<char> buf(kReceiveBuffer);
  // `nft list table inet NAME` without the contents: GETTABLE, one reply plus ack.
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK, seq);
  auto t = makeTable(tableName);
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  if (mnl_socket_sendto(impl_->socket.get(), nlh, nlh->nlmsg_len) < 0) {
    const int err = errno;
    return makeError("Failed to look up table '" + object + "': " + errnoText(err));
  }
  bool found = false;
  for (;;) {
    const ssize_t n = impl_->receiveOne(kAckTimeoutMs);
    if (n == 0) return makeError("Failed to look up table '" + object + "': no answer");
    if (n < 0) {
      const int err = errno;
      return makeError("Failed to look up table '" + object + "': " + errnoText(err));
    }
    auto* msg = reinterpret_cast<nlmsghdr*>(impl_->rx.data());
    auto len = static_cast<int>(n);
    for (; messageFits(msg, len); msg = mnl_nlmsg_next(msg, &len)) {
      if (msg->nlmsg_seq != seq) continue;
      const int ret = mnl_cb_run(msg, msg->nlmsg_len, seq, impl_->portId, nullptr, nullptr);
      if (msg->nlmsg_type != NLMSG_ERROR) {
        if (ret >= 0) found = true;
        continue;
      }
      if (ret >= 0) return found;
      if (errno == ENOENT) return false;
      const int err = errno;
      return makeError("Failed to look up table '" + object + "': " + errnoText(err));
    }
  }
}

}  // namespace mailguard::netfilter
