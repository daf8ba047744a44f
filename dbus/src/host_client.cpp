#include "mailguard/dbus/host_client.hpp"

#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <exception>
#include <map>
#include <tuple>
#include <utility>

#include "call.hpp"
#include "client_errors.hpp"
#include "mailguard/dbus/codec.hpp"
#include "mailguard/dbus/names.hpp"

namespace mailguard::dbus {
namespace {

// A person may need to type a password into a polkit agent.
constexpr auto kChangeTimeout = std::chrono::minutes(2);
// An audit probes each listener with a few SMTP dialogues, each bounded by timeouts.
constexpr auto kAuditTimeout = std::chrono::minutes(5);

using StatusMap = std::map<std::string, sdbus::Variant>;

using detail::guarded;

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
    codec::AuditTuple t;
    proxy->callMethod(method)
        .onInterface(kInterface)
        .withTimeout(timeout)
        .storeResultsTo(std::get<0>(t), std::get<1>(t), std::get<2>(t), std::get<3>(t));
    return codec::decode(t);
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
    return codec::decodeFirewall(m);
  });
}

ClientResult<EnableResult> HostClient::firewallEnable(bool confirmed) {
  return guarded([&] {
    codec::EnableTuple t;
    // Three reply values, so not callWithTimeout; marked for polkit's prompt the same way.
    auto call = impl_->proxy->createMethodCall(kInterface, "FirewallEnable");
    detail::allowInteractiveAuthorization(call);
    call << confirmed;
    auto reply = impl_->proxy->callMethod(
        call, std::chrono::duration_cast<std::chrono::microseconds>(kChangeTimeout).count());
    reply >> std::get<0>(t) >> std::get<1>(t) >> std::get<2>(t);
    return codec::decode(t);
  });
}

ClientResult<FirewallStatus> HostClient::firewallDisable() {
  return guarded([&] { return codec::decodeFirewall(impl_->change("FirewallDisable")); });
}

ClientResult<FirewallStatus> HostClient::firewallAllow(const std::string& spec, bool localOnly) {
  return guarded(
      [&] { return codec::decodeFirewall(impl_->change("FirewallAllow", spec, localOnly)); });
}

ClientResult<FirewallStatus> HostClient::firewallRemove(const std::string& name) {
  return guarded([&] { return codec::decodeFirewall(impl_->change("FirewallRemove", name)); });
}

ClientResult<FirewallStatus> HostClient::firewallSetLocalSubnets(
    const std::vector<std::string>& cidrs) {
  return guarded(
      [&] { return codec::decodeFirewall(impl_->change("FirewallSetLocalSubnets", cidrs)); });
}

ClientResult<std::vector<Probe>> HostClient::probes(std::uint32_t limit) {
  return guarded([&] {
    std::vector<wire::Probe> rows;
    impl_->proxy->callMethod("Probes")
        .onInterface(kInterface)
        .withArguments(limit)
        .storeResultsTo(rows);
    return codec::decodeAll(rows);
  });
}

ClientResult<BackscatterStatus> HostClient::backscatter() {
  return guarded([&] {
    StatusMap m;
    impl_->proxy->callMethod("Backscatter").onInterface(kInterface).storeResultsTo(m);
    return codec::decodeBackscatter(m);
  });
}

ClientResult<HouseholdStatus> HostClient::household() {
  return guarded([&] {
    StatusMap m;
    impl_->proxy->callMethod("Household").onInterface(kInterface).storeResultsTo(m);
    return codec::decodeHousehold(m);
  });
}

ClientResult<HouseholdStatus> HostClient::scanHousehold() {
  return guarded([&] {
    return codec::decodeHousehold(detail::callWithTimeout<StatusMap>(
        *impl_->proxy, "ScanHousehold",
        std::chrono::duration_cast<std::chrono::microseconds>(kAuditTimeout)));
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

ClientResult<std::string> HostClient::outside() {
  return guarded([&] {
    std::string report;
    impl_->proxy->callMethod("Outside").onInterface(kInterface).storeResultsTo(report);
    return report;
  });
}

ClientResult<std::string> HostClient::runOutside() {
  return guarded([&] {
    // Marked for polkit's prompt like the other changes; the check itself is bounded by
    // its DNS timeouts, well inside the audit's limit.
    return detail::callWithTimeout<std::string>(*impl_->proxy, "RunOutsideCheck", kAuditTimeout);
  });
}

}  // namespace mailguard::dbus
