#pragma once
// The one place that knows each wire shape of org.mailguard.Guard1: the order of a
// struct's fields and the keys of an a{sv} map. guardd's adaptor encodes, the client
// decodes, both through these. For the adaptor and the client implementation only:
// it carries sdbus-c++ types, which the client's public headers do not.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "mailguard/dbus/host_client.hpp"
#include "mailguard/dbus/host_wire.hpp"
#include "mailguard/dbus/wire.hpp"

namespace mailguard::dbus::codec {

using VariantMap = std::map<std::string, sdbus::Variant>;

// (xssssusxxxu)
wire::Program encode(const Program& p);
Program decode(const wire::Program& w);

// (xsssssasas)
wire::Rule encode(const Rule& r);
Rule decode(const wire::Rule& w);

// (xxiussssqsqssxsss)
wire::Attempt encode(const Attempt& a);
Attempt decode(const wire::Attempt& w);

// (xxxsussasbs). Alert::kind is not sent: the client reads it from the evidence.
wire::Alert encode(const Alert& a);
Alert decode(const wire::Alert& w);

// Status() -> a{sv}. A key that is missing or of another type decodes to the
// default, so an older guardd still answers a newer client.
VariantMap encodeStatus(const Status& s);
Status decodeStatus(const VariantMap& m);

// FirewallStatus() and the firewall changes -> a{sv}; services are a(sbas).
VariantMap encodeFirewall(const FirewallStatus& s);
FirewallStatus decodeFirewall(const VariantMap& m);

// Backscatter() -> a{sv}.
VariantMap encodeBackscatter(const BackscatterStatus& s);
BackscatterStatus decodeBackscatter(const VariantMap& m);

// ScanHousehold(), Household() -> a{sv}.
VariantMap encodeHousehold(const HouseholdStatus& s);
HouseholdStatus decodeHousehold(const VariantMap& m);

// FirewallEnable -> (bbs)
using EnableTuple = std::tuple<bool, bool, std::string>;
EnableTuple encode(const EnableResult& r);
EnableResult decode(const EnableTuple& t);

// (sqtxx)
wire::Probe encode(const Probe& p);
Probe decode(const wire::Probe& w);

// Audit() and RunAudit() -> (xbsa(...)): finished, running, error, results.
using AuditTuple = std::tuple<std::int64_t, bool, std::string, std::vector<wire::AuditResult>>;
AuditTuple encode(const AuditReport& r);
AuditReport decode(const AuditTuple& t);

template <class T>
auto encodeAll(const std::vector<T>& items) {
  std::vector<decltype(encode(items.front()))> out;
  out.reserve(items.size());
  for (const auto& i : items) out.push_back(encode(i));
  return out;
}

template <class W>
auto decodeAll(const std::vector<W>& items) {
  std::vector<decltype(decode(items.front()))> out;
  out.reserve(items.size());
  for (const auto& w : items) out.push_back(decode(w));
  return out;
}

}  // namespace mailguard::dbus::codec
