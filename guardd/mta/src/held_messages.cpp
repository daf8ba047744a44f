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
    std::string id;
    // A torn or foreign line is skipped: the file is only ever replaced whole.
    if (!(words >> program >> id) || !isQueueId(id)) continue;
    held.byProgram_[program].push_back(id);
  }
  return held;
}

Result<void> HeldMessages::add(std::int64_t programId, const std::string& queueId) {
  auto& ids = byProgram_[programId];
  if (std::find(ids.begin(), ids.end(), queueId) == ids.end()) ids.push_back(queueId);
  return save();
}

Result<void> HeldMessages::remove(const std::vector<std::string>& queueIds) {
  for (auto it = byProgram_.begin(); it != byProgram_.end();) {
    auto& ids = it->second;
    std::erase_if(ids, [&](const std::string& id) {
      return std::find(queueIds.begin(), queueIds.end(), id) != queueIds.end();
    });
    it = ids.empty() ? byProgram_.erase(it) : std::next(it);
  }
  return save();
}

std::vector<std::string> HeldMessages::of(std::int64_t programId) const {
  const auto it = byProgram_.find(programId);
  return it == byProgram_.end() ? std::vector<std::string>{} : it->second;
}

std::size_t HeldMessages::count(std::int64_t programId) const { return of(programId).size(); }

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
    for (const auto& id : ids) text += std::to_string(program) + " " + id + "\n";
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
