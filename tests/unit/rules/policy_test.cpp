#include "mailguard/rules/policy.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailguard::rules {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');
const std::string kHashC(64, 'c');
const std::string kHashD(64, 'd');

ProgramIdentity program(std::string path, std::string sha, bool trusted = false) {
  ProgramIdentity id;
  id.path = std::move(path);
  id.sha256 = std::move(sha);
  id.pathTrusted = trusted;
  return id;
}

ProgramIdentity script(std::string scriptPath, std::string scriptSha) {
  ProgramIdentity id = program("/usr/bin/python3.11", kHashA, true);
  id.scriptPath = std::move(scriptPath);
  id.scriptSha256 = std::move(scriptSha);
  return id;
}

ApprovalRule ruleFor(std::int64_t id, RuleAction action, const ProgramIdentity& p) {
  ApprovalRule rule;
  rule.id = id;
  rule.action = action;
  rule.path = p.path;
  rule.sha256 = p.sha256;
  rule.scriptPath = p.scriptPath;
  rule.scriptSha256 = p.scriptSha256;
  rule.kind = p.kind();
  return rule;
}

// The interpreter running code typed or piped in: `python3 -c`, `python3 -`, a REPL.
ProgramIdentity inlineCode() { return program("/usr/bin/python3.11", kHashA, true); }

// The interpreter as a file, as `guardctl approve /usr/bin/python3` names it.
ProgramIdentity interpreterItself() {
  ProgramIdentity id = inlineCode();
  id.binaryItself = true;
  return id;
}

ApprovalRule forUser(ApprovalRule rule, std::uint32_t uid, std::string name) {
  rule.uid = uid;
  rule.userName = std::move(name);
  return rule;
}

TEST(PolicyDecision, HoldsWhenNoProgramCouldBeFound) {
  const Decision d = decide(std::nullopt, false, {});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, StartsWith("could not attribute"));
  EXPECT_EQ(d.ruleId, std::nullopt);
}

TEST(PolicyDecision, HoldsUnknownProgramAndRecordsReason) {
  const Decision d = decide(program("/usr/bin/thunderbird", kHashA, true), false, {});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet");
  EXPECT_EQ(d.ruleId, std::nullopt);
}

TEST(PolicyDecision, AllowsApprovedProgramWithTheSameHash) {
  const ProgramIdentity tb = program("/usr/bin/thunderbird", kHashA, true);
  const Decision d = decide(tb, false, {ruleFor(7, RuleAction::Approve, tb)});
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.ruleId, 7);
}

TEST(PolicyDecision, RejectsQuarantinedProgramEvenWhenApproved) {
  const ProgramIdentity tb = program("/usr/bin/thunderbird", kHashA, true);
  const Decision d = decide(tb, true, {ruleFor(7, RuleAction::Approve, tb)});
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_THAT(d.reason, StartsWith("quarantined"));
}

TEST(PolicyDecision, HoldsUnattributedConnectionBeforeLookingAtQuarantine) {
  EXPECT_EQ(decide(std::nullopt, true, {}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, RejectsDeniedProgramByPathWhateverItsHash) {
  const ProgramIdentity bot = program("/home/u/bin/bot", kHashA);
  ApprovalRule deny = ruleFor(3, RuleAction::Deny, bot);
  deny.sha256 = kHashB;
  const Decision d = decide(bot, false, {deny});
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.ruleId, 3);
}

TEST(PolicyDecision, RejectsDeniedProgramCopiedToAnotherPath) {
  const ProgramIdentity bot = program("/home/u/bin/bot", kHashA);
  const ProgramIdentity copy = program("/tmp/thunderbird", kHashA);
  const Decision d = decide(copy, false, {ruleFor(3, RuleAction::Deny, bot)});
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.ruleId, 3);
  EXPECT_THAT(d.reason, HasSubstr("/home/u/bin/bot"));
}

TEST(PolicyDecision, PrefersADenialOverAnApproval) {
  const ProgramIdentity p = program("/usr/bin/mutt", kHashA, true);
  const Decision d =
      decide(p, false, {ruleFor(1, RuleAction::Approve, p), ruleFor(2, RuleAction::Deny, p)});
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.ruleId, 2);
}

