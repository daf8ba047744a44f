// logind's sessions read over a private dbus-daemon, from a fake org.freedesktop.login1
// (unit tests may fake the service; the bus and sdbus-c++ are real). The fake and the
// presence source are driven from this one thread: pump() processes both until a
// condition holds or a deadline passes.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sdbus-c++/sdbus-c++.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "mailguard/presence/presence.hpp"

extern char** environ;

namespace mailguard::presence {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kManager = "org.freedesktop.login1.Manager";
constexpr const char* kSessionIface = "org.freedesktop.login1.Session";
using SessionRow =
    sdbus::Struct<std::string, std::uint32_t, std::string, std::string, sdbus::ObjectPath>;

// A dbus-daemon of our own on a socket in a temporary folder; stopped by its pid.
class PrivateBus {
 public:
  PrivateBus() {
    std::string tmpl = (fs::temp_directory_path() / "presence-bus-XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    const fs::path socket = dir_ / "bus";
    address_ = "unix:path=" + socket.string();
    std::ofstream(dir_ / "bus.conf")
        << "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN\"\n"
           " \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n"
           "<busconfig><listen>"
        << address_
        << "</listen><auth>EXTERNAL</auth>"
           "<policy context=\"default\"><allow user=\"*\"/><allow own=\"*\"/>"
           "<allow send_destination=\"*\"/><allow receive_sender=\"*\"/></policy>"
           "</busconfig>\n";
    const std::string config = "--config-file=" + (dir_ / "bus.conf").string();
    std::vector<char*> argv{const_cast<char*>("dbus-daemon"), const_cast<char*>(config.c_str()),
                            const_cast<char*>("--nofork"), const_cast<char*>("--nopidfile"),
                            nullptr};
    if (::posix_spawnp(&pid_, "dbus-daemon", nullptr, nullptr, argv.data(), environ) != 0) {
      pid_ = -1;
      return;
    }
    // Ready when its socket accepts a connection (deadline, no sleep-and-hope).
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      const int s = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      socket.string().copy(sa.sun_path, sizeof(sa.sun_path) - 1);
      const bool up = ::connect(s, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
      ::close(s);
      if (up) {
        ready_ = true;
        break;
      }
      ::poll(nullptr, 0, 10);
    }
  }
  ~PrivateBus() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PrivateBus(const PrivateBus&) = delete;
  PrivateBus& operator=(const PrivateBus&) = delete;
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] const std::string& address() const { return address_; }

 private:
  fs::path dir_;
  std::string address_;
  pid_t pid_ = -1;
  bool ready_ = false;
};

struct FakeSessionState {
  std::string id;
  std::uint32_t uid = 0;
  std::string seat;
  std::string cls = "user";
  bool active = false;
  bool idle = false;
  std::uint64_t idleSinceMonoUs = 0;
};

// org.freedesktop.login1 as far as presence reads it: Manager.ListSessions, SessionNew,
// SessionRemoved, and each session's properties (PropertiesChanged on change).
class FakeLogind {
 public:
  FakeLogind() {
    connection_ = sdbus::createSystemBusConnection("org.freedesktop.login1");
    manager_ = sdbus::createObject(*connection_, "/org/freedesktop/login1");
    manager_->registerMethod("ListSessions").onInterface(kManager).implementedAs([this] {
      std::vector<SessionRow> rows;
      for (const auto& [path, s] : sessions_) {
        rows.emplace_back(s.state.id, s.state.uid, "user" + std::to_string(s.state.uid),
                          s.state.seat, sdbus::ObjectPath(path));
      }
      return rows;
    });
    manager_->registerSignal("SessionNew")
        .onInterface(kManager)
        .withParameters<std::string, sdbus::ObjectPath>();
    manager_->registerSignal("SessionRemoved")
        .onInterface(kManager)
        .withParameters<std::string, sdbus::ObjectPath>();
    manager_->finishRegistration();
  }

