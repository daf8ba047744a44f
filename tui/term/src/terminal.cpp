#include "mailguard/tui/terminal.hpp"

#include <curses.h>
#include <langinfo.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "mailguard/tui/text.hpp"

namespace mailguard::tui {
namespace {

struct Look {
  short fg;           // -1: the terminal's default
  attr_t colourAttr;  // with colours
  attr_t monoAttr;    // monochrome or NO_COLOR
};

// One line per Style, in enum order.
const std::array<Look, kStyleCount> kLooks = {{
    {-1, A_NORMAL, A_NORMAL},                       // Normal
    {COLOR_CYAN, A_BOLD, A_BOLD},                   // Title
    {-1, A_NORMAL, A_NORMAL},                       // Tab
    {-1, A_REVERSE | A_BOLD, A_REVERSE | A_BOLD},   // TabActive
    {-1, A_BOLD, A_BOLD | A_UNDERLINE},             // Header
    {COLOR_GREEN, A_NORMAL, A_NORMAL},              // Good
    {COLOR_RED, A_BOLD, A_BOLD | A_UNDERLINE},      // Bad
    {COLOR_YELLOW, A_BOLD, A_BOLD},                 // Pending
    {COLOR_GREEN, A_NORMAL, A_NORMAL},              // Approved
    {COLOR_RED, A_NORMAL, A_NORMAL},                // Denied
    {COLOR_MAGENTA, A_BOLD, A_BOLD | A_UNDERLINE},  // Quarantined
    {COLOR_GREEN, A_NORMAL, A_NORMAL},              // Allowed
    {COLOR_YELLOW, A_NORMAL, A_NORMAL},             // Held
    {COLOR_RED, A_BOLD, A_BOLD},                    // Blocked
    {-1, A_DIM, A_NORMAL},                          // Dim
    {COLOR_CYAN, A_BOLD, A_BOLD},                   // Key
    {COLOR_CYAN, A_NORMAL, A_NORMAL},               // Info
    {COLOR_RED, A_BOLD, A_BOLD | A_REVERSE},        // Error
    {COLOR_YELLOW, A_BOLD, A_BOLD | A_REVERSE},     // Prompt
}};

std::string toUtf8(wint_t c) {
  std::string out;
  const auto u = static_cast<std::uint32_t>(c);
  if (u < 0x80) {
    out += static_cast<char>(u);
  } else if (u < 0x800) {
    out += static_cast<char>(0xC0 | (u >> 6));
    out += static_cast<char>(0x80 | (u & 0x3F));
  } else if (u < 0x10000) {
    out += static_cast<char>(0xE0 | (u >> 12));
    out += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (u & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (u >> 18));
    out += static_cast<char>(0x80 | ((u >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((u >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (u & 0x3F));
  }
  return out;
}

// For terminals that are not UTF-8: ASCII with the same cell widths. Input is
// already sanitized (valid UTF-8, no control characters).
std::string asciiFallback(const std::string& s) {
  std::string out;
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    std::size_t len = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : 4;
    len = std::min(len, s.size() - i);
    char32_t c = b & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
    for (std::size_t k = 1; k < len; ++k)
      c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3Fu);
    i += len;
    if (c == 0x2500) {
      out += '-';
    } else if (c == 0x2026) {
      out += '~';
    } else {
      out.append(static_cast<std::size_t>(codepointWidth(c)), '?');
    }
  }
  return out;
}

}  // namespace

struct Terminal::Screen {
  SCREEN* screen = nullptr;
};

bool noColorRequested() {
  const char* v = std::getenv("NO_COLOR");
  return v != nullptr && v[0] != '\0';
}

Terminal::Terminal(bool allowColour) : screen_(std::make_unique<Screen>()) {
  if (isatty(STDIN_FILENO) == 0 || isatty(STDOUT_FILENO) == 0) {
    throw std::runtime_error("guard-tui needs a terminal (use guardctl in scripts)");
  }
  const char* codeset = nl_langinfo(CODESET);
  utf8_ = codeset != nullptr && std::strcmp(codeset, "UTF-8") == 0;
  // newterm() reports failure instead of exiting as initscr() does.
  screen_->screen = newterm(nullptr, stdout, stdin);
  if (screen_->screen == nullptr) {
    throw std::runtime_error("cannot use this terminal (is TERM set to a known type?)");
  }
  cbreak();
  noecho();
  nonl();
  keypad(stdscr, TRUE);
  // Home and End have several encodings and terminfo names one: xterm's entry has the
  // application-mode \EOH/\EOF, while tmux, screen and the Linux console send the
  // VT220 \E[1~/\E[4~ and xterm in normal mode \E[H/\E[F. Unknown, they would arrive
  // as Esc [ 4 ~ and the '4' would switch screens. (define_key is ncurses'.)
  for (const auto& [seq, code] : {std::pair{"\033[1~", KEY_HOME}, std::pair{"\033[4~", KEY_END},
                                  std::pair{"\033[H", KEY_HOME}, std::pair{"\033[F", KEY_END},
                                  std::pair{"\033[7~", KEY_HOME}, std::pair{"\033[8~", KEY_END}}) {
    if (key_defined(seq) == 0) define_key(seq, code);
  }
  nodelay(stdscr, TRUE);
  set_escdelay(25);  // Esc closes things: do not wait a second for an escape sequence
  curs_set(0);
  colour_ = allowColour && has_colors();
  if (colour_) {
    start_color();
    use_default_colors();
    for (int i = 0; i < kStyleCount; ++i) {
      init_pair(static_cast<short>(i + 1), kLooks[static_cast<std::size_t>(i)].fg, -1);
    }
  }
}

Terminal::~Terminal() {
  if (screen_ && screen_->screen) {
    curs_set(1);
    endwin();
    delscreen(screen_->screen);
  }
}

Size Terminal::size() const {
  int rows = 0;
  int cols = 0;
  getmaxyx(stdscr, rows, cols);
  return Size{cols, rows};
}

int Terminal::inputFd() const { return STDIN_FILENO; }

std::vector<Event> Terminal::readInput() {
  std::vector<Event> events;
  for (;;) {
    wint_t c = 0;
    const int r = wget_wch(stdscr, &c);
    if (r == ERR) break;
    if (r == KEY_CODE_YES) {
      switch (c) {
        case KEY_RESIZE:
          events.emplace_back(Resized{size()});
          break;
        case KEY_UP:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Up)});
          break;
        case KEY_DOWN:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Down)});
          break;
        case KEY_LEFT:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Left)});
          break;
        case KEY_RIGHT:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Right)});
          break;
        case KEY_PPAGE:
          events.emplace_back(KeyPressed{Key::of(KeyCode::PageUp)});
          break;
        case KEY_NPAGE:
          events.emplace_back(KeyPressed{Key::of(KeyCode::PageDown)});
          break;
        case KEY_HOME:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Home)});
          break;
        case KEY_END:
          events.emplace_back(KeyPressed{Key::of(KeyCode::End)});
          break;
        case KEY_BTAB:
          events.emplace_back(KeyPressed{Key::of(KeyCode::BackTab)});
          break;
        case KEY_ENTER:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Enter)});
          break;
        case KEY_BACKSPACE:
          events.emplace_back(KeyPressed{Key::of(KeyCode::Backspace)});
          break;
        default:
          break;
      }
      continue;
    }
    switch (c) {
      case L'\t':
        events.emplace_back(KeyPressed{Key::of(KeyCode::Tab)});
        break;
      case L'\r':
      case L'\n':
        events.emplace_back(KeyPressed{Key::of(KeyCode::Enter)});
        break;
      case 27:
        events.emplace_back(KeyPressed{Key::of(KeyCode::Escape)});
        break;
      case 8:
      case 127:
        events.emplace_back(KeyPressed{Key::of(KeyCode::Backspace)});
        break;
      case 12:  // Ctrl-L: repaint everything
        clearok(curscr, TRUE);
        events.emplace_back(Resized{size()});
        break;
      default:
        if (c >= 32) events.emplace_back(KeyPressed{Key::ch(toUtf8(c))});
        break;
    }
  }
  return events;
}

