// The batch builder, checked without root by parsing what it builds back with libnftnl
// (the same parsers `nft` uses for what the kernel sends).
#include "mailguard/netfilter/batch.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
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

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "mailguard/common/c_deleter.hpp"
#include "mailguard/netfilter/netlink.hpp"
#include "netns.hpp"  // mailTable(): the table of rules/ruleset.hpp's comment

namespace mailguard::netfilter {
namespace {

using RulePtr = std::unique_ptr<nftnl_rule, CDeleter<nftnl_rule_free>>;
using SetPtr = std::unique_ptr<nftnl_set, CDeleter<nftnl_set_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, CDeleter<nftnl_chain_free>>;
using TablePtr = std::unique_ptr<nftnl_table, CDeleter<nftnl_table_free>>;

constexpr std::uint32_t kFirstSeq = 1000;

// One message of a batch: its nf_tables type (NFT_MSG_*, or the batch begin/end),
// flags, sequence number, and a copy of its bytes for libnftnl's parsers.
struct Message {
  std::uint16_t type = 0;
  std::uint16_t flags = 0;
  std::uint32_t seq = 0;
  std::vector<std::uint8_t> bytes;
  [[nodiscard]] nlmsghdr* nlh() { return reinterpret_cast<nlmsghdr*>(bytes.data()); }
};

std::vector<Message> messagesOf(const NftBatch& batch) {
  std::vector<Message> out;
  auto len = static_cast<int>(batch.bytes.size());
  for (auto* nlh = reinterpret_cast<const nlmsghdr*>(batch.bytes.data()); messageFits(nlh, len);
       nlh = mnl_nlmsg_next(nlh, &len)) {
    Message m;
    m.type = nlh->nlmsg_type;
    m.flags = nlh->nlmsg_flags;
    m.seq = nlh->nlmsg_seq;
    const auto* p = reinterpret_cast<const std::uint8_t*>(nlh);
    m.bytes.assign(p, p + nlh->nlmsg_len);
    out.push_back(std::move(m));
  }
  EXPECT_EQ(len, 0) << "bytes after the last whole message";
  return out;
}

constexpr std::uint16_t nft(std::uint16_t msg) {
  return static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | msg);
}

// The types between BATCH_BEGIN and BATCH_END, checking the framing on the way.
std::vector<std::uint16_t> innerTypes(const NftBatch& batch, std::vector<Message>& messages) {
  messages = messagesOf(batch);
  EXPECT_GE(messages.size(), 2U);
  if (messages.size() < 2) return {};
  EXPECT_EQ(messages.front().type, NFNL_MSG_BATCH_BEGIN);
  EXPECT_EQ(messages.back().type, NFNL_MSG_BATCH_END);
  std::vector<std::uint16_t> types;
  for (std::size_t i = 1; i + 1 < messages.size(); ++i) {
    types.push_back(messages[i].type);
    EXPECT_EQ(messages[i].seq, batch.firstAcked + i - 1) << "message " << i;
    EXPECT_NE(messages[i].flags & NLM_F_ACK, 0) << "message " << i << " is not acked";
  }
  EXPECT_EQ(types.size(), batch.ackCount());
  EXPECT_EQ(batch.endSeq, messages.back().seq + 1);
  return types;
}

RulePtr parseRule(Message& m) {
  RulePtr r(nftnl_rule_alloc());
  EXPECT_EQ(nftnl_rule_nlmsg_parse(m.nlh(), r.get()), 0);
  return r;
}

std::vector<nftnl_expr*> exprsOf(nftnl_rule* r) {
  std::vector<nftnl_expr*> out;
  nftnl_expr_foreach(
      r,
      [](nftnl_expr* e, void* data) {
        static_cast<std::vector<nftnl_expr*>*>(data)->push_back(e);
        return 0;
      },
      &out);
  return out;
}

std::string nameOf(const nftnl_expr* e) { return nftnl_expr_get_str(e, NFTNL_EXPR_NAME); }

std::vector<std::string> namesOf(nftnl_rule* r) {
  std::vector<std::string> names;
  for (auto* e : exprsOf(r)) names.push_back(nameOf(e));
  return names;
}

// The bytes of a cmp's or an element's data.
std::vector<std::uint8_t> dataOf(const nftnl_expr* e, std::uint16_t attr) {
  std::uint32_t len = 0;
  const auto* p = static_cast<const std::uint8_t*>(nftnl_expr_get(e, attr, &len));
  if (p == nullptr) return {};
  return {p, p + len};
}

// The NEWRULE messages of a batch, parsed, in order.
std::vector<RulePtr> rulesOf(std::vector<Message>& messages) {
  std::vector<RulePtr> rules;
  for (auto& m : messages) {
    if (m.type == nft(NFT_MSG_NEWRULE)) rules.push_back(parseRule(m));
  }
  return rules;
}

// The elements of a NEWSETELEM message: key bytes and whether the element ends an
// interval. Walked with libmnl because libnftnl's builder numbers the list's nests
// 1, 2, 3, ... (the kernel does not care) while its parser, nftnl_set_elems_nlmsg_parse,
// accepts only NFTA_LIST_ELEM (1), so it refuses any list of two or more.
struct Element {
  std::vector<std::uint8_t> key;
  bool intervalEnd = false;
};
// The attributes in [begin, begin + len), each checked to fit (mnl_attr_ok).
std::vector<const nlattr*> attrsIn(const void* begin, std::size_t len) {
  std::vector<const nlattr*> out;
  auto left = static_cast<int>(len);
  for (const auto* a = static_cast<const nlattr*>(begin); mnl_attr_ok(a, left);
       a = mnl_attr_next(a)) {
    left -= static_cast<int>(NLA_ALIGN(a->nla_len));
    out.push_back(a);
  }
  return out;
}
std::vector<const nlattr*> nestedIn(const nlattr* a) {
  return attrsIn(mnl_attr_get_payload(a), mnl_attr_get_payload_len(a));
}

std::vector<Element> elementsOf(Message& m) {
  std::vector<Element> out;
  const nlmsghdr* nlh = m.nlh();
  const std::size_t skip = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  for (const nlattr* list : attrsIn(m.bytes.data() + skip, nlh->nlmsg_len - skip)) {
    if (mnl_attr_get_type(list) != NFTA_SET_ELEM_LIST_ELEMENTS) continue;
    for (const nlattr* elem : nestedIn(list)) {
      Element e;
      for (const nlattr* field : nestedIn(elem)) {
        if (mnl_attr_get_type(field) == NFTA_SET_ELEM_FLAGS) {
          e.intervalEnd = (ntohl(mnl_attr_get_u32(field)) & NFT_SET_ELEM_INTERVAL_END) != 0;
        } else if (mnl_attr_get_type(field) == NFTA_SET_ELEM_KEY) {
          for (const nlattr* value : nestedIn(field)) {
            if (mnl_attr_get_type(value) != NFTA_DATA_VALUE) continue;
            const auto* p = static_cast<const std::uint8_t*>(mnl_attr_get_payload(value));
            e.key.assign(p, p + mnl_attr_get_payload_len(value));
          }
        }
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

TEST(NftBatch, ApplyReplacesTheTableInOneTransactionOfAckedMessages) {
  auto batch = buildApplyBatch(testing::mailTable("mgtest", 7), QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  std::vector<Message> messages;
  const auto types = innerTypes(*batch, messages);
  const std::vector<std::uint16_t> expected = {
      nft(NFT_MSG_NEWTABLE),   nft(NFT_MSG_DELTABLE), nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_NEWSET),
      nft(NFT_MSG_NEWSETELEM), nft(NFT_MSG_NEWCHAIN), nft(NFT_MSG_NEWRULE),  nft(NFT_MSG_NEWRULE),
      nft(NFT_MSG_NEWRULE),    nft(NFT_MSG_NEWRULE)};
  EXPECT_EQ(types, expected);
  EXPECT_EQ(messages.front().seq, kFirstSeq);
  EXPECT_EQ(batch->firstAcked, kFirstSeq + 1);
  EXPECT_EQ(batch->describe(batch->firstAcked + 5), "adding chain 'mail_out'");
  EXPECT_EQ(batch->describe(batch->firstAcked + 9), "adding rule 4 to chain 'mail_out'");
  EXPECT_EQ(batch->describe(batch->firstAcked + 10), std::nullopt);
  EXPECT_EQ(batch->describe(kFirstSeq), std::nullopt);

  // Every table message names the inet table of the rules::Table.
  for (const std::size_t i : {1U, 2U, 3U}) {
    TablePtr t(nftnl_table_alloc());
    ASSERT_EQ(nftnl_table_nlmsg_parse(messages[i].nlh(), t.get()), 0);
    EXPECT_STREQ(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME), "mgtest");
    EXPECT_EQ(nftnl_table_get_u32(t.get(), NFTNL_TABLE_FAMILY), NFPROTO_INET);
  }
  EXPECT_NE(messages[1].flags & NLM_F_CREATE, 0);
  EXPECT_EQ(messages[1].flags & NLM_F_EXCL, 0) << "an existing table must be replaced";
}

TEST(NftBatch, PortSetIsInetServiceWithBigEndianPorts) {
  auto batch = buildApplyBatch(testing::mailTable("mgtest", 7), QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  ASSERT_GE(messages.size(), 6U);

  SetPtr set(nftnl_set_alloc());
  ASSERT_EQ(messages[4].type, nft(NFT_MSG_NEWSET));
  ASSERT_EQ(nftnl_set_nlmsg_parse(messages[4].nlh(), set.get()), 0);
  EXPECT_STREQ(nftnl_set_get_str(set.get(), NFTNL_SET_TABLE), "mgtest");
  EXPECT_STREQ(nftnl_set_get_str(set.get(), NFTNL_SET_NAME), "mail_ports");
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_TYPE), 13U);  // inet_service
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_LEN), 2U);
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_ID), 1U);

  ASSERT_EQ(messages[5].type, nft(NFT_MSG_NEWSETELEM));
  std::vector<std::uint16_t> ports;
  for (const Element& e : elementsOf(messages[5])) {
    ASSERT_EQ(e.key.size(), 2U);
    ports.push_back(static_cast<std::uint16_t>(e.key[0] << 8 | e.key[1]));  // big endian
  }
  EXPECT_EQ(ports, (std::vector<std::uint16_t>{25, 465, 587, 2525}));
}

