#include "alert_sink.hpp"

#include "mailguard/service/log.hpp"

namespace mailguard::service {

std::int64_t AlertSink::raise(store::AlertRecord record) {
  record.id = nextId_++;
  if (onAlert_) onAlert_(record);
  // The writer keeps an alert the disk refused and writes it once there is room; status
  // tells the owner meanwhile (StoreWriter::stats), so the error is only logged here.
  writer_.addAlert(std::move(record), [](Result<void> written) {
    if (!written) log::error(written.error().message);
  });
  return nextId_ - 1;
}

}  // namespace mailguard::service
