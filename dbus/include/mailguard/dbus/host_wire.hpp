#pragma once
// The struct shapes of the host firewall and audit calls of org.mailguard.Guard1
// as sdbus-c++ types. For guardd's adaptor and the client implementation.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mailguard::dbus::wire {

// (sbas): name, local_only, ports
using FirewallService = sdbus::Struct<std::string, bool, std::vector<std::string>>;

// (sqtxx): source, port, count, first_seen, last_seen (us since the epoch)
using Probe = sdbus::Struct<std::string, std::uint16_t, std::uint64_t, std::int64_t, std::int64_t>;

// (sssbqs): severity, title, fix, offer_block, port, block_command
using Finding =
    sdbus::Struct<std::string, std::string, std::string, bool, std::uint16_t, std::string>;

// (ssssassas): subnet, probe_address, target, relay, accepted, reason, transcript
using LanRelay = sdbus::Struct<std::string, std::string, std::string, std::string,
                               std::vector<std::string>, std::string, std::vector<std::string>>;

// (isqsiusssassbssasa(sssbqs)a(ssssassas)as): see the XML
using AuditResult = sdbus::Struct<std::int32_t,               // family
                                  std::string,                // address
                                  std::uint16_t,              // port
                                  std::string,                // exposure
                                  std::int32_t,               // pid
                                  std::uint32_t,              // uid
                                  std::string,                // path
                                  std::string,                // comm
                                  std::string,                // relay
                                  std::vector<std::string>,   // accepted
                                  std::string,                // reason
                                  bool,                       // blocked_by_firewall
                                  std::string,                // probed_address
                                  std::string,                // own_domain
                                  std::vector<std::string>,   // transcript
                                  std::vector<Finding>,       // findings
                                  std::vector<LanRelay>,      // lan
                                  std::vector<std::string>>;  // auth_in_clear

}  // namespace mailguard::dbus::wire