TEST(PolicyDecision, DenyingACopyElsewhereLeavesTheApprovedOriginalAlone) {
  const ProgramIdentity client = program("/usr/bin/thunderbird", kHashA, true);
  const ProgramIdentity copy = program("/tmp/thunderbird", kHashA);
  const std::vector<ApprovalRule> rules{ruleFor(1, RuleAction::Approve, client),
                                        ruleFor(2, RuleAction::Deny, copy)};
  EXPECT_EQ(decide(client, false, rules).verdict, Verdict::Allow);
  EXPECT_EQ(decide(copy, false, rules).verdict, Verdict::Reject);
  // A third copy matches the denial by content: nothing approved it where it is.
  const Decision third = decide(program("/home/u/tb", kHashA), false, rules);
  EXPECT_EQ(third.verdict, Verdict::Reject);
  EXPECT_EQ(third.ruleId, 2);
}

TEST(PolicyDecision, RejectsDeletedDeniedProgramByPath) {
  ProgramIdentity bot = program("/home/u/bin/bot", kHashA);
  ApprovalRule deny = ruleFor(3, RuleAction::Deny, bot);
  deny.sha256 = kHashB;
  bot.deleted = true;
  EXPECT_EQ(decide(bot, false, {deny}).verdict, Verdict::Reject);
}

TEST(PolicyDecision, KeepsApprovalAcrossAnUpgradeInATrustedPath) {
  const ProgramIdentity old = program("/usr/bin/thunderbird", kHashA, true);
  const ProgramIdentity upgraded = program("/usr/bin/thunderbird", kHashB, true);
  const Decision d = decide(upgraded, false, {ruleFor(4, RuleAction::Approve, old)});
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.ruleId, 4);
}

TEST(PolicyDecision, HoldsChangedProgramInAnUntrustedPath) {
  const ProgramIdentity old = program("/home/u/bin/mailer", kHashA, false);
  const ProgramIdentity changed = program("/home/u/bin/mailer", kHashB, false);
  const Decision d = decide(changed, false, {ruleFor(4, RuleAction::Approve, old)});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, StartsWith("changed since it was approved"));
  EXPECT_EQ(d.ruleId, 4);
}

TEST(PolicyDecision, AllowsUnchangedProgramInAnUntrustedPath) {
  const ProgramIdentity p = program("/home/u/bin/mailer", kHashA, false);
  EXPECT_EQ(decide(p, false, {ruleFor(4, RuleAction::Approve, p)}).verdict, Verdict::Allow);
}

TEST(PolicyDecision, NeverAllowsAChangedDeletedExecutableByPath) {
  const ProgramIdentity old = program("/usr/bin/thunderbird", kHashA, true);
  ProgramIdentity gone = program("/usr/bin/thunderbird", kHashB, true);
  gone.deleted = true;
  const Decision d = decide(gone, false, {ruleFor(4, RuleAction::Approve, old)});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("deleted"));
}

TEST(PolicyDecision, AllowsADeletedExecutableWhoseHashStillMatches) {
  // A mail client still running after its package was upgraded underneath it.
  ProgramIdentity running = program("/usr/bin/thunderbird", kHashA, true);
  const ApprovalRule approve = ruleFor(4, RuleAction::Approve, running);
  running.deleted = true;
  EXPECT_EQ(decide(running, false, {approve}).verdict, Verdict::Allow);
}

TEST(PolicyDecision, NeverAllowsAChangedProgramInAnUnsafeLocationByPath) {
  // Even if the facts claim a trusted path: /tmp is never one.
  const ProgramIdentity old = program("/tmp/mailer", kHashA, true);
  const ProgramIdentity changed = program("/tmp/mailer", kHashB, true);
  const Decision d = decide(changed, false, {ruleFor(4, RuleAction::Approve, old)});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("any user can write"));
}

