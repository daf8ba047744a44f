#pragma once
// The household's other mail servers as guardctl prints them (guardctl audit --hosts):
// text for people, and the stable --json shape.
#include <nlohmann/json.hpp>
#include <string>

#include "mailguard/dbus/host_client.hpp"

namespace mailguard::guardctl {

// {"finished", "running", "error", "subnets", "connects", "took_ms", "hosts": [{"address",
// "port", "subnet", "relay", "accepted", "auth_in_clear", "reason", "banner", "findings"}]}
nlohmann::json householdJson(const dbus::HouseholdStatus& s);
std::string householdText(const dbus::HouseholdStatus& s);

}  // namespace mailguard::guardctl
