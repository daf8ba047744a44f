#include "mailguard/mta/held_messages.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

#include "mailguard/common/fd.hpp"
#include "mailguard/mta/protocol.hpp"

namespace mailguard::mta {

Result<HeldMessages> HeldMessages::open(std::filesystem::path file) {
  HeldMessages held(std::move(file));
  std::ifstream in(held.file_);
  if (!in) {
    if (errno == ENOENT) return held;
    return systemError("Failed to read '" + held.file_.string() + "'", errno);
  }
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::int64_t program = 0;
    Entry entry;
    // A torn or foreign line is skipped: the file is only ever replaced whole.
    if (!(words >> program >> entry.id) || !isQueueId(entry.id)) continue;
    words >> entry.where;  // absent in lists written before postfix was gated: exim
    held.byProgram_[program].push_back(std::move(entry));
  }
  return held;
}

Result<void> HeldMessages::add(std::int64_t programId, const std::string& queueId,
                               const std::string& where) {
  if (where.find_first_of(" \t\n") != std::string::npos) {
    return invalidArgument("'" + where + "' is not a place a message is held");
  }
  auto& ids = byProgram_[programId];
  const auto same = [&](const Entry& e) { return e.id == queueId && e.where == where; };
  if (std::find_if(ids.begin(), ids.end(), same) == ids.end()) ids.push_back({queueId, where});
  return save();
}

Result<void> HeldMessages::remove(const std::vector<std::string>& queueIds) {
  for (auto it = byProgram_.begin(); it != byProgram_.end();) {
    auto& ids = it->second;
    std::erase_if(ids, [&](const Entry& e) {
      return std::find(queueIds.begin(), queueIds.end(), e.id) != queueIds.end();
    });
    it = ids.empty() ? byProgram_.erase(it) : std::next(it);
  }
  return save();
}

std::vector<std::string> HeldMessages::of(std::int64_t programId) const {
  std::vector<std::string> ids;
  for (const auto& e : entries(programId)) ids.push_back(e.id);
  return ids;
}

std::vector<HeldMessages::Entry> HeldMessages::entries(std::int64_t programId) const {
  const auto it = byProgram_.find(programId);
  return it == byProgram_.end() ? std::vector<Entry>{} : it->second;
}

std::size_t HeldMessages::count(std::int64_t programId) const {
  const auto it = byProgram_.find(programId);
  return it == byProgram_.end() ? 0 : it->second.size();
}

std::vector<std::int64_t> HeldMessages::programs() const {
  std::vector<std::int64_t> out;
  for (const auto& [id, ids] : byProgram_) out.push_back(id);
  return out;
}

std::size_t HeldMessages::size() const {
  std::size_t n = 0;
  for (const auto& [id, ids] : byProgram_) n += ids.size();
  return n;
}

// rename(2) replaces the file atomically: a crash leaves the old list or the new one.
Result<void> HeldMessages::save() const {
  std::string text;
  for (const auto& [program, ids] : byProgram_) {
    for (const auto& e : ids) {
      text += std::to_string(program) + " " + e.id + (e.where.empty() ? "" : " " + e.where) + "\n";
    }
  }
  const auto tmp = file_.string() + ".tmp";
  Fd fd{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)};
  if (!fd) return systemError("Failed to write '" + tmp + "'", errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return systemError("Failed to write '" + tmp + "'", errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return systemError("Failed to sync '" + tmp + "'", errno);
  if (::rename(tmp.c_str(), file_.c_str()) != 0) {
    return systemError("Failed to replace '" + file_.string() + "'", errno);
  }
  return {};
}

}  // namespace mailguard::mta