bool Terminal::draw(const Frame& frame) {
  // curses learns of a resize in getch() or in doupdate(), whichever runs first; a frame
  // made for the old size is not drawn (the KEY_RESIZE that follows brings a new one).
  if (frame.size.cols != size().cols || frame.size.rows != size().rows) return false;
  if (frame.size.cols != drawn_.cols || frame.size.rows != drawn_.rows) {
    // A new size: repaint everything, since the terminal may have reflowed or dropped
    // what curses believes is on screen (tmux rewraps lines when the width changes).
    clearok(curscr, TRUE);
    drawn_ = frame.size;
  }
  werase(stdscr);
  const int rows = std::min(frame.size.rows, static_cast<int>(frame.rows.size()));
  for (int y = 0; y < rows; ++y) {
    const Row& row = frame.rows[static_cast<std::size_t>(y)];
    wmove(stdscr, y, 0);
    for (const Span& span : row.spans) {
      const auto index = static_cast<std::size_t>(span.style);
      const Look& look = kLooks[index];
      attr_t attr = colour_ ? look.colourAttr : look.monoAttr;
      if (row.selected) attr |= A_REVERSE;
      const short pair = colour_ ? static_cast<short>(index + 1) : 0;
      wattr_set(stdscr, attr, pair, nullptr);
      // At the bottom-right cell curses reports an error (it cannot wrap) but draws.
      if (utf8_) {
        waddstr(stdscr, span.text.c_str());
      } else {
        waddstr(stdscr, asciiFallback(span.text).c_str());
      }
    }
  }
  wattr_set(stdscr, A_NORMAL, 0, nullptr);
  wnoutrefresh(stdscr);
  doupdate();
  return true;
}

}  // namespace mailguard::tui
