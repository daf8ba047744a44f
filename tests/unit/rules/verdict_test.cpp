#include "mailguard/rules/verdict.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailguard::rules {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

const std::string kHashA(64, 'a');
const std::string kHashB(64, 'b');
const std::string kHashC(64, 'c');
const std::string kThrottleReason = "throttled: a new destination 2 s after the last one";
const std::string kDropped = "; dropped, not reset, while the queue is overloaded";

ProgramIdentity program(std::string path, std::string sha, bool trusted = true) {
  ProgramIdentity id;
  id.path = std::move(path);
  id.sha256 = std::move(sha);
  id.pathTrusted = trusted;
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
  return rule;
}

const ProgramIdentity kClient = program("/usr/bin/thunderbird", kHashA);
const ProgramIdentity kBot = program("/usr/local/bin/bot", kHashB);
// The owner approved the client (rule 7) and denied the bot (rule 9).
const std::vector<ApprovalRule> kRules = {ruleFor(7, RuleAction::Approve, kClient),
                                          ruleFor(9, RuleAction::Deny, kBot)};

VerdictInputs attributed(const ProgramIdentity& id) {
  VerdictInputs in;
  in.identity = id;
  return in;
}

VerdictInputs throttledInputs(const ProgramIdentity& id) {
  VerdictInputs in = attributed(id);
  in.throttled = true;
  in.throttleReason = kThrottleReason;
  return in;
}

// 1. Not attributed.

TEST(DecideVerdict, HoldsAnUnattributedAttemptAndSaysWhy) {
  VerdictInputs in;
  in.unattributed = "the socket was already closed";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "could not attribute to a process: the socket was already closed");
  EXPECT_EQ(d.ruleId, std::nullopt);
  EXPECT_EQ(d.override, Override::Unattributed);
}

TEST(DecideVerdict, UnattributedStaysHeldWhateverTheOtherInputsSay) {
  VerdictInputs in;
  in.unattributed = "no such process";
  in.quarantined = true;
  in.throttled = true;
  in.throttleReason = kThrottleReason;
  in.queueOverloaded = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "could not attribute to a process: no such process");
  EXPECT_EQ(d.override, Override::Unattributed);
}

// 2. Identity pending (the hash is being computed).

TEST(DecideVerdict, HoldsAProgramWhoseIdentityIsPending) {
  VerdictInputs in = attributed(program("/usr/bin/unknown", ""));
  in.identityPending = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "its identity is being checked (not allowed before its file is hashed)");
  EXPECT_EQ(d.override, Override::IdentityPending);
}

TEST(DecideVerdict, PendingNeverAllowsEvenAnApprovedPathInATrustedLocation) {
  // Same path as the approved client in a root-owned place: decide() alone would allow it
  // by path ("updated in a root-owned location"); without its hash it must wait.
  VerdictInputs in = attributed(kClient);
  in.identityPending = true;
  Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::IdentityPending);

  in.identity->sha256.clear();
  d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::IdentityPending);

  in.bulkDeclared = true;  // a declared bulk send does not either
  d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
}

TEST(DecideVerdict, PendingStillRejectsADenialByPath) {
  VerdictInputs in = attributed(program(kBot.path, ""));
  in.identityPending = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.reason, "denied by the owner");
  EXPECT_EQ(d.ruleId, 9);
  EXPECT_EQ(d.override, Override::None);  // the owner's rule decided
}

TEST(DecideVerdict, PendingDoesNotGuessADenialByContent) {
  // The bot copied to another path: only its hash would tell, and that is not known yet.
  VerdictInputs in = attributed(program("/home/alice/bin/renamed", kHashB));
  in.identityPending = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::IdentityPending);
}

TEST(DecideVerdict, PendingStillRejectsAQuarantinedProgram) {
  VerdictInputs in = attributed(kClient);
  in.identityPending = true;
  in.quarantined = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_THAT(d.reason, StartsWith("quarantined"));
  EXPECT_EQ(d.override, Override::Quarantine);
}

