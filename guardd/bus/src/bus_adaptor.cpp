#include "mailguard/bus/bus_adaptor.hpp"

#include <utility>

#include "bus_link.hpp"
#include "guard_object.hpp"

namespace mailguard::bus {

// The wiring: the link owns the connection, the object lives on it while connected,
// and the core's observers emit signals through the object when there is one.
struct BusAdaptor::Impl {
  explicit Impl(service::Guard& g) : guard(g) {}

  template <class F>
  void emit(F&& f) {
    if (!object || !link || !link->connected()) return;
    try {
      f(*object);
    } catch (const sdbus::Error& e) {
      link->markLost(e.getMessage());
    }
  }

  service::Guard& guard;
  std::unique_ptr<GuardObject> object;  // declared before the link: destroyed after it
  std::unique_ptr<BusLink> link;
};

BusAdaptor::BusAdaptor(service::Guard& guard, service::EventLoop& loop, std::string busName)
    : impl_(std::make_shared<Impl>(guard)) {
  Impl* impl = impl_.get();
  guard.onAttempt = [impl](const store::AttemptRecord& a) {
    impl->emit([&](GuardObject& o) { o.emitAttempt(a); });
  };
  guard.onAlert = [impl](const store::AlertRecord& a) {
    impl->emit([&](GuardObject& o) { o.emitAlert(a); });
  };
  guard.onProgramChanged = [impl](const service::ProgramView& p) {
    impl->emit([&](GuardObject& o) { o.emitProgram(p); });
  };
  guard.onAuditFinished = [impl](const service::AuditSummary& a) {
    impl->emit([&](GuardObject& o) { o.emitAudit(a); });
  };
  guard.onOutsideChecked = [impl](const std::string& report) {
    impl->emit([&](GuardObject& o) { o.emitOutsideChecked(report); });
  };
  impl->link = std::make_unique<BusLink>(
      loop, std::move(busName),
      [impl](sdbus::IConnection& connection) {
        impl->object = std::make_unique<GuardObject>(connection, impl->guard);
      },
      [impl] { impl->object.reset(); });
}

BusAdaptor::~BusAdaptor() {
  impl_->guard.onAttempt = nullptr;
  impl_->guard.onProgramChanged = nullptr;
  impl_->guard.onAlert = nullptr;
  impl_->guard.onAuditFinished = nullptr;
  impl_->guard.onOutsideChecked = nullptr;
  impl_->link.reset();  // detaches the object, then closes the connection
}

bool BusAdaptor::connected() const { return impl_->link && impl_->link->connected(); }

}  // namespace mailguard::bus
