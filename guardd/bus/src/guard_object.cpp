#include "guard_object.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "convert.hpp"
#include "mailguard/dbus/names.hpp"
#include "mailguard/rules/code_loading.hpp"
#include "mailguard/service/log.hpp"
#include "validate.hpp"

namespace mailguard::bus {
namespace {

namespace codec = dbus::codec;

// ApproveWithOptions' a{sv}: "allow_env" as, "only_to" as, "user" u, "all_users" b,
// "inline" b (read by approveRef). An unknown key is refused rather than ignored, so a
// client never believes an option it sent took effect.
// Pins are for the few servers a client is meant to use; a longer list is a mistake.
constexpr std::size_t kMaxDestinations = 64;

Result<service::ApproveOptions> parseApproveOptions(const codec::VariantMap& options) {
  service::ApproveOptions out;
  for (const auto& [key, value] : options) {
    if (key == "user") {
      if (!value.containsValueOfType<std::uint32_t>()) {
        return invalidArgument("user must be a uid (u)");
      }
      out.user = value.get<std::uint32_t>();
      continue;
    }
    if (key == "all_users" || key == "inline") {
      if (!value.containsValueOfType<bool>())
        return invalidArgument(key + " must be a boolean (b)");
      if (key == "all_users") out.allUsers = value.get<bool>();
      continue;
    }
    if (key != "allow_env" && key != "only_to") {
      return invalidArgument("unknown approval option '" + key +
                             "' (allow_env, only_to, user, all_users, inline)");
    }
    if (!value.containsValueOfType<std::vector<std::string>>()) {
      return invalidArgument(key + " must be an array of strings (as)");
    }
    if (key == "only_to") {
      const auto texts = value.get<std::vector<std::string>>();
      if (texts.size() > kMaxDestinations) {
        return invalidArgument("only_to: at most " + std::to_string(kMaxDestinations) +
                               " destinations, got " + std::to_string(texts.size()));
      }
      for (const auto& text : texts) {
        auto d = rules::parseDestination(text);
        if (!d) return invalidArgument("only_to: " + d.error().message);
        out.onlyTo.push_back(*d);
      }
      continue;
    }
    for (const auto& name : value.get<std::vector<std::string>>()) {
      if (!rules::isCodeLoadingName(name)) {
        return invalidArgument("allow_env: '" + name +
                               "' is not a code-loading variable or option (like PYTHONPATH, "
                               "LD_PRELOAD, -M)");
      }
      if (std::find(out.allowEnv.begin(), out.allowEnv.end(), name) == out.allowEnv.end()) {
        out.allowEnv.push_back(name);
      }
    }
  }
  return out;
}

// DenyWithOptions' and ForgetWithOptions' a{sv}: "inline" b, and for Forget "user" u.
struct RuleOptions {
  bool inlineCode = false;
  std::optional<std::uint32_t> user;
};

Result<RuleOptions> parseRuleOptions(const codec::VariantMap& options, bool userAllowed) {
  RuleOptions out;
  for (const auto& [key, value] : options) {
    if (key == "inline") {
      if (!value.containsValueOfType<bool>())
        return invalidArgument("inline must be a boolean (b)");
      out.inlineCode = value.get<bool>();
    } else if (key == "user" && userAllowed) {
      if (!value.containsValueOfType<std::uint32_t>()) {
        return invalidArgument("user must be a uid (u)");
      }
      out.user = value.get<std::uint32_t>();
    } else if (key == "user") {
      return invalidArgument("a denial is for every user: user is not an option of a denial");
    } else {
      return invalidArgument("unknown option '" + key + "' (" +
                             (userAllowed ? "inline, user" : "inline") + ")");
    }
  }
  return out;
}

// The program a call with options names: inline goes with an interpreter's path alone.
Result<service::ProgramRef> refWithOptions(const std::string& target, const std::string& script,
                                           bool inlineCode) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return ref.error();
  if (inlineCode) {
    if (!std::holds_alternative<std::string>(ref->target) || !script.empty()) {
      return invalidArgument(
          "inline goes with an interpreter's path alone (an id already names inline code as "
          "such)");
    }
    ref->inlineCode = true;
  }
  return ref;
}

std::string ruleWhat(const std::string& verb, const std::string& target, const std::string& script,
                     const RuleOptions& options) {
  std::string what = verb + (options.inlineCode ? " the inline code of " : " ") + excerpt(target);
  if (!script.empty()) what += " script " + excerpt(script);
  if (options.user) what += " for uid " + std::to_string(*options.user);
  return what;
}

using service::Done;

constexpr std::uint32_t kMaxBulkRecipients = 1'000'000;
constexpr std::uint32_t kMaxBulkHours = 24 * 7;

// Sending fails when the connection broke meanwhile; the bus link notices that on its
// own, so a failed reply is only logged.
template <class... R>
void sendError(const sdbus::Result<R...>& reply, const sdbus::Error& error) {
  try {
    reply.returnError(error);
  } catch (const sdbus::Error& e) {
    log::warning("Failed to send a D-Bus error reply: " + e.getMessage());
  }
}

// `value` is the one reply value, or a std::tuple of them for a method with several
// (sdbus::Struct is a tuple too, hence the count decides, not the type).
template <class... R, class V>
void sendValue(const sdbus::Result<R...>& reply, const V& value) {
  try {
    if constexpr (sizeof...(R) > 1) {
      std::apply([&](const auto&... v) { reply.returnResults(v...); }, value);
    } else {
      reply.returnResults(value);
    }
  } catch (const sdbus::Error& e) {
    log::warning("Failed to send a D-Bus reply: " + e.getMessage());
  }
}

dbus::wire::Program encodeProgram(const service::Guard& guard, const service::ProgramView& p) {
  auto out = toDbus(p);
  out.heldMessages = static_cast<std::uint32_t>(guard.heldMessages(p.id));
  out.covers = guard.covers(p);
  return codec::encode(out);
}
codec::VariantMap encodeFirewall(const service::FirewallInfo& f) {
  return codec::encodeFirewall(toDbus(f));
}

std::string programWhat(const std::string& verb, const std::string& target,
                        const std::string& script) {
  return verb + " " + excerpt(target) + (script.empty() ? "" : " script " + excerpt(script));
}

// What the log and the authorization prompt say of an approval with its options.
std::string approveWhat(const std::string& target, const std::string& script,
                        const service::ApproveOptions& options) {
  std::string what = programWhat("approve", target, script);
  if (options.user) what += " for uid " + std::to_string(*options.user);
  if (options.allUsers) what += " for every user";
  for (const auto& d : options.onlyTo) what += " only to " + rules::toString(d);
  if (!options.allowEnv.empty()) {
    what += " allowing";
    for (const auto& name : options.allowEnv) what += " " + name;
  }
  return what;
}

}  // namespace

