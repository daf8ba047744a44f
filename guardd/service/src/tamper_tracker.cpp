#include "tamper_tracker.hpp"

#include <algorithm>

namespace mailguard::service {

namespace {

// A process names itself (prctl PR_SET_NAME): keep its control characters out of logs.
std::string printable(const std::string& s) {
  std::string out;
  for (const char c : s) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

}  // namespace

std::string TamperReport::changesText() const {
  std::string out;
  for (const auto& [what, count] : changes) {
    if (!out.empty()) out += "; ";
    out += what;
    if (count > 1) out += " (x" + std::to_string(count) + ")";
  }
  if (lostEvents) {
    if (!out.empty()) out += "; ";
    out += "the table differed from guardd's after lost change notifications";
  }
  return out;
}

std::string TamperReport::actorsText() const {
  std::string out;
  for (const auto& a : actors) {
    if (!a.pid && a.comm.empty()) continue;
    if (!out.empty()) out += ", ";
    out += a.comm.empty() ? std::string("a process") : printable(a.comm);
    if (a.pid) out += " (pid " + std::to_string(*a.pid) + ")";
  }
  return out.empty() ? std::string("an unknown process") : out;
}

void TamperReport::merge(const TamperReport& other) {
  restores += other.restores;
  for (const auto& [what, count] : other.changes) {
    const auto it = std::find_if(changes.begin(), changes.end(),
                                 [&](const auto& c) { return c.first == what; });
    if (it != changes.end()) {
      it->second += count;
    } else if (changes.size() < TamperTracker::kMaxChanges) {
      changes.emplace_back(what, count);
    }
  }
  for (const auto& a : other.actors) {
    if (actors.size() < TamperTracker::kMaxActors &&
        std::find(actors.begin(), actors.end(), a) == actors.end()) {
      actors.push_back(a);
    }
  }
  lostEvents = lostEvents || other.lostEvents;
}

TamperTracker::TamperTracker(std::string table, std::uint32_t ownPortId,
                             std::chrono::milliseconds alertWindow)
    : table_(std::move(table)), ownPortId_(ownPortId), window_(alertWindow) {}

void TamperTracker::addChange(TamperReport& r, const std::string& what, std::uint64_t count) {
  TamperReport one;
  one.changes.emplace_back(what, count);
  r.merge(one);
}

void TamperTracker::observe(const netfilter::RulesetEvent& e) {
  if (e.portId == ownPortId_) return;  // guardd's own batch, or its restore
  if (e.kind == netfilter::RulesetEvent::Kind::Generation) {
    // Closes a transaction; it names the process only for transactions that touched us.
    const auto it = pendingPorts_.find(e.portId);
    if (it == pendingPorts_.end() || it->second) return;
    it->second = true;
    TamperActor actor{e.portId, e.pid, e.comm};
    auto& actors = pending_.actors;
    if (actors.size() < kMaxActors &&
        std::find(actors.begin(), actors.end(), actor) == actors.end()) {
      actors.push_back(std::move(actor));
    }
    return;
  }
  if (!e.touches(table_)) return;
  addChange(pending_, e.describe(), 1);
  pendingPorts_.try_emplace(e.portId, false);
}

bool TamperTracker::pendingComplete() const {
  return std::all_of(pendingPorts_.begin(), pendingPorts_.end(),
                     [](const auto& p) { return p.second; });
}

std::optional<TamperReport> TamperTracker::restored(Steady now, bool tableDiffered) {
  TamperReport report = std::move(pending_);
  pending_ = {};
  pendingPorts_.clear();
  const bool wasResync = resync_;
  resync_ = false;
  if (report.changes.empty() && !(wasResync && tableDiffered)) return std::nullopt;
  if (wasResync && tableDiffered) report.lostEvents = true;
  // A change the kernel reported, or a table found altered: both count as a restore.
  report.restores = 1;
  ++restores_;
  if (windowEnd_ && now < *windowEnd_) {
    if (heldBack_) {
      heldBack_->merge(report);
    } else {
      heldBack_ = std::move(report);
    }
    return std::nullopt;
  }
  if (heldBack_) {  // a window passed without due() being asked: report it with this one
    heldBack_->merge(report);
    report = std::move(*heldBack_);
    heldBack_.reset();
  }
  windowEnd_ = now + window_;
  return report;
}

std::optional<TamperReport> TamperTracker::due(Steady now) {
  if (!heldBack_ || !windowEnd_ || now < *windowEnd_) return std::nullopt;
  TamperReport report = std::move(*heldBack_);
  heldBack_.reset();
  windowEnd_ = now + window_;
  return report;
}

std::optional<TamperTracker::Steady> TamperTracker::nextDue() const {
  if (!heldBack_) return std::nullopt;
  return windowEnd_;
}

}  // namespace mailguard::service
