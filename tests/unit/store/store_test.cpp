// SqliteStore (the reader) and StoreWriter's records: rules, programs, attempts.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <iterator>
#include <string>

#include "store_test_util.hpp"

namespace mailguard::store {
namespace {

using namespace test;
using rules::ApprovalRule;
using rules::IdentityKind;
using rules::RuleAction;
using rules::Verdict;

const TimePoint kNow = TimePoint{std::chrono::seconds{1'700'000'000}};

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
                      Verdict verdict = Verdict::Hold, std::int64_t id = 0) {
  AttemptRecord a;
  a.id = id;
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

// Writes through the writer and waits for them.
void write(StoreWriter& w, const std::vector<AttemptRecord>& batch) {
  for (const auto& a : batch) w.submit(a);
  w.flush();
}

// Numbered 1..n, as guardd numbers its attempts.
std::vector<AttemptRecord> numbered(std::vector<AttemptRecord> batch, std::int64_t first = 1) {
  for (auto& a : batch) a.id = first++;
  return batch;
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

TEST(SqliteStore, CreatesStateDirAndSchemaAndKeepsDataAcrossReopen) {
  TempDir tmp;
  const auto dir = tmp.path() / "state";
  std::int64_t ruleId = 0;
  {
    auto s = openStore(dir);
    EXPECT_EQ(s->databasePath(), dir / "mailguard.db");
    auto w = startWriter(dir);
    auto id = addRule(*w, rule(RuleAction::Approve, "/usr/sbin/sendmail"));
    ASSERT_TRUE(id) << id.error().message;
    ruleId = id->ruleId;
    w->submit(program(7, "/usr/sbin/sendmail"));
    write(*w, {attempt(kNow, 7)});
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
  EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
}

TEST(SqliteStore, TheWriterCreatesAndMigratesTheDatabaseToo) {
  TempDir tmp;
  const auto dir = tmp.path() / "state";
  {
    auto w = startWriter(dir);
    write(*w, {attempt()});
  }
  auto s = openStore(dir);
  EXPECT_EQ(count(*s), 1);
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
}

// Every byte of the database and its WAL (and shm), as one string.
std::string filesOf(const std::filesystem::path& db) {
  std::string all;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::ifstream in(db.string() + suffix, std::ios::binary);
    all += std::string(std::istreambuf_iterator<char>(in), {});
  }
  return all;
}

TEST(SqliteStore, MasksPasswordsInCommandLinesItIsGiven) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  auto a = attempt();
  a.cmdline = "/usr/bin/swaks --auth-password s3cret -ap s3cret --to bob@example.org";
  write(*w, numbered({a}));
  auto s = openStore(tmp.path());
  const auto rows = query(*s, AttemptQuery{});
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].cmdline, "/usr/bin/swaks --auth-password *** -ap *** --to bob@example.org");
  w.reset();
  s.reset();
  EXPECT_EQ(filesOf(tmp.path() / "mailguard.db").find("s3cret"), std::string::npos);
}

TEST(SqliteStore, MigrationMasksPasswordsStoredBeforeAndLeavesNoCopyInTheFiles) {
  TempDir tmp;
  const auto file = tmp.path() / "mailguard.db";
  { auto w = startWriter(tmp.path()); }
  {
    // A database of the version before, holding what guardd stored unmasked then: one
    // short row, and one long enough to spill into overflow pages.
    RawDb raw(file);
    raw.exec(
        "ALTER TABLE rules DROP COLUMN only_to; ALTER TABLE rules DROP COLUMN allow_env; "
        "ALTER TABLE attempts DROP COLUMN channel; ALTER TABLE attempts DROP COLUMN queue_id; "
        "PRAGMA user_version = 3");
    raw.exec(
        "INSERT INTO attempts(time, cmdline, verdict) VALUES(1, 'curl -u me:s3cret "
        "smtps://me:s3cret@mail.example.org', 'hold'), (2, 'swaks --to a@b.example "
        "--auth-password s3cret " +
        std::string(6000, 'x') + "', 'allow'), (3, 'swaks -p 25', 'allow')");
  }
  ASSERT_NE(filesOf(file).find("s3cret"), std::string::npos) << "the test's premise";
  {
    auto s = openStore(tmp.path());
    RawDb raw(file);
    EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
    EXPECT_EQ(raw.text("SELECT cmdline FROM attempts WHERE time = 1"),
              "curl -u me:*** smtps://me:***@mail.example.org");
    EXPECT_EQ(raw.text("SELECT substr(cmdline, 1, 40) FROM attempts WHERE time = 2"),
              "swaks --to a@b.example --auth-password *");
    EXPECT_EQ(raw.text("SELECT cmdline FROM attempts WHERE time = 3"), "swaks -p 25");
    EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
    EXPECT_EQ(filesOf(file).find("s3cret"), std::string::npos) << "while open";
  }
  EXPECT_EQ(filesOf(file).find("s3cret"), std::string::npos) << "after closing";
}

TEST(SqliteStore, UsesWriteAheadLogAndPassesIntegrityCheck) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  write(*w, {attempt(), attempt()});
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
  auto w = StoreWriter::start(file / "state");
  ASSERT_FALSE(w);
  EXPECT_EQ(w.error().message.rfind("Failed to create '", 0), 0U) << w.error().message;
}

TEST(SqliteStore, RefusesASymlinkAtTheDatabasePath) {
  TempDir tmp;
  const auto elsewhere = tmp.path() / "elsewhere.db";
  { RawDb touch(elsewhere); }
  std::filesystem::create_symlink(elsewhere, tmp.path() / "mailguard.db");
  auto s = SqliteStore::open(tmp.path());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message.rfind("Failed to open '" + (tmp.path() / "mailguard.db").string(), 0),
            0U)
      << s.error().message;
  EXPECT_FALSE(StoreWriter::start(tmp.path()));
}

