#pragma once
// Audit results in plain language: what is wrong and how to fix it, for the alert
// and the dashboard.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/audit/relay.hpp"

namespace mailguard::audit {

enum class Mta { Postfix, Exim, Other };
Mta mtaOf(std::string_view path, std::string_view comm);

struct Finding {
  enum class Severity { Info, Warning, Critical };
  Severity severity = Severity::Info;
  // "open-relay-stranger", "open-relay-lan", "auth-without-tls", "exposed",
  // "blocked-by-firewall".
  std::string kind;
  std::string title;  // one line
  std::string fix;    // what to change, with the file and the setting
  // A public listener: offer to block its port in the host firewall.
  bool offerBlock = false;
  std::uint16_t port = 0;
  std::string blockCommand;  // e.g. "guardctl firewall enable"
};
std::string_view toString(Finding::Severity s);  // "info", "warning", "critical"

std::vector<Finding> findingsFor(const ListenerAudit& audit, const rules::FirewallState& firewall);

}  // namespace mailguard::audit
