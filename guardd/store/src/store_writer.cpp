#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <thread>
#include <utility>
#include <variant>

#include "mailguard/rules/code_loading.hpp"
#include "mailguard/rules/secrets.hpp"
#include "mailguard/store/store.hpp"
#include "rows.hpp"
#include "sqlite.hpp"

namespace mailguard::store {
namespace {

using namespace std::chrono_literals;
using sql::toMicros;

// A failed batch is retried after 50, 100, 200, 400 and 800 ms, then dropped: a full
// disk must cost records, never unbounded memory or a stuck writer.
constexpr int kMaxRetries = 5;
constexpr auto kFirstRetryDelay = 50ms;
constexpr std::uint64_t kPruneEveryAttempts = 1000;
constexpr auto kPruneInterval = 60s;
// Alerts kept through a failed write are tried again with every later write, and at
// least this often while nothing else is written.
constexpr auto kAlertRetryInterval = 1s;
// Having woken for a few records, wait this long for more before writing, so a burst of
// attempts is one transaction, not one each (a transaction per attempt kept the writer
// busy on the core the verdicts needed). A durable write, flush() and stopping cut it
// short.
constexpr auto kLinger = 10ms;
constexpr std::size_t kLingerUntilItems = 512;
constexpr std::size_t kMaxCmdline = 4096;

// Cuts at a UTF-8 character boundary so that the stored text stays valid.
std::string_view boundedCmdline(std::string_view s) {
  if (s.size() <= kMaxCmdline) return s;
  std::size_t n = kMaxCmdline;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0U) == 0x80U) --n;
  return s.substr(0, n);
}

// A sighting of a known program (same id, or same identity) refreshes uid, last attempt
// and quarantine; first_seen and the identity stay as first recorded. RETURNING gives
// the row's id whichever way it went.
constexpr std::string_view kUpsertProgram =
    "INSERT INTO programs(id, path, sha256, script_path, script_sha256, uid, first_seen, "
    "  last_attempt, quarantined, binary_itself) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) "
    "ON CONFLICT(id) DO UPDATE SET uid = excluded.uid, "
    "  last_attempt = MAX(last_attempt, excluded.last_attempt), "
    "  quarantined = excluded.quarantined "
    "ON CONFLICT(path, sha256, script_path, script_sha256, binary_itself) DO UPDATE SET "
    "  uid = excluded.uid, last_attempt = MAX(last_attempt, excluded.last_attempt), "
    "  quarantined = excluded.quarantined "
    "RETURNING id";

Result<std::int64_t> upsertProgram(sql::Database& db, const ProgramRecord& p) {
  auto stmt = db.cached(kUpsertProgram);
  if (!stmt) return stmt.error();
  stmt->bind(1, p.id > 0 ? std::optional<std::int64_t>{p.id} : std::nullopt)
      .bind(2, p.identity.path)
      .bind(3, p.identity.sha256)
      .bind(4, p.identity.scriptPath)
      .bind(5, p.identity.scriptSha256)
      .bind(6, std::int64_t{p.uid})
      .bind(7, toMicros(p.firstSeen))
      .bind(8, toMicros(p.lastAttempt))
      .bind(9, p.quarantined)
      .bind(10, p.identity.binaryItself);
  auto row = stmt->step();
  if (!row) return row.error();
  if (!*row) return makeError("no program id returned");
  const auto id = stmt->integer(0);
  if (auto r = stmt->run(); !r) return r.error();
  return id;
}

// Runs `write` in one BEGIN IMMEDIATE transaction; commits only when it succeeded.
template <class T, class Write>
Result<T> inTransaction(sql::Database& db, Write write) {
  auto tx = sql::Transaction::begin(db);
  if (!tx) return tx.error();
  Result<T> r = write();
  if (!r) return r;
  if (auto c = tx->commit(); !c) return c.error();
  return r;
}

}  // namespace

struct StoreWriter::Impl {
  struct Quarantine {
    std::int64_t programId = 0;
    bool quarantined = false;
  };
  struct Decided {
    std::int64_t programId = 0;
    std::string decided;  // "approved", "denied" or ""
  };
  using Durable = std::function<void()>;  // a whole durable job: the write, then `done`
  using Item = std::variant<AttemptRecord, ProgramRecord, std::vector<ProbeRow>, Quarantine,
                            Decided, Durable>;
  // What lastError remembers separately: a success of one kind does not clear another's.
  enum class Kind { Records, Prune, Rule, Alert, Acknowledge, Detector, Firewall, Audit, Outside };

