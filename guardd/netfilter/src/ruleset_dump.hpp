#pragma once
// Reading nf_tables back: whether a table exists and its canonical text. Private to
// guardd/netfilter; RulesetManager::exists / fingerprint call these.
#include <string>

#include "mailguard/rules/result.hpp"
#include "nft_transport.hpp"

namespace mailguard::netfilter {

// True when the inet table `tableName` exists.
Result<bool> tableExists(NftTransport& transport, const std::string& tableName);

// The inet table `tableName` as canonical text (chains, sets with their elements, rules
// in order), without handles and counter values: equal texts mean equal tables. Empty
// when the table does not exist.
Result<std::string> tableFingerprint(NftTransport& transport, const std::string& tableName);

}  // namespace mailguard::netfilter
