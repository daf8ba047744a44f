#include "mailguard/dbus/client.hpp"

#include <poll.h>

#include <cerrno>

#include <sdbus-c++/sdbus-c++.h>
#include <chrono>
#include <exception>
#include <filesystem>
#include <system_error>
#include <utility>

#include "call.hpp"
#include "client_errors.hpp"
#include "mailguard/dbus/codec.hpp"
#include "mailguard/dbus/generated/guard1_proxy.h"
#include "mailguard/dbus/names.hpp"

namespace mailguard::dbus {
namespace {

// Approve/Deny/Forget may wait for a person to type a password into a polkit agent.
constexpr auto kPolicyCallTimeout = std::chrono::minutes(2);

}  // namespace

bool systemdRunning() {
  std::error_code ec;
  return std::filesystem::is_directory("/run/systemd/system", ec);
}

std::string notRunningMessage(bool withSystemd) {
  std::string m = "guardd is not running (no org.mailguard.Guard1 on the system bus); ";
  if (withSystemd) return m + "start it with: sudo systemctl start guardd";
  // install/setup.sh runs guardd in the background where there is no systemd.
  return m +
         "this system has no systemd: start it with 'sudo ./install/setup.sh' from the mailguard "
         "sources, or by hand: sudo guardd --config /etc/mailguard/guardd.conf &";
}

// Shared with host_client.cpp (client_errors.hpp).
ClientError fromSdbus(const sdbus::Error& e) {
  const std::string& name = e.getName();
  const std::string& msg = e.getMessage();
  ClientError err{ClientError::Kind::Failed, msg, name};
  if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
      name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    err.kind = ClientError::Kind::NotRunning;
    err.message = notRunningMessage(systemdRunning());
  } else if (name == kErrorNotAuthorized) {
    err.kind = ClientError::Kind::NotAuthorized;
    err.message = msg;  // guardd's reason: what would be allowed (root, polkit, group)
  } else if (name == "org.freedesktop.DBus.Error.AccessDenied") {
    err.kind = ClientError::Kind::NotAuthorized;
    err.message = "not allowed by the system bus policy: " + msg;
  } else if (name == kErrorInvalidArgument) {
    err.kind = ClientError::Kind::InvalidArgument;
    err.message = "invalid argument: " + msg;
  } else if (name == kErrorNotFound) {
    err.kind = ClientError::Kind::NotFound;
    err.message = "not found: " + msg;
  } else if (name == kErrorFailed) {
    err.message = "guardd failed: " + msg;
  } else if (name == "org.freedesktop.DBus.Error.NoReply" ||
             name == "org.freedesktop.DBus.Error.Timeout" ||
             name == "org.freedesktop.DBus.Error.TimedOut") {
    err.message = "guardd did not answer in time (" + msg + ")";
  } else if (name == "org.freedesktop.DBus.Error.UnknownMethod" ||
             name == "org.freedesktop.DBus.Error.UnknownObject" ||
             name == "org.freedesktop.DBus.Error.UnknownInterface") {
    err.message =
        "guardd does not offer this call; is guardd older than this client? (" + msg + ")";
  } else if (name == "org.freedesktop.DBus.Error.Disconnected" ||
             name == "org.freedesktop.DBus.Error.NoServer" ||
             name == "org.freedesktop.DBus.Error.FileNotFound") {
    err.kind = ClientError::Kind::NoBus;
    err.message = "lost the system bus: " + msg;
  } else {
    err.message = name + ": " + msg;
  }
  return err;
}

namespace {

class Guard1Proxy final : public sdbus::ProxyInterfaces<org::mailguard::Guard1_proxy> {
 public:
  explicit Guard1Proxy(sdbus::IConnection& connection)
      : ProxyInterfaces(connection, kBusName, kObjectPath) {
    registerProxy();
  }
  ~Guard1Proxy() { unregisterProxy(); }
  Guard1Proxy(const Guard1Proxy&) = delete;
  Guard1Proxy& operator=(const Guard1Proxy&) = delete;

  std::function<void(const Attempt&)> attemptHandler;
  std::function<void(const Program&)> programHandler;
  std::function<void(const Alert&)> alertHandler;
  std::function<void(const AuditEnded&)> auditHandler;
  std::function<void(const std::string&)> outsideHandler;