TEST(DecideVerdict, PendingDenialIsDroppedWhileTheQueueIsOverloaded) {
  VerdictInputs in = attributed(program(kBot.path, ""));
  in.identityPending = true;
  in.queueOverloaded = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "denied by the owner" + kDropped);
  EXPECT_EQ(d.override, Override::Pressure);
}

// 3. The owner's rules, quarantine and the shared-socket note.

TEST(DecideVerdict, FollowsTheOwnersRulesWithoutAnOverride) {
  Decision d = decideVerdict(attributed(kClient), kRules);
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.reason, "approved");
  EXPECT_EQ(d.ruleId, 7);
  EXPECT_EQ(d.override, Override::None);

  d = decideVerdict(attributed(kBot), kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.ruleId, 9);
  EXPECT_EQ(d.override, Override::None);

  d = decideVerdict(attributed(program("/usr/bin/mutt", kHashC)), {});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet");
  EXPECT_EQ(d.override, Override::None);
}

TEST(DecideVerdict, RejectsAQuarantinedProgramEvenWhenApproved) {
  VerdictInputs in = attributed(kClient);
  in.quarantined = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_THAT(d.reason, StartsWith("quarantined"));
  EXPECT_EQ(d.override, Override::Quarantine);
}

TEST(DecideVerdict, AppendsTheSharedSocketNoteToTheReason) {
  VerdictInputs in = attributed(program("/usr/bin/mutt", kHashC));
  in.sharedNote = " (the socket is shared with /usr/bin/thunderbird)";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet (the socket is shared with /usr/bin/thunderbird)");
}

// 4. The detector's soft tier (throttle) and a declared bulk send.

TEST(DecideVerdict, ThrottleHoldsAnAllowedProgramWithTheDetectorsReason) {
  const Decision d = decideVerdict(throttledInputs(kClient), kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, kThrottleReason);
  EXPECT_EQ(d.ruleId, 7);
  EXPECT_EQ(d.override, Override::Throttle);
}

TEST(DecideVerdict, ThrottleNeverTurnsAHoldIntoAnything) {
  const Decision d = decideVerdict(throttledInputs(program("/usr/bin/mutt", kHashC)), kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "not approved yet");
  EXPECT_EQ(d.override, Override::None);
}

TEST(DecideVerdict, ThrottleNeverTurnsARejectIntoAnything) {
  Decision d = decideVerdict(throttledInputs(kBot), kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.reason, "denied by the owner");
  EXPECT_EQ(d.override, Override::None);

  VerdictInputs in = throttledInputs(kClient);
  in.quarantined = true;  // quarantine beats throttle
  d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_THAT(d.reason, StartsWith("quarantined"));
  EXPECT_EQ(d.override, Override::Quarantine);
}

TEST(DecideVerdict, BulkDeclarationLiftsTheThrottle) {
  VerdictInputs in = throttledInputs(kClient);
  in.bulkDeclared = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.reason, "approved");
  EXPECT_EQ(d.override, Override::None);
}

TEST(DecideVerdict, BulkDeclarationNeverLiftsAQuarantine) {
  VerdictInputs in = throttledInputs(kClient);
  in.bulkDeclared = true;
  in.quarantined = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.override, Override::Quarantine);
}

TEST(DecideVerdict, BulkDeclarationNeverApprovesAnUnknownProgram) {
  VerdictInputs in = attributed(program("/usr/bin/mutt", kHashC));
  in.bulkDeclared = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
}

TEST(DecideVerdict, ThrottleReasonReplacesTheSharedNote) {
  // Today's wording: the held attempt shows the detector's reason alone.
  VerdictInputs in = throttledInputs(kClient);
  in.sharedNote = " (shared)";
  EXPECT_EQ(decideVerdict(in, kRules).reason, kThrottleReason);
}

// 5. Queue pressure: drop instead of reset.

TEST(DecideVerdict, PressureTurnsADenialIntoADrop) {
  VerdictInputs in = attributed(kBot);
  in.queueOverloaded = true;
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "denied by the owner" + kDropped);
  EXPECT_EQ(d.ruleId, 9);
  EXPECT_EQ(d.override, Override::Pressure);
}

