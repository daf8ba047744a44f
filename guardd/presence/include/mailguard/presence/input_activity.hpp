#pragma once
// The time of the last key press or button click on a real input device (evdev). Only
// the event's timestamp is kept: the reader looks at an event's type and value (EV_KEY,
// pressed) and never keeps or logs its code. Devices that are not real hardware do not
// count: a device whose sysfs node lives under /sys/devices/virtual (uinput, which a bot
// can use to fake presses) or whose bus is BUS_VIRTUAL. New devices are found through
// inotify on /dev/input; at most kMaxDevices are open at once.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "mailguard/common/fd.hpp"
#include "mailguard/presence/poller.hpp"
#include "mailguard/rules/clock.hpp"

namespace mailguard::presence {

// Whether /dev/input/<eventName> is a virtual device, from sysfs alone:
// <sysRoot>/class/input/<eventName> is a symlink into <sysRoot>/devices/...; uinput and
// every other software-made device sit under <sysRoot>/devices/virtual. A name that does
// not resolve counts as virtual (nothing vouches for it).
bool isVirtualInput(const std::filesystem::path& sysRoot, std::string_view eventName);

class InputActivity {
 public:
  using Log = std::function<void(bool warning, std::string_view message)>;
  static constexpr std::size_t kMaxDevices = 32;

  InputActivity(Poller& poller, std::filesystem::path devInput, std::filesystem::path sysRoot,
                Log log);
  ~InputActivity();
  InputActivity(const InputActivity&) = delete;
  InputActivity& operator=(const InputActivity&) = delete;

  // /dev/input is watched (hot-plug works); false when it does not exist.
  [[nodiscard]] bool watching() const { return inotify_.valid(); }
  [[nodiscard]] std::optional<MonoTime> lastInput() const { return last_; }
  [[nodiscard]] std::size_t devices() const { return devices_.size(); }

 private:
  void onInotify();
  void tryOpen(const std::string& name);
  void close(const std::string& name);
  void skipVirtual(const std::string& name);
  void onReadable(const std::string& name, std::uint32_t events);

  Poller& poller_;
  std::filesystem::path devInput_;
  std::filesystem::path sysRoot_;
  Log log_;
  Fd inotify_;
  std::map<std::string, Fd> devices_;  // by node name ("event3")
  std::set<std::string> virtual_;      // nodes seen and not counted (until deleted)
  std::optional<MonoTime> last_;
  bool fullSaid_ = false;
};

}  // namespace mailguard::presence
