#include "mailguard/bus/bus_adaptor.hpp"

#include <sys/epoll.h>

#include <sdbus-c++/sdbus-c++.h>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <utility>

#include "host_protection_bus.hpp"
#include "mailguard/dbus/generated/guard1_adaptor.h"
#include "mailguard/dbus/names.hpp"
#include "mailguard/dbus/wire.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/service/log.hpp"
#include "validate.hpp"

namespace mailguard::bus {
namespace {

using service::Done;

namespace wire = dbus::wire;

constexpr auto kReconnectPeriod = std::chrono::milliseconds(1000);
// Bus messages handled per wake-up, so a flood of calls cannot starve the verdict
// queue; sd-bus reports a zero timeout while more are queued, so none is lost.
constexpr int kMaxMessagesPerWake = 64;
// A person may need this long to answer a polkit password prompt; guardctl waits 2 min.
constexpr auto kPolkitTimeout = std::chrono::seconds(110);
constexpr std::uint32_t kPolkitAllowUserInteraction = 1;

std::int64_t micros(TimePoint t) {
  if (t == TimePoint{}) return 0;
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

wire::Program toWire(const service::ProgramView& p) {
  return wire::Program{p.id,
                       p.identity.path,
                       p.identity.sha256,
                       p.identity.scriptPath,
                       p.identity.scriptSha256,
                       p.uid,
                       std::string(rules::toString(p.state)),
                       p.attempts,
                       micros(p.lastAttempt),
                       micros(p.firstSeen)};
}

wire::Attempt toWire(const store::AttemptRecord& a) {
  return wire::Attempt{a.id,
                       micros(a.time),
                       static_cast<std::int32_t>(a.pid),
                       a.uid,
                       a.path,
                       a.scriptPath,
                       a.cmdline,
                       a.src,
                       a.srcPort,
                       a.dst,
                       a.dstPort,
                       std::string(rules::toString(a.verdict)),
                       a.reason,
                       a.programId.value_or(0)};
}

wire::Alert toWire(const store::AlertRecord& a) {
  return wire::Alert{a.id,      micros(a.time), a.programId.value_or(0), a.path,    a.uid, a.tier,
                     a.summary, a.reasons,      a.acknowledged,          a.evidence};
}

sdbus::Error toDbus(const Error& e) {
  switch (e.code) {
    case Errc::InvalidArgument:
      return sdbus::Error(dbus::kErrorInvalidArgument, e.message);
    case Errc::NotFound:
      return sdbus::Error(dbus::kErrorNotFound, e.message);
    case Errc::NotAuthorized:
      return sdbus::Error(dbus::kErrorNotAuthorized, e.message);
    case Errc::Failed:
      break;
  }
  return sdbus::Error(dbus::kErrorFailed, e.message);
}

// Who called: the bus daemon's word for uid and pid (from SO_PEERCRED when the caller
// connected), so a caller cannot claim to be someone else.
struct Caller {
  std::uint32_t uid = 0;
  std::int32_t pid = 0;
  std::string sender;  // unique bus name, the polkit subject
  std::string comm;    // for the log only

  [[nodiscard]] std::string describe() const {
    return "uid " + std::to_string(uid) + " pid " + std::to_string(pid) + " (" + log::quote(comm) +
           ", " + sender + ")";
  }
};

std::string commOf(std::int32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm.empty() ? "?" : comm;
}

}  // namespace

// The object at /org/mailguard/Guard1. Each handler: convert, validate, call one
// Guard method, map its error (STYLE.md section 7). Mutations are asynchronous on the
// bus side so that waiting for polkit never stalls the loop (and so the verdicts).
class GuardObject final : public sdbus::AdaptorInterfaces<org::mailguard::Guard1_adaptor> {
 public:
  GuardObject(sdbus::IConnection& connection, service::Guard& guard)
      : AdaptorInterfaces(connection, dbus::kObjectPath),
        guard_(guard),
        polkit_(sdbus::createProxy(connection, "org.freedesktop.PolicyKit1",
                                   "/org/freedesktop/PolicyKit1/Authority")) {
    registerAdaptor();
  }
  ~GuardObject() { unregisterAdaptor(); }
  GuardObject(const GuardObject&) = delete;
  GuardObject& operator=(const GuardObject&) = delete;

