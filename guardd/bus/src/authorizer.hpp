#pragma once
// Who may change policy: root at once, anyone else if polkit grants org.mailguard.manage
// (install/org.mailguard.policy). The caller's identity is the bus daemon's word (from
// SO_PEERCRED when the caller connected), so a caller cannot claim to be someone else.
// The decisions on polkit's answers are pure functions, unit-tested without a bus.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "mailguard/rules/result.hpp"

namespace mailguard::bus {

struct Caller {
  std::uint32_t uid = 0;
  std::int32_t pid = 0;
  std::string sender;  // unique bus name, the polkit subject
  std::string comm;    // for the log only
  // The call carried ALLOW_INTERACTIVE_AUTHORIZATION: its sender will wait while polkit asks
  // the user's authentication agent (guardctl, guard-tui and guard-notify do).
  bool interactive = false;

  // "uid 1000 pid 4242 ('guardctl', :1.42)", for the log.
  [[nodiscard]] std::string describe() const;
};

// The caller of the message being handled (valid inside a method handler only).
Caller callerOf(const sdbus::Message& message);

// polkit's CheckAuthorization subject for a bus name: ("system-bus-name", {name: s}).
// polkit resolves the name through the bus itself; unlike pid + start time it cannot be
// raced by pid reuse.
using PolkitSubject = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
PolkitSubject polkitSubject(const std::string& sender);

// CheckAuthorization's answer (is_authorized, is_challenge) as nullopt when allowed,
// else why not, for a person; `interactive`: the caller allowed polkit to ask.
std::optional<std::string> refusalOf(bool isAuthorized, bool isChallenge, bool interactive);
// Why a caller of uid `uid` is refused when CheckAuthorization itself failed with the
// D-Bus error `name` (polkit not running, say).
std::string refusalOfError(const std::string& name, const std::string& message, std::uint32_t uid);

class Authorizer {
 public:
  // `how` says what allowed the change: "root" or "polkit org.mailguard.manage".
  using Decided = std::function<void(Result<std::string> how)>;

  // The polkit proxy lives on `connection`; its pending checks (and their callbacks)
  // go with this object, which the bus link destroys before the connection.
  explicit Authorizer(sdbus::IConnection& connection);

  // Root is allowed at once (`decided` runs before this returns); anyone else once
  // polkit answers. A refusal is logged here and is an Errc::NotAuthorized error.
  void authorize(const Caller& who, const std::string& what, Decided decided);

 private:
  void checkPolkit(const Caller& who, std::function<void(std::optional<std::string>)> done);

  std::unique_ptr<sdbus::IProxy> polkit_;
};

}  // namespace mailguard::bus