  void add(const FakeSessionState& state, bool announce) {
    const std::string path = "/org/freedesktop/login1/session/_" + state.id;
    auto& s = sessions_[path];
    s.state = state;
    s.object = sdbus::createObject(*connection_, path);
    const auto* st = &s.state;
    s.object->registerProperty("Id").onInterface(kSessionIface).withGetter([st] { return st->id; });
    s.object->registerProperty("Active").onInterface(kSessionIface).withGetter([st] {
      return st->active;
    });
    s.object->registerProperty("IdleHint").onInterface(kSessionIface).withGetter([st] {
      return st->idle;
    });
    s.object->registerProperty("IdleSinceHintMonotonic")
        .onInterface(kSessionIface)
        .withGetter([st] { return st->idleSinceMonoUs; });
    s.object->registerProperty("Class").onInterface(kSessionIface).withGetter([st] {
      return st->cls;
    });
    s.object->registerProperty("User").onInterface(kSessionIface).withGetter([st] {
      return sdbus::Struct<std::uint32_t, sdbus::ObjectPath>(
          st->uid, sdbus::ObjectPath("/org/freedesktop/login1/user/_" + std::to_string(st->uid)));
    });
    s.object->registerProperty("Seat").onInterface(kSessionIface).withGetter([st] {
      return sdbus::Struct<std::string, sdbus::ObjectPath>(
          st->seat,
          sdbus::ObjectPath(st->seat.empty() ? "/" : "/org/freedesktop/login1/seat/" + st->seat));
    });
    s.object->finishRegistration();
    if (announce) {
      manager_->emitSignal("SessionNew")
          .onInterface(kManager)
          .withArguments(state.id, sdbus::ObjectPath(path));
    }
  }

  void change(const std::string& id, const std::function<void(FakeSessionState&)>& edit,
              const std::vector<std::string>& props) {
    const std::string path = "/org/freedesktop/login1/session/_" + id;
    auto& s = sessions_.at(path);
    edit(s.state);
    s.object->emitPropertiesChangedSignal(kSessionIface, props);
  }

  void remove(const std::string& id) {
    const std::string path = "/org/freedesktop/login1/session/_" + id;
    sessions_.erase(path);
    manager_->emitSignal("SessionRemoved")
        .onInterface(kManager)
        .withArguments(id, sdbus::ObjectPath(path));
  }

  sdbus::IConnection& connection() { return *connection_; }

 private:
  struct Fake {
    FakeSessionState state;
    std::unique_ptr<sdbus::IObject> object;
  };
  std::unique_ptr<sdbus::IConnection> connection_;
  std::unique_ptr<sdbus::IObject> manager_;
  std::map<std::string, Fake> sessions_;
};

class LogindPresence : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bus_.ready()) GTEST_SKIP() << "dbus-daemon did not start (is it installed?)";
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_.address().c_str(), 1);
  }

  std::unique_ptr<PresenceSource> makeSource() {
    PresenceOptions options;
    options.log = [this](bool, std::string_view m) { said_.emplace_back(m); };
    auto source = PresenceSource::create(options);
    EXPECT_TRUE(source.has_value());
    return std::move(source.value());
  }

  // Runs the fake logind and the source until `done` holds; false after the deadline.
  bool pump(PresenceSource& source, const std::function<bool()>& done) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (fake_) {
        while (fake_->connection().processPendingRequest()) {
        }
      }
      const auto timeout = source.prepare();
      if (done()) return true;
      std::vector<pollfd> fds{{source.pollFd(), POLLIN, 0}};
      if (fake_) {
        const auto p = fake_->connection().getEventLoopPollData();
        fds.push_back({p.fd, static_cast<short>(p.events), 0});
      }
      int wait = 50;
      if (timeout && timeout->count() < wait) wait = static_cast<int>(timeout->count());
      ::poll(fds.data(), fds.size(), wait);
      source.dispatch();
    }
    return done();
  }

  static FakeSessionState seatUser(std::string id, std::uint32_t uid, bool active) {
    FakeSessionState s;
    s.id = std::move(id);
    s.uid = uid;
    s.seat = "seat0";
    s.active = active;
    return s;
  }

  bool said(std::string_view text) const {
    for (const auto& m : said_) {
      if (m.find(text) != std::string::npos) return true;
    }
    return false;
  }

  static MonoTime now() { return std::chrono::steady_clock::now(); }

  PrivateBus bus_;
  std::unique_ptr<FakeLogind> fake_;
  std::vector<std::string> said_;
};

TEST_F(LogindPresence, TheActiveSeatUserIsPresentAndNobodyElse) {
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  auto ssh = seatUser("3", 1002, true);
  ssh.seat.clear();
  fake_->add(ssh, false);
  auto source = makeSource();
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  const auto e = source->evidence(1000, now());
  EXPECT_TRUE(e.known);
  EXPECT_FALSE(e.sinceInput.has_value());  // not idle, and no input reader
  EXPECT_TRUE(source->evidence(1002, now()).known);
  EXPECT_FALSE(source->evidence(1002, now()).activeSession);  // ssh: no seat
  const auto st = source->status(now());
  EXPECT_EQ(st.source, "logind");
  EXPECT_EQ(st.activeUser, 1000U);
  EXPECT_FALSE(st.idle.has_value());
}

