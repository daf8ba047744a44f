#pragma once
// Helpers shared by the stores that write mailguard.db directly (detector_store.cpp,
// host_store.cpp): time stamps, one-item-a-line lists and text columns.
#include <sqlite3.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mailguard/rules/clock.hpp"

namespace mailguard::store::detail {

// How long a statement waits for another connection's lock before failing.
inline constexpr int kBusyTimeoutMs = 5000;

inline std::int64_t toMicros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// Lists are stored one item a line: every caller stores items that hold no newline.
inline std::string joinLines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += '\n';
    out += i;
  }
  return out;
}

inline std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Column `col` of the current row as text; empty for NULL.
inline std::string columnText(sqlite3_stmt* stmt, int col) {
  const auto* p = sqlite3_column_text(stmt, col);
  if (p == nullptr) return {};
  return {reinterpret_cast<const char*>(p),
          static_cast<std::size_t>(sqlite3_column_bytes(stmt, col))};
}

}  // namespace mailguard::store::detail
