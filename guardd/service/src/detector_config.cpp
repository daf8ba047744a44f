#include "detector_config.hpp"

#include <chrono>
#include <cmath>
#include <functional>

namespace mailguard::service {
namespace {

using Setter = std::function<void(detector::DetectorConfig&, double)>;

template <class T>
Setter set(T detector::DetectorConfig::*field) {
  return [field](detector::DetectorConfig& c, double v) {
    if constexpr (std::is_same_v<T, detector::Duration>) {
      c.*field = std::chrono::duration_cast<detector::Duration>(
          std::chrono::seconds(static_cast<std::int64_t>(std::llround(v))));
    } else if constexpr (std::is_same_v<T, double>) {
      c.*field = v;
    } else {
      c.*field = static_cast<T>(std::llround(v));
    }
  };
}

const std::map<std::string, Setter>& setters() {
  using C = detector::DetectorConfig;
  static const std::map<std::string, Setter> kSetters = {
      {"direct_to_mx", set(&C::directToMx)},
      {"new_destination", set(&C::newDestination)},
      {"learned_destination", set(&C::learnedDestination)},
      {"new_relay_known_host", set(&C::newRelayKnownHost)},
      {"many_sessions", set(&C::manySessions)},
      {"connect_failure", set(&C::connectFailure)},
      {"connect_failure_learned", set(&C::connectFailureLearned)},
      {"interactive", set(&C::interactive)},
      {"min_score", set(&C::minScore)},
      {"max_score", set(&C::maxScore)},
      {"sessions_for_burst", set(&C::sessionsForBurst)},
      {"burst_attempts", set(&C::burstAttempts)},
      {"burst_window_seconds", set(&C::burstWindow)},
      {"retry_window_seconds", set(&C::retryWindow)},
      {"soft_threshold", set(&C::softThreshold)},
      {"hard_threshold", set(&C::hardThreshold)},
      {"leak_per_day", set(&C::leakPerDay)},
      {"packaged_shift", set(&C::packagedShift)},
      {"suspicious_shift", set(&C::suspiciousShift)},
      {"h3_connections", set(&C::h3Connections)},
      {"h3_destinations", set(&C::h3Destinations)},
      {"h3_window_seconds", set(&C::h3Window)},
      {"backstop_soft_destinations", set(&C::backstopSoftDestinations)},
      {"backstop_hard_destinations", set(&C::backstopHardDestinations)},
      {"backstop_hard_attempts", set(&C::backstopHardAttempts)},
      {"working_set_size", set(&C::workingSetSize)},
      {"learn_days", set(&C::learnDays)},
      {"throttle_interval_seconds", set(&C::throttleInterval)},
      {"attributed_failure", set(&C::attributedFailure)},
      {"attributed_success", set(&C::attributedSuccess)},
      {"blocked_after", set(&C::blockedAfter)},
      {"mta_user_unknown", set(&C::mtaUserUnknown)},
      {"mta_delivered", set(&C::mtaDelivered)},
      {"mta_rejected", set(&C::mtaRejected)},
      {"mta_blocklisted", set(&C::mtaBlocklisted)},
      {"h1_blocklisted", set(&C::h1Blocklisted)},
      {"h1_window_seconds", set(&C::h1Window)},
      {"mta_backstop_soft_recipients", set(&C::mtaBackstopSoftRecipients)},
      {"mta_backstop_hard_recipients", set(&C::mtaBackstopHardRecipients)},
      {"mta_backstop_hard_domains", set(&C::mtaBackstopHardDomains)},
      {"mx_lookup", set(&C::mxLookup)},
      {"no_dns_answer", set(&C::noDnsAnswer)},
      {"mail_host_lookup", set(&C::mailHostLookup)},
      {"user_input", set(&C::userInput)},
      {"input_window_seconds", set(&C::inputWindow)},
      {"user_away", set(&C::userAway)},
      {"away_after_seconds", set(&C::awayAfter)},
      {"mta_new_domain", set(&C::mtaNewDomain)},
      {"mta_known_domains", set(&C::mtaKnownDomains)},
      {"mta_list_recipients", set(&C::mtaListRecipients)},
  };
  return kSetters;
}

}  // namespace

detector::DetectorConfig detectorConfig(const std::map<std::string, double>& overrides,
                                        std::vector<std::string>* unknown) {
  detector::DetectorConfig config;
  for (const auto& [name, value] : overrides) {
    const auto it = setters().find(name);
    if (it == setters().end()) {
      if (unknown != nullptr) unknown->push_back(name);
      continue;
    }
    it->second(config, value);
  }
  return config;
}

std::vector<std::string> detectorConfigNames() {
  std::vector<std::string> names;
  for (const auto& [name, setter] : setters()) names.push_back(name);
  return names;
}

}  // namespace mailguard::service
