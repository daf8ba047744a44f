#include "alert_sink.hpp"

#include <algorithm>

#include "mailguard/service/log.hpp"

namespace mailguard::service {

std::int64_t AlertSink::raise(store::AlertRecord record) {
  const std::int64_t id = nextId_++;
  record.id = id;
  if (onAlert_) onAlert_(record);
  {
    const std::lock_guard lock(unwritten_->mutex);
    unwritten_->byId.emplace(id, record);
    if (unwritten_->byId.size() > kMaxUnwritten) unwritten_->byId.erase(unwritten_->byId.begin());
  }
  // The writer keeps an alert the disk refused and writes it once there is room; status
  // tells the owner meanwhile (StoreWriter::stats), so the error is only logged here.
  writer_.addAlert(std::move(record), [pending = unwritten_, id](Result<void> written) {
    if (!written) {
      log::error(written.error().message);
      return;
    }
    const std::lock_guard lock(pending->mutex);
    pending->byId.erase(id);
  });
  return id;
}

std::vector<store::AlertRecord> AlertSink::unwritten() const {
  const std::lock_guard lock(unwritten_->mutex);
  std::vector<store::AlertRecord> out;
  out.reserve(unwritten_->byId.size());
  for (auto it = unwritten_->byId.rbegin(); it != unwritten_->byId.rend(); ++it) {
    out.push_back(it->second);
  }
  return out;
}

std::vector<store::AlertRecord> withUnwritten(std::vector<store::AlertRecord> stored,
                                              const std::vector<store::AlertRecord>& unwritten,
                                              std::uint32_t limit) {
  for (const auto& a : unwritten) {
    const bool there = std::any_of(stored.begin(), stored.end(),
                                   [&a](const store::AlertRecord& s) { return s.id == a.id; });
    if (!there) stored.push_back(a);
  }
  std::sort(stored.begin(), stored.end(),
            [](const store::AlertRecord& a, const store::AlertRecord& b) { return a.id > b.id; });
  if (stored.size() > limit) stored.resize(limit);
  return stored;
}

}  // namespace mailguard::service
