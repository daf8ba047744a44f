#include "shared_socket.hpp"

#include <utility>

namespace mailguard::service {

Result<std::optional<SharedSocket>> unapprovedCoHolder(
    procinfo::ProcessResolver& resolver, const procinfo::ProcessInfo& process, std::uint64_t inode,
    const std::function<bool(const procinfo::ProcessInfo&)>& allowedAlone) {
  // Held or rejected anyway: who else holds the socket changes nothing, and the lookup of
  // other holders may read every process.
  if (!allowedAlone(process)) return std::optional<SharedSocket>{};
  for (const int pid : resolver.otherHolders(process.pid, inode)) {
    auto other = resolver.describe(pid);
    // Unknown yet is not allowed: the caller decides once the holder's file is hashed.
    if (!other && other.error().code == Errc::Pending) return other.error();
    // A holder that exited while it was read has closed its copy of the socket.
    if (!other || allowedAlone(*other)) continue;
    return std::optional<SharedSocket>{
        SharedSocket{std::move(*other), "; its socket is also held by the approved " +
                                            process.identity.display() + " (pid " +
                                            std::to_string(process.pid) + ")"}};
  }
  return std::optional<SharedSocket>{};
}

}  // namespace mailguard::service
