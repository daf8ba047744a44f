#pragma once
// The one logging facade. Under systemd (JOURNAL_STREAM set) lines carry "<N>"
// priority prefixes so the journal keeps levels; otherwise a plain level word.
#include <string>
#include <string_view>

namespace mailguard::log {

enum class Level { Debug = 7, Info = 6, Warning = 4, Error = 3 };

void setLevel(Level l);
bool parseLevel(std::string_view s, Level& out);
bool enabled(Level l);
void write(Level l, std::string_view message);

inline void debug(std::string_view m) { write(Level::Debug, m); }
inline void info(std::string_view m) { write(Level::Info, m); }
inline void warning(std::string_view m) { write(Level::Warning, m); }
inline void error(std::string_view m) { write(Level::Error, m); }

// Strings that came from other programs (paths, command lines) are quoted with
// control characters escaped, so a hostile name cannot forge log lines.
std::string quote(std::string_view untrusted);

}  // namespace mailguard::log