TEST(NftBatch, ChainIsAFilterHookWithItsPriorityAndPolicy) {
  rules::Table table = testing::mailTable("mgtest", 7);
  table.chains.push_back({"host_in", rules::Hook::Input, -5, true, {}});
  table.chains.push_back({"quiet_in", rules::Hook::Prerouting, 0, false, {}});
  auto batch = buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  std::vector<ChainPtr> chains;
  for (auto& m : messagesOf(*batch)) {
    if (m.type != nft(NFT_MSG_NEWCHAIN)) continue;
    chains.emplace_back(nftnl_chain_alloc());
    ASSERT_EQ(nftnl_chain_nlmsg_parse(m.nlh(), chains.back().get()), 0);
  }
  ASSERT_EQ(chains.size(), 3U);
  EXPECT_STREQ(nftnl_chain_get_str(chains[0].get(), NFTNL_CHAIN_NAME), "mail_out");
  EXPECT_STREQ(nftnl_chain_get_str(chains[0].get(), NFTNL_CHAIN_TYPE), "filter");
  EXPECT_EQ(nftnl_chain_get_u32(chains[0].get(), NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_OUT);
  EXPECT_EQ(nftnl_chain_get_s32(chains[0].get(), NFTNL_CHAIN_PRIO), 0);
  EXPECT_EQ(nftnl_chain_get_u32(chains[0].get(), NFTNL_CHAIN_POLICY), NF_ACCEPT);
  EXPECT_STREQ(nftnl_chain_get_str(chains[1].get(), NFTNL_CHAIN_NAME), "host_in");
  EXPECT_EQ(nftnl_chain_get_u32(chains[1].get(), NFTNL_CHAIN_HOOKNUM), NF_INET_LOCAL_IN);
  EXPECT_EQ(nftnl_chain_get_s32(chains[1].get(), NFTNL_CHAIN_PRIO), -5);
  EXPECT_EQ(nftnl_chain_get_u32(chains[1].get(), NFTNL_CHAIN_POLICY), NF_DROP);
  EXPECT_EQ(nftnl_chain_get_u32(chains[2].get(), NFTNL_CHAIN_HOOKNUM), NF_INET_PRE_ROUTING);
}

// `meta l4proto tcp ct state new tcp dport @mail_ports counter queue num 7`, the tail
// shared by both encodings.
void expectQueueRuleMatches(nftnl_rule* r) {
  const auto e = exprsOf(r);
  ASSERT_EQ(namesOf(r), (std::vector<std::string>{"meta", "cmp", "ct", "bitwise", "cmp", "payload",
                                                  "lookup", "counter", nameOf(e.back())}));
  EXPECT_STREQ(nftnl_rule_get_str(r, NFTNL_RULE_CHAIN), "mail_out");
  EXPECT_EQ(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_L4PROTO);
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_CMP_DATA), std::vector<std::uint8_t>{IPPROTO_TCP});
  EXPECT_EQ(nftnl_expr_get_u32(e[2], NFTNL_EXPR_CT_KEY), NFT_CT_STATE);
  std::uint32_t newBit = 1U << 3;  // NF_CT_STATE_BIT(IP_CT_NEW)
  EXPECT_EQ(dataOf(e[3], NFTNL_EXPR_BITWISE_MASK),
            std::vector<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&newBit),
                                      reinterpret_cast<std::uint8_t*>(&newBit) + 4));
  EXPECT_EQ(nftnl_expr_get_u32(e[4], NFTNL_EXPR_CMP_OP), NFT_CMP_NEQ);
  EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_PAYLOAD_BASE), NFT_PAYLOAD_TRANSPORT_HEADER);
  EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_PAYLOAD_OFFSET), 2U);  // tcphdr.dest
  EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_PAYLOAD_LEN), 2U);
  EXPECT_STREQ(nftnl_expr_get_str(e[6], NFTNL_EXPR_LOOKUP_SET), "mail_ports");
  EXPECT_EQ(nftnl_expr_get_u32(e[6], NFTNL_EXPR_LOOKUP_SET_ID), 1U);
}

