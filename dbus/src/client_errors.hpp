#pragma once
// sdbus-c++ errors as ClientError, for the client implementations (client.cpp,
// host_client.cpp): the message says what happened and what to do.
#include <sdbus-c++/sdbus-c++.h>

#include "mailguard/dbus/client.hpp"

namespace mailguard::dbus {

ClientError fromSdbus(const sdbus::Error& e);

}  // namespace mailguard::dbus
