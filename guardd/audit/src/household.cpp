#include "mailguard/audit/household.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "mailguard/common/fd.hpp"

namespace mailguard::audit {
namespace {

using Steady = std::chrono::steady_clock;

std::uint32_t hostOrder(const std::array<std::uint8_t, 16>& a) {
  return (std::uint32_t{a[0]} << 24) | (std::uint32_t{a[1]} << 16) | (std::uint32_t{a[2]} << 8) |
         std::uint32_t{a[3]};
}

std::string dotted(std::uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

std::uint32_t maskOf(int prefix) { return prefix == 0 ? 0 : ~std::uint32_t{0} << (32 - prefix); }

}  // namespace

std::vector<HouseholdSubnet> householdSubnets(const std::vector<InterfaceAddress>& addresses,
                                              int minPrefix, std::size_t maxSubnets) {
  minPrefix = std::clamp(minPrefix, 16, 30);
  maxSubnets = std::max<std::size_t>(maxSubnets, 1);
  std::vector<HouseholdSubnet> out;
  std::set<std::string> seen;
  for (const auto& ia : addresses) {
    if (ia.family != AF_INET || ia.loopback) continue;
    const std::uint32_t own = hostOrder(ia.address);
    if ((own >> 24) == 127) continue;
    // The relay audit's own probe veth ("mgph..."): not the household's network.
    if (ia.interface.rfind("mgph", 0) == 0) continue;
    // /31 and /32: nothing else lives there.
    if (ia.prefixLength < 1 || ia.prefixLength > 30) continue;
    HouseholdSubnet s;
    const int prefix = std::max(ia.prefixLength, minPrefix);
    const std::uint32_t network = own & maskOf(prefix);
    s.cidr = dotted(network) + "/" + std::to_string(prefix);
    if (prefix != ia.prefixLength) {
      s.configured = dotted(own & maskOf(ia.prefixLength)) + "/" + std::to_string(ia.prefixLength);
    }
    s.hostAddress = dotted(own);
    const std::uint32_t broadcast = network | ~maskOf(prefix);
    // Within a capped block the block's first and last address may be hosts of the
    // larger subnet, but only its own network and broadcast addresses are never scanned.
    const std::uint32_t realNetwork = own & maskOf(ia.prefixLength);
    const std::uint32_t realBroadcast = realNetwork | ~maskOf(ia.prefixLength);
    s.first = network == realNetwork ? network + 1 : network;
    s.last = broadcast == realBroadcast ? broadcast - 1 : broadcast;
    if (!seen.insert(s.cidr).second) continue;
    out.push_back(std::move(s));
    if (out.size() == maxSubnets) break;
  }
  return out;
}

std::vector<std::string> householdHosts(const HouseholdSubnet& subnet) {
  std::vector<std::string> out;
  in_addr own{};
  const bool hasOwn = ::inet_pton(AF_INET, subnet.hostAddress.c_str(), &own) == 1;
  const std::uint32_t ownAddress = hasOwn ? ntohl(own.s_addr) : 0;
  for (std::uint64_t a = subnet.first; a <= subnet.last; ++a) {
    const auto address = static_cast<std::uint32_t>(a);
    if (hasOwn && address == ownAddress) continue;
    out.push_back(dotted(address));
  }
  return out;
}

Result<std::vector<MailHost>> scanMailHosts(const std::vector<std::string>& addresses,
                                            const ScanOptions& options, ScanStats* stats) {
  if (options.perSecond == 0 || options.inFlight == 0) {
    return invalidArgument("the scan needs a rate and room for one connection");
  }
  struct Probe {
    std::size_t host;
    std::uint16_t port;
  };
  std::vector<Probe> probes;
  std::vector<in_addr> parsed(addresses.size());
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    if (::inet_pton(AF_INET, addresses[i].c_str(), &parsed[i]) != 1) {
      return invalidArgument("'" + addresses[i] + "' is not an IPv4 address");
    }
    for (const auto port : options.ports) probes.push_back({i, port});
  }
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return systemError("epoll_create1", errno);

