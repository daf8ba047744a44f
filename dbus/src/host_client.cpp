#include "mailguard/dbus/host_client.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <exception>
#include <map>
#include <tuple>
#include <utility>

#include "call.hpp"
#include "client_errors.hpp"
#include "mailguard/dbus/host_wire.hpp"
#include "mailguard/dbus/names.hpp"

namespace mailguard::dbus {
namespace {

// A person may need to type a password into a polkit agent.
constexpr auto kChangeTimeout = std::chrono::minutes(2);
// An audit probes each listener with a few SMTP dialogues, each bounded by timeouts.
constexpr auto kAuditTimeout = std::chrono::minutes(5);

using StatusMap = std::map<std::string, sdbus::Variant>;

using detail::guarded;
using detail::variantOr;

FirewallStatus toStatus(const StatusMap& m) {
  FirewallStatus s;
  s.enabled = variantOr<bool>(m, "enabled", false);
  for (const auto& w : variantOr<std::vector<wire::FirewallService>>(m, "services", {})) {
    s.services.push_back({w.get<0>(), w.get<1>(), w.get<2>()});
  }
  s.localSubnets = variantOr<std::vector<std::string>>(m, "local_subnets", {});
  s.allowPing = variantOr<bool>(m, "allow_ping", true);
  s.probeReader = variantOr<bool>(m, "probe_reader", false);
  s.probeError = variantOr<std::string>(m, "probe_error", "");
  s.probeEvents = variantOr<std::uint64_t>(m, "probe_events", 0);
  s.probesDropped = variantOr<std::uint64_t>(m, "probes_dropped", 0);
  return s;
}

AuditReport toReport(std::int64_t finished, bool running, const std::string& error,
                     const std::vector<wire::AuditResult>& results) {
  AuditReport report;
  report.finishedUs = finished;
  report.running = running;
  report.error = error;
  for (const auto& w : results) {
    AuditResult r;
    r.family = w.get<0>();
    r.address = w.get<1>();
    r.port = w.get<2>();
    r.exposure = w.get<3>();
    r.pid = w.get<4>();
    r.uid = w.get<5>();
    r.path = w.get<6>();
    r.comm = w.get<7>();
    r.relay = w.get<8>();
    r.accepted = w.get<9>();
    r.reason = w.get<10>();
    r.blockedByFirewall = w.get<11>();
    r.probedAddress = w.get<12>();
    r.ownDomain = w.get<13>();
    r.transcript = w.get<14>();
    for (const auto& f : w.get<15>()) {
      r.findings.push_back(
          {f.get<0>(), f.get<1>(), f.get<2>(), f.get<3>(), f.get<4>(), f.get<5>()});
    }
    report.results.push_back(std::move(r));
  }
  return report;
}

}  // namespace

struct HostClient::Impl {
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<sdbus::IProxy> proxy;

  ~Impl() { proxy.reset(); }  // before the connection it refers to

  template <class... Args>
  StatusMap change(const char* method, const Args&... args) {
    return detail::callWithTimeout<StatusMap>(*proxy, method, kChangeTimeout, args...);
  }

  AuditReport report(const char* method, std::chrono::microseconds timeout) {
    std::int64_t finished = 0;
    bool running = false;
    std::string error;
    std::vector<wire::AuditResult> results;
    proxy->callMethod(method)
        .onInterface(kInterface)
        .withTimeout(timeout)
        .storeResultsTo(finished, running, error, results);
    return toReport(finished, running, error, results);
  }
};

HostClient::HostClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HostClient::~HostClient() = default;

ClientResult<std::unique_ptr<HostClient>> HostClient::connect() {
  auto impl = std::make_unique<Impl>();
  try {
    impl->connection = sdbus::createSystemBusConnection();
    impl->proxy = sdbus::createProxy(*impl->connection, kBusName, kObjectPath);
  } catch (const sdbus::Error& e) {
    return detail::noSystemBus(e);
  }
  return std::unique_ptr<HostClient>(new HostClient(std::move(impl)));
}

ClientResult<FirewallStatus> HostClient::firewallStatus() {
  return guarded([&] {
    StatusMap m;
    impl_->proxy->callMethod("FirewallStatus").onInterface(kInterface).storeResultsTo(m);
    return toStatus(m);
  });
}

ClientResult<EnableResult> HostClient::firewallEnable(bool confirmed) {
  return guarded([&] {
    EnableResult r;
    impl_->proxy->callMethod("FirewallEnable")
        .onInterface(kInterface)
        .withTimeout(kChangeTimeout)
        .withArguments(confirmed)
        .storeResultsTo(r.enabled, r.needsConfirmation, r.warning);
    return r;
  });
}

ClientResult<FirewallStatus> HostClient::firewallDisable() {
  return guarded([&] { return toStatus(impl_->change("FirewallDisable")); });
}

ClientResult<FirewallStatus> HostClient::firewallAllow(const std::string& spec, bool localOnly) {
  return guarded([&] { return toStatus(impl_->change("FirewallAllow", spec, localOnly)); });
}

ClientResult<FirewallStatus> HostClient::firewallRemove(const std::string& name) {
  return guarded([&] { return toStatus(impl_->change("FirewallRemove", name)); });
}

ClientResult<FirewallStatus> HostClient::firewallSetLocalSubnets(
    const std::vector<std::string>& cidrs) {
  return guarded([&] { return toStatus(impl_->change("FirewallSetLocalSubnets", cidrs)); });
}

ClientResult<std::vector<Probe>> HostClient::probes(std::uint32_t limit) {
  return guarded([&] {
    std::vector<wire::Probe> rows;
    impl_->proxy->callMethod("Probes")
        .onInterface(kInterface)
        .withArguments(limit)
        .storeResultsTo(rows);
    std::vector<Probe> out;
    for (const auto& w : rows)
      out.push_back({w.get<0>(), w.get<1>(), w.get<2>(), w.get<3>(), w.get<4>()});
    return out;
  });
}

ClientResult<AuditReport> HostClient::audit() {
  return guarded([&] {
    return impl_->report(
        "Audit", std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::seconds(25)));
  });
}

ClientResult<AuditReport> HostClient::runAudit() {
  return guarded([&] {
    return impl_->report("RunAudit",
                         std::chrono::duration_cast<std::chrono::microseconds>(kAuditTimeout));
  });
}

}  // namespace mailguard::dbus
