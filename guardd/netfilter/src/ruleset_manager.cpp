// RulesetManager: the batch builder (batch.cpp) and the transport (nft_transport.cpp)
// put together, plus the dump (ruleset_dump.cpp). Only the table named in the
// rules::Table is created, replaced or deleted; the probe uses its own throw-away
// table, created exclusively.
#include "mailguard/netfilter/ruleset_manager.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "nft_transport.hpp"
#include "ruleset_dump.hpp"

namespace mailguard::netfilter {

struct RulesetManager::Impl {
  NftTransport transport;
  // This kernel refused `ct event set` (built without CONFIG_NF_CONNTRACK_EVENTS): every
  // table goes without it from then on.
  bool noConntrackEvents = false;
};

namespace {

std::string tableLabel(const std::string& name) { return "inet " + name; }

bool setsConntrackEvents(const rules::Table& table) {
  for (const auto& chain : table.chains) {
    for (const auto& rule : chain.rules) {
      if (rule.ctEventMask) return true;
    }
  }
  return false;
}

}  // namespace

RulesetManager::RulesetManager(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RulesetManager::~RulesetManager() = default;

Result<std::unique_ptr<RulesetManager>> RulesetManager::open() {
  auto transport = NftTransport::open();
  if (!transport) return transport.error();
  auto manager = std::unique_ptr<RulesetManager>(
      new RulesetManager(std::make_unique<Impl>(Impl{std::move(transport.value())})));
  // Every nfnetlink request needs CAP_NET_ADMIN: ask a harmless question now so a
  // missing capability shows up at start-up, not at the first apply.
  if (auto probe = manager->exists(rules::kTableName); !probe) {
    Error e = probe.error();
    const auto reason = e.message.find("': ");
    e.message = "Failed to open 'nf_tables netlink': " +
                (reason == std::string::npos ? e.message : e.message.substr(reason + 3));
    return e;
  }
  return manager;
}

Result<QueueBackend> RulesetManager::probeQueueBackend() {
  const std::string object = tableLabel(kProbeTable);
  std::string nativeError;
  for (const QueueBackend backend : {QueueBackend::NativeQueue, QueueBackend::XtCompat}) {
    auto batch = buildProbeBatch(backend, impl_->transport.nextSeq());
    if (!batch) return batch.error();
    auto answer = impl_->transport.send(*batch);
    if (!answer) return makeError("Failed to probe '" + object + "': " + answer.error().message);
    if (!answer->has_value()) return backend;
    const NftTransport::Failure& f = **answer;
    // Only a refused queue rule means "try the other encoding"; anything else (no
    // capability, a foreign table of the probe's name) is the answer.
    if (f.what.find(" rule") == std::string::npos) {
      return systemError(
          "Failed to probe '" + object + "': " + nftErrnoText(f.err) + " (" + f.what + ")", f.err);
    }
    if (backend == QueueBackend::NativeQueue) {
      nativeError = std::strerror(f.err);
      continue;
    }
    return systemError("Failed to probe '" + object +
                           "': the kernel accepts neither the nftables queue expression (" +
                           nativeError + ") nor the xtables NFQUEUE target (" +
                           std::strerror(f.err) + "); load nft_queue or xt_NFQUEUE / nft_compat",
                       f.err);
  }
  return makeError("unreachable");
}

Result<void> RulesetManager::apply(const rules::Table& table, QueueBackend backend) {
  if (impl_->noConntrackEvents && setsConntrackEvents(table)) {
    return applyOnce(withoutConntrackEvents(table), backend);
  }
  auto applied = applyOnce(table, backend);
  // `ct event set` only saves wake-ups (guardd's conntrack socket hears less): a kernel
  // without conntrack events has none to save, and enforcing matters more.
  if (!applied && applied.error().sysErrno == EOPNOTSUPP && setsConntrackEvents(table)) {
    auto plain = applyOnce(withoutConntrackEvents(table), backend);
    if (plain) impl_->noConntrackEvents = true;
    return plain;
  }
  return applied;
}

bool RulesetManager::conntrackEventsRefused() const { return impl_->noConntrackEvents; }

rules::Table withoutConntrackEvents(rules::Table table) {
  for (auto& chain : table.chains) {
    for (auto& rule : chain.rules) rule.ctEventMask.reset();
  }
  // A chain that only accepts or goes on, with policy accept, decides nothing: without
  // its masks, quiet_in would cost every inbound packet two rules for nothing.
  std::erase_if(table.chains, [](const rules::Chain& c) {
    return !c.policyDrop && std::all_of(c.rules.begin(), c.rules.end(), [](const rules::Rule& r) {
      return r.action.kind == rules::Action::Kind::Accept ||
             r.action.kind == rules::Action::Kind::Continue;
    });
  });
  return table;
}

Result<void> RulesetManager::applyOnce(const rules::Table& table, QueueBackend backend) {
  const std::string object = tableLabel(table.name);
  auto batch = buildApplyBatch(table, backend, impl_->transport.nextSeq());
  if (!batch) {
    return invalidArgument("Failed to apply table '" + object + "': " + batch.error().message);
  }
  auto answer = impl_->transport.send(*batch);
  if (!answer) {
    Error e = answer.error();
    e.message = "Failed to apply table '" + object + "': " + e.message;
    return e;
  }
  if (answer->has_value()) {
    const NftTransport::Failure& f = **answer;
    return systemError(
        "Failed to apply table '" + object + "': " + nftErrnoText(f.err) + " (" + f.what + ")",
        f.err);
  }
  return {};
}

Result<void> RulesetManager::remove(const std::string& tableName) {
  const std::string object = tableLabel(tableName);
  auto batch = buildRemoveBatch(tableName, impl_->transport.nextSeq());
  if (!batch) {
    return invalidArgument("Failed to remove table '" + object + "': " + batch.error().message);
  }
  auto answer = impl_->transport.send(*batch);
  if (!answer) {
    Error e = answer.error();
    e.message = "Failed to remove table '" + object + "': " + e.message;
    return e;
  }
  if (answer->has_value() && (*answer)->err != ENOENT) {
    return systemError("Failed to remove table '" + object + "': " + nftErrnoText((*answer)->err),
                       (*answer)->err);
  }
  return {};
}

Result<bool> RulesetManager::exists(const std::string& tableName) {
  return tableExists(impl_->transport, tableName);
}

Result<std::string> RulesetManager::fingerprint(const std::string& tableName) {
  return tableFingerprint(impl_->transport, tableName);
}

std::uint32_t RulesetManager::portId() const { return impl_->transport.portId(); }

}  // namespace mailguard::netfilter