  struct Open {
    Fd socket;
    Probe probe;
    Steady::time_point deadline;
  };
  std::map<int, Open> open;
  std::vector<std::set<std::uint16_t>> found(addresses.size());
  const auto start = Steady::now();
  // Connect i starts no earlier than start + i / perSecond: the pace holds even when the
  // connects before it ended at once (refused by a host that is there).
  const auto interval =
      std::chrono::duration_cast<Steady::duration>(std::chrono::seconds(1)) / options.perSecond;
  std::size_t next = 0;
  ScanStats local;
  const auto stopped = [&] { return options.stop != nullptr && options.stop->load(); };
  while (next < probes.size() || !open.empty()) {
    if (stopped()) next = probes.size();
    auto now = Steady::now();
    while (next < probes.size() && open.size() < options.inFlight &&
           now >= start + interval * static_cast<long>(next)) {
      const auto& p = probes[next++];
      Fd s(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      if (!s) return systemError("socket", errno);
      if (options.socketMark != 0 && ::setsockopt(s.get(), SOL_SOCKET, SO_MARK, &options.socketMark,
                                                  sizeof options.socketMark) != 0) {
        return systemError("setsockopt SO_MARK", errno);
      }
      sockaddr_in to{};
      to.sin_family = AF_INET;
      to.sin_port = htons(p.port);
      to.sin_addr = parsed[p.host];
      ++local.connects;
      if (::connect(s.get(), reinterpret_cast<const sockaddr*>(&to), sizeof to) == 0) {
        found[p.host].insert(p.port);
        continue;
      }
      if (errno != EINPROGRESS) continue;  // refused at once, no route: nothing there
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.fd = s.get();
      if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, s.get(), &ev) != 0) {
        return systemError("epoll_ctl", errno);
      }
      const int fd = s.get();
      open.emplace(fd, Open{std::move(s), p, now + options.timeout});
      local.maxInFlight = std::max(local.maxInFlight, open.size());
    }
    // Wait for the first of: a connect finishing, a deadline, the next connect's turn.
    auto until = Steady::time_point::max();
    for (const auto& [fd, o] : open) until = std::min(until, o.deadline);
    if (next < probes.size() && open.size() < options.inFlight) {
      until = std::min(until, start + interval * static_cast<long>(next));
    }
    now = Steady::now();
    int waitMs = 0;
    if (until > now) {
      waitMs = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
    }
    epoll_event events[64];
    const int n = ::epoll_wait(epoll.get(), events, 64, waitMs);
    if (n < 0 && errno != EINTR) return systemError("epoll_wait", errno);
    for (int i = 0; i < n; ++i) {
      auto it = open.find(events[i].data.fd);
      if (it == open.end()) continue;
      int error = 0;
      socklen_t len = sizeof error;
      if (::getsockopt(it->first, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0) {
        found[it->second.probe.host].insert(it->second.probe.port);
      }
      open.erase(it);  // closes it: a connection, never a word of SMTP
    }
    now = Steady::now();
    std::erase_if(open, [now](const auto& entry) { return entry.second.deadline <= now; });
  }
  local.took = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
  if (stats != nullptr) *stats = local;
  std::vector<MailHost> out;
  for (std::size_t i = 0; i < addresses.size(); ++i) {
    if (found[i].empty()) continue;
    out.push_back(MailHost{addresses[i], {found[i].begin(), found[i].end()}});
  }
  return out;
}

std::vector<Finding> householdFindings(const HouseholdHostAudit& host) {
  // Seen as one of this PC's listeners that strangers cannot reach but the LAN can: the
  // findings are then the LAN relay and AUTH ones, never "exposed" (this PC's firewall
  // cannot block another computer's port).
  ListenerAudit a;
  a.listener.family = AF_INET;
  in_addr parsed{};
  if (::inet_pton(AF_INET, host.address.c_str(), &parsed) == 1) {
    std::memcpy(a.listener.address.data(), &parsed, 4);
  }
  a.listener.port = host.port;
  a.listener.exposure = Exposure::Loopback;
  // The banner names the server more often than not ("220 host ESMTP Exim 4.96",
  // "220 host ESMTP Postfix (Debian/GNU)"): the fix then names its settings.
  const std::string& banner = host.dialogue.banner;
  if (banner.find("Postfix") != std::string::npos) a.listener.comm = "smtpd";
  if (banner.find("Exim") != std::string::npos) a.listener.comm = "exim4";
  a.relay = RelayVerdict::Unreachable;
  LanVantage v;
  v.subnet = host.subnet;
  v.target = host.address;
  v.relay = host.relay;
  v.accepted = host.accepted;
  a.lan.push_back(std::move(v));
  a.authInClear = host.authInClear;
  auto findings = findingsFor(a, rules::FirewallState{});
  const std::string program = "a program on ";
  for (Finding& f : findings) {
    if (f.title.rfind(program, 0) == 0) {
      f.title = "the mail server at " + f.title.substr(program.size());
    }
    f.offerBlock = false;
    f.blockCommand.clear();
  }
  return findings;
}

Result<HouseholdScan> scanHousehold(const ScanOptions& scan, const AuditOptions& audit,
                                    int minPrefix, std::size_t maxSubnets) {
  HouseholdScan out;
  out.subnets = householdSubnets(ownInterfaceAddresses(), minPrefix, maxSubnets);
  std::vector<std::string> addresses;
  std::vector<std::size_t> subnetOf;
  for (std::size_t i = 0; i < out.subnets.size(); ++i) {
    for (auto& a : householdHosts(out.subnets[i])) {
      addresses.push_back(std::move(a));
      subnetOf.push_back(i);
    }
  }
  auto found = scanMailHosts(addresses, scan, &out.stats);
  if (!found) return found.error();
  std::size_t index = 0;
  for (const MailHost& host : *found) {
    while (index < addresses.size() && addresses[index] != host.address) ++index;
    const std::string cidr = index < addresses.size() ? out.subnets[subnetOf[index]].cidr : "";
    for (const auto port : host.ports) {
      if (scan.stop != nullptr && scan.stop->load()) return out;
      out.hosts.push_back(auditHouseholdHost(cidr, host.address, port, audit));
    }
  }
  return out;
}

}  // namespace mailguard::audit
