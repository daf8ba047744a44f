#pragma once
// The [detector] table of guardd.conf: overrides of the zombie detector's
// weights and thresholds (mailguard::detector::DetectorConfig), by name. rules/ checks
// names and ranges with file:line errors; guardd maps them onto the config
// (guardd/service/src/detector_config.cpp, which a unit test keeps in step with this list).
#include <span>
#include <string_view>

namespace mailguard::rules {

struct DetectorSettingSpec {
  std::string_view name;  // "hard_threshold"
  double min;
  double max;
  bool integer;  // counts and durations in whole seconds
};

// Every [detector] key guardd accepts.
std::span<const DetectorSettingSpec> detectorSettingSpecs();

}  // namespace mailguard::rules
