#pragma once
// Watches nf_tables changes as the kernel announces them to the NFNLGRP_NFTABLES
// multicast group (what `nft monitor` reads), so guardd notices when someone else
// edits or deletes its table.
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::netfilter {

// One notification. The kernel stamps each with the netlink port id of the socket
// whose batch caused it (nlmsg_pid), which tells guardd's own changes from others'.
struct RulesetEvent {
  enum class Kind {
    Change,      // a table, chain, rule, set, element, object or flowtable was added or deleted
    Generation,  // NFT_MSG_NEWGEN: a transaction was committed (and by which process)
  };
  Kind kind = Kind::Change;
  std::uint16_t type = 0;    // NFT_MSG_*
  std::uint8_t family = 0;   // NFPROTO_*
  std::uint32_t portId = 0;  // the sender's netlink port id; 0 for the kernel itself
  std::string table;         // empty for Generation
  std::string object;        // chain, set, object or flowtable name; the chain for a rule
  // Generation only (NFTA_GEN_*): the new generation and the committing process.
  std::uint32_t generation = 0;
  std::optional<std::uint32_t> pid;
  std::string comm;

  // "deleted table", "added rule to chain 'mail_out'", ...
  [[nodiscard]] std::string describe() const;
  // True when this change is to the inet table `name`.
  [[nodiscard]] bool touches(std::string_view name) const;
};

// Every nf_tables notification in one datagram from the group; messages that are not
// nf_tables notifications, or are truncated, are skipped. Pure: unit-tested and fuzzed.
std::vector<RulesetEvent> parseRulesetEvents(std::span<const std::uint8_t> datagram);

class RulesetMonitor {
 public:
  // A non-blocking NETLINK_NETFILTER socket subscribed to NFNLGRP_NFTABLES (needs
  // CAP_NET_ADMIN, like any nf_tables access).
  static Result<std::unique_ptr<RulesetMonitor>> open();
  ~RulesetMonitor();
  RulesetMonitor(const RulesetMonitor&) = delete;
  RulesetMonitor& operator=(const RulesetMonitor&) = delete;

  [[nodiscard]] int fd() const;  // for the event loop (EPOLLIN)

  struct Batch {
    std::vector<RulesetEvent> events;
    // The socket overflowed (ENOBUFS): some notifications were lost, so the caller has
    // to compare the ruleset with what it should be instead of trusting the events.
    bool lost = false;
  };
  // Everything queued now, without blocking.
  Result<Batch> readAvailable();

 private:
  struct Impl;
  explicit RulesetMonitor(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::netfilter
