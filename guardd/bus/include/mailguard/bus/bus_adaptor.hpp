#pragma once
// guardd on the system bus: serves org.mailguard.Guard1 from service::Guard inside
// guardd's one loop. The bus is optional for enforcement (DESIGN.md "Independence of
// the parts"): without a bus this keeps retrying every second, and a lost bus is
// reconnected, while verdicts go on regardless.
#include <memory>
#include <string>

#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"

namespace mailguard::bus {

class BusAdaptor {
 public:
  // Never throws for want of a bus. Sets guard.onAttempt and guard.onProgramChanged
  // (to emit the signals) and clears them again in the destructor.
  BusAdaptor(service::Guard& guard, service::EventLoop& loop,
             std::string busName = "org.mailguard.Guard1");
  ~BusAdaptor();
  BusAdaptor(const BusAdaptor&) = delete;
  BusAdaptor& operator=(const BusAdaptor&) = delete;

  // Owns the name and serves the object right now.
  [[nodiscard]] bool connected() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace mailguard::bus
