#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <string>
#include <thread>

#include "mailguard/store/store.hpp"

namespace mailguard::store {
namespace {

using namespace std::chrono_literals;
using rules::ApprovalRule;
using rules::RuleAction;
using rules::Verdict;

const TimePoint kNow = TimePoint{std::chrono::seconds{1'700'000'000}};

class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/mailguard-store-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A second connection that bypasses the store, to look at pragmas and to inject failures.
class RawDb {
 public:
  explicit RawDb(const std::filesystem::path& file) {
    if (sqlite3_open(file.c_str(), &db_) != SQLITE_OK) throw std::runtime_error("open failed");
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void exec(const std::string& sql) {
    char* err = nullptr;
    const int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err);
    const std::string msg = err != nullptr ? err : "";
    sqlite3_free(err);
    if (rc != SQLITE_OK) throw std::runtime_error(sql + ": " + msg);
  }
  std::string text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    }
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* p = sqlite3_column_text(stmt, 0);
      out = p != nullptr ? reinterpret_cast<const char*>(p) : "";
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

// A VFS that forwards to the default one but fails writes with SQLITE_FULL while
// `full` is set: a full disk, as the store's own connection sees it.
class FullDiskVfs {
 public:
  FullDiskVfs() {
    real_ = sqlite3_vfs_find(nullptr);
    vfs_ = *real_;
    vfs_.zName = "mailguard-full-disk";
    vfs_.szOsFile = static_cast<int>(sizeof(sqlite3_file)) + real_->szOsFile;
    vfs_.pAppData = this;
    vfs_.xOpen = &open;
    sqlite3_vfs_register(&vfs_, 1);
  }
  ~FullDiskVfs() {
    sqlite3_vfs_unregister(&vfs_);
    sqlite3_vfs_register(real_, 1);
  }
  FullDiskVfs(const FullDiskVfs&) = delete;
  FullDiskVfs& operator=(const FullDiskVfs&) = delete;

  static inline std::atomic<bool> full{false};

 private:
  static sqlite3_file* inner(sqlite3_file* f) { return f + 1; }
  static const sqlite3_io_methods* m(sqlite3_file* f) { return inner(f)->pMethods; }

  static int open(sqlite3_vfs* vfs, sqlite3_filename name, sqlite3_file* f, int flags,
                  int* outFlags) {
    auto* self = static_cast<FullDiskVfs*>(vfs->pAppData);
    const int rc = self->real_->xOpen(self->real_, name, inner(f), flags, outFlags);
    f->pMethods = inner(f)->pMethods != nullptr ? &kMethods : nullptr;
    return rc;
  }

  static constexpr sqlite3_io_methods kMethods = {
      3,
      [](sqlite3_file* f) { return m(f)->xClose(inner(f)); },
      [](sqlite3_file* f, void* p, int n, sqlite3_int64 o) {
        return m(f)->xRead(inner(f), p, n, o);
      },
      [](sqlite3_file* f, const void* p, int n, sqlite3_int64 o) {
        return full ? SQLITE_FULL : m(f)->xWrite(inner(f), p, n, o);
      },
      [](sqlite3_file* f, sqlite3_int64 n) { return m(f)->xTruncate(inner(f), n); },
      [](sqlite3_file* f, int fl) { return m(f)->xSync(inner(f), fl); },
      [](sqlite3_file* f, sqlite3_int64* n) { return m(f)->xFileSize(inner(f), n); },
      [](sqlite3_file* f, int l) { return m(f)->xLock(inner(f), l); },
      [](sqlite3_file* f, int l) { return m(f)->xUnlock(inner(f), l); },
      [](sqlite3_file* f, int* r) { return m(f)->xCheckReservedLock(inner(f), r); },
      [](sqlite3_file* f, int op, void* a) { return m(f)->xFileControl(inner(f), op, a); },
      [](sqlite3_file* f) { return m(f)->xSectorSize(inner(f)); },
      [](sqlite3_file* f) { return m(f)->xDeviceCharacteristics(inner(f)); },
      [](sqlite3_file* f, int pg, int sz, int ext, void volatile** pp) {
        return m(f)->xShmMap(inner(f), pg, sz, ext, pp);
      },
      [](sqlite3_file* f, int o, int n, int fl) { return m(f)->xShmLock(inner(f), o, n, fl); },
      [](sqlite3_file* f) { m(f)->xShmBarrier(inner(f)); },
      [](sqlite3_file* f, int d) { return m(f)->xShmUnmap(inner(f), d); },
      [](sqlite3_file* f, sqlite3_int64 o, int n, void** pp) {
        return m(f)->xFetch(inner(f), o, n, pp);
      },
      [](sqlite3_file* f, sqlite3_int64 o, void* p) { return m(f)->xUnfetch(inner(f), o, p); },
  };

  sqlite3_vfs* real_ = nullptr;
  sqlite3_vfs vfs_{};
};

std::unique_ptr<SqliteStore> openStore(const std::filesystem::path& dir) {
  auto s = SqliteStore::open(dir);
  if (!s) throw std::runtime_error(s.error().message);
  return std::move(*s);
}

std::unique_ptr<AttemptWriter> startWriter(const std::filesystem::path& dir,
                                           std::size_t maxQueued = 100'000) {
  auto w = AttemptWriter::start(dir, maxQueued);
  if (!w) throw std::runtime_error(w.error().message);
  return std::move(*w);
}

ApprovalRule rule(RuleAction action, std::string path, std::string scriptPath = {}) {
  ApprovalRule r;
  r.action = action;
  r.path = std::move(path);
  r.sha256 = std::string(64, 'a');
  r.scriptPath = std::move(scriptPath);
  if (!r.scriptPath.empty()) r.scriptSha256 = std::string(64, 'b');
  return r;
}

ProgramRecord program(std::int64_t id, std::string path, TimePoint seen = kNow) {
  ProgramRecord p;
  p.id = id;
  p.identity.path = std::move(path);
  p.identity.sha256 = std::string(64, 'c');
  p.uid = 1000;
  p.firstSeen = seen;
  p.lastAttempt = seen;
  return p;
}

AttemptRecord attempt(TimePoint time = kNow, std::optional<std::int64_t> programId = {},
                      Verdict verdict = Verdict::Hold) {
  AttemptRecord a;
  a.time = time;
  a.programId = programId;
  a.pid = 4242;
  a.uid = 1000;
  a.path = "/usr/bin/python3.11";
  a.scriptPath = "/home/ann/bin/mailer.py";
  a.cmdline = "python3 /home/ann/bin/mailer.py --to all";
  a.src = "10.0.0.2";
  a.srcPort = 40000;
  a.dst = "192.0.2.25";
  a.dstPort = 25;
  a.verdict = verdict;
  a.reason = "not approved yet";
  return a;
}

void insert(SqliteStore& s, std::vector<AttemptRecord> batch) {
  auto r = s.insertAttempts(batch);
  ASSERT_TRUE(r) << r.error().message;
}

std::vector<std::int64_t> ids(const std::vector<AttemptRecord>& v) {
  std::vector<std::int64_t> out;
  for (const auto& a : v) out.push_back(a.id);
  return out;
}

std::vector<AttemptRecord> query(SqliteStore& s, const AttemptQuery& q) {
  auto r = s.attempts(q);
  if (!r) throw std::runtime_error(r.error().message);
  return *r;
}

std::int64_t count(SqliteStore& s) {
  auto n = s.attemptCount();
  if (!n) throw std::runtime_error(n.error().message);
  return *n;
}

template <class Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = 5s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

TEST(SqliteStore, CreatesStateDirAndSchemaAndKeepsDataAcrossReopen) {
  TempDir tmp;
  const auto dir = tmp.path() / "state";
  std::int64_t ruleId = 0;
  {
    auto s = openStore(dir);
    EXPECT_EQ(s->databasePath(), dir / "mailguard.db");
    auto id = s->addRule(rule(RuleAction::Approve, "/usr/sbin/sendmail"));
    ASSERT_TRUE(id) << id.error().message;
    ruleId = *id;
    ASSERT_TRUE(s->upsertProgram(program(7, "/usr/sbin/sendmail")));
    insert(*s, {attempt(kNow, 7)});
  }
  struct stat st {};
  ASSERT_EQ(::stat(dir.c_str(), &st), 0);
  const mode_t mask = ::umask(0);
  ::umask(mask);
  EXPECT_EQ(st.st_mode & 0777U, 0750U & ~mask);

  auto s = openStore(dir);
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1U);
  EXPECT_EQ((*rules)[0].id, ruleId);
  EXPECT_EQ((*rules)[0].path, "/usr/sbin/sendmail");
  EXPECT_EQ((*rules)[0].sha256, std::string(64, 'a'));
  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs);
  ASSERT_EQ(programs->size(), 1U);
  EXPECT_EQ((*programs)[0].id, 7);
  EXPECT_EQ((*programs)[0].firstSeen, kNow);
  auto all = query(*s, {});
  ASSERT_EQ(all.size(), 1U);
  const auto expected = attempt(kNow, 7);
  EXPECT_EQ(all[0].time, expected.time);
  EXPECT_EQ(all[0].programId, 7);
  EXPECT_EQ(all[0].pid, expected.pid);
  EXPECT_EQ(all[0].uid, expected.uid);
  EXPECT_EQ(all[0].path, expected.path);
  EXPECT_EQ(all[0].scriptPath, expected.scriptPath);
  EXPECT_EQ(all[0].cmdline, expected.cmdline);
  EXPECT_EQ(all[0].src, expected.src);
  EXPECT_EQ(all[0].srcPort, expected.srcPort);
  EXPECT_EQ(all[0].dst, expected.dst);
  EXPECT_EQ(all[0].dstPort, expected.dstPort);
  EXPECT_EQ(all[0].verdict, expected.verdict);
  EXPECT_EQ(all[0].reason, expected.reason);

  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA user_version"), "3");
}

TEST(SqliteStore, UsesWriteAheadLogAndPassesIntegrityCheck) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  insert(*s, {attempt(), attempt()});
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
  EXPECT_EQ(raw.text("PRAGMA foreign_key_check"), "");
}

TEST(SqliteStore, ReportsFailureToOpenWithThePath) {
  TempDir tmp;
  const auto file = tmp.path() / "not-a-dir";
  { RawDb touch(file); }
  auto s = SqliteStore::open(file / "state");
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message.rfind("Failed to create '", 0), 0U) << s.error().message;
}

