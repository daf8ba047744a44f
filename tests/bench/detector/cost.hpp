#pragma once
// detector_eval --cost: CPU per 10^5 events and memory per 10^3 principals (research 3.3).
#include <cstdint>

#include "mailguard/detector/detector.hpp"

namespace mailguard::bench {

int reportCost(std::uint64_t seed, const detector::DetectorConfig& config);

}  // namespace mailguard::bench