  void emitAttempt(const store::AttemptRecord& a) { emitAttemptRecorded(toWire(a)); }
  void emitProgram(const service::ProgramView& p) { emitProgramChanged(toWire(p)); }
  void emitAlert(const store::AlertRecord& a) { emitAlertRaised(toWire(a)); }
  void emitAudit(const service::AuditSummary& s) {
    emitAuditFinished(micros(s.finished), s.error, static_cast<std::uint32_t>(s.entries.size()));
  }

 private:
  std::map<std::string, sdbus::Variant> Status() override {
    const auto s = guard_.status();
    return {
        {"enforcing", sdbus::Variant(s.enforcing)},
        {"backend", sdbus::Variant(s.backend)},
        {"version", sdbus::Variant(s.version)},
        {"allowed", sdbus::Variant(s.counters.allowed)},
        {"held", sdbus::Variant(s.counters.held)},
        {"rejected", sdbus::Variant(s.counters.rejected)},
        {"queue_dropped", sdbus::Variant(s.counters.queueDropped)},
        {"attempts_dropped", sdbus::Variant(s.counters.attemptsDropped)},
        {"store_errors", sdbus::Variant(s.counters.storeErrors)},
        {"table_restores", sdbus::Variant(s.counters.tableRestores)},
        {"store_error", sdbus::Variant(s.storeError)},
    };
  }

  std::vector<wire::Program> Programs() override {
    std::vector<wire::Program> out;
    for (const auto& p : guard_.programs()) out.push_back(toWire(p));
    return out;
  }

  std::vector<wire::Attempt> Attempts(const std::uint32_t& limit, const std::int64_t& beforeId,
                                      const std::int64_t& programId, const std::string& verdict,
                                      const std::int64_t& since,
                                      const std::int64_t& until) override {
    auto query = parseAttemptQuery(limit, beforeId, programId, verdict, since, until);
    if (!query) throw toDbus(query.error());
    auto records = guard_.attempts(*query);
    if (!records) throw sdbus::Error(dbus::kErrorFailed, records.error().message);
    std::vector<wire::Attempt> out;
    out.reserve(records->size());
    for (const auto& a : *records) out.push_back(toWire(a));
    return out;
  }

  void Approve(sdbus::Result<wire::Program>&& result, std::string target,
               std::string script) override {
    change("approve", std::move(result), target, script,
           [this](const service::ProgramRef& ref, Done<wire::Program> done) {
             guard_.approve(ref, programDone(std::move(done)));
           });
  }

  void Deny(sdbus::Result<wire::Program>&& result, std::string target,
            std::string script) override {
    change("deny", std::move(result), target, script,
           [this](const service::ProgramRef& ref, Done<wire::Program> done) {
             guard_.deny(ref, programDone(std::move(done)));
           });
  }

  void Forget(sdbus::Result<bool>&& result, std::string target, std::string script) override {
    change("forget", std::move(result), target, script,
           [this](const service::ProgramRef& ref, Done<bool> done) {
             guard_.forget(ref, std::move(done));
           });
  }

  // Zombie detector (issue #5).
  std::vector<wire::Alert> Alerts(const std::uint32_t& limit) override {
    if (limit > dbus::kMaxAttemptsLimit) {
      throw sdbus::Error(dbus::kErrorInvalidArgument,
                         "limit must be 1 to " + std::to_string(dbus::kMaxAttemptsLimit) +
                             " (0 for the default), got " + std::to_string(limit));
    }
    auto records = guard_.alerts(limit == 0 ? dbus::kDefaultAttemptsLimit : limit);
    if (!records) throw sdbus::Error(dbus::kErrorFailed, records.error().message);
    std::vector<wire::Alert> out;
    out.reserve(records->size());
    for (const auto& a : *records) out.push_back(toWire(a));
    return out;
  }

  void AckAlert(sdbus::Result<bool>&& result, std::int64_t id) override {
    if (id <= 0) {
      reply(result, sdbus::Error(dbus::kErrorInvalidArgument,
                                 "an alert id is a number above 0, got " + std::to_string(id)));
      return;
    }
    authorized("acknowledge alert " + std::to_string(id), std::move(result),
               [this, id](Done<bool> done) { guard_.ackAlert(id, std::move(done)); });
  }