TEST(PolicyDecision, NeverAllowsAChangedScriptInAnUnsafeLocationByPath) {
  const ProgramIdentity old = script("/home/u/.cache/a.py", kHashB);
  ProgramIdentity changed = script("/home/u/.cache/a.py", kHashC);
  EXPECT_EQ(decide(changed, false, {ruleFor(4, RuleAction::Approve, old)}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, DoesNotApproveACopyOfAnApprovedProgramElsewhere) {
  const ProgramIdentity tb = program("/usr/bin/thunderbird", kHashA, true);
  const ProgramIdentity copy = program("/home/u/.cache/thunderbird", kHashA, false);
  const Decision d = decide(copy, false, {ruleFor(4, RuleAction::Approve, tb)});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason,
            "not approved yet (same content as the approved /usr/bin/thunderbird, at another "
            "path; it runs from a location any user can write to)");
}

// what an identity attack looks like in the record, since the attempt
// keeps only the path and the reason.
TEST(PolicyDecision, NoApprovalAppliesToAScriptInDoubtEvenWithTheSameHash) {
  const ProgramIdentity approved = script("/srv/news.py", kHashB);
  ProgramIdentity doubted = approved;
  doubted.scriptDoubt = "its script is named by a relative path (news.py)";
  const Decision d = decide(doubted, false, {ruleFor(4, RuleAction::Approve, approved)});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("does not apply: its script is named by a relative path"));
  EXPECT_EQ(d.ruleId, std::optional<std::int64_t>{4});
  EXPECT_EQ(stateOf(doubted, false, {ruleFor(4, RuleAction::Approve, approved)}),
            ProgramState::Pending);
}

TEST(PolicyDecision, ADenialStillAppliesToAScriptInDoubt) {
  ProgramIdentity doubted = script("/srv/news.py", kHashB);
  doubted.scriptDoubt = "its script changed after the program started";
  EXPECT_EQ(decide(doubted, false, {ruleFor(5, RuleAction::Deny, doubted)}).verdict,
            Verdict::Reject);
}

TEST(PolicyDecision, AScriptInDoubtWithNoApprovalSaysWhyInItsNote) {
  ProgramIdentity doubted = script("/home/ann/bot.py", kHashC);
  doubted.scriptDoubt = "its script changed after the program started";
  const Decision d = decide(doubted, false, {});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("not approved yet (its script changed after"));
}

TEST(PolicyDecision, AScriptSeenThroughAnotherMountNamespaceNeedsTheApprovedContent) {
  const ProgramIdentity approved = script("/srv/news.py", kHashB);
  ProgramIdentity other = script("/srv/news.py", kHashC);
  other.foreignView = true;
  other.pathTrusted = false;
  const Decision held = decide(other, false, {ruleFor(6, RuleAction::Approve, approved)});
  EXPECT_EQ(held.verdict, Verdict::Hold);
  EXPECT_THAT(held.reason, HasSubstr("another mount namespace"));
  ProgramIdentity same = approved;
  same.foreignView = true;
  same.pathTrusted = false;
  EXPECT_EQ(decide(same, false, {ruleFor(6, RuleAction::Approve, approved)}).verdict,
            Verdict::Allow);
}

TEST(PolicyDecision, NamesADeletedUnapprovedExecutableInTheReason) {
  ProgramIdentity bot = program("/home/u/bin/client", kHashC);
  bot.deleted = true;
  const Decision d =
      decide(bot, false, {ruleFor(4, RuleAction::Approve, program("/opt/mail/client", kHashA))});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet (the executable was deleted)");
}

TEST(PolicyDecision, RenamedDifferentProgramGetsNoNoteOfApprovedContent) {
  // Same file name as the approved client, other content: nothing ties it to the client.
  const ProgramIdentity fake = program("/home/u/bin/client", kHashC);
  const Decision d =
      decide(fake, false, {ruleFor(4, RuleAction::Approve, program("/opt/mail/client", kHashA))});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet");
}

TEST(PolicyDecision, SaysWhenAnAllowedProcessRunsAReplacedFile) {
  ProgramIdentity running = program("/home/u/bin/mailer", kHashA);
  const ApprovalRule approve = ruleFor(4, RuleAction::Approve, running);
  running.deleted = true;
  const Decision d = decide(running, false, {approve});
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_THAT(d.reason, StartsWith("approved ("));
  EXPECT_THAT(d.reason, HasSubstr("replaced or deleted since it started"));
  running.deleted = false;
  EXPECT_EQ(decide(running, false, {approve}).reason, "approved");
}

TEST(PolicyDecision, ApprovingOneScriptDoesNotApproveAnother) {
  const ProgramIdentity a = script("/home/u/a.py", kHashB);
  const ProgramIdentity b = script("/home/u/b.py", kHashC);
  const std::vector<ApprovalRule> rules{ruleFor(5, RuleAction::Approve, a)};
  EXPECT_EQ(decide(a, false, rules).verdict, Verdict::Allow);
  EXPECT_EQ(decide(b, false, rules).verdict, Verdict::Hold);
}

