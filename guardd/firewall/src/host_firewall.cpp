#include "mailguard/firewall/host_firewall.hpp"

#include <utility>

namespace mailguard::firewall {

HostFirewall::HostFirewall(TableApplier& applier, rules::Settings settings, std::string tableName,
                           rules::FirewallState initial, std::uint32_t acceptMarkBit)
    : applier_(applier),
      settings_(std::move(settings)),
      tableName_(std::move(tableName)),
      state_(std::move(initial)),
      acceptMarkBit_(acceptMarkBit) {}

rules::Table HostFirewall::table() const {
  return rules::buildRuleset(settings_, tableName_, state_, acceptMarkBit_);
}

Result<void> HostFirewall::applyCurrent() { return applier_.apply(table()); }

Result<void> HostFirewall::setSettings(rules::Settings settings) {
  if (auto applied =
          applier_.apply(rules::buildRuleset(settings, tableName_, state_, acceptMarkBit_));
      !applied) {
    return applied;
  }
  settings_ = std::move(settings);
  return {};
}

Result<void> HostFirewall::setAcceptMarkBit(std::uint32_t bit) {
  if (auto applied = applier_.apply(rules::buildRuleset(settings_, tableName_, state_, bit));
      !applied) {
    return applied;
  }
  acceptMarkBit_ = bit;
  return {};
}

Result<void> HostFirewall::setState(rules::FirewallState next) {
  // The kernel replaces the table atomically: on failure the old table, and so the
  // old state, stays in force.
  if (auto applied =
          applier_.apply(rules::buildRuleset(settings_, tableName_, next, acceptMarkBit_));
      !applied) {
    return applied;
  }
  state_ = std::move(next);
  return {};
}

Result<void> HostFirewall::enable() {
  rules::FirewallState next = state_;
  next.enabled = true;
  return setState(std::move(next));
}

Result<void> HostFirewall::disable() {
  rules::FirewallState next = state_;
  next.enabled = false;
  return setState(std::move(next));
}

Result<void> HostFirewall::allow(std::string_view spec, bool localOnly) {
  auto service = rules::parseService(spec, localOnly);
  if (!service) return service.error();
  return setState(rules::withService(state_, std::move(*service)));
}

Result<void> HostFirewall::remove(std::string_view name) {
  auto next = rules::withoutService(state_, name);
  if (!next) return next.error();
  return setState(std::move(*next));
}

Result<void> HostFirewall::setLocalSubnets(const std::vector<std::string>& cidrs) {
  auto next = rules::withLocalSubnets(state_, cidrs);
  if (!next) return next.error();
  return setState(std::move(*next));
}

}  // namespace mailguard::firewall
