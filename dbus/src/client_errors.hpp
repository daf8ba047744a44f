#pragma once
// sdbus-c++ errors as ClientError, for the client implementations (client.cpp,
// host_client.cpp): the message says what happened and what to do.
#include <sdbus-c++/sdbus-c++.h>

#include <string>

#include "mailguard/dbus/client.hpp"

namespace mailguard::dbus {

ClientError fromSdbus(const sdbus::Error& e);

// Whether systemd manages this machine: sd_booted(3)'s test, /run/systemd/system exists.
bool systemdRunning();
// "guardd is not running ...; start it with: ..." for a machine with or without systemd.
std::string notRunningMessage(bool withSystemd);

}  // namespace mailguard::dbus