  void Release(sdbus::Result<wire::Program>&& result, std::string target,
               std::string script) override {
    change("release", std::move(result), target, script,
           [this](const service::ProgramRef& ref, Done<wire::Program> done) {
             guard_.release(ref, programDone(std::move(done)));
           });
  }

  void Bulk(sdbus::Result<wire::Program>&& result, std::string target, std::string script,
            std::uint32_t recipients, std::uint32_t hours) override {
    constexpr std::uint32_t kMaxRecipients = 1'000'000;
    constexpr std::uint32_t kMaxHours = 24 * 7;
    if (recipients == 0 || recipients > kMaxRecipients || hours == 0 || hours > kMaxHours) {
      reply(result, sdbus::Error(dbus::kErrorInvalidArgument,
                                 "recipients must be 1 to " + std::to_string(kMaxRecipients) +
                                     " and hours 1 to " + std::to_string(kMaxHours) + ", got " +
                                     std::to_string(recipients) + " and " + std::to_string(hours)));
      return;
    }
    const std::string verb = "declare a bulk send of " + std::to_string(recipients) +
                             " recipients in " + std::to_string(hours) + " h by";
    change(verb.c_str(), std::move(result), target, script,
           [this, recipients, hours](const service::ProgramRef& ref, Done<wire::Program> done) {
             guard_.declareBulk(ref, recipients, std::chrono::hours(hours),
                                programDone(std::move(done)));
           });
  }

  // Authorize (root at once; anyone else through polkit), then apply and reply; change()
  // does this for a call that names a program.
  template <class R, class Apply>
  void authorized(const std::string& what, sdbus::Result<R>&& result, Apply apply) {
    auto shared = std::make_shared<sdbus::Result<R>>(std::move(result));
    const Caller who = caller();
    auto finish = [shared, who, what, apply](const std::string& how) {
      apply([shared, who, what, how](Result<R> r) {
        if (!r) {
          log::info("Policy change by " + who.describe() + " (" + how + ") failed: " + what + ": " +
                    r.error().message);
          reply(*shared, toDbus(r.error()));
          return;
        }
        log::info("Policy change by " + who.describe() + " (" + how + "): " + what);
        replyValue(*shared, *r);
      });
    };
    authorize(who, what, finish, [shared](const sdbus::Error& e) { reply(*shared, e); });
  }

  // Root at once, anyone else through polkit: `allowed(how)` runs when `who` may change
  // policy ("root" or "polkit <action>"); else the refusal is logged and `refused` gets
  // the NotAuthorized error to reply with.
  template <class Allowed, class Refused>
  void authorize(const Caller& who, const std::string& what, Allowed allowed, Refused refused) {
    if (who.uid == 0) {
      allowed("root");
      return;
    }
    checkPolkit(who, [who, what, allowed, refused](std::optional<std::string> refusal) {
      if (!refusal) {
        allowed("polkit " + std::string(dbus::kManageAction));
        return;
      }
      log::warning("Refused policy change by " + who.describe() + ": " + what + ": " + *refusal);
      refused(sdbus::Error(dbus::kErrorNotAuthorized, *refusal));
    });
  }

  std::string Version() override { return guard_.status().version; }
  bool Enforcing() override { return guard_.status().enforcing; }
  std::string Backend() override { return guard_.status().backend; }

  // Host firewall, probes and the mail-server audit (issue #6); the conversions are in
  // host_protection_bus.cpp. Firewall changes are authorized like Approve.
  using StatusMap = std::map<std::string, sdbus::Variant>;

  StatusMap FirewallStatus() override { return firewallStatusOf(guard_.firewall()); }

  void FirewallEnable(sdbus::Result<bool, bool, std::string>&& result, bool confirmed) override {
    authorizedWithCaller(
        std::string("firewall enable") + (confirmed ? " (confirmed)" : ""), std::move(result),
        [this, confirmed](const Caller& who, Done<std::tuple<bool, bool, std::string>> done) {
          guard_.firewallEnable(who.pid, confirmed,
                                [done = std::move(done)](Result<service::EnableOutcome> r) {
                                  if (!r) return done(r.error());
                                  done(std::tuple{r->enabled, r->needsConfirmation, r->warning});
                                });
        });
  }

  void FirewallDisable(sdbus::Result<StatusMap>&& result) override {
    authorized("firewall disable", std::move(result), [this](Done<StatusMap> done) {
      guard_.firewallDisable(statusDone(std::move(done)));
    });
  }

