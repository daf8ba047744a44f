#pragma once
// One socket held by an approved program and by another one.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "mailguard/procinfo/procinfo.hpp"

namespace mailguard::service {

struct SharedSocket {
  procinfo::ProcessInfo holder;  // the holder the attempt is decided and recorded for
  std::string note;              // for the decision's reason: who else holds the socket
};

// When `process`, the holder of socket `inode` that the resolver found, would be allowed on
// its own, the first other holder that would not be. A bot can create a socket, start the
// approved mail client holding it (inherited over exec), then connect with its own copy:
// the client cannot vouch for the bot. nullopt: no other holder, or all would be allowed.
// An Errc::Pending error: another holder's file is still being hashed (ask again).
Result<std::optional<SharedSocket>> unapprovedCoHolder(
    procinfo::ProcessResolver& resolver, const procinfo::ProcessInfo& process, std::uint64_t inode,
    const std::function<bool(const procinfo::ProcessInfo&)>& allowedAlone);

}  // namespace mailguard::service
