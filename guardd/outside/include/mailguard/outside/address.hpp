#pragma once
// Where the household's public IPv4 address comes from (issue 18): the router (UPnP IGD,
// then NAT-PMP), a "what is my IP" service over HTTPS, or one over DNS, tried in the order
// of [outside] address_sources until one gives a public address. Each source is a role
// interface so the order, fallback and judging of answers are tested with fakes; the real
// ones ask the network and block for up to the configured timeout.
#include <chrono>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/outside/dns.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::outside {

class AddressSource {
 public:
  virtual ~AddressSource() = default;
  // What the report names as the address's source: "router:upnp", "router:natpmp",
  // "https:URL", "dns:NAME". The part before ':' is the source's group: once one member
  // of a group gave a non-public address, the others are not asked (the same router).
  [[nodiscard]] virtual std::string name() const = 0;
  // The addresses the source reports, as reported (judged by the caller: first public
  // one wins); an error says why there is none, in words for the owner.
  virtual Result<std::vector<std::string>> ask() = 0;
};

enum class AddressKind { Public, Private, SharedCgnat, Special, NotIpv4 };
// Private: RFC 1918; SharedCgnat: RFC 6598 100.64.0.0/10; Special: loopback, link-local,
// "this network", multicast and reserved. The benchmarking range 198.18.0.0/15 counts as
// public here: the tests stand it in for a public address.
AddressKind classifyAddress(const std::string& text);

// An address a home LAN can have (private, link-local, shared, benchmarking): a UPnP
// device describing itself at a URL elsewhere is not the household's router.
bool isLanAddress(const std::string& text);

// The host part of "http://A.B.C.D:PORT/path" ("" when it is no such URL).
std::string urlHost(const std::string& url);

struct AddressFinding {
  std::string address;             // "" none
  std::string source;              // the name of the source that gave it
  std::vector<std::string> notes;  // "SOURCE: why it gave none" for each source asked before
  // A router said its own address is in 100.64.0.0/10: the public address is the
  // provider's, shared with other customers.
  bool shared = false;
};

// Asks the sources in order until one reports a public IPv4 address (pure apart from the
// sources). A router reporting a private or shared (carrier-grade NAT) address gets a note
// saying so; the next source is asked.
AddressFinding askSources(std::span<AddressSource* const> sources);

// The real sources.
struct AddressSourceConfig {
  std::vector<std::string> order{"router", "dns"};  // "router", "https", "dns"
  std::chrono::seconds timeout{3};
  std::string myipUrl;     // https: the URL whose body is the asker's address
  std::string myipCaFile;  // https: CA bundle to verify it with ("" = the system's)
  std::string myipName;    // dns: the name whose A record is the asker's address ("" = off)
  ResolverConfig myipResolver;
};
std::vector<std::unique_ptr<AddressSource>> makeAddressSources(const AddressSourceConfig& config);

// The IPv4 default gateway in /proc/net/route's text ("" when there is none): the first
// route to 0.0.0.0/0 through a gateway.
std::string defaultGatewayFrom(const std::string& routeTable);

// The LOCATION header of an SSDP answer ("HTTP/1.1 200 OK" and headers), "" when the text
// is no such answer or names none. Header names are case-insensitive (UPnP DA 1.1).
std::string ssdpLocation(std::string_view answer);

// UPnP IGD (libminiupnpc): SSDP discovery, the gateway's description, then its
// GetExternalIPAddress action. The search goes first to the default gateway (unicast,
// UPnP DA 1.1 1.3.2), whose answer comes from the address asked, so conntrack takes it as
// the reply it is and the host firewall lets it in; then to the multicast group, whose
// answers come from the routers, not from the address asked: new inbound packets, which
// the host firewall drops.
class UpnpAddressSource final : public AddressSource {
 public:
  explicit UpnpAddressSource(std::chrono::milliseconds discovery) : discovery_(discovery) {}
  [[nodiscard]] std::string name() const override { return "router:upnp"; }
  Result<std::vector<std::string>> ask() override;

 private:
  std::chrono::milliseconds discovery_;
};

// NAT-PMP (RFC 6886, libnatpmp): a public address request to the IPv4 default gateway.
class NatPmpAddressSource final : public AddressSource {
 public:
  explicit NatPmpAddressSource(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  [[nodiscard]] std::string name() const override { return "router:natpmp"; }
  Result<std::vector<std::string>> ask() override;

 private:
  std::chrono::milliseconds timeout_;
};

// HTTPS GET (libcurl) of a URL whose body is one IPv4 address; TLS verified, over IPv4
// only (the IPv4 address is the one wanted), no proxy (a proxy's address is not ours),
// redirects only to https, the body bounded.
class HttpsAddressSource final : public AddressSource {
 public:
  static constexpr std::size_t kMaxBody = 256;
  HttpsAddressSource(std::string url, std::string caFile, std::chrono::milliseconds timeout)
      : url_(std::move(url)), caFile_(std::move(caFile)), timeout_(timeout) {}
  [[nodiscard]] std::string name() const override { return "https:" + url_; }
  Result<std::vector<std::string>> ask() override;

 private:
  std::string url_;
  std::string caFile_;
  std::chrono::milliseconds timeout_;
};

// Judges an HTTPS body (pure): whitespace around it trimmed, then exactly one dotted quad;
// anything else is an error quoting (a printable, shortened form of) the body.
Result<std::string> addressFromBody(const std::string& body);

// DNS: the A records of a name that a resolver answers with the asker's address
// (myip.opendns.com at resolver1.opendns.com).
class DnsAddressSource final : public AddressSource {
 public:
  DnsAddressSource(std::string name, std::unique_ptr<Resolver> resolver)
      : name_(std::move(name)), resolver_(std::move(resolver)) {}
  [[nodiscard]] std::string name() const override { return "dns:" + name_; }
  Result<std::vector<std::string>> ask() override;

 private:
  std::string name_;
  std::unique_ptr<Resolver> resolver_;
};

}  // namespace mailguard::outside
