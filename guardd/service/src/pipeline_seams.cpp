#include "pipeline_seams.hpp"

#include "shared_socket.hpp"

namespace mailguard::service {

Result<Attributed> ProcAttribution::attribute(const netfilter::QueuedPacket& packet,
                                              const AllowedAlone& allowedAlone) {
  if (!packet.tuple) return makeError("not a TCP packet");
  auto owner = sockets_.findTcp(*packet.tuple);
  if (!owner) return owner.error();
  if (!owner.value()) return makeError("the socket was already closed");
  auto holder = resolver_.describeHolder(owner.value()->inode, packet.uid);
  if (!holder) return holder.error();
  Attributed found{std::move(holder.value()), {}};
  // An approved holder of the socket cannot vouch for another holder.
  auto shared = unapprovedCoHolder(resolver_, found.process, owner.value()->inode, allowedAlone);
  if (!shared) return shared.error();
  if (*shared) {
    found.process = std::move((*shared)->holder);
    found.sharedNote = std::move((*shared)->note);
  }
  return found;
}

}  // namespace mailguard::service
