#pragma once
// One run of the outside checks: the public address, each blocklist, each domain. Pure
// apart from the Resolver it is given; the JSON form is what the store keeps, what the
// D-Bus method returns and what `guardctl outside --json` prints.
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailguard/outside/address.hpp"
#include "mailguard/outside/dnsbl.hpp"
#include "mailguard/outside/mail_auth.hpp"
#include "mailguard/rules/clock.hpp"

namespace mailguard::outside {

struct OutsideConfig {
  std::string publicAddress = "auto";  // "auto" or "A.B.C.D"
  std::vector<std::string> blocklists;
  std::vector<std::string> domains;
};

struct PublicAddress {
  std::string address;  // "" unknown
  std::string source;   // "settings", or the AddressSource's name ("router:upnp", ...)
  std::string error;    // why unknown: every source's reason
  // Each source asked before the one that gave the address, and why it gave none
  // ("router:upnp: the router's own address 100.64.3.4 is not public: ...").
  std::vector<std::string> notes;
  // The router's own address is the provider's carrier-grade NAT: the public address is
  // shared with other customers.
  bool shared = false;
};

struct OutsideReport {
  TimePoint time{};  // zero: never run
  PublicAddress address;
  std::vector<BlocklistResult> blocklists;
  std::vector<DomainReport> domains;
};

// With public_address "auto", asks the sources in order (none: nothing configured).
PublicAddress findPublicAddress(const OutsideConfig& config,
                                std::span<AddressSource* const> sources);

OutsideReport runChecks(const OutsideConfig& config, Resolver& resolver,
                        std::span<AddressSource* const> sources, TimePoint now);

// Listings the previous report had for the same address keep their first sighting;
// new ones are first seen now. Returns the zones listed now and not before.
std::vector<std::string> carryOver(const OutsideReport& previous, OutsideReport& current);

// What guardd's own records say about why the address may be listed.
struct LocalEvidence {
  std::vector<std::string> quarantined;  // "PATH, quarantined 2026-12-01T10:00:00Z"
  std::vector<std::string> openRelays;   // "0.0.0.0:25 (/usr/sbin/exim4)"
};
// `sharedAddress`: the address is shared with the provider's other customers (carrier-grade
// NAT), who are then a likely cause too.
std::string likelyCause(const LocalEvidence& evidence, bool sharedAddress = false);

// When the next scheduled run is due: `interval` after the last run; never run: `interval`
// after start-up (a fresh install does not query the lists the moment it starts).
TimePoint nextRunDue(TimePoint lastRun, TimePoint started, std::chrono::hours interval);

std::string toJson(const OutsideReport& report);
Result<OutsideReport> fromJson(const std::string& text);

}  // namespace mailguard::outside
