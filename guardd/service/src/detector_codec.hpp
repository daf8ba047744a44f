#pragma once
// The detector's persisted state and alert evidence as JSON text, for the store
// (which keeps them opaque). Pure, unit-tested (tests/unit/service/detector_codec_test.cpp).
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/detector/detector.hpp"

namespace mailguard::service {

std::string encodeSnapshot(const detector::PrincipalSnapshot& s);
// nullopt when the text is not a snapshot this version wrote (logged by the caller).
// Version 1 snapshots (principal without the executable's path) are read with the path
// of the file that connected last (their `program`); nullopt when that names no file.
std::optional<detector::PrincipalSnapshot> decodeSnapshot(std::string_view text);

// "guardctl bulk": persisted next to the snapshots, declared again at start-up.
struct BulkDeclaration {
  detector::Principal principal;
  unsigned recipients = 0;
  TimePoint until{};
  friend bool operator==(const BulkDeclaration&, const BulkDeclaration&) = default;
};
std::string encodeBulk(const BulkDeclaration& b);
// A version 1 declaration has an empty principal.exePath: it stood for the program at
// every path, and is to be declared again for each.
std::optional<BulkDeclaration> decodeBulk(std::string_view text);

// The evidence object of a stored alert: principal, channel, score, threshold, reasons
// with weights and counts, 24-hour counts, sample destinations, the parent chain.
std::string alertEvidence(const detector::Alert& a, const std::vector<std::string>& parents);
// "direct-to-mx 6.00 nats x4", heaviest first: the alert's `reasons` list.
std::vector<std::string> alertReasons(const detector::Alert& a);

}  // namespace mailguard::service
