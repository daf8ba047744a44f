#include "mailguard/rules/firewall.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <utility>

namespace mailguard::rules {
namespace {

constexpr ServicePort tcp(std::uint16_t port) { return ServicePort{Protocol::Tcp, port}; }
constexpr ServicePort udp(std::uint16_t port) { return ServicePort{Protocol::Udp, port}; }

std::size_t addrLen(int family) { return family == 4 ? 4 : 16; }

std::optional<std::uint16_t> parsePort(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

// Clears the bits after `length`.
void maskHostBits(std::array<std::uint8_t, 16>& addr, std::size_t len, unsigned length) {
  for (std::size_t i = 0; i < len; ++i) {
    const unsigned bitsBefore = static_cast<unsigned>(i) * 8;
    if (length >= bitsBefore + 8) continue;
    const unsigned keep = length > bitsBefore ? length - bitsBefore : 0;
    addr[i] = static_cast<std::uint8_t>(addr[i] & static_cast<std::uint8_t>(0xff00U >> keep));
  }
}

std::array<std::uint8_t, 16> lastOf(const IpPrefix& p) {
  std::array<std::uint8_t, 16> last = p.addr;
  const std::size_t len = addrLen(p.family);
  for (std::size_t i = 0; i < len; ++i) {
    const unsigned bitsBefore = static_cast<unsigned>(i) * 8;
    if (p.length >= bitsBefore + 8) continue;
    const unsigned keep = p.length > bitsBefore ? p.length - bitsBefore : 0;
    last[i] = static_cast<std::uint8_t>(last[i] | (0xffU >> keep));
  }
  return last;
}

// a + 1 over `len` bytes; false on overflow (a was all ones).
bool increment(std::array<std::uint8_t, 16>& a, std::size_t len) {
  for (std::size_t i = len; i-- > 0;) {
    if (a[i] != 0xff) {
      ++a[i];
      return true;
    }
    a[i] = 0;
  }
  return false;
}

void sortByName(std::vector<AllowedService>& services) {
  std::sort(services.begin(), services.end(),
            [](const AllowedService& a, const AllowedService& b) { return a.name < b.name; });
}

bool allows(const FirewallState& state, ServicePort port, bool local) {
  return std::any_of(state.services.begin(), state.services.end(), [&](const AllowedService& s) {
    if (s.localOnly && !local) return false;
    return std::find(s.ports.begin(), s.ports.end(), port) != s.ports.end();
  });
}

}  // namespace

std::string_view toString(Protocol p) { return p == Protocol::Tcp ? "tcp" : "udp"; }

std::string toString(const ServicePort& p) {
  return std::to_string(p.port) + "/" + std::string(toString(p.protocol));
}

Result<IpPrefix> parsePrefix(std::string_view text) {
  const auto slash = text.find('/');
  const std::string address(text.substr(0, slash));
  IpPrefix p;
  if (::inet_pton(AF_INET, address.c_str(), p.addr.data()) == 1) {
    p.family = 4;
  } else if (::inet_pton(AF_INET6, address.c_str(), p.addr.data()) == 1) {
    p.family = 6;
  } else {
    return makeError("'" + std::string(text) + "' is not an IPv4 or IPv6 address or prefix");
  }
  const unsigned maxLength = p.family == 4 ? 32 : 128;
  unsigned length = maxLength;
  if (slash != std::string_view::npos) {
    const std::string_view digits = text.substr(slash + 1);
    const auto* end = digits.data() + digits.size();
    const auto [ptr, ec] = std::from_chars(digits.data(), end, length);
    if (ec != std::errc{} || ptr != end || digits.empty() || length > maxLength) {
      return makeError("'" + std::string(text) + "' has an invalid prefix length (0.." +
                       std::to_string(maxLength) + ")");
    }
  }
  p.length = static_cast<std::uint8_t>(length);
  maskHostBits(p.addr, addrLen(p.family), length);
  return p;
}

std::string toString(const IpPrefix& p) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (::inet_ntop(p.family == 4 ? AF_INET : AF_INET6, p.addr.data(), buf, sizeof buf) == nullptr) {
    return "?";
  }
  return std::string(buf) + "/" + std::to_string(p.length);
}

bool contains(const IpPrefix& prefix, int family, const std::array<std::uint8_t, 16>& addr) {
  if (prefix.family != family) return false;
  std::array<std::uint8_t, 16> masked = addr;
  maskHostBits(masked, addrLen(family), prefix.length);
  return std::equal(masked.begin(), masked.begin() + static_cast<long>(addrLen(family)),
                    prefix.addr.begin());
}

std::vector<AddressRange> mergedRanges(const std::vector<IpPrefix>& prefixes, int family) {
  std::vector<AddressRange> ranges;
  for (const IpPrefix& p : prefixes) {
    if (p.family == family) ranges.push_back({p.addr, lastOf(p)});
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const AddressRange& a, const AddressRange& b) { return a.first < b.first; });
  std::vector<AddressRange> merged;
  for (const AddressRange& r : ranges) {
    if (!merged.empty()) {
      AddressRange& top = merged.back();
      std::array<std::uint8_t, 16> next = top.last;
      const bool topEndsAtMax = !increment(next, addrLen(family));
      if (topEndsAtMax || r.first <= next) {  // overlapping or adjacent
        if (!topEndsAtMax && top.last < r.last) top.last = r.last;
        continue;
      }
    }
    merged.push_back(r);
  }
  return merged;
}

