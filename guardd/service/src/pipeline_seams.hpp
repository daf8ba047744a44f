#pragma once
// The seams of the verdict pipeline (verdict_pipeline.hpp), named for their role, each
// with its real implementation and its fake side by side (STYLE.md section 2). The
// packet source and verdict sink are netfilter's (PacketSource, FakePacketSource).
// Private to guardd/service.
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/connection.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

// --- Attribution: which process holds the socket of a queued packet ----------------

struct Attributed {
  procinfo::ProcessInfo process;
  std::string sharedNote;    // "; its socket is also held by ...": for the decision's reason
  std::uint64_t cookie = 0;  // the socket's cookie, when known (0: not)
  // With kernel attribution: the key of the file the process ran when it called connect(),
  // and what the kernel saw in it that was not the file's own code ("" when nothing).
  std::optional<kernel::ExeKey> key;
  std::string taint;
  std::optional<kernel::Stamp> stamp;  // byStamp()'s, for afterEarlyVerdict()
};

class Attribution {
 public:
  // Would this process be allowed on its own? (An approved holder of a socket cannot
  // vouch for another holder of the same socket.)
  using AllowedAlone = std::function<bool(const procinfo::ProcessInfo&)>;
  virtual ~Attribution() = default;
  // The error's message says why the packet could not be attributed.
  virtual Result<Attributed> attribute(const netfilter::QueuedPacket& packet,
                                       const AllowedAlone& allowedAlone) = 0;
  // What the kernel's stamp alone says, before attribute() reads /proc: the connecting
  // task (pid, ppid, uid, start time from the stamp) and, when a process running the same
  // executable (by its key) was attributed before, that file's identity; no command line,
  // environment or terminal. Enough for a verdict that is not Allow (nothing read later
  // can loosen one; see VerdictPipeline::onPacket), never for an Allow. nullopt without a
  // stamp, for an interpreter (its identity is the script), or a file not seen yet.
  virtual std::optional<Attributed> byStamp(const netfilter::QueuedPacket& /*packet*/) {
    return std::nullopt;
  }
  // After the verdict byStamp() allowed went out: who to record and show the detector. The
  // verdict stands whatever this says, so a description made of the same process (tgid and
  // start time) running the same file less than a moment ago will do, read from memory: a
  // queued SYN of a held or refused program then costs no /proc access at all. Otherwise as
  // attribute().
  virtual Result<Attributed> afterEarlyVerdict(const netfilter::QueuedPacket& packet,
                                               const Attributed& /*early*/,
                                               const AllowedAlone& allowedAlone) {
    return attribute(packet, allowedAlone);
  }
};

// The real one: sock_diag finds the socket by its exact tuple, /proc its holder.
class ProcAttribution final : public Attribution {
 public:
  ProcAttribution(procinfo::SocketTable& sockets, procinfo::ProcessResolver& resolver)
      : sockets_(sockets), resolver_(resolver) {}
  Result<Attributed> attribute(const netfilter::QueuedPacket& packet,
                               const AllowedAlone& allowedAlone) override;
  // The holder of a socket already found (the kernel's attribution without a stamp).
  Result<Attributed> byHolder(const netfilter::QueuedPacket& packet,
                              const procinfo::SocketOwner& owner, const AllowedAlone& allowedAlone);

 private:
  procinfo::SocketTable& sockets_;
  procinfo::ProcessResolver& resolver_;
};

// The kernel's word: the BPF hook stamped the socket with the task that called connect()
// (its cookie, from sock_diag, names the stamp), so no /proc scan is needed and a process
// that execs another program after connecting is not taken for that program. Sockets
// without a stamp (made before guardd attached, or outside its cgroup) are attributed
// through /proc as before.
class KernelAttribution final : public Attribution {
 public:
  KernelAttribution(procinfo::SocketTable& sockets, procinfo::ProcessResolver& resolver,
                    const procinfo::ProcFs& proc, kernel::KernelIdentity& kernel)
      : sockets_(sockets),
        resolver_(resolver),
        proc_(proc),
        kernel_(kernel),
        byProc_(sockets, resolver) {}
  Result<Attributed> attribute(const netfilter::QueuedPacket& packet,
                               const AllowedAlone& allowedAlone) override;
  std::optional<Attributed> byStamp(const netfilter::QueuedPacket& packet) override;
  Result<Attributed> afterEarlyVerdict(const netfilter::QueuedPacket& packet,
                                       const Attributed& early,
                                       const AllowedAlone& allowedAlone) override;

  // Identities remembered by executable key (non-interpreters only).
  static constexpr std::size_t kMaxIdentities = 1024;

 private:
  // The socket and stamp byStamp() found, reused by attribute() for the same packet.
  struct Found {
    std::uint32_t packetId = 0;
    procinfo::SocketOwner owner;
    std::optional<kernel::Stamp> stamp;
  };
  Result<Found> socketAndStamp(const netfilter::QueuedPacket& packet);
  // The task that called connect(), described from /proc, if it is still the process the
  // stamp names and still runs the file it ran then.
  Result<Attributed> connector(const kernel::Stamp& stamp, std::uint64_t cookie);
  procinfo::SocketTable& sockets_;
  procinfo::ProcessResolver& resolver_;
  const procinfo::ProcFs& proc_;
  kernel::KernelIdentity& kernel_;
  ProcAttribution byProc_;
  std::optional<Found> found_;
  // The identity (path, hash, ...) of each executable key a described process ran when
  // it connected and still ran afterwards. A key names one state of one file: its inode,
  // device and ctime, which any write, rename, link or unlink changes.
  std::map<kernel::ExeKey, rules::ProgramIdentity> identities_;
};

