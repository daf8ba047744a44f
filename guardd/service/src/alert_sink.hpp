#pragma once
// Where every alert goes (the detector's, the audit's, the tamper watch's): numbered by
// guardd, written by the store writer off the loop (kept by it while the disk is full),
// logged and announced at once. Private to guardd/service.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "mailguard/store/store.hpp"

namespace mailguard::service {

class AlertSink {
 public:
  using Observer = std::function<void(const store::AlertRecord&)>;
  // `onAlert` is read at each alert (the D-Bus adaptor sets it after start-up).
  AlertSink(store::StoreWriter& writer, std::int64_t lastId, const Observer& onAlert)
      : writer_(writer), nextId_(lastId + 1), onAlert_(onAlert) {}

  // Sets record.id and hands the alert on; returns the id.
  std::int64_t raise(store::AlertRecord record);

  // Alerts raised and not yet written (the writer is behind, or the disk is full), newest
  // first: a reader of the store adds them, so an alert is listed from the moment it is
  // announced (a quarantine and its alert are seen together).
  [[nodiscard]] std::vector<store::AlertRecord> unwritten() const;

 private:
  // Shared with the writer thread's callbacks, which may outlive this sink.
  struct Unwritten {
    mutable std::mutex mutex;
    std::map<std::int64_t, store::AlertRecord> byId;
  };
  // An alert the disk keeps refusing stays listed, up to this many (the oldest go first).
  static constexpr std::size_t kMaxUnwritten = 1000;

  store::StoreWriter& writer_;
  std::int64_t nextId_;
  const Observer& onAlert_;
  std::shared_ptr<Unwritten> unwritten_ = std::make_shared<Unwritten>();
};

// `stored` (newest first, as the store lists them) with the alerts not yet written, at
// most `limit`, newest first; a stored alert wins over its unwritten copy.
std::vector<store::AlertRecord> withUnwritten(std::vector<store::AlertRecord> stored,
                                              const std::vector<store::AlertRecord>& unwritten,
                                              std::uint32_t limit);

}  // namespace mailguard::service
