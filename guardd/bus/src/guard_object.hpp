#pragma once
// The object at /org/mailguard/Guard1: one handler per method, each taking the caller's
// credentials, converting types, calling one service::Guard method and turning its
// error into a named D-Bus error (STYLE.md section 7). Policy changes are asynchronous
// on the bus side, so waiting for polkit or for the store never stalls the loop.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "authorizer.hpp"
#include "mailguard/dbus/codec.hpp"
#include "mailguard/dbus/generated/guard1_adaptor.h"
#include "mailguard/service/guard.hpp"
#include "pending_replies.hpp"

namespace mailguard::bus {

// A core error as the named D-Bus error the client maps back (dbus/names.hpp).
sdbus::Error toDbusError(const Error& e);

class GuardObject final : public sdbus::AdaptorInterfaces<org::mailguard::Guard1_adaptor> {
 public:
  GuardObject(sdbus::IConnection& connection, service::Guard& guard);
  // Drops the replies still owed before the object (and then the connection) goes.
  ~GuardObject();
  GuardObject(const GuardObject&) = delete;
  GuardObject& operator=(const GuardObject&) = delete;

  void emitAttempt(const store::AttemptRecord& a);
  void emitProgram(const service::ProgramView& p);
  void emitAlert(const store::AlertRecord& a);
  void emitAudit(const service::AuditSummary& s);

 private:
  using VariantMap = dbus::codec::VariantMap;
  using AuditTuple = dbus::codec::AuditTuple;

  VariantMap Status() override;
  std::vector<dbus::wire::Program> Programs() override;
  std::map<std::int64_t, std::uint32_t> ProgramVersionCounts() override;
  std::vector<dbus::wire::ProgramVersion> ProgramVersions(const std::string& target,
                                                          const std::string& script) override;
  std::vector<dbus::wire::Attempt> Attempts(const std::uint32_t& limit,
                                            const std::int64_t& beforeId,
                                            const std::int64_t& programId,
                                            const std::string& verdict, const std::int64_t& since,
                                            const std::int64_t& until) override;
  void Approve(sdbus::Result<dbus::wire::Program>&& result, std::string target,
               std::string script) override;
  void ApproveWithOptions(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                          std::string script, VariantMap options) override;
  std::vector<dbus::wire::Rule> Rules() override;
  void Deny(sdbus::Result<dbus::wire::Program>&& result, std::string target,
            std::string script) override;
  void Forget(sdbus::Result<bool>&& result, std::string target, std::string script) override;
  void DenyWithOptions(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                       std::string script, VariantMap options) override;
  void ForgetWithOptions(sdbus::Result<bool>&& result, std::string target, std::string script,
                         VariantMap options) override;
  std::vector<dbus::wire::Alert> Alerts(const std::uint32_t& limit) override;
  void AckAlert(sdbus::Result<bool>&& result, std::int64_t id) override;
  void Release(sdbus::Result<dbus::wire::Program>&& result, std::string target,
               std::string script) override;
  void Bulk(sdbus::Result<dbus::wire::Program>&& result, std::string target, std::string script,
            std::uint32_t recipients, std::uint32_t hours) override;
  std::string Version() override;
  bool Enforcing() override;
  std::string Backend() override;

  VariantMap FirewallStatus() override;
  void FirewallEnable(sdbus::Result<bool, bool, std::string>&& result, bool confirmed) override;
  void FirewallDisable(sdbus::Result<VariantMap>&& result) override;
  void FirewallAllow(sdbus::Result<VariantMap>&& result, std::string spec, bool localOnly) override;
  void FirewallRemove(sdbus::Result<VariantMap>&& result, std::string name) override;
  void FirewallSetLocalSubnets(sdbus::Result<VariantMap>&& result,
                               std::vector<std::string> cidrs) override;
  std::vector<dbus::wire::Probe> Probes(const std::uint32_t& limit) override;
  AuditTuple Audit() override;
  VariantMap Backscatter() override;
  VariantMap Household() override;
  void ScanHousehold(sdbus::Result<VariantMap>&& result) override;
  std::string Outside() override;
  void RunOutsideCheck(sdbus::Result<std::string>&& result) override;
  void RunAudit(sdbus::Result<std::int64_t, bool, std::string,
                              std::vector<dbus::wire::AuditResult>>&& result) override;

  // Parks the reply, authorizes the caller, then `apply(caller, done)` calls the core;
  // `done` encodes the core's answer with `encode` and replies through the token.
  template <class T, class Reply, class Apply, class Encode>
  void change(std::string what, Reply&& result, Apply apply, Encode encode);

  Caller caller();
  // Encodes a program with its held-message count, for a reply sent later.
  std::function<dbus::wire::Program(const service::ProgramView&)> programEncoder();

  service::Guard& guard_;
  Authorizer authorizer_;
  std::shared_ptr<PendingReplies> pending_ = std::make_shared<PendingReplies>();
};

}  // namespace mailguard::bus
