#include "pipeline_seams.hpp"

#include <unistd.h>

#include "mailguard/service/log.hpp"
#include "shared_socket.hpp"

namespace mailguard::service {
namespace {

// The queued packet's socket, found by its exact tuple (sock_diag).
Result<procinfo::SocketOwner> socketOf(procinfo::SocketTable& sockets,
                                       const netfilter::QueuedPacket& packet) {
  if (!packet.tuple) return makeError("not a TCP packet");
  auto owner = sockets.findTcp(*packet.tuple);
  if (!owner) return owner.error();
  if (!owner.value()) return makeError("the socket was already closed");
  return *owner.value();
}

// /proc/PID/stat's start time is the task's start_boottime in clock ticks.
std::uint64_t ticksOf(std::uint64_t boottimeNs) {
  static const auto ticksPerSecond = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  return boottimeNs / (1'000'000'000ULL / ticksPerSecond);
}

}  // namespace

Result<Attributed> ProcAttribution::attribute(const netfilter::QueuedPacket& packet,
                                              const AllowedAlone& allowedAlone) {
  auto owner = socketOf(sockets_, packet);
  if (!owner) return owner.error();
  return byHolder(packet, *owner, allowedAlone);
}

Result<Attributed> ProcAttribution::byHolder(const netfilter::QueuedPacket& packet,
                                             const procinfo::SocketOwner& owner,
                                             const AllowedAlone& allowedAlone) {
  auto holder = resolver_.describeHolder(owner.inode, packet.uid);
  if (!holder) return holder.error();
  Attributed found;
  found.process = std::move(holder.value());
  found.cookie = owner.cookie;
  // An approved holder of the socket cannot vouch for another holder.
  auto shared = unapprovedCoHolder(resolver_, found.process, owner.inode, allowedAlone);
  if (!shared) return shared.error();
  if (*shared) {
    found.process = std::move((*shared)->holder);
    found.sharedNote = std::move((*shared)->note);
  }
  return found;
}

Result<Attributed> KernelAttribution::attribute(const netfilter::QueuedPacket& packet,
                                                const AllowedAlone& allowedAlone) {
  auto owner = socketOf(sockets_, packet);
  if (!owner) return owner.error();
  const auto cookie = owner->cookie;
  const auto stamp = kernel_.stamp(cookie);
  if (!stamp) return byProc_.byHolder(packet, *owner, allowedAlone);
  // The task that called connect(), by its tgid: still the same process (start time), and
  // still running the file it ran then (a bot that connects and then execs the approved
  // client is not the client).
  const auto pid = static_cast<int>(stamp->tgid);
  auto process = resolver_.describe(pid);
  if (!process) {
    if (process.error().code == Errc::Pending) return process.error();
    return makeError("the process that connected (pid " + std::to_string(pid) +
                     ") exited: " + process.error().message);
  }
  if (process->startTime != ticksOf(stamp->startBoottimeNs)) {
    return makeError("the process that connected (pid " + std::to_string(pid) +
                     ") exited and its pid was reused");
  }
  const auto now = kernel::exeKeyOfPath(proc_.root() / std::to_string(pid) / "exe");
  if (!now || *now != stamp->key) {
    return makeError("pid " + std::to_string(pid) + " (" + log::quote(process->identity.path) +
                     " now) ran another program when it called connect(): it exec'd after "
                     "connecting, so its program now cannot vouch for that connection");
  }
  Attributed found;
  found.process = std::move(process.value());
  found.cookie = cookie;
  found.key = stamp->key;
  found.taint = kernel::describeTaint(stamp->taint);
  return found;
}

}  // namespace mailguard::service