  // A policy call with other arguments (AckAlert, Bulk), same timeout.
  template <class R, class... Args>
  R policyCallWith(const char* method, const Args&... args) {
    return detail::callWithTimeout<R>(getProxy(), method, kPolicyCallTimeout, args...);
  }

  // Every policy call sent without waiting for its answer goes through here (guard-tui):
  // the reply, or the error, reaches `done` from processPendingRequest().
  template <class R, class... Args>
  void policyCallAsync(const char* method, std::function<void(const ClientResult<R>&)> done,
                       const Args&... args) {
    // The call is built by hand to carry ALLOW_INTERACTIVE_AUTHORIZATION
    // (mailguard/dbus/raw_message.hpp): the dashboard goes on drawing while polkit asks the user's
    // agent for a password.
    auto reply = [done](sdbus::MethodReply& message, const sdbus::Error* error) {
      if (error != nullptr) {
        done(fromSdbus(*error));
        return;
      }
      R value{};
      try {
        message >> value;
      } catch (const sdbus::Error& e) {
        done(fromSdbus(e));
        return;
      }
      done(std::move(value));
    };
    try {
      auto call = getProxy().createMethodCall(kInterface, method);
      detail::allowInteractiveAuthorization(call);
      ((call << args), ...);
      getProxy().callMethod(
          call, std::move(reply),
          std::chrono::duration_cast<std::chrono::microseconds>(kPolicyCallTimeout).count());
    } catch (const sdbus::Error& e) {
      done(fromSdbus(e));  // not sent at all (the connection broke)
    }
  }

  // Approve/Deny/Forget with a longer timeout than the generated methods use.
  template <class R>
  R policyCall(const char* method, const std::string& target, const std::string& script) {
    return policyCallWith<R>(method, target, script);
  }

 private:
  void onAttemptRecorded(const wire::Attempt& attempt) override {
    if (attemptHandler) attemptHandler(codec::decode(attempt));
  }
  void onProgramChanged(const wire::Program& program) override {
    if (programHandler) programHandler(codec::decode(program));
  }
  void onAlertRaised(const wire::Alert& alert) override {
    if (alertHandler) alertHandler(codec::decode(alert));
  }
  void onAuditFinished(const std::int64_t& finished, const std::string& error,
                       const std::uint32_t& results) override {
    if (auditHandler) auditHandler(AuditEnded{finished, error, results});
  }
  void onOutsideChecked(const std::string& report) override {
    if (outsideHandler) outsideHandler(report);
  }
};

using detail::guarded;

}  // namespace

struct Client::Impl {
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<Guard1Proxy> proxy;
  std::function<void(bool)> ownerHandler;
  sdbus::Slot ownerMatch;  // NameOwnerChanged for our bus name