TEST(SqliteStore, AddRuleReplacesTheEarlierRuleForTheSamePathAndScript) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto first = s->addRule(rule(RuleAction::Approve, "/usr/bin/python3.11"));
  auto script = s->addRule(rule(RuleAction::Approve, "/usr/bin/python3.11", "/opt/a.py"));
  auto replaced = s->addRule(rule(RuleAction::Deny, "/usr/bin/python3.11"));
  ASSERT_TRUE(first && script && replaced);
  EXPECT_NE(*replaced, *first);

  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 2U);
  EXPECT_EQ((*rules)[0].id, *script);
  EXPECT_EQ((*rules)[0].scriptPath, "/opt/a.py");
  EXPECT_EQ((*rules)[0].action, RuleAction::Approve);
  EXPECT_EQ((*rules)[1].id, *replaced);
  EXPECT_EQ((*rules)[1].scriptPath, "");
  EXPECT_EQ((*rules)[1].action, RuleAction::Deny);
}

TEST(SqliteStore, RemoveRulesDeletesOnlyThatPathAndScript) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  ASSERT_TRUE(s->addRule(rule(RuleAction::Approve, "/usr/bin/perl")));
  ASSERT_TRUE(s->addRule(rule(RuleAction::Approve, "/usr/bin/perl", "/opt/b.pl")));
  ASSERT_TRUE(s->removeRules("/usr/bin/perl", ""));
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1U);
  EXPECT_EQ((*rules)[0].scriptPath, "/opt/b.pl");
}