  // Records in hand, written as one transaction; kept across failed attempts to write it.
  struct Batch {
    std::vector<ProgramRecord> programs;
    std::vector<AttemptRecord> attempts;
    std::vector<std::vector<ProbeRow>> probes;
    std::vector<Quarantine> quarantines;
    std::vector<Decided> decisions;
    std::uint64_t items = 0;  // queue items in it, for flush()
    [[nodiscard]] bool empty() const { return items == 0; }
    void add(Item&& item) {
      ++items;
      if (auto* a = std::get_if<AttemptRecord>(&item)) {
        attempts.push_back(std::move(*a));
      } else if (auto* p = std::get_if<ProgramRecord>(&item)) {
        programs.push_back(std::move(*p));
      } else if (auto* rows = std::get_if<std::vector<ProbeRow>>(&item)) {
        probes.push_back(std::move(*rows));
      } else if (auto* d = std::get_if<Decided>(&item)) {
        decisions.push_back(std::move(*d));
      } else {
        quarantines.push_back(std::get<Quarantine>(item));
      }
    }
    void clear() { *this = Batch{}; }
  };

  Impl(sql::Database database, std::size_t maxQueuedRecords)
      : db(std::move(database)), maxQueued(std::max<std::size_t>(maxQueuedRecords, 1)) {}

  void enqueueRecord(Item item, bool bounded);
  void enqueueDurable(Durable job);
  void run();
  Result<void> writeBatch(Batch& batch);
  Result<void> prune(TimePoint before, std::uint64_t maxCount);
  // Writes the kept alerts, oldest first, then `next` if given, in the open transaction.
  // True when `next` was stored; refused rows (id taken, a field out of range) cannot
  // succeed later: a kept one is dropped and counted, `next` reported by the caller.
  Result<bool> insertAlerts(const AlertRecord* next);
  void retryUnsavedAlerts();
  void keepUnsaved(AlertRecord alert);
  template <class T, class Write>
  Result<T> durably(Kind kind, std::string_view verb, Write write);
  void note(Kind kind, const Error* error);  // under mu
  void noteUnlocked(Kind kind, const Error* error) {
    const std::lock_guard lock(mu);
    note(kind, error);
  }

  sql::Database db;  // the writer thread's only
  const std::size_t maxQueued;
  std::deque<AlertRecord> unsaved;  // writer thread only; its size is mirrored in stats

  mutable std::mutex mu;
  std::condition_variable wake, progressed;
  std::deque<Item> queue;
  std::size_t recordsQueued = 0;  // bounded by maxQueued
  std::size_t durableQueued = 0;
  std::uint64_t submitted = 0, completed = 0;
  bool stop = false;
  bool pruneDue = false;
  int flushWaiters = 0;
  std::chrono::hours retentionAge{24 * 90};
  std::uint64_t retentionCount = 1'000'000;
  WriterStats stats;
  std::uint64_t errorSeq = 0;
  std::map<Kind, std::pair<std::uint64_t, std::string>> errors;  // kinds failing now
  std::thread thread;
};

void StoreWriter::Impl::enqueueRecord(Item item, bool bounded) {
  {
    const std::lock_guard lock(mu);
    if (bounded) {
      if (recordsQueued >= maxQueued) {
        // A dropped sighting is repeated by the next attempt of the program; attempts
        // that name it meanwhile are stored unattributed.
        if (std::holds_alternative<AttemptRecord>(item)) ++stats.attemptsDropped;
        return;
      }
      ++recordsQueued;
    }
    queue.push_back(std::move(item));
    ++submitted;
    // The writer waits for the first item, then lingers until the batch is big enough:
    // waking it for every item in between costs a context switch each.
    if (queue.size() != 1 && recordsQueued != kLingerUntilItems) return;
  }
  wake.notify_one();
}

void StoreWriter::Impl::enqueueDurable(Durable job) {
  {
    const std::lock_guard lock(mu);
    queue.emplace_back(std::move(job));
    ++durableQueued;
    ++submitted;
  }
  wake.notify_one();
}

void StoreWriter::Impl::note(Kind kind, const Error* error) {
  if (error == nullptr) {
    errors.erase(kind);
  } else {
    ++stats.writeErrors;
    errors[kind] = {++errorSeq, error->message};
  }
}

