#pragma once
// The alert row as read by SqliteStore and kept by StoreWriter: one column list.
#include <string>

#include "mailguard/store/store.hpp"
#include "sqlite.hpp"

namespace mailguard::store::detail {

inline constexpr const char* kAlertColumns =
    "id, time, program_id, principal, path, script_path, uid, tier, summary, reasons, evidence, "
    "acknowledged";

// Reasons are one per line: guardd generates them and they hold no newline.
inline AlertRecord alertFrom(const sql::Statement& s) {
  AlertRecord a;
  a.id = s.integer(0);
  a.time = sql::fromMicros(s.integer(1));
  if (!s.isNull(2)) a.programId = s.integer(2);
  a.principal = s.text(3);
  a.path = s.text(4);
  a.scriptPath = s.text(5);
  a.uid = static_cast<std::uint32_t>(s.integer(6));
  a.tier = s.text(7);
  a.summary = s.text(8);
  a.reasons = sql::splitLines(s.text(9));
  a.evidence = s.text(10);
  a.acknowledged = s.integer(11) != 0;
  return a;
}

}  // namespace mailguard::store::detail
