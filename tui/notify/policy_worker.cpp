#include "policy_worker.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

namespace mailguard::notify {

PolicyWorker::PolicyWorker() : ready_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (!ready_) throw std::system_error(errno, std::generic_category(), "eventfd");
  thread_ = std::jthread([this](const std::stop_token& stop) { run(stop); });
}

PolicyWorker::~PolicyWorker() {
  thread_.request_stop();
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PolicyWorker::submit(PolicyRequest request) {
  {
    const std::scoped_lock lock(mutex_);
    requests_.push_back(std::move(request));
  }
  wake_.notify_one();
}

std::vector<PolicyOutcome> PolicyWorker::take() {
  std::uint64_t n = 0;
  // Nonblocking: EAGAIN when nothing was signalled since the last read.
  [[maybe_unused]] const auto got = ::read(ready_.get(), &n, sizeof n);
  const std::scoped_lock lock(mutex_);
  return std::exchange(outcomes_, {});
}

void PolicyWorker::run(const std::stop_token& stop) {
  for (;;) {
    PolicyRequest request;
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait(lock, stop, [this] { return !requests_.empty(); })) return;
      request = std::move(requests_.front());
      requests_.pop_front();
    }
    auto outcome = perform(request);
    {
      const std::scoped_lock lock(mutex_);
      outcomes_.push_back(std::move(outcome));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto put = ::write(ready_.get(), &one, sizeof one);
  }
}

PolicyOutcome PolicyWorker::perform(const PolicyRequest& request) {
  PolicyOutcome out{request, std::nullopt, {}};
  if (!client_) {
    auto c = dbus::Client::connect();
    if (const auto* e = dbus::errorOf(c)) {
      out.error = *e;
      return out;
    }
    client_ = std::move(std::get<std::unique_ptr<dbus::Client>>(c));
  }
  auto r = request.verb == PolicyRequest::Verb::Approve
               ? client_->approve(request.target, request.script)
               : client_->deny(request.target, request.script);
  if (const auto* e = dbus::errorOf(r)) {
    out.error = *e;
    // A lost bus is reconnected on the next request.
    if (e->kind == dbus::ClientError::Kind::NoBus) client_.reset();
  } else {
    out.program = std::get<dbus::Program>(r);
  }
  return out;
}

}  // namespace mailguard::notify
