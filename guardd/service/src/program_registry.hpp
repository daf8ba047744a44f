#pragma once
// The programs guardd has seen, their ids and when each was last seen, bounded. Private
// to guardd/service.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/service/guard.hpp"

namespace mailguard::service {

// A bot that rewrites itself on every attempt is a new program each time (a new hash):
// without a bound it would add one entry per attempt, and the programs list with it.
// Beyond maxPrograms the program seen least recently is forgotten, except programs the
// owner decided about or the detector quarantined (state Approved, Denied or
// Quarantined): those stay listed, as the owner must be able to see and undo them. Only
// Pending programs are evicted. If every program is pinned the registry grows beyond its
// bound, by as many programs as the owner has rules for (plus quarantines), which the
// owner controls and an attacker cannot inflate.
//
// An evicted program keeps its row in the store. If it comes back it is a new program
// here with a new id (ids are never reused within a run: the next id is above every id
// loaded or given out); the store's upsert matches by identity and keeps the old row.
//
// Not a BoundedMap: eviction has to skip pinned programs, whose pinning changes with the
// rules (forEach lets the caller update states).
//
// References and pointers returned stay valid until the program is evicted, which only
// load() and a remember() that creates a program do (never the program it returns).
// The versions of one program. A program is its path, script path and kind (an
// interpreter itself apart from the inline code it runs); each new content (hash) of it
// is a new version with its own id, not a new program: the listing shows one row per
// program whose current version is the newest one seen first (by firstSeen, then id).
struct ProgramRow {
  ProgramView current;
  std::vector<ProgramView> versions;  // every version, current first, then newest to oldest
};
// Rows ordered by the current version's id.
std::vector<ProgramRow> foldVersions(std::vector<ProgramView> views);
// Whether two identities are versions of the same program (same row).
bool sameProgram(const rules::ProgramIdentity& a, const rules::ProgramIdentity& b);

class ProgramRegistry {
 public:
  static constexpr std::size_t kDefaultMaxPrograms = 4096;

  explicit ProgramRegistry(std::size_t maxPrograms = kDefaultMaxPrograms);

  // Programs read from the store at start (call once, before remember). Keeps the newest
  // by lastAttempt when more than fit (pinned ones always, so set each view's state from
  // the rules first); the next new id is above every id seen, kept or not.
  void load(std::vector<ProgramView> stored);

  // The program of this identity (same path, sha256, scriptPath, scriptSha256,
  // binaryItself), created
  // with the next id when new (firstSeen = now). Keeps the newest identity flags
  // (pathTrusted, deleted) and the uid when given (nullopt: keep the uid last seen, 0 for
  // a new program). Marks it seen at `mono`, which makes it the newest. `created` tells
  // whether it is new.
  ProgramView& remember(const rules::ProgramIdentity& identity, std::optional<std::uint32_t> uid,
                        TimePoint now, MonoTime mono, bool* created = nullptr);

  // Look-ups do not count as a sighting.
  ProgramView* find(std::int64_t id);
  ProgramView* find(const rules::ProgramIdentity& identity);
  // When remember() last saw it; nullopt for a program only loaded, or unknown.
  [[nodiscard]] std::optional<MonoTime> lastSeen(std::int64_t id) const;

  // The current version of the program `version` is a version of: the newest content
  // (by firstSeen, then id), as foldVersions picks a row's; `version` itself when newest.
  [[nodiscard]] ProgramView currentVersion(const ProgramView& version) const;

  // Every program, by id (for the programs list: bounded by maxPrograms).
  [[nodiscard]] std::vector<ProgramView> list() const;
  // f(ProgramView&), by id. f may change a view (its state, say) but not call remember().
  template <class F>
  void forEach(F f) {
    for (auto& [id, entry] : byId_) f(entry.view);
  }

  // A program's row is written when it changed, else at most once per `every`: true when
  // it is due now (and then counts as written at `mono`). False for an unknown id.
  bool sightingDue(std::int64_t id, MonoTime mono, bool changed,
                   std::chrono::milliseconds every = std::chrono::seconds(1));

  [[nodiscard]] std::size_t size() const { return byId_.size(); }
  [[nodiscard]] std::size_t maxPrograms() const { return maxPrograms_; }
  // Programs forgotten for room so far (at load and since).
  [[nodiscard]] std::uint64_t evicted() const { return evicted_; }

 private:
  // path, sha256, scriptPath, scriptSha256, binaryItself: an interpreter itself and the
  // inline code it runs are two programs.
  using Key = std::tuple<std::string, std::string, std::string, std::string, bool>;
  struct Entry {
    ProgramView view;
    std::optional<MonoTime> seen;
    std::optional<MonoTime> sighted;          // when its row was last due
    std::list<std::int64_t>::iterator byAge;  // its place in age_
  };

  static Key keyOf(const rules::ProgramIdentity& identity);
  static bool pinned(const ProgramView& view);
  Entry& insertNewest(ProgramView view);
  // Evicts the least recently seen unpinned programs, never `keep`, while over the bound.
  void evictBeyondBound(std::optional<std::int64_t> keep);

  std::size_t maxPrograms_;
  std::uint64_t evicted_ = 0;
  std::int64_t nextId_ = 1;
  std::map<std::int64_t, Entry> byId_;
  std::map<Key, std::int64_t> idByKey_;
  std::list<std::int64_t> age_;  // ids, least recently seen first
};

}  // namespace mailguard::service
