#pragma once
// One run of the outside checks: the public address, each blocklist, each domain. Pure
// apart from the Resolver it is given; the JSON form is what the store keeps, what the
// D-Bus method returns and what `guardctl outside --json` prints.
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/outside/dnsbl.hpp"
#include "mailguard/outside/mail_auth.hpp"
#include "mailguard/rules/clock.hpp"

namespace mailguard::outside {

struct OutsideConfig {
  std::string publicAddress = "auto";  // "auto" or "A.B.C.D"
  std::vector<std::string> blocklists;
  std::vector<std::string> domains;
  std::string myipName;  // with auto: the name whose A record is the asker's address
};

struct PublicAddress {
  std::string address;  // "" unknown
  std::string source;   // "settings" or "dns:NAME"
  std::string error;    // why unknown
};

struct OutsideReport {
  TimePoint time{};  // zero: never run
  PublicAddress address;
  std::vector<BlocklistResult> blocklists;
  std::vector<DomainReport> domains;
};

// `myip` asks the "what is my IP" server (null: none configured).
PublicAddress findPublicAddress(const OutsideConfig& config, Resolver* myip);

OutsideReport runChecks(const OutsideConfig& config, Resolver& resolver, Resolver* myip,
                        TimePoint now);

// Listings the previous report had for the same address keep their first sighting;
// new ones are first seen now. Returns the zones listed now and not before.
std::vector<std::string> carryOver(const OutsideReport& previous, OutsideReport& current);

// What guardd's own records say about why the address may be listed.
struct LocalEvidence {
  std::vector<std::string> quarantined;  // "PATH, quarantined 2026-12-01T10:00:00Z"
  std::vector<std::string> openRelays;   // "0.0.0.0:25 (/usr/sbin/exim4)"
};
std::string likelyCause(const LocalEvidence& evidence);

// When the next scheduled run is due: `interval` after the last run; never run: `interval`
// after start-up (a fresh install does not query the lists the moment it starts).
TimePoint nextRunDue(TimePoint lastRun, TimePoint started, std::chrono::hours interval);

std::string toJson(const OutsideReport& report);
Result<OutsideReport> fromJson(const std::string& text);

}  // namespace mailguard::outside
