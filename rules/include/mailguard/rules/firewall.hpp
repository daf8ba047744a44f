#pragma once
// The host firewall as plain data (DESIGN.md "Kernel ruleset", chain `host_in`): which
// inbound services the owner allowed, optionally only from the local subnets, and the
// pure state changes (enable, disable, allow, remove) with the checks that protect a
// remote owner from locking themselves out. buildRuleset() turns it into rules.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::rules {

enum class Protocol { Tcp, Udp };
std::string_view toString(Protocol p);  // "tcp", "udp"

struct ServicePort {
  Protocol protocol = Protocol::Tcp;
  std::uint16_t port = 0;
  friend bool operator==(const ServicePort&, const ServicePort&) = default;
  friend auto operator<=>(const ServicePort&, const ServicePort&) = default;
};
std::string toString(const ServicePort& p);  // "22/tcp"

// An address prefix: 192.168.1.0/24, fd00::/8. Host bits are cleared on parsing.
struct IpPrefix {
  int family = 0;                       // 4 or 6 (not AF_*: rules/ makes no system calls)
  std::array<std::uint8_t, 16> addr{};  // IPv4 uses the first 4 bytes
  std::uint8_t length = 0;
  friend bool operator==(const IpPrefix&, const IpPrefix&) = default;
  friend auto operator<=>(const IpPrefix&, const IpPrefix&) = default;
};
// "10.0.0.0/8", "fe80::/10", a bare address means /32 or /128.
Result<IpPrefix> parsePrefix(std::string_view text);
std::string toString(const IpPrefix& p);
// True when `addr` (4 or 16 bytes of `family`) lies inside `prefix`.
bool contains(const IpPrefix& prefix, int family, const std::array<std::uint8_t, 16>& addr);

// A closed range of addresses [first, last], what an nf_tables interval set holds.
struct AddressRange {
  std::array<std::uint8_t, 16> first{};
  std::array<std::uint8_t, 16> last{};
  friend bool operator==(const AddressRange&, const AddressRange&) = default;
};
// The prefixes of one family as sorted ranges with overlapping and adjacent ones
// merged: the kernel refuses overlapping intervals in one set.
std::vector<AddressRange> mergedRanges(const std::vector<IpPrefix>& prefixes, int family);

// One allowed service: a named one ("ssh") or a bare port ("8080/tcp").
struct AllowedService {
  std::string name;  // "ssh", "8080/tcp": what the owner typed, canonical form
  std::vector<ServicePort> ports;
  bool localOnly = false;  // only from FirewallState::localSubnets
  friend bool operator==(const AllowedService&, const AllowedService&) = default;
};

struct NamedService {
  std::string_view name;
  std::string_view description;
  std::vector<ServicePort> ports;
};
// The services the owner can name (ssh, mdns, dhcpv6-client, smtp, submission, ...).
const std::vector<NamedService>& namedServices();

// "ssh", "imaps", "8080/tcp", "5353/udp", "8080" (tcp). Unknown names and port 0 are
// errors that say what is accepted.
Result<AllowedService> parseService(std::string_view spec, bool localOnly = false);

struct FirewallState {
  bool enabled = false;
  std::vector<AllowedService> services;  // sorted by name, unique names
  std::vector<IpPrefix> localSubnets;    // what "local subnet only" means
  bool allowPing = true;                 // echo-request, rate-limited
  std::uint32_t pingRatePerSecond = 10;
  // Inbound NEW TCP to a mail port that nothing allowed is logged to this NFLOG group
  // (`log group N`), rate-limited in the kernel so a scan cannot flood the reader.
  std::uint16_t probeLogGroup = 4025;
  std::uint32_t probeLogRatePerSecond = 10;
  std::uint32_t probeLogBurst = 20;
  friend bool operator==(const FirewallState&, const FirewallState&) = default;
};

// The prefix of the log lines of probes (nft `log prefix`), for the NFLOG reader.
inline constexpr const char* kProbeLogPrefix = "mailguard-probe ";

// Pure state changes; the old state is untouched on error, so a caller that fails to
// apply the new table simply keeps the old state.
// Adds or replaces (same name) a service.
FirewallState withService(const FirewallState& state, AllowedService service);
// Removes by name ("ssh", "8080/tcp"); NotFound-style error when absent.
Result<FirewallState> withoutService(const FirewallState& state, std::string_view name);
Result<FirewallState> withLocalSubnets(const FirewallState& state,
                                       const std::vector<std::string>& cidrs);

// Would an inbound connection to this port be accepted from a source that is not in
// the local subnets (any source = true) / from the local subnets?
bool allowsFromAnywhere(const FirewallState& state, ServicePort port);
bool allowsFromLocal(const FirewallState& state, ServicePort port);

// What the caller of "enable" looks like; guardd fills it from the caller's process
// (SSH_CONNECTION in its environment, an sshd ancestor).
struct CallerContext {
  bool remoteSession = false;
  std::uint16_t sshPort = 22;
};
struct EnableCheck {
  bool needsConfirmation = false;
  std::string warning;  // plain language, empty when none
};
// Enabling without SSH allowed from a remote (SSH) session would cut the session off
// at the next reconnect: ask for confirmation, as `ufw enable` does.
EnableCheck checkEnable(const FirewallState& state, const CallerContext& caller);

}  // namespace mailguard::rules
