#include "pipeline_seams.hpp"

#include <unistd.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/rules/identity.hpp"
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

// The argv area an interpreter's script path was read from, byte for byte: the resolver
// split /proc/PID/cmdline at each NUL, so joining its parts with a NUL after each gives
// those bytes back (hashing them, not a second read, leaves no window to change the text
// back in between). The kernel reads the area as it is when its last byte is a NUL; when
// the program overwrote that NUL (setproctitle style) it returns only the first string,
// up to its NUL, running on into the environment if need be, so the text is shorter or
// longer than the area exec made, whose last byte is always a NUL: a different length, a
// different digest. The one ambiguity, no NUL at all, adds a byte here: longer still.
std::string argvAreaOf(const std::vector<std::string>& cmdline) {
  std::string area;
  for (const auto& arg : cmdline) {
    area += arg;
    area += '\0';
  }
  return area;
}

// Why an interpreter's command line cannot name its script: it is not what exec gave it.
// Empty when it is, or when the process started before recording began (nothing to
// compare with). A command line over procinfo's 1 MiB read limit reads as changed.
std::string commandLineDoubt(const kernel::KernelIdentity& kernel, const kernel::Stamp& stamp,
                             const procinfo::ProcessInfo& process) {
  if (!stamp.argv) {
    // Started before the exec hook was attached: it cannot tell, as on the /proc path.
    if (process.startTime < ticksOf(kernel.argvRecordedSinceNs())) return {};
    return "its command line as it started was not recorded (its parent's was not, or the "
           "kernel's table dropped it), so it cannot say what it runs";
  }
  const auto now = kernel.digestArgv(argvAreaOf(process.cmdline));
  if (now == *stamp.argv) return {};
  return "its command line changed after it started (it no longer says what it ran): it was "
         "given " +
         std::to_string(stamp.argv->length) + " bytes of arguments at exec and shows " +
         (now.length == stamp.argv->length ? "other bytes"
                                           : std::to_string(now.length) + " bytes") +
         " now, so no script approval applies";
}

}  // namespace

// Without the exec hook (identity = "off") nothing recorded what a process's command line
// was when it started: an interpreter that rewrote its own argv to name an approved script
// cannot be told from one that runs it. Only KernelAttribution checks that.
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

Result<KernelAttribution::Found> KernelAttribution::socketAndStamp(
    const netfilter::QueuedPacket& packet) {
  if (found_ && found_->packetId == packet.id) return *std::exchange(found_, std::nullopt);
  found_.reset();
  // The kernel's own table of stamped sockets by tuple first: no sock_diag round trip.
  if (packet.tuple) {
    if (auto byTuple = kernel_.stampOf(*packet.tuple)) {
      procinfo::SocketOwner owner;
      owner.cookie = byTuple->cookie;
      owner.uid = byTuple->stamp.uid;
      return Found{packet.id, owner, std::move(byTuple->stamp)};
    }
  }
  auto owner = socketOf(sockets_, packet);
  if (!owner) return owner.error();
  return Found{packet.id, *owner, kernel_.stamp(owner->cookie)};
}

std::optional<Attributed> KernelAttribution::byStamp(const netfilter::QueuedPacket& packet) {
  auto found = socketAndStamp(packet);
  if (!found) return std::nullopt;  // attribute() finds it again and says why
  found_ = *found;
  const auto& stamp = found->stamp;
  if (!stamp) return std::nullopt;
  const auto it = identities_.find(stamp->key);
  if (it == identities_.end()) return std::nullopt;
  Attributed early;
  early.process.pid = static_cast<int>(stamp->tgid);
  early.process.ppid = static_cast<int>(stamp->ppid);
  early.process.uid = stamp->uid;
  early.process.startTime = ticksOf(stamp->startBoottimeNs);
  early.process.identity = it->second;
  early.cookie = found->owner.cookie;
  early.key = stamp->key;
  early.taint = kernel::describeTaint(stamp->taint);
  early.stamp = stamp;
  return early;
}