  void FirewallAllow(sdbus::Result<StatusMap>&& result, std::string spec, bool localOnly) override {
    authorized("firewall allow " + excerpt(spec) + (localOnly ? " (local subnets only)" : ""),
               std::move(result), [this, spec, localOnly](Done<StatusMap> done) {
                 guard_.firewallAllow(spec, localOnly, statusDone(std::move(done)));
               });
  }

  void FirewallRemove(sdbus::Result<StatusMap>&& result, std::string name) override {
    authorized("firewall remove " + excerpt(name), std::move(result),
               [this, name](Done<StatusMap> done) {
                 guard_.firewallRemove(name, statusDone(std::move(done)));
               });
  }

  void FirewallSetLocalSubnets(sdbus::Result<StatusMap>&& result,
                               std::vector<std::string> cidrs) override {
    std::string what = "firewall local subnets";
    for (const auto& c : cidrs) what += " " + excerpt(c);
    authorized(what, std::move(result), [this, cidrs](Done<StatusMap> done) {
      guard_.firewallSetLocalSubnets(cidrs, statusDone(std::move(done)));
    });
  }

  std::vector<dbus::wire::Probe> Probes(const std::uint32_t& limit) override {
    auto rows = guard_.probes(probeLimit(limit));
    if (!rows) throw sdbus::Error(dbus::kErrorFailed, rows.error().message);
    return probesOf(*rows);
  }

  AuditTuple Audit() override { return auditOf(guard_.auditResults()); }

  void RunAudit(sdbus::Result<std::int64_t, bool, std::string,
                              std::vector<dbus::wire::AuditResult>>&& result) override {
    auto shared = std::make_shared<std::remove_reference_t<decltype(result)>>(std::move(result));
    guard_.runAudit([shared](const service::AuditSummary& summary) {
      try {
        std::apply([&](const auto&... v) { shared->returnResults(v...); }, auditOf(summary));
      } catch (const sdbus::Error& e) {
        log::warning("Failed to send a D-Bus reply: " + e.getMessage());
      }
    });
  }

  static Done<service::FirewallInfo> statusDone(Done<StatusMap> done) {
    return [done = std::move(done)](Result<service::FirewallInfo> r) {
      if (!r) return done(r.error());
      done(firewallStatusOf(*r));
    };
  }

  // Like authorized(), for replies of several values and a core call that needs to know
  // the caller: apply(caller) returns a CoreError or the tuple of reply values.
  template <class... R, class Apply>
  void authorizedWithCaller(const std::string& what, sdbus::Result<R...>&& result, Apply apply) {
    auto shared = std::make_shared<sdbus::Result<R...>>(std::move(result));
    const Caller who = caller();
    auto finish = [shared, who, what, apply](const std::string& how) {
      apply(who, [shared, who, what, how](Result<std::tuple<R...>> r) {
        try {
          if (!r) {
            log::info("Policy change by " + who.describe() + " (" + how + ") failed: " + what +
                      ": " + r.error().message);
            shared->returnError(toDbus(r.error()));
            return;
          }
          log::info("Policy change by " + who.describe() + " (" + how + "): " + what);
          std::apply([&](const auto&... v) { shared->returnResults(v...); }, *r);
        } catch (const sdbus::Error& e) {
          log::warning("Failed to send a D-Bus reply: " + e.getMessage());
        }
      });
    };
    authorize(who, what, finish, [shared](const sdbus::Error& error) {
      try {
        shared->returnError(error);
      } catch (const sdbus::Error& e) {
        log::warning("Failed to send a D-Bus error reply: " + e.getMessage());
      }
    });
  }

  static Done<service::ProgramView> programDone(Done<wire::Program> done) {
    return [done = std::move(done)](Result<service::ProgramView> r) {
      if (!r) return done(r.error());
      done(toWire(*r));
    };
  }

  Caller caller() {
    const auto* msg = getObject().getCurrentlyProcessedMessage();
    Caller c;
    c.uid = static_cast<std::uint32_t>(msg->getCredsUid());
    c.pid = static_cast<std::int32_t>(msg->getCredsPid());
    c.sender = msg->getSender();
    c.comm = commOf(c.pid);
    return c;
  }

