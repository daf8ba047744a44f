#pragma once
// The one D-Bus header flag sdbus-c++ 1.2 has no accessor for, ALLOW_INTERACTIVE_AUTHORIZATION
// (D-Bus specification): the client sets it on a policy call (it will wait while polkit asks
// the user's authentication agent for a password), guardd reads it to tell polkit whether it
// may ask. Both need sd-bus itself (libsystemd).
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-bus.h>

namespace mailguard::dbus {

// sdbus-c++'s Message keeps the sd_bus_message* in the protected member msg_, which a
// derived class may name (&RawMessage::msg_ is a pointer to Message's member, usable on
// any Message).
struct RawMessage : sdbus::Message {
  static sd_bus_message* of(const sdbus::Message& m) {
    return static_cast<sd_bus_message*>(m.*(&RawMessage::msg_));
  }
};

inline void allowInteractiveAuthorization(sdbus::MethodCall& call) {
  const int r = sd_bus_message_set_allow_interactive_authorization(RawMessage::of(call), 1);
  if (r < 0)
    throw sdbus::Error("org.freedesktop.DBus.Error.Failed",
                       "cannot mark the call as allowing interactive authorization");
}

// Whether the caller of `message` said it will wait for an authentication dialog.
inline bool allowsInteractiveAuthorization(const sdbus::Message& message) {
  return sd_bus_message_get_allow_interactive_authorization(RawMessage::of(message)) > 0;
}

}  // namespace mailguard::dbus
