// The nftables expressions guardd's rules are made of. What a builder appends is what
// `nft --debug=netlink` shows for the syntax in its comment.
#include "nft_expressions.hpp"

#include <arpa/inet.h>
#include <libnftnl/expr.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/x_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cstdlib>
#include <cstring>

#include "nft_objects.hpp"

namespace mailguard::netfilter::nft {
namespace {

ExprPtr newExpr(const char* name) { return ExprPtr(checkedAlloc(nftnl_expr_alloc(name))); }

// `payload load LEN b @ BASE + OFFSET => reg 1`
void addPayloadLoad(nftnl_rule* r, std::uint32_t base, std::uint32_t offset, std::uint32_t len) {
  auto payload = newExpr("payload");
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_BASE, base);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_OFFSET, offset);
  nftnl_expr_set_u32(payload.get(), NFTNL_EXPR_PAYLOAD_LEN, len);
  nftnl_rule_add_expr(r, payload.release());
}

// `cmp eq reg 1 VALUE`
void addCmpEq(nftnl_rule* r, const void* value, std::uint32_t len) {
  auto cmp = newExpr("cmp");
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, value, len);
  nftnl_rule_add_expr(r, cmp.release());
}

// `lookup reg 1 set NAME` (the set id names a set added earlier in the same batch)
void addLookup(nftnl_rule* r, const std::string& set, std::uint32_t setId) {
  auto lookup = newExpr("lookup");
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SREG, NFT_REG_1);
  nftnl_expr_set_str(lookup.get(), NFTNL_EXPR_LOOKUP_SET, set.c_str());
  nftnl_expr_set_u32(lookup.get(), NFTNL_EXPR_LOOKUP_SET_ID, setId);
  nftnl_rule_add_expr(r, lookup.release());
}

// `meta KEY VALUE`: meta load KEY => reg 1; cmp eq reg 1 VALUE (meta mark: 4 bytes in
// host order; meta l4proto and nfproto: 1 byte; iifname: IFNAMSIZ bytes)
void addMetaCmp(nftnl_rule* r, std::uint32_t key, const void* value, std::uint32_t len) {
  auto meta = newExpr("meta");
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, key);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r, meta.release());
  addCmpEq(r, value, len);
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

// bitwise reg 1 = (reg 1 & MASK) ^ 0: keeps only the bits of a 32-bit value that count.
void addMaskReg1(nftnl_rule* r, std::uint32_t mask) {
  const std::uint32_t zero = 0;
  auto bitwise = newExpr("bitwise");
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(bitwise.get(), NFTNL_EXPR_BITWISE_LEN, sizeof(std::uint32_t));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
  nftnl_expr_set(bitwise.get(), NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
  nftnl_rule_add_expr(r, bitwise.release());
}

}  // namespace

// `ct state established,related` / `ct state new` / `ct state invalid`:
//   ct load state => reg 1; bitwise reg 1 = (reg 1 & MASK) ^ 0; cmp neq reg 1 0
void addCtState(nftnl_rule* r, std::uint32_t mask) {
  auto ct = newExpr("ct");
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_STATE);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r, ct.release());
  addMaskReg1(r, mask);

  const std::uint32_t zero = 0;
  auto cmp = newExpr("cmp");
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(cmp.get(), NFTNL_EXPR_CMP_OP, NFT_CMP_NEQ);
  nftnl_expr_set(cmp.get(), NFTNL_EXPR_CMP_DATA, &zero, sizeof(zero));
  nftnl_rule_add_expr(r, cmp.release());
}

// `meta mark 0x6d670001`: meta load mark => reg 1; cmp eq reg 1 0x6d670001
void addMarkEquals(nftnl_rule* r, std::uint32_t mark) {
  addMetaCmp(r, NFT_META_MARK, &mark, sizeof(mark));
}

// `meta mark & 0x00100000 == 0x00100000`:
//   meta load mark => reg 1; bitwise reg 1 = (reg 1 & 0x00100000) ^ 0; cmp eq reg 1 0x00100000
// Only the one bit counts: the rest of the mark belongs to whoever else marks sockets
// (VPNs, policy routing), and the BPF hook ORs its bit into that.
void addMarkBitSet(nftnl_rule* r, std::uint32_t bit) {
  auto meta = newExpr("meta");
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(meta.get(), NFTNL_EXPR_META_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r, meta.release());
  addMaskReg1(r, bit);
  addCmpEq(r, &bit, sizeof(bit));
}

// `meta l4proto tcp|udp|...`: meta load l4proto => reg 1; cmp eq reg 1 0x06|0x11|...
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

// `tcp dport @mail_ports` / `udp dport @set` (after the l4proto match; tcphdr.dest and
// udphdr.dest are both at offset 2):
//   payload load 2b @ transport header + 2 => reg 1; lookup reg 1 set mail_ports
void addDportLookup(nftnl_rule* r, const std::string& set, std::uint32_t setId) {
  addPayloadLoad(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, sizeof(std::uint16_t));
  addLookup(r, set, setId);
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

// `ct event set 0x0`: immediate reg 1 MASK; ct set event with reg 1 (nft_ct's
// NFT_CT_EVENTMASK: the connection's ecache ctmask; the kernel reports only those events)
void addCtEventMask(nftnl_rule* r, std::uint32_t mask) {
  auto imm = newExpr("immediate");
  nftnl_expr_set_u32(imm.get(), NFTNL_EXPR_IMM_DREG, NFT_REG_1);
  nftnl_expr_set(imm.get(), NFTNL_EXPR_IMM_DATA, &mask, sizeof(mask));
  nftnl_rule_add_expr(r, imm.release());
  auto ct = newExpr("ct");
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_KEY, NFT_CT_EVENTMASK);
  nftnl_expr_set_u32(ct.get(), NFTNL_EXPR_CT_SREG, NFT_REG_1);
  nftnl_rule_add_expr(r, ct.release());
}

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

// `queue num N`, in the encoding the kernel was found to accept (probeQueueBackend)
void addQueue(nftnl_rule* r, std::uint16_t queue, QueueBackend backend) {
  if (backend == QueueBackend::NativeQueue) {
    addNativeQueue(r, queue);
  } else {
    addCompatQueue(r, queue);
  }
}

}  // namespace mailguard::netfilter::nft
