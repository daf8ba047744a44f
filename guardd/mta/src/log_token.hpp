#pragma once
// The next blank-separated word of a log line, shared by the exim and postfix parsers.
#include <algorithm>
#include <cctype>
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

// The word where an exim mainlog line has its message id: after the date and time and the
// optional zone ("+0200") and process id ("[1234]") that log_timezone and log_selector =
// +pid add; `rest` is left after it. Empty when the line does not start with a date and
// time; the caller checks the id.
inline std::string_view eximQueueIdToken(std::string_view& rest) {
  const auto date = nextToken(rest);
  const auto time = nextToken(rest);
  if (date.size() != 10 || date[4] != '-' || time.size() < 8 || time[2] != ':') return {};
  auto token = nextToken(rest);
  const auto digits = [](std::string_view t) {
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
      return std::isdigit(static_cast<unsigned char>(c)) != 0;
    });
  };
  if (!token.empty() && (token[0] == '+' || token[0] == '-') && digits(token.substr(1))) {
    token = nextToken(rest);
  }
  if (token.size() > 2 && token.front() == '[' && token.back() == ']') token = nextToken(rest);
  return token;
}

}  // namespace mailguard::mta
