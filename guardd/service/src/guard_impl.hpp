#pragma once
// Guard's state, shared by the source files of the service (guard.cpp and the files of
// later subsystems). Private to guardd/service: not installed, not included elsewhere.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detection.hpp"  // issue #5
#include "host_protection.hpp"
#include "mailguard/service/guard.hpp"
#include "queue_pressure.hpp"  // issue #8 item 3
#include "tamper.hpp"          // issue #8

namespace mailguard::service {

struct Guard::Impl {
  Impl(Guard& g, Options o, EventLoop& l)
      : self(g), options(std::move(o)), loop(l), resolver(proc, hasher) {}

  Guard& self;  // for the observers, which belong to the public face
  Options options;
  EventLoop& loop;
  SystemClock clock;
  std::unique_ptr<store::SqliteStore> db;
  std::unique_ptr<store::AttemptWriter> writer;
  std::unique_ptr<netfilter::RulesetManager> nft;
  netfilter::QueueBackend backend = netfilter::QueueBackend::XtCompat;
  std::unique_ptr<netfilter::NfqueuePacketSource> queue;
  std::unique_ptr<procinfo::SockDiagSocketTable> sockets;
  procinfo::DirProcFs proc;
  procinfo::FileHasher hasher;
  procinfo::ProcessResolver resolver;

  std::vector<rules::ApprovalRule> approvalRules;
  std::int64_t rulesVersion = -1;
  std::chrono::steady_clock::time_point lastRulesCheck{};
  std::unordered_map<std::int64_t, std::chrono::steady_clock::time_point> sightingSubmitted;
  std::map<std::int64_t, ProgramView> programs;  // by id
  std::unordered_map<std::string, std::int64_t> idByKey;
  std::int64_t nextProgramId = 1;
  std::int64_t nextAttemptId = 1;
  std::map<std::pair<std::string, std::uint16_t>, std::chrono::steady_clock::time_point> held;
  QueuePressure pressure;  // issue #8 item 3: tarpit rejected programs under overload
  std::chrono::steady_clock::time_point lastPressureCheck{};
  std::uint32_t readThisWakeup = 0;  // packets read since the queue socket became readable
  Counters counters;
  bool enforcing = false;
  std::string storeError;
  std::unique_ptr<Detection> detection;  // issue #5
  std::unique_ptr<HostProtection> host;  // issue #6: host firewall, probes, audit
  std::unique_ptr<TamperWatch> tamper;   // issue #8: ruleset tampering

  Result<void> start();
  void reloadRulesIfChanged();
  void onQueueReadable();
  void decide(const netfilter::QueuedPacket& packet);
  // nullopt: keep the uid last seen (0 for a program never seen running).
  ProgramView& remember(const rules::ProgramIdentity& identity, std::optional<std::uint32_t> uid);
  void refreshStates();
  void housekeeping();
  void flushUnsavedAlerts();
  Result<rules::ProgramIdentity> identityFor(const ProgramRef& ref);
  Result<ProgramView> setRule(const ProgramRef& ref, rules::RuleAction action);
  Result<bool> forget(const ProgramRef& ref);
};

// A program's row as the store keeps it.
store::ProgramRecord recordOf(const ProgramView& view, bool quarantined);

}  // namespace mailguard::service