TEST(NftBatch, QueueRuleUsesTheNativeQueueExpression) {
  auto batch =
      buildApplyBatch(testing::mailTable("mgtest", 7), QueueBackend::NativeQueue, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  auto rules = rulesOf(messages);
  ASSERT_EQ(rules.size(), 4U);
  expectQueueRuleMatches(rules[3].get());
  auto* queue = exprsOf(rules[3].get()).back();
  ASSERT_EQ(nameOf(queue), "queue");
  EXPECT_EQ(nftnl_expr_get_u16(queue, NFTNL_EXPR_QUEUE_NUM), 7);
  EXPECT_EQ(nftnl_expr_get_u16(queue, NFTNL_EXPR_QUEUE_TOTAL), 1);
  // No bypass: without a listener the kernel drops (fail-closed).
  EXPECT_FALSE(nftnl_expr_is_set(queue, NFTNL_EXPR_QUEUE_FLAGS) &&
               (nftnl_expr_get_u16(queue, NFTNL_EXPR_QUEUE_FLAGS) & NFT_QUEUE_FLAG_BYPASS) != 0);
}

TEST(NftBatch, QueueRuleUsesTheXtablesNfqueueTargetRevision3) {
  auto batch = buildApplyBatch(testing::mailTable("mgtest", 7), QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  auto rules = rulesOf(messages);
  ASSERT_EQ(rules.size(), 4U);
  expectQueueRuleMatches(rules[3].get());
  auto* target = exprsOf(rules[3].get()).back();
  ASSERT_EQ(nameOf(target), "target");
  EXPECT_STREQ(nftnl_expr_get_str(target, NFTNL_EXPR_TG_NAME), "NFQUEUE");
  EXPECT_EQ(nftnl_expr_get_u32(target, NFTNL_EXPR_TG_REV), 3U);
  const auto info = dataOf(target, NFTNL_EXPR_TG_INFO);
  ASSERT_EQ(info.size(), XT_ALIGN(sizeof(xt_NFQ_info_v3)));
  xt_NFQ_info_v3 v3{};
  std::memcpy(&v3, info.data(), sizeof(v3));
  EXPECT_EQ(v3.queuenum, 7);
  EXPECT_EQ(v3.queues_total, 1);
  EXPECT_EQ(v3.flags, 0) << "no bypass: fail-closed";
}

TEST(NftBatch, MarkRulesRejectWithTcpResetAndAccept) {
  auto batch = buildApplyBatch(testing::mailTable("mgtest", 7), QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  auto rules = rulesOf(messages);
  ASSERT_EQ(rules.size(), 4U);

  // ct state established,related counter accept
  auto e = exprsOf(rules[0].get());
  ASSERT_EQ(namesOf(rules[0].get()),
            (std::vector<std::string>{"ct", "bitwise", "cmp", "counter", "immediate"}));
  std::uint32_t estRel = (1U << 1) | (1U << 2);
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_BITWISE_MASK),
            std::vector<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&estRel),
                                      reinterpret_cast<std::uint8_t*>(&estRel) + 4));
  EXPECT_EQ(nftnl_expr_get_u32(e[4], NFTNL_EXPR_IMM_VERDICT),
            static_cast<std::uint32_t>(NF_ACCEPT));

  // meta mark 0x6d670001 meta l4proto tcp counter reject with tcp reset
  e = exprsOf(rules[1].get());
  ASSERT_EQ(namesOf(rules[1].get()),
            (std::vector<std::string>{"meta", "cmp", "meta", "cmp", "counter", "reject"}));
  EXPECT_EQ(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_MARK);
  std::uint32_t mark = rules::kMarkReject;  // host order, as the kernel compares it
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_CMP_DATA),
            std::vector<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&mark),
                                      reinterpret_cast<std::uint8_t*>(&mark) + 4));
  EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_REJECT_TYPE), NFT_REJECT_TCP_RST);

  // meta mark 0x6d670002 counter accept
  e = exprsOf(rules[2].get());
  ASSERT_EQ(namesOf(rules[2].get()),
            (std::vector<std::string>{"meta", "cmp", "counter", "immediate"}));
  mark = rules::kMarkAllow;
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_CMP_DATA),
            std::vector<std::uint8_t>(reinterpret_cast<std::uint8_t*>(&mark),
                                      reinterpret_cast<std::uint8_t*>(&mark) + 4));
}

