// The batch builder: rules::Table -> nf_tables netlink messages in one mnl batch.
#include "mailguard/netfilter/batch.hpp"

#include <arpa/inet.h>
#include <libmnl/libmnl.h>
#include <libnftnl/common.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>

#include <array>
#include <map>
#include <set>
#include <utility>

#include "nft_expressions.hpp"
#include "nft_objects.hpp"

namespace mailguard::netfilter {
namespace {

using namespace nft;

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

// Writes messages into one mnl batch; finish() hands the bytes over.
class BatchWriter {
 public:
  explicit BatchWriter(std::uint32_t firstSeq)
      : buffer_(kBatchLimit + kBatchSlack),
        batch_(mnl_nlmsg_batch_start(buffer_.data(), kBatchLimit)),
        seq_(firstSeq) {
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    next();
    out_.firstAcked = seq_;
  }
  ~BatchWriter() { mnl_nlmsg_batch_stop(batch_); }
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Starts one acked message; the caller fills in the payload, then calls next().
  nlmsghdr* begin(std::uint16_t type, std::uint16_t flags, std::string what) {
    out_.what.push_back(std::move(what));
    return nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type,
                                 NFPROTO_INET, static_cast<std::uint16_t>(flags | NLM_F_ACK),
                                 seq_++);
  }
  void next() {
    if (!mnl_nlmsg_batch_next(batch_)) overflow_ = true;
  }

  Result<NftBatch> finish() {
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    next();
    if (overflow_) return makeError("the ruleset does not fit in one netlink batch");
    const auto* head = static_cast<const std::uint8_t*>(mnl_nlmsg_batch_head(batch_));
    out_.bytes.assign(head, head + mnl_nlmsg_batch_size(batch_));
    out_.endSeq = seq_;
    return std::move(out_);
  }

 private:
  std::vector<char> buffer_;
  mnl_nlmsg_batch* batch_;
  std::uint32_t seq_;
  NftBatch out_;
  bool overflow_ = false;
};

// `add table inet NAME` (flags: NLM_F_CREATE, or NLM_F_EXCL to refuse an existing one)
void putNewTable(BatchWriter& b, const std::string& name, std::uint16_t flags) {
  auto t = makeTable(name);
  nftnl_table_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWTABLE, flags, "adding table '" + tableLabel(name) + "'"), t.get());
  b.next();
}

// `delete table inet NAME`
void putDelTable(BatchWriter& b, const std::string& name) {
  auto t = makeTable(name);
  nftnl_table_nlmsg_build_payload(
      b.begin(NFT_MSG_DELTABLE, 0, "deleting table '" + tableLabel(name) + "'"), t.get());
  b.next();
}

SetPtr makeSet(const std::string& table, const std::string& name, std::uint32_t setId) {
  SetPtr set(checkedAlloc(nftnl_set_alloc()));
  nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, table.c_str());
  nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
  nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
  nftnl_set_set_u32(set.get(), NFTNL_SET_ID, setId);
  return set;
}

