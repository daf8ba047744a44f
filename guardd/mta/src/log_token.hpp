#pragma once
// The next blank-separated word of a log line, shared by the exim and postfix parsers.
#include <string_view>

namespace mailguard::mta {

inline std::string_view nextToken(std::string_view& rest) {
  const auto start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const auto end = rest.find(' ');
  const auto token = rest.substr(0, end);
  rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  return token;
}

}  // namespace mailguard::mta
