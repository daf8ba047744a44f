#include "mailguard/rules/verdict.hpp"

#include <sys/socket.h>

#include <algorithm>

namespace mailguard::rules {
namespace {

// The rules that can be checked without the file's content: a denial by path. With the
// hashes cleared no approval can match by content, and an approval by path alone is not
// taken (only a Reject from this decision is used).
Decision decidePending(const ProgramIdentity& identity, bool quarantined,
                       const std::vector<ApprovalRule>& rules, std::optional<std::uint32_t> uid) {
  ProgramIdentity pathOnly = identity;
  pathOnly.sha256.clear();
  pathOnly.scriptSha256.clear();
  Decision byPath = decide(pathOnly, quarantined, rules, uid);
  if (byPath.verdict == Verdict::Reject) {
    if (quarantined) byPath.override = Override::Quarantine;
    return byPath;
  }
  return {Verdict::Hold, "its identity is being checked (not allowed before its file is hashed)",
          std::nullopt, Override::IdentityPending};
}

// "approval void: PYTHONPATH set (/home/ann/x); approve with --allow-env PYTHONPATH to allow".
std::string voidReason(const std::vector<CodeLoading>& found) {
  std::string what;
  std::vector<std::string> names;
  for (const CodeLoading& f : found) {
    what += (what.empty() ? "" : ", ") + f.display();
    if (isCodeLoadingName(f.name)) names.push_back(f.name);
  }
  std::string reason = "approval void: " + what;
  if (!names.empty()) {
    const std::string list = joinNames(names);
    reason += "; approve with --allow-env " + list + " to allow";
  }
  return reason;
}

}  // namespace

Decision decideVerdict(const VerdictInputs& in, const std::vector<ApprovalRule>& rules) {
  if (!in.identity) {
    return {Verdict::Hold, "could not attribute to a process: " + in.unattributed, std::nullopt,
            Override::Unattributed};
  }
  Decision d;
  if (in.identityPending) {
    d = decidePending(*in.identity, in.quarantined, rules, in.uid);
  } else {
    d = decide(in.identity, in.quarantined, rules, in.uid);
    if (in.quarantined) d.override = Override::Quarantine;
  }
  d.reason += in.sharedNote;

  // An approval pinned to servers (an approved client run with a bot's arguments can be
  // told to send anywhere) allows only those; any other one is the owner's to decide.
  if (d.ruleId) {
    const auto rule = std::find_if(rules.begin(), rules.end(), [&](const ApprovalRule& r) {
      return r.id == *d.ruleId && r.action == RuleAction::Approve;
    });
    if (rule != rules.end() && !rule->onlyTo.empty()) {
      d.pinned = true;
      if (d.verdict == Verdict::Allow && in.destination &&
          !matchesAny(rule->onlyTo, *in.destination)) {
        std::string asked = in.destination->dstAddress();
        if (in.destination->family == AF_INET6) asked = "[" + asked + "]";
        d.verdict = Verdict::Hold;
        d.reason = "approved only to " + toString(rule->onlyTo) + "; asked for " + asked + ":" +
                   std::to_string(in.destination->dstPort);
        d.override = Override::Destination;
      }
    }
  }

  // Approved code running with foreign code inside (LD_PRELOAD, a tracer) is the
  // attacker's, whatever its file: held, so the owner sees why.
  if (!in.tainted.empty() && d.verdict == Verdict::Allow) {
    d.verdict = Verdict::Hold;
    d.reason = "not trusted although approved: " + in.tainted +
               " (code from outside the approved file ran in it)";
    d.override = Override::Taint;
  }

  // An approval is of a file; the same file told by its environment or options to load
  // other code (a PYTHONPATH sitecustomize.py, perl -MBot) runs code nobody approved.
  // Only what the deciding approval names explicitly is allowed.
  if (!in.codeLoading.empty() && d.verdict == Verdict::Allow) {
    const auto rule = std::find_if(rules.begin(), rules.end(), [&](const ApprovalRule& r) {
      return d.ruleId && r.id == *d.ruleId;
    });
    static const std::vector<std::string> kNone;
    const auto found = notAllowed(in.codeLoading, rule != rules.end() ? rule->allowEnv : kNone);
    if (!found.empty()) {
      d.verdict = Verdict::Hold;
      d.reason = voidReason(found);
      d.override = Override::CodeLoading;
    }
  }

  // The soft tier only delays what the owner allowed; it never lifts a Hold or a Reject.
  // A declared bulk send lifts it, but nothing above (a quarantine stays a Reject).
  if (in.throttled && !in.bulkDeclared && d.verdict == Verdict::Allow) {
    d.verdict = Verdict::Hold;
    d.reason = in.throttleReason;
    d.override = Override::Throttle;
  }
  // A reset (RST) lets a bot open its next connection at once and keep the queue full; a
  // dropped SYN makes it wait for its own retransmission timeout.
  if (d.verdict == Verdict::Reject && in.queueOverloaded) {
    d.verdict = Verdict::Hold;
    d.reason += "; dropped, not reset, while the queue is overloaded";
    d.override = Override::Pressure;
  }
  return d;
}

}  // namespace mailguard::rules
