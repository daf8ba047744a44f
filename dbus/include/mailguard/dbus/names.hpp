#pragma once
// Names of the org.mailguard.Guard1 API (dbus/org.mailguard.Guard1.xml). Plain
// strings, so both the sdbus-based code and its users can share them.

#include <cstddef>

namespace mailguard::dbus {

inline constexpr const char* kBusName = "org.mailguard.Guard1";
inline constexpr const char* kObjectPath = "/org/mailguard/Guard1";
inline constexpr const char* kInterface = "org.mailguard.Guard1";

inline constexpr const char* kErrorNotAuthorized = "org.mailguard.Error.NotAuthorized";
inline constexpr const char* kErrorInvalidArgument = "org.mailguard.Error.InvalidArgument";
inline constexpr const char* kErrorNotFound = "org.mailguard.Error.NotFound";
inline constexpr const char* kErrorFailed = "org.mailguard.Error.Failed";

// The polkit action that lets a non-root user change policy (install/org.mailguard.policy).
inline constexpr const char* kManageAction = "org.mailguard.manage";

// Argument bounds, checked by guardd and documented for clients.
inline constexpr std::size_t kMaxPathLength = 4096;
inline constexpr unsigned kMaxAttemptsLimit = 1000;
inline constexpr unsigned kDefaultAttemptsLimit = 50;

// Attempt.cmdline_hidden: why an attempt comes without its command line.
inline constexpr const char* kCmdlineOtherUser = "another user's";
inline constexpr const char* kCmdlineNotLive = "not in live updates";

}  // namespace mailguard::dbus