TEST(SqliteStore, NoticesRulesChangedByAnotherConnection) {
  TempDir tmp;
  auto reader = openStore(tmp.path());
  auto other = openStore(tmp.path());
  auto v0 = reader->rulesVersion();
  ASSERT_TRUE(v0) << v0.error().message;
  EXPECT_EQ(*reader->rulesVersion(), *v0);

  ASSERT_TRUE(other->addRule(rule(RuleAction::Approve, "/usr/sbin/exim4")));
  auto v1 = reader->rulesVersion();
  ASSERT_TRUE(v1);
  EXPECT_NE(*v1, *v0);
  EXPECT_EQ(*reader->rulesVersion(), *v1);

  ASSERT_TRUE(other->removeRules("/usr/sbin/exim4", ""));
  EXPECT_NE(*reader->rulesVersion(), *v1);
}

TEST(SqliteStore, NoticesRulesChangedByItsOwnConnection) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  const auto v0 = *s->rulesVersion();
  ASSERT_TRUE(s->addRule(rule(RuleAction::Deny, "/usr/bin/nc")));
  EXPECT_NE(*s->rulesVersion(), v0);
}

TEST(SqliteStore, KeepsRulesVersionWhenAttemptsAndProgramsAreWritten) {
  TempDir tmp;
  auto reader = openStore(tmp.path());
  auto other = openStore(tmp.path());
  ASSERT_TRUE(reader->addRule(rule(RuleAction::Approve, "/usr/sbin/postfix")));
  const auto v0 = *reader->rulesVersion();

  ASSERT_TRUE(other->upsertProgram(program(1, "/usr/bin/curl")));
  insert(*other, {attempt(kNow, 1)});
  ASSERT_TRUE(other->setQuarantined(1, true));
  {
    auto w = startWriter(tmp.path());
    w->submit(attempt());
    w->flush();
  }
  EXPECT_EQ(*reader->rulesVersion(), v0);
}