template <class T, class Write>
Result<T> StoreWriter::Impl::durably(Kind kind, std::string_view verb, Write write) {
  // FULL for this commit: it syncs the WAL, and with it every frame written before.
  Result<T> r = [&]() -> Result<T> {
    if (auto s = db.setSync(sql::Sync::Full); !s) return s.error();
    return inTransaction<T>(db, write);
  }();
  // Records go back to syncing at checkpoints; should this fail, they stay FULL (slower).
  (void)db.setSync(sql::Sync::Normal);
  if (!r) {
    const auto e = sql::failure(verb, db.path(), r.error().message);
    noteUnlocked(kind, &e);
    return e;
  }
  noteUnlocked(kind, nullptr);
  return r;
}

Result<void> StoreWriter::Impl::writeBatch(Batch& batch) {
  auto r = inTransaction<void>(db, [&]() -> Result<void> {
    for (const auto& p : batch.programs) {
      if (auto id = upsertProgram(db, p); !id) return id.error();
    }
    if (!batch.attempts.empty()) {
      // A programId the programs table does not hold (its sighting was dropped) becomes
      // NULL instead of failing the foreign key and with it the whole batch.
      auto stmt = db.cached(
          "INSERT INTO attempts(id, time, program_id, pid, uid, path, script_path, cmdline, "
          "  src, src_port, dst, dst_port, verdict, reason, channel, queue_id) "
          "VALUES(NULLIF(?14, 0), ?1, (SELECT id FROM programs WHERE id = ?2), ?3, ?4, ?5, ?6, "
          "  ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?16)");
      if (!stmt) return stmt.error();
      for (const auto& a : batch.attempts) {
        // guardd masks before it records; this keeps the store's promise for any other
        // writer of attempts.
        const std::string cmdline = rules::maskCommandLine(a.cmdline);
        stmt->reset();
        stmt->bind(1, toMicros(a.time))
            .bind(2, a.programId)
            .bind(3, std::int64_t{a.pid})
            .bind(4, std::int64_t{a.uid})
            .bind(5, a.path)
            .bind(6, a.scriptPath)
            .bind(7, boundedCmdline(cmdline))
            .bind(8, a.src)
            .bind(9, std::int64_t{a.srcPort})
            .bind(10, a.dst)
            .bind(11, std::int64_t{a.dstPort})
            .bind(12, rules::toString(a.verdict))
            .bind(13, a.reason)
            .bind(14, a.id)  // guardd numbers attempts itself so its signals carry the id
            .bind(15, a.channel)
            .bind(16, a.queueId);
        if (auto done = stmt->run(); !done) return done.error();
      }
    }
    if (!batch.probes.empty()) {
      auto upsert = db.cached(
          "INSERT INTO probes(source, port, count, first_seen, last_seen) "
          "VALUES(?1, ?2, ?3, ?4, ?5) ON CONFLICT(source, port) DO UPDATE SET "
          "count = count + excluded.count, last_seen = max(last_seen, excluded.last_seen)");
      if (!upsert) return upsert.error();
      for (const auto& rows : batch.probes) {
        for (const auto& p : rows) {
          upsert->reset();
          upsert->bind(1, p.source)
              .bind(2, std::int64_t{p.port})
              .bind(3, static_cast<std::int64_t>(p.count))
              .bind(4, toMicros(p.first))
              .bind(5, toMicros(p.last));
          if (auto done = upsert->run(); !done) return done.error();
        }
      }
      auto pruneProbes = db.cached(
          "DELETE FROM probes WHERE id NOT IN "
          "(SELECT id FROM probes ORDER BY last_seen DESC, id DESC LIMIT ?1)");
      if (!pruneProbes) return pruneProbes.error();
      pruneProbes->bind(1, static_cast<std::int64_t>(kMaxProbeRows));
      if (auto done = pruneProbes->run(); !done) return done.error();
    }
    if (!batch.quarantines.empty()) {
      auto stmt = db.cached("UPDATE programs SET quarantined = ?1 WHERE id = ?2");
      if (!stmt) return stmt.error();
      for (const auto& q : batch.quarantines) {
        stmt->reset();
        stmt->bind(1, q.quarantined).bind(2, q.programId);
        if (auto done = stmt->run(); !done) return done.error();
      }
    }
    if (!batch.decisions.empty()) {
      auto stmt = db.cached("UPDATE programs SET decided = ?1 WHERE id = ?2");
      if (!stmt) return stmt.error();
      for (const auto& d : batch.decisions) {
        stmt->reset();
        stmt->bind(1, d.decided).bind(2, d.programId);
        if (auto done = stmt->run(); !done) return done.error();
      }
    }
    return {};
  });
  if (!r) return sql::failure("write attempts to", db.path(), r.error().message);
  return r;
}