sdbus::Error toDbusError(const Error& e) {
  switch (e.code) {
    case Errc::InvalidArgument:
      return sdbus::Error(dbus::kErrorInvalidArgument, e.message);
    case Errc::NotFound:
      return sdbus::Error(dbus::kErrorNotFound, e.message);
    case Errc::NotAuthorized:
      return sdbus::Error(dbus::kErrorNotAuthorized, e.message);
    case Errc::Failed:
    case Errc::Pending:  // the core answers a caller only once the work is done
      break;
  }
  return sdbus::Error(dbus::kErrorFailed, e.message);
}

GuardObject::GuardObject(sdbus::IConnection& connection, service::Guard& guard)
    : AdaptorInterfaces(connection, dbus::kObjectPath), guard_(guard), authorizer_(connection) {
  registerAdaptor();
}

GuardObject::~GuardObject() {
  pending_->drop();
  unregisterAdaptor();
}

void GuardObject::emitAttempt(const store::AttemptRecord& a) {
  emitAttemptRecorded(codec::encode(toDbusBroadcast(a)));
}
void GuardObject::emitProgram(const service::ProgramView& p) {
  // Listeners keep one row per program: a change of an older version (its approval
  // replaced by the new content's) is announced as the row, which is the current version.
  emitProgramChanged(encodeProgram(guard_, guard_.currentVersion(p)));
}
void GuardObject::emitAlert(const store::AlertRecord& a) {
  emitAlertRaised(codec::encode(toDbus(a)));
}
void GuardObject::emitAudit(const service::AuditSummary& s) {
  emitAuditFinished(micros(s.finished), s.error, static_cast<std::uint32_t>(s.entries.size()));
}

