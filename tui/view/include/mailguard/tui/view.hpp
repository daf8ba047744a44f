#pragma once
// guard-tui's view: renders the model into a frame of styled text rows. Pure: the
// terminal layer maps styles (roles, not colours) to curses attributes once.
#include <string>
#include <vector>

#include "mailguard/tui/model.hpp"

namespace mailguard::tui {

enum class Style {
  Normal,
  Title,
  Tab,
  TabActive,
  Header,
  Good,  // connected, enforcing
  Bad,   // disconnected, not enforcing, store trouble
  Pending,
  Approved,
  Denied,
  Quarantined,
  Allowed,
  Held,
  Blocked,
  Dim,
  Key,
  Info,
  Error,
  Prompt,
};
inline constexpr int kStyleCount = static_cast<int>(Style::Prompt) + 1;

struct Span {
  std::string text;  // sanitized UTF-8
  Style style = Style::Normal;
};

struct Row {
  std::vector<Span> spans;  // together exactly as wide as the frame
  bool selected = false;    // drawn in reverse video on top of the spans' styles
  [[nodiscard]] std::string text() const;
};

struct Frame {
  Size size;
  std::vector<Row> rows;  // exactly size.rows
  // Plain text, one line per row, trailing spaces removed (for tests and captures).
  [[nodiscard]] std::vector<std::string> lines() const;
  [[nodiscard]] std::string text() const;
};

Frame render(const State& state, Size size);

// "14:03:59" for today, else "2024-03-14"; "never" for 0.
std::string formatTime(const State& state, std::int64_t us);
// "2024-03-14 14:03:59" local time.
std::string formatFullTime(const State& state, std::int64_t us);
// "127.0.0.1:25" or "[::1]:25".
std::string formatEndpoint(const std::string& address, std::uint16_t port);
// An attempt's destination: formatEndpoint, or "mta: example.org,example.net" for a
// message handed to the local MTA (its recipients' domains).
std::string attemptDestination(const Attempt& attempt);

}  // namespace mailguard::tui