TEST(PolicyDecision, ApprovingAScriptDoesNotApproveTheBareInterpreter) {
  const ProgramIdentity a = script("/home/u/a.py", kHashB);
  const ProgramIdentity bare = program("/usr/bin/python3.11", kHashA, true);
  EXPECT_EQ(decide(bare, false, {ruleFor(5, RuleAction::Approve, a)}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, HoldsAnApprovedScriptWhoseContentChangedInAnUntrustedPlace) {
  const ProgramIdentity old = script("/home/u/a.py", kHashB);
  ProgramIdentity changed = script("/home/u/a.py", kHashC);
  changed.pathTrusted = false;  // the script is the user's own file
  EXPECT_EQ(decide(changed, false, {ruleFor(5, RuleAction::Approve, old)}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, HoldsAnApprovedScriptThatCouldNotBeRead) {
  const ProgramIdentity old = script("/home/u/a.py", "");
  ProgramIdentity now = script("/home/u/a.py", "");
  now.pathTrusted = false;
  EXPECT_EQ(decide(now, false, {ruleFor(5, RuleAction::Approve, old)}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, RejectsADeniedScriptCopiedElsewhere) {
  const ProgramIdentity bot = script("/home/u/bot.py", kHashD);
  const ProgramIdentity copy = script("/var/tmp/innocent.py", kHashD);
  EXPECT_EQ(decide(copy, false, {ruleFor(6, RuleAction::Deny, bot)}).verdict, Verdict::Reject);
}

TEST(PolicyDecision, DenyingOneScriptDoesNotDenyTheInterpreterForOthers) {
  const ProgramIdentity bot = script("/home/u/bot.py", kHashD);
  const ProgramIdentity other = script("/home/u/report.py", kHashC);
  EXPECT_EQ(decide(other, false, {ruleFor(6, RuleAction::Deny, bot)}).verdict, Verdict::Hold);
}

TEST(PolicyDecision, DenyingAnUnreadableScriptDoesNotDenyTheInterpreter) {
  const ProgramIdentity bot = script("/home/u/bot.py", "");
  const ProgramIdentity other = script("/home/u/report.py", kHashC);
  const std::vector<ApprovalRule> rules{ruleFor(6, RuleAction::Deny, bot)};
  EXPECT_EQ(decide(other, false, rules).verdict, Verdict::Hold);
  EXPECT_EQ(decide(bot, false, rules).verdict, Verdict::Reject);
}

TEST(PolicyDecision, RejectsADeniedBinaryRenamedToLookLikeAnInterpreter) {
  const ProgramIdentity bot = program("/home/u/bin/bot", kHashD);
  ProgramIdentity disguised = program("/tmp/python3", kHashD);
  disguised.scriptPath = "/tmp/x.py";
  disguised.scriptSha256 = kHashC;
  EXPECT_EQ(decide(disguised, false, {ruleFor(6, RuleAction::Deny, bot)}).verdict, Verdict::Reject);
}

TEST(PolicyDecision, IgnoresEmptyHashesWhenMatchingDenials) {
  const ProgramIdentity unreadable = program("/home/u/bin/a", "");
  const ProgramIdentity other = program("/home/u/bin/b", "");
  EXPECT_EQ(decide(other, false, {ruleFor(6, RuleAction::Deny, unreadable)}).verdict,
            Verdict::Hold);
}

TEST(PolicyDecision, UsesTheApprovalWithMatchingHashesWhenThereAreSeveral) {
  const ProgramIdentity v1 = program("/home/u/bin/mailer", kHashA);
  const ProgramIdentity v2 = program("/home/u/bin/mailer", kHashB);
  const Decision d =
      decide(v2, false, {ruleFor(1, RuleAction::Approve, v1), ruleFor(2, RuleAction::Approve, v2)});
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.ruleId, 2);
}

TEST(IdentityKinds, AreToldFromThePathAndTheScript) {
  EXPECT_EQ(program("/usr/bin/curl", kHashA).kind(), IdentityKind::Program);
  EXPECT_EQ(script("/home/ann/b.py", kHashB).kind(), IdentityKind::Script);
  EXPECT_EQ(inlineCode().kind(), IdentityKind::Inline);
  EXPECT_EQ(interpreterItself().kind(), IdentityKind::Program);
  for (auto k : {IdentityKind::Program, IdentityKind::Script, IdentityKind::Inline}) {
    EXPECT_EQ(identityKindFromString(toString(k)), k);
  }
  EXPECT_EQ(identityKindFromString("bare"), std::nullopt);
}

TEST(PolicyKinds, ApprovingTheInterpreterItselfDoesNotApproveInlineCode) {
  const auto rules = std::vector{ruleFor(1, RuleAction::Approve, interpreterItself())};
  const Decision d = decide(inlineCode(), false, rules, 1000U);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("does not cover code typed or piped into it"));
  // Nor a script it runs.
  EXPECT_EQ(decide(script("/home/ann/b.py", kHashB), false, rules, 1000U).verdict, Verdict::Hold);
  // The binary itself, as named, is approved.
  EXPECT_EQ(stateOf(interpreterItself(), false, rules), ProgramState::Approved);
  EXPECT_EQ(stateOf(inlineCode(), false, rules), ProgramState::Pending);
}

TEST(PolicyKinds, AnInlineApprovalCoversOneUserOnly) {
  const auto rules =
      std::vector{forUser(ruleFor(1, RuleAction::Approve, inlineCode()), 1000, "alice")};
  EXPECT_EQ(decide(inlineCode(), false, rules, 1000U).verdict, Verdict::Allow);
  const Decision other = decide(inlineCode(), false, rules, 65534U);
  EXPECT_EQ(other.verdict, Verdict::Hold);
  EXPECT_EQ(other.reason, "approved for alice only");
  // Inline code is not a script: b.py stays unapproved.
  EXPECT_EQ(decide(script("/home/alice/b.py", kHashB), false, rules, 1000U).verdict, Verdict::Hold);
}

TEST(PolicyKinds, DenyingInlineCodeDoesNotRefuseTheInterpretersScripts) {
  const auto rules = std::vector{ruleFor(1, RuleAction::Deny, inlineCode())};
  EXPECT_EQ(decide(inlineCode(), false, rules, 0U).verdict, Verdict::Reject);
  // b.py and a never-seen c.py share the interpreter's hash, not the inline code's.
  EXPECT_EQ(decide(script("/home/ann/b.py", kHashB), false, rules, 0U).verdict, Verdict::Hold);
  EXPECT_EQ(decide(script("/home/ann/c.py", kHashC), false, rules, 0U).verdict, Verdict::Hold);
  // A copy of the interpreter elsewhere running inline code is the same inline code.
  EXPECT_EQ(decide(program("/opt/py/python3", kHashA), false, rules, 0U).verdict, Verdict::Reject);
}

TEST(PolicyKinds, DenyingAScriptFollowsItsContentNotTheInterpreters) {
  const auto rules = std::vector{ruleFor(1, RuleAction::Deny, script("/home/ann/bot.py", kHashB))};
  // The same script copied elsewhere, even run by another interpreter build.
  ProgramIdentity copy = script("/tmp/x.py", kHashB);
  copy.sha256 = kHashD;
  EXPECT_EQ(decide(copy, false, rules, 0U).verdict, Verdict::Reject);
  EXPECT_EQ(decide(script("/home/ann/c.py", kHashC), false, rules, 0U).verdict, Verdict::Hold);
  EXPECT_EQ(decide(inlineCode(), false, rules, 0U).verdict, Verdict::Hold);
}

TEST(PolicyKinds, DenyingTheInterpreterItselfCoversEverythingItRuns) {
  const auto approved = ruleFor(2, RuleAction::Approve, script("/home/ann/b.py", kHashB));
  const auto rules = std::vector{ruleFor(1, RuleAction::Deny, interpreterItself()), approved};
  const Decision d = decide(script("/home/ann/b.py", kHashB), false, rules, 0U);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_THAT(d.reason, HasSubstr("every script and inline program it runs"));
  EXPECT_EQ(decide(inlineCode(), false, rules, 0U).verdict, Verdict::Reject);
  // A copy of the interpreter at another path, by its content.
  ProgramIdentity copied = script("/home/ann/c.py", kHashC);
  copied.path = "/opt/python3";
  EXPECT_EQ(decide(copied, false, rules, 0U).verdict, Verdict::Reject);
}

TEST(PolicyScope, AnApprovalForOneUserHoldsAnotherUsersRuns) {
  const ProgramIdentity curl = program("/usr/bin/curl", kHashA, true);
  const auto rules = std::vector{forUser(ruleFor(4, RuleAction::Approve, curl), 1000, "alice")};
  const Decision alice = decide(curl, false, rules, 1000U);
  EXPECT_EQ(alice.verdict, Verdict::Allow);
  EXPECT_TRUE(alice.pinned) << "the kernel, knowing no user, must not decide it";
  const Decision nobody = decide(curl, false, rules, 65534U);
  EXPECT_EQ(nobody.verdict, Verdict::Hold);
  EXPECT_EQ(nobody.reason, "approved for alice only");
  EXPECT_EQ(nobody.ruleId, 4);
  // Not knowing who runs it is not being alice.
  EXPECT_EQ(decide(curl, false, rules).verdict, Verdict::Hold);
  // Listed as approved, covering alice.
  EXPECT_EQ(stateOf(curl, false, rules), ProgramState::Approved);
  EXPECT_EQ(coveredUsers(curl, rules), std::optional{std::vector<std::uint32_t>{1000}});
}

TEST(PolicyScope, AnApprovalForEveryUserCoversAll) {
  const ProgramIdentity curl = program("/usr/bin/curl", kHashA, true);
  const auto rules = std::vector{ruleFor(4, RuleAction::Approve, curl)};
  EXPECT_EQ(decide(curl, false, rules, 65534U).verdict, Verdict::Allow);
  EXPECT_FALSE(decide(curl, false, rules, 65534U).pinned);
  EXPECT_EQ(coveredUsers(curl, rules), std::nullopt);
  EXPECT_EQ(coveredUsers(program("/usr/bin/wget", kHashB), rules),
            std::optional{std::vector<std::uint32_t>{}});
}

TEST(PolicyScope, ApprovalsForTwoUsersCoverBoth) {
  const ProgramIdentity curl = program("/usr/bin/curl", kHashA, true);
  const auto rules = std::vector{forUser(ruleFor(4, RuleAction::Approve, curl), 1001, "bob"),
                                 forUser(ruleFor(5, RuleAction::Approve, curl), 1000, "alice")};
  EXPECT_EQ(decide(curl, false, rules, 1001U).verdict, Verdict::Allow);
  EXPECT_EQ(decide(curl, false, rules, 1000U).verdict, Verdict::Allow);
  EXPECT_EQ(coveredUsers(curl, rules), (std::optional{std::vector<std::uint32_t>{1000, 1001}}));
}

TEST(ProgramStateOf, FollowsTheDecision) {
  const ProgramIdentity p = program("/home/u/bin/mailer", kHashA);
  EXPECT_EQ(stateOf(p, false, {}), ProgramState::Pending);
  EXPECT_EQ(stateOf(p, false, {ruleFor(1, RuleAction::Approve, p)}), ProgramState::Approved);
  EXPECT_EQ(stateOf(p, false, {ruleFor(1, RuleAction::Deny, p)}), ProgramState::Denied);
  EXPECT_EQ(stateOf(p, true, {ruleFor(1, RuleAction::Approve, p)}), ProgramState::Quarantined);
  const ProgramIdentity changed = program("/home/u/bin/mailer", kHashB);
  EXPECT_EQ(stateOf(changed, false, {ruleFor(1, RuleAction::Approve, p)}), ProgramState::Pending);
}

TEST(VerdictNames, RoundTripThroughStrings) {
  for (const Verdict v : {Verdict::Allow, Verdict::Hold, Verdict::Reject}) {
    EXPECT_EQ(verdictFromString(toString(v)), v);
  }
  EXPECT_EQ(toString(Verdict::Allow), "allow");
  EXPECT_EQ(toString(Verdict::Hold), "hold");
  EXPECT_EQ(toString(Verdict::Reject), "reject");
  EXPECT_EQ(verdictFromString("Allow"), std::nullopt);
  EXPECT_EQ(verdictFromString(""), std::nullopt);
}

TEST(ProgramStateNames, MatchTheJsonOfGuardctl) {
  EXPECT_EQ(toString(ProgramState::Pending), "pending");
  EXPECT_EQ(toString(ProgramState::Approved), "approved");
  EXPECT_EQ(toString(ProgramState::Denied), "denied");
  EXPECT_EQ(toString(ProgramState::Quarantined), "quarantined");
}

}  // namespace
}  // namespace mailguard::rules