// `add set inet T NAME { type inet_service; }` then
// `add element inet T NAME { 25, 465, ... }`
void putPortSet(BatchWriter& b, const std::string& table, const rules::PortSet& s,
                std::uint32_t setId) {
  auto set = makeSet(table, s.name, setId);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, kTypeInetService);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, sizeof(std::uint16_t));
  nftnl_set_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSET, NLM_F_CREATE, "adding set '" + s.name + "'"), set.get());
  b.next();

  const std::set<std::uint16_t> ports(s.ports.begin(), s.ports.end());
  if (ports.empty()) return;
  for (const std::uint16_t port : ports) {
    SetElemPtr e(checkedAlloc(nftnl_set_elem_alloc()));
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
void putAddressSet(BatchWriter& b, const std::string& table, const rules::AddressSet& s,
                   std::uint32_t setId) {
  const bool v6 = s.family == 6;
  const std::uint32_t len = v6 ? 16 : 4;
  auto set = makeSet(table, s.name, setId);
  nftnl_set_set_u32(set.get(), NFTNL_SET_FLAGS, NFT_SET_INTERVAL);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_TYPE, v6 ? kTypeIpv6Addr : kTypeIpv4Addr);
  nftnl_set_set_u32(set.get(), NFTNL_SET_KEY_LEN, len);
  nftnl_set_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWSET, NLM_F_CREATE, "adding set '" + s.name + "'"), set.get());
  b.next();

  const auto ranges = rules::mergedRanges(s.prefixes, s.family);
  if (ranges.empty()) return;
  auto addElement = [&](const std::array<std::uint8_t, 16>& key, bool end) {
    SetElemPtr e(checkedAlloc(nftnl_set_elem_alloc()));
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

std::uint32_t hookNumber(rules::Hook hook) {
  switch (hook) {
    case rules::Hook::Output:
      return NF_INET_LOCAL_OUT;
    case rules::Hook::Input:
      return NF_INET_LOCAL_IN;
    case rules::Hook::Prerouting:
      return NF_INET_PRE_ROUTING;
  }
  return NF_INET_LOCAL_OUT;
}

// `add chain inet T NAME { type filter hook output|input|prerouting priority P; policy
// accept|drop; }`
void putChain(BatchWriter& b, const std::string& table, const rules::Chain& c) {
  ChainPtr chain(checkedAlloc(nftnl_chain_alloc()));
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, c.name.c_str());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_HOOKNUM, hookNumber(c.hook));
  nftnl_chain_set_s32(chain.get(), NFTNL_CHAIN_PRIO, c.priority);
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_POLICY, c.policyDrop ? NF_DROP : NF_ACCEPT);
  nftnl_chain_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "adding chain '" + c.name + "'"), chain.get());
  b.next();
}

// `add chain inet T NAME` (a regular chain: no hook)
void putRegularChain(BatchWriter& b, const std::string& table, const std::string& name) {
  ChainPtr chain(checkedAlloc(nftnl_chain_alloc()));
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_TABLE, table.c_str());
  nftnl_chain_set_str(chain.get(), NFTNL_CHAIN_NAME, name.c_str());
  nftnl_chain_set_u32(chain.get(), NFTNL_CHAIN_FAMILY, NFPROTO_INET);
  nftnl_chain_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWCHAIN, NLM_F_CREATE, "adding chain '" + name + "'"), chain.get());
  b.next();
}

// `add rule inet T CHAIN ...` (appended: rules keep their order)
void putRule(BatchWriter& b, const RulePtr& r, std::string what) {
  nftnl_rule_nlmsg_build_payload(
      b.begin(NFT_MSG_NEWRULE, NLM_F_APPEND | NLM_F_CREATE, std::move(what)), r.get());
  b.next();
}

