#pragma once
// The household's other mail servers: on the owner's request only, the hosts of this PC's
// own IPv4 subnets that answer on a mail port, found with a bounded, paced TCP connect
// scan (a SYN, then a close: no SMTP is spoken here; the relay audit talks to each host
// found). Bounded three ways, so that a request can never turn into a sweep of someone
// else's network:
//  - only directly connected IPv4 subnets of this PC (never a route's destination, never
//    loopback, the audit's own veth or a /31-/32), at most `maxSubnets` (default
//    kMaxHouseholdSubnets; [household] max_subnets);
//  - a subnet larger than `minPrefix` (/22: 1022 hosts) is scanned only in the /minPrefix
//    block around the PC's own address, and says so;
//  - at most `perSecond` connects a second and `inFlight` open at once (defaults: 100 and
//    32; a home router's connection table holds thousands).
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "mailguard/audit/findings.hpp"
#include "mailguard/audit/relay.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::audit {

inline constexpr int kHouseholdPrefix = 22;
inline constexpr std::size_t kMaxHouseholdSubnets = 4;

struct HouseholdSubnet {
  std::string cidr;         // what is scanned: "192.168.1.0/24"
  std::string configured;   // the interface's own subnet when it was larger, else ""
  std::string hostAddress;  // this PC's address in it
  std::uint32_t first = 0;  // host order: the first and last address scanned
  std::uint32_t last = 0;
};

// The subnets to scan, from this PC's interface addresses (getifaddrs), in interface order.
// `minPrefix` is clamped to 16..30, `maxSubnets` to at least 1.
std::vector<HouseholdSubnet> householdSubnets(const std::vector<InterfaceAddress>& addresses,
                                              int minPrefix = kHouseholdPrefix,
                                              std::size_t maxSubnets = kMaxHouseholdSubnets);

// Every address of the subnet but its network and broadcast addresses and the PC's own.
std::vector<std::string> householdHosts(const HouseholdSubnet& subnet);

struct ScanOptions {
  std::vector<std::uint16_t> ports{25, 465, 587};
  unsigned perSecond = 100;
  unsigned inFlight = 32;
  std::chrono::milliseconds timeout{1500};  // per connect: a host that is not there
  // SO_MARK for the scan's sockets (0: none), as AuditOptions::socketMark.
  std::uint32_t socketMark = 0;
  // Set (by guardd stopping): no new connect starts, the scan ends with what it found.
  const std::atomic<bool>* stop = nullptr;
};

struct MailHost {
  std::string address;
  std::vector<std::uint16_t> ports;  // those that accepted a connection, ascending
};

struct ScanStats {
  std::size_t connects = 0;     // connects started
  std::size_t maxInFlight = 0;  // the most open at once
  std::chrono::milliseconds took{0};
};

// Connects to each port of each address (IPv4, dotted) at the pace of `options`; the hosts
// where a connect succeeded, in the order of `addresses`. Blocking (seconds: 1022 hosts
// times three ports at 100 a second is half a minute): run it off the loop.
Result<std::vector<MailHost>> scanMailHosts(const std::vector<std::string>& addresses,
                                            const ScanOptions& options, ScanStats* stats = nullptr);

// The relay dialogue against one mail port of a household host, from guardd's own
// namespace: the host is reached as any computer on the LAN reaches it, so what it
// accepts is what it accepts from anyone on the LAN (the stranger's probe namespace has
// no route to other hosts). Port 465 speaks TLS from the first byte and the audit never
// does, so it is listed but not probed.
struct HouseholdHostAudit {
  std::string subnet;  // the cidr it was found in
  std::string address;
  std::uint16_t port = 0;
  RelayVerdict relay = RelayVerdict::Unreachable;
  std::vector<std::string> accepted;     // relay variants the host accepted
  std::vector<std::string> authInClear;  // AUTH offered without TLS
  std::string reason;                    // how it was reached, or why not
  DialogueResult dialogue;
};

// Blocking (seconds per host): the dialogue with retries as for this PC's listeners.
HouseholdHostAudit auditHouseholdHost(const std::string& subnet, const std::string& address,
                                      std::uint16_t port, const AuditOptions& options);

// The same findings and fixes as for this PC's own listeners ("open-relay-lan",
// "auth-without-tls"), the mail server guessed from the banner.
std::vector<Finding> householdFindings(const HouseholdHostAudit& host);

// This namespace's IPv4/IPv6 interface addresses (getifaddrs(3)).
std::vector<InterfaceAddress> ownInterfaceAddresses();

struct HouseholdScan {
  std::vector<HouseholdSubnet> subnets;
  std::vector<HouseholdHostAudit> hosts;  // one per mail port found, in scan order
  ScanStats stats;
};

// The whole request: this namespace's subnets (getifaddrs), the connect scan, and the
// dialogue with each port found.
Result<HouseholdScan> scanHousehold(const ScanOptions& scan, const AuditOptions& audit,
                                    int minPrefix = kHouseholdPrefix,
                                    std::size_t maxSubnets = kMaxHouseholdSubnets);

}  // namespace mailguard::audit
