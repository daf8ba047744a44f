#include "mailguard/rules/detector_settings.hpp"

#include <array>

namespace mailguard::rules {
namespace {

constexpr double kDay = 86'400;

// Ranges are sanity bounds (a typo should not disable the detector), not advice; the
// defaults and their provenance are in guardd/detector/include/.../detector.hpp.
constexpr std::array<DetectorSettingSpec, 50> kSpecs{{
    {"direct_to_mx", -10, 10, false},
    {"new_destination", -10, 10, false},
    {"learned_destination", -10, 10, false},
    {"new_relay_known_host", -10, 10, false},
    {"many_sessions", -10, 10, false},
    {"connect_failure", -10, 10, false},
    {"connect_failure_learned", 0, 1, false},
    {"interactive", -10, 10, false},
    {"min_score", -20, 0, false},
    {"max_score", 0, 20, false},
    {"sessions_for_burst", 1, 10'000, true},
    {"burst_attempts", 1, 100'000, true},
    {"burst_window_seconds", 1, kDay, true},
    {"retry_window_seconds", 0, kDay, true},
    {"soft_threshold", 0.1, 1'000, false},
    {"hard_threshold", 0.1, 1'000, false},
    {"leak_per_day", 0, 1'000, false},
    {"packaged_shift", -50, 50, false},
    {"suspicious_shift", -50, 50, false},
    {"h3_connections", 1, 1'000'000, true},
    {"h3_destinations", 1, 1'000'000, true},
    {"h3_window_seconds", 1, kDay, true},
    {"backstop_soft_destinations", 1, 1'000'000, true},
    {"backstop_hard_destinations", 1, 1'000'000, true},
    {"backstop_hard_attempts", 1, 1'000'000, true},
    {"working_set_size", 1, 10'000, true},
    {"learn_days", 1, 365, true},
    {"throttle_interval_seconds", 0, kDay, true},
    {"attributed_failure", -10, 10, false},
    {"attributed_success", -10, 10, false},
    {"blocked_after", 1, 10'000, true},
    {"mta_user_unknown", -10, 10, false},
    {"mta_delivered", -10, 10, false},
    {"mta_rejected", -10, 10, false},
    {"mta_blocklisted", -10, 10, false},
    {"h1_blocklisted", 1, 1'000'000, true},
    {"h1_window_seconds", 1, kDay, true},
    {"mta_backstop_soft_recipients", 1, 10'000'000, true},
    {"mta_backstop_hard_recipients", 1, 10'000'000, true},
    {"mta_backstop_hard_domains", 1, 10'000'000, true},
    {"mx_lookup", -10, 10, false},
    {"no_dns_answer", -10, 10, false},
    {"mail_host_lookup", -10, 10, false},
    {"user_input", -10, 10, false},
    {"input_window_seconds", 0, kDay, true},
    {"user_away", -10, 10, false},
    {"away_after_seconds", 1, kDay, true},
    {"mta_new_domain", -10, 10, false},
    {"mta_known_domains", -10, 10, false},
    {"mta_list_recipients", 0, 10'000'000, true},
}};

}  // namespace

std::span<const DetectorSettingSpec> detectorSettingSpecs() { return kSpecs; }

}  // namespace mailguard::rules