Result<Attributed> KernelAttribution::afterEarlyVerdict(const netfilter::QueuedPacket& packet,
                                                        const Attributed& early,
                                                        const AllowedAlone& allowedAlone) {
  if (found_ && found_->packetId == packet.id) found_.reset();
  if (!early.stamp) return attribute(packet, allowedAlone);
  const auto* known = resolver_.described(early.process.pid, early.process.startTime);
  if (known == nullptr || known->identity != early.process.identity) {
    // By the stamp, not the socket: a refused connect's socket is closed by now.
    return connector(*early.stamp, early.cookie);
  }
  Attributed found = early;
  found.process = *known;
  return found;
}

Result<Attributed> KernelAttribution::attribute(const netfilter::QueuedPacket& packet,
                                                const AllowedAlone& allowedAlone) {
  auto socket = socketAndStamp(packet);
  if (!socket) return socket.error();
  if (!socket->stamp) return byProc_.byHolder(packet, socket->owner, allowedAlone);
  return connector(*socket->stamp, socket->owner.cookie);
}

Result<Attributed> KernelAttribution::connector(const kernel::Stamp& stamp, std::uint64_t cookie) {
  // The task that called connect(), by its tgid: still the same process (start time), and
  // still running the file it ran then (a bot that connects and then execs the approved
  // client is not the client).
  const auto pid = static_cast<int>(stamp.tgid);
  auto process = resolver_.describe(pid);
  if (!process) {
    if (process.error().code == Errc::Pending) return process.error();
    return makeError("the process that connected (pid " + std::to_string(pid) +
                     ") exited: " + process.error().message);
  }
  if (process->startTime != ticksOf(stamp.startBoottimeNs)) {
    return makeError("the process that connected (pid " + std::to_string(pid) +
                     ") exited and its pid was reused");
  }
  const auto now = kernel::exeKeyOfPath(proc_.root() / std::to_string(pid) / "exe");
  if (!now || *now != stamp.key) {
    return makeError("pid " + std::to_string(pid) + " (" + log::quote(process->identity.path) +
                     " now) ran another program when it called connect(): it exec'd after "
                     "connecting, so its program now cannot vouch for that connection");
  }
  // An interpreter's identity is the script its command line names, and a program can
  // rewrite its own command line (python3 -c writing "python3 /srv/news.py" over its argv
  // through /proc/self/mem); the exec hook's record is what execve() was given. Other
  // programs are known by their file alone. (ProcAttribution has no such record: there a
  // rewritten command line is taken at its word.)
  auto& identity = process->identity;
  if (rules::isInterpreter(std::filesystem::path(identity.path).filename().string())) {
    if (auto doubt = commandLineDoubt(kernel_, stamp, *process); !doubt.empty())
      identity.scriptDoubt =
          identity.scriptDoubt.empty() ? std::move(doubt) : identity.scriptDoubt + "; " + doubt;
  } else if (!identity.isInterpreted()) {
    // The file it ran at connect() and runs now (the key check above): its identity is the
    // key's for byStamp(). Two parts are not fixed by the key: pathTrusted (a parent
    // directory's mode can change) and the path's text when the same file is seen through
    // another mount namespace. Either can only make byStamp()'s identity look less approved
    // than it is, never more: the early verdict is then a Hold that the next attempt,
    // described afresh here, corrects (fail closed, as the rest of the pipeline).
    if (identities_.size() >= kMaxIdentities && !identities_.contains(stamp.key))
      identities_.clear();
    identities_.insert_or_assign(stamp.key, identity);
  }
  Attributed found;
  found.process = std::move(process.value());
  found.cookie = cookie;
  found.key = stamp.key;
  found.taint = kernel::describeTaint(stamp.taint);
  return found;
}

}  // namespace mailguard::service