// For tests: the process behind each source port.
class FakeAttribution final : public Attribution {
 public:
  std::map<std::uint16_t, procinfo::ProcessInfo> bySourcePort;
  std::set<std::uint16_t> hashing;  // source ports whose program's file is being hashed
  // Kernel attribution, per source port: the socket's cookie, the connecting file's key
  // and the taint the kernel saw.
  std::map<std::uint16_t, std::uint64_t> cookies;
  std::map<std::uint16_t, kernel::ExeKey> keys;
  std::map<std::uint16_t, std::string> taints;
  // byStamp(), per source port: what the stamp alone gives (nothing: nullopt); and how
  // many verdicts `verdictsSent` counted when attribute() was called for each port.
  std::map<std::uint16_t, procinfo::ProcessInfo> stamped;
  std::function<std::size_t()> verdictsSent;
  std::map<std::uint16_t, std::size_t> verdictsBeforeAttribute;
  std::optional<Attributed> byStamp(const netfilter::QueuedPacket& packet) override {
    if (!packet.tuple || !stamped.contains(packet.tuple->srcPort)) return std::nullopt;
    Attributed early;
    early.process = stamped.at(packet.tuple->srcPort);
    return early;
  }
  Result<Attributed> attribute(const netfilter::QueuedPacket& packet,
                               const AllowedAlone& /*allowedAlone*/) override {
    if (!packet.tuple) return makeError("not a TCP packet");
    if (verdictsSent) verdictsBeforeAttribute[packet.tuple->srcPort] = verdictsSent();
    if (hashing.contains(packet.tuple->srcPort)) {
      return makeError("its file is being hashed", Errc::Pending);
    }
    const auto it = bySourcePort.find(packet.tuple->srcPort);
    if (it == bySourcePort.end()) return makeError("the socket was already closed");
    Attributed found;
    found.process = it->second;
    const auto port = packet.tuple->srcPort;
    if (cookies.contains(port)) found.cookie = cookies.at(port);
    if (keys.contains(port)) found.key = keys.at(port);
    if (taints.contains(port)) found.taint = taints.at(port);
    return found;
  }
};

// --- Assessment: the zombie detector as the pipeline sees it -------------------------

struct DetectorVerdict {
  bool quarantined = false;   // the principal is quarantined (now or before): reject
  bool suspicious = false;    // any alert tier: it leaves the kernel's fast path
  bool throttle = false;      // soft tier and a new destination too soon: hold
  bool bulkDeclared = false;  // the owner declared a bulk send for it
  std::string reason;         // why throttled, for the attempt's reason
};

class Assessment {
 public:
  virtual ~Assessment() = default;
  // Once per new connection (`firstSyn`), or for a SYN retransmission of a held one.
  virtual DetectorVerdict assess(const procinfo::ProcessInfo& process, const ProgramView& program,
                                 const rules::ConnectionTuple& tuple, bool firstSyn) = 0;
  // After the verdict is sent: store and signal what the assessment raised (no disk
  // write delays a verdict).
  virtual void afterVerdict() = 0;
  // The connection was let through: its outcome goes to the detector.
  virtual void allowed(const procinfo::ProcessInfo& process,
                       const rules::ConnectionTuple& tuple) = 0;
};

// For tests: a detector whose answers the test sets per executable path.
class FakeAssessment final : public Assessment {
 public:
  std::map<std::string, DetectorVerdict> byPath;
  std::vector<std::pair<std::string, bool>> assessed;  // (path, firstSyn) of every call
  std::vector<std::string> allowedPaths;
  DetectorVerdict assess(const procinfo::ProcessInfo& process, const ProgramView& /*program*/,
                         const rules::ConnectionTuple& /*tuple*/, bool firstSyn) override {
    assessed.emplace_back(process.identity.path, firstSyn);
    const auto it = byPath.find(process.identity.path);
    return it == byPath.end() ? DetectorVerdict{} : it->second;
  }
  void afterVerdict() override {}
  void allowed(const procinfo::ProcessInfo& process,
               const rules::ConnectionTuple& /*tuple*/) override {
    allowedPaths.push_back(process.identity.path);
  }
};

// --- Records: where attempts and program rows go (the store writer) ------------------

class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void record(store::AttemptRecord attempt) = 0;
  virtual void record(store::ProgramRecord program) = 0;
};

// The real one: the store writer, which batches them off the loop.
class WriterRecordSink final : public RecordSink {
 public:
  explicit WriterRecordSink(store::StoreWriter& writer) : writer_(writer) {}
  void record(store::AttemptRecord attempt) override { writer_.submit(std::move(attempt)); }
  void record(store::ProgramRecord program) override { writer_.submit(std::move(program)); }

 private:
  store::StoreWriter& writer_;
};

class FakeRecordSink final : public RecordSink {
 public:
  std::vector<store::AttemptRecord> attempts;
  std::vector<store::ProgramRecord> programs;
  void record(store::AttemptRecord attempt) override { attempts.push_back(std::move(attempt)); }
  void record(store::ProgramRecord program) override { programs.push_back(std::move(program)); }
};

}  // namespace mailguard::service
