#pragma once
// One builder per nftables expression or match, each appending to a rule what `nft`
// would for the syntax named in its comment. Private to guardd/netfilter; the batch
// builder (batch.cpp) assembles rules from them.
#include <libnftnl/rule.h>

#include <cstdint>
#include <string>

#include "mailguard/netfilter/batch.hpp"

namespace mailguard::netfilter::nft {

// ct state bits as nf_tables sees them (linux/netfilter/nf_conntrack_common.h:
// NF_CT_STATE_BIT(ctinfo) = 1 << (ctinfo + 1), NF_CT_STATE_INVALID_BIT = 1).
inline constexpr std::uint32_t kCtInvalid = 1U << 0;
inline constexpr std::uint32_t kCtEstablished = 1U << 1;
inline constexpr std::uint32_t kCtRelated = 1U << 2;
inline constexpr std::uint32_t kCtNew = 1U << 3;

void addCtState(nftnl_rule* r, std::uint32_t mask);
void addMarkEquals(nftnl_rule* r, std::uint32_t mark);
void addMarkBitSet(nftnl_rule* r, std::uint32_t bit);
void addL4Proto(nftnl_rule* r, std::uint8_t proto);
void addNfproto(nftnl_rule* r, std::uint8_t nfproto);
void addIifname(nftnl_rule* r, const std::string& name);
void addIcmpType(nftnl_rule* r, bool v6, std::uint8_t type);
void addPortEquals(nftnl_rule* r, std::uint32_t offset, std::uint32_t port);
void addDportLookup(nftnl_rule* r, const std::string& set, std::uint32_t setId);
void addSaddrLookup(nftnl_rule* r, bool v6, const std::string& set, std::uint32_t setId);
void addLimit(nftnl_rule* r, std::uint32_t perSecond, std::uint32_t burst);
void addLogGroup(nftnl_rule* r, std::uint16_t group, const std::string& prefix);
void addCounter(nftnl_rule* r);
void addCtEventMask(nftnl_rule* r, std::uint32_t mask);
void addVerdict(nftnl_rule* r, std::uint32_t verdict);
void addRejectTcpReset(nftnl_rule* r);
void addQueue(nftnl_rule* r, std::uint16_t queue, QueueBackend backend);

}  // namespace mailguard::netfilter::nft
