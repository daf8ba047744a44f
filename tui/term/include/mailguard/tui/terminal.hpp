#pragma once
// The only code of guard-tui that talks to the terminal (ncursesw). It turns key
// presses and resizes into model events and draws rendered frames; styles map to
// colours once, here. Without colour support, or with NO_COLOR set, styles become
// attributes (bold, reverse) only. Non-UTF-8 locales get ASCII stand-ins.
#include <memory>
#include <vector>

#include "mailguard/tui/model.hpp"
#include "mailguard/tui/view.hpp"

namespace mailguard::tui {

class Terminal {
 public:
  // Takes over the terminal on stdin/stdout (alternate screen, no echo, keypad).
  // Throws std::runtime_error when stdin/stdout is not a terminal curses can use.
  explicit Terminal(bool allowColour);
  ~Terminal();  // restores the terminal
  Terminal(const Terminal&) = delete;
  Terminal& operator=(const Terminal&) = delete;

  [[nodiscard]] Size size() const;
  [[nodiscard]] int inputFd() const;
  [[nodiscard]] bool colour() const { return colour_; }
  // Everything typed so far (never blocks); a resize comes as a Resized event.
  std::vector<Event> readInput();
  // False when the frame was made for another size than the terminal has now.
  bool draw(const Frame& frame);

 private:
  struct Screen;
  std::unique_ptr<Screen> screen_;
  bool colour_ = false;
  bool utf8_ = false;
  Size drawn_{0, 0};  // size of the last frame drawn
};

// NO_COLOR (https://no-color.org): set and not empty means no colour.
bool noColorRequested();

}  // namespace mailguard::tui
