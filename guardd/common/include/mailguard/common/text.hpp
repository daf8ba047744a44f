#pragma once
// Small text helpers shared by guardd's parsers of kernel and network text.
#include <string_view>

namespace mailguard {

// `s` without the blanks (space, tab) around it, nor a line's trailing CR: the padding of
// /proc's "Name:\tvalue" lines and of HTTP-style headers ("LOCATION: url\r").
inline std::string_view trimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

}  // namespace mailguard
