#include "program_registry.hpp"

#include <algorithm>
#include <iterator>
#include <utility>

namespace mailguard::service {

bool sameProgram(const rules::ProgramIdentity& a, const rules::ProgramIdentity& b) {
  return a.path == b.path && a.scriptPath == b.scriptPath && a.binaryItself == b.binaryItself &&
         a.kind() == b.kind();
}

std::vector<ProgramRow> foldVersions(std::vector<ProgramView> views) {
  // Newest first, so that the first version of each program met is its current one.
  std::sort(views.begin(), views.end(), [](const ProgramView& a, const ProgramView& b) {
    return std::tie(a.firstSeen, a.id) > std::tie(b.firstSeen, b.id);
  });
  using RowKey = std::tuple<std::string, std::string, bool, rules::IdentityKind>;
  std::map<RowKey, std::size_t> rowOf;
  std::vector<ProgramRow> rows;
  for (auto& view : views) {
    RowKey key{view.identity.path, view.identity.scriptPath, view.identity.binaryItself,
               view.identity.kind()};
    const auto [it, added] = rowOf.emplace(std::move(key), rows.size());
    if (added) rows.push_back(ProgramRow{view, {}});
    rows[it->second].versions.push_back(std::move(view));
  }
  std::sort(rows.begin(), rows.end(),
            [](const ProgramRow& a, const ProgramRow& b) { return a.current.id < b.current.id; });
  return rows;
}

ProgramRegistry::ProgramRegistry(std::size_t maxPrograms)
    : maxPrograms_(std::max<std::size_t>(maxPrograms, 1)) {}

ProgramRegistry::Key ProgramRegistry::keyOf(const rules::ProgramIdentity& identity) {
  return {identity.path, identity.sha256, identity.scriptPath, identity.scriptSha256,
          identity.binaryItself};
}

bool ProgramRegistry::pinned(const ProgramView& view) {
  return view.state != rules::ProgramState::Pending;
}

void ProgramRegistry::load(std::vector<ProgramView> stored) {
  // Oldest first, so that the age order starts as the order of the last attempts.
  std::sort(stored.begin(), stored.end(), [](const ProgramView& a, const ProgramView& b) {
    return std::tie(a.lastAttempt, a.id) < std::tie(b.lastAttempt, b.id);
  });
  for (auto& view : stored) {
    nextId_ = std::max(nextId_, view.id + 1);
    // One program per id and per identity; the store keeps both unique, so a duplicate is
    // dropped rather than trusted.
    if (byId_.contains(view.id) || idByKey_.contains(keyOf(view.identity))) continue;
    insertNewest(std::move(view));
  }
  evictBeyondBound(std::nullopt);
}

ProgramRegistry::Entry& ProgramRegistry::insertNewest(ProgramView view) {
  const auto id = view.id;
  idByKey_.emplace(keyOf(view.identity), id);
  age_.push_back(id);
  Entry entry{std::move(view), std::nullopt, std::nullopt, std::prev(age_.end())};
  return byId_.emplace(id, std::move(entry)).first->second;
}

void ProgramRegistry::evictBeyondBound(std::optional<std::int64_t> keep) {
  // Pinned programs sit in the age order too and are stepped over: their number is
  // bounded by the owner's rules, so the walk is short.
  for (auto it = age_.begin(); byId_.size() > maxPrograms_ && it != age_.end();) {
    const auto found = byId_.find(*it);
    if (*it == keep || pinned(found->second.view)) {
      ++it;
      continue;
    }
    idByKey_.erase(keyOf(found->second.view.identity));
    byId_.erase(found);
    it = age_.erase(it);
    ++evicted_;
  }
}

ProgramView& ProgramRegistry::remember(const rules::ProgramIdentity& identity,
                                       std::optional<std::uint32_t> uid, TimePoint now,
                                       MonoTime mono, bool* created) {
  Entry* entry = nullptr;
  if (const auto it = idByKey_.find(keyOf(identity)); it != idByKey_.end()) {
    entry = &byId_.at(it->second);
    age_.splice(age_.end(), age_, entry->byAge);
    if (created != nullptr) *created = false;
  } else {
    ProgramView view;
    view.id = nextId_++;
    view.identity = identity;
    view.firstSeen = now;
    entry = &insertNewest(std::move(view));
    if (created != nullptr) *created = true;
  }
  entry->view.identity = identity;  // the newest flags (trust, deleted)
  if (uid) entry->view.uid = *uid;
  entry->seen = mono;
  const auto id = entry->view.id;
  evictBeyondBound(id);
  return byId_.at(id).view;
}

ProgramView* ProgramRegistry::find(std::int64_t id) {
  const auto it = byId_.find(id);
  return it == byId_.end() ? nullptr : &it->second.view;
}

ProgramView* ProgramRegistry::find(const rules::ProgramIdentity& identity) {
  const auto it = idByKey_.find(keyOf(identity));
  return it == idByKey_.end() ? nullptr : find(it->second);
}

std::optional<MonoTime> ProgramRegistry::lastSeen(std::int64_t id) const {
  const auto it = byId_.find(id);
  return it == byId_.end() ? std::nullopt : it->second.seen;
}

ProgramView ProgramRegistry::currentVersion(const ProgramView& version) const {
  const ProgramView* newest = &version;
  for (const auto& [id, entry] : byId_) {
    const auto& v = entry.view;
    if (sameProgram(v.identity, version.identity) &&
        std::tie(v.firstSeen, v.id) > std::tie(newest->firstSeen, newest->id)) {
      newest = &v;
    }
  }
  return *newest;
}

std::vector<ProgramView> ProgramRegistry::list() const {
  std::vector<ProgramView> out;
  out.reserve(byId_.size());
  for (const auto& [id, entry] : byId_) out.push_back(entry.view);
  return out;
}

bool ProgramRegistry::sightingDue(std::int64_t id, MonoTime mono, bool changed,
                                  std::chrono::milliseconds every) {
  const auto it = byId_.find(id);
  if (it == byId_.end()) return false;
  auto& sighted = it->second.sighted;
  if (!changed && sighted && mono - *sighted < every) return false;
  sighted = mono;
  return true;
}

}  // namespace mailguard::service