Result<void> StoreWriter::Impl::prune(TimePoint before, std::uint64_t maxCount) {
  auto r = inTransaction<void>(db, [&]() -> Result<void> {
    auto byAge = db.cached("DELETE FROM attempts WHERE time < ?1");
    if (!byAge) return byAge.error();
    byAge->bind(1, toMicros(before));
    if (auto done = byAge->run(); !done) return done.error();
    // Everything at or below the id of the (maxCount + 1)-th newest attempt goes.
    auto byCount = db.cached(
        "DELETE FROM attempts WHERE id <= "
        "(SELECT id FROM attempts ORDER BY id DESC LIMIT 1 OFFSET ?1)");
    if (!byCount) return byCount.error();
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    byCount->bind(1, static_cast<std::int64_t>(std::min(maxCount, kMax)));
    return byCount->run();
  });
  if (!r) return sql::failure("prune attempts in", db.path(), r.error().message);
  return r;
}

Result<bool> StoreWriter::Impl::insertAlerts(const AlertRecord* next) {
  // OR IGNORE skips a row that breaks a UNIQUE or CHECK constraint instead of failing
  // the transaction: such a row could never be written, and must not hold back the rest.
  // The program row may be missing (its sighting dropped): the alert is kept, unattributed.
  auto stmt = db.cached(
      "INSERT OR IGNORE INTO alerts(id, time, program_id, principal, path, script_path, uid, "
      "  tier, summary, reasons, evidence, acknowledged) "
      "VALUES(NULLIF(?1, 0), ?2, (SELECT id FROM programs WHERE id = ?3), ?4, ?5, ?6, ?7, ?8, "
      "  ?9, ?10, ?11, ?12)");
  if (!stmt) return stmt.error();
  auto insert = [&](const AlertRecord& a) -> Result<bool> {
    stmt->reset();
    stmt->bind(1, a.id)
        .bind(2, toMicros(a.time))
        .bind(3, a.programId)
        .bind(4, a.principal)
        .bind(5, a.path)
        .bind(6, a.scriptPath)
        .bind(7, std::int64_t{a.uid})
        .bind(8, a.tier)
        .bind(9, a.summary)
        .bind(10, sql::joinLines(a.reasons))
        .bind(11, a.evidence)
        .bind(12, a.acknowledged);
    if (auto r = stmt->run(); !r) return r.error();
    return db.changes() > 0;
  };
  std::uint64_t refused = 0;
  for (const auto& kept : unsaved) {
    auto r = insert(kept);
    if (!r) return r.error();
    if (!*r) ++refused;
  }
  bool stored = false;
  if (next != nullptr) {
    auto r = insert(*next);
    if (!r) return r.error();
    stored = *r;
  }
  // Only now that every row is in the transaction: the caller commits, then forgets them.
  if (refused > 0) {
    const std::lock_guard lock(mu);
    stats.alertsDropped += refused;
  }
  return stored;
}

void StoreWriter::Impl::keepUnsaved(AlertRecord alert) {
  if (unsaved.size() >= kMaxUnsavedAlerts) {
    unsaved.pop_front();
    const std::lock_guard lock(mu);
    ++stats.alertsDropped;
  }
  unsaved.push_back(std::move(alert));
  const std::lock_guard lock(mu);
  stats.unsavedAlerts = unsaved.size();
}

void StoreWriter::Impl::retryUnsavedAlerts() {
  if (unsaved.empty()) return;
  auto r = durably<bool>(Kind::Alert, "store an alert in", [&] { return insertAlerts(nullptr); });
  if (!r) return;
  unsaved.clear();
  const std::lock_guard lock(mu);
  stats.unsavedAlerts = 0;
}

