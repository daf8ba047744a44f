#pragma once
// guardd.conf's [detector] overrides (rules::Settings::detector, names checked by
// rules/) applied to the detector's defaults. Pure; unit-tested.
#include <map>
#include <string>
#include <vector>

#include "mailguard/detector/detector.hpp"

namespace mailguard::service {

// The config with the overrides applied; names it does not know go to `unknown` (none
// when rules::detectorSettingSpecs() and this mapping are in step).
detector::DetectorConfig detectorConfig(const std::map<std::string, double>& overrides,
                                        std::vector<std::string>* unknown = nullptr);

// Every name detectorConfig() applies (each must be settable in guardd.conf too).
std::vector<std::string> detectorConfigNames();

}  // namespace mailguard::service