TEST(SqliteStore, KeepsTheDestinationsAnApprovalIsPinnedTo) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto pinned = rule(RuleAction::Approve, "/usr/bin/swaks");
  pinned.onlyTo = {*rules::parseDestination("127.0.0.2:25"),
                   *rules::parseDestination("[2001:db8::7]:587")};
  ASSERT_TRUE(addRule(*w, pinned));
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp")));
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 2U);
  EXPECT_EQ((*rules)[0].onlyTo, pinned.onlyTo);
  EXPECT_TRUE((*rules)[1].onlyTo.empty());
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("SELECT only_to FROM rules WHERE path = '/usr/bin/swaks'"),
            "127.0.0.2:25\n[2001:db8::7]:587\n");
}

TEST(SqliteStore, LeavesOutAnApprovalWhosePinsDoNotParseRatherThanWidenIt) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/swaks")));
  RawDb raw(s->databasePath());
  raw.exec("UPDATE rules SET only_to = 'mail.example.org' WHERE path = '/usr/bin/swaks'");
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  EXPECT_TRUE(rules->empty());
}

TEST(SqliteStore, KeepsTheCodeLoadingAnApprovalAllows) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto allowed = rule(RuleAction::Approve, "/usr/bin/perl", "/opt/b.pl");
  allowed.allowEnv = {"PERL5LIB", "-M"};
  ASSERT_TRUE(addRule(*w, allowed));
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp")));
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 2U);
  EXPECT_EQ((*rules)[0].allowEnv, (std::vector<std::string>{"PERL5LIB", "-M"}));
  EXPECT_TRUE((*rules)[1].allowEnv.empty());
}

TEST(SqliteStore, ARuleFromBeforeAllowEnvAllowsNothing) {
  TempDir tmp;
  {
    auto w = startWriter(tmp.path());
    ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp")));
  }
  {
    // The database as schema version 4 left it: no allow_env column.
    RawDb raw(tmp.path() / "mailguard.db");
    raw.exec(
        "ALTER TABLE rules DROP COLUMN allow_env; ALTER TABLE attempts DROP COLUMN channel; "
        "ALTER TABLE attempts DROP COLUMN queue_id; PRAGMA user_version = 4;");
  }
  auto s = openStore(tmp.path());
  auto rules = s->loadRules();
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->size(), 1U);
  EXPECT_EQ((*rules)[0].path, "/usr/bin/msmtp");
  EXPECT_TRUE((*rules)[0].allowEnv.empty());
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
}

