// The router's address over UPnP IGD, with Debian's libminiupnpc.
#include <arpa/inet.h>
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "mailguard/common/fd.hpp"
#include "mailguard/common/text.hpp"
#include "mailguard/outside/address.hpp"

namespace mailguard::outside {
namespace {

struct DevlistFree {
  void operator()(UPNPDev* p) const noexcept { freeUPNPDevlist(p); }
};
using DevlistPtr = std::unique_ptr<UPNPDev, DevlistFree>;

// UPNPUrls is filled in place by the library and freed member by member.
struct Urls {
  UPNPUrls urls{};
  Urls() = default;
  Urls(const Urls&) = delete;
  Urls& operator=(const Urls&) = delete;
  ~Urls() { FreeUPNPUrls(&urls); }
};

constexpr std::string_view kIgdType = "urn:schemas-upnp-org:device:InternetGatewayDevice:1";

bool iequals(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

// One M-SEARCH to the gateway's port 1900 from a socket connected to it (only its answer
// is read), waiting at most `wait` for the answer; the answer's LOCATION, or why none.
Result<std::string> unicastSearch(const std::string& gateway, std::chrono::milliseconds wait) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(1900);
  if (::inet_pton(AF_INET, gateway.c_str(), &to.sin_addr) != 1) {
    return makeError("the default gateway " + gateway + " is no IPv4 address");
  }
  const Fd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return makeError("no UDP socket for UPnP: " + std::string(std::strerror(errno)));
  const std::string search = "M-SEARCH * HTTP/1.1\r\nHOST: " + gateway +
                             ":1900\r\nMAN: \"ssdp:discover\"\r\nST: " + std::string(kIgdType) +
                             "\r\n\r\n";
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  const auto* addr = reinterpret_cast<const sockaddr*>(&to);
  if (::connect(sock.get(), addr, sizeof to) != 0 ||
      ::send(sock.get(), search.data(), search.size(), MSG_NOSIGNAL) < 0) {
    return makeError("the UPnP search could not be sent to " + gateway + ": " +
                     std::strerror(errno));
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  std::array<char, 2048> buf{};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{sock.get(), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(sock.get(), buf.data(), buf.size(), MSG_DONTWAIT);
    if (n < 0) {
      // ICMP port unreachable: nothing listens on the gateway's port 1900.
      if (errno == ECONNREFUSED) break;
      continue;
    }
    std::string location = ssdpLocation(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    if (!location.empty()) return location;
  }
  return makeError("the gateway " + gateway + " did not answer a UPnP search within " +
                   std::to_string(wait.count()) + " ms");
}

// The router's address from the device described at `desc`, or why not.
Result<std::string> askDevice(const std::string& desc) {
  // Any device on the LAN may answer the multicast search and name any URL: fetch only
  // descriptions (and later call only controls) on LAN addresses, never elsewhere.
  if (!isLanAddress(urlHost(desc))) {
    return makeError("a UPnP device described itself at \"" + desc + "\", not at a LAN address");
  }
  Urls u;
  IGDdatas data{};
  std::array<char, 64> lan{};
  if (UPNP_GetIGDFromUrl(desc.c_str(), &u.urls, &data, lan.data(), lan.size()) != 1) {
    return makeError("the router's description at " + desc + " could not be read");
  }
  const std::string control = u.urls.controlURL != nullptr ? u.urls.controlURL : "";
  if (data.first.servicetype[0] == '\0' || control.empty()) {
    return makeError("the UPnP device at " + desc +
                     " is no Internet gateway (no WAN connection service)");
  }
  if (!isLanAddress(urlHost(control))) {
    return makeError("the router's control URL \"" + control + "\" is not at a LAN address");
  }
  std::array<char, 40> external{};
  const int r = UPNP_GetExternalIPAddress(control.c_str(), data.first.servicetype, external.data());
  if (r != UPNPCOMMAND_SUCCESS) {
    const char* text = strupnperror(r);
    return makeError("the router at " + desc + " refused GetExternalIPAddress (" +
                     (text != nullptr ? std::string(text) : "error " + std::to_string(r)) + ")");
  }
  const std::string address = external.data();
  if (address.empty() || address == "0.0.0.0") {
    // miniupnpd (2.2 and later) says nothing rather than pass on a private, shared or
    // reserved address of its WAN interface.
    return makeError(
        "the router reports no public address of its own: it is behind another router or "
        "behind your provider's carrier-grade NAT, or not connected");
  }
  return address;
}

}  // namespace

std::string defaultGatewayFrom(const std::string& routeTable) {
  std::istringstream in(routeTable);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string iface;
    std::string dest;
    std::string gateway;
    std::string flags;
    std::string refcnt;
    std::string use;
    std::string metric;
    std::string mask;
    if (!(fields >> iface >> dest >> gateway >> flags >> refcnt >> use >> metric >> mask)) continue;
    constexpr unsigned long kRtfUp = 0x1;
    constexpr unsigned long kRtfGateway = 0x2;
    try {
      const unsigned long f = std::stoul(flags, nullptr, 16);
      if (dest != "00000000" || mask != "00000000" || (f & kRtfUp) == 0 || (f & kRtfGateway) == 0 ||
          gateway.size() != 8) {
        continue;
      }
      // The kernel prints the address as a host-order number of network-order bytes.
      in_addr a{};
      a.s_addr = static_cast<in_addr_t>(std::stoul(gateway, nullptr, 16));
      std::array<char, INET_ADDRSTRLEN> text{};
      if (::inet_ntop(AF_INET, &a, text.data(), text.size()) != nullptr) return text.data();
    } catch (const std::exception&) {
      continue;  // not hex: not a line of the kernel's
    }
  }
  return "";
}

std::string ssdpLocation(std::string_view answer) {
  std::size_t eol = answer.find('\n');
  const std::string_view status = trimBlanks(answer.substr(0, eol));
  // "HTTP/1.1 200 OK"; a NOTIFY or another device's M-SEARCH is no answer.
  if (status.size() < 12 || !iequals(status.substr(0, 5), "HTTP/") ||
      status.substr(status.find(' ') + 1, 3) != "200") {
    return "";
  }
  while (eol != std::string_view::npos) {
    answer.remove_prefix(eol + 1);
    eol = answer.find('\n');
    const std::string_view line = answer.substr(0, eol);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos && iequals(trimBlanks(line.substr(0, colon)), "LOCATION")) {
      return std::string(trimBlanks(line.substr(colon + 1)));
    }
  }
  return "";
}

Result<std::vector<std::string>> UpnpAddressSource::ask() {
  // The default gateway first, by unicast: the one answer the host firewall lets in.
  // A gateway that answers is the router: its verdict stands.
  std::ifstream routes("/proc/net/route");
  const std::string gateway =
      defaultGatewayFrom(std::string(std::istreambuf_iterator<char>(routes), {}));
  if (!gateway.empty() && isLanAddress(gateway)) {
    const auto location =
        unicastSearch(gateway, std::min(discovery_, std::chrono::milliseconds(1000)));
    if (location) {
      auto address = askDevice(*location);
      if (!address) return makeError(address.error().message);
      return std::vector<std::string>{*address};
    }
  }
  int error = 0;
  // SSDP M-SEARCH to 239.255.255.250:1900 from any port, IPv4, TTL 2 (the library's
  // advice); no minissdpd socket path: the library's default (/var/run/minissdpd.sock),
  // which is root's, is asked first when a minissdpd runs. Only for the IGD:1 device
  // type, which IGD:2 routers answer too (UPnP DA 1.1 1.3.2): upnpDiscover() would wait
  // the whole delay once for each of four types when no router answers.
  DevlistPtr devices(upnpDiscoverDevice(std::string(kIgdType).c_str(),
                                        static_cast<int>(discovery_.count()), nullptr, nullptr,
                                        UPNP_LOCAL_PORT_ANY, 0, 2, &error));
  if (!devices) {
    if (error != UPNPDISCOVER_SUCCESS) {
      return makeError("UPnP discovery failed (miniupnpc error " + std::to_string(error) + ")");
    }
    return makeError("no UPnP router answered on the LAN within " +
                     std::to_string(discovery_.count()) + " ms");
  }
  std::string why;
  for (UPNPDev* d = devices.get(); d != nullptr; d = d->pNext) {
    auto address = askDevice(d->descURL != nullptr ? d->descURL : "");
    if (address) return std::vector<std::string>{*address};
    why = address.error().message;
  }
  return makeError(why);
}

}  // namespace mailguard::outside