TEST(SqliteStore, PagesAttemptsNewestFirst) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  std::vector<AttemptRecord> batch(25, attempt());
  ASSERT_TRUE(s->insertAttempts(batch));
  for (std::size_t i = 1; i < batch.size(); ++i) EXPECT_GT(batch[i].id, batch[i - 1].id);

  std::vector<std::int64_t> seen;
  AttemptQuery q;
  q.limit = 10;
  std::vector<std::size_t> pageSizes;
  for (;;) {
    auto page = query(*s, q);
    if (page.empty()) break;
    pageSizes.push_back(page.size());
    for (const auto& a : page) seen.push_back(a.id);
    q.beforeId = page.back().id;
  }
  EXPECT_EQ(pageSizes, (std::vector<std::size_t>{10, 10, 5}));
  auto expected = ids(batch);
  std::reverse(expected.begin(), expected.end());
  EXPECT_EQ(seen, expected);
}

TEST(SqliteStore, CapsAttemptPagesAtOneThousand) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  insert(*s, std::vector<AttemptRecord>(1100, attempt()));
  AttemptQuery q;
  q.limit = 5000;
  EXPECT_EQ(query(*s, q).size(), 1000U);
}

TEST(SqliteStore, FiltersAttemptsByProgramVerdictAndTime) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  ASSERT_TRUE(s->upsertProgram(program(1, "/usr/bin/a")));
  ASSERT_TRUE(s->upsertProgram(program(2, "/usr/bin/b")));
  std::vector<AttemptRecord> batch = {
      attempt(kNow - 2h, 1, Verdict::Allow), attempt(kNow - 1h, 2, Verdict::Hold),
      attempt(kNow, 1, Verdict::Reject), attempt(kNow + 1h, 1, Verdict::Allow),
      attempt(kNow + 2h, {}, Verdict::Hold)};
  ASSERT_TRUE(s->insertAttempts(batch));

  AttemptQuery byProgram;
  byProgram.programId = 1;
  EXPECT_EQ(ids(query(*s, byProgram)), (std::vector{batch[3].id, batch[2].id, batch[0].id}));

  AttemptQuery byVerdict;
  byVerdict.verdict = Verdict::Hold;
  EXPECT_EQ(ids(query(*s, byVerdict)), (std::vector{batch[4].id, batch[1].id}));

  AttemptQuery byTime;  // since inclusive, until exclusive
  byTime.since = kNow - 1h;
  byTime.until = kNow + 1h;
  EXPECT_EQ(ids(query(*s, byTime)), (std::vector{batch[2].id, batch[1].id}));

  AttemptQuery combined;
  combined.programId = 1;
  combined.verdict = Verdict::Allow;
  combined.beforeId = batch[3].id;
  EXPECT_EQ(ids(query(*s, combined)), (std::vector{batch[0].id}));
}

