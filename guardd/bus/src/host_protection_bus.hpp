#pragma once
// Conversions of the host firewall and audit calls of org.mailguard.Guard1 (issue #6)
// between service:: views and the wire; GuardObject's handlers call these.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "mailguard/dbus/host_wire.hpp"
#include "mailguard/service/guard.hpp"

namespace mailguard::bus {

using AuditTuple =
    std::tuple<std::int64_t, bool, std::string, std::vector<dbus::wire::AuditResult>>;

std::map<std::string, sdbus::Variant> firewallStatusOf(const service::FirewallInfo& info);
std::vector<dbus::wire::Probe> probesOf(const std::vector<store::ProbeRow>& rows);
AuditTuple auditOf(const service::AuditSummary& summary);

// Probes(limit): 0 means 100, at most 1000.
std::size_t probeLimit(std::uint32_t limit);

}  // namespace mailguard::bus
