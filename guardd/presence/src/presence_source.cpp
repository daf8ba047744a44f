#include <sys/epoll.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "mailguard/presence/input_activity.hpp"
#include "mailguard/presence/logind_sessions.hpp"
#include "mailguard/presence/poller.hpp"
#include "mailguard/presence/presence.hpp"

namespace mailguard::presence {

Result<Poller> Poller::create() {
  Fd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return systemError("Failed to create an epoll fd for presence", errno);
  return Poller(std::move(ep));
}

Result<void> Poller::add(int fd, std::uint32_t events, Callback cb) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return systemError("Failed to watch fd " + std::to_string(fd), errno);
  }
  callbacks_[fd] = std::move(cb);
  return {};
}

Result<void> Poller::modify(int fd, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
    return systemError("Failed to change the watch of fd " + std::to_string(fd), errno);
  }
  return {};
}

void Poller::remove(int fd) {
  ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

void Poller::dispatch(int maxEvents) {
  std::array<epoll_event, 32> ready{};
  const int n =
      ::epoll_wait(ep_.get(), ready.data(), std::min(maxEvents, static_cast<int>(ready.size())), 0);
  for (int i = 0; i < n; ++i) {
    const auto idx = static_cast<std::size_t>(i);
    // A callback may remove another fd (a device unplugged, the bus torn down): look
    // each one up when its turn comes, and run a copy (it may remove itself).
    const auto it = callbacks_.find(ready[idx].data.fd);
    if (it == callbacks_.end()) continue;
    auto cb = it->second;
    cb(ready[idx].events);
  }
}

bool countsForPresence(const Session& s) { return s.sessionClass == "user" && !s.seat.empty(); }

detector::PresenceEvidence evidenceFrom(bool logindKnown, const std::vector<Session>& sessions,
                                        std::optional<MonoTime> lastInput, std::uint32_t uid,
                                        MonoTime now) {
  detector::PresenceEvidence e;
  e.known = logindKnown;
  if (!logindKnown) return e;
  const Session* mine = nullptr;
  for (const auto& s : sessions) {
    if (countsForPresence(s) && s.active && s.uid == uid) {
      mine = &s;
      break;
    }
  }
  if (mine == nullptr) return e;
  e.activeSession = true;
  const auto since = [&](MonoTime t) {
    return std::chrono::duration_cast<detector::Duration>(std::max(now - t, MonoTime::duration{0}));
  };
  if (lastInput) {
    e.sinceInput = since(*lastInput);
  } else if (mine->idle && mine->idleSince) {
    e.sinceInput = since(*mine->idleSince);
  }
  return e;
}

PresenceSource::PresenceSource(PresenceOptions options) : options_(std::move(options)) {}

PresenceSource::~PresenceSource() {
  // The readers deregister from the poller: they go first.
  input_.reset();
  logind_.reset();
}

Result<std::unique_ptr<PresenceSource>> PresenceSource::create(PresenceOptions options) {
  auto poller = Poller::create();
  if (!poller) return poller.error();
  std::unique_ptr<PresenceSource> self(new PresenceSource(std::move(options)));
  self->poller_ = std::make_unique<Poller>(std::move(poller.value()));
  auto log = self->options_.log ? self->options_.log : [](bool, std::string_view) {};
  self->logind_ = std::make_unique<LogindSessions>(*self->poller_, log);
  if (self->options_.inputDevices) {
    self->input_ = std::make_unique<InputActivity>(*self->poller_, self->options_.devInput,
                                                   self->options_.sysRoot, log);
  }
  return self;
}

int PresenceSource::pollFd() const { return poller_->fd(); }

std::optional<std::chrono::milliseconds> PresenceSource::prepare() { return logind_->prepare(); }

void PresenceSource::dispatch() { poller_->dispatch(); }

detector::PresenceEvidence PresenceSource::evidence(std::uint32_t uid, MonoTime now) const {
  return evidenceFrom(logind_->known(), logind_->sessions(), lastInput(), uid, now);
}

PresenceStatus PresenceSource::status(MonoTime now) const {
  PresenceStatus s;
  if (!logind_->known()) return s;
  s.source = input_ && input_->watching() ? "logind+input" : "logind";
  const auto all = logind_->sessions();
  const Session* active = nullptr;
  for (const auto& session : all) {
    if (!countsForPresence(session) || !session.active) continue;
    // seat0 is the seat with the console: it is the one shown when there are several.
    if (active == nullptr || session.seat == "seat0") active = &session;
  }
  if (active == nullptr) return s;
  s.activeUser = active->uid;
  const auto e = evidenceFrom(true, all, lastInput(), active->uid, now);
  if (e.sinceInput) s.idle = std::chrono::duration_cast<std::chrono::seconds>(*e.sinceInput);
  return s;
}

bool PresenceSource::logindKnown() const { return logind_->known(); }

std::vector<Session> PresenceSource::sessions() const { return logind_->sessions(); }

std::optional<MonoTime> PresenceSource::lastInput() const {
  return input_ ? input_->lastInput() : std::nullopt;
}

std::size_t PresenceSource::inputDevices() const { return input_ ? input_->devices() : 0; }

}  // namespace mailguard::presence