TEST(SqliteStore, RulesAndProgramsFromBeforeKindsKeepTheirMeaningAndAttempts) {
  TempDir tmp;
  {
    // Schema version 7: rules unique by (path, script_path), programs without
    // binary_itself, an attempt of program 5.
    RawDb raw(tmp.path() / "mailguard.db");
    auto w = startWriter(tmp.path());
    ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/python3.11")));
    ASSERT_TRUE(addRule(*w, rule(RuleAction::Deny, "/usr/bin/perl", "/opt/b.pl")));
    ASSERT_TRUE(
        addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp"), program(5, "/usr/bin/msmtp")));
    w->flush();
  }
  {
    RawDb raw(tmp.path() / "mailguard.db");
    raw.exec(
        "PRAGMA foreign_keys = ON;"
        "INSERT INTO attempts(time, program_id, verdict) VALUES(1, 5, 'allow');"
        "CREATE TABLE r7(id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL, "
        "  path TEXT NOT NULL, sha256 TEXT NOT NULL DEFAULT '', script_path TEXT NOT NULL "
        "  DEFAULT '', script_sha256 TEXT NOT NULL DEFAULT '', created INTEGER NOT NULL, "
        "  only_to TEXT NOT NULL DEFAULT '', allow_env TEXT NOT NULL DEFAULT '', "
        "  UNIQUE(path, script_path));"
        "INSERT INTO r7 SELECT id, action, path, sha256, script_path, script_sha256, created, "
        "  only_to, allow_env FROM rules;"
        "DROP TABLE rules; ALTER TABLE r7 RENAME TO rules;"
        "PRAGMA user_version = 7;");
  }
  auto s = openStore(tmp.path());
  auto rules = s->loadRules();
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->size(), 3U);
  for (const auto& r : *rules) {
    EXPECT_EQ(r.uid, std::nullopt) << r.path << ": an earlier approval is for every user";
    EXPECT_EQ(r.kind, r.scriptPath.empty() ? IdentityKind::Program : IdentityKind::Script);
  }
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
  EXPECT_EQ(raw.text("SELECT program_id FROM attempts"), "5");
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM programs WHERE id = 5"), "1");
  // The rules' triggers are back: a change moves the version.
  const auto before = s->rulesVersion();
  auto w = startWriter(tmp.path());
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/curl")));
  ASSERT_TRUE(before);
  EXPECT_NE(s->rulesVersion().value(), *before);
}

TEST(SqliteStore, KeepsApprovalsForSeveralUsersAndKindsApart) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto forUser = [](ApprovalRule r, std::uint32_t uid) {
    r.uid = uid;
    return r;
  };
  auto inlineRule = rule(RuleAction::Approve, "/usr/bin/python3.11");
  inlineRule.kind = IdentityKind::Inline;
  ASSERT_TRUE(addRule(*w, forUser(inlineRule, 1000)));
  ASSERT_TRUE(addRule(*w, forUser(inlineRule, 1001)));
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/python3.11")));  // the binary
  ASSERT_TRUE(addRule(*w, forUser(rule(RuleAction::Approve, "/usr/bin/curl"), 1000)));
  // An approval for every user replaces the one for a single user.
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/curl")));
  auto rules = s->loadRules();
  ASSERT_TRUE(rules) << rules.error().message;
  ASSERT_EQ(rules->size(), 4U);
  EXPECT_EQ((*rules)[0].kind, IdentityKind::Inline);
  EXPECT_EQ((*rules)[0].uid, 1000U);
  EXPECT_EQ((*rules)[1].uid, 1001U);
  EXPECT_EQ((*rules)[2].kind, IdentityKind::Program);
  EXPECT_EQ((*rules)[3].path, "/usr/bin/curl");
  EXPECT_EQ((*rules)[3].uid, std::nullopt);
  // A denial of inline code replaces both users' approvals, not the binary's.
  auto deny = rule(RuleAction::Deny, "/usr/bin/python3.11");
  deny.kind = IdentityKind::Inline;
  ASSERT_TRUE(addRule(*w, deny));
  rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 3U);
  // Forgetting one kind leaves the others.
  auto removed = removeRules(*w, "/usr/bin/python3.11", "", IdentityKind::Inline);
  ASSERT_TRUE(removed && *removed);
  rules = s->loadRules();
  ASSERT_EQ(rules->size(), 2U);
  EXPECT_EQ((*rules)[0].kind, IdentityKind::Program);
}