std::function<dbus::wire::Program(const service::ProgramView&)> GuardObject::programEncoder() {
  // Not `this`: the reply may be sent after this object is gone. The core itself runs the
  // `done` that encodes, so it is alive then.
  return [&guard = guard_](const service::ProgramView& p) { return encodeProgram(guard, p); };
}

Caller GuardObject::caller() { return callerOf(*getObject().getCurrentlyProcessedMessage()); }

template <class T, class Reply, class Apply, class Encode>
void GuardObject::change(std::string what, Reply&& result, Apply apply, Encode encode) {
  using R = std::remove_cvref_t<Reply>;
  const Caller who = caller();
  const auto token = pending_->park(R(std::move(result)));
  const std::weak_ptr<PendingReplies> table = pending_;
  // The polkit callback runs while this object lives (its proxy goes with it); the
  // core's `done` may run later than that, so it holds the token, never `this`.
  authorizer_.authorize(
      who, what, [who, what, token, table, apply, encode](Result<std::string> how) {
        if (!how) {
          completeReply<R>(table, token,
                           [&](const R& reply) { sendError(reply, toDbusError(how.error())); });
          return;
        }
        apply(
            who, Done<T>([who, what, token, table, encode, how = *how](Result<T> r) {
              if (!r) {
                log::info("Policy change by " + who.describe() + " (" + how + ") failed: " + what +
                          ": " + r.error().message);
                completeReply<R>(table, token,
                                 [&](const R& reply) { sendError(reply, toDbusError(r.error())); });
                return;
              }
              log::info("Policy change by " + who.describe() + " (" + how + "): " + what);
              completeReply<R>(table, token, [&](const R& reply) { sendValue(reply, encode(*r)); });
            }));
      });
}

GuardObject::VariantMap GuardObject::Status() {
  return codec::encodeStatus(toDbus(guard_.status()));
}

std::vector<dbus::wire::Program> GuardObject::Programs() {
  std::vector<dbus::wire::Program> out;
  for (const auto& p : guard_.programs()) out.push_back(encodeProgram(guard_, p));
  return out;
}

std::map<std::int64_t, std::uint32_t> GuardObject::ProgramVersionCounts() {
  return guard_.programVersionCounts();
}

std::vector<dbus::wire::ProgramVersion> GuardObject::ProgramVersions(const std::string& target,
                                                                     const std::string& script) {
  auto ref = parseProgramRef(target, script);
  if (!ref) throw toDbusError(ref.error());
  auto versions = guard_.programVersions(*ref);
  if (!versions) throw toDbusError(versions.error());
  std::vector<dbus::wire::ProgramVersion> out;
  out.reserve(versions->size());
  for (const auto& v : *versions) out.emplace_back(v.id, v.sha256, micros(v.firstSeen), v.state);
  return out;
}

