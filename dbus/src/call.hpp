#pragma once
// What client.cpp and host_client.cpp both do around a bus call: connect, call a
// method with a timeout, and turn sdbus' exceptions into values.
#include <sdbus-c++/sdbus-c++.h>

#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <string>

#include "client_errors.hpp"
#include "mailguard/dbus/names.hpp"

namespace mailguard::dbus::detail {

// Runs one bus call, turning sdbus' exceptions into values at this edge.
template <class F>
auto guarded(F&& f) -> ClientResult<decltype(f())> {
  try {
    return f();
  } catch (const sdbus::Error& e) {
    return fromSdbus(e);
  } catch (const std::exception& e) {
    return ClientError{ClientError::Kind::Failed, e.what(), {}};
  }
}

// Calls `method` on guardd's interface with `timeout` and returns its one reply value.
template <class R, class... Args>
R callWithTimeout(sdbus::IProxy& proxy, const char* method, std::chrono::microseconds timeout,
                  const Args&... args) {
  R result{};
  proxy.callMethod(method)
      .onInterface(kInterface)
      .withTimeout(timeout)
      .withArguments(args...)
      .storeResultsTo(result);
  return result;
}

// The error for a system bus connection that could not be made.
inline ClientError noSystemBus(const sdbus::Error& e) {
  return ClientError{ClientError::Kind::NoBus,
                     "cannot connect to the system bus (" + e.getMessage() +
                         "); is dbus running? (DBUS_SYSTEM_BUS_ADDRESS selects another bus)",
                     e.getName()};
}

}  // namespace mailguard::dbus::detail