TEST(SqliteStore, KeepsAnAttemptsChannelAndQueueId) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto mta = attempt();
  mta.channel = "mta";
  mta.queueId = "1rXyZa-000Abc-7Q";
  mta.src = "/usr/sbin/exim4";
  mta.srcPort = 0;
  mta.dst = "example.org";
  mta.dstPort = 0;
  write(*w, numbered({attempt(), mta}));
  const auto rows = query(*s, AttemptQuery{});
  ASSERT_EQ(rows.size(), 2U);
  EXPECT_EQ(rows[0].channel, "mta");
  EXPECT_EQ(rows[0].queueId, "1rXyZa-000Abc-7Q");
  EXPECT_EQ(rows[0].src, "/usr/sbin/exim4");
  EXPECT_EQ(rows[1].channel, "");
  EXPECT_EQ(rows[1].queueId, "");
}

TEST(SqliteStore, AttemptsFromBeforeTheChannelColumnsAreConnections) {
  TempDir tmp;
  {
    auto w = startWriter(tmp.path());
    write(*w, numbered({attempt()}));
  }
  {
    // The database as schema version 6 left it: no channel or queue_id.
    RawDb raw(tmp.path() / "mailguard.db");
    raw.exec(
        "ALTER TABLE attempts DROP COLUMN channel; ALTER TABLE attempts DROP COLUMN queue_id; "
        "PRAGMA user_version = 6;");
  }
  auto s = openStore(tmp.path());
  const auto rows = query(*s, AttemptQuery{});
  ASSERT_EQ(rows.size(), 1U);
  EXPECT_EQ(rows[0].channel, "");
  EXPECT_EQ(rows[0].queueId, "");
  EXPECT_EQ(rows[0].dst, "192.0.2.25");
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA user_version"), "9");
  EXPECT_EQ(raw.text("SELECT COUNT(*) FROM pragma_table_info('attempts') WHERE name IN "
                     "('channel', 'queue_id')"),
            "2");
}

TEST(SqliteStore, AddRuleReplacesTheEarlierRuleForTheSamePathAndScript) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto first = addRule(*w, rule(RuleAction::Approve, "/usr/bin/python3.11"));
  auto script = addRule(*w, rule(RuleAction::Approve, "/usr/bin/python3.11", "/opt/a.py"));
  auto replaced = addRule(*w, rule(RuleAction::Deny, "/usr/bin/python3.11"));
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(script) << script.error().message;
  ASSERT_TRUE(replaced) << replaced.error().message;
  EXPECT_NE(replaced->ruleId, first->ruleId);
  EXPECT_EQ(first->programId, 0);

  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 2U);
  EXPECT_EQ((*rules)[0].id, script->ruleId);
  EXPECT_EQ((*rules)[0].scriptPath, "/opt/a.py");
  EXPECT_EQ((*rules)[0].action, RuleAction::Approve);
  EXPECT_EQ((*rules)[1].id, replaced->ruleId);
  EXPECT_EQ((*rules)[1].scriptPath, "");
  EXPECT_EQ((*rules)[1].action, RuleAction::Deny);
}

TEST(SqliteStore, RemoveRulesDeletesOnlyThatPathAndScript) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/perl")));
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/perl", "/opt/b.pl")));
  auto removed = removeRules(*w, "/usr/bin/perl", "");
  ASSERT_TRUE(removed) << removed.error().message;
  EXPECT_TRUE(*removed);
  auto again = removeRules(*w, "/usr/bin/perl", "");
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
  auto rules = s->loadRules();
  ASSERT_TRUE(rules);
  ASSERT_EQ(rules->size(), 1U);
  EXPECT_EQ((*rules)[0].scriptPath, "/opt/b.pl");
}

TEST(SqliteStore, NoticesRulesChangedByTheWriter) {
  TempDir tmp;
  auto reader = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto v0 = reader->rulesVersion();
  ASSERT_TRUE(v0) << v0.error().message;
  EXPECT_EQ(*reader->rulesVersion(), *v0);

  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/sbin/exim4")));
  auto v1 = reader->rulesVersion();
  ASSERT_TRUE(v1);
  EXPECT_NE(*v1, *v0);
  EXPECT_EQ(*reader->rulesVersion(), *v1);

  ASSERT_TRUE(removeRules(*w, "/usr/sbin/exim4", ""));
  EXPECT_NE(*reader->rulesVersion(), *v1);
}