void StoreWriter::Impl::run() {
  std::deque<Item> work;  // taken from the queue, done in order
  Batch batch;
  int failures = 0;
  // Items done with in this round, counted as completed (for flush()) at its end, after
  // the kept alerts had their try.
  std::uint64_t finished = 0;
  std::uint64_t sincePrune = 0;
  auto lastPrune = std::chrono::steady_clock::now();

  // Writes the batch in hand; true when it is done with (written, or dropped after the
  // last retry), false when it is to be retried.
  auto settle = [&]() -> bool {
    auto r = writeBatch(batch);
    const std::lock_guard lock(mu);
    note(Kind::Records, r ? nullptr : &r.error());
    if (r) {
      stats.attemptsWritten += batch.attempts.size();
      sincePrune += batch.attempts.size();
    } else if (++failures <= kMaxRetries) {
      return false;
    } else {
      stats.attemptsDropped += batch.attempts.size();
    }
    finished += batch.items;
    batch.clear();
    failures = 0;
    return true;
  };

  std::unique_lock lock(mu);
  for (;;) {
    if (work.empty() && batch.empty()) {
      if (stop && queue.empty() && !pruneDue) break;
      auto deadline = lastPrune + kPruneInterval;
      if (!unsaved.empty()) {
        deadline = std::min(deadline, std::chrono::steady_clock::now() + kAlertRetryInterval);
      }
      wake.wait_until(lock, deadline, [this] { return stop || pruneDue || !queue.empty(); });
      if (durableQueued == 0 && !queue.empty() && recordsQueued < kLingerUntilItems) {
        wake.wait_for(lock, kLinger, [this] {
          return stop || flushWaiters > 0 || durableQueued > 0 ||
                 recordsQueued >= kLingerUntilItems;
        });
      }
      work = std::move(queue);
      queue.clear();
      recordsQueued = 0;
      durableQueued = 0;
    } else if (failures > 0) {
      // Back off before retrying the batch in hand, but not when stopping: then the
      // retries run back to back. New items wait in (and are bounded by) the queue.
      const auto delay = kFirstRetryDelay * (1 << (failures - 1));
      wake.wait_for(lock, delay, [this] { return stop; });
    }
    const bool requested = pruneDue;
    const bool pruneNow = pruneDue || sincePrune >= kPruneEveryAttempts ||
                          std::chrono::steady_clock::now() - lastPrune >= kPruneInterval;
    const auto maxAge = retentionAge;
    const auto maxCount = retentionCount;
    if (pruneNow) pruneDue = false;
    lock.unlock();

    // In order: the records before a durable job are written before it runs, so that it
    // sees them (an alert naming a program just sighted), and those after it see its rows.
    bool blocked = false;
    for (;;) {
      if (!work.empty() && !std::holds_alternative<Durable>(work.front())) {
        batch.add(std::move(work.front()));
        work.pop_front();
        continue;
      }
      if (!batch.empty() && !settle()) {
        blocked = true;
        break;
      }
      if (work.empty()) break;
      auto job = std::get<Durable>(std::move(work.front()));
      work.pop_front();
      job();
      ++finished;
    }
    if (!blocked) retryUnsavedAlerts();

    if (pruneNow) {
      auto pruned = prune(std::chrono::system_clock::now() - maxAge, maxCount);
      lastPrune = std::chrono::steady_clock::now();
      sincePrune = 0;
      noteUnlocked(Kind::Prune, pruned ? nullptr : &pruned.error());
    }
    lock.lock();
    completed += finished + (requested ? 1 : 0);
    finished = 0;
    progressed.notify_all();
  }
  lock.unlock();
  retryUnsavedAlerts();  // a last chance for the kept alerts; lost if the disk still refuses
}