TEST(DecideVerdict, PressureTurnsAQuarantineRejectIntoADrop) {
  VerdictInputs in = attributed(kClient);
  in.quarantined = true;
  in.queueOverloaded = true;
  in.sharedNote = " (shared)";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, StartsWith("quarantined"));
  EXPECT_THAT(d.reason, HasSubstr(" (shared)"));
  EXPECT_THAT(d.reason, EndsWith(kDropped));
  EXPECT_EQ(d.override, Override::Pressure);
}

TEST(DecideVerdict, PressureLeavesAllowAndHoldAlone) {
  VerdictInputs in = attributed(kClient);
  in.queueOverloaded = true;
  Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.reason, "approved");
  EXPECT_EQ(d.override, Override::None);

  in = throttledInputs(kClient);
  in.queueOverloaded = true;
  d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, kThrottleReason);
  EXPECT_EQ(d.override, Override::Throttle);

  in = attributed(program("/usr/bin/mutt", kHashC));
  in.queueOverloaded = true;
  d = decideVerdict(in, kRules);
  EXPECT_EQ(d.reason, "not approved yet");
  EXPECT_EQ(d.override, Override::None);
}

TEST(Override, HasAName) {
  EXPECT_EQ(toString(Override::None), "none");
  EXPECT_EQ(toString(Override::Unattributed), "unattributed");
  EXPECT_EQ(toString(Override::IdentityPending), "identity-pending");
  EXPECT_EQ(toString(Override::Quarantine), "quarantine");
  EXPECT_EQ(toString(Override::Throttle), "throttle");
  EXPECT_EQ(toString(Override::Pressure), "pressure");
  EXPECT_EQ(toString(Override::CodeLoading), "code-loading");
}

// Taint: code from outside the approved file ran in the process.

TEST(DecideVerdict, HoldsAnApprovedProgramTheKernelSawTainted) {
  VerdictInputs in = attributed(kClient);
  in.tainted = "LD_PRELOAD or a user's library";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, HasSubstr("LD_PRELOAD or a user's library"));
  EXPECT_EQ(d.override, Override::Taint);
}

TEST(DecideVerdict, TaintNeverLiftsADenialOrAQuarantine) {
  VerdictInputs denied = attributed(kBot);
  denied.tainted = "traced";
  EXPECT_EQ(decideVerdict(denied, kRules).verdict, Verdict::Reject);
  VerdictInputs quarantined = attributed(kClient);
  quarantined.tainted = "traced";
  quarantined.quarantined = true;
  const Decision d = decideVerdict(quarantined, kRules);
  EXPECT_EQ(d.verdict, Verdict::Reject);
  EXPECT_EQ(d.override, Override::Quarantine);
}

TEST(DecideVerdict, TaintIsTheReasonGivenBeforeAThrottle) {
  VerdictInputs in = throttledInputs(kClient);
  in.tainted = "traced";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::Taint);
}

// 3a. An approval pinned to destinations.

std::vector<ApprovalRule> pinnedRules(std::vector<std::string> onlyTo) {
  std::vector<ApprovalRule> rules = kRules;
  for (const auto& text : onlyTo) rules[0].onlyTo.push_back(*parseDestination(text));
  return rules;
}

VerdictInputs goingTo(const ProgramIdentity& id, std::uint8_t last, std::uint16_t port) {
  VerdictInputs in = attributed(id);
  ConnectionTuple t;
  t.family = 2;  // AF_INET
  t.dst = {127, 0, 0, last};
  t.dstPort = port;
  in.destination = t;
  return in;
}

TEST(DecideVerdict, AllowsAPinnedApprovalToItsDestinationAndMarksItPinned) {
  const Decision d = decideVerdict(goingTo(kClient, 2, 25), pinnedRules({"127.0.0.2:25"}));
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_EQ(d.ruleId, 7);
  EXPECT_TRUE(d.pinned);
  EXPECT_EQ(d.override, Override::None);
}

