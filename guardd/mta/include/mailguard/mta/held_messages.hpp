#pragma once
// The messages the MTA holds for guardd (exim: frozen; postfix: its hold queue), by the
// program that submitted them and the MTA instance that holds them, kept in a file of guardd's
// state directory so that a restart of guardd forgets none: the messages themselves stay in the
// MTA's spool, which survives both restarts.
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

class HeldMessages {
 public:
  // Where a message is held: "" for exim (one per PC), "postfix:CONFIG_DIR" for a postfix
  // instance. No white space.
  struct Entry {
    std::string id;
    std::string where;
  };
  // Reads `file` (absent: none held). Lines "PROGRAM_ID QUEUE_ID [WHERE]".
  static Result<HeldMessages> open(std::filesystem::path file);

  // Each change is written through (temporary file, fsync, rename) before it returns.
  Result<void> add(std::int64_t programId, const std::string& queueId,
                   const std::string& where = {});
  Result<void> remove(const std::vector<std::string>& queueIds);

  [[nodiscard]] std::vector<std::string> of(std::int64_t programId) const;
  [[nodiscard]] std::vector<Entry> entries(std::int64_t programId) const;
  [[nodiscard]] std::size_t count(std::int64_t programId) const;
  [[nodiscard]] std::vector<std::int64_t> programs() const;
  [[nodiscard]] std::size_t size() const;

 private:
  explicit HeldMessages(std::filesystem::path file) : file_(std::move(file)) {}
  Result<void> save() const;
  std::filesystem::path file_;
  std::map<std::int64_t, std::vector<Entry>> byProgram_;
};

}  // namespace mailguard::mta