std::vector<dbus::wire::Attempt> GuardObject::Attempts(
    const std::uint32_t& limit, const std::int64_t& beforeId, const std::int64_t& programId,
    const std::string& verdict, const std::int64_t& since, const std::int64_t& until) {
  auto query = parseAttemptQuery(limit, beforeId, programId, verdict, since, until);
  if (!query) throw toDbusError(query.error());
  auto records = guard_.attempts(*query);
  if (!records) throw toDbusError(records.error());
  // The bus daemon's record of the sender (SO_PEERCRED at connect), not a claim of the
  // caller's.
  const auto uid =
      static_cast<std::uint32_t>(getObject().getCurrentlyProcessedMessage()->getCredsUid());
  std::vector<dbus::wire::Attempt> out;
  out.reserve(records->size());
  for (const auto& r : *records) out.push_back(codec::encode(toDbusFor(r, uid)));
  return out;
}

void GuardObject::Approve(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                          std::string script) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<service::ProgramView>(
      programWhat("approve", target, script), std::move(result),
      [this, ref = *ref](const Caller&, Done<service::ProgramView> done) {
        guard_.approve(ref, std::move(done));
      },
      programEncoder());
}

void GuardObject::ApproveWithOptions(sdbus::Result<dbus::wire::Program>&& result,
                                     std::string target, std::string script, VariantMap options) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  auto approveOptions = parseApproveOptions(options);
  if (!approveOptions) return sendError(result, toDbusError(approveOptions.error()));
  if (const auto it = options.find("inline"); it != options.end() && it->second.get<bool>()) {
    if (!std::holds_alternative<std::string>(ref->target) || !script.empty()) {
      return sendError(
          result, toDbusError(invalidArgument("inline goes with an interpreter's path alone (an id "
                                              "already names inline code as such)")));
    }
    ref->inlineCode = true;
  }
  change<service::ProgramView>(
      approveWhat(target, script, *approveOptions), std::move(result),
      [this, ref = *ref, approveOptions = *approveOptions](const Caller&,
                                                           Done<service::ProgramView> done) {
        guard_.approve(ref, std::move(done), approveOptions);
      },
      programEncoder());
}

std::vector<dbus::wire::Rule> GuardObject::Rules() {
  std::vector<dbus::wire::Rule> out;
  for (const auto& r : guard_.approvalRules()) {
    std::vector<std::string> onlyTo;
    for (const auto& d : r.onlyTo) onlyTo.push_back(rules::toString(d));
    const auto kind = r.scriptPath.empty() ? r.kind : rules::IdentityKind::Script;
    out.emplace_back(r.id, r.action == rules::RuleAction::Deny ? "deny" : "approve", r.path,
                     r.sha256, r.scriptPath, r.scriptSha256, std::move(onlyTo), r.allowEnv,
                     std::string(rules::toString(kind)),
                     r.uid ? (r.userName.empty() ? "uid " + std::to_string(*r.uid) : r.userName)
                           : std::string("all"));
  }
  return out;
}

void GuardObject::Deny(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                       std::string script) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<service::ProgramView>(
      programWhat("deny", target, script), std::move(result),
      [this, ref = *ref](const Caller&, Done<service::ProgramView> done) {
        guard_.deny(ref, std::move(done));
      },
      programEncoder());
}

void GuardObject::Forget(sdbus::Result<bool>&& result, std::string target, std::string script) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<bool>(
      programWhat("forget", target, script), std::move(result),
      [this, ref = *ref](const Caller&, Done<bool> done) { guard_.forget(ref, std::move(done)); },
      [](bool forgotten) { return forgotten; });
}

void GuardObject::DenyWithOptions(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                                  std::string script, VariantMap options) {
  auto parsed = parseRuleOptions(options, false);
  if (!parsed) return sendError(result, toDbusError(parsed.error()));
  auto ref = refWithOptions(target, script, parsed->inlineCode);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<service::ProgramView>(
      ruleWhat("deny", target, script, *parsed), std::move(result),
      [this, ref = *ref](const Caller&, Done<service::ProgramView> done) {
        guard_.deny(ref, std::move(done));
      },
      programEncoder());
}

