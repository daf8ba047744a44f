#include "mailguard/mta/postfix_maildrop.hpp"

#include <fcntl.h>
#include <sys/fanotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace mailguard::mta {

void MaildropOpen::allow() noexcept {
  if (!file_) return;
  // fanotify(7): the response names the event by its fd, so it is written before the fd
  // closes. A failed write (the group is gone) lets the kernel allow the open itself.
  const fanotify_response response{file_.get(), FAN_ALLOW};
  while (::write(group_, &response, sizeof response) < 0 && errno == EINTR) {
  }
  file_.reset();
}

Result<std::unique_ptr<MaildropWatch>> MaildropWatch::open() {
  // FAN_CLASS_CONTENT: permission events, answered before the open returns to its caller.
  // The event's fd is opened read-only by the kernel for guardd; CAP_DAC_READ_SEARCH
  // suffices for that.
  Fd group{::fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
                           O_RDONLY | O_LARGEFILE | O_CLOEXEC)};
  if (!group) return systemError("Failed to start watching the maildrop (fanotify_init)", errno);
  return std::unique_ptr<MaildropWatch>(new MaildropWatch(std::move(group)));
}

Result<void> MaildropWatch::watch(const std::filesystem::path& dir) {
  if (::fanotify_mark(group_.get(), FAN_MARK_ADD, FAN_OPEN_PERM | FAN_EVENT_ON_CHILD, AT_FDCWD,
                      dir.c_str()) != 0) {
    return systemError("Failed to watch '" + dir.string() + "' (fanotify_mark)", errno);
  }
  return {};
}

Result<void> MaildropWatch::read(const std::function<void(MaildropOpen&&)>& onOpen) {
  alignas(fanotify_event_metadata) char buf[8192];
  while (true) {
    const auto n = ::read(group_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return {};
    if (n < 0) return systemError("Failed to read maildrop events", errno);
    auto left = static_cast<std::size_t>(n);
    const auto* event = reinterpret_cast<const fanotify_event_metadata*>(buf);
    for (; FAN_EVENT_OK(event, left); event = FAN_EVENT_NEXT(event, left)) {
      if (event->vers != FANOTIFY_METADATA_VERSION) {
        return makeError("fanotify metadata version " + std::to_string(event->vers));
      }
      if (event->fd < 0) continue;  // an overflow: no open waits on it
      // Owned (and answered) from here on, whatever onOpen does.
      MaildropOpen open(group_.get(), Fd{event->fd}, event->pid);
      if ((event->mask & FAN_OPEN_PERM) != 0) onOpen(std::move(open));
    }
  }
}

void MaildropFiles::opened(FileKey file, bool empty, Creator creator) {
  auto it = files_.find(file);
  if (it != files_.end()) {
    if (empty) it->second = std::move(creator);
    return;
  }
  if (files_.size() >= capacity_ && !order_.empty()) {
    files_.erase(order_.front());
    order_.pop_front();
  }
  files_.emplace(file, std::move(creator));
  order_.push_back(file);
}

std::optional<MaildropFiles::Creator> MaildropFiles::takeCurrent(const std::string& instance) {
  const auto current = current_.find(instance);
  if (current == current_.end()) return std::nullopt;
  const auto file = current->second;
  current_.erase(current);
  const auto it = files_.find(file);
  if (it == files_.end()) return std::nullopt;
  auto creator = std::move(it->second);
  files_.erase(it);
  order_.erase(std::remove(order_.begin(), order_.end(), file), order_.end());
  return creator;
}

}  // namespace mailguard::mta