StoreWriter::StoreWriter(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<StoreWriter>> StoreWriter::start(const std::filesystem::path& stateDir,
                                                        std::size_t maxQueued) {
  // Records are a record, not a promise to the owner: one fsync per batch cost more than
  // writing the batch. Durable writes switch to FULL for their own commit.
  auto db = sql::openStateDatabase(stateDir, sql::Sync::Normal);
  if (!db) return db.error();
  std::unique_ptr<StoreWriter> writer(
      new StoreWriter(std::make_unique<Impl>(std::move(*db), maxQueued)));
  writer->impl_->thread = std::thread([impl = writer->impl_.get()] { impl->run(); });
  return {std::move(writer)};
}

StoreWriter::~StoreWriter() {
  {
    const std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void StoreWriter::submit(AttemptRecord a) { impl_->enqueueRecord(std::move(a), true); }
void StoreWriter::submit(ProgramRecord p) { impl_->enqueueRecord(std::move(p), true); }
void StoreWriter::submit(std::vector<ProbeRow> probes) {
  if (probes.empty()) return;
  impl_->enqueueRecord(std::move(probes), true);
}
void StoreWriter::setQuarantined(std::int64_t programId, bool quarantined) {
  impl_->enqueueRecord(Impl::Quarantine{programId, quarantined}, false);
}

void StoreWriter::setDecided(std::int64_t programId, std::optional<rules::ProgramState> decided) {
  std::string text;
  if (decided == rules::ProgramState::Approved || decided == rules::ProgramState::Denied) {
    text = std::string(rules::toString(*decided));
  }
  impl_->enqueueRecord(Impl::Decided{programId, std::move(text)}, false);
}

void StoreWriter::addRule(rules::ApprovalRule rule, std::optional<ProgramRecord> program,
                          std::function<void(Result<RuleWritten>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), rule = std::move(rule), program = std::move(program),
                         done = std::move(done)] {
    auto r =
        impl->durably<RuleWritten>(Impl::Kind::Rule, "add a rule to", [&]() -> Result<RuleWritten> {
          // The newest decision replaces the earlier ones about the same program (path,
          // script, kind) that it contradicts: all but approvals for other single users
          // when it approves for one user. It gets a new id; the triggers bump
          // rules_version.
          const std::int64_t scope = rule.uid ? std::int64_t{*rule.uid} : -1;
          // A rule naming a script is of a script, whatever its kind field said.
          const auto kind = rule.scriptPath.empty() ? rule.kind : rules::IdentityKind::Script;
          const std::string_view action =
              rule.action == rules::RuleAction::Deny ? "deny" : "approve";
          auto earlier = impl->db.cached(
              "DELETE FROM rules WHERE path = ?1 AND script_path = ?2 AND kind = ?3 AND "
              "  (action <> ?4 OR action = 'deny' OR ?5 = -1 OR scope_uid = -1 OR "
              "   scope_uid = ?5)");
          if (!earlier) return earlier.error();
          earlier->bind(1, rule.path)
              .bind(2, rule.scriptPath)
              .bind(3, rules::toString(kind))
              .bind(4, action)
              .bind(5, scope);
          if (auto removed = earlier->run(); !removed) return removed.error();
          auto stmt = impl->db.cached(
              "INSERT OR REPLACE INTO rules(action, path, sha256, script_path, script_sha256, "
              "  created, only_to, allow_env, kind, scope_uid) "
              "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id");
          if (!stmt) return stmt.error();
          stmt->bind(1, action)
              .bind(2, rule.path)
              .bind(3, rule.sha256)
              .bind(4, rule.scriptPath)
              .bind(5, rule.scriptSha256)
              .bind(6, toMicros(std::chrono::system_clock::now()))
              .bind(7, rules::encodeDestinations(rule.onlyTo))
              .bind(8, rules::joinNames(rule.allowEnv))
              .bind(9, rules::toString(kind))
              .bind(10, scope);
          auto row = stmt->step();
          if (!row) return row.error();
          if (!*row) return makeError("no rule id returned");
          RuleWritten written;
          written.ruleId = stmt->integer(0);
          if (auto finished = stmt->run(); !finished) return finished.error();
          if (program) {
            auto id = upsertProgram(impl->db, *program);
            if (!id) return id.error();
            written.programId = *id;
          }
          return written;
        });
    if (done) done(std::move(r));
  });
}

void StoreWriter::removeRules(std::string path, std::string scriptPath,
                              std::function<void(Result<bool>)> done,
                              std::optional<rules::IdentityKind> kind,
                              std::optional<std::uint32_t> user) {
  impl_->enqueueDurable([impl = impl_.get(), path = std::move(path),
                         scriptPath = std::move(scriptPath), done = std::move(done), kind, user] {
    auto r = impl->durably<bool>(Impl::Kind::Rule, "remove rules from", [&]() -> Result<bool> {
      // scope_uid -1 is every user's rule, which ?4 NULL (no user named) also matches.
      auto stmt = impl->db.cached(
          "DELETE FROM rules WHERE path = ?1 AND script_path = ?2 AND (?3 = '' OR kind = ?3) "
          "AND (?4 IS NULL OR scope_uid = ?4)");
      if (!stmt) return stmt.error();
      stmt->bind(1, path)
          .bind(2, scriptPath)
          .bind(3, kind ? rules::toString(*kind) : "")
          .bind(4, user ? std::optional<std::int64_t>{*user} : std::nullopt);
      if (auto finished = stmt->run(); !finished) return finished.error();
      return impl->db.changes() > 0;
    });
    if (done) done(std::move(r));
  });
}

void StoreWriter::addAlert(AlertRecord alert, std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), alert = std::move(alert), done = std::move(done)] {
    auto stored = impl->durably<bool>(Impl::Kind::Alert, "store an alert in",
                                      [&] { return impl->insertAlerts(&alert); });
    Result<void> r;
    if (!stored) {
      impl->keepUnsaved(alert);
      r = stored.error();
    } else {
      impl->unsaved.clear();
      {
        const std::lock_guard lock(impl->mu);
        impl->stats.unsavedAlerts = 0;
      }
      if (!*stored) {
        r = sql::failure("store an alert in", impl->db.path(),
                         "alert " + std::to_string(alert.id) +
                             " was refused (its id is taken or a field is out of range)");
      }
    }
    if (done) done(std::move(r));
  });
}