TEST(SqliteStore, KeepsRulesVersionWhenAttemptsAndProgramsAreWritten) {
  TempDir tmp;
  auto reader = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/sbin/postfix")));
  const auto v0 = *reader->rulesVersion();

  w->submit(program(1, "/usr/bin/curl"));
  w->submit(attempt(kNow, 1));
  w->setQuarantined(1, true);
  w->submit(std::vector<ProbeRow>{{"192.0.2.1", 25, 1, kNow, kNow}});
  w->flush();
  EXPECT_EQ(*reader->rulesVersion(), v0);
}

TEST(SqliteStore, PagesAttemptsNewestFirst) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  const auto batch = numbered(std::vector<AttemptRecord>(25, attempt()));
  write(*w, batch);

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

TEST(SqliteStore, AssignsIdsToUnnumberedAttemptsAndReportsTheLastOne) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  EXPECT_EQ(*s->lastAttemptId(), 0);
  auto w = startWriter(tmp.path());
  write(*w, {attempt(kNow, {}, Verdict::Hold, 41), attempt(), attempt()});
  EXPECT_EQ(ids(query(*s, {})), (std::vector<std::int64_t>{43, 42, 41}));
  EXPECT_EQ(*s->lastAttemptId(), 43);
}

TEST(SqliteStore, CapsAttemptPagesAtOneThousand) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  write(*w, std::vector<AttemptRecord>(1100, attempt()));
  AttemptQuery q;
  q.limit = 5000;
  EXPECT_EQ(query(*s, q).size(), 1000U);
}

TEST(SqliteStore, FiltersAttemptsByProgramVerdictAndTime) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  w->submit(program(1, "/usr/bin/a"));
  w->submit(program(2, "/usr/bin/b"));
  const auto batch =
      numbered({attempt(kNow - 2h, 1, Verdict::Allow), attempt(kNow - 1h, 2, Verdict::Hold),
                attempt(kNow, 1, Verdict::Reject), attempt(kNow + 1h, 1, Verdict::Allow),
                attempt(kNow + 2h, {}, Verdict::Hold)});
  write(*w, batch);

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
  auto w = startWriter(tmp.path());
  write(*w, {attempt(kNow, 999)});
  auto all = query(*s, {});
  ASSERT_EQ(all.size(), 1U);
  EXPECT_FALSE(all[0].programId.has_value());
  EXPECT_EQ(w->stats().attemptsWritten, 1U);
}

TEST(SqliteStore, BoundsTheStoredCommandLine) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto a = attempt();
  a.cmdline = std::string(5000, 'x');
  write(*w, {a});
  EXPECT_EQ(query(*s, {}).at(0).cmdline.size(), 4096U);
}

TEST(SqliteStore, LoadProgramsCountsAttemptsPerProgram) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  w->submit(program(1, "/usr/bin/a", kNow - 24h));
  w->submit(program(2, "/usr/bin/b", kNow - 24h));
  write(*w, {attempt(kNow - 3h, 1), attempt(kNow - 1h, 1), attempt(kNow - 2h, 1), attempt()});

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
  auto w = startWriter(tmp.path());
  w->submit(program(1, "/usr/bin/a", kNow));

  auto byId = program(1, "/usr/bin/a", kNow + 1h);
  byId.uid = 33;
  byId.quarantined = true;
  w->submit(byId);

  auto byIdentity = program(5, "/usr/bin/a", kNow + 2h);  // same identity, other id
  byIdentity.uid = 44;
  w->submit(byIdentity);
  w->flush();
  EXPECT_EQ(w->stats().lastError, "");

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

TEST(SqliteStore, SetsQuarantineAndIgnoresAnUnknownProgram) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  w->submit(program(3, "/tmp/x"));
  w->setQuarantined(3, true);
  w->setQuarantined(4, true);
  w->flush();
  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs);
  ASSERT_EQ(programs->size(), 1U);
  EXPECT_TRUE(programs->at(0).quarantined);
  EXPECT_EQ(w->stats().writeErrors, 0U);
  w->setQuarantined(3, false);
  w->flush();
  EXPECT_FALSE(s->loadPrograms()->at(0).quarantined);
}

