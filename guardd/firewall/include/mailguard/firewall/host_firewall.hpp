#pragma once
// The host firewall's state machine: every change (enable, disable, allow, remove,
// local subnets) builds the whole `inet mailguard` table for the new state and applies
// it in one atomic batch; the new state is kept only when the kernel took the table,
// so state() always describes what is in the kernel.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/rules/firewall.hpp"
#include "mailguard/rules/result.hpp"
#include "mailguard/rules/ruleset.hpp"
#include "mailguard/rules/settings.hpp"

namespace mailguard::firewall {

// Where tables go: the kernel (RulesetManager) or a test double.
class TableApplier {
 public:
  virtual ~TableApplier() = default;
  virtual Result<void> apply(const rules::Table& table) = 0;
};

class KernelTableApplier final : public TableApplier {
 public:
  KernelTableApplier(netfilter::RulesetManager& manager, netfilter::QueueBackend backend)
      : manager_(manager), backend_(backend) {}
  Result<void> apply(const rules::Table& table) override { return manager_.apply(table, backend_); }

 private:
  netfilter::RulesetManager& manager_;
  netfilter::QueueBackend backend_;
};

class HostFirewall {
 public:
  // acceptMarkBit: the socket-mark bit of kernel-approved connections (BPF connect hooks
  // in force), kept in every table this builds, so firewall changes and tamper restores
  // keep the rule; 0 = no such rule (the /proc attribution path).
  HostFirewall(TableApplier& applier, rules::Settings settings,
               std::string tableName = rules::kTableName, rules::FirewallState initial = {},
               std::uint32_t acceptMarkBit = 0);

  [[nodiscard]] const rules::FirewallState& state() const { return state_; }
  [[nodiscard]] std::uint32_t acceptMarkBit() const { return acceptMarkBit_; }
  // The table for the current state (what apply() last installed).
  [[nodiscard]] rules::Table table() const;

  // Installs the table for the current state (start-up, or after the settings changed).
  Result<void> applyCurrent();
  Result<void> setSettings(rules::Settings settings);
  // Adds (bit != 0) or removes (0) the mark-bit rule, when the daemon's attribution path
  // changes (BPF hooks attached or gone); kept only when the kernel took the table.
  Result<void> setAcceptMarkBit(std::uint32_t bit);

  Result<void> enable();
  Result<void> disable();
  // spec: "ssh", "8080/tcp", ... (rules::parseService).
  Result<void> allow(std::string_view spec, bool localOnly);
  Result<void> remove(std::string_view name);
  Result<void> setLocalSubnets(const std::vector<std::string>& cidrs);
  // Any other change: applied as a whole, or not at all.
  Result<void> setState(rules::FirewallState next);

 private:
  TableApplier& applier_;
  rules::Settings settings_;
  std::string tableName_;
  rules::FirewallState state_;
  std::uint32_t acceptMarkBit_;
};

}  // namespace mailguard::firewall