void StoreWriter::acknowledgeAlert(std::int64_t id, std::function<void(Result<bool>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), id, done = std::move(done)] {
    bool kept = false;
    for (auto& a : impl->unsaved) {
      if (a.id == id) {
        a.acknowledged = true;
        kept = true;
      }
    }
    auto r = impl->durably<bool>(
        Impl::Kind::Acknowledge, "acknowledge an alert in", [&]() -> Result<bool> {
          auto stmt = impl->db.cached("UPDATE alerts SET acknowledged = 1 WHERE id = ?1");
          if (!stmt) return stmt.error();
          stmt->bind(1, id);
          if (auto finished = stmt->run(); !finished) {
            return finished.error();
          }
          return impl->db.changes() > 0;
        });
    if (r && kept) r = true;
    if (done) done(std::move(r));
  });
}

void StoreWriter::saveDetectorState(std::vector<std::pair<std::string, std::string>> rows,
                                    std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), rows = std::move(rows), done = std::move(done)] {
    auto r = impl->durably<void>(
        Impl::Kind::Detector, "save the detector state in", [&]() -> Result<void> {
          if (auto cleared = impl->db.exec("DELETE FROM detector_state"); !cleared) {
            return cleared;
          }
          auto stmt =
              impl->db.cached("INSERT INTO detector_state(principal, snapshot) VALUES(?1, ?2)");
          if (!stmt) return stmt.error();
          for (const auto& [key, snapshot] : rows) {
            stmt->reset();
            stmt->bind(1, key).bind(2, snapshot);
            if (auto finished = stmt->run(); !finished) return finished;
          }
          return {};
        });
    if (done) done(std::move(r));
  });
}

void StoreWriter::saveFirewall(StoredFirewall firewall, std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), firewall = std::move(firewall),
                         done = std::move(done)] {
    auto r =
        impl->durably<void>(Impl::Kind::Firewall, "save the firewall in", [&]() -> Result<void> {
          auto state = impl->db.cached(
              "INSERT INTO firewall(id, enabled, local_subnets) VALUES(1, ?1, ?2) "
              "ON CONFLICT(id) DO UPDATE SET enabled = excluded.enabled, "
              "local_subnets = excluded.local_subnets");
          if (!state) return state.error();
          state->bind(1, firewall.enabled).bind(2, sql::joinLines(firewall.localSubnets));
          if (auto finished = state->run(); !finished) return finished;
          if (auto cleared = impl->db.exec("DELETE FROM firewall_services"); !cleared)
            return cleared;
          auto insert =
              impl->db.cached("INSERT INTO firewall_services(name, local_only) VALUES(?1, ?2)");
          if (!insert) return insert.error();
          for (const auto& s : firewall.services) {
            insert->reset();
            insert->bind(1, s.name).bind(2, s.localOnly);
            if (auto finished = insert->run(); !finished) return finished;
          }
          return {};
        });
    if (done) done(std::move(r));
  });
}