std::vector<std::uint8_t> bytesOf(std::uint32_t v) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&v);
  return {p, p + sizeof(v)};  // host order, as the kernel compares the mark
}

TEST(NftBatch, MarkBitRuleTestsTheOneBitBeforeTheQueueRuleInBothQueueEncodings) {
  constexpr std::uint32_t kBit = 0x00100000;
  for (const QueueBackend backend : {QueueBackend::NativeQueue, QueueBackend::XtCompat}) {
    SCOPED_TRACE(std::string(toString(backend)));
    const rules::Table table =
        rules::buildRuleset(rules::Settings{}, "mgtest", rules::FirewallState{}, kBit);
    auto batch = buildApplyBatch(table, backend, kFirstSeq);
    ASSERT_TRUE(batch) << batch.error().message;
    auto messages = messagesOf(*batch);
    auto rules = rulesOf(messages);
    ASSERT_EQ(rules.size(), 8U) << "six of mail_out, two of quiet_in";

    // meta mark & 0x00100000 == 0x00100000 counter ct event set 0x0 accept:
    //   meta load mark => reg 1; bitwise reg 1 = (reg 1 & BIT) ^ 0; cmp eq reg 1 BIT;
    //   counter; immediate reg 1 0; ct set event with reg 1; immediate reg 0 accept
    // Second, right after established traffic.
    const auto e = exprsOf(rules[1].get());
    ASSERT_EQ(namesOf(rules[1].get()),
              (std::vector<std::string>{"meta", "bitwise", "cmp", "counter", "immediate", "ct",
                                        "immediate"}));
    EXPECT_EQ(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_MARK);
    EXPECT_EQ(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_DREG), NFT_REG_1);
    EXPECT_EQ(nftnl_expr_get_u32(e[1], NFTNL_EXPR_BITWISE_SREG), NFT_REG_1);
    EXPECT_EQ(nftnl_expr_get_u32(e[1], NFTNL_EXPR_BITWISE_DREG), NFT_REG_1);
    EXPECT_EQ(nftnl_expr_get_u32(e[1], NFTNL_EXPR_BITWISE_LEN), 4U);
    EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_BITWISE_MASK), bytesOf(kBit));
    EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_BITWISE_XOR), bytesOf(0));
    EXPECT_EQ(nftnl_expr_get_u32(e[2], NFTNL_EXPR_CMP_SREG), NFT_REG_1);
    EXPECT_EQ(nftnl_expr_get_u32(e[2], NFTNL_EXPR_CMP_OP), static_cast<std::uint32_t>(NFT_CMP_EQ));
    EXPECT_EQ(dataOf(e[2], NFTNL_EXPR_CMP_DATA), bytesOf(kBit));
    EXPECT_EQ(nftnl_expr_get_u32(e[4], NFTNL_EXPR_IMM_DREG), NFT_REG_1);
    EXPECT_EQ(dataOf(e[4], NFTNL_EXPR_IMM_DATA), bytesOf(0));
    EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_CT_KEY), NFT_CT_EVENTMASK);
    EXPECT_EQ(nftnl_expr_get_u32(e[5], NFTNL_EXPR_CT_SREG), NFT_REG_1);
    EXPECT_EQ(nftnl_expr_get_u32(e[6], NFTNL_EXPR_IMM_VERDICT),
              static_cast<std::uint32_t>(NF_ACCEPT));

    // The queue rule follows the verdict marks, in the encoding asked for.
    expectQueueRuleMatches(rules[4].get());
    EXPECT_EQ(nameOf(exprsOf(rules[4].get()).back()),
              backend == QueueBackend::NativeQueue ? "queue" : "target");
    // Last, what is no mail connection: ct state new counter ct event set 0x0 (no verdict).
    EXPECT_EQ(namesOf(rules[5].get()),
              (std::vector<std::string>{"ct", "bitwise", "cmp", "counter", "immediate", "ct"}));
    // Both chains come before the rules.
    EXPECT_EQ(batch->describe(batch->firstAcked + 10), "adding rule 4 to chain 'mail_out'");
    // quiet_in: the same silencing for what comes in, after loopback is let by.
    EXPECT_EQ(namesOf(rules[6].get()),
              (std::vector<std::string>{"meta", "cmp", "counter", "immediate"}));
    EXPECT_EQ(namesOf(rules[7].get()), namesOf(rules[5].get()));
  }
}

