#pragma once
// Approve and Deny on a thread of their own: guardd may ask polkit, and polkit may ask
// the user for a password for as long as they take, while notifications keep coming.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "mailguard/common/fd.hpp"
#include "mailguard/dbus/client.hpp"

namespace mailguard::notify {

struct PolicyRequest {
  enum class Verb { Approve, Deny };
  Verb verb = Verb::Approve;
  std::string target;  // a decimal program id or an absolute path (Guard1's "target")
  std::string script;
};

struct PolicyOutcome {
  PolicyRequest request;
  std::optional<dbus::ClientError> error;  // empty: guardd did it
  dbus::Program program;
};

class PolicyWorker {
 public:
  PolicyWorker();
  ~PolicyWorker();  // waits for the call under way, if any
  PolicyWorker(const PolicyWorker&) = delete;
  PolicyWorker& operator=(const PolicyWorker&) = delete;

  void submit(PolicyRequest request);
  // Readable when outcomes are waiting (an eventfd); then call take().
  [[nodiscard]] int readyFd() const { return ready_.get(); }
  std::vector<PolicyOutcome> take();

 private:
  void run(const std::stop_token& stop);
  PolicyOutcome perform(const PolicyRequest& request);

  Fd ready_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<PolicyRequest> requests_;
  std::vector<PolicyOutcome> outcomes_;
  std::unique_ptr<dbus::Client> client_;  // used by the worker thread only
  std::jthread thread_;                   // last: started after everything it uses
};

}  // namespace mailguard::notify
