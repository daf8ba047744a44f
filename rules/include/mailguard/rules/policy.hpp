#pragma once
// Approvals, denials and the verdict for one connection attempt.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/rules/destination.hpp"
#include "mailguard/rules/identity.hpp"

namespace mailguard::rules {

enum class Verdict { Allow, Hold, Reject };
enum class ProgramState { Pending, Approved, Denied, Quarantined };

std::string_view toString(Verdict v);       // "allow" "hold" "reject"
std::string_view toString(ProgramState s);  // "pending" "approved" "denied" "quarantined"
std::optional<Verdict> verdictFromString(std::string_view s);

enum class RuleAction { Approve, Deny };

// One decision of the owner. An approval carries the identity as it was when approved:
// the hash always, so that a change is noticed where the path is not trusted.
struct ApprovalRule {
  std::int64_t id = 0;
  RuleAction action = RuleAction::Approve;
  std::string path;
  std::string sha256;
  std::string scriptPath;    // empty for a non-interpreter
  std::string scriptSha256;  // empty for a non-interpreter
  // What it names: a program (for an interpreter: the binary itself, which a denial
  // covers with everything it runs and an approval with nothing that runs code), a
  // script, or the inline code an interpreter runs.
  IdentityKind kind = IdentityKind::Program;
  // An approval for one user only (the uid running the program); nullopt: every user.
  // Denials are for every user. An Inline approval always has one.
  std::optional<std::uint32_t> uid{};
  std::string userName{};  // uid's name for messages ("approved for alice only"), if known
  // An approval only: empty, any destination; else only these (verdict.hpp, step 3a).
  std::vector<Destination> onlyTo{};
  // Code-loading variables and options (code_loading.hpp names) the owner approved the
  // program with; any other one voids the approval for that process.
  std::vector<std::string> allowEnv{};
};

// What changed the verdict the owner's rules give (see verdict.hpp, decideVerdict).
enum class Override {
  None,
  Unattributed,
  IdentityPending,
  Quarantine,
  Taint,
  Throttle,
  Pressure,
  Destination,
  CodeLoading,
};
std::string_view toString(Override o);  // "none" "unattributed" "identity-pending" ...

struct Decision {
  Verdict verdict = Verdict::Hold;
  std::string reason;                  // plain language, shown to the owner
  std::optional<std::int64_t> ruleId;  // the approval or denial that decided, if any
  // The override that changed the owner's rule's verdict, for tests and logs.
  Override override = Override::None;
  // The approval that matched is pinned to destinations (ApprovalRule::onlyTo) or covers
  // one user only (ApprovalRule::uid): the program is allowed to some servers or for some
  // users only, which the kernel's fast path, knowing neither, must not decide.
  bool pinned = false;
};

// The decision, in this order:
//  1. no identity (socket or process not found)      -> Hold  "could not attribute ..."
//  2. quarantined                                     -> Reject "quarantined ..."
//  3. a Deny rule of the identity's kind with the same path (and script path), any hash,
//     or the same content: for a script its script's sha256 (never the interpreter's,
//     which all its scripts share), else the executable's sha256 -> Reject.
//     A Deny of a program (kind Program) that is an interpreter covers every script and
//     inline code it runs, by path or by content.
//  4. an Approve rule of the identity's kind with the same path and script path, for
//     every user or for `uid` (a rule for another user, or any user-scoped rule when uid
//     is not known, does not apply: Hold "approved for <user> only"):
//     - hashes equal (exe and script)                 -> Allow (the reason says so when the
//       running file was replaced or deleted since the process started)
//     - hashes differ, but identity.pathTrusted and not deleted and the path (and
//       script) not isUnsafeLocation                  -> Allow (package upgrade keeps approval)
//     - otherwise                                     -> Hold "changed since it was approved"
//  5. otherwise                                       -> Hold "not approved yet", with notes
//     in parentheses: same content as an approved program, deleted, unsafe location
// An identity that is deleted never matches by path alone (only by equal hashes).
Decision decide(const std::optional<ProgramIdentity>& identity, bool quarantined,
                const std::vector<ApprovalRule>& rules,
                std::optional<std::uint32_t> uid = std::nullopt);

// The state a program listing shows for an identity under the same rules: Approved when
// approved for every user or for some user (see coveredUsers).
ProgramState stateOf(const ProgramIdentity& identity, bool quarantined,
                     const std::vector<ApprovalRule>& rules);

// Whom the approvals allow the identity for: nullopt when every user; else the uids of
// the user-scoped approvals that allow it (empty: nobody).
std::optional<std::vector<std::uint32_t>> coveredUsers(const ProgramIdentity& identity,
                                                       const std::vector<ApprovalRule>& rules);

}  // namespace mailguard::rules