  // Validate, authorize (root at once; anyone else through polkit), then apply.
  template <class R, class Apply>
  void change(const char* verb, sdbus::Result<R>&& result, const std::string& target,
              const std::string& script, Apply apply) {
    auto parsed = parseProgramRef(target, script);
    if (!parsed) {
      reply(result, toDbus(parsed.error()));
      return;
    }
    const std::string what = std::string(verb) + " " + excerpt(target) +
                             (script.empty() ? "" : " script " + excerpt(script));
    authorized(what, std::move(result),
               [apply, ref = *parsed](Done<R> done) { apply(ref, std::move(done)); });
  }

  // Asks polkit whether the caller holds org.mailguard.manage. The subject is the
  // caller's unique bus name ("system-bus-name"), which polkit resolves through the
  // bus itself: unlike pid + start time it cannot be raced by pid reuse. Without
  // polkit on the bus only root may change policy. `done` gets nullopt when allowed,
  // else why not.
  void checkPolkit(const Caller& who, std::function<void(std::optional<std::string>)> done) {
    const std::string needs =
        "changing policy needs root, or an administrator's authentication through polkit "
        "(action " +
        std::string(dbus::kManageAction) +
        "; members of group 'mailguard' use their own password); try again with sudo";
    using Subject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
    const Subject subject{"system-bus-name", {{"name", sdbus::Variant(who.sender)}}};
    const std::map<std::string, std::string> details;
    try {
      polkit_->callMethodAsync("CheckAuthorization")
          .onInterface("org.freedesktop.PolicyKit1.Authority")
          .withTimeout(kPolkitTimeout)
          .withArguments(subject, std::string(dbus::kManageAction), details,
                         kPolkitAllowUserInteraction, std::string())
          .uponReplyInvoke([done, needs, uid = who.uid](
                               const sdbus::Error* error,
                               sdbus::Struct<bool, bool, std::map<std::string, std::string>> r) {
            if (error != nullptr) {
              const auto& name = error->getName();
              if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
                  name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
                done("changing policy needs root (uid 0); you are uid " + std::to_string(uid) +
                     " and polkit is not running to authorize anyone else; try again with "
                     "sudo");
              } else {
                done("polkit could not check the action " + std::string(dbus::kManageAction) +
                     " (" + error->getMessage() + "); " + needs);
              }
              return;
            }
            if (r.get<0>()) {
              done(std::nullopt);
            } else if (r.get<1>()) {
              done(
                  "authentication is required but no polkit agent answered (run "
                  "'pkttyagent --process $$' in your shell first, or use sudo)");
            } else {
              done(needs);
            }
          });
    } catch (const sdbus::Error& e) {
      done("polkit could not be asked (" + e.getMessage() + "); " + needs);
    }
  }

  template <class R>
  static void reply(const sdbus::Result<R>& result, const sdbus::Error& error) {
    try {
      result.returnError(error);
    } catch (const sdbus::Error& e) {
      log::warning("Failed to send a D-Bus error reply: " + e.getMessage());
    }
  }
  template <class R>
  static void replyValue(const sdbus::Result<R>& result, const R& value) {
    try {
      result.returnResults(value);
    } catch (const sdbus::Error& e) {
      log::warning("Failed to send a D-Bus reply: " + e.getMessage());
    }
  }

  service::Guard& guard_;
  std::unique_ptr<sdbus::IProxy> polkit_;
};

struct BusAdaptor::Impl {
  Impl(service::Guard& g, service::EventLoop& l, std::string name)
      : guard(g), loop(l), busName(std::move(name)) {}

  service::Guard& guard;
  service::EventLoop& loop;
  std::string busName;
  std::unique_ptr<sdbus::IConnection> connection;
  std::unique_ptr<GuardObject> object;
  int fd = -1;
  int prepareHandle = 0;
  std::optional<std::string> lost;  // why the connection broke; torn down before the next wait
  std::string lastFailure;          // logged once, not every second

