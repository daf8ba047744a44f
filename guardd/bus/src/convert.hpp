#pragma once
// The core's views as the client's plain types (dbus/client.hpp, host_client.hpp), field
// by field and by name; dbus/codec.hpp then puts them on the wire in its one order.
#include <cstdint>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "mailguard/dbus/host_client.hpp"
#include "mailguard/service/guard.hpp"

namespace mailguard::bus {

// Microseconds since the epoch; 0 for "never" (a default TimePoint).
std::int64_t micros(TimePoint t);

dbus::Program toDbus(const service::ProgramView& p);
dbus::Attempt toDbus(const store::AttemptRecord& a);
// As the caller with callerUid may see it: without the command line unless the caller is
// root or ran the program (cmdline_hidden then says so).
dbus::Attempt toDbusFor(const store::AttemptRecord& a, std::uint32_t callerUid);
// For AttemptRecorded, which every local user receives: never with the command line.
dbus::Attempt toDbusBroadcast(const store::AttemptRecord& a);
dbus::Alert toDbus(const store::AlertRecord& a);
dbus::Status toDbus(const service::StatusInfo& s);
dbus::FirewallStatus toDbus(const service::FirewallInfo& info);
dbus::BackscatterStatus toDbus(const service::BackscatterInfo& info);
dbus::HouseholdStatus toDbus(const service::HouseholdInfo& info);
dbus::EnableResult toDbus(const service::EnableOutcome& e);
dbus::Probe toDbus(const store::ProbeRow& r);
dbus::AuditReport toDbus(const service::AuditSummary& summary);

template <class T>
auto toDbusAll(const std::vector<T>& items) {
  std::vector<decltype(toDbus(items.front()))> out;
  out.reserve(items.size());
  for (const auto& i : items) out.push_back(toDbus(i));
  return out;
}

// Probes(limit): 0 means 100, at most 1000.
std::size_t probeLimit(std::uint32_t limit);

}  // namespace mailguard::bus