TEST(NftBatch, HostRulesPadInterfaceNamesAndMatchUdpAfterItsProtocol) {
  using rules::Match;
  rules::Table table;
  table.name = "mgtest";
  rules::Chain in{"host_in", rules::Hook::Input, 0, true, {}};
  // iifname "lo" accept
  in.rules.push_back(
      {{{Match::Kind::IifnameEquals, 0, "", "lo"}}, {rules::Action::Kind::Accept, 0}, false});
  // udp sport 547 udp dport 546 accept: one `meta l4proto udp` for both
  in.rules.push_back(
      {{{Match::Kind::UdpSportEquals, 547, ""}, {Match::Kind::UdpDportEquals, 546, ""}},
       {rules::Action::Kind::Accept, 0},
       false});
  table.chains.push_back(in);
  auto batch = buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  auto rules = rulesOf(messages);
  ASSERT_EQ(rules.size(), 2U);

  auto e = exprsOf(rules[0].get());
  ASSERT_EQ(namesOf(rules[0].get()), (std::vector<std::string>{"meta", "cmp", "immediate"}));
  EXPECT_EQ(nftnl_expr_get_u32(e[0], NFTNL_EXPR_META_KEY), NFT_META_IIFNAME);
  std::vector<std::uint8_t> lo(IFNAMSIZ, 0);
  lo[0] = 'l';
  lo[1] = 'o';
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_CMP_DATA), lo) << "\"lo\" must not also match \"lo0\"";

  e = exprsOf(rules[1].get());
  ASSERT_EQ(namesOf(rules[1].get()), (std::vector<std::string>{"meta", "cmp", "payload", "cmp",
                                                               "payload", "cmp", "immediate"}));
  EXPECT_EQ(dataOf(e[1], NFTNL_EXPR_CMP_DATA), std::vector<std::uint8_t>{IPPROTO_UDP});
  EXPECT_EQ(nftnl_expr_get_u32(e[2], NFTNL_EXPR_PAYLOAD_OFFSET), 0U);  // udphdr.source
  EXPECT_EQ(dataOf(e[3], NFTNL_EXPR_CMP_DATA), (std::vector<std::uint8_t>{0x02, 0x23}));  // 547
  EXPECT_EQ(nftnl_expr_get_u32(e[4], NFTNL_EXPR_PAYLOAD_OFFSET), 2U);  // udphdr.dest
  EXPECT_EQ(dataOf(e[5], NFTNL_EXPR_CMP_DATA), (std::vector<std::uint8_t>{0x02, 0x22}));  // 546
}