TEST(SqliteStore, StoresAttemptOfUnknownProgramUnattributed) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  insert(*s, {attempt(kNow, 999)});
  auto all = query(*s, {});
  ASSERT_EQ(all.size(), 1U);
  EXPECT_FALSE(all[0].programId.has_value());
}

TEST(SqliteStore, BoundsTheStoredCommandLine) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto a = attempt();
  a.cmdline = std::string(5000, 'x');
  insert(*s, {a});
  EXPECT_EQ(query(*s, {}).at(0).cmdline.size(), 4096U);
}

TEST(SqliteStore, LoadProgramsCountsAttemptsPerProgram) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  ASSERT_TRUE(s->upsertProgram(program(1, "/usr/bin/a", kNow - 24h)));
  ASSERT_TRUE(s->upsertProgram(program(2, "/usr/bin/b", kNow - 24h)));
  insert(*s, {attempt(kNow - 3h, 1), attempt(kNow - 1h, 1), attempt(kNow - 2h, 1), attempt()});

  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs) << programs.error().message;
  ASSERT_EQ(programs->size(), 2U);
  EXPECT_EQ((*programs)[0].id, 1);
  EXPECT_EQ((*programs)[0].attempts, 3);
  EXPECT_EQ((*programs)[0].lastAttempt, kNow - 1h);
  EXPECT_EQ((*programs)[0].firstSeen, kNow - 24h);
  EXPECT_EQ((*programs)[1].attempts, 0);
  EXPECT_EQ((*programs)[1].lastAttempt, kNow - 24h);
  EXPECT_EQ((*programs)[1].uid, 1000U);
}

TEST(SqliteStore, UpsertProgramUpdatesASightingByIdOrIdentity) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  ASSERT_TRUE(s->upsertProgram(program(1, "/usr/bin/a", kNow)));

  auto byId = program(1, "/usr/bin/a", kNow + 1h);
  byId.uid = 33;
  byId.quarantined = true;
  ASSERT_TRUE(s->upsertProgram(byId));

  auto byIdentity = program(5, "/usr/bin/a", kNow + 2h);  // same identity, other id
  byIdentity.uid = 44;
  auto r = s->upsertProgram(byIdentity);
  ASSERT_TRUE(r) << r.error().message;

  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs);
  ASSERT_EQ(programs->size(), 1U);
  const auto& p = (*programs)[0];
  EXPECT_EQ(p.id, 1);
  EXPECT_EQ(p.uid, 44U);
  EXPECT_EQ(p.firstSeen, kNow);
  EXPECT_EQ(p.lastAttempt, kNow + 2h);
  EXPECT_FALSE(p.quarantined);
}

TEST(SqliteStore, SetsQuarantineAndReportsAnUnknownProgram) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  ASSERT_TRUE(s->upsertProgram(program(3, "/tmp/x")));
  ASSERT_TRUE(s->setQuarantined(3, true));
  EXPECT_TRUE(s->loadPrograms()->at(0).quarantined);
  auto missing = s->setQuarantined(4, true);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find(s->databasePath().string()), std::string::npos);
}

