// What guardctl and guard-tui say when guardd is not there, with and without systemd.
#include <gtest/gtest.h>

#include <string>

#include "client_errors.hpp"

namespace mailguard::dbus {
namespace {

TEST(NotRunning, WithSystemdSaysSystemctl) {
  const std::string m = notRunningMessage(true);
  EXPECT_NE(m.find("guardd is not running"), std::string::npos) << m;
  EXPECT_NE(m.find("start it with: sudo systemctl start guardd"), std::string::npos) << m;
}

TEST(NotRunning, WithoutSystemdNeverMentionsSystemctl) {
  const std::string m = notRunningMessage(false);
  EXPECT_NE(m.find("guardd is not running"), std::string::npos) << m;
  EXPECT_EQ(m.find("systemctl"), std::string::npos) << m;
  EXPECT_NE(m.find("install/setup.sh"), std::string::npos) << m;
  EXPECT_NE(m.find("sudo guardd --config /etc/mailguard/guardd.conf"), std::string::npos) << m;
}

TEST(NotRunning, TheNameOnTheBusWithNoOwnerGivesTheMessageForThisMachine) {
  const auto e = fromSdbus(sdbus::Error("org.freedesktop.DBus.Error.ServiceUnknown", "gone"));
  EXPECT_EQ(e.kind, ClientError::Kind::NotRunning);
  EXPECT_EQ(e.message, notRunningMessage(systemdRunning()));
}

}  // namespace
}  // namespace mailguard::dbus
