#include "mailguard/presence/input_activity.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include <filesystem>
#include <fstream>
#include <string>

namespace mailguard::presence {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "presence-test-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A sysfs tree as the kernel lays it out: /sys/class/input/eventN is a symlink to the
// event node under the device that made it.
void addDevice(const fs::path& sys, const std::string& deviceDir, const std::string& event) {
  const fs::path node = sys / "devices" / deviceDir / event;
  fs::create_directories(node);
  fs::create_directories(sys / "class" / "input");
  fs::create_directory_symlink(fs::relative(node, sys / "class" / "input"),
                               sys / "class" / "input" / event);
}

TEST(VirtualInput, UinputDevicesUnderDevicesVirtualAreVirtual) {
  TempDir t;
  addDevice(t.path(), "virtual/input/input7", "event7");
  EXPECT_TRUE(isVirtualInput(t.path(), "event7"));
}

TEST(VirtualInput, AUsbKeyboardIsReal) {
  TempDir t;
  addDevice(t.path(), "pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/0003:046D:C31C.0001/input/input3",
            "event3");
  fs::create_directories(t.path() / "devices" / "virtual");
  EXPECT_FALSE(isVirtualInput(t.path(), "event3"));
}

TEST(VirtualInput, APrefixOfTheNameIsNotTheVirtualFolder) {
  TempDir t;
  addDevice(t.path(), "virtualbox/input/input4", "event4");
  fs::create_directories(t.path() / "devices" / "virtual");
  EXPECT_FALSE(isVirtualInput(t.path(), "event4"));
}

TEST(VirtualInput, ANodeSysfsDoesNotKnowCountsAsVirtual) {
  TempDir t;
  fs::create_directories(t.path() / "class" / "input");
  EXPECT_TRUE(isVirtualInput(t.path(), "event9"));
}

TEST(InputActivity, WithoutDevInputNothingIsWatchedAndItSaysSo) {
  TempDir t;
  Poller poller = Poller::create().value();
  std::string said;
  InputActivity input(poller, t.path() / "no-such-dir", t.path(),
                      [&](bool, std::string_view m) { said = std::string(m); });
  EXPECT_FALSE(input.watching());
  EXPECT_EQ(input.devices(), 0U);
  EXPECT_NE(said.find("no input device is read"), std::string::npos) << said;
}

TEST(InputActivity, ANodeThatIsNoEvdevDeviceIsNotRead) {
  TempDir t;
  const fs::path dev = t.path() / "dev";
  fs::create_directories(dev);
  addDevice(t.path() / "sys", "platform/i8042/serio0/input/input1", "event1");
  std::ofstream(dev / "event1") << "not a device";
  Poller poller = Poller::create().value();
  InputActivity input(poller, dev, t.path() / "sys", {});
  EXPECT_TRUE(input.watching());
  // A real (non-virtual) sysfs entry, but EVIOCGID fails on a plain file.
  EXPECT_EQ(input.devices(), 0U);
  EXPECT_FALSE(input.lastInput().has_value());
}

TEST(InputActivity, AVirtualDevicePluggedInLaterIsSeenAndNotCounted) {
  TempDir t;
  const fs::path dev = t.path() / "dev";
  fs::create_directories(dev);
  addDevice(t.path() / "sys", "virtual/input/input12", "event12");
  Poller poller = Poller::create().value();
  std::vector<std::string> said;
  InputActivity input(poller, dev, t.path() / "sys",
                      [&](bool, std::string_view m) { said.emplace_back(m); });
  ASSERT_TRUE(input.watching());
  std::ofstream(dev / "event12") << "";  // the node appears: inotify tells the reader
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  auto saidVirtual = [&] {
    for (const auto& m : said) {
      if (m ==
          "Input device 'event12' is virtual (uinput or similar): its presses do not "
          "count as presence") {
        return true;
      }
    }
    return false;
  };
  while (!saidVirtual() && std::chrono::steady_clock::now() < deadline) {
    pollfd p{poller.fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    poller.dispatch();
  }
  EXPECT_TRUE(saidVirtual());
  EXPECT_EQ(input.devices(), 0U);
  // A second event for the same node (udev's chmod) is not said again.
  fs::permissions(dev / "event12", fs::perms::owner_read);
  pollfd p{poller.fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  poller.dispatch();
  EXPECT_EQ(
      std::count_if(said.begin(), said.end(),
                    [](const std::string& m) { return m.find("event12") != std::string::npos; }),
      1);
}

}  // namespace
}  // namespace mailguard::presence