TEST(SqliteStore, PrunesAttemptsByAgeAndCount) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  std::vector<AttemptRecord> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(attempt(kNow - 240h));
  for (int i = 0; i < 7; ++i) batch.push_back(attempt(kNow));
  ASSERT_TRUE(s->insertAttempts(batch));

  ASSERT_TRUE(s->prune(kNow - 24h, 1000));
  EXPECT_EQ(count(*s), 7);

  ASSERT_TRUE(s->prune(TimePoint{}, 4));
  AttemptQuery q;
  EXPECT_EQ(ids(query(*s, q)), (std::vector{batch[9].id, batch[8].id, batch[7].id, batch[6].id}));

  ASSERT_TRUE(s->prune(TimePoint{}, 0));
  EXPECT_EQ(count(*s), 0);
}

// RLIMIT_FSIZE makes the WAL's growth fail (EFBIG, SQLITE_IOERR_WRITE): an error value,
// and the store works again once the limit is lifted.
TEST(SqliteStore, ReportsAFullDiskAsAnErrorAndWorksAgainWhenSpaceReturns) {
  TempDir tmp;
  FullDiskVfs vfs;
  {
    auto s = openStore(tmp.path());
    insert(*s, {attempt()});
    FullDiskVfs::full = true;
    std::vector<AttemptRecord> batch(50, attempt());
    auto failed = s->insertAttempts(batch);
    auto rule = s->addRule(ApprovalRule{0, RuleAction::Approve, "/usr/sbin/sendmail", "", "", ""});
    FullDiskVfs::full = false;

    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().message, "Failed to write attempts to '" + s->databasePath().string() +
                                          "': database or disk is full");
    EXPECT_EQ(batch[0].id, 0);
    ASSERT_FALSE(rule);
    EXPECT_EQ(rule.error().message.rfind("Failed to add a rule to '", 0), 0U);
    EXPECT_EQ(count(*s), 1);

    insert(*s, std::vector<AttemptRecord>(50, attempt()));
    EXPECT_EQ(count(*s), 51);
    ASSERT_TRUE(s->addRule(ApprovalRule{0, RuleAction::Approve, "/usr/sbin/sendmail", "", "", ""}));
  }
  RawDb raw(tmp.path() / "mailguard.db");
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST(SqliteStore, ReportsAWriteErrorAndWorksAgainAfterwards) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* oldHandler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 256 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);

  auto big = attempt();
  big.cmdline = std::string(4000, 'y');
  std::int64_t stored = 0;
  std::optional<Error> error;
  for (int i = 0; i < 200 && !error; ++i) {
    std::vector<AttemptRecord> batch(10, big);
    auto r = s->insertAttempts(batch);
    if (r) {
      stored += 10;
    } else {
      error = r.error();
    }
  }
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, oldHandler);

  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(
      error->message.rfind("Failed to write attempts to '" + s->databasePath().string() + "': ", 0),
      0U)
      << error->message;
  EXPECT_EQ(count(*s), stored);
  insert(*s, std::vector<AttemptRecord>(10, big));
  EXPECT_EQ(count(*s), stored + 10);
  ASSERT_TRUE(s->addRule(rule(RuleAction::Approve, "/usr/sbin/sendmail")));
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST(AttemptWriter, KeepsABatchThroughAFullDisk) {
  TempDir tmp;
  FullDiskVfs vfs;
  {
    auto w = startWriter(tmp.path());
    FullDiskVfs::full = true;
    w->submit(attempt());
    ASSERT_TRUE(waitFor([&] { return w->stats().writeErrors >= 1; }));
    EXPECT_NE(w->stats().lastError.find("database or disk is full"), std::string::npos);
    FullDiskVfs::full = false;
    w->flush();
    EXPECT_EQ(w->stats().attemptsWritten, 1U);
    EXPECT_EQ(w->stats().lastError, "");
  }
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 1);
}

TEST(AttemptWriter, WritesEverythingSubmittedBeforeFlush) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  w->submit(program(1, "/usr/bin/a"));
  for (int i = 0; i < 500; ++i) w->submit(attempt(kNow, 1));
  w->flush();

  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 500);
  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs);
  ASSERT_EQ(programs->size(), 1U);
  EXPECT_EQ((*programs)[0].attempts, 500);
  const auto stats = w->stats();
  EXPECT_EQ(stats.attemptsWritten, 500U);
  EXPECT_EQ(stats.attemptsDropped, 0U);
  EXPECT_EQ(stats.writeErrors, 0U);
  EXPECT_EQ(stats.lastError, "");
}

