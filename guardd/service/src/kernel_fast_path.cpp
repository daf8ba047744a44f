#include "kernel_fast_path.hpp"

#include <filesystem>

#include "mailguard/service/log.hpp"

namespace mailguard::service {

void KernelFastPath::learn(const kernel::ExeKey& key, const rules::ProgramIdentity& identity,
                           const rules::Decision& decision, bool tainted, bool suspicious) {
  using rules::Override;
  using rules::Verdict;
  // An interpreter never: what it runs (a script, `-c`, stdin) is not in its file.
  const bool interpreter =
      identity.isInterpreted() ||
      rules::isInterpreter(std::filesystem::path(identity.path).filename().string());
  // Nor an approval pinned to destinations: the approved map has no destination, so the
  // kernel would pass the program's connects to anywhere.
  const bool approved = decision.verdict == Verdict::Allow && decision.override == Override::None &&
                        !decision.pinned && !tainted && !suspicious && !interpreter &&
                        !identity.deleted && !identity.sha256.empty();
  // The owner's denial holds for the file whoever runs it (a quarantine's Reject carries
  // Override::Quarantine).
  const bool refused = decision.verdict == Verdict::Reject && decision.override == Override::None;
  if (approved) {
    put(key, identity, Mode::Approved);
  } else if (refused && !interpreter) {
    put(key, identity, Mode::Refused);
  } else {
    drop(key);
  }
}

void KernelFastPath::requeue(const kernel::ExeKey& key) { drop(key); }

void KernelFastPath::forgetAll() {
  if (keys_.size() == 0) return;
  keys_.clear();
  if (auto r = kernel_.forgetAll(); !r) failed(r.error());
}

const rules::ProgramIdentity* KernelFastPath::identityOf(const kernel::ExeKey& key) const {
  const auto* entry = keys_.find(key);
  return entry == nullptr ? nullptr : &entry->identity;
}

void KernelFastPath::put(const kernel::ExeKey& key, const rules::ProgramIdentity& identity,
                         Mode mode) {
  if (const auto* known = keys_.find(key); known != nullptr && known->mode == mode) return;
  // The oldest key goes back to the queue before a new one takes its place.
  if (!keys_.contains(key) && keys_.size() >= kMaxKeys) {
    const auto oldest = keys_.begin()->first;
    drop(oldest);
  }
  auto r = mode == Mode::Approved ? kernel_.allow(key) : kernel_.deny(key);
  if (!r) {
    failed(r.error());
    // Whatever the kernel holds now, it must not decide what guardd could not record.
    keys_.erase(key);
    if (auto back = kernel_.forget(key); !back) failed(back.error());
    return;
  }
  keys_.put(key, Entry{identity, mode});
}

void KernelFastPath::drop(const kernel::ExeKey& key) {
  if (!keys_.erase(key)) return;
  if (auto r = kernel_.forget(key); !r) failed(r.error());
}

void KernelFastPath::failed(const Error& e) {
  if (errorsLogged_++ % 1000 == 0) log::error("Failed to update the kernel's maps: " + e.message);
}

}  // namespace mailguard::service