  ~Impl() {
    ownerMatch.reset();
    proxy.reset();  // before the connection it refers to
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

ClientResult<std::unique_ptr<Client>> Client::connect() {
  auto impl = std::make_unique<Impl>();
  try {
    impl->connection = sdbus::createSystemBusConnection();
    impl->proxy = std::make_unique<Guard1Proxy>(*impl->connection);
  } catch (const sdbus::Error& e) {
    return detail::noSystemBus(e);
  }
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

ClientResult<Status> Client::status() {
  return guarded([&] { return codec::decodeStatus(impl_->proxy->Status()); });
}

ClientResult<std::vector<Program>> Client::programs(bool withVersions) {
  return guarded([&] {
    auto list = codec::decodeAll(impl_->proxy->Programs());
    if (!withVersions) return list;
    try {
      const auto counts = impl_->proxy->ProgramVersionCounts();
      for (auto& p : list) {
        const auto it = counts.find(p.id);
        p.versions = it == counts.end() ? 0 : it->second;  // seen since the list: unknown
      }
      return list;
    } catch (const sdbus::Error& e) {
      // A guardd from before the method: one call per row, as it was then.
      if (e.getName() != "org.freedesktop.DBus.Error.UnknownMethod") throw;
    }
    for (auto& p : list) {
      // A program evicted meanwhile, or a guardd without the method: the count stays
      // unknown (0) and the list is still good.
      try {
        p.versions = static_cast<std::uint32_t>(
            impl_->proxy->ProgramVersions(std::to_string(p.id), {}).size());
      } catch (const sdbus::Error&) {
        p.versions = 0;
      }
    }
    return list;
  });
}

ClientResult<std::vector<ProgramVersion>> Client::programVersions(const std::string& target,
                                                                  const std::string& script) {
  return guarded([&] {
    std::vector<ProgramVersion> out;
    for (const auto& w : impl_->proxy->ProgramVersions(target, script)) {
      out.push_back(ProgramVersion{w.get<0>(), w.get<1>(), w.get<2>(), w.get<3>()});
    }
    return out;
  });
}

ClientResult<std::vector<Attempt>> Client::attempts(const AttemptFilter& f) {
  return guarded([&] {
    return codec::decodeAll(
        impl_->proxy->Attempts(f.limit, f.beforeId, f.programId, f.verdict, f.sinceUs, f.untilUs));
  });
}

ClientResult<Program> Client::approve(const std::string& target, const std::string& script,
                                      const std::vector<std::string>& allowEnv,
                                      const std::vector<std::string>& onlyTo,
                                      const ApproveScope& scope) {
  return guarded([&] {
    if (!allowEnv.empty() || !onlyTo.empty() || scope.user || scope.allUsers || scope.inlineCode) {
      codec::VariantMap options;
      if (!allowEnv.empty()) options.emplace("allow_env", sdbus::Variant(allowEnv));
      if (!onlyTo.empty()) options.emplace("only_to", sdbus::Variant(onlyTo));
      if (scope.user) options.emplace("user", sdbus::Variant(*scope.user));
      if (scope.allUsers) options.emplace("all_users", sdbus::Variant(true));
      if (scope.inlineCode) options.emplace("inline", sdbus::Variant(true));
      return codec::decode(impl_->proxy->policyCallWith<wire::Program>("ApproveWithOptions", target,
                                                                       script, options));
    }
    return codec::decode(impl_->proxy->policyCall<wire::Program>("Approve", target, script));
  });
}

ClientResult<std::vector<Rule>> Client::rules() {
  return guarded([&] { return codec::decodeAll(impl_->proxy->Rules()); });
}

namespace {
codec::VariantMap ruleOptions(const RuleScope& scope) {
  codec::VariantMap options;
  if (scope.inlineCode) options.emplace("inline", sdbus::Variant(true));
  if (scope.user) options.emplace("user", sdbus::Variant(*scope.user));
  return options;
}
}  // namespace

ClientResult<Program> Client::deny(const std::string& target, const std::string& script,
                                   const RuleScope& scope) {
  return guarded([&] {
    if (scope.inlineCode || scope.user) {
      return codec::decode(impl_->proxy->policyCallWith<wire::Program>("DenyWithOptions", target,
                                                                       script, ruleOptions(scope)));
    }
    return codec::decode(impl_->proxy->policyCall<wire::Program>("Deny", target, script));
  });
}

ClientResult<bool> Client::forget(const std::string& target, const std::string& script,
                                  const RuleScope& scope) {
  return guarded([&] {
    if (scope.inlineCode || scope.user) {
      return impl_->proxy->policyCallWith<bool>("ForgetWithOptions", target, script,
                                                ruleOptions(scope));
    }
    return impl_->proxy->policyCall<bool>("Forget", target, script);
  });
}

ClientResult<std::vector<Alert>> Client::alerts(std::uint32_t limit) {
  return guarded([&] { return codec::decodeAll(impl_->proxy->Alerts(limit)); });
}

ClientResult<bool> Client::ackAlert(std::int64_t id) {
  return guarded([&] { return impl_->proxy->policyCallWith<bool>("AckAlert", id); });
}

ClientResult<Program> Client::release(const std::string& target, const std::string& script) {
  return guarded([&] {
    return codec::decode(impl_->proxy->policyCall<wire::Program>("Release", target, script));
  });
}

ClientResult<Program> Client::bulk(const std::string& target, const std::string& script,
                                   std::uint32_t recipients, std::uint32_t hours) {
  return guarded([&] {
    return codec::decode(
        impl_->proxy->policyCallWith<wire::Program>("Bulk", target, script, recipients, hours));
  });
}

void Client::callPolicyAsync(const PolicyCall& call,
                             std::function<void(const ClientResult<PolicyReply>&)> done) {
  auto withProgram = [done](const ClientResult<wire::Program>& r) {
    if (const auto* e = errorOf(r)) return done(*e);
    PolicyReply reply;
    reply.program = codec::decode(std::get<wire::Program>(r));
    done(reply);
  };
  auto withBool = [done](const ClientResult<bool>& r) {
    if (const auto* e = errorOf(r)) return done(*e);
    done(PolicyReply{std::nullopt, std::get<bool>(r)});
  };
  auto& proxy = *impl_->proxy;
  using Method = PolicyCall::Method;
  switch (call.method) {
    case Method::Approve:
      if (!call.allowEnv.empty() || !call.onlyTo.empty()) {
        codec::VariantMap options;
        if (!call.allowEnv.empty()) options.emplace("allow_env", sdbus::Variant(call.allowEnv));
        if (!call.onlyTo.empty()) options.emplace("only_to", sdbus::Variant(call.onlyTo));
        return proxy.policyCallAsync<wire::Program>("ApproveWithOptions", withProgram, call.target,
                                                    call.script, options);
      }
      return proxy.policyCallAsync<wire::Program>("Approve", withProgram, call.target, call.script);
    case Method::Deny:
      return proxy.policyCallAsync<wire::Program>("Deny", withProgram, call.target, call.script);
    case Method::Release:
      return proxy.policyCallAsync<wire::Program>("Release", withProgram, call.target, call.script);
    case Method::Forget:
      return proxy.policyCallAsync<bool>("Forget", withBool, call.target, call.script);
    case Method::AckAlert:
      return proxy.policyCallAsync<bool>("AckAlert", withBool, call.alertId);
  }
}

ClientResult<bool> Client::onGuardOwnerChanged(std::function<void(bool running)> handler) {
  impl_->ownerHandler = std::move(handler);
  if (impl_->ownerMatch) return true;
  return guarded([&] {
    // The bus daemon announces every change of a name's owner (NameOwnerChanged: name,
    // old owner, new owner; an empty new owner means the name was released or its owner
    // disconnected). arg0 narrows the match rule to guardd's name. AddMatch is answered
    // before this returns, so no change after it is missed.
    auto* raw = impl_.get();
    impl_->ownerMatch = impl_->connection->addMatch(
        std::string("type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',"
                    "member='NameOwnerChanged',path='/org/freedesktop/DBus',arg0='") +
            kBusName + "'",
        [raw](sdbus::Message& m) {
          std::string name;
          std::string oldOwner;
          std::string newOwner;
          m >> name >> oldOwner >> newOwner;
          if (name == kBusName && raw->ownerHandler) raw->ownerHandler(!newOwner.empty());
        });
    return true;
  });
}

void Client::onAlertRaised(std::function<void(const Alert&)> handler) {
  impl_->proxy->alertHandler = std::move(handler);
}

void Client::onAuditFinished(std::function<void(const AuditEnded&)> handler) {
  impl_->proxy->auditHandler = std::move(handler);
}

void Client::onOutsideChecked(std::function<void(const std::string&)> handler) {
  impl_->proxy->outsideHandler = std::move(handler);
}

void Client::onAttemptRecorded(std::function<void(const Attempt&)> handler) {
  impl_->proxy->attemptHandler = std::move(handler);
}

void Client::onProgramChanged(std::function<void(const Program&)> handler) {
  impl_->proxy->programHandler = std::move(handler);
}

ClientResult<Client::PollSpec> Client::pollSpec() const {
  return guarded([&] {
    const auto d = impl_->connection->getEventLoopPollData();
    return PollSpec{d.fd, d.events, d.getPollTimeout()};
  });
}

ClientResult<bool> Client::dispatch() {
  return guarded([&] {
    bool any = false;
    while (impl_->connection->processPendingRequest()) any = true;
    return any;
  });
}

ClientResult<bool> Client::waitAndDispatch(int timeoutMs) {
  auto spec = pollSpec();
  if (const auto* e = errorOf(spec)) return *e;
  const auto& s = std::get<PollSpec>(spec);
  int wait = s.timeoutMs;
  if (wait < 0 || (timeoutMs >= 0 && timeoutMs < wait)) wait = timeoutMs;
  pollfd p{s.fd, s.events, 0};
  if (::poll(&p, 1, wait) < 0 && errno != EINTR) {
    return ClientError{ClientError::Kind::Failed, "poll on the bus connection failed", {}};
  }
  return dispatch();
}

}  // namespace mailguard::dbus