TEST(AttemptWriter, WritesWhatIsQueuedWhenDestroyed) {
  TempDir tmp;
  {
    auto w = startWriter(tmp.path());
    for (int i = 0; i < 100; ++i) w->submit(attempt());
  }
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 100);
}

TEST(AttemptWriter, DropsAndCountsAttemptsWhenTheQueueIsFull) {
  TempDir tmp;
  constexpr std::size_t kMaxQueued = 4;
  auto w = startWriter(tmp.path(), kMaxQueued);
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec("BEGIN IMMEDIATE");  // the writer's first batch waits for this write lock
  for (int i = 0; i < 100; ++i) w->submit(attempt());
  raw.exec("ROLLBACK");
  w->flush();

  const auto stats = w->stats();
  EXPECT_EQ(stats.attemptsWritten + stats.attemptsDropped, 100U);
  // At most one batch in hand and a full queue survive.
  EXPECT_GE(stats.attemptsDropped, 100U - 2 * kMaxQueued);
  EXPECT_EQ(stats.writeErrors, 0U);
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), static_cast<std::int64_t>(stats.attemptsWritten));
}

TEST(AttemptWriter, RetriesAFailedBatchAndKeepsRunning) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec(
      "CREATE TRIGGER fail_attempts BEFORE INSERT ON attempts "
      "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END");
  for (int i = 0; i < 3; ++i) w->submit(attempt());
  ASSERT_TRUE(waitFor([&] { return w->stats().writeErrors >= 1; }));
  const auto failed = w->stats();
  EXPECT_NE(failed.lastError.find("Failed to write attempts to '"), std::string::npos);
  EXPECT_NE(failed.lastError.find("simulated failure"), std::string::npos) << failed.lastError;

  raw.exec("DROP TRIGGER fail_attempts");
  w->submit(attempt());
  w->flush();
  const auto stats = w->stats();
  EXPECT_EQ(stats.attemptsWritten, 4U);
  EXPECT_EQ(stats.attemptsDropped, 0U);
  EXPECT_EQ(stats.lastError, "");
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 4);
}

TEST(AttemptWriter, DropsABatchAfterBoundedRetriesAndKeepsRunning) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec(
      "CREATE TRIGGER fail_attempts BEFORE INSERT ON attempts "
      "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END");
  w->submit(attempt());  // one attempt: one batch, whatever the thread's timing
  w->flush();
  auto stats = w->stats();
  EXPECT_EQ(stats.attemptsDropped, 1U);
  EXPECT_EQ(stats.attemptsWritten, 0U);
  EXPECT_EQ(stats.writeErrors, 6U);  // the first try and five retries

  raw.exec("DROP TRIGGER fail_attempts");
  w->submit(attempt());
  w->flush();
  stats = w->stats();
  EXPECT_EQ(stats.attemptsWritten, 1U);
  EXPECT_EQ(stats.lastError, "");
}

TEST(AttemptWriter, PrunesWithItsRetention) {
  TempDir tmp;
  const auto now = std::chrono::system_clock::now();
  {
    auto s = openStore(tmp.path());
    insert(*s, std::vector<AttemptRecord>(3, attempt(now - 48h)));
  }
  auto w = startWriter(tmp.path());
  for (int i = 0; i < 8; ++i) w->submit(attempt(now));
  w->setRetention(24h, 5);
  w->flush();

  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 5);
  AttemptQuery recent;
  recent.since = now - 1h;
  EXPECT_EQ(query(*s, recent).size(), 5U);

  w->setRetention(24h, 2);
  w->flush();
  EXPECT_EQ(count(*s), 2);
  EXPECT_EQ(w->stats().writeErrors, 0U);
}

}  // namespace
}  // namespace mailguard::store