void StoreWriter::saveAudit(std::vector<AuditRow> rows, std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), rows = std::move(rows), done = std::move(done)] {
    auto r = impl->durably<void>(Impl::Kind::Audit, "save the audit in", [&]() -> Result<void> {
      // The LAN rows first: deleting them does not wait on foreign-key enforcement.
      if (auto cleared = impl->db.exec("DELETE FROM audit_lan"); !cleared) return cleared;
      if (auto cleared = impl->db.exec("DELETE FROM audit_results"); !cleared) return cleared;
      auto insert = impl->db.cached(
          "INSERT INTO audit_results(time, family, address, port, exposure, pid, uid, path, "
          "comm, relay, accepted, reason, blocked_by_firewall, probed_address, own_domain, "
          "transcript, auth_in_clear) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
          "?13, ?14, ?15, ?16, ?17) RETURNING id");
      if (!insert) return insert.error();
      auto insertLan = impl->db.cached(
          "INSERT INTO audit_lan(audit_id, subnet, probe_address, target, relay, accepted, "
          "reason, transcript) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
      if (!insertLan) return insertLan.error();
      for (const auto& a : rows) {
        insert->reset();
        insert->bind(1, toMicros(a.time))
            .bind(2, std::int64_t{a.family})
            .bind(3, a.address)
            .bind(4, std::int64_t{a.port})
            .bind(5, a.exposure)
            .bind(6, std::int64_t{a.pid})
            .bind(7, std::int64_t{a.uid})
            .bind(8, a.path)
            .bind(9, a.comm)
            .bind(10, a.relay)
            .bind(11, sql::joinLines(a.accepted))
            .bind(12, a.reason)
            .bind(13, a.blockedByFirewall)
            .bind(14, a.probedAddress)
            .bind(15, a.ownDomain)
            .bind(16, sql::joinLines(a.transcript))
            .bind(17, sql::joinLines(a.authInClear));
        auto row = insert->step();
        if (!row) return row.error();
        if (!*row) return makeError("no audit row id returned");
        const std::int64_t id = insert->integer(0);
        if (auto finished = insert->run(); !finished) return finished;
        for (const auto& v : a.lan) {
          insertLan->reset();
          insertLan->bind(1, id)
              .bind(2, v.subnet)
              .bind(3, v.probeAddress)
              .bind(4, v.target)
              .bind(5, v.relay)
              .bind(6, sql::joinLines(v.accepted))
              .bind(7, v.reason)
              .bind(8, sql::joinLines(v.transcript));
          if (auto finished = insertLan->run(); !finished) return finished;
        }
      }
      return {};
    });
    if (done) done(std::move(r));
  });
}

void StoreWriter::saveHouseholdScan(HouseholdScanRow row, std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), row = std::move(row), done = std::move(done)] {
    auto r =
        impl->durably<void>(Impl::Kind::Audit, "save the household scan in", [&]() -> Result<void> {
          auto insert = impl->db.cached(
              "INSERT OR REPLACE INTO household_scan(id, finished, error, result) "
              "VALUES(1, ?1, ?2, ?3)");
          if (!insert) return insert.error();
          insert->reset();
          insert->bind(1, toMicros(row.finished)).bind(2, row.error).bind(3, row.json);
          return insert->run();
        });
    if (done) done(std::move(r));
  });
}

void StoreWriter::saveOutsideReport(std::string json, std::function<void(Result<void>)> done) {
  impl_->enqueueDurable([impl = impl_.get(), json = std::move(json), done = std::move(done)] {
    auto r = impl->durably<void>(Impl::Kind::Outside, "save the outside check in",
                                 [&]() -> Result<void> {
                                   auto state = impl->db.cached(
                                       "INSERT INTO outside_report(id, report) VALUES(1, ?1) "
                                       "ON CONFLICT(id) DO UPDATE SET report = excluded.report");
                                   if (!state) return state.error();
                                   state->bind(1, json);
                                   return state->run();
                                 });
    if (done) done(std::move(r));
  });
}

void StoreWriter::setRetention(std::chrono::hours maxAge, std::uint64_t maxCount) {
  {
    const std::lock_guard lock(impl_->mu);
    impl_->retentionAge = maxAge;
    impl_->retentionCount = maxCount;
    // An outstanding prune counts as one item, so that flush() waits for it.
    if (!impl_->pruneDue) ++impl_->submitted;
    impl_->pruneDue = true;
  }
  impl_->wake.notify_one();
}

void StoreWriter::flush() {
  std::unique_lock lock(impl_->mu);
  const auto target = impl_->submitted;
  ++impl_->flushWaiters;
  impl_->wake.notify_one();
  impl_->progressed.wait(lock, [&] { return impl_->completed >= target; });
  --impl_->flushWaiters;
}

WriterStats StoreWriter::stats() const {
  const std::lock_guard lock(impl_->mu);
  WriterStats out = impl_->stats;
  std::uint64_t newest = 0;
  for (const auto& [kind, error] : impl_->errors) {
    if (error.first > newest) {
      newest = error.first;
      out.lastError = error.second;
    }
  }
  return out;
}

}  // namespace mailguard::store
