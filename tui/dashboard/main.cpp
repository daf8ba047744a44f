// guard-tui: the terminal dashboard of mailguard. Parses the command line, takes over
// the terminal and runs the dashboard's loop; the terminal is restored on every exit.
#include <CLI/CLI.hpp>
#include <clocale>
#include <exception>
#include <iostream>
#include <optional>

#include "dashboard.hpp"
#include "mailguard/tui/terminal.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "guard-tui: the dashboard of mailguard. Shows which programs tried to send mail, what\n"
      "was held or rejected, and lets you approve or deny programs (that needs root: sudo).\n"
      "Press ? inside for the keys. For scripts use guardctl.",
      "guard-tui"};
  bool noColour = false;
  app.add_flag("--no-color", noColour, "No colours (also when NO_COLOR is set)");
  app.set_version_flag("--version", std::string("guard-tui ") + MAILGUARD_VERSION);
  CLI11_PARSE(app, argc, argv);

  std::setlocale(LC_ALL, "");  // UTF-8 paths: curses draws multibyte text per the locale
  int code = 0;
  try {
    std::optional<mailguard::tui::Terminal> terminal;
    terminal.emplace(!noColour && !mailguard::tui::noColorRequested());
    mailguard::tui::Dashboard dashboard(*terminal);
    code = dashboard.run();
  } catch (const std::exception& e) {
    // The terminal is restored by now (its destructor ran during unwinding).
    std::cerr << "guard-tui: " << e.what() << "\n";
    return 1;
  }
  return code;
}
