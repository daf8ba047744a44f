#pragma once
// The messages the MTA holds for guardd (exim: frozen), by the program that submitted
// them, kept in a file of guardd's state directory so that a restart of guardd forgets
// none: the messages themselves stay in the MTA's spool, which survives both restarts.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

class HeldMessages {
 public:
  // Reads `file` (absent: none held). Lines "PROGRAM_ID QUEUE_ID".
  static Result<HeldMessages> open(std::filesystem::path file);

  // Each change is written through (temporary file, fsync, rename) before it returns.
  Result<void> add(std::int64_t programId, const std::string& queueId);
  Result<void> remove(const std::vector<std::string>& queueIds);

  [[nodiscard]] std::vector<std::string> of(std::int64_t programId) const;
  [[nodiscard]] std::size_t count(std::int64_t programId) const;
  [[nodiscard]] std::vector<std::int64_t> programs() const;
  [[nodiscard]] std::size_t size() const;

 private:
  explicit HeldMessages(std::filesystem::path file) : file_(std::move(file)) {}
  Result<void> save() const;
  std::filesystem::path file_;
  std::map<std::int64_t, std::vector<std::string>> byProgram_;
};

}  // namespace mailguard::mta