// `add rule inet T CHAIN <matches> [counter] <action>`
Result<RulePtr> buildRule(const std::string& table, const std::string& chain,
                          const rules::Rule& rule, QueueBackend backend,
                          const std::map<std::string, std::uint32_t>& setIds) {
  auto r = makeRule(table, chain);
  auto setId = [&](const std::string& set) -> Result<std::uint32_t> {
    const auto it = setIds.find(set);
    if (it == setIds.end()) {
      return makeError("rule in chain '" + chain + "' refers to unknown set '" + set + "'");
    }
    return it->second;
  };
  // The transport header offset means TCP (UDP) only after `meta l4proto tcp` (udp);
  // the match is added once, when a rule needs it and does not say it already.
  int l4proto = -1;
  auto needL4 = [&](std::uint8_t proto) {
    if (l4proto != proto) addL4Proto(r.get(), proto);
    l4proto = proto;
  };
  using Kind = rules::Match::Kind;
  for (const rules::Match& m : rule.matches) {
    switch (m.kind) {
      case Kind::CtStateEstablishedRelated:
        addCtState(r.get(), kCtEstablished | kCtRelated);
        break;
      case Kind::CtStateNew:
        addCtState(r.get(), kCtNew);
        break;
      case Kind::CtStateInvalid:
        addCtState(r.get(), kCtInvalid);
        break;
      case Kind::MarkEquals:
        addMarkEquals(r.get(), m.value);
        break;
      case Kind::MarkBitSet:
        addMarkBitSet(r.get(), m.value);
        break;
      case Kind::IsTcp:
        addL4Proto(r.get(), IPPROTO_TCP);
        l4proto = IPPROTO_TCP;
        break;
      case Kind::L4ProtoEquals:
        addL4Proto(r.get(), static_cast<std::uint8_t>(m.value));
        l4proto = static_cast<int>(m.value);
        break;
      case Kind::TcpDportInSet: {
        auto id = setId(m.set);
        if (!id) return id.error();
        needL4(IPPROTO_TCP);
        addDportLookup(r.get(), m.set, *id);
        break;
      }
      case Kind::TcpDportEquals:
        needL4(IPPROTO_TCP);
        addPortEquals(r.get(), 2, m.value);  // struct tcphdr.dest
        break;
      case Kind::UdpDportInSet: {
        auto id = setId(m.set);
        if (!id) return id.error();
        needL4(IPPROTO_UDP);
        addDportLookup(r.get(), m.set, *id);
        break;
      }
      case Kind::UdpDportEquals:
      case Kind::UdpSportEquals:
        needL4(IPPROTO_UDP);
        // struct udphdr: source at 0, dest at 2
        addPortEquals(r.get(), m.kind == Kind::UdpSportEquals ? 0 : 2, m.value);
        break;
      case Kind::IifnameEquals:
        addIifname(r.get(), m.text);
        break;
      case Kind::IcmpTypeEquals:
      case Kind::Icmpv6TypeEquals:
        addIcmpType(r.get(), m.kind == Kind::Icmpv6TypeEquals, static_cast<std::uint8_t>(m.value));
        break;
      case Kind::Ip4SaddrInSet:
      case Kind::Ip6SaddrInSet: {
        auto id = setId(m.set);
        if (!id) return id.error();
        addSaddrLookup(r.get(), m.kind == Kind::Ip6SaddrInSet, m.set, *id);
        break;
      }
      case Kind::LimitRate:
        addLimit(r.get(), m.value, m.burst);
        break;
    }
  }
  if (rule.counter) addCounter(r.get());
  if (rule.ctEventMask) addCtEventMask(r.get(), *rule.ctEventMask);
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
    case rules::Action::Kind::Continue:
      break;
  }
  return r;
}

}  // namespace

std::string_view toString(QueueBackend b) {
  return b == QueueBackend::NativeQueue ? "nft-queue" : "xt-compat";
}

std::optional<std::string> NftBatch::describe(std::uint32_t seq) const {
  if (seq < firstAcked || seq - firstAcked >= what.size()) return std::nullopt;
  return what[seq - firstAcked];
}

Result<NftBatch> buildApplyBatch(const rules::Table& table, QueueBackend backend,
                                 std::uint32_t firstSeq) {
  if (table.name.empty()) return makeError("the table has no name");
  BatchWriter b(firstSeq);
  putNewTable(b, table.name, NLM_F_CREATE);
  putDelTable(b, table.name);
  putNewTable(b, table.name, NLM_F_CREATE);

  // A rule names a set of the same batch by its id (NFTA_LOOKUP_SET_ID): the set has
  // no handle before the commit.
  std::map<std::string, std::uint32_t> setIds;
  for (const rules::PortSet& s : table.sets) {
    const auto id = static_cast<std::uint32_t>(setIds.size() + 1);
    if (!setIds.emplace(s.name, id).second) return makeError("duplicate set '" + s.name + "'");
    putPortSet(b, table.name, s, id);
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

Result<NftBatch> buildProbeBatch(QueueBackend backend, std::uint32_t firstSeq) {
  BatchWriter b(firstSeq);
  putNewTable(b, kProbeTable, NLM_F_CREATE | NLM_F_EXCL);
  putRegularChain(b, kProbeTable, kProbeChain);
  // `add rule inet mailguard_probe probe queue num 0`
  auto r = makeRule(kProbeTable, kProbeChain);
  addQueue(r.get(), 0, backend);
  putRule(b, r, "adding a " + std::string(toString(backend)) + " rule");
  putDelTable(b, kProbeTable);
  return b.finish();
}

Result<NftBatch> buildRemoveBatch(const std::string& tableName, std::uint32_t firstSeq) {
  if (tableName.empty()) return makeError("the table has no name");
  BatchWriter b(firstSeq);
  putDelTable(b, tableName);
  return b.finish();
}

}  // namespace mailguard::netfilter
