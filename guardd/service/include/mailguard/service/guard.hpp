#pragma once
// The core of guardd: wires netfilter, procinfo, policy and store together and owns
// the state the D-Bus adaptor reads and changes. main.cpp builds one and runs it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "mailguard/netfilter/packet_source.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/policy.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/store/store.hpp"

namespace mailguard::service {

struct Counters {
  std::uint64_t allowed = 0;
  std::uint64_t held = 0;
  std::uint64_t rejected = 0;
  std::uint64_t queueDropped = 0;     // packets the kernel dropped because the queue was full
  std::uint64_t attemptsDropped = 0;  // attempts not recorded because the writer was behind
  std::uint64_t storeErrors = 0;
};

struct StatusInfo {
  bool enforcing = false;  // the table is in place and the queue is bound
  std::string backend;     // "nft-queue" or "xt-compat"
  std::string version;
  Counters counters;
  std::string storeError;  // last store error, empty when healthy
};

struct ProgramView {
  std::int64_t id = 0;
  rules::ProgramIdentity identity;
  std::uint32_t uid = 0;
  rules::ProgramState state = rules::ProgramState::Pending;
  std::int64_t attempts = 0;
  TimePoint lastAttempt{};
  TimePoint firstSeen{};
};

// How a caller names a program: its id in the programs list, or a path (the file's
// current content is what gets approved), optionally with a script for interpreters.
struct ProgramRef {
  std::variant<std::int64_t, std::string> target;
  std::string script;  // only with a path: the interpreter's script
};

// Failures the D-Bus layer maps onto named errors.
struct CoreError {
  enum class Kind { InvalidArgument, NotFound, Failed };
  Kind kind;
  std::string message;
};
template <class T>
using CoreResult = std::variant<T, CoreError>;

class Guard {
 public:
  struct Options {
    rules::Settings settings;
    std::filesystem::path stateDir = "/var/lib/mailguard";
    std::string tableName = rules::kTableName;
  };

  // Opens the store, applies the table, binds the queue. Errors carry a message
  // the user can act on (not root, netlink refused, queue busy, state dir).
  static Result<std::unique_ptr<Guard>> create(Options options, EventLoop& loop);
  ~Guard();

  // On SIGTERM/SIGINT main stops the loop; shutdown() flushes the store and removes
  // the table only when the settings ask for it (remove_rules_on_exit).
  void shutdown();

  // Queries and commands, for the D-Bus adaptor (all on the loop thread).
  [[nodiscard]] StatusInfo status() const;
  [[nodiscard]] std::vector<ProgramView> programs() const;
  Result<std::vector<store::AttemptRecord>> attempts(const store::AttemptQuery& q);
  CoreResult<ProgramView> approve(const ProgramRef& ref);
  CoreResult<ProgramView> deny(const ProgramRef& ref);
  CoreResult<bool> forget(const ProgramRef& ref);

  // Observers for signals; called on the loop thread after the fact.
  std::function<void(const store::AttemptRecord&)> onAttempt;
  std::function<void(const ProgramView&)> onProgramChanged;

 private:
  explicit Guard(Options options, EventLoop& loop);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::service