TEST(NftBatch, AddressSetStoresRangesAsIntervals) {
  rules::Table table;
  table.name = "mgtest";
  auto prefix = rules::parsePrefix("10.0.0.0/8");
  ASSERT_TRUE(prefix) << prefix.error().message;
  table.addressSets.push_back({"fw_local_v4", 4, {*prefix}});
  auto batch = buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  auto messages = messagesOf(*batch);
  ASSERT_EQ(messages.size(), 7U);  // begin, 3 table messages, set, elements, end

  SetPtr set(nftnl_set_alloc());
  ASSERT_EQ(nftnl_set_nlmsg_parse(messages[4].nlh(), set.get()), 0);
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_FLAGS) & NFT_SET_INTERVAL, NFT_SET_INTERVAL);
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_TYPE), 7U);  // ipv4_addr
  EXPECT_EQ(nftnl_set_get_u32(set.get(), NFTNL_SET_KEY_LEN), 4U);

  std::vector<std::string> seen;
  for (const Element& e : elementsOf(messages[5])) {
    ASSERT_EQ(e.key.size(), 4U);
    seen.push_back(std::to_string(e.key[0]) + "." + std::to_string(e.key[1]) + "." +
                   std::to_string(e.key[2]) + "." + std::to_string(e.key[3]) +
                   (e.intervalEnd ? " end" : ""));
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"0.0.0.0 end", "10.0.0.0", "11.0.0.0 end"}));
}

