#pragma once
// The struct shapes of org.mailguard.Guard1 as sdbus-c++ types, with field indexes.
// For guardd's adaptor and the client implementation; not a public client header.
#include <sdbus-c++/sdbus-c++.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mailguard::dbus::wire {

// (xssssusxxxuss): see the XML for the meaning of each field.
using Program = sdbus::Struct<std::int64_t,   // id
                              std::string,    // path
                              std::string,    // sha256
                              std::string,    // script_path
                              std::string,    // script_sha256
                              std::uint32_t,  // uid
                              std::string,    // state
                              std::int64_t,   // attempts
                              std::int64_t,   // last_attempt, us since the epoch
                              std::int64_t,   // first_seen, us since the epoch
                              std::uint32_t,  // held_messages
                              std::string,    // kind: "program", "script", "inline"
                              std::string>;   // covers: "all", user names, ""

// (xsxs): one version of a program (ProgramVersions).
using ProgramVersion = sdbus::Struct<std::int64_t,  // id
                                     std::string,   // sha256
                                     std::int64_t,  // first_seen, us since the epoch
                                     std::string>;  // state, or what the owner decided

// (xsssssasasss): one rule of the owner.
using Rule = sdbus::Struct<std::int64_t,              // id
                           std::string,               // action: "approve" or "deny"
                           std::string,               // path
                           std::string,               // sha256
                           std::string,               // script_path
                           std::string,               // script_sha256
                           std::vector<std::string>,  // only_to
                           std::vector<std::string>,  // allow_env
                           std::string,               // kind
                           std::string>;              // covers: "all" or a user name

// (xxiussssqsqssxsss)
using Attempt = sdbus::Struct<std::int64_t,   // id
                              std::int64_t,   // time, us since the epoch
                              std::int32_t,   // pid
                              std::uint32_t,  // uid
                              std::string,    // path
                              std::string,    // script_path
                              std::string,    // cmdline
                              std::string,    // src
                              std::uint16_t,  // src_port
                              std::string,    // dst
                              std::uint16_t,  // dst_port
                              std::string,    // verdict
                              std::string,    // reason
                              std::int64_t,   // program_id, 0 when unattributed
                              std::string,    // cmdline_hidden, "" when cmdline is given
                              std::string,    // channel: "" a connection, "mta"
                              std::string>;   // queue_id, the MTA's

// (xxxsussasbs): an alert of the zombie detector.
using Alert = sdbus::Struct<std::int64_t,              // id
                            std::int64_t,              // time, us since the epoch
                            std::int64_t,              // program_id, 0 when unknown
                            std::string,               // path
                            std::uint32_t,             // uid
                            std::string,               // tier: "soft" or "hard"
                            std::string,               // summary
                            std::vector<std::string>,  // reasons, heaviest first
                            bool,                      // acknowledged
                            std::string>;              // evidence, a JSON object

}  // namespace mailguard::dbus::wire
