#include "mailguard/rules/policy.hpp"

#include <algorithm>

namespace mailguard::rules {
namespace {

std::string_view basename(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

// A rule naming a script is of kind Script whatever its kind field says.
IdentityKind kindOf(const ApprovalRule& rule) {
  return rule.scriptPath.empty() ? rule.kind : IdentityKind::Script;
}

// The rule names this identity: the same kind, path and script path.
bool samePath(const ProgramIdentity& id, const ApprovalRule& rule) {
  return id.path == rule.path && id.scriptPath == rule.scriptPath && id.kind() == kindOf(rule);
}

// A denial of an interpreter's binary itself (`guardctl deny /usr/bin/python3`): every
// script and inline code it runs.
bool coversAllItRuns(const ApprovalRule& rule) {
  return kindOf(rule) == IdentityKind::Program && isInterpreter(basename(rule.path));
}

// An approval for one user applies to that user only; with the user not known, to nobody.
bool appliesTo(const ApprovalRule& rule, std::optional<std::uint32_t> uid) {
  return !rule.uid || (uid && *uid == *rule.uid);
}

std::string userOf(const ApprovalRule& rule) {
  if (!rule.uid) return "every user";
  return rule.userName.empty() ? "uid " + std::to_string(*rule.uid) : rule.userName;
}

// Equal hashes prove the same content; an empty hash (file unreadable) proves nothing.
bool sameHashes(const ProgramIdentity& id, const ApprovalRule& rule) {
  if (id.sha256.empty() || id.sha256 != rule.sha256) return false;
  if (rule.scriptPath.empty() && id.scriptPath.empty()) return true;
  return !id.scriptSha256.empty() && id.scriptSha256 == rule.scriptSha256;
}

bool deniedByPath(const ProgramIdentity& id, const ApprovalRule& rule) {
  if (coversAllItRuns(rule)) return id.path == rule.path;
  return samePath(id, rule);
}

// A denial follows the program's content to any other path or name ("copy or rename
// itself"). A script's denial follows its script's content only: the interpreter's hash
// is shared by every script it runs, and denying one must not refuse the others. A denied
// script whose content could not be read matches by path only. Inline code has no file:
// its denial follows the interpreter's content, for inline code only.
bool deniedByHash(const ProgramIdentity& id, const ApprovalRule& rule) {
  switch (kindOf(rule)) {
    case IdentityKind::Script:
      return !rule.scriptSha256.empty() && id.kind() == IdentityKind::Script &&
             id.scriptSha256 == rule.scriptSha256;
    case IdentityKind::Inline:
      return !rule.sha256.empty() && id.kind() == IdentityKind::Inline && id.sha256 == rule.sha256;
    case IdentityKind::Program:
      // A denied program's content is denied whatever it is renamed to (even to a name
      // that makes it look like an interpreter).
      return !rule.sha256.empty() && id.sha256 == rule.sha256;
  }
  return false;
}

bool unsafe(const ProgramIdentity& id) {
  return isUnsafeLocation(id.path) || (id.isInterpreted() && isUnsafeLocation(id.scriptPath));
}

// What the owner should know about a program nobody approved: the facts of identity
// attacks (a copy of an approved program elsewhere, a file that deleted itself, a file in
// a world-writable place), since the attempt record keeps only the path and this reason.
std::string unapprovedNotes(const ProgramIdentity& id, const std::vector<ApprovalRule>& rules) {
  std::vector<std::string> notes;
  for (const ApprovalRule& rule : rules) {
    if (rule.action == RuleAction::Approve && sameHashes(id, rule) && id.kind() == kindOf(rule)) {
      notes.push_back("same content as the approved " + rule.path +
                      (rule.scriptPath.empty() ? "" : " " + rule.scriptPath) + ", at another path");
      break;
    }
  }
  if (id.kind() == IdentityKind::Inline) {
    for (const ApprovalRule& rule : rules) {
      if (rule.action == RuleAction::Approve && rule.path == id.path &&
          kindOf(rule) == IdentityKind::Program) {
        notes.push_back("the approval of " + rule.path +
                        " itself does not cover code typed or piped into it "
                        "(guardctl approve --inline, for one user)");
        break;
      }
    }
  }
  if (id.deleted) {
    notes.emplace_back(id.isInterpreted() ? "its script or interpreter was deleted"
                                          : "the executable was deleted");
  }
  if (unsafe(id)) notes.emplace_back("it runs from a location any user can write to");
  if (!id.scriptDoubt.empty()) notes.push_back(id.scriptDoubt);
  if (notes.empty()) return {};
  std::string out = " (";
  for (std::size_t i = 0; i < notes.size(); ++i) out += (i == 0 ? "" : "; ") + notes[i];
  return out + ")";
}

Decision decideFor(const ProgramIdentity& id, const std::vector<ApprovalRule>& rules,
                   std::optional<std::uint32_t> uid) {
  // The owner approved exactly this file at this path: denying an identical copy elsewhere
  // (say the client copied to /tmp) says nothing against it, and must not cut it off.
  const bool approvedHere = std::any_of(rules.begin(), rules.end(), [&](const ApprovalRule& r) {
    return r.action == RuleAction::Approve && samePath(id, r) && sameHashes(id, r) &&
           appliesTo(r, uid);
  });
  for (const ApprovalRule& rule : rules) {
    if (rule.action != RuleAction::Deny) continue;
    // Unlike approvals, a denial matches a deleted executable by path too: rejecting is
    // the safe direction.
    if (deniedByPath(id, rule)) {
      if (coversAllItRuns(rule) && id.kind() != IdentityKind::Program) {
        return {Verdict::Reject,
                "denied by the owner: " + rule.path +
                    " is denied with every script and inline "
                    "program it runs",
                rule.id};
      }
      return {Verdict::Reject, "denied by the owner", rule.id};
    }
    if (!approvedHere && deniedByHash(id, rule)) {
      return {Verdict::Reject,
              "denied by the owner: same content as the denied " + rule.path +
                  (rule.scriptPath.empty() ? "" : " " + rule.scriptPath),
              rule.id};
    }
  }

  if (!id.scriptDoubt.empty()) {
    // Not even an equal hash applies: it was taken of a file the interpreter may not have
    // read (see ProgramIdentity::scriptDoubt).
    for (const ApprovalRule& rule : rules) {
      if (rule.action == RuleAction::Approve && (samePath(id, rule) || sameHashes(id, rule))) {
        return {Verdict::Hold,
                "the approval of " + rule.path + " " + rule.scriptPath +
                    " does not apply: " + id.scriptDoubt,
                rule.id};
      }
    }
    return {Verdict::Hold, "not approved yet" + unapprovedNotes(id, rules), std::nullopt};
  }

  const ApprovalRule* pathMatch = nullptr;
  const ApprovalRule* otherUser = nullptr;  // an approval of it for another user
  for (const ApprovalRule& rule : rules) {
    if (rule.action != RuleAction::Approve || !samePath(id, rule)) continue;
    if (!appliesTo(rule, uid)) {
      if (otherUser == nullptr) otherUser = &rule;
      continue;
    }
    if (sameHashes(id, rule)) {
      Decision d{Verdict::Allow, "approved", rule.id};
      // The hash is of the file actually mapped, so a process that started before its file
      // was replaced or removed (an upgrade under a running mail client) still runs the
      // approved code; the owner is told, as the file on disk no longer is that code.
      if (id.deleted) {
        d.reason =
            "approved (this process runs the approved content, but its file was replaced "
            "or deleted since it started)";
      }
      if (rule.uid) d.reason += " for " + userOf(rule) + " only";
      d.pinned = rule.uid.has_value();
      return d;
    }
    if (pathMatch == nullptr) pathMatch = &rule;
  }
  if (pathMatch != nullptr) {
    // Only root can change a file in a trusted location, so a new hash there is a
    // package upgrade, not a replacement.
    if (id.pathTrusted && !id.deleted && !unsafe(id)) {
      Decision d{Verdict::Allow, "approved (updated in a root-owned location since approval)",
                 pathMatch->id};
      d.pinned = pathMatch->uid.has_value();
      return d;
    }
    std::string why;
    if (id.deleted) {
      why = "the executable was deleted";
    } else if (id.foreignView) {
      why = "it runs in another mount namespace or root, where its path names other content";
    } else if (unsafe(id)) {
      why = "it runs from a location any user can write to";
    } else {
      why = "its location is not root-owned";
    }
    return {Verdict::Hold, "changed since it was approved (" + why + ")", pathMatch->id};
  }
  if (otherUser != nullptr) {
    return {Verdict::Hold,
            "approved for " + userOf(*otherUser) + " only" +
                (uid ? std::string() : std::string("; the user running it is not known")),
            otherUser->id};
  }
  return {Verdict::Hold, "not approved yet" + unapprovedNotes(id, rules), std::nullopt};
}

}  // namespace

std::string_view toString(Verdict v) {
  switch (v) {
    case Verdict::Allow:
      return "allow";
    case Verdict::Hold:
      return "hold";
    case Verdict::Reject:
      return "reject";
  }
  return "hold";
}

std::string_view toString(ProgramState s) {
  switch (s) {
    case ProgramState::Pending:
      return "pending";
    case ProgramState::Approved:
      return "approved";
    case ProgramState::Denied:
      return "denied";
    case ProgramState::Quarantined:
      return "quarantined";
  }
  return "pending";
}

std::string_view toString(Override o) {
  switch (o) {
    case Override::None:
      return "none";
    case Override::Unattributed:
      return "unattributed";
    case Override::IdentityPending:
      return "identity-pending";
    case Override::Quarantine:
      return "quarantine";
    case Override::Taint:
      return "taint";
    case Override::CodeLoading:
      return "code-loading";
    case Override::Throttle:
      return "throttle";
    case Override::Pressure:
      return "pressure";
    case Override::Destination:
      return "destination";
  }
  return "none";
}

std::optional<Verdict> verdictFromString(std::string_view s) {
  if (s == "allow") return Verdict::Allow;
  if (s == "hold") return Verdict::Hold;
  if (s == "reject") return Verdict::Reject;
  return std::nullopt;
}

Decision decide(const std::optional<ProgramIdentity>& identity, bool quarantined,
                const std::vector<ApprovalRule>& rules, std::optional<std::uint32_t> uid) {
  if (!identity) {
    return {Verdict::Hold, "could not attribute the connection to a program", std::nullopt};
  }
  if (quarantined) {
    return {Verdict::Reject, "quarantined after behaving like a spam bot", std::nullopt};
  }
  return decideFor(*identity, rules, uid);
}

ProgramState stateOf(const ProgramIdentity& identity, bool quarantined,
                     const std::vector<ApprovalRule>& rules) {
  if (quarantined) return ProgramState::Quarantined;
  switch (decideFor(identity, rules, std::nullopt).verdict) {
    case Verdict::Allow:
      return ProgramState::Approved;
    case Verdict::Reject:
      return ProgramState::Denied;
    case Verdict::Hold:
      break;
  }
  const auto covered = coveredUsers(identity, rules);
  return covered && !covered->empty() ? ProgramState::Approved : ProgramState::Pending;
}

std::optional<std::vector<std::uint32_t>> coveredUsers(const ProgramIdentity& identity,
                                                       const std::vector<ApprovalRule>& rules) {
  // Without a user only approvals for every user apply.
  if (decideFor(identity, rules, std::nullopt).verdict == Verdict::Allow) return std::nullopt;
  std::vector<std::uint32_t> uids;
  for (const ApprovalRule& rule : rules) {
    if (rule.action != RuleAction::Approve || !rule.uid) continue;
    if (std::find(uids.begin(), uids.end(), *rule.uid) != uids.end()) continue;
    if (decideFor(identity, rules, rule.uid).verdict == Verdict::Allow) uids.push_back(*rule.uid);
  }
  std::sort(uids.begin(), uids.end());
  return uids;
}

}  // namespace mailguard::rules