TEST(SqliteStore, PrunesAttemptsByAgeAndCount) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  const auto now = std::chrono::system_clock::now();
  std::vector<AttemptRecord> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(attempt(now - 240h));
  for (int i = 0; i < 7; ++i) batch.push_back(attempt(now));
  batch = numbered(batch);
  write(*w, batch);

  w->setRetention(24h, 1000);
  w->flush();
  EXPECT_EQ(count(*s), 7);

  w->setRetention(24h * 365, 4);
  w->flush();
  EXPECT_EQ(ids(query(*s, {})), (std::vector{batch[9].id, batch[8].id, batch[7].id, batch[6].id}));

  w->setRetention(24h * 365, 0);
  w->flush();
  EXPECT_EQ(count(*s), 0);
  EXPECT_EQ(w->stats().writeErrors, 0U);
}

// RLIMIT_FSIZE makes the WAL's growth fail (EFBIG, SQLITE_IOERR_WRITE): an error value,
// and the writer works again once the limit is lifted.
TEST(StoreWriter, ReportsAWriteErrorAndWorksAgainAfterwards) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* oldHandler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 256 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);

  auto big = attempt();
  big.cmdline = std::string(4000, 'y');
  for (int i = 0; i < 200 && w->stats().writeErrors == 0; ++i) {
    for (int k = 0; k < 10; ++k) w->submit(big);
    // Waits for the first failure to show, not for its retries to run out.
    waitFor(
        [&] { return w->stats().writeErrors > 0 || w->stats().attemptsWritten >= 10U * (i + 1); });
  }
  const auto failed = w->stats();
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old), 0);
  std::signal(SIGXFSZ, oldHandler);

  ASSERT_GT(failed.writeErrors, 0U);
  EXPECT_EQ(failed.lastError.rfind(
                "Failed to write attempts to '" + s->databasePath().string() + "': ", 0),
            0U)
      << failed.lastError;
  // The failed batch is retried and, with room again, written.
  write(*w, std::vector<AttemptRecord>(10, big));
  const auto stats = w->stats();
  EXPECT_EQ(stats.lastError, "");
  EXPECT_EQ(count(*s), static_cast<std::int64_t>(stats.attemptsWritten));
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/sbin/sendmail")));
  RawDb raw(s->databasePath());
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST(StoreWriter, KeepsABatchThroughAFullDiskAndAnAddRuleFailsCleanly) {
  TempDir tmp;
  FullDiskVfs vfs;
  {
    auto w = startWriter(tmp.path());
    write(*w, {attempt()});
    FullDiskVfs::full = true;
    w->submit(attempt());
    ASSERT_TRUE(waitFor([&] { return w->stats().writeErrors >= 1; }));
    EXPECT_NE(w->stats().lastError.find("database or disk is full"), std::string::npos);
    FullDiskVfs::full = false;
    w->flush();
    EXPECT_EQ(w->stats().attemptsWritten, 2U);
    EXPECT_EQ(w->stats().lastError, "");

    FullDiskVfs::full = true;
    auto failed = addRule(*w, rule(RuleAction::Approve, "/usr/sbin/sendmail"));
    FullDiskVfs::full = false;
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error().message, "Failed to add a rule to '" +
                                          (tmp.path() / "mailguard.db").string() +
                                          "': database or disk is full");
    ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/sbin/sendmail")));
  }
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 2);
  EXPECT_EQ(s->loadRules()->size(), 1U);
  RawDb raw(tmp.path() / "mailguard.db");
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST(StoreWriter, WritesEverythingSubmittedBeforeFlush) {
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

TEST(StoreWriter, WritesWhatIsQueuedWhenDestroyed) {
  TempDir tmp;
  bool ruleDone = false;
  {
    auto w = startWriter(tmp.path());
    for (int i = 0; i < 100; ++i) w->submit(attempt());
    w->addRule(rule(RuleAction::Deny, "/usr/bin/nc"), std::nullopt,
               [&](Result<RuleWritten> r) { ruleDone = r.has_value(); });
  }
  EXPECT_TRUE(ruleDone);
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), 100);
  EXPECT_EQ(s->loadRules()->size(), 1U);
}

