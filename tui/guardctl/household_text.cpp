#include "household_text.hpp"

#include "output.hpp"

namespace mailguard::guardctl {
namespace {

nlohmann::json parsed(const dbus::HouseholdStatus& s) {
  auto j = nlohmann::json::parse(s.json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) j = nlohmann::json::object();
  return j;
}

}  // namespace

nlohmann::json householdJson(const dbus::HouseholdStatus& s) {
  const auto r = parsed(s);
  return {{"finished", timeJson(s.finishedUs)},
          {"running", s.running},
          {"error", s.error},
          {"subnets", r.value("subnets", nlohmann::json::array())},
          {"connects", r.value("connects", 0)},
          {"took_ms", r.value("took_ms", 0)},
          {"hosts", r.value("hosts", nlohmann::json::array())}};
}

std::string householdText(const dbus::HouseholdStatus& s) {
  if (s.finishedUs == 0) {
    return "No scan of the other mail servers on your network yet "
           "(run one with: sudo guardctl audit --hosts).\n";
  }
  const auto r = parsed(s);
  std::string out =
      "Other mail servers on your network (scan of " + timeJson(s.finishedUs).get<std::string>();
  std::string scanned;
  for (const auto& sub : r.value("subnets", nlohmann::json::array())) {
    scanned += (scanned.empty() ? "" : ", ") + sub.value("cidr", std::string());
    if (!sub.value("configured", std::string()).empty()) {
      scanned += " (of " + sub.value("configured", std::string()) + ")";
    }
  }
  if (!scanned.empty()) out += ", " + scanned;
  out += "):\n";
  if (!s.error.empty()) out += "  The scan failed: " + s.error + "\n";
  const auto hosts = r.value("hosts", nlohmann::json::array());
  if (hosts.empty() && s.error.empty()) out += "  No other computer answers on a mail port.\n";
  for (const auto& h : hosts) {
    const std::string relay = h.value("relay", std::string());
    out += "  " + h.value("address", std::string()) + ":" + std::to_string(h.value("port", 0)) +
           "  " +
           (relay == "open"     ? "OPEN RELAY for anyone on your LAN"
            : relay == "closed" ? "not a relay"
                                : "not audited") +
           "\n";
    if (!h.value("banner", std::string()).empty()) {
      out += "    says: " + h.value("banner", std::string()) + "\n";
    }
    if (relay != "open" && relay != "closed")
      out += "    " + h.value("reason", std::string()) + "\n";
    for (const auto& f : h.value("findings", nlohmann::json::array())) {
      out += "    [" + f.value("severity", std::string()) + "] " + f.value("title", std::string()) +
             "\n      Fix: " + f.value("fix", std::string()) + "\n";
    }
  }
  return out;
}

}  // namespace mailguard::guardctl
