#include "mailguard/rules/destination.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mailguard::rules {
namespace {

Result<std::uint16_t> parsePort(std::string_view whole, std::string_view digits) {
  unsigned port = 0;
  const auto* end = digits.data() + digits.size();
  const auto [ptr, ec] = std::from_chars(digits.data(), end, port);
  if (digits.empty() || ec != std::errc{} || ptr != end || port == 0 || port > 65535) {
    return invalidArgument("'" + std::string(whole) + "' has an invalid port (1..65535)");
  }
  return static_cast<std::uint16_t>(port);
}

Error badDestination(std::string_view text, const std::string& why) {
  return invalidArgument(
      "'" + std::string(text) + "' is not a destination: " + why +
      " (expected an IP address or prefix with an optional port: 192.0.2.7, 192.0.2.7:587, "
      "192.0.2.0/24, [2001:db8::7]:587; host names are not accepted)");
}

}  // namespace

Result<Destination> parseDestination(std::string_view text) {
  if (text.empty()) return badDestination(text, "it is empty");
  std::string_view host = text;
  std::string_view portText;
  bool hasPort = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return badDestination(text, "no closing ']'");
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return badDestination(text, "unexpected text after ']'");
      portText = rest.substr(1);
      hasPort = true;
    }
    if (host.find(':') == std::string_view::npos) {
      return badDestination(text, "brackets are for IPv6 addresses");
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    // One colon: IPv4 (or an IPv4 prefix) with a port. Two or more: a bare IPv6 address.
    const auto colon = text.find(':');
    host = text.substr(0, colon);
    portText = text.substr(colon + 1);
    hasPort = true;
  }
  Destination d;
  if (hasPort) {
    auto port = parsePort(text, portText);
    if (!port) return port.error();
    d.port = *port;
  }
  auto prefix = parsePrefix(host);
  if (!prefix) {
    const bool looksLikeName =
        std::any_of(host.begin(), host.end(),
                    [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; }) &&
        host.find(':') == std::string_view::npos;
    return badDestination(text, looksLikeName ? "host names are not accepted, only addresses"
                                              : prefix.error().message);
  }
  d.prefix = *prefix;
  return d;
}

std::string toString(const Destination& d) {
  std::string host = toString(d.prefix);
  const unsigned full = d.prefix.family == 4 ? 32 : 128;
  if (d.prefix.length == full) host.erase(host.rfind('/'));
  if (d.port == 0) return host;
  if (d.prefix.family == 6) host = "[" + host + "]";
  return host + ":" + std::to_string(d.port);
}

std::string toString(const std::vector<Destination>& list) {
  std::string out;
  for (const Destination& d : list) out += (out.empty() ? "" : ", ") + toString(d);
  return out;
}

bool matches(const Destination& d, const ConnectionTuple& tuple) {
  const int family = tuple.family == AF_INET ? 4 : tuple.family == AF_INET6 ? 6 : 0;
  if (family == 0 || !contains(d.prefix, family, tuple.dst)) return false;
  return d.port == 0 || d.port == tuple.dstPort;
}

bool matchesAny(const std::vector<Destination>& list, const ConnectionTuple& tuple) {
  return std::any_of(list.begin(), list.end(),
                     [&](const Destination& d) { return matches(d, tuple); });
}

std::string encodeDestinations(const std::vector<Destination>& list) {
  std::string out;
  for (const Destination& d : list) out += toString(d) + "\n";
  return out;
}

Result<std::vector<Destination>> decodeDestinations(std::string_view text) {
  std::vector<Destination> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (line.empty()) continue;
    auto d = parseDestination(line);
    if (!d) return d.error();
    out.push_back(*d);
  }
  return out;
}

std::vector<Destination> mergedDestinations(std::vector<Destination> list,
                                            const std::vector<Destination>& more) {
  for (const Destination& d : more) {
    if (std::find(list.begin(), list.end(), d) == list.end()) list.push_back(d);
  }
  return list;
}

}  // namespace mailguard::rules
