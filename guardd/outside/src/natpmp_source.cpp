// The router's address over NAT-PMP (RFC 6886), with Debian's libnatpmp.
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
// strnatpmperr() is declared only on request.
#define ENABLE_STRNATPMPERR
#include <natpmp.h>

#include <algorithm>
#include <chrono>

#include "mailguard/outside/address.hpp"

namespace mailguard::outside {
namespace {

class Session {
 public:
  Session() = default;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  ~Session() {
    if (open_) closenatpmp(&n_);
  }
  // forcegw 0: the library reads the IPv4 default gateway from /proc/net/route, where
  // RFC 6886 says the NAT-PMP server is.
  int open() {
    const int r = initnatpmp(&n_, 0, 0);
    open_ = r == 0;
    // The library's socket has no close-on-exec; guardd runs `ip` from other threads.
    if (open_) ::fcntl(n_.s, F_SETFD, FD_CLOEXEC);
    return r;
  }
  natpmp_t* get() { return &n_; }
  [[nodiscard]] std::string gateway() const {
    in_addr a{};
    a.s_addr = n_.gateway;
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &a, text, sizeof text);
    return text;
  }

 private:
  natpmp_t n_{};
  bool open_ = false;
};

std::string natpmpError(int r, const std::string& gateway) {
  switch (r) {
    case NATPMP_ERR_CANNOTGETGATEWAY:
      return "no IPv4 default gateway to ask";
    case NATPMP_ERR_NOGATEWAYSUPPORT:
      return "the gateway " + gateway + " does not speak NAT-PMP (port 5351 refused)";
    case NATPMP_ERR_NETWORKFAILURE:
      // RFC 6886 3.2: result code 3, "the NAT box itself has not obtained a DHCP lease";
      // miniupnpd also answers so when its WAN address is private, shared or reserved.
      return "the router " + gateway +
             " reports no public address of its own (NAT-PMP network failure): it is behind "
             "another router or behind your provider's carrier-grade NAT, or not connected";
    case NATPMP_ERR_NOTAUTHORIZED:
      return "the router " + gateway + " refused (NAT-PMP not authorized)";
    default:
      return "NAT-PMP to " + (gateway.empty() ? "the default gateway" : gateway) + " failed (" +
             strnatpmperr(r) + ")";
  }
}

}  // namespace

Result<std::vector<std::string>> NatPmpAddressSource::ask() {
  Session s;
  if (const int r = s.open(); r != 0) return makeError(natpmpError(r, ""));
  if (const int r = sendpublicaddressrequest(s.get()); r < 0) {
    return makeError(natpmpError(r, s.gateway()));
  }
  // The library resends with doubling waits (250 ms, 500 ms, ...); we stop at our timeout.
  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  natpmpresp_t response{};
  int r = NATPMP_TRYAGAIN;
  while (r == NATPMP_TRYAGAIN) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    timeval tv{};
    if (getnatpmprequesttimeout(s.get(), &tv) < 0) break;
    const long wait = std::min<long>(left.count(), tv.tv_sec * 1000 + tv.tv_usec / 1000);
    pollfd p{s.get()->s, POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::max<long>(wait, 0)));
    r = readnatpmpresponseorretry(s.get(), &response);
  }
  if (r == NATPMP_TRYAGAIN) {
    return makeError("the gateway " + s.gateway() + " did not answer NAT-PMP within " +
                     std::to_string(timeout_.count()) + " ms");
  }
  if (r != 0) return makeError(natpmpError(r, s.gateway()));
  if (response.type != NATPMP_RESPTYPE_PUBLICADDRESS) {
    return makeError("the gateway " + s.gateway() + " answered something else");
  }
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &response.pnu.publicaddress.addr, text, sizeof text);
  if (std::string(text) == "0.0.0.0")
    return makeError(natpmpError(NATPMP_ERR_NETWORKFAILURE, s.gateway()));
  return std::vector<std::string>{text};
}

}  // namespace mailguard::outside