void GuardObject::ForgetWithOptions(sdbus::Result<bool>&& result, std::string target,
                                    std::string script, VariantMap options) {
  auto parsed = parseRuleOptions(options, true);
  if (!parsed) return sendError(result, toDbusError(parsed.error()));
  auto ref = refWithOptions(target, script, parsed->inlineCode);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<bool>(
      ruleWhat("forget", target, script, *parsed), std::move(result),
      [this, ref = *ref, user = parsed->user](const Caller&, Done<bool> done) {
        guard_.forget(ref, std::move(done), user);
      },
      [](bool forgotten) { return forgotten; });
}

std::vector<dbus::wire::Alert> GuardObject::Alerts(const std::uint32_t& limit) {
  if (limit > dbus::kMaxAttemptsLimit) {
    throw sdbus::Error(dbus::kErrorInvalidArgument,
                       "limit must be 1 to " + std::to_string(dbus::kMaxAttemptsLimit) +
                           " (0 for the default), got " + std::to_string(limit));
  }
  auto records = guard_.alerts(limit == 0 ? dbus::kDefaultAttemptsLimit : limit);
  if (!records) throw toDbusError(records.error());
  return codec::encodeAll(toDbusAll(*records));
}

void GuardObject::AckAlert(sdbus::Result<bool>&& result, std::int64_t id) {
  if (id <= 0) {
    return sendError(result,
                     sdbus::Error(dbus::kErrorInvalidArgument,
                                  "an alert id is a number above 0, got " + std::to_string(id)));
  }
  change<bool>(
      "acknowledge alert " + std::to_string(id), std::move(result),
      [this, id](const Caller&, Done<bool> done) { guard_.ackAlert(id, std::move(done)); },
      [](bool acknowledged) { return acknowledged; });
}

void GuardObject::Release(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                          std::string script) {
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  change<service::ProgramView>(
      programWhat("release", target, script), std::move(result),
      [this, ref = *ref](const Caller&, Done<service::ProgramView> done) {
        guard_.release(ref, std::move(done));
      },
      programEncoder());
}

void GuardObject::Bulk(sdbus::Result<dbus::wire::Program>&& result, std::string target,
                       std::string script, std::uint32_t recipients, std::uint32_t hours) {
  if (recipients == 0 || recipients > kMaxBulkRecipients || hours == 0 || hours > kMaxBulkHours) {
    return sendError(
        result, sdbus::Error(dbus::kErrorInvalidArgument,
                             "recipients must be 1 to " + std::to_string(kMaxBulkRecipients) +
                                 " and hours 1 to " + std::to_string(kMaxBulkHours) + ", got " +
                                 std::to_string(recipients) + " and " + std::to_string(hours)));
  }
  auto ref = parseProgramRef(target, script);
  if (!ref) return sendError(result, toDbusError(ref.error()));
  const std::string verb = "declare a bulk send of " + std::to_string(recipients) +
                           " recipients in " + std::to_string(hours) + " h by";
  change<service::ProgramView>(
      programWhat(verb, target, script), std::move(result),
      [this, ref = *ref, recipients, hours](const Caller&, Done<service::ProgramView> done) {
        guard_.declareBulk(ref, recipients, std::chrono::hours(hours), std::move(done));
      },
      programEncoder());
}

std::string GuardObject::Version() { return guard_.status().version; }
bool GuardObject::Enforcing() { return guard_.status().enforcing; }
std::string GuardObject::Backend() { return guard_.status().backend; }

GuardObject::VariantMap GuardObject::FirewallStatus() { return encodeFirewall(guard_.firewall()); }

void GuardObject::FirewallEnable(sdbus::Result<bool, bool, std::string>&& result, bool confirmed) {
  change<service::EnableOutcome>(
      std::string("firewall enable") + (confirmed ? " (confirmed)" : ""), std::move(result),
      [this, confirmed](const Caller& who, Done<service::EnableOutcome> done) {
        guard_.firewallEnable(who.pid, confirmed, std::move(done));
      },
      [](const service::EnableOutcome& e) { return codec::encode(toDbus(e)); });
}

