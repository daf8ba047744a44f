#pragma once
// Every open of a file in postfix's maildrop, told to guardd by the kernel while the
// opening process waits (fanotify, FAN_OPEN_PERM), and what guardd remembers of each file.
//
// Why a program cannot hand postfix a message past this (DESIGN terms):
//  - Mail submitted without TCP reaches postfix only through the maildrop
//    ($queue_directory/maildrop, mode 1730 root:postdrop): only the setgid-postdrop program
//    postdrop (run by sendmail) or root can create a file there, and pickup reads nothing
//    else. A user's program writing there itself is refused by the kernel (EACCES).
//  - Every open of a file there raises a permission event: the opener is blocked until
//    guardd answered, so guardd reads its parent chain while it still exists (postdrop,
//    sendmail and `sh -c` wrappers skipped, as for exim). Calling postdrop directly makes
//    the caller the submitter; a file written by a root program directly is that
//    program's submission.
//  - guardd always allows the open (postdrop is never made to fail: a message is judged
//    when pickup hands it to cleanup, which asks guardd's milter at end of message). The
//    file is known by (device, inode), which postdrop's rename to the queue id keeps.
//  - pickup opening a file (the process whose executable is that instance's
//    $daemon_directory/pickup) marks it as the file being read now: pickup reads one file
//    at a time and waits for cleanup's answer, and cleanup waits for the milter's, so the
//    milter's question at end of message is about that file.
//  - A file nobody was seen to create (guardd was not running, or root renamed it in) has
//    no submitter: its message is held as "could not name the program". With guardd
//    stopped, cleanup cannot reach the milter and tempfails (default_action=tempfail):
//    the message stays in the maildrop.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "mailguard/common/fd.hpp"
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

// One open waiting for guardd's answer. The answer is FAN_ALLOW, written when this object
// is destroyed (or allow() is called): an open is never left unanswered, whatever path
// the code takes, since its opener (postdrop) would hang until guardd exits.
class MaildropOpen {
 public:
  MaildropOpen(int group, Fd file, pid_t pid) : group_(group), file_(std::move(file)), pid_(pid) {}
  MaildropOpen(MaildropOpen&&) noexcept = default;
  MaildropOpen& operator=(MaildropOpen&& other) noexcept {
    if (this != &other) {
      allow();
      group_ = other.group_;
      file_ = std::move(other.file_);
      pid_ = other.pid_;
    }
    return *this;
  }
  MaildropOpen(const MaildropOpen&) = delete;
  MaildropOpen& operator=(const MaildropOpen&) = delete;
  ~MaildropOpen() { allow(); }

  void allow() noexcept;
  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] int fd() const { return file_.get(); }

 private:
  int group_ = -1;
  Fd file_;  // opened by the kernel for guardd, read-only
  pid_t pid_ = 0;
};

// A fanotify group watching maildrop directories (needs CAP_SYS_ADMIN).
class MaildropWatch {
 public:
  static Result<std::unique_ptr<MaildropWatch>> open();
  // FAN_OPEN_PERM | FAN_EVENT_ON_CHILD on `dir`: opens of the files in it, not of the
  // directory itself (no FAN_ONDIR), nor of files further down.
  Result<void> watch(const std::filesystem::path& dir);
  [[nodiscard]] int fd() const { return group_.get(); }
  // Reads the events that wait; each open goes to `onOpen`, which may keep it (and answer
  // later) or drop it (answered at once).
  Result<void> read(const std::function<void(MaildropOpen&&)>& onOpen);

 private:
  explicit MaildropWatch(Fd group) : group_(std::move(group)) {}
  Fd group_;
};

// A file, as the kernel names it for as long as it exists.
struct FileKey {
  std::uint64_t dev = 0;
  std::uint64_t ino = 0;
  auto operator<=>(const FileKey&) const = default;
};

// Who created each maildrop file, and which file each instance's pickup reads now.
class MaildropFiles {
 public:
  struct Creator {
    Result<procinfo::ProcessInfo> submitter;  // an error says why it could not be named
    std::uint32_t uid = 0;                    // the opener's (postdrop: the caller's)
    MonoTime seen{};
  };
  explicit MaildropFiles(std::size_t capacity = 10'000) : capacity_(capacity) {}

  // An open by anything but pickup. `empty`: the file had no content yet (it is being
  // created); an open of a file whose creator is known only replaces it then, since the
  // inode of a file pickup removed may be reused by the next one.
  void opened(FileKey file, bool empty, Creator creator);
  [[nodiscard]] bool knows(FileKey file) const { return files_.contains(file); }
  // pickup of `instance` opened `file`.
  void pickedUp(const std::string& instance, FileKey file) { current_[instance] = file; }
  // The creator of the file `instance`'s pickup reads now, taken out (each message is
  // decided once); nullopt if guardd did not see it created.
  std::optional<Creator> takeCurrent(const std::string& instance);
  [[nodiscard]] std::size_t size() const { return files_.size(); }

 private:
  std::size_t capacity_;
  std::map<FileKey, Creator> files_;
  std::deque<FileKey> order_;  // oldest first, for the capacity bound
  std::map<std::string, FileKey> current_;
};

}  // namespace mailguard::mta
