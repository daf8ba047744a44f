#include "mailguard/service/log.hpp"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace mailguard::log {
namespace {
Level gLevel = Level::Info;
std::mutex gMutex;

std::string_view levelWord(Level l) {
  switch (l) {
    case Level::Debug:
      return "debug";
    case Level::Info:
      return "info";
    case Level::Warning:
      return "warning";
    case Level::Error:
      return "error";
  }
  return "info";
}
}  // namespace

void setLevel(Level l) { gLevel = l; }

bool parseLevel(std::string_view s, Level& out) {
  if (s == "debug")
    out = Level::Debug;
  else if (s == "info")
    out = Level::Info;
  else if (s == "warning")
    out = Level::Warning;
  else if (s == "error")
    out = Level::Error;
  else
    return false;
  return true;
}

bool enabled(Level l) { return static_cast<int>(l) <= static_cast<int>(gLevel); }

void write(Level l, std::string_view message) {
  if (!enabled(l)) return;
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  const std::lock_guard lock(gMutex);
  if (journal) {
    std::fprintf(stderr, "<%d>%.*s\n", static_cast<int>(l), static_cast<int>(message.size()),
                 message.data());
  } else {
    const auto word = levelWord(l);
    std::fprintf(stderr, "guardd: %.*s: %.*s\n", static_cast<int>(word.size()), word.data(),
                 static_cast<int>(message.size()), message.data());
  }
}

std::string quote(std::string_view untrusted) {
  std::string out = "'";
  for (const char c : untrusted) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\'' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += c;
    }
  }
  out += '\'';
  return out;
}

}  // namespace mailguard::log