TEST(DecideVerdict, HoldsAPinnedApprovalGoingElsewhereAndNamesBoth) {
  const auto rules = pinnedRules({"127.0.0.2:25", "10.0.0.0/8"});
  const Decision d = decideVerdict(goingTo(kClient, 3, 25), rules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "approved only to 127.0.0.2:25, 10.0.0.0/8; asked for 127.0.0.3:25");
  EXPECT_EQ(d.override, Override::Destination);
  EXPECT_EQ(d.ruleId, 7);
  // The right address on another port than the one pinned is elsewhere too.
  EXPECT_EQ(decideVerdict(goingTo(kClient, 2, 587), rules).verdict, Verdict::Hold);
}

TEST(DecideVerdict, NamesAnIpv6DestinationInBrackets) {
  VerdictInputs in = attributed(kClient);
  ConnectionTuple t;
  t.family = 10;  // AF_INET6
  t.dst[15] = 1;
  t.dstPort = 587;
  in.destination = t;
  const Decision d = decideVerdict(in, pinnedRules({"127.0.0.2"}));
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_THAT(d.reason, EndsWith("asked for [::1]:587"));
}

TEST(DecideVerdict, AnUnpinnedApprovalAllowsEverywhereAndIsNotPinned) {
  const Decision d = decideVerdict(goingTo(kClient, 3, 25), kRules);
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_FALSE(d.pinned);
}

TEST(DecideVerdict, APinnedApprovalWithoutAKnownDestinationAllowsButStaysPinned) {
  const Decision d = decideVerdict(attributed(kClient), pinnedRules({"127.0.0.2:25"}));
  EXPECT_EQ(d.verdict, Verdict::Allow);
  EXPECT_TRUE(d.pinned);
}

TEST(DecideVerdict, PinsDoNotLiftADenialOrAQuarantine) {
  auto rules = pinnedRules({"127.0.0.2:25"});
  EXPECT_EQ(decideVerdict(goingTo(kBot, 2, 25), rules).verdict, Verdict::Reject);
  VerdictInputs q = goingTo(kClient, 2, 25);
  q.quarantined = true;
  EXPECT_EQ(decideVerdict(q, rules).verdict, Verdict::Reject);
}

// Code loading: the environment or options make the approved file run other code.

const ProgramIdentity kScript = [] {
  ProgramIdentity id = program("/usr/bin/python3.11", kHashA);
  id.scriptPath = "/srv/news.py";
  id.scriptSha256 = kHashC;
  return id;
}();

VerdictInputs loading(const ProgramIdentity& id, std::vector<CodeLoading> found) {
  VerdictInputs in = attributed(id);
  in.codeLoading = std::move(found);
  return in;
}

TEST(DecideVerdict, HoldsAnApprovedScriptRunWithCodeLoadingAndNamesIt) {
  const std::vector<ApprovalRule> rules = {ruleFor(4, RuleAction::Approve, kScript)};
  const Decision d = decideVerdict(
      loading(kScript, {{"PYTHONPATH", "/home/ann/x", false}, {"-i", "", true}}), rules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason,
            "approval void: PYTHONPATH set (/home/ann/x), option -i; approve with --allow-env "
            "PYTHONPATH,-i to allow");
  EXPECT_EQ(d.ruleId, 4);
  EXPECT_EQ(d.override, Override::CodeLoading);
}

TEST(DecideVerdict, AllowsWhatTheApprovalNamesAndHoldsTheRest) {
  std::vector<ApprovalRule> rules = {ruleFor(4, RuleAction::Approve, kScript)};
  rules[0].allowEnv = {"PYTHONPATH"};
  const CodeLoading path{"PYTHONPATH", "/opt/lib", false};
  const Decision allowed = decideVerdict(loading(kScript, {path}), rules);
  EXPECT_EQ(allowed.verdict, Verdict::Allow);
  EXPECT_EQ(allowed.override, Override::None);

  const Decision held =
      decideVerdict(loading(kScript, {path, {"PYTHONINSPECT", "1", false}}), rules);
  EXPECT_EQ(held.verdict, Verdict::Hold);
  EXPECT_THAT(held.reason, StartsWith("approval void: PYTHONINSPECT set (1);"));
  EXPECT_THAT(held.reason, EndsWith("--allow-env PYTHONINSPECT to allow"));
}