const std::vector<NamedService>& namedServices() {
  static const std::vector<NamedService> services = {
      {"dhcpv6-client", "DHCPv6 client (replies from the router)", {udp(546)}},
      {"http", "web server", {tcp(80)}},
      {"https", "web server over TLS", {tcp(443)}},
      {"imap", "IMAP mail access", {tcp(143)}},
      {"imaps", "IMAP mail access over TLS", {tcp(993)}},
      {"mdns", "multicast DNS (Avahi, printers on the LAN)", {udp(5353)}},
      {"pop3s", "POP3 mail access over TLS", {tcp(995)}},
      {"smtp", "mail server (MX, port 25)", {tcp(25)}},
      {"smtps", "mail submission over TLS (port 465)", {tcp(465)}},
      {"ssh", "remote login (OpenSSH)", {tcp(22)}},
      {"submission", "mail submission (port 587)", {tcp(587)}},
  };
  return services;
}

Result<AllowedService> parseService(std::string_view spec, bool localOnly) {
  AllowedService service;
  service.localOnly = localOnly;
  for (const NamedService& named : namedServices()) {
    if (named.name == spec) {
      service.name = std::string(named.name);
      service.ports = named.ports;
      return service;
    }
  }
  const auto slash = spec.find('/');
  const auto port = parsePort(spec.substr(0, slash));
  Protocol protocol = Protocol::Tcp;
  if (slash != std::string_view::npos) {
    const std::string_view proto = spec.substr(slash + 1);
    if (proto == "udp") {
      protocol = Protocol::Udp;
    } else if (proto != "tcp") {
      return makeError("'" + std::string(spec) + "': the protocol must be tcp or udp");
    }
  }
  if (!port) {
    std::string names;
    for (const NamedService& named : namedServices()) {
      names += (names.empty() ? "" : ", ") + std::string(named.name);
    }
    return makeError("'" + std::string(spec) + "' is neither a service name (" + names +
                     ") nor PORT[/tcp|/udp] with PORT 1..65535");
  }
  service.ports = {ServicePort{protocol, *port}};
  service.name = toString(service.ports[0]);
  return service;
}

FirewallState withService(const FirewallState& state, AllowedService service) {
  FirewallState next = state;
  std::erase_if(next.services, [&](const AllowedService& s) { return s.name == service.name; });
  next.services.push_back(std::move(service));
  sortByName(next.services);
  return next;
}

Result<FirewallState> withoutService(const FirewallState& state, std::string_view name) {
  // "8080" names the same service as "8080/tcp".
  std::string canonical(name);
  if (auto parsed = parseService(name); parsed) canonical = parsed->name;
  FirewallState next = state;
  const auto removed =
      std::erase_if(next.services, [&](const AllowedService& s) { return s.name == canonical; });
  if (removed == 0) return makeError("service '" + std::string(name) + "' is not allowed");
  return next;
}

Result<FirewallState> withLocalSubnets(const FirewallState& state,
                                       const std::vector<std::string>& cidrs) {
  FirewallState next = state;
  next.localSubnets.clear();
  for (const std::string& cidr : cidrs) {
    auto p = parsePrefix(cidr);
    if (!p) return p.error();
    next.localSubnets.push_back(*p);
  }
  std::sort(next.localSubnets.begin(), next.localSubnets.end());
  next.localSubnets.erase(std::unique(next.localSubnets.begin(), next.localSubnets.end()),
                          next.localSubnets.end());
  return next;
}

bool allowsFromAnywhere(const FirewallState& state, ServicePort port) {
  return allows(state, port, false);
}
bool allowsFromLocal(const FirewallState& state, ServicePort port) {
  return allows(state, port, true);
}

EnableCheck checkEnable(const FirewallState& state, const CallerContext& caller) {
  EnableCheck check;
  if (!caller.remoteSession) return check;
  const ServicePort ssh = tcp(caller.sshPort);
  if (allowsFromAnywhere(state, ssh)) return check;
  check.needsConfirmation = true;
  if (allowsFromLocal(state, ssh)) {
    check.warning = "You seem to be logged in over SSH and SSH (port " +
                    std::to_string(caller.sshPort) +
                    ") is allowed only from the local subnets. If you are connected from "
                    "elsewhere, enabling the firewall will cut you off when this connection "
                    "ends.";
  } else {
    check.warning = "You seem to be logged in over SSH, but SSH (port " +
                    std::to_string(caller.sshPort) +
                    ") is not an allowed service. Enabling the firewall keeps this connection "
                    "but refuses new SSH logins; allow it first with "
                    "`guardctl firewall allow ssh`.";
  }
  return check;
}

}  // namespace mailguard::rules
