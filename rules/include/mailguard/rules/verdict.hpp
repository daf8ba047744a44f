#pragma once
// The verdict for one connection attempt, with every override in one place: the owner's
// rules (policy.hpp decide) first, then what the detector and the queue's state change.
// Nothing patches the result afterwards.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/rules/code_loading.hpp"
#include "mailguard/rules/connection.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/policy.hpp"

namespace mailguard::rules {

// What the pipeline knows about one attempt when it decides.
struct VerdictInputs {
  std::optional<ProgramIdentity> identity;  // nullopt: not attributed to a process
  // The user running it, for approvals that cover one user (ApprovalRule::uid); nullopt:
  // not known, and no such approval applies.
  std::optional<std::uint32_t> uid;
  std::string unattributed;      // why not, e.g. "the socket was already closed"
  bool identityPending = false;  // the executable's hash is still being computed
  std::string sharedNote;        // appended to the reason: the socket is shared
  // Non-empty: the kernel saw code from outside the program in the connecting process
  // ("LD_PRELOAD or a user's library", "traced"); it cannot vouch for itself.
  std::string tainted;
  // Code the process loads by its environment or options (codeLoadingFindings), or
  // kEnvironUnreadable: each one not in the deciding approval's allowEnv voids it.
  std::vector<CodeLoading> codeLoading;
  bool quarantined = false;  // quarantined (stored, or by the detector just now)
  bool throttled = false;    // the detector's soft tier: a new destination too soon
  std::string throttleReason;
  bool bulkDeclared = false;     // the owner declared a bulk send: lifts the throttle only
  bool queueOverloaded = false;  // the kernel queue is under pressure
  // Where the attempt goes; nullopt when not known (a decision made ahead of any
  // connection, for the kernel's fast path).
  std::optional<ConnectionTuple> destination;
};

// In this order:
//  1. no identity                 -> Hold "could not attribute to a process: <why>"
//                                    (Unattributed)
//  2. identity pending            -> Hold "its identity is being checked ..."
//                                    (IdentityPending), never Allow; but a quarantine or a
//                                    denial by path (the hash is not needed for either)
//                                    still rejects
//  3. decide(identity, quarantined, rules) (quarantined -> Reject, Quarantine), and the
//     shared-socket note appended to the reason
//  3a. step 3 allowed by an approval pinned to destinations (Decision::pinned) and the
//     destination is not one of them -> Hold "approved only to <list>; asked for
//     <address:port>" (Destination): a new decision for the owner, not a denial.
//     Without a known destination a pinned approval still allows, marked pinned.
//  4. tainted and step 3 allowed   -> Hold "not trusted: <what the kernel saw> ..." (Taint)
//  4b. code loading not allowed by the approval that allowed it, and still allowed
//                                 -> Hold "approval void: PYTHONPATH set (...); approve with
//                                    --allow-env PYTHONPATH to allow" (CodeLoading)
//  5. throttled, no bulk declared, and still allowed -> Hold "<throttleReason>" (Throttle)
//  6. Reject while the queue is overloaded -> Hold, "; dropped, not reset, ..." appended
//     (Pressure)
Decision decideVerdict(const VerdictInputs& in, const std::vector<ApprovalRule>& rules);

}  // namespace mailguard::rules
