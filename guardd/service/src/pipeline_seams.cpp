#include "pipeline_seams.hpp"

#include <unistd.h>

#include "mailguard/service/log.hpp"
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
  Attributed found;
  found.process = std::move(holder.value());
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

namespace mailguard::service {
namespace {

// /proc/PID/stat's start time is the task's start_boottime in clock ticks.
std::uint64_t ticksOf(std::uint64_t boottimeNs) {
  static const auto ticksPerSecond = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  return boottimeNs / (1'000'000'000ULL / ticksPerSecond);
}

}  // namespace

Result<Attributed> KernelAttribution::attribute(const netfilter::QueuedPacket& packet,
                                                const AllowedAlone& allowedAlone) {
  if (!packet.tuple) return makeError("not a TCP packet");
  auto owner = sockets_.findTcp(*packet.tuple);
  if (!owner) return owner.error();
  if (!owner.value()) return makeError("the socket was already closed");
  const auto cookie = owner.value()->cookie;
  const auto stamp = kernel_.stamp(cookie);
  if (!stamp) {
    auto found = byProc_.attribute(packet, allowedAlone);
    if (found) found->cookie = cookie;
    return found;
  }
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