TEST(NftBatch, RefusesUnknownOrDuplicateSetsAndAnUnnamedTable) {
  rules::Table table = testing::mailTable("mgtest", 7);
  table.chains[0].rules[3].matches[2].set = "no_such_set";
  auto unknown = buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown set 'no_such_set'"), std::string::npos)
      << unknown.error().message;

  table = testing::mailTable("mgtest", 7);
  table.sets.push_back(table.sets[0]);
  auto duplicate = buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq);
  ASSERT_FALSE(duplicate);
  EXPECT_NE(duplicate.error().message.find("duplicate set 'mail_ports'"), std::string::npos);

  table = testing::mailTable("", 7);
  EXPECT_FALSE(buildApplyBatch(table, QueueBackend::XtCompat, kFirstSeq));
  EXPECT_FALSE(buildRemoveBatch("", kFirstSeq));
}

TEST(NftBatch, ProbeCreatesItsOwnTableExclusivelyAndDeletesItInTheSameBatch) {
  for (const QueueBackend backend : {QueueBackend::NativeQueue, QueueBackend::XtCompat}) {
    auto batch = buildProbeBatch(backend, kFirstSeq);
    ASSERT_TRUE(batch) << batch.error().message;
    std::vector<Message> messages;
    const auto types = innerTypes(*batch, messages);
    EXPECT_EQ(types, (std::vector<std::uint16_t>{nft(NFT_MSG_NEWTABLE), nft(NFT_MSG_NEWCHAIN),
                                                 nft(NFT_MSG_NEWRULE), nft(NFT_MSG_DELTABLE)}));
    ASSERT_EQ(messages.size(), 6U);
    EXPECT_NE(messages[1].flags & NLM_F_EXCL, 0) << "a foreign table of that name must stay";
    TablePtr t(nftnl_table_alloc());
    ASSERT_EQ(nftnl_table_nlmsg_parse(messages[4].nlh(), t.get()), 0);
    EXPECT_STREQ(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME), kProbeTable);
    auto rule = parseRule(messages[3]);
    EXPECT_EQ(namesOf(rule.get()),
              std::vector<std::string>{backend == QueueBackend::NativeQueue ? "queue" : "target"});
    EXPECT_NE(batch->describe(batch->firstAcked + 2)->find(std::string(toString(backend))),
              std::string::npos);
  }
}

TEST(NftBatch, RemoveIsOneTableDeletion) {
  auto batch = buildRemoveBatch("mgtest", kFirstSeq);
  ASSERT_TRUE(batch) << batch.error().message;
  std::vector<Message> messages;
  EXPECT_EQ(innerTypes(*batch, messages), std::vector<std::uint16_t>{nft(NFT_MSG_DELTABLE)});
  ASSERT_EQ(messages.size(), 3U);
  TablePtr t(nftnl_table_alloc());
  ASSERT_EQ(nftnl_table_nlmsg_parse(messages[1].nlh(), t.get()), 0);
  EXPECT_STREQ(nftnl_table_get_str(t.get(), NFTNL_TABLE_NAME), "mgtest");
}

}  // namespace
}  // namespace mailguard::netfilter
