#pragma once
// The host firewall, inbound probes and mail-server audit calls of org.mailguard.Guard1,
// for guardctl and guard-tui. Plain C++ types only, like Client; a
// connection of its own to the system bus (DBUS_SYSTEM_BUS_ADDRESS selects another).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mailguard/dbus/client.hpp"

namespace mailguard::dbus {

struct FirewallService {
  std::string name;  // "ssh", "8080/tcp"
  bool localOnly = false;
  std::vector<std::string> ports;  // "22/tcp"
};

struct FirewallStatus {
  bool enabled = false;
  std::vector<FirewallService> services;
  std::vector<std::string> localSubnets;
  bool allowPing = true;
  bool probeReader = false;  // inbound probes are being recorded
  std::string probeError;
  std::uint64_t probeEvents = 0;
  std::uint64_t probesDropped = 0;
};

struct EnableResult {
  bool enabled = false;
  bool needsConfirmation = false;  // nothing changed: confirm to go ahead
  std::string warning;
};

// Times are microseconds since the Unix epoch (UTC).
struct Probe {
  std::string source;
  std::uint16_t port = 0;
  std::uint64_t count = 0;
  std::int64_t firstUs = 0;
  std::int64_t lastUs = 0;
};

struct AuditFinding {
  std::string severity;  // "info", "warning", "critical"
  std::string title;
  std::string fix;
  bool offerBlock = false;
  std::uint16_t port = 0;
  std::string blockCommand;
};

// What a host on one directly connected LAN subnet met when the audit probed from there.
struct LanRelay {
  std::string subnet;        // "198.18.4.0/24"
  std::string probeAddress;  // the address the audit borrowed in it
  std::string target;        // the server's address it connected to
  std::string relay;         // "open", "closed" or "unreachable"
  std::vector<std::string> accepted;
  std::string reason;
  std::vector<std::string> transcript;  // that dialogue, "> " sent and "< " received
};

struct AuditResult {
  int family = 4;
  std::string address;
  std::uint16_t port = 0;
  std::string exposure;  // "loopback" or "external"
  std::int32_t pid = 0;  // 0 when unknown
  std::uint32_t uid = 0;
  std::string path;
  std::string comm;
  std::string relay;  // "open", "closed" or "unreachable"
  std::vector<std::string> accepted;
  std::string reason;
  bool blockedByFirewall = false;
  std::string probedAddress;
  std::string ownDomain;
  std::vector<std::string> transcript;  // the stranger's dialogue
  std::vector<AuditFinding> findings;
  // One per LAN subnet probed, and the AUTH mechanisms the server offered on a
  // plain-text connection.
  std::vector<LanRelay> lan;
  std::vector<std::string> authInClear;
};

struct AuditReport {
  std::int64_t finishedUs = 0;  // 0: no audit yet
  bool running = false;
  std::string error;  // the last audit failed
  std::vector<AuditResult> results;
};

// Bounces delivered here and whether they make a backscatter flood (Backscatter()).
struct BackscatterStatus {
  bool watching = false;  // a local MTA's log is followed
  bool flooding = false;
  std::uint32_t lastHour = 0;
  std::uint32_t unmatchedLastHour = 0;  // matching no mail sent from here
  std::uint32_t total = 0;              // since the flood began
  std::uint32_t unmatchedTotal = 0;
  std::int64_t sinceUs = 0;  // the flood's start, 0 without one
  std::int64_t lastUs = 0;   // the newest DSN, 0 when none
  std::vector<std::string> recipients;
  std::uint32_t floodPerHour = 0;
  std::int64_t alertId = 0;
};

// The last scan of the household's other mail servers (ScanHousehold(), Household()).
struct HouseholdStatus {
  bool running = false;
  std::int64_t finishedUs = 0;  // 0: never scanned
  std::string error;
  std::string json = "{}";  // the results, as the D-Bus XML describes them
};

class HostClient {
 public:
  static ClientResult<std::unique_ptr<HostClient>> connect();
  ~HostClient();
  HostClient(const HostClient&) = delete;
  HostClient& operator=(const HostClient&) = delete;

  ClientResult<FirewallStatus> firewallStatus();
  // Changing calls may ask for authentication (polkit): they wait up to 2 minutes.
  ClientResult<EnableResult> firewallEnable(bool confirmed);
  ClientResult<FirewallStatus> firewallDisable();
  ClientResult<FirewallStatus> firewallAllow(const std::string& spec, bool localOnly);
  ClientResult<FirewallStatus> firewallRemove(const std::string& name);
  ClientResult<FirewallStatus> firewallSetLocalSubnets(const std::vector<std::string>& cidrs);
  ClientResult<std::vector<Probe>> probes(std::uint32_t limit = 0);
  ClientResult<AuditReport> audit();
  // Runs the inventory and relay audit now; waits for it (up to 5 minutes).
  ClientResult<AuditReport> runAudit();
  ClientResult<BackscatterStatus> backscatter();
  ClientResult<HouseholdStatus> household();
  // Scans the household's subnets now and audits each mail server found; waits for it
  // (up to 5 minutes). A policy change: polkit may ask.
  ClientResult<HouseholdStatus> scanHousehold();
  // The outside check (blocklists, SPF/DMARC) as the JSON object the XML describes.
  ClientResult<std::string> outside();
  // Runs it now (may ask for authentication); waits for it (up to 5 minutes).
  ClientResult<std::string> runOutside();

 private:
  struct Impl;
  explicit HostClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mailguard::dbus
