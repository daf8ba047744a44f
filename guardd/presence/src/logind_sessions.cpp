#include "mailguard/presence/logind_sessions.hpp"

#include <sys/epoll.h>

#include <sdbus-c++/sdbus-c++.h>
#include <cstdint>
#include <utility>

namespace mailguard::presence {
namespace {

constexpr const char* kLogind = "org.freedesktop.login1";
constexpr const char* kManagerPath = "/org/freedesktop/login1";
constexpr const char* kManager = "org.freedesktop.login1.Manager";
constexpr const char* kSession = "org.freedesktop.login1.Session";
constexpr const char* kProperties = "org.freedesktop.DBus.Properties";
constexpr auto kReconnectPeriod = std::chrono::seconds(5);
// Bus messages handled per wake-up: logind's signals must not starve the verdict queue;
// sd-bus reports a zero timeout while more are queued, so none is lost.
constexpr int kMaxMessagesPerWake = 64;

using SessionRow = sdbus::Struct<std::string, std::uint32_t, std::string, std::string,
                                 sdbus::ObjectPath>;  // ListSessions: (susso)
using Properties = std::map<std::string, sdbus::Variant>;

// Applies the properties presence needs; others are ignored. Types as logind documents
// them (org.freedesktop.login1(5)); a value of another type is skipped, not trusted.
void apply(Session& s, const Properties& props) {
  for (const auto& [name, value] : props) {
    try {
      if (name == "Id" && value.containsValueOfType<std::string>()) {
        s.id = value.get<std::string>();
      } else if (name == "Active" && value.containsValueOfType<bool>()) {
        s.active = value.get<bool>();
      } else if (name == "IdleHint" && value.containsValueOfType<bool>()) {
        s.idle = value.get<bool>();
      } else if (name == "IdleSinceHintMonotonic" && value.containsValueOfType<std::uint64_t>()) {
        // CLOCK_MONOTONIC microseconds, the clock steady_clock reads on Linux; 0 = never.
        const auto us = value.get<std::uint64_t>();
        if (us == 0) {
          s.idleSince.reset();
        } else {
          s.idleSince = MonoTime(std::chrono::duration_cast<MonoTime::duration>(
              std::chrono::microseconds(static_cast<std::int64_t>(us))));
        }
      } else if (name == "Class" && value.containsValueOfType<std::string>()) {
        s.sessionClass = value.get<std::string>();
      } else if (name == "User" &&
                 value.containsValueOfType<sdbus::Struct<std::uint32_t, sdbus::ObjectPath>>()) {
        s.uid = std::get<0>(value.get<sdbus::Struct<std::uint32_t, sdbus::ObjectPath>>());
      } else if (name == "Seat" &&
                 value.containsValueOfType<sdbus::Struct<std::string, sdbus::ObjectPath>>()) {
        s.seat = std::get<0>(value.get<sdbus::Struct<std::string, sdbus::ObjectPath>>());
      }
    } catch (const sdbus::Error&) {
      // A value that does not deserialize as announced: skip it.
    }
  }
}

}  // namespace

LogindSessions::LogindSessions(Poller& poller, Log log) : poller_(poller), log_(std::move(log)) {
  connect();
}

LogindSessions::~LogindSessions() { teardown(); }

void LogindSessions::say(bool warning, const std::string& message) {
  if (message == lastSaid_) return;
  lastSaid_ = message;
  if (log_) log_(warning, message);
}

void LogindSessions::connect() {
  nextConnect_ = std::chrono::steady_clock::now() + kReconnectPeriod;
  try {
    connection_ = sdbus::createSystemBusConnection();
    bus_ = sdbus::createProxy(*connection_, "org.freedesktop.DBus", "/org/freedesktop/DBus");
    bus_->uponSignal("NameOwnerChanged")
        .onInterface("org.freedesktop.DBus")
        .call(
            [this](const std::string& name, const std::string& /*old*/, const std::string& owner) {
              if (name != kLogind) return;
              if (owner.empty()) {
                forget("logind left the system bus");
              } else {
                // A new logind (restarted): its sessions from scratch.
                forget("");
                list();
              }
            });
    bus_->finishRegistration();
    manager_ = sdbus::createProxy(*connection_, kLogind, kManagerPath);
    manager_->uponSignal("SessionNew")
        .onInterface(kManager)
        .call([this](const std::string& /*id*/, const sdbus::ObjectPath& path) {
          if (known_) addSession(path);
        });
    manager_->uponSignal("SessionRemoved")
        .onInterface(kManager)
        .call([this](const std::string& /*id*/, const sdbus::ObjectPath& path) {
          sessions_.erase(path);
        });
    manager_->finishRegistration();
    const auto poll = connection_->getEventLoopPollData();
    if (auto added = poller_.add(poll.fd, static_cast<std::uint32_t>(poll.events),
                                 [this](std::uint32_t events) { onEvents(events); });
        !added) {
      throw sdbus::Error("org.mailguard.Error.Failed", added.error().message);
    }
    fd_ = poll.fd;
    list();
  } catch (const sdbus::Error& e) {
    teardown();
    say(true, "Failed to reach the system bus for logind's sessions: " + e.getMessage() +
                  " (presence unknown; retrying)");
  }
}

void LogindSessions::teardown() {
  // The proxies (and their pending calls) before the connection they use.
  sessions_.clear();
  manager_.reset();
  bus_.reset();
  if (fd_ >= 0) poller_.remove(fd_);
  fd_ = -1;
  connection_.reset();
  known_ = false;
  lost_.reset();
}

void LogindSessions::forget(std::string_view why) {
  known_ = false;
  sessions_.clear();
  if (!why.empty()) say(true, std::string(why) + " (presence unknown until it returns)");
}

void LogindSessions::list() {
  manager_->callMethodAsync("ListSessions")
      .onInterface(kManager)
      .uponReplyInvoke([this](const sdbus::Error* error, const std::vector<SessionRow>& rows) {
        if (error != nullptr) {
          forget("logind does not answer on the system bus (" + error->getName() + ")");
          return;
        }
        known_ = true;
        say(false,
            "Reading user presence from logind (" + std::to_string(rows.size()) + " sessions)");
        for (const auto& row : rows) addSession(std::get<4>(row));
      });
}

void LogindSessions::addSession(const std::string& path) {
  if (sessions_.count(path) != 0) return;
  if (sessions_.size() >= kMaxSessions) {
    say(true, "More than " + std::to_string(kMaxSessions) +
                  " logind sessions: the rest are not followed for presence");
    return;
  }
  Entry entry;
  entry.proxy = sdbus::createProxy(*connection_, kLogind, path);
  entry.proxy->uponSignal("PropertiesChanged")
      .onInterface(kProperties)
      .call([this, path](const std::string& interface, const Properties& changed,
                         const std::vector<std::string>& invalidated) {
        if (interface != kSession) return;
        const auto it = sessions_.find(path);
        if (it == sessions_.end()) return;
        apply(it->second.session, changed);
        // Properties announced without their value are read again.
        if (!invalidated.empty()) fetch(path);
      });
  entry.proxy->finishRegistration();
  sessions_.emplace(path, std::move(entry));
  fetch(path);
}

void LogindSessions::fetch(const std::string& path) {
  const auto it = sessions_.find(path);
  if (it == sessions_.end()) return;
  it->second.proxy->callMethodAsync("GetAll")
      .onInterface(kProperties)
      .withArguments(std::string(kSession))
      .uponReplyInvoke([this, path](const sdbus::Error* error, const Properties& props) {
        const auto found = sessions_.find(path);
        if (found == sessions_.end()) return;
        // A session that vanished between the signal and the call: SessionRemoved follows.
        if (error != nullptr) return;
        apply(found->second.session, props);
      });
}

std::vector<Session> LogindSessions::sessions() const {
  std::vector<Session> out;
  if (!known_) return out;
  out.reserve(sessions_.size());
  for (const auto& [path, entry] : sessions_) out.push_back(entry.session);
  return out;
}

std::optional<std::chrono::milliseconds> LogindSessions::prepare() {
  if (lost_) {
    const std::string why = *lost_;
    teardown();
    say(true, "Lost the system bus connection for logind's sessions: " + why +
                  " (presence unknown; reconnecting)");
  }
  const auto now = std::chrono::steady_clock::now();
  if (!connection_) {
    if (now >= nextConnect_) connect();
    if (!connection_) {
      return std::chrono::ceil<std::chrono::milliseconds>(nextConnect_ - now);
    }
  }
  try {
    auto poll = connection_->getEventLoopPollData();
    // A zero timeout: sd-bus has queued work no fd event will announce (see bus_link).
    for (int i = 0; i < kMaxMessagesPerWake && poll.getPollTimeout() == 0; ++i) {
      connection_->processPendingRequest();
      poll = connection_->getEventLoopPollData();
    }
    if (auto modified = poller_.modify(fd_, static_cast<std::uint32_t>(poll.events)); !modified) {
      throw sdbus::Error("org.mailguard.Error.Failed", modified.error().message);
    }
    const int timeout = poll.getPollTimeout();
    if (timeout < 0) return std::nullopt;
    return std::chrono::milliseconds(timeout);
  } catch (const sdbus::Error& e) {
    lost_ = e.getMessage();
    return std::chrono::milliseconds(0);
  }
}

void LogindSessions::onEvents(std::uint32_t events) {
  if (!connection_) return;
  try {
    int handled = 0;
    while (handled < kMaxMessagesPerWake && connection_->processPendingRequest()) ++handled;
    if (handled == 0 && (events & (EPOLLHUP | EPOLLERR)) != 0) lost_ = "connection closed";
  } catch (const sdbus::Error& e) {
    lost_ = e.getMessage();
  }
}

}  // namespace mailguard::presence