TEST(DecideVerdict, AnotherApprovalsAllowEnvDoesNotCover) {
  // The allowance belongs to the approval of kClient, not to the approved script.
  ApprovalRule client = ruleFor(7, RuleAction::Approve, kClient);
  client.allowEnv = {"LD_PRELOAD"};
  const std::vector<ApprovalRule> rules = {client, ruleFor(4, RuleAction::Approve, kScript)};
  const Decision d = decideVerdict(loading(kScript, {{"LD_PRELOAD", "/a.so", false}}), rules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::CodeLoading);
  EXPECT_EQ(decideVerdict(loading(kClient, {{"LD_PRELOAD", "/a.so", false}}), rules).verdict,
            Verdict::Allow);
}

TEST(DecideVerdict, AnUnreadableEnvironmentVoidsEveryApprovalWithoutAHint) {
  ApprovalRule rule = ruleFor(7, RuleAction::Approve, kClient);
  rule.allowEnv = {"LD_PRELOAD", "environ"};
  const Decision d =
      decideVerdict(loading(kClient, {environUnreadable("Permission denied")}), {rule});
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.reason, "approval void: environment unreadable (Permission denied)");
  EXPECT_EQ(d.override, Override::CodeLoading);
}

TEST(DecideVerdict, CodeLoadingNeverChangesAHoldOrAReject) {
  const std::vector<CodeLoading> found = {{"LD_PRELOAD", "/a.so", false}};
  const Decision unknown = decideVerdict(loading(program("/usr/bin/x", kHashC), found), kRules);
  EXPECT_EQ(unknown.verdict, Verdict::Hold);
  EXPECT_THAT(unknown.reason, StartsWith("not approved yet"));
  EXPECT_EQ(unknown.override, Override::None);
  const Decision denied = decideVerdict(loading(kBot, found), kRules);
  EXPECT_EQ(denied.verdict, Verdict::Reject);
  VerdictInputs quarantined = loading(kClient, found);
  quarantined.quarantined = true;
  EXPECT_EQ(decideVerdict(quarantined, kRules).verdict, Verdict::Reject);
}

TEST(DecideVerdict, TaintIsTheReasonGivenBeforeCodeLoading) {
  VerdictInputs in = loading(kClient, {{"LD_PRELOAD", "/home/a/x.so", false}});
  in.tainted = "LD_PRELOAD or a user's library";
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::Taint);
}

TEST(DecideVerdict, CodeLoadingIsTheReasonGivenBeforeAThrottle) {
  VerdictInputs in = throttledInputs(kClient);
  in.codeLoading = {{"LD_PRELOAD", "/a.so", false}};
  const Decision d = decideVerdict(in, kRules);
  EXPECT_EQ(d.verdict, Verdict::Hold);
  EXPECT_EQ(d.override, Override::CodeLoading);
}

TEST(VerdictScope, AnApprovalForOneUserAllowsOnlyThatUsersProcess) {
  ApprovalRule forAnn = ruleFor(7, RuleAction::Approve, kClient);
  forAnn.uid = 1000;
  forAnn.userName = "ann";
  VerdictInputs in = attributed(kClient);
  in.uid = 1000;
  const Decision ann = decideVerdict(in, {forAnn});
  EXPECT_EQ(ann.verdict, Verdict::Allow);
  EXPECT_TRUE(ann.pinned);
  in.uid = 65534;
  const Decision other = decideVerdict(in, {forAnn});
  EXPECT_EQ(other.verdict, Verdict::Hold);
  EXPECT_EQ(other.reason, "approved for ann only");
  // Still being hashed: never allowed, whoever runs it.
  in.uid = 1000;
  in.identityPending = true;
  EXPECT_EQ(decideVerdict(in, {forAnn}).verdict, Verdict::Hold);
}

}  // namespace
}  // namespace mailguard::rules
