#pragma once
// What Guard reports about the host firewall, inbound probes and the mail-server audit,
// as plain data for the D-Bus adaptor.
#include <cstdint>
#include <string>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/firewall.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

struct FirewallInfo {
  rules::FirewallState state;  // what the kernel has now
  bool probeReader = false;    // the NFLOG group is bound (probes are recorded)
  std::string probeError;      // why not, when not
  std::uint64_t probeEvents = 0;
  std::uint64_t probesDropped = 0;  // events for new (source, port) keys while full
};

// The answer to "enable": when the caller looks remote and SSH is not allowed, nothing
// changes unless the caller confirmed.
struct EnableOutcome {
  bool enabled = false;
  bool needsConfirmation = false;
  std::string warning;
};

struct AuditFindingView {
  std::string severity;  // "info", "warning", "critical"
  std::string title;
  std::string fix;
  bool offerBlock = false;
  std::uint16_t port = 0;
  std::string blockCommand;
};

struct AuditEntryView {
  store::AuditRow result;
  std::vector<AuditFindingView> findings;
};

struct AuditSummary {
  TimePoint finished{};  // zero: no audit yet
  bool running = false;
  std::string error;  // the last audit failed (the results are then those of the one before)
  std::vector<AuditEntryView> entries;
};

}  // namespace mailguard::service
