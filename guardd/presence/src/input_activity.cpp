#include "mailguard/presence/input_activity.hpp"

#include <fcntl.h>
#include <linux/input.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <system_error>
#include <utility>
#include <vector>

namespace mailguard::presence {
namespace {

// Reads per wake-up and device: a device spewing events (a stuck key, a fuzzer) must not
// hold the loop; what is left stays readable for the next turn.
constexpr int kReadsPerWake = 4;

bool isEventNode(std::string_view name) {
  if (name.size() <= 5 || name.substr(0, 5) != "event") return false;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool testBit(const std::vector<unsigned long>& bits, unsigned bit) {
  constexpr unsigned kPerWord = sizeof(unsigned long) * 8;
  const auto word = bit / kPerWord;
  return word < bits.size() && ((bits[word] >> (bit % kPerWord)) & 1UL) != 0;
}

}  // namespace

bool isVirtualInput(const std::filesystem::path& sysRoot, std::string_view eventName) {
  std::error_code ec;
  const auto real = std::filesystem::canonical(sysRoot / "class" / "input" / eventName, ec);
  if (ec) return true;
  const auto virtualRoot = std::filesystem::weakly_canonical(sysRoot / "devices" / "virtual", ec);
  if (ec) return true;
  // Component-wise prefix: "virtual" and not "virtualfoo".
  auto r = real.begin();
  for (auto v = virtualRoot.begin(); v != virtualRoot.end(); ++v, ++r) {
    if (r == real.end() || *r != *v) return false;
  }
  return true;
}

InputActivity::InputActivity(Poller& poller, std::filesystem::path devInput,
                             std::filesystem::path sysRoot, Log log)
    : poller_(poller),
      devInput_(std::move(devInput)),
      sysRoot_(std::move(sysRoot)),
      log_(std::move(log)) {
  Fd in(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  // IN_ATTRIB too: udev creates the node first and sets its owner and mode afterwards.
  if (!in || ::inotify_add_watch(in.get(), devInput_.c_str(),
                                 IN_CREATE | IN_ATTRIB | IN_DELETE | IN_MOVED_TO) < 0) {
    const int err = errno;
    if (log_) {
      log_(true, "Failed to watch '" + devInput_.string() +
                     "': " + std::system_category().message(err) + " (no input device is read)");
    }
    return;
  }
  if (auto added = poller_.add(in.get(), EPOLLIN, [this](std::uint32_t) { onInotify(); }); !added) {
    if (log_) log_(true, added.error().message + " (no input device is read)");
    return;
  }
  inotify_ = std::move(in);
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(devInput_, ec)) {
    tryOpen(entry.path().filename().string());
  }
  if (log_) {
    log_(false, "Reading key press and click times from " + std::to_string(devices_.size()) +
                    " input devices");
  }
}

InputActivity::~InputActivity() {
  for (auto& [name, fd] : devices_) poller_.remove(fd.get());
  if (inotify_) poller_.remove(inotify_.get());
}

void InputActivity::onInotify() {
  alignas(inotify_event) std::array<char, 4096> buf{};
  for (;;) {
    const ssize_t n = ::read(inotify_.get(), buf.data(), buf.size());
    if (n <= 0) return;
    for (std::size_t off = 0; off + sizeof(inotify_event) <= static_cast<std::size_t>(n);) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf.data() + off);
      off += sizeof(inotify_event) + ev->len;
      if (ev->len == 0) continue;
      const std::string name(ev->name);
      if ((ev->mask & IN_DELETE) != 0) {
        close(name);
      } else {
        tryOpen(name);
      }
    }
  }
}

void InputActivity::tryOpen(const std::string& name) {
  if (!isEventNode(name) || devices_.count(name) != 0 || virtual_.count(name) != 0) return;
  if (isVirtualInput(sysRoot_, name)) {
    skipVirtual(name);
    return;
  }
  if (devices_.size() >= kMaxDevices) {
    if (!fullSaid_ && log_) {
      log_(true, "More than " + std::to_string(kMaxDevices) +
                     " input devices: the rest are not read for presence");
    }
    fullSaid_ = true;
    return;
  }
  Fd fd(::open((devInput_ / name).c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd) return;  // not ours to read yet (udev sets the mode after IN_CREATE): IN_ATTRIB
  input_id id{};
  if (::ioctl(fd.get(), EVIOCGID, &id) != 0) return;
  if (id.bustype == BUS_VIRTUAL) {
    skipVirtual(name);
    return;
  }
  // Only devices with keys or buttons (EV_KEY): keyboards, mice, touchpads.
  std::vector<unsigned long> types(EV_MAX / (sizeof(unsigned long) * 8) + 1, 0);
  const auto typeBytes = static_cast<unsigned>(types.size() * sizeof(unsigned long));
  if (::ioctl(fd.get(), EVIOCGBIT(0, typeBytes), types.data()) < 0 || !testBit(types, EV_KEY)) {
    return;
  }
  // Timestamps on CLOCK_MONOTONIC, the clock guardd measures windows on (evdev's
  // default is CLOCK_REALTIME, which jumps when the wall clock is set).
  int clock = CLOCK_MONOTONIC;
  if (::ioctl(fd.get(), EVIOCSCLOCKID, &clock) != 0) return;
  const int raw = fd.get();
  if (!poller_.add(raw, EPOLLIN,
                   [this, name](std::uint32_t events) { onReadable(name, events); })) {
    return;
  }
  devices_.emplace(name, std::move(fd));
}

void InputActivity::skipVirtual(const std::string& name) {
  // Said once per node: udev's IN_ATTRIB events would repeat it.
  if (!virtual_.insert(name).second) return;
  if (log_) {
    log_(false, "Input device '" + name +
                    "' is virtual (uinput or similar): its presses do not count as presence");
  }
}

void InputActivity::close(const std::string& name) {
  virtual_.erase(name);
  const auto it = devices_.find(name);
  if (it == devices_.end()) return;
  poller_.remove(it->second.get());
  devices_.erase(it);
  fullSaid_ = false;
}

void InputActivity::onReadable(const std::string& name, std::uint32_t events) {
  const auto it = devices_.find(name);
  if (it == devices_.end()) return;
  std::array<input_event, 64> buf{};
  for (int i = 0; i < kReadsPerWake; ++i) {
    const ssize_t n = ::read(it->second.get(), buf.data(), sizeof(buf));
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      close(name);  // ENODEV: unplugged
      return;
    }
    if (n == 0) break;
    const auto count = static_cast<std::size_t>(n) / sizeof(input_event);
    for (std::size_t k = 0; k < count; ++k) {
      const auto& ev = buf[k];
      // A press (value 1) of any key or button; releases (0) and auto-repeat (2) are not
      // new input. The code is not looked at.
      if (ev.type != EV_KEY || ev.value != 1) continue;
      const MonoTime t{std::chrono::duration_cast<MonoTime::duration>(
          std::chrono::seconds(ev.input_event_sec) +
          std::chrono::microseconds(ev.input_event_usec))};
      if (!last_ || t > *last_) last_ = t;
    }
  }
  if ((events & (EPOLLHUP | EPOLLERR)) != 0) close(name);
}

}  // namespace mailguard::presence
