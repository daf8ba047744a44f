// parseRulesetEvents on notifications built byte by byte the way nf_tables sends them
// (nfnetlink header, nfgenmsg, attributes), including malformed lengths.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "mailguard/netfilter/ruleset_monitor.hpp"

namespace mailguard::netfilter {
namespace {

class Datagram {
 public:
  // Starts one message; attributes follow with the put* calls.
  Datagram& message(std::uint16_t type, std::uint8_t family, std::uint32_t portId) {
    current_ = mnl_nlmsg_put_header(buf_.data() + used_);
    current_->nlmsg_type = static_cast<std::uint16_t>((NFNL_SUBSYS_NFTABLES << 8) | type);
    current_->nlmsg_pid = portId;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(current_, sizeof(nfgenmsg)));
    nfg->nfgen_family = family;
    nfg->version = NFNETLINK_V0;
    return *this;
  }
  Datagram& str(std::uint16_t attr, const char* value) {
    mnl_attr_put_strz(current_, attr, value);
    return *this;
  }
  Datagram& u32(std::uint16_t attr, std::uint32_t value) {
    mnl_attr_put_u32(current_, attr, htonl(value));
    return *this;
  }
  Datagram& end() {
    used_ += current_->nlmsg_len;
    return *this;
  }
  [[nodiscard]] std::span<const std::uint8_t> bytes() const {
    return {reinterpret_cast<const std::uint8_t*>(buf_.data()), used_};
  }
  nlmsghdr* last() { return current_; }

 private:
  std::vector<char> buf_ = std::vector<char>(16384);
  std::size_t used_ = 0;
  nlmsghdr* current_ = nullptr;
};

TEST(RulesetMonitorParse, TableDeletionThenGenerationNamesTheProcess) {
  Datagram d;
  d.message(NFT_MSG_DELRULE, NFPROTO_INET, 777)
      .str(NFTA_RULE_TABLE, "mailguard")
      .str(NFTA_RULE_CHAIN, "mail_out")
      .end();
  d.message(NFT_MSG_DELCHAIN, NFPROTO_INET, 777)
      .str(NFTA_CHAIN_TABLE, "mailguard")
      .str(NFTA_CHAIN_NAME, "mail_out")
      .end();
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 777).str(NFTA_TABLE_NAME, "mailguard").end();
  d.message(NFT_MSG_NEWGEN, NFPROTO_UNSPEC, 777)
      .u32(NFTA_GEN_ID, 42)
      .u32(NFTA_GEN_PROC_PID, 4242)
      .str(NFTA_GEN_PROC_NAME, "nft")
      .end();
  const auto events = parseRulesetEvents(d.bytes());
  ASSERT_EQ(events.size(), 4U);
  EXPECT_EQ(events[0].describe(), "deleted rule from chain 'mail_out'");
  EXPECT_EQ(events[1].describe(), "deleted chain 'mail_out'");
  EXPECT_EQ(events[2].describe(), "deleted table");
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(events[i].touches("mailguard"));
    EXPECT_FALSE(events[i].touches("other"));
    EXPECT_EQ(events[i].portId, 777U);
  }
  EXPECT_EQ(events[3].kind, RulesetEvent::Kind::Generation);
  EXPECT_FALSE(events[3].touches("mailguard"));
  EXPECT_EQ(events[3].generation, 42U);
  ASSERT_TRUE(events[3].pid.has_value());
  EXPECT_EQ(*events[3].pid, 4242U);
  EXPECT_EQ(events[3].comm, "nft");
}

TEST(RulesetMonitorParse, ObjectNamesPerMessageType) {
  Datagram d;
  d.message(NFT_MSG_NEWSETELEM, NFPROTO_INET, 1)
      .str(NFTA_SET_ELEM_LIST_TABLE, "mailguard")
      .str(NFTA_SET_ELEM_LIST_SET, "mail_ports")
      .end();
  d.message(NFT_MSG_NEWRULE, NFPROTO_INET, 1)
      .str(NFTA_RULE_TABLE, "mailguard")
      .str(NFTA_RULE_CHAIN, "host_in")
      .end();
  d.message(NFT_MSG_DELSET, NFPROTO_INET, 1)
      .str(NFTA_SET_TABLE, "mailguard")
      .str(NFTA_SET_NAME, "allowed")
      .end();
  const auto events = parseRulesetEvents(d.bytes());
  ASSERT_EQ(events.size(), 3U);
  EXPECT_EQ(events[0].describe(), "added elements to set 'mail_ports'");
  EXPECT_EQ(events[1].describe(), "added rule to chain 'host_in'");
  EXPECT_EQ(events[2].describe(), "deleted set 'allowed'");
}

TEST(RulesetMonitorParse, OtherFamiliesAndTablesDoNotTouchOurs) {
  Datagram d;
  // `ip mailguard` is another table than `inet mailguard`.
  d.message(NFT_MSG_DELTABLE, NFPROTO_IPV4, 5).str(NFTA_TABLE_NAME, "mailguard").end();
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "filter").end();
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "mailguardx").end();
  const auto events = parseRulesetEvents(d.bytes());
  ASSERT_EQ(events.size(), 3U);
  for (const auto& e : events) EXPECT_FALSE(e.touches("mailguard")) << e.table;
}

TEST(RulesetMonitorParse, ControlCharactersInNamesAreNotPassedOn) {
  Datagram d;
  d.message(NFT_MSG_NEWCHAIN, NFPROTO_INET, 5)
      .str(NFTA_CHAIN_TABLE, "mailguard")
      .str(NFTA_CHAIN_NAME, "x\nguardd: info: forged")
      .end();
  const auto events = parseRulesetEvents(d.bytes());
  ASSERT_EQ(events.size(), 1U);
  EXPECT_EQ(events[0].describe().find('\n'), std::string::npos);
}

TEST(RulesetMonitorParse, NonNftablesAndTruncatedMessagesAreSkipped) {
  Datagram d;
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "mailguard").end();
  d.last()->nlmsg_type = (NFNL_SUBSYS_QUEUE << 8) | 0;  // a queue message, not a change
  const auto events = parseRulesetEvents(d.bytes());
  EXPECT_TRUE(events.empty());

  Datagram cut;
  cut.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "mailguard").end();
  auto bytes = cut.bytes();
  EXPECT_TRUE(parseRulesetEvents(bytes.first(bytes.size() - 4)).empty());
  EXPECT_TRUE(parseRulesetEvents(bytes.first(10)).empty());
  EXPECT_TRUE(parseRulesetEvents({}).empty());
}

// mnl_nlmsg_ok alone accepts nlmsg_len >= 2^31 (it compares as int); the parser must
// not step outside the datagram (same bug as the NFLOG reader's, found by fuzzing).
TEST(RulesetMonitorParse, LengthOver2GiBIsRejected) {
  Datagram d;
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "mailguard").end();
  d.message(NFT_MSG_DELTABLE, NFPROTO_INET, 5).str(NFTA_TABLE_NAME, "mailguard").end();
  d.last()->nlmsg_len = 0x80000010U;
  const auto events = parseRulesetEvents(d.bytes());
  EXPECT_EQ(events.size(), 1U);
}

}  // namespace
}  // namespace mailguard::netfilter
