#pragma once
// Owners of libnftnl objects and the small constructors every nf_tables file of this
// library shares (batch builder, dump). Private to guardd/netfilter.
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>

#include <memory>
#include <new>
#include <string>

#include "mailguard/common/c_deleter.hpp"

namespace mailguard::netfilter::nft {

using TablePtr = std::unique_ptr<nftnl_table, CDeleter<nftnl_table_free>>;
using ChainPtr = std::unique_ptr<nftnl_chain, CDeleter<nftnl_chain_free>>;
using SetPtr = std::unique_ptr<nftnl_set, CDeleter<nftnl_set_free>>;
using SetElemPtr = std::unique_ptr<nftnl_set_elem, CDeleter<nftnl_set_elem_free>>;
using RulePtr = std::unique_ptr<nftnl_rule, CDeleter<nftnl_rule_free>>;
using ExprPtr = std::unique_ptr<nftnl_expr, CDeleter<nftnl_expr_free>>;

// libnftnl's allocators return nullptr only when malloc does.
template <class T>
T checkedAlloc(T p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

inline std::string tableLabel(const std::string& name) { return "inet " + name; }

inline TablePtr makeTable(const std::string& name) {
  TablePtr t(checkedAlloc(nftnl_table_alloc()));
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, name.c_str());
  return t;
}

inline RulePtr makeRule(const std::string& table, const std::string& chain) {
  RulePtr r(checkedAlloc(nftnl_rule_alloc()));
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, table.c_str());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain.c_str());
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  return r;
}

}  // namespace mailguard::netfilter::nft