TEST(StoreWriter, DropsAndCountsAttemptsWhenTheQueueIsFullButNeverADurableWrite) {
  TempDir tmp;
  constexpr std::size_t kMaxQueued = 4;
  auto w = startWriter(tmp.path(), kMaxQueued);
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec("BEGIN IMMEDIATE");  // the writer's first batch waits for this write lock
  for (int i = 0; i < 100; ++i) w->submit(attempt());
  std::optional<Result<RuleWritten>> added;
  w->addRule(rule(RuleAction::Approve, "/usr/sbin/exim4"), std::nullopt,
             [&](Result<RuleWritten> r) { added.emplace(std::move(r)); });
  raw.exec("ROLLBACK");
  w->flush();

  const auto stats = w->stats();
  EXPECT_EQ(stats.attemptsWritten + stats.attemptsDropped, 100U);
  // At most one batch in hand and a full queue survive.
  EXPECT_GE(stats.attemptsDropped, 100U - 2 * kMaxQueued);
  EXPECT_EQ(stats.writeErrors, 0U);
  ASSERT_TRUE(added.has_value());
  EXPECT_TRUE(*added);
  auto s = openStore(tmp.path());
  EXPECT_EQ(count(*s), static_cast<std::int64_t>(stats.attemptsWritten));
  EXPECT_EQ(s->loadRules()->size(), 1U);
}

