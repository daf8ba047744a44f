#pragma once
// Applies and removes the `inet mailguard` table over nfnetlink (libnftnl + libmnl):
// builds a batch (batch.hpp) and sends it through one socket that reads every ack.
// Only the table named in the rules::Table is ever created, replaced or deleted.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "mailguard/netfilter/batch.hpp"  // QueueBackend
#include "mailguard/rules/result.hpp"
#include "mailguard/rules/ruleset.hpp"

namespace mailguard::netfilter {

class RulesetManager {
 public:
  // Opens a NETLINK_NETFILTER socket. Fails with an actionable message when the
  // caller lacks CAP_NET_ADMIN or netlink is refused.
  static Result<std::unique_ptr<RulesetManager>> open();
  ~RulesetManager();
  RulesetManager(const RulesetManager&) = delete;
  RulesetManager& operator=(const RulesetManager&) = delete;

  // Finds out once which queue encoding this kernel accepts (a throw-away table in
  // a batch that is never committed, or created and deleted in one batch).
  Result<QueueBackend> probeQueueBackend();

  // Replaces the table atomically: one batch that adds the table, deletes it (and
  // so everything in it), and adds it again with sets, chains and rules. Either the
  // whole new table is in place afterwards or the old one is untouched.
  // A kernel built without conntrack events refuses the table's `ct event set`
  // (EOPNOTSUPP): the table is applied without it, now and from then on.
  Result<void> apply(const rules::Table& table, QueueBackend backend);
  // True once this kernel refused `ct event set` (guardd says so at start-up).
  [[nodiscard]] bool conntrackEventsRefused() const;

  // Deletes the table; absent already is success.
  Result<void> remove(const std::string& tableName);

  // True when an inet table of that name exists.
  Result<bool> exists(const std::string& tableName);

  // The inet table `tableName` as canonical text (chains, sets with their elements,
  // rules in order), without handles and counter values: equal texts mean equal
  // tables. Empty when the table does not exist. For comparing after lost events.
  Result<std::string> fingerprint(const std::string& tableName);

  // The netlink port id of this manager's socket: the kernel stamps it on the change
  // notifications of every batch sent here, so a RulesetMonitor can tell them apart.
  [[nodiscard]] std::uint32_t portId() const;

 private:
  struct Impl;
  explicit RulesetManager(std::unique_ptr<Impl> impl);
  Result<void> applyOnce(const rules::Table& table, QueueBackend backend);
  std::unique_ptr<Impl> impl_;
};

// `table` without its rules' conntrack event masks (what a kernel without conntrack
// events accepts).
rules::Table withoutConntrackEvents(rules::Table table);

}  // namespace mailguard::netfilter