TEST_F(LogindPresence, IdleHintGivesTheTimeSinceTheSessionWentIdle) {
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  auto source = makeSource();
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  const auto idleSince = now() - 300s;
  fake_->change(
      "2",
      [&](FakeSessionState& s) {
        s.idle = true;
        s.idleSinceMonoUs = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::microseconds>(idleSince.time_since_epoch())
                .count());
      },
      {"IdleHint", "IdleSinceHintMonotonic"});
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).sinceInput.has_value(); }));
  const auto since = *source->evidence(1000, now()).sinceInput;
  EXPECT_GE(since, 300s);
  EXPECT_LT(since, 320s);
  EXPECT_GE(source->status(now()).idle.value_or(0s), 300s);
}

TEST_F(LogindPresence, FollowsASwitchToAnotherUsersSession) {
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  auto source = makeSource();
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  fake_->change("2", [](FakeSessionState& s) { s.active = false; }, {"Active"});
  fake_->add(seatUser("5", 1001, true), true);
  ASSERT_TRUE(pump(*source, [&] {
    return source->evidence(1001, now()).activeSession &&
           !source->evidence(1000, now()).activeSession;
  }));
  EXPECT_EQ(source->status(now()).activeUser, 1001U);
  fake_->remove("5");
  ASSERT_TRUE(pump(*source, [&] { return !source->evidence(1001, now()).activeSession; }));
  EXPECT_FALSE(source->status(now()).activeUser.has_value());
  EXPECT_TRUE(source->evidence(1001, now()).known);
}

TEST_F(LogindPresence, LogindGoingAwayMakesPresenceUnknownUntilItReturns) {
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  auto source = makeSource();
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  fake_.reset();  // its connection closes: the bus says the name lost its owner
  ASSERT_TRUE(pump(*source, [&] { return !source->logindKnown(); }));
  EXPECT_FALSE(source->evidence(1000, now()).known);
  EXPECT_EQ(source->status(now()).source, "none");
  EXPECT_TRUE(said("logind left the system bus"));

  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("7", 1000, true), false);
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  EXPECT_EQ(source->status(now()).source, "logind");
}

TEST_F(LogindPresence, NoLogindOnTheBusIsUnknownUntilItAppears) {
  auto source = makeSource();
  ASSERT_TRUE(pump(*source, [&] { return said("logind does not answer"); }));
  EXPECT_FALSE(source->evidence(1000, now()).known);
  EXPECT_EQ(source->status(now()).source, "none");
  EXPECT_FALSE(source->status(now()).activeUser.has_value());
  // logind starting later (its name gets an owner) is noticed without polling.
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  ASSERT_TRUE(pump(*source, [&] { return source->evidence(1000, now()).activeSession; }));
  EXPECT_EQ(source->status(now()).source, "logind");
}

TEST_F(LogindPresence, WithInputDevicesOnTheSourceIsLogindPlusInput) {
  fake_ = std::make_unique<FakeLogind>();
  fake_->add(seatUser("2", 1000, true), false);
  std::string tmpl = (fs::temp_directory_path() / "presence-dev-XXXXXX").string();
  const fs::path dev = ::mkdtemp(tmpl.data());
  PresenceOptions options;
  options.inputDevices = true;
  options.devInput = dev;
  options.sysRoot = dev / "no-sys";
  auto source = PresenceSource::create(options);
  ASSERT_TRUE(source.has_value());
  ASSERT_TRUE(pump(**source, [&] { return (*source)->evidence(1000, now()).activeSession; }));
  EXPECT_EQ((*source)->status(now()).source, "logind+input");
  EXPECT_EQ((*source)->inputDevices(), 0U);
  // No press seen yet: nothing to credit.
  EXPECT_FALSE((*source)->evidence(1000, now()).sinceInput.has_value());
  source->reset();
  fs::remove_all(dev);
}

TEST(LogindPresenceNoBus, NoSystemBusIsUnknownAndSaid) {
  ::setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/presence-test-bus", 1);
  std::vector<std::string> said;
  PresenceOptions options;
  options.log = [&](bool, std::string_view m) { said.emplace_back(m); };
  auto source = PresenceSource::create(options);
  ASSERT_TRUE(source.has_value());
  EXPECT_FALSE((*source)->logindKnown());
  EXPECT_FALSE((*source)->evidence(1000, std::chrono::steady_clock::now()).known);
  ASSERT_EQ(said.size(), 1U);
  EXPECT_NE(said[0].find("Failed to reach the system bus"), std::string::npos) << said[0];
  // It retries in a few seconds, not at once.
  const auto wait = (*source)->prepare();
  ASSERT_TRUE(wait.has_value());
  EXPECT_GT(*wait, 0ms);
}

}  // namespace
}  // namespace mailguard::presence
