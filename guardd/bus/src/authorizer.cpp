#include "authorizer.hpp"

#include <chrono>
#include <fstream>
#include <utility>

#include "mailguard/dbus/names.hpp"
#include "mailguard/dbus/raw_message.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::bus {
namespace {

// A person may need this long to answer a polkit password prompt; guardctl waits 2 min.
constexpr auto kPolkitTimeout = std::chrono::seconds(110);
// CheckAuthorization's flags (polkit's D-Bus API): polkit may ask the user only when the
// caller said it would wait for that; a script that did not gets its answer at once.
constexpr std::uint32_t kPolkitNoInteraction = 0;
constexpr std::uint32_t kPolkitAllowUserInteraction = 1;

std::string commOf(std::int32_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm.empty() ? "?" : comm;
}

std::string needsAuthorization() {
  return "changing policy needs root, or an administrator's authentication through polkit "
         "(action " +
         std::string(dbus::kManageAction) +
         "; members of group 'mailguard' use their own password); try again with sudo";
}

}  // namespace

std::string Caller::describe() const {
  return "uid " + std::to_string(uid) + " pid " + std::to_string(pid) + " (" + log::quote(comm) +
         ", " + sender + ")";
}

Caller callerOf(const sdbus::Message& message) {
  Caller c;
  c.uid = static_cast<std::uint32_t>(message.getCredsUid());
  c.pid = static_cast<std::int32_t>(message.getCredsPid());
  c.sender = message.getSender();
  c.comm = commOf(c.pid);
  c.interactive = dbus::allowsInteractiveAuthorization(message);
  return c;
}

PolkitSubject polkitSubject(const std::string& sender) {
  return PolkitSubject{"system-bus-name", {{"name", sdbus::Variant(sender)}}};
}

std::optional<std::string> refusalOf(bool isAuthorized, bool isChallenge, bool interactive) {
  if (isAuthorized) return std::nullopt;
  if (isChallenge && !interactive) {
    return "authentication is required and the call did not allow interactive "
           "authorization (busctl: --allow-interactive-authorization=yes; or use sudo)";
  }
  if (isChallenge) {
    return "authentication is required but no polkit agent answered (run "
           "'pkttyagent --process $$' in your shell first, or use sudo)";
  }
  return needsAuthorization();
}

std::string refusalOfError(const std::string& name, const std::string& message, std::uint32_t uid) {
  if (name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
      name == "org.freedesktop.DBus.Error.NameHasNoOwner") {
    return "changing policy needs root (uid 0); you are uid " + std::to_string(uid) +
           " and polkit is not running to authorize anyone else; try again with sudo";
  }
  return "polkit could not check the action " + std::string(dbus::kManageAction) + " (" + message +
         "); " + needsAuthorization();
}

Authorizer::Authorizer(sdbus::IConnection& connection)
    : polkit_(sdbus::createProxy(connection, "org.freedesktop.PolicyKit1",
                                 "/org/freedesktop/PolicyKit1/Authority")) {}

void Authorizer::authorize(const Caller& who, const std::string& what, Decided decided) {
  if (who.uid == 0) {
    decided(std::string("root"));
    return;
  }
  checkPolkit(who, [who, what, decided = std::move(decided)](std::optional<std::string> refusal) {
    if (!refusal) {
      decided("polkit " + std::string(dbus::kManageAction));
      return;
    }
    log::warning("Refused policy change by " + who.describe() + ": " + what + ": " + *refusal);
    decided(makeError(*refusal, Errc::NotAuthorized));
  });
}

void Authorizer::checkPolkit(const Caller& who,
                             std::function<void(std::optional<std::string>)> done) {
  const std::map<std::string, std::string> details;
  try {
    polkit_->callMethodAsync("CheckAuthorization")
        .onInterface("org.freedesktop.PolicyKit1.Authority")
        .withTimeout(kPolkitTimeout)
        .withArguments(polkitSubject(who.sender), std::string(dbus::kManageAction), details,
                       who.interactive ? kPolkitAllowUserInteraction : kPolkitNoInteraction,
                       std::string())
        .uponReplyInvoke([done, uid = who.uid, interactive = who.interactive](
                             const sdbus::Error* error,
                             sdbus::Struct<bool, bool, std::map<std::string, std::string>> r) {
          if (error != nullptr) {
            done(refusalOfError(error->getName(), error->getMessage(), uid));
            return;
          }
          done(refusalOf(r.get<0>(), r.get<1>(), interactive));
        });
  } catch (const sdbus::Error& e) {
    done("polkit could not be asked (" + e.getMessage() + "); " + needsAuthorization());
  }
}

}  // namespace mailguard::bus
