#pragma once
// What the kernel may decide by itself: the files whose next connects the BPF hook
// approves (the table accepts their marked SYN before the queue rule) or refuses
// (connect() fails with EPERM). It is a cache of the pipeline's own decisions: a key
// enters `approved` only after guardd hashed the file behind it and an approval matched
// it, and any change of policy empties it (the next connect of each program goes through
// the queue again and is learned anew). Private to guardd/service; with the loop's
// work lock held (the loop or the verdict thread).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "mailguard/common/bounded_map.hpp"
#include "mailguard/kernel/kernel_identity.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/policy.hpp"

namespace mailguard::service {

class KernelFastPath {
 public:
  // Distinct files decided in the kernel at once; beyond, the oldest goes back to the
  // queue (a bot rewriting itself must not grow the kernel's maps).
  static constexpr std::size_t kMaxKeys = 4096;

  explicit KernelFastPath(kernel::KernelIdentity& kernel) : kernel_(kernel) {}

  // The queue path decided an attempt of this file (its key as the kernel saw it at
  // connect()): approved (not pinned to destinations), untainted, not an interpreter (a script's
  // identity is more than its interpreter's file), not suspicious -> approved in the kernel from
  // now on; denied by the owner -> refused in the kernel (EPERM); anything else -> queued. A
  // quarantine is not refused in the kernel: it is the detector's verdict on one user's
  // use of the file (its principal is hash, path and uid), which the queue path applies.
  // Keys are per file (device, inode, ctime), so a copy of an approved file elsewhere is
  // never this file's key: neither its attempts nor its quarantine touch this entry.
  void learn(const kernel::ExeKey& key, const rules::ProgramIdentity& identity,
             const rules::Decision& decision, bool tainted, bool suspicious);
  // The detector has doubts (an alert tier, a quarantine): its connects go through the
  // queue again, from the next one on.
  void requeue(const kernel::ExeKey& key);
  // Rules, quarantines or releases changed: the kernel decides nothing until relearned.
  void forgetAll();

  // The program a key was learned for (a kernel event names only the key).
  [[nodiscard]] const rules::ProgramIdentity* identityOf(const kernel::ExeKey& key) const;
  [[nodiscard]] std::size_t size() const { return keys_.size(); }

 private:
  enum class Mode { Approved, Refused };
  struct Entry {
    rules::ProgramIdentity identity;
    Mode mode = Mode::Approved;
  };
  void put(const kernel::ExeKey& key, const rules::ProgramIdentity& identity, Mode mode);
  void drop(const kernel::ExeKey& key);
  void failed(const Error& e);

  kernel::KernelIdentity& kernel_;
  BoundedMap<kernel::ExeKey, Entry> keys_{kMaxKeys};
  std::uint64_t errorsLogged_ = 0;
};

}  // namespace mailguard::service