void GuardObject::FirewallDisable(sdbus::Result<VariantMap>&& result) {
  change<service::FirewallInfo>(
      "firewall disable", std::move(result),
      [this](const Caller&, Done<service::FirewallInfo> done) {
        guard_.firewallDisable(std::move(done));
      },
      encodeFirewall);
}

void GuardObject::FirewallAllow(sdbus::Result<VariantMap>&& result, std::string spec,
                                bool localOnly) {
  change<service::FirewallInfo>(
      "firewall allow " + excerpt(spec) + (localOnly ? " (local subnets only)" : ""),
      std::move(result),
      [this, spec, localOnly](const Caller&, Done<service::FirewallInfo> done) {
        guard_.firewallAllow(spec, localOnly, std::move(done));
      },
      encodeFirewall);
}

void GuardObject::FirewallRemove(sdbus::Result<VariantMap>&& result, std::string name) {
  change<service::FirewallInfo>(
      "firewall remove " + excerpt(name), std::move(result),
      [this, name](const Caller&, Done<service::FirewallInfo> done) {
        guard_.firewallRemove(name, std::move(done));
      },
      encodeFirewall);
}

void GuardObject::FirewallSetLocalSubnets(sdbus::Result<VariantMap>&& result,
                                          std::vector<std::string> cidrs) {
  std::string what = "firewall local subnets";
  for (const auto& c : cidrs) what += " " + excerpt(c);
  change<service::FirewallInfo>(
      what, std::move(result),
      [this, cidrs](const Caller&, Done<service::FirewallInfo> done) {
        guard_.firewallSetLocalSubnets(cidrs, std::move(done));
      },
      encodeFirewall);
}

std::vector<dbus::wire::Probe> GuardObject::Probes(const std::uint32_t& limit) {
  auto rows = guard_.probes(probeLimit(limit));
  if (!rows) throw toDbusError(rows.error());
  return codec::encodeAll(toDbusAll(*rows));
}

GuardObject::VariantMap GuardObject::Backscatter() {
  return codec::encodeBackscatter(toDbus(guard_.backscatter()));
}

GuardObject::VariantMap GuardObject::Household() {
  return codec::encodeHousehold(toDbus(guard_.household()));
}

void GuardObject::ScanHousehold(sdbus::Result<VariantMap>&& result) {
  // A change: it connects to every address of the owner's subnets and talks SMTP to
  // other people's computers, which only the owner may ask for.
  change<service::HouseholdInfo>(
      "scan the household's mail servers", std::move(result),
      [this](const Caller&, Done<service::HouseholdInfo> done) {
        guard_.scanHousehold(std::move(done));
      },
      [](const service::HouseholdInfo& info) { return codec::encodeHousehold(toDbus(info)); });
}

GuardObject::AuditTuple GuardObject::Audit() {
  return codec::encode(toDbus(guard_.auditResults()));
}

void GuardObject::RunAudit(
    sdbus::Result<std::int64_t, bool, std::string, std::vector<dbus::wire::AuditResult>>&& result) {
  using R = std::remove_reference_t<decltype(result)>;
  const auto token = pending_->park(R(std::move(result)));
  guard_.runAudit([table = std::weak_ptr<PendingReplies>(pending_),
                   token](const service::AuditSummary& summary) {
    completeReply<R>(table, token,
                     [&](const R& reply) { sendValue(reply, codec::encode(toDbus(summary))); });
  });
}

std::string GuardObject::Outside() { return guard_.outsideReport(); }

void GuardObject::RunOutsideCheck(sdbus::Result<std::string>&& result) {
  change<std::string>(
      "run the outside check", std::move(result),
      [this](const Caller&, Done<std::string> done) {
        guard_.runOutsideCheck(
            [done = std::move(done)](const std::string& report) { done(report); });
      },
      [](const std::string& report) { return report; });
}

}  // namespace mailguard::bus
