// The router's address over UPnP IGD, with Debian's libminiupnpc.
#include <miniupnpc/miniupnpc.h>
#include <miniupnpc/upnpcommands.h>
#include <miniupnpc/upnperrors.h>

#include <memory>

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

}  // namespace

Result<std::vector<std::string>> UpnpAddressSource::ask() {
  int error = 0;
  // SSDP M-SEARCH to 239.255.255.250:1900 from any port, IPv4, TTL 2 (the library's
  // advice); no minissdpd socket path: the library's default (/var/run/minissdpd.sock),
  // which is root's, is asked first when a minissdpd runs. Only for the IGD:1 device
  // type, which IGD:2 routers answer too (UPnP DA 1.1 1.3.2): upnpDiscover() would wait
  // the whole delay once for each of four types when no router answers.
  DevlistPtr devices(upnpDiscoverDevice("urn:schemas-upnp-org:device:InternetGatewayDevice:1",
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
    const std::string desc = d->descURL != nullptr ? d->descURL : "";
    // Any device on the LAN may answer the multicast search and name any URL: fetch only
    // descriptions (and later call only controls) on LAN addresses, never elsewhere.
    if (!isLanAddress(urlHost(desc))) {
      why = "a UPnP device described itself at \"" + desc + "\", not at a LAN address";
      continue;
    }
    Urls u;
    IGDdatas data{};
    char lan[64] = {};
    if (UPNP_GetIGDFromUrl(desc.c_str(), &u.urls, &data, lan, sizeof lan) != 1) {
      why = "the router's description at " + desc + " could not be read";
      continue;
    }
    const std::string control = u.urls.controlURL != nullptr ? u.urls.controlURL : "";
    if (data.first.servicetype[0] == '\0' || control.empty()) {
      why = "the UPnP device at " + desc + " is no Internet gateway (no WAN connection service)";
      continue;
    }
    if (!isLanAddress(urlHost(control))) {
      why = "the router's control URL \"" + control + "\" is not at a LAN address";
      continue;
    }
    char external[40] = {};
    const int r = UPNP_GetExternalIPAddress(control.c_str(), data.first.servicetype, external);
    if (r != UPNPCOMMAND_SUCCESS) {
      const char* text = strupnperror(r);
      why = "the router at " + desc + " refused GetExternalIPAddress (" +
            (text != nullptr ? std::string(text) : "error " + std::to_string(r)) + ")";
      continue;
    }
    const std::string address = external;
    if (address.empty() || address == "0.0.0.0") {
      // miniupnpd (2.2 and later) says nothing rather than pass on a private, shared or
      // reserved address of its WAN interface.
      why =
          "the router reports no public address of its own: it is behind another router or "
          "behind your provider's carrier-grade NAT, or not connected";
      continue;
    }
    return std::vector<std::string>{address};
  }
  return makeError(why);
}

}  // namespace mailguard::outside
