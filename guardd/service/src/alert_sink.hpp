#pragma once
// Where every alert goes (the detector's, the audit's, the tamper watch's): numbered by
// guardd, written by the store writer off the loop (kept by it while the disk is full),
// logged and announced at once. Private to guardd/service.
#include <cstdint>
#include <functional>

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

 private:
  store::StoreWriter& writer_;
  std::int64_t nextId_;
  const Observer& onAlert_;
};

}  // namespace mailguard::service
