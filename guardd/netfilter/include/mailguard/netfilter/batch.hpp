#pragma once
// One nf_tables transaction as the bytes of one netlink batch (NFNL_MSG_BATCH_BEGIN,
// the messages, NFNL_MSG_BATCH_END), built from the ruleset-as-data. Pure: owns no
// socket, so what it builds is unit-tested by parsing it back with libnftnl; the
// transport inside RulesetManager sends it and reads one ack per message.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"
#include "mailguard/rules/ruleset.hpp"

namespace mailguard::netfilter {

// How the queue rule is encoded: the native nftables `queue` expression, or the
// xtables-compat NFQUEUE target (revision 3, struct xt_NFQ_info_v3) for kernels
// built without CONFIG_NFT_QUEUE.
enum class QueueBackend { NativeQueue, XtCompat };
std::string_view toString(QueueBackend b);  // "nft-queue", "xt-compat"

// The throw-away table of the queue probe (and its one chain).
inline constexpr const char* kProbeTable = "mailguard_probe";
inline constexpr const char* kProbeChain = "probe";

struct NftBatch {
  std::vector<std::uint8_t> bytes;  // the datagram to send
  // Every message between BEGIN and END asks for an ack (NLM_F_ACK); they carry the
  // sequence numbers firstAcked, firstAcked + 1, ... and what[i] says what message i
  // does, for error messages ("adding chain 'mail_out'").
  std::uint32_t firstAcked = 0;
  std::vector<std::string> what;
  std::uint32_t endSeq = 0;  // the first sequence number after the batch

  [[nodiscard]] std::size_t ackCount() const { return what.size(); }
  // What message `seq` did; nullopt when it is not one of this batch's.
  [[nodiscard]] std::optional<std::string> describe(std::uint32_t seq) const;
};

// Replaces the inet table `table.name` atomically: NEWTABLE (creates it when absent, so
// the DELTABLE cannot fail), DELTABLE (drops the old contents), NEWTABLE, the sets with
// their elements, the chains, the rules in order. The kernel commits all or nothing.
// Fails when a rule names an unknown set, two sets share a name, the table has no
// name, or the batch would not fit in one netlink send.
Result<NftBatch> buildApplyBatch(const rules::Table& table, QueueBackend backend,
                                 std::uint32_t firstSeq);

// The queue probe: table kProbeTable created exclusively (a foreign table of that name
// is never touched), chain kProbeChain, one `queue num 0` rule in `backend`'s
// encoding, the table deleted again: the kernel validates the rule (loading modules)
// and nothing stays behind.
Result<NftBatch> buildProbeBatch(QueueBackend backend, std::uint32_t firstSeq);

// `delete table inet NAME`.
Result<NftBatch> buildRemoveBatch(const std::string& tableName, std::uint32_t firstSeq);

}  // namespace mailguard::netfilter
