#include "agent.hpp"

#include <pwd.h>

#include <algorithm>
#include <iostream>
#include <string>
#include <string_view>

namespace mailguard::notify {
namespace {

constexpr const char* kApprove = "approve";
constexpr const char* kDeny = "deny";
constexpr const char* kDetails = "details";
// Servers invoke "default" on a click on the body: the same as Details.
constexpr const char* kDefault = "default";
constexpr std::int32_t kOutcomeExpireMs = 8000;

std::string baseName(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string userName(std::uint32_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    return found->pw_name;
  }
  return "uid " + std::to_string(uid);
}

std::string plural(std::int64_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

Agent::Agent(NotificationServer& server, std::function<void(PolicyRequest)> submit, Limits limits)
    : server_(server), submit_(std::move(submit)), limits_(limits) {}

bool Agent::supports(const std::string& capability) {
  if (!caps_) {
    auto r = server_.capabilities();
    if (!r) {
      std::cerr << "guard-notify: " << r.error().message << "\n";
      return false;  // asked again next time
    }
    caps_ = std::move(r.value());
  }
  return std::find(caps_->begin(), caps_->end(), capability) != caps_->end();
}

std::string Agent::text(const std::string& s) {
  // Paths come from other programs: where the server reads markup, a '<' in a file name
  // must not become a tag.
  if (!supports("body-markup")) return s;
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Agent::name(const Entry& e) const {
  if (!e.scriptPath.empty()) return baseName(e.scriptPath) + " (run by " + baseName(e.path) + ")";
  if (!e.path.empty()) return baseName(e.path);
  return "an unknown program";
}

Notification Agent::heldNotification(const Entry& e) {
  Notification n;
  const std::string count = e.count > 1 ? " (" + plural(e.count, "attempt", "attempts") + ")" : "";
  n.summary = e.refusal.empty() ? "Mail from " + name(e) + " is held" + count
                                : "Not authorized: mail from " + name(e) + " is still held" + count;
  std::string body;
  if (!e.refusal.empty()) body += e.refusal + "\n\n";
  body += (e.scriptPath.empty() ? e.path : e.scriptPath) + " tried to send mail";
  if (!e.lastDestination.empty()) body += " to " + e.lastDestination;
  body += ".\nIt waits until you approve or deny it.";
  if (e.details) {
    body += "\n\nProgram: " + e.path;
    if (!e.scriptPath.empty()) body += "\nScript: " + e.scriptPath;
    if (!e.sha256.empty()) body += "\nSHA-256: " + e.sha256;
    body += "\nRun by: " + userName(e.uid);
    body += "\nHeld: " + plural(e.count, "attempt", "attempts");
    body +=
        "\nIn a terminal: guardctl approve " + e.target + (e.script.empty() ? "" : " " + e.script);
  }
  n.body = text(body);
  if (supports("actions")) {
    n.actions = {{kApprove, "Approve"}, {kDeny, "Deny"}};
    if (!e.details) n.actions.emplace_back(kDetails, "Details");
  }
  n.urgency = e.refusal.empty() ? 1 : 2;
  n.expireMs = 0;  // the program waits as long as it takes, and so does the question
  return n;
}

Notification Agent::alertNotification(const Entry& e) {
  Notification n;
  std::string body = e.alertSummary;
  const bool aboutProgram = e.alertKind == "detector" || e.alertKind == "audit";
  if (e.alertKind == "audit") {
    n.summary = "Open mail relay found";
    body +=
        "\nStrangers can send spam through this computer. guard-tui (Audit) says how to close it.";
  } else if (e.alertKind == "backscatter") {
    n.summary = "Bounces for mail you did not send";
    body +=
        "\nSomeone sends spam in your name. guardctl backscatter prints a filter for your mail "
        "program.";
  } else if (e.alertKind == "household-relay") {
    n.summary = "Open mail relay on your network";
    body +=
        "\nAnother computer at home passes on mail for anyone on your LAN. guardctl audit says "
        "how to close it.";
  } else if (e.alertKind == "blocklist") {
    // guardd's summary names the list and the address; the cause and the fix need more
    // room than a notification has.
    n.summary = "Your public address is on a spam blocklist";
    body += "\nSee guardctl outside (cause and fix).";
  } else {
    n.summary = name(e) + " is quarantined";
    body +=
        "\nIt behaves like a spam bot: its mail is blocked until you release it (guardctl "
        "release " +
        e.target + ").";
  }
  if (e.details) {
    for (const auto& r : e.alertReasons) body += "\n- " + r;
    if (aboutProgram && !e.path.empty())
      body += "\nProgram: " + e.path + ", run by " + userName(e.uid);
  }
  n.body = text(body);
  if (supports("actions") && !e.details) n.actions = {{kDetails, "Details"}};
  n.urgency = 2;
  n.expireMs = 0;
  return n;
}

Notification Agent::overflowNotification(const Entry& e) const {
  Notification n;
  n.summary = plural(e.count, "more program is held", "more programs are held");
  n.body = "mailguard holds their mail until you decide. Open guard-tui, or run: guardctl programs";
  n.expireMs = 0;
  return n;
}

bool Agent::takeNewSlot(SteadyTime now) {
  std::erase_if(recentNew_, [&](SteadyTime t) { return now - t >= limits_.window; });
  if (recentNew_.size() >= limits_.newPerWindow) return false;
  recentNew_.push_back(now);
  return true;
}

void Agent::show(Entry& e, const Notification& n, SteadyTime now) {
  auto r = server_.show(e.id, n);
  if (!r) {
    std::cerr << "guard-notify: " << r.error().message << "\n";
    caps_.reset();  // the server may have changed: ask again
    e.dirty = true;
    e.lastShown = now;  // retried after updateEvery, not in a tight loop
    return;
  }
  e.id = r.value();
  e.lastShown = now;
  e.dirty = false;
}

void Agent::present(Entry& e, SteadyTime now, bool urgent) {
  if (e.dismissed || e.folded) return;
  e.dirty = true;
  if (e.busy) return;  // shown when the policy call ended
  if (e.id == 0 && e.lastShown == SteadyTime{}) {
    if (!takeNewSlot(now)) {
      e.folded = true;
      e.dirty = false;
      overflow_.count++;
      overflow_.dirty = true;
      if (overflow_.id == 0 || now - overflow_.lastShown >= limits_.updateEvery) {
        show(overflow_, overflowNotification(overflow_), now);
      }
      return;
    }
  } else if (!urgent && now - e.lastShown < limits_.updateEvery) {
    return;  // flush() shows it when due
  }
  show(e, e.kind == Kind::Alert ? alertNotification(e) : heldNotification(e), now);
}

void Agent::attemptRecorded(const dbus::Attempt& a, SteadyTime now) {
  const std::string key = a.programId != 0 ? "program:" + std::to_string(a.programId)
                                           : "path:" + a.path + "\n" + a.scriptPath;
  // Only a hold asks a question; once asked, the program's rejected attempts (the detector
  // throttles a bot that keeps trying) count too: they are the same burst.
  if (a.verdict != "hold" && (a.verdict != "reject" || !entries_.contains(key))) return;
  auto [it, fresh] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (fresh) {
    e.kind = Kind::Held;
    e.programId = a.programId;
    e.target = a.programId != 0 ? std::to_string(a.programId) : a.path;
    e.script = a.programId != 0 ? "" : a.scriptPath;
    e.path = a.path;
    e.scriptPath = a.scriptPath;
    e.uid = a.uid;
    // guardd emits ProgramChanged, then AttemptRecorded, for the attempt that made a
    // program new or pending; both carry that attempt's time, and the program's count
    // includes it.
    if (a.programId != 0 && lastChanged_ && lastChanged_->id == a.programId &&
        lastChanged_->lastAttemptUs == a.timeUs) {
      e.baseline = lastChanged_->attempts - 1;
    }
  }
  if (lastChanged_ && lastChanged_->id == a.programId) lastChanged_.reset();
  e.signalled++;
  e.count = std::max(e.count, e.signalled);
  e.lastActivity = now;
  e.lastDestination = a.dst.find(':') != std::string::npos
                          ? "[" + a.dst + "]:" + std::to_string(a.dstPort)
                          : a.dst + ":" + std::to_string(a.dstPort);
  present(e, now);
}

void Agent::programChanged(const dbus::Program& p, SteadyTime now) {
  auto it = entries_.find("program:" + std::to_string(p.id));
  if (it == entries_.end()) {
    lastChanged_ = p;
    return;
  }
  Entry& e = it->second;
  e.sha256 = p.sha256;
  if (e.kind == Kind::Held && p.state != "approved" && p.state != "denied") {
    counted(e, p.attempts, now);
  }
  if (e.kind != Kind::Held || e.busy || (p.state != "approved" && p.state != "denied")) return;
  // Decided elsewhere (guardctl, guard-tui, another session): the question is answered.
  if (e.id != 0) {
    Notification n;
    n.summary = (p.state == "approved" ? "Approved: " : "Denied: ") + name(e);
    n.body = text(p.state == "approved" ? "Its mail goes out from now on."
                                        : "Its mail is refused from now on.");
    n.expireMs = kOutcomeExpireMs;
    show(e, n, now);
  }
  entries_.erase(it);
}

void Agent::alertRaised(const dbus::Alert& a, SteadyTime now) {
  const bool quarantine = a.kind == "detector" && a.tier == "hard";
  // guardd raises one alert per flood, per open relay found on the LAN and per new
  // blocklist listing, so each is worth one notification.
  const bool presented = quarantine || a.kind == "audit" || a.kind == "backscatter" ||
                         a.kind == "household-relay" || a.kind == "blocklist";
  if (!presented) return;
  Entry& e = entries_["alert:" + std::to_string(a.id)];
  e.kind = Kind::Alert;
  e.alertKind = a.kind;
  e.alertSummary = a.summary;
  e.alertReasons = a.reasons;
  e.path = a.path;
  e.uid = a.uid;
  e.target = a.programId != 0 ? std::to_string(a.programId) : a.path;
  present(e, now, true);
}

Agent::Entry* Agent::byNotification(std::uint32_t id) {
  if (id == 0) return nullptr;
  for (auto& [key, e] : entries_) {
    if (e.id == id) return &e;
  }
  return nullptr;
}

void Agent::actionInvoked(std::uint32_t id, const std::string& key, SteadyTime now) {
  Entry* e = byNotification(id);
  if (e == nullptr) return;  // another program's notification, or one already answered
  if (key == kDetails || key == kDefault) {
    e->details = true;
    present(*e, now, true);
    return;
  }
  if (e->kind != Kind::Held || (key != kApprove && key != kDeny) || e->busy) return;
  const bool approve = key == kApprove;
  e->busy = true;
  e->refusal.clear();
  Notification n;
  n.summary = (approve ? "Approving " : "Denying ") + name(*e) + "...";
  n.body = text("mailguard checks that you may (an administrator's password may be asked for).");
  n.expireMs = 0;
  show(*e, n, now);
  submit_(PolicyRequest{approve ? PolicyRequest::Verb::Approve : PolicyRequest::Verb::Deny,
                        e->target, e->script});
}

void Agent::policyDone(const PolicyOutcome& o, SteadyTime now) {
  const bool approve = o.request.verb == PolicyRequest::Verb::Approve;
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const auto& kv) {
    return kv.second.kind == Kind::Held && kv.second.busy && kv.second.target == o.request.target &&
           kv.second.script == o.request.script;
  });
  if (it == entries_.end()) return;
  Entry& e = it->second;
  e.busy = false;
  if (!o.error) {
    Notification n;
    n.summary = (approve ? "Approved: " : "Denied: ") + name(e);
    n.body = text(approve ? "Its mail goes out from now on." : "Its mail is refused from now on.");
    n.expireMs = kOutcomeExpireMs;
    show(e, n, now);
    entries_.erase(it);
    return;
  }
  const char* verb = approve ? "approve" : "deny";
  if (o.error->kind == dbus::ClientError::Kind::NotAuthorized) {
    // guardd's reason says what would be allowed (root, polkit and its agent, group
    // mailguard).
    e.refusal = std::string("Not authorized to ") + verb + " it: " + o.error->message +
                "\nAsk an administrator, join group mailguard, or in a terminal: sudo guardctl " +
                verb + " " + e.target;
  } else {
    e.refusal = std::string("Could not ") + verb + " it: " + o.error->message;
  }
  std::cerr << "guard-notify: Failed to " << verb << " '" << e.target << "': " << o.error->message
            << "\n";
  present(e, now, true);
}

void Agent::closed(std::uint32_t id, CloseReason reason) {
  if (id == 0) return;
  if (overflow_.id == id) {
    overflow_.id = 0;
    overflow_.dismissed = reason != CloseReason::Closed;
    return;
  }
  Entry* e = byNotification(id);
  if (e == nullptr) return;
  e->id = 0;
  // Closed by the user or expired by the server's own policy: no more updates for it;
  // the program stays held and guard-tui lists it.
  e->dismissed = true;
}

void Agent::flush(SteadyTime now) {
  for (auto& [key, e] : entries_) {
    if (e.dirty && !e.busy && !e.dismissed && !e.folded &&
        now - e.lastShown >= limits_.updateEvery) {
      show(e, e.kind == Kind::Alert ? alertNotification(e) : heldNotification(e), now);
    }
  }
  if (overflow_.dirty && !overflow_.dismissed && now - overflow_.lastShown >= limits_.updateEvery) {
    show(overflow_, overflowNotification(overflow_), now);
  }
}

bool Agent::wantsCount(const Entry& e, SteadyTime now) const {
  return e.kind == Kind::Held && e.programId != 0 && !e.dismissed && !e.folded &&
         now - e.lastActivity < limits_.readCountsFor;
}

bool Agent::countsDue(SteadyTime now) const {
  return std::any_of(entries_.begin(), entries_.end(), [&](const auto& kv) {
    return wantsCount(kv.second, now) && now - kv.second.lastRead >= limits_.updateEvery;
  });
}

void Agent::counted(Entry& e, std::int64_t attempts, SteadyTime now) {
  if (!e.baseline) {
    // No exact start (the program was pending before this agent saw it, or the signal
    // that marks the start was lost). Every attempt signalled so far is in guardd's
    // count, and maybe more whose signals are still queued: this baseline is never below
    // the true one, so the count never overstates.
    e.baseline = attempts - e.signalled;
  }
  const std::int64_t n = attempts - *e.baseline;
  if (n <= e.count) return;
  e.count = n;
  e.lastActivity = now;
  present(e, now);
}

void Agent::programsRead(const std::vector<dbus::Program>& programs, SteadyTime now) {
  for (auto& [key, e] : entries_) {
    if (!wantsCount(e, now) || now - e.lastRead < limits_.updateEvery) continue;
    e.lastRead = now;
    const auto p = std::find_if(programs.begin(), programs.end(),
                                [&](const dbus::Program& q) { return q.id == e.programId; });
    if (p != programs.end()) counted(e, p->attempts, now);
  }
}

std::optional<SteadyTime> Agent::nextDue() const {
  std::optional<SteadyTime> due;
  auto consider = [&](const Entry& e) {
    if (!e.dirty || e.busy || e.dismissed || e.folded) return;
    const auto t = e.lastShown + limits_.updateEvery;
    if (!due || t < *due) due = t;
  };
  for (const auto& [key, e] : entries_) {
    consider(e);
    // Reading counts is due again updateEvery after the last read, if still wanted then.
    const auto t = e.lastRead + limits_.updateEvery;
    if (wantsCount(e, t) && (!due || t < *due)) due = t;
  }
  consider(overflow_);
  return due;
}

}  // namespace mailguard::notify
