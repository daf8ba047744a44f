// Dumps of one inet table over nfnetlink (what `nft list table` asks the kernel),
// printed with libnftnl's debug text.
#include "ruleset_dump.hpp"

#include <libnftnl/common.h>
#include <linux/netfilter/nf_tables.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "nft_objects.hpp"

namespace mailguard::netfilter {
namespace {

using namespace nft;

// Room for one request message.
constexpr std::size_t kRequestBuffer = 4096;

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

Result<bool> tableExists(NftTransport& transport, const std::string& tableName) {
  std::vector<char> buf(kRequestBuffer);
  // `nft list table inet NAME` without the contents: GETTABLE, one reply plus ack.
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETTABLE, NFPROTO_INET, NLM_F_ACK,
                                        transport.takeSeq());
  auto t = makeTable(tableName);
  nftnl_table_nlmsg_build_payload(nlh, t.get());
  bool found = false;
  auto r = transport.request(nlh, [&](const nlmsghdr*) { found = true; });
  if (!r) {
    if (r.error().sysErrno == ENOENT) return false;
    Error e = r.error();
    e.message = "Failed to look up table '" + tableLabel(tableName) + "': " + e.message;
    return e;
  }
  return found;
}

Result<std::string> tableFingerprint(NftTransport& transport, const std::string& tableName) {
  const std::string object = tableLabel(tableName);
  auto present = tableExists(transport, tableName);
  if (!present) return present.error();
  if (!present.value()) return std::string();
  std::string out = "table " + object + "\n";
  std::vector<char> buf(kRequestBuffer);
  auto fail = [&](const Error& e) {
    Error failed = e;
    failed.message = "Failed to list table '" + object + "': " + e.message;
    return failed;
  };

  // `nft list chains inet`: every chain of the family; ours are kept.
  nlmsghdr* nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETCHAIN, NFPROTO_INET, NLM_F_DUMP,
                                        transport.takeSeq());
  if (auto r = transport.request(
          nlh,
          [&](const nlmsghdr* m) {
            ChainPtr c(checkedAlloc(nftnl_chain_alloc()));
            if (nftnl_chain_nlmsg_parse(m, c.get()) < 0) return;
            const char* table = nftnl_chain_get_str(c.get(), NFTNL_CHAIN_TABLE);
            if (table == nullptr || tableName != table) return;
            for (const auto attr :
                 {NFTNL_CHAIN_HANDLE, NFTNL_CHAIN_USE, NFTNL_CHAIN_PACKETS, NFTNL_CHAIN_BYTES}) {
              nftnl_chain_unset(c.get(), attr);
            }
            out += "chain " + printed<nftnl_chain, nftnl_chain_snprintf>(c.get()) + "\n";
          });
      !r) {
    return fail(r.error());
  }

  // `nft list sets inet`, then each set's elements.
  std::vector<std::string> sets;
  nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSET, NFPROTO_INET, NLM_F_DUMP,
                              transport.takeSeq());
  if (auto r = transport.request(
          nlh,
          [&](const nlmsghdr* m) {
            SetPtr set(checkedAlloc(nftnl_set_alloc()));
            if (nftnl_set_nlmsg_parse(m, set.get()) < 0) return;
            const char* table = nftnl_set_get_str(set.get(), NFTNL_SET_TABLE);
            const char* name = nftnl_set_get_str(set.get(), NFTNL_SET_NAME);
            if (table == nullptr || name == nullptr || tableName != table) {
              return;
            }
            sets.emplace_back(name);
            nftnl_set_unset(set.get(), NFTNL_SET_HANDLE);
            out += "set " + printed<nftnl_set, nftnl_set_snprintf>(set.get()) + "\n";
          });
      !r) {
    return fail(r.error());
  }
  for (const std::string& name : sets) {
    SetPtr set(checkedAlloc(nftnl_set_alloc()));
    nftnl_set_set_str(set.get(), NFTNL_SET_TABLE, tableName.c_str());
    nftnl_set_set_str(set.get(), NFTNL_SET_NAME, name.c_str());
    nftnl_set_set_u32(set.get(), NFTNL_SET_FAMILY, NFPROTO_INET);
    nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETSETELEM, NFPROTO_INET, NLM_F_DUMP,
                                transport.takeSeq());
    nftnl_set_elems_nlmsg_build_payload(nlh, set.get());
    SetPtr elements(checkedAlloc(nftnl_set_alloc()));
    if (auto r = transport.request(
            nlh, [&](const nlmsghdr* m) { (void)nftnl_set_elems_nlmsg_parse(m, elements.get()); });
        !r) {
      return fail(r.error());
    }
    out += "elements " + name + " " + printed<nftnl_set, nftnl_set_snprintf>(elements.get()) + "\n";
  }

  // `nft list table inet NAME` rules, in chain order.
  RulePtr filter = makeRule(tableName, "");
  nftnl_rule_unset(filter.get(), NFTNL_RULE_CHAIN);
  nlh = nftnl_nlmsg_build_hdr(buf.data(), NFT_MSG_GETRULE, NFPROTO_INET, NLM_F_DUMP,
                              transport.takeSeq());
  nftnl_rule_nlmsg_build_payload(nlh, filter.get());
  if (auto r = transport.request(
          nlh,
          [&](const nlmsghdr* m) {
            RulePtr rule(checkedAlloc(nftnl_rule_alloc()));
            if (nftnl_rule_nlmsg_parse(m, rule.get()) < 0) return;
            const char* table = nftnl_rule_get_str(rule.get(), NFTNL_RULE_TABLE);
            if (table == nullptr || tableName != table) return;
            nftnl_rule_unset(rule.get(), NFTNL_RULE_HANDLE);
            nftnl_rule_unset(rule.get(), NFTNL_RULE_POSITION);
            out += "rule " +
                   withoutCounterValues(printed<nftnl_rule, nftnl_rule_snprintf>(rule.get())) +
                   "\n";
          });
      !r) {
    return fail(r.error());
  }
  return out;
}

}  // namespace mailguard::netfilter