TEST(StoreWriter, RetriesAFailedBatchAndKeepsRunning) {
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

TEST(StoreWriter, DropsABatchAfterBoundedRetriesAndKeepsRunning) {
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

TEST(StoreWriter, PrunesWithItsRetention) {
  TempDir tmp;
  const auto now = std::chrono::system_clock::now();
  {
    auto w = startWriter(tmp.path());
    write(*w, std::vector<AttemptRecord>(3, attempt(now - 48h)));
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

// An approval is one transaction: the rule and the program row it shows up as.
TEST(StoreWriter, AddRuleCommitsTheRuleAndItsProgramTogether) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  auto p = program(0, "/usr/bin/msmtp");  // no id yet: the store assigns one
  auto added = addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp"), p);
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_GT(added->ruleId, 0);
  EXPECT_GT(added->programId, 0);
  auto programs = s->loadPrograms();
  ASSERT_TRUE(programs);
  ASSERT_EQ(programs->size(), 1U);
  EXPECT_EQ(programs->at(0).id, added->programId);
  EXPECT_EQ(programs->at(0).identity.path, "/usr/bin/msmtp");

  // The same identity under another id is the same row, and keeps its id.
  auto again = addRule(*w, rule(RuleAction::Deny, "/usr/bin/msmtp"), program(99, "/usr/bin/msmtp"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->programId, added->programId);
  EXPECT_EQ(s->loadPrograms()->size(), 1U);
  EXPECT_EQ(s->loadRules()->size(), 1U);
}

TEST(StoreWriter, AddRuleWritesNeitherRowWhenTheProgramRowFails) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec(
      "CREATE TRIGGER fail_programs BEFORE INSERT ON programs "
      "BEGIN SELECT RAISE(ABORT, 'simulated failure'); END");
  const auto v0 = *s->rulesVersion();
  auto failed =
      addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp"), program(5, "/usr/bin/msmtp"));
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().message.find("simulated failure"), std::string::npos);
  EXPECT_EQ(failed.error().message.rfind("Failed to add a rule to '", 0), 0U);
  EXPECT_TRUE(s->loadRules()->empty()) << "the rule must roll back with its program row";
  EXPECT_TRUE(s->loadPrograms()->empty());
  EXPECT_EQ(*s->rulesVersion(), v0);
  EXPECT_NE(w->stats().lastError.find("simulated failure"), std::string::npos);

  raw.exec("DROP TRIGGER fail_programs");
  ASSERT_TRUE(
      addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp"), program(5, "/usr/bin/msmtp")));
  EXPECT_EQ(s->loadRules()->size(), 1U);
  EXPECT_EQ(s->loadPrograms()->size(), 1U);
  EXPECT_EQ(w->stats().lastError, "");
}

TEST(StoreWriter, AddRuleWritesNeitherRowOnAFullDisk) {
  TempDir tmp;
  FullDiskVfs vfs;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  FullDiskVfs::full = true;
  auto failed =
      addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp"), program(5, "/usr/bin/msmtp"));
  FullDiskVfs::full = false;
  ASSERT_FALSE(failed);
  EXPECT_TRUE(s->loadRules()->empty());
  EXPECT_TRUE(s->loadPrograms()->empty());
  RawDb raw(tmp.path() / "mailguard.db");
  EXPECT_EQ(raw.text("PRAGMA integrity_check"), "ok");
}

TEST(StoreWriter, DoneRunsAfterTheRowsAreReadableFromAnotherConnection) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  RawDb raw(tmp.path() / "mailguard.db");
  std::string rulesSeen, programsSeen, firewallSeen;
  w->addRule(rule(RuleAction::Approve, "/usr/bin/msmtp"), program(0, "/usr/bin/msmtp"),
             [&](Result<RuleWritten> r) {
               ASSERT_TRUE(r);
               rulesSeen = raw.text("SELECT COUNT(*) FROM rules");
               programsSeen = raw.text("SELECT COUNT(*) FROM programs WHERE id = " +
                                       std::to_string(r->programId));
             });
  w->saveFirewall(StoredFirewall{true, {}, {}}, [&](Result<void> r) {
    ASSERT_TRUE(r);
    firewallSeen = raw.text("SELECT enabled FROM firewall");
  });
  w->flush();
  EXPECT_EQ(rulesSeen, "1");
  EXPECT_EQ(programsSeen, "1");
  EXPECT_EQ(firewallSeen, "1");
}

TEST(StoreWriter, RecordsAfterAnApprovalSeeItsProgramRow) {
  TempDir tmp;
  auto s = openStore(tmp.path());
  auto w = startWriter(tmp.path());
  std::int64_t programId = 0;
  w->addRule(rule(RuleAction::Approve, "/usr/bin/msmtp"), program(12, "/usr/bin/msmtp"),
             [&](Result<RuleWritten> r) { programId = r ? r->programId : -1; });
  w->submit(attempt(kNow, 12));  // queued behind the approval, possibly in the same wake-up
  w->flush();
  EXPECT_EQ(programId, 12);
  EXPECT_EQ(query(*s, {}).at(0).programId, 12);
}

TEST(StoreWriter, FlushWaitsForDurableWrites) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<bool> firstDone{false}, secondDone{false}, flushed{false};
  w->saveDetectorState({{"a/0", "{}"}}, [&](Result<void>) {
    std::unique_lock lock(mu);
    cv.wait_for(lock, 5s, [&] { return release; });
    firstDone = true;
  });
  w->saveDetectorState({{"b/0", "{}"}}, [&](Result<void>) { secondDone = true; });
  bool bothDoneAtFlush = false;
  std::thread flusher([&] {
    w->flush();
    bothDoneAtFlush = firstDone && secondDone;
    flushed = true;
  });
  // flush() must not return while a durable write submitted before it is unfinished.
  EXPECT_FALSE(waitFor([&] { return flushed.load(); }, 100ms));
  {
    const std::lock_guard lock(mu);
    release = true;
  }
  cv.notify_all();
  flusher.join();
  EXPECT_TRUE(bothDoneAtFlush);
}

TEST(StoreWriter, LastErrorClearsOnlyOnceAWriteOfTheSameKindSucceeds) {
  TempDir tmp;
  auto w = startWriter(tmp.path());
  RawDb raw(tmp.path() / "mailguard.db");
  raw.exec(
      "CREATE TRIGGER fail_services BEFORE INSERT ON firewall_services "
      "BEGIN SELECT RAISE(ABORT, 'no room for services'); END");
  const StoredFirewall fw{true, {{"ssh", false}}, {}};
  auto failed = await<void>(*w, [&](auto done) { w->saveFirewall(fw, std::move(done)); });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message.rfind("Failed to save the firewall in '", 0), 0U);
  EXPECT_EQ(w->stats().lastError, failed.error().message);
  EXPECT_EQ(w->stats().writeErrors, 1U);

  // Other kinds of writes succeed: the firewall's error stays, the condition is not over.
  write(*w, {attempt()});
  ASSERT_TRUE(addRule(*w, rule(RuleAction::Approve, "/usr/bin/msmtp")));
  EXPECT_EQ(w->stats().lastError, failed.error().message);

  raw.exec("DROP TRIGGER fail_services");
  auto saved = await<void>(*w, [&](auto done) { w->saveFirewall(fw, std::move(done)); });
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(w->stats().lastError, "");
  EXPECT_EQ(w->stats().writeErrors, 1U);
}

}  // namespace
}  // namespace mailguard::store