  void connect() {
    try {
      auto c = sdbus::createSystemBusConnection();
      auto o = std::make_unique<GuardObject>(*c, guard);
      // The object is in place before the name: a caller never finds a name without it.
      c->requestName(busName);
      const auto poll = c->getEventLoopPollData();
      if (auto added = loop.add(poll.fd, static_cast<std::uint32_t>(poll.events),
                                [this](std::uint32_t events) { onEvents(events); });
          !added) {
        throw sdbus::Error(dbus::kErrorFailed, added.error().message);
      }
      fd = poll.fd;
      connection = std::move(c);
      object = std::move(o);
      lastFailure.clear();
      log::info("Serving " + busName + " on the system bus");
    } catch (const sdbus::Error& e) {
      const std::string why = e.getName() + ": " + e.getMessage();
      if (why != lastFailure) {
        log::warning("Failed to serve " + busName + " on the system bus: " + why +
                     " (enforcement goes on; retrying every second)");
        lastFailure = why;
      }
    }
  }

  void teardown() {
    if (lost) log::warning("Lost the system bus: " + *lost + " (reconnecting)");
    lost.reset();
    if (fd >= 0) loop.remove(fd);
    fd = -1;
    object.reset();
    connection.reset();
  }

  std::optional<std::chrono::milliseconds> prepare() {
    if (lost) teardown();
    if (!connection) return std::nullopt;
    try {
      auto poll = connection->getEventLoopPollData();
      // A zero timeout means sd-bus has work that no fd event will announce: messages
      // it already read into its queue (during a synchronous call, say) or an expired
      // call timeout. Do that work now, a bounded amount per turn of the loop.
      for (int i = 0; i < kMaxMessagesPerWake && poll.getPollTimeout() == 0; ++i) {
        connection->processPendingRequest();
        poll = connection->getEventLoopPollData();
      }
      // poll(2) and epoll share the values of IN, PRI and OUT.
      (void)loop.modify(fd, static_cast<std::uint32_t>(poll.events));
      const int timeout = poll.getPollTimeout();
      if (timeout < 0) return std::nullopt;
      return std::chrono::milliseconds(timeout);
    } catch (const sdbus::Error& e) {
      lost = e.getMessage();
      teardown();
      return std::nullopt;
    }
  }

  void onEvents(std::uint32_t events) {
    if (!connection) return;
    try {
      int handled = 0;
      while (handled < kMaxMessagesPerWake && connection->processPendingRequest()) ++handled;
      if (handled == 0 && (events & (EPOLLHUP | EPOLLERR)) != 0) lost = "connection closed";
    } catch (const sdbus::Error& e) {
      lost = e.getMessage();
    }
    if (lost) teardown();
  }

  template <class F>
  void emit(F&& f) {
    if (!object || lost) return;
    try {
      f(*object);
    } catch (const sdbus::Error& e) {
      lost = e.getMessage();  // torn down in the next prepare, outside the caller's stack
    }
  }
};

BusAdaptor::BusAdaptor(service::Guard& guard, service::EventLoop& loop, std::string busName)
    : impl_(std::make_shared<Impl>(guard, loop, std::move(busName))) {
  Impl* impl = impl_.get();
  impl->prepareHandle = loop.addPrepare([impl] { return impl->prepare(); });
  guard.onAttempt = [impl](const store::AttemptRecord& a) {
    impl->emit([&](GuardObject& o) { o.emitAttempt(a); });
  };
  guard.onAlert = [impl](const store::AlertRecord& a) {
    impl->emit([&](GuardObject& o) { o.emitAlert(a); });
  };
  guard.onProgramChanged = [impl](const service::ProgramView& p) {
    impl->emit([&](GuardObject& o) { o.emitProgram(p); });
  };
  guard.onAuditFinished = [impl](const service::AuditSummary& a) {
    impl->emit([&](GuardObject& o) { o.emitAudit(a); });
  };
  impl->connect();
  // Timers live as long as the loop; the weak pointer makes this one inert after us.
  loop.every(kReconnectPeriod, [weak = std::weak_ptr<Impl>(impl_)] {
    if (auto self = weak.lock(); self && !self->connection) self->connect();
  });
}

BusAdaptor::~BusAdaptor() {
  impl_->guard.onAttempt = nullptr;
  impl_->guard.onProgramChanged = nullptr;
  impl_->guard.onAlert = nullptr;
  impl_->guard.onAuditFinished = nullptr;
  impl_->loop.removePrepare(impl_->prepareHandle);
  impl_->teardown();
}

bool BusAdaptor::connected() const { return impl_->connection != nullptr; }

}  // namespace mailguard::bus
