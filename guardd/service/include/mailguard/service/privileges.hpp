#pragma once
// What guardd keeps of root's power: four capabilities, securebits that make
// root an ordinary user for exec, and no_new_privs. main() applies it once, before the
// first thread starts; install/guardd.service sets the same from outside.
#include <linux/capability.h>

#include <array>
#include <string>

#include "mailguard/rules/result.hpp"

namespace mailguard::service {

// Permitted, effective and bounding sets. Why each one is needed: privileges.cpp.
inline constexpr std::array<unsigned, 4> kRuntimeCapabilities = {
    CAP_NET_ADMIN, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH, CAP_SYS_ADMIN};
// Inheritable and ambient sets: all that a program guardd runs gets. The only one is
// iproute2's `ip`, which builds the audit's veth pair (guardd/audit/src/probe_network.cpp).
inline constexpr std::array<unsigned, 1> kChildCapabilities = {CAP_NET_ADMIN};

// Reduces guardd to kRuntimeCapabilities, gives children kChildCapabilities only, sets
// SECBIT_NOROOT|SECBIT_NOROOT_LOCKED and PR_SET_NO_NEW_PRIVS, then reads everything back
// and fails unless it is exactly so. Capabilities belong to a thread and are copied to the
// threads it creates, so this must run while guardd has a single thread (it fails
// otherwise). A capability guardd was started without stays missing: what needs it fails
// later with its own error, as before. Without CAP_SETPCAP (the systemd unit) the bounding
// set and securebits cannot change; they must then already be as wanted. Returns a line
// for the log naming what was kept.
Result<std::string> dropPrivileges();

}  // namespace mailguard::service
