#include "mailguard/tui/model.hpp"

#include <algorithm>
#include <set>
#include <utility>

namespace mailguard::tui {
namespace {

constexpr std::int64_t kDayUs = 86'400'000'000;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool contains(std::string_view haystack, const std::string& needleLower) {
  return lower(haystack).find(needleLower) != std::string::npos;
}

int stateRank(const std::string& state) {
  // What needs the owner first: pending, then suspected bots, then decided ones.
  if (state == "pending") return 0;
  if (state == "quarantined") return 1;
  if (state == "denied") return 2;
  return 3;
}

bool matchesProgram(const State& s, const Program& p, const std::string& f) {
  return contains(p.path, f) || contains(p.scriptPath, f) || contains(p.state, f) ||
         contains(userName(s, p.uid), f) || lower(p.sha256).starts_with(f);
}

bool matchesAttempt(const State& s, const Attempt& a, const std::string& f) {
  return contains(a.path, f) || contains(a.scriptPath, f) || contains(a.dst, f) ||
         contains(std::to_string(a.dstPort), f) || contains(a.verdict, f) ||
         contains(a.reason, f) || contains(userName(s, a.uid), f) ||
         (a.pid != 0 && std::to_string(a.pid) == f);
}

bool matchesAlert(const State& s, const Alert& a, const std::string& f) {
  if (contains(a.path, f) || contains(a.tier, f) || contains(a.kind, f) || contains(a.summary, f) ||
      contains(userName(s, a.uid), f)) {
    return true;
  }
  return std::any_of(a.reasons.begin(), a.reasons.end(),
                     [&](const std::string& r) { return contains(r, f); });
}

int listSize(const State& s) {
  switch (s.screen) {
    case Screen::Programs:
      return static_cast<int>(visiblePrograms(s).size());
    case Screen::Attempts:
      return static_cast<int>(visibleAttempts(s).size());
    case Screen::Alerts:
      return static_cast<int>(visibleAlerts(s).size());
    case Screen::Audit:
      return static_cast<int>(visibleAuditResults(s).size());
    case Screen::Outside:
      return 0;  // a report, not a list
  }
  return 0;
}

// Puts the selection on an item that is still shown (the same id if it is, else the
// row where it was) and scrolls so that it is visible.
void resolveSelection(State& s) {
  const int rows = std::max(1, layoutFor(s, s.size).listRows);
  auto fix = [&](auto items, auto exists, std::int64_t& chosen, std::int64_t& selected, int& hint,
                 int& top) {
    const int n = static_cast<int>(items.size());
    int row = -1;
    for (int i = 0; i < n; ++i) {
      if (items[static_cast<std::size_t>(i)]->id == chosen) row = i;
    }
    if (row >= 0) {
      selected = chosen;
    } else if (n > 0) {
      // Hidden by the filter or gone: the cursor rests near where it was.
      row = std::clamp(hint, 0, n - 1);
      selected = items[static_cast<std::size_t>(row)]->id;
      if (!exists(chosen)) chosen = selected;
    }
    if (n == 0) {
      selected = 0;
      row = 0;
      if (!exists(chosen)) chosen = 0;
    }
    hint = row;
    if (row < top) top = row;
    if (row >= top + rows) top = row - rows + 1;
    top = std::clamp(top, 0, std::max(0, n - rows));
  };
  auto programExists = [&](std::int64_t id) { return findProgram(s, id) != nullptr; };
  auto attemptExists = [&](std::int64_t id) {
    return std::any_of(s.attempts.begin(), s.attempts.end(),
                       [&](const Attempt& a) { return a.id == id; });
  };
  auto alertExists = [&](std::int64_t id) {
    return std::any_of(s.alerts.begin(), s.alerts.end(),
                       [&](const Alert& a) { return a.id == id; });
  };
  fix(visiblePrograms(s), programExists, s.chosenProgram, s.selectedProgram, s.programRowHint,
      s.programTop);
  fix(visibleAttempts(s), attemptExists, s.chosenAttempt, s.selectedAttempt, s.attemptRowHint,
      s.attemptTop);
  fix(visibleAlerts(s), alertExists, s.chosenAlert, s.selectedAlert, s.alertRowHint, s.alertTop);
  // The audit's first list row is its summary.
  const int auditRows = std::max(1, rows - 1);
  const int n = static_cast<int>(visibleAuditResults(s).size());
  s.auditRow = n == 0 ? 0 : std::clamp(s.auditRow, 0, n - 1);
  if (s.auditRow < s.auditTop) s.auditTop = s.auditRow;
  if (s.auditRow >= s.auditTop + auditRows) s.auditTop = s.auditRow - auditRows + 1;
  s.auditTop = std::clamp(s.auditTop, 0, std::max(0, n - auditRows));
}

void moveSelection(State& s, int delta, bool absolute) {
  const int n = listSize(s);
  if (n == 0) return;
  auto move = [&](auto items, std::int64_t& chosen, std::int64_t& selected, int& hint) {
    int row = absolute ? delta : std::max(0, selectedRow(s)) + delta;
    row = std::clamp(row, 0, n - 1);
    selected = items[static_cast<std::size_t>(row)]->id;
    chosen = selected;  // the owner's choice now
    hint = row;
  };
  if (s.screen == Screen::Programs) {
    move(visiblePrograms(s), s.chosenProgram, s.selectedProgram, s.programRowHint);
  }
  if (s.screen == Screen::Attempts) {
    move(visibleAttempts(s), s.chosenAttempt, s.selectedAttempt, s.attemptRowHint);
  }
  if (s.screen == Screen::Alerts) {
    move(visibleAlerts(s), s.chosenAlert, s.selectedAlert, s.alertRowHint);
  }
  if (s.screen == Screen::Audit) {
    s.auditRow = std::clamp(absolute ? delta : s.auditRow + delta, 0, n - 1);
  }
}

// PgUp/PgDn turn a page, as in a pager: the window and the cursor move by a screenful,
// so "rows 1-19" becomes "rows 20-38" (the ends clamp both).
void movePage(State& s, int direction) {
  const int rows = std::max(1, layoutFor(s, s.size).listRows);
  int* top = s.screen == Screen::Programs   ? &s.programTop
             : s.screen == Screen::Attempts ? &s.attemptTop
             : s.screen == Screen::Alerts   ? &s.alertTop
                                            : &s.auditTop;
  if (s.screen == Screen::Outside) return;
  *top = std::max(0, *top + direction * rows);
  moveSelection(s, direction * rows, false);
}

// Near the oldest attempt in memory, ask guardd for the page before it (Attempts takes
// before_id: pages by id, so rows recorded meanwhile do not shift it).
void maybeLoadOlder(State& s, Effects& fx) {
  if (s.screen != Screen::Attempts || !s.connected || !s.olderAttempts || s.loadingOlder ||
      s.attempts.empty() || s.attempts.size() >= kMaxAttempts) {
    return;
  }
  const int rows = std::max(1, layoutFor(s, s.size).listRows);
  if (selectedRow(s) + rows < listSize(s)) return;
  s.loadingOlder = true;
  Command c{Command::Kind::LoadOlderAttempts, 0, 0, s.attempts.back().id};
  fx.commands.push_back(std::move(c));
}

void info(State& s, std::string text) { s.message = Message{Message::Kind::Info, std::move(text)}; }
void error(State& s, std::string text) {
  s.message = Message{Message::Kind::Error, std::move(text)};
}

std::string describe(const Program& p) {
  return p.scriptPath.empty() ? p.path : p.scriptPath + " (run by " + p.path + ")";
}

// The program an action from the current screen applies to, if any.
const Program* actionTarget(const State& s) {
  if (s.screen == Screen::Programs) return selectedProgram(s);
  if (s.screen == Screen::Attempts) {
    const auto* a = selectedAttempt(s);
    return a ? findProgram(s, a->programId) : nullptr;
  }
  if (s.screen == Screen::Alerts) {
    const auto* a = selectedAlert(s);
    return a ? findProgram(s, a->programId) : nullptr;
  }
  return nullptr;
}

Command::Kind commandFor(Action a) {
  switch (a) {
    case Action::Approve:
      return Command::Kind::Approve;
    case Action::Deny:
      return Command::Kind::Deny;
    case Action::Forget:
      return Command::Kind::Forget;
    case Action::Acknowledge:
      return Command::Kind::AckAlert;
  }
  return Command::Kind::Reload;
}

void acknowledge(State& s, Effects& fx) {
  if (s.screen != Screen::Alerts) return;
  if (!s.connected) {
    error(s, "Not connected to guardd: cannot acknowledge now");
    return;
  }
  const Alert* a = selectedAlert(s);
  if (!a) {
    info(s, "No alert selected");
    return;
  }
  if (a->acknowledged) {
    info(s, "Already acknowledged: alert " + std::to_string(a->id));
    return;
  }
  if (s.acksInFlight.contains(a->id)) {
    info(s, "Busy: still acknowledging alert " + std::to_string(a->id) +
                "... waiting for authorization");
    return;
  }
  s.acksInFlight.insert(a->id);
  fx.commands.push_back(Command{Command::Kind::AckAlert, a->programId, a->id, {}, {}});
  info(s, "Acknowledging alert " + std::to_string(a->id) + "... waiting for authorization");
}

void runOutside(State& s, Effects& fx) {
  if (!s.connected) {
    error(s, "Not connected to guardd: cannot run the outside check now");
    return;
  }
  if (s.outsideRequested) {
    info(s, "The outside check is already running");
    return;
  }
  s.outsideRequested = true;
  s.outsideError.clear();
  fx.commands.push_back(Command{Command::Kind::RunOutside, 0, 0, {}, {}});
  info(s, "Checking the blocklists and your domains ... (the dashboard stays usable)");
}

void runAudit(State& s, Effects& fx) {
  if (s.screen != Screen::Audit) return;
  if (!s.connected) {
    error(s, "Not connected to guardd: cannot run an audit now");
    return;
  }
  if (auditRunning(s)) {
    info(s, "An audit is already running");
    return;
  }
  s.auditRequested = true;
  s.auditError.clear();
  fx.commands.push_back(Command{Command::Kind::RunAudit, 0, 0, {}, {}});
  info(s, "Auditing the mail servers on this PC ... (the dashboard stays usable)");
}

// "approving", for "busy" and "waiting" lines.
const char* doing(Action action) {
  switch (action) {
    case Action::Approve:
      return "approving";
    case Action::Deny:
      return "denying";
    case Action::Forget:
      return "forgetting";
    case Action::Acknowledge:
      return "acknowledging";
  }
  return "?";
}

std::string trim(std::string_view t) {
  const auto b = t.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  const auto e = t.find_last_not_of(" \t");
  return std::string(t.substr(b, e - b + 1));
}

std::string joinList(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// Sends a policy call for program p and remembers it until the answer comes.
void send(State& s, Effects& fx, Command c, const Program& p, Action action,
          const std::string& detail = {}) {
  s.inFlight[p.id] = PendingCall{action, describe(p)};
  fx.commands.push_back(std::move(c));
  std::string text = doing(action);
  text[0] = static_cast<char>(text[0] - 'a' + 'A');
  info(s, text + " " + describe(p) + detail + "... waiting for authorization");
}

void openApproveForm(State& s) {
  if (s.screen == Screen::Audit) return;
  if (!s.connected) {
    error(s, "Not connected to guardd: cannot approve now");
    return;
  }
  const Program* p = actionTarget(s);
  if (!p) {
    info(s, "No program selected");
    return;
  }
  if (const auto it = s.inFlight.find(p->id); it != s.inFlight.end()) {
    info(s, "Busy: still " + std::string(doing(it->second.action)) + " " + it->second.subject +
                "... waiting for authorization");
    return;
  }
  s.form = ApproveForm{p->id, describe(*p), {}, joinList(suggestedAllowEnv(s, p->id)), 0};
}

void onFormKey(State& s, const Key& key, Effects& fx) {
  auto& form = *s.form;
  std::string& field = form.field == 0 ? form.onlyTo : form.allowEnv;
  switch (key.code) {
    case KeyCode::Char:
      field += key.text;
      return;
    case KeyCode::Backspace:
      while (!field.empty()) {
        const auto c = static_cast<unsigned char>(field.back());
        field.pop_back();
        if ((c & 0xC0) != 0x80) break;
      }
      return;
    case KeyCode::Tab:
    case KeyCode::BackTab:
    case KeyCode::Up:
    case KeyCode::Down:
      form.field = 1 - form.field;
      return;
    case KeyCode::Escape:
      s.form.reset();
      info(s, "Cancelled: nothing was changed");
      return;
    case KeyCode::Enter: {
      const ApproveForm f = form;
      s.form.reset();
      const Program* p = findProgram(s, f.programId);
      if (!s.connected || !p) {
        error(s, "Not done: guardd is not connected");
        return;
      }
      Command c{Command::Kind::Approve, p->id, 0, 0, splitList(f.onlyTo), splitList(f.allowEnv)};
      std::string detail;
      if (!c.onlyTo.empty()) detail += " only to " + joinList(c.onlyTo);
      if (!c.allowEnv.empty()) detail += " with " + joinList(c.allowEnv);
      send(s, fx, std::move(c), *p, Action::Approve, detail);
      return;
    }
    default:
      return;
  }
}

void requestAction(State& s, Action action) {
  if (s.screen == Screen::Audit) return;
  if (!s.connected) {
    error(s, "Not connected to guardd: cannot " + std::string(verb(action)) + " now");
    return;
  }
  const Program* p = actionTarget(s);
  if (!p) {
    info(s, s.screen == Screen::Attempts ? "This attempt has no program to act on"
            : s.screen == Screen::Alerts ? "This alert's program is not known to guardd any more"
                                         : "No program selected");
    return;
  }
  const std::string what = describe(*p);
  if (const auto it = s.inFlight.find(p->id); it != s.inFlight.end()) {
    info(s, "Busy: still " + std::string(doing(it->second.action)) + " " + it->second.subject +
                "... waiting for authorization");
    return;
  }
  switch (action) {
    case Action::Approve:
      if (p->state == "approved") {
        info(s, "Already approved: " + what);
        return;
      }
      // Approving inline code lets anything one user types or pipes into the interpreter
      // send mail: too wide for one key; guardctl names the user and warns.
      if (p->kind == "inline") {
        info(s, "Inline code (" + p->path +
                    " -c/-e/stdin) is not approved here: use "
                    "sudo guardctl approve --inline " +
                    p->path + " --user NAME");
        return;
      }
      // Approving widens what may send mail: ask first.
      s.confirm = Confirmation{action, p->id,
                               p->state == "quarantined"
                                   ? "Approve a program quarantined as a suspected spam bot?"
                                   : "Approve so it may send mail?",
                               what};
      return;
    case Action::Forget:
      // Throws away the owner's decision; its next attempt is held and asked about again.
      s.confirm = Confirmation{action, p->id, "Forget the decision about", what};
      return;
    case Action::Deny:
      if (p->state == "denied") {
        info(s, "Already denied: " + what);
        return;
      }
      // One key must not undo an approval by surprise: ask, naming the program. Denying
      // deletes the mail the MTA holds for it, and the question says how much.
      if (p->heldMessages > 0) {
        const std::string n = std::to_string(p->heldMessages);
        s.confirm = Confirmation{action, p->id,
                                 "Deny and DELETE its " + n +
                                     (p->heldMessages == 1 ? " held message?" : " held messages?"),
                                 what};
        return;
      }
      s.confirm = Confirmation{action, p->id,
                               p->state == "approved"
                                   ? "Deny an APPROVED program (its mail will be refused)?"
                                   : "Deny so its mail connections are refused?",
                               what};
      return;
    case Action::Acknowledge:
      return;
  }
}

void switchScreen(State& s, Screen screen, Effects& fx) {
  s.screen = screen;
  s.details = false;
  // The audit may have changed (guardd audits again when listeners change): ask once.
  if (screen == Screen::Audit && s.connected && !s.auditRequested) {
    fx.commands.push_back(Command{Command::Kind::LoadAudit, 0, 0});
  }
  // A check guardd ran by itself (daily) since: read the last one on every visit.
  if (screen == Screen::Outside && s.connected && !s.outsideRequested) {
    fx.commands.push_back(Command{Command::Kind::LoadOutside, 0, 0});
  }
}

void onKey(State& s, const Key& key, Effects& fx) {
  fx.redraw = true;
  if (s.help) {
    s.help = false;
    return;
  }
  if (s.form) {
    onFormKey(s, key, fx);
    return;
  }
  if (s.confirm) {
    if (key.code == KeyCode::Char && (key.text == "y" || key.text == "Y")) {
      const auto c = *s.confirm;
      s.confirm.reset();
      const Program* p = findProgram(s, c.programId);
      if (!s.connected || !p) {
        error(s, "Not done: guardd is not connected");
        return;
      }
      send(s, fx, Command{commandFor(c.action), c.programId, 0, {}, {}}, *p, c.action);
    } else if ((key.code == KeyCode::Char &&
                (key.text == "n" || key.text == "N" || key.text == "q")) ||
               key.code == KeyCode::Escape) {
      info(s, std::string("Cancelled: nothing was changed"));
      s.confirm.reset();
    }
    return;
  }
  if (s.editingFilter) {
    switch (key.code) {
      case KeyCode::Char:
        s.filter += key.text;
        break;
      case KeyCode::Backspace:
        // Drop one whole UTF-8 character.
        while (!s.filter.empty()) {
          const auto c = static_cast<unsigned char>(s.filter.back());
          s.filter.pop_back();
          if ((c & 0xC0) != 0x80) break;
        }
        break;
      case KeyCode::Enter:
        s.editingFilter = false;
        break;
      case KeyCode::Escape:
        s.editingFilter = false;
        s.filter.clear();
        break;
      default:
        break;
    }
    return;
  }
  s.message.reset();
  switch (key.code) {
    case KeyCode::Up:
      moveSelection(s, -1, false);
      return;
    case KeyCode::Down:
      moveSelection(s, 1, false);
      maybeLoadOlder(s, fx);
      return;
    case KeyCode::PageUp:
      movePage(s, -1);
      return;
    case KeyCode::PageDown:
      movePage(s, 1);
      maybeLoadOlder(s, fx);
      return;
    case KeyCode::Home:
      moveSelection(s, 0, true);
      return;
    case KeyCode::End:
      moveSelection(s, listSize(s) - 1, true);
      maybeLoadOlder(s, fx);
      return;
    case KeyCode::Tab:
    case KeyCode::Right:
      switchScreen(s, static_cast<Screen>((static_cast<int>(s.screen) + 1) % kScreenCount), fx);
      return;
    case KeyCode::BackTab:
    case KeyCode::Left:
      switchScreen(
          s, static_cast<Screen>((static_cast<int>(s.screen) + kScreenCount - 1) % kScreenCount),
          fx);
      return;
    case KeyCode::Enter:
      if (listSize(s) == 0) return;
      s.details = !s.details;
      if (s.details && s.connected) {
        if (const Program* p = actionTarget(s)) {
          fx.commands.push_back(Command{Command::Kind::LoadProgramAttempts, p->id});
        }
      }
      return;
    case KeyCode::Escape:
      if (s.details) {
        s.details = false;
      } else {
        s.filter.clear();
      }
      return;
    case KeyCode::Backspace:
      return;
    case KeyCode::Char:
      break;
  }
  const std::string& c = key.text;
  if (c == "q") {
    fx.quit = true;
  } else if (c == "?" || c == "h") {
    s.help = true;
  } else if (c == "1" || c == "2" || c == "3" || c == "4") {
    switchScreen(s, static_cast<Screen>(c[0] - '1'), fx);
  } else if (c == "5" || c == "o") {
    switchScreen(s, Screen::Outside, fx);
  } else if (c == "k") {
    moveSelection(s, -1, false);
  } else if (c == "j") {
    moveSelection(s, 1, false);
    maybeLoadOlder(s, fx);
  } else if (c == "g") {
    moveSelection(s, 0, true);
  } else if (c == "G") {
    moveSelection(s, listSize(s) - 1, true);
    maybeLoadOlder(s, fx);
  } else if (c == "/") {
    s.editingFilter = true;
  } else if (c == "s") {
    s.sort = static_cast<ProgramSort>((static_cast<int>(s.sort) + 1) % 4);
    info(s, std::string("Programs sorted by ") + toString(s.sort));
  } else if (c == "a") {
    requestAction(s, Action::Approve);
  } else if (c == "A") {
    openApproveForm(s);
  } else if (c == "v") {
    if (s.screen != Screen::Attempts) {
      info(s, "v filters the Attempts list by verdict (screen 2)");
      return;
    }
    // The rows line under the list names the verdicts shown.
    s.verdictFilter = static_cast<VerdictFilter>((static_cast<int>(s.verdictFilter) + 1) % 3);
  } else if (c == "d") {
    requestAction(s, Action::Deny);
  } else if (c == "f") {
    requestAction(s, Action::Forget);
  } else if (c == "K") {
    acknowledge(s, fx);
  } else if (c == "R") {
    if (s.screen == Screen::Outside) {
      runOutside(s, fx);
    } else {
      runAudit(s, fx);
    }
  } else if (c == "r") {
    if (s.connected) {
      fx.commands.push_back(Command{Command::Kind::Reload, 0});
      info(s, "Reloading from guardd ...");
    }
  } else {
    fx.redraw = false;
  }
}

void upsertProgram(State& s, const Program& p) {
  for (auto& q : s.programs) {
    // One row per program (path, script, kind): a new version (content) of a listed
    // program takes over its row, and the selection goes with it.
    const bool newVersion =
        q.id < p.id && q.path == p.path && q.scriptPath == p.scriptPath && q.kind == p.kind;
    if (q.id != p.id && !newVersion) continue;
    // Signals carry no version count: keep the one loaded, one more for a new version.
    const auto known = std::max<std::uint32_t>(q.versions, 1);
    if (s.selectedProgram == q.id) s.selectedProgram = p.id;
    q = p;
    if (q.versions == 0) q.versions = newVersion ? known + 1 : known;
    return;
  }
  s.programs.push_back(p);
}

void addAlert(State& s, const Alert& a) {
  for (auto& known : s.alerts) {
    if (known.id == a.id) {
      known = a;
      return;
    }
  }
  // Newest first: ids grow with time.
  auto at =
      std::find_if(s.alerts.begin(), s.alerts.end(), [&](const Alert& k) { return k.id < a.id; });
  s.alerts.insert(at, a);
  if (s.alerts.size() > kMaxAlerts) s.alerts.pop_back();
  if (!a.acknowledged) s.newAlerts.insert(a.id);
}

void addAttempt(State& s, const Attempt& a) {
  if (a.id <= s.countedUpToId) {
    // Already part of the load that a signal raced with.
    for (const auto& known : s.attempts) {
      if (known.id == a.id) return;
    }
  } else {
    if (a.timeUs >= s.todayStartUs) {
      if (a.verdict == "allow") ++s.today.allowed;
      if (a.verdict == "hold") ++s.today.held;
      if (a.verdict == "reject") ++s.today.rejected;
    }
    s.countedUpToId = a.id;
  }
  s.attempts.push_front(a);
  if (s.attempts.size() > kMaxAttempts) {
    s.attempts.pop_back();
    s.olderAttempts = true;
  }
  if (auto it = s.programAttempts.find(a.programId); it != s.programAttempts.end()) {
    it->second.insert(it->second.begin(), a);
    if (it->second.size() > kDetailAttempts) it->second.pop_back();
  }
  // guardd announces a program only when its state changes or on its first attempt (and
  // then the snapshot already counts this attempt: same time); count the others here.
  for (auto& p : s.programs) {
    if (p.id == a.programId && a.timeUs > p.lastAttemptUs) {
      ++p.attempts;
      p.lastAttemptUs = a.timeUs;
    }
  }
}

std::string failureText(const ActionFailed& f) {
  using Kind = dbus::ClientError::Kind;
  switch (f.error.kind) {
    case Kind::NotAuthorized:
      // guardd's reason says what would have been allowed (root, polkit's action, the
      // group whose members use their own password).
      return "Not authorized: " + f.error.message;
    case Kind::NotRunning:
    case Kind::NoBus:
      return "Could not " + std::string(verb(f.action)) + ": guardd is not reachable";
    default:
      return "Could not " + std::string(verb(f.action)) + ": " + f.error.message;
  }
}

}  // namespace

Layout layoutFor(const State& state, Size size) {
  Layout l;
  l.keysRow = size.rows - 1;
  l.messageRow = size.rows - 2;
  const int available = std::max(0, l.messageRow - l.listTop);
  const bool hasList = state.screen != Screen::Outside;  // the Outside screen is one report
  if (state.details && hasList && available >= 12) {
    // Alert evidence and audit findings are longer than a program's details; the audit
    // lists few servers.
    switch (state.screen) {
      case Screen::Alerts:
        l.detailsRows = std::min(12, available * 2 / 3);
        break;
      case Screen::Audit:
        l.detailsRows = std::min(16, available - 5);
        break;
      default:
        l.detailsRows = std::min(10, available / 2);
        break;
    }
  }
  l.listRows = available - l.detailsRows;
  l.detailsTop = l.listTop + l.listRows;
  return l;
}

Effects update(State& s, const Event& event) {
  Effects fx;
  std::visit(
      Overloaded{
          [&](const KeyPressed& e) { onKey(s, e.key, fx); },
          [&](const Resized& e) {
            s.size = e.size;
            fx.redraw = true;
          },
          [&](const Tick& e) {
            const auto day = localDayStart(e.nowUs, e.utcOffsetSec);
            if (s.todayStartUs != 0 && day != s.todayStartUs) {
              s.today = {};  // a new day
              fx.redraw = true;
            }
            s.todayStartUs = day;
            s.nowUs = e.nowUs;
            s.utcOffsetSec = e.utcOffsetSec;
          },
          [&](const Loaded& e) {
            const bool wasDisconnected = !s.connected && s.everLoaded;
            s.connected = true;
            s.everLoaded = true;
            s.disconnectReason.clear();
            s.status = e.status;
            s.programs = e.programs;
            s.rules = e.rules;
            s.attempts.assign(e.attempts.begin(), e.attempts.end());
            if (s.attempts.size() > kMaxAttempts) s.attempts.resize(kMaxAttempts);
            // A full page: guardd may have older ones, asked for when paging reaches them.
            s.olderAttempts = e.attempts.size() >= kAttemptPage;
            s.loadingOlder = false;
            s.programAttempts.clear();
            s.today = e.today;
            s.todayStartUs = e.todayStartUs;
            s.countedUpToId = e.countedUpToId;
            s.alerts = e.alerts;
            if (s.alerts.size() > kMaxAlerts) s.alerts.resize(kMaxAlerts);
            s.alertsError = e.alertsError;
            // Still unacknowledged ones raised while watching stay highlighted.
            std::set<std::int64_t> stillNew;
            for (const auto& a : s.alerts) {
              if (!a.acknowledged && s.newAlerts.contains(a.id)) stillNew.insert(a.id);
            }
            s.newAlerts = std::move(stillNew);
            if (wasDisconnected) info(s, "Reconnected to guardd");
            fx.redraw = true;
            if (s.details) {
              if (const Program* p = actionTarget(s)) {
                fx.commands.push_back(Command{Command::Kind::LoadProgramAttempts, p->id});
              }
            }
          },
          [&](const StatusRefreshed& e) {
            s.status = e.status;
            fx.redraw = true;
          },
          [&](const Disconnected& e) {
            fx.redraw = s.connected || s.disconnectReason != e.reason;
            s.connected = false;
            s.disconnectReason = e.reason;
            if (s.confirm || s.form) {
              s.confirm.reset();
              s.form.reset();
              error(s, "Not done: lost the connection to guardd");
            }
            // Their answers will not come on this connection: what became of them shows
            // in the reload after reconnecting.
            if (!s.inFlight.empty() || !s.acksInFlight.empty()) {
              error(s, "Lost guardd while " + waitingText(s) +
                           "; see the program's state once guardd is back");
              s.inFlight.clear();
              s.acksInFlight.clear();
            }
            // A RunAudit in flight answers on its own connection; keep waiting.
          },
          [&](const AttemptRecorded& e) {
            addAttempt(s, e.attempt);
            fx.redraw = true;
          },
          [&](const AlertRaised& e) {
            addAlert(s, e.alert);
            fx.redraw = true;
          },
          [&](const AuditLoaded& e) {
            const bool ours = s.auditRequested;
            s.audit = e.report;
            s.auditError.clear();
            if (!e.report.running) s.auditRequested = false;
            if (ours && !s.auditRequested) {
              if (!e.report.error.empty()) {
                error(s, "The audit failed: " + e.report.error);
              } else {
                info(s, "Audit finished: " + std::to_string(e.report.results.size()) +
                            (e.report.results.size() == 1 ? " mail server" : " mail servers") +
                            " checked");
              }
            }
            fx.redraw = true;
          },
          [&](const AuditFailed& e) {
            if (e.run) s.auditRequested = false;
            using Kind = dbus::ClientError::Kind;
            s.auditError = e.error.kind == Kind::NotAuthorized
                               ? "Not allowed to run the audit: " + e.error.message
                               : e.error.message;
            if (e.run) error(s, "Could not run the audit: " + s.auditError);
            fx.redraw = true;
          },
          [&](const HouseholdLoaded& e) {
            s.household = e;
            fx.redraw = true;
          },
          [&](const OutsideLoaded& e) {
            const bool ours = s.outsideRequested;
            s.outside = e.report;
            s.outsideError.clear();
            s.outsideRequested = false;
            if (ours) info(s, "Outside check finished");
            fx.redraw = true;
          },
          [&](const OutsideChecked& e) {
            // Shown at once, whichever screen is open; a RunOutside of ours still gets its
            // own answer (with "Outside check finished").
            s.outside = e.report;
            s.outsideError.clear();
            fx.redraw = true;
          },
          [&](const OutsideFailed& e) {
            if (e.run) s.outsideRequested = false;
            s.outsideError = e.error.kind == dbus::ClientError::Kind::NotAuthorized
                                 ? "Not authorized: " + e.error.message
                                 : e.error.message;
            if (e.run) error(s, "Could not run the outside check: " + s.outsideError);
            fx.redraw = true;
          },
          [&](const AuditFinished& e) {
            // Our own RunAudit answers with the report; any other audit is fetched now,
            // so the Audit screen never shows the one before.
            const bool known = s.audit && s.audit->finishedUs == e.finishedUs && !s.audit->running;
            if (s.connected && !s.auditRequested && !known) {
              fx.commands.push_back(Command{Command::Kind::LoadAudit, 0, 0});
            }
          },
          [&](const ProgramChanged& e) {
            upsertProgram(s, e.program);
            // An approval or denial changed the owner's rules (an approval's pins too).
            if (s.connected) fx.commands.push_back(Command{Command::Kind::LoadRules, 0});
            fx.redraw = true;
          },
          [&](const OlderAttemptsLoaded& e) {
            s.loadingOlder = false;
            fx.redraw = true;
            if (!e.error.empty()) {
              error(s, "Could not load older attempts: " + e.error);
              return;
            }
            // A reload meanwhile replaced the list: this page belongs to the old one.
            if (s.attempts.empty() || s.attempts.back().id != e.beforeId) return;
            for (const auto& a : e.attempts) {
              if (a.id >= e.beforeId) continue;
              if (s.attempts.size() >= kMaxAttempts) break;
              s.attempts.push_back(a);
            }
            s.olderAttempts =
                e.attempts.size() >= kAttemptPage || s.attempts.size() >= kMaxAttempts;
          },
          [&](const RulesLoaded& e) {
            s.rules = e.rules;
            fx.redraw = true;
          },
          [&](const ProgramAttemptsLoaded& e) {
            auto& v = s.programAttempts[e.programId];
            v = e.attempts;
            if (v.size() > kDetailAttempts) v.resize(kDetailAttempts);
            fx.redraw = true;
          },
          [&](const ActionSucceeded& e) {
            fx.redraw = true;
            if (e.action == Action::Acknowledge) {
              s.acksInFlight.erase(e.alertId);
            } else {
              s.inFlight.erase(e.programId);
            }
            if (e.program) upsertProgram(s, *e.program);
            const Program* p = findProgram(s, e.programId);
            const std::string what = p ? describe(*p) : "program " + std::to_string(e.programId);
            switch (e.action) {
              case Action::Approve:
                info(s, "Approved: " + what + " may send mail");
                break;
              case Action::Deny:
                info(s, "Denied: " + what + " is refused at once from now on");
                break;
              case Action::Forget:
                info(s, e.removed ? "Forgot the decision about " + what
                                  : "There was no decision to forget about " + what);
                // guardd announces the program again; reload in case it did not.
                fx.commands.push_back(Command{Command::Kind::Reload, 0});
                break;
              case Action::Acknowledge:
                for (auto& a : s.alerts) {
                  if (a.id == e.alertId) a.acknowledged = true;
                }
                s.newAlerts.erase(e.alertId);
                info(s, "Acknowledged alert " + std::to_string(e.alertId));
                break;
            }
          },
          [&](const ActionFailed& e) {
            fx.redraw = true;
            if (e.action == Action::Acknowledge) {
              s.acksInFlight.erase(e.alertId);
            } else {
              s.inFlight.erase(e.programId);
            }
            error(s, failureText(e));
          },
      },
      event);
  resolveSelection(s);
  return fx;
}

std::vector<const Program*> visiblePrograms(const State& s) {
  std::vector<const Program*> out;
  const std::string f = lower(s.filter);
  for (const auto& p : s.programs) {
    if (f.empty() || matchesProgram(s, p, f)) out.push_back(&p);
  }
  auto byRecency = [](const Program* a, const Program* b) {
    if (a->lastAttemptUs != b->lastAttemptUs) return a->lastAttemptUs > b->lastAttemptUs;
    return a->id > b->id;
  };
  switch (s.sort) {
    case ProgramSort::PendingFirst:
      std::stable_sort(out.begin(), out.end(), [&](const Program* a, const Program* b) {
        const int ra = stateRank(a->state);
        const int rb = stateRank(b->state);
        return ra != rb ? ra < rb : byRecency(a, b);
      });
      break;
    case ProgramSort::LastSeen:
      std::stable_sort(out.begin(), out.end(), byRecency);
      break;
    case ProgramSort::Attempts:
      std::stable_sort(out.begin(), out.end(), [&](const Program* a, const Program* b) {
        return a->attempts != b->attempts ? a->attempts > b->attempts : byRecency(a, b);
      });
      break;
    case ProgramSort::Path:
      std::stable_sort(out.begin(), out.end(), [](const Program* a, const Program* b) {
        return std::tie(a->path, a->scriptPath, a->id) < std::tie(b->path, b->scriptPath, b->id);
      });
      break;
  }
  return out;
}

std::vector<const Alert*> visibleAlerts(const State& s) {
  std::vector<const Alert*> out;
  const std::string f = lower(s.filter);
  for (const auto& a : s.alerts) {
    if (f.empty() || matchesAlert(s, a, f)) out.push_back(&a);
  }
  return out;
}

std::vector<const AuditResult*> visibleAuditResults(const State& s) {
  std::vector<const AuditResult*> out;
  if (s.audit) {
    for (const auto& r : s.audit->results) out.push_back(&r);
  }
  return out;
}

bool auditRunning(const State& s) { return s.auditRequested || (s.audit && s.audit->running); }

const Alert* selectedAlert(const State& s) {
  for (const auto* a : visibleAlerts(s)) {
    if (a->id == s.selectedAlert) return a;
  }
  return nullptr;
}

const AuditResult* selectedAuditResult(const State& s) {
  const auto items = visibleAuditResults(s);
  if (s.auditRow < 0 || s.auditRow >= static_cast<int>(items.size())) return nullptr;
  return items[static_cast<std::size_t>(s.auditRow)];
}

std::size_t unacknowledgedAlerts(const State& s) {
  return static_cast<std::size_t>(std::count_if(s.alerts.begin(), s.alerts.end(),
                                                [](const Alert& a) { return !a.acknowledged; }));
}

std::vector<const Attempt*> visibleAttempts(const State& s) {
  std::vector<const Attempt*> out;
  const std::string f = lower(s.filter);
  for (const auto& a : s.attempts) {
    if (s.verdictFilter == VerdictFilter::Held && a.verdict != "hold") continue;
    if (s.verdictFilter == VerdictFilter::Refused && a.verdict != "reject") continue;
    if (f.empty() || matchesAttempt(s, a, f)) out.push_back(&a);
  }
  return out;
}

int selectedRow(const State& s) {
  auto find = [](const auto& items, std::int64_t id) {
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i]->id == id) return static_cast<int>(i);
    }
    return -1;
  };
  if (s.screen == Screen::Programs) return find(visiblePrograms(s), s.selectedProgram);
  if (s.screen == Screen::Attempts) return find(visibleAttempts(s), s.selectedAttempt);
  if (s.screen == Screen::Alerts) return find(visibleAlerts(s), s.selectedAlert);
  if (s.screen == Screen::Audit) return listSize(s) > 0 ? s.auditRow : -1;
  return -1;
}

const Program* findProgram(const State& s, std::int64_t id) {
  for (const auto& p : s.programs) {
    if (p.id == id) return &p;
  }
  return nullptr;
}

const Rule* ruleFor(const State& s, const Program& p) {
  for (const auto& r : s.rules) {
    if (r.path == p.path && r.scriptPath == p.scriptPath) return &r;
  }
  return nullptr;
}

const Program* selectedProgram(const State& s) {
  for (const auto* p : visiblePrograms(s)) {
    if (p->id == s.selectedProgram) return p;
  }
  return nullptr;
}

const Attempt* selectedAttempt(const State& s) {
  for (const auto* a : visibleAttempts(s)) {
    if (a->id == s.selectedAttempt) return a;
  }
  return nullptr;
}

std::string userName(const State& s, std::uint32_t uid) {
  const auto it = s.userNames.find(uid);
  return it != s.userNames.end() ? it->second : std::to_string(uid);
}

std::map<std::int64_t, std::size_t> distinctDestinations(const State& s) {
  std::map<std::int64_t, std::set<std::pair<std::string, std::uint16_t>>> sets;
  for (const auto& a : s.attempts) sets[a.programId].emplace(a.dst, a.dstPort);
  std::map<std::int64_t, std::size_t> out;
  for (const auto& [id, set] : sets) out[id] = set.size();
  return out;
}

std::int64_t localDayStart(std::int64_t nowUs, std::int64_t utcOffsetSec) {
  const std::int64_t local = nowUs + utcOffsetSec * 1'000'000;
  std::int64_t day = local / kDayUs;
  if (local < 0 && local % kDayUs != 0) --day;
  return day * kDayUs - utcOffsetSec * 1'000'000;
}

std::size_t pendingCount(const State& s) {
  return static_cast<std::size_t>(std::count_if(
      s.programs.begin(), s.programs.end(), [](const Program& p) { return p.state == "pending"; }));
}

const char* toString(Screen screen) {
  switch (screen) {
    case Screen::Programs:
      return "Programs";
    case Screen::Attempts:
      return "Attempts";
    case Screen::Alerts:
      return "Alerts";
    case Screen::Audit:
      return "Audit";
    case Screen::Outside:
      return "Outside";
  }
  return "?";
}

std::string waitingText(const State& s) {
  std::string text;
  std::size_t n = s.inFlight.size() + s.acksInFlight.size();
  if (!s.inFlight.empty()) {
    const auto& [id, call] = *s.inFlight.begin();
    text = std::string(doing(call.action)) + " " + call.subject;
  } else if (!s.acksInFlight.empty()) {
    text = "acknowledging alert " + std::to_string(*s.acksInFlight.begin());
  } else {
    return {};
  }
  text += "... waiting for authorization";
  if (n > 1) text += " (+" + std::to_string(n - 1) + " more)";
  return text;
}

ListWindow listWindow(const State& s) {
  const int total = listSize(s);
  int top = 0;
  int rows = layoutFor(s, s.size).listRows;
  switch (s.screen) {
    case Screen::Programs:
      top = s.programTop;
      break;
    case Screen::Attempts:
      top = s.attemptTop;
      break;
    case Screen::Alerts:
      top = s.alertTop;
      break;
    case Screen::Audit:
      top = s.auditTop;
      rows = std::max(1, rows - 1);  // the summary line
      break;
    case Screen::Outside:
      break;
  }
  if (total == 0) return {0, 0, 0};
  return {top + 1, std::min(total, top + std::max(1, rows)), total};
}

std::vector<std::string> splitList(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    auto item = trim(std::string_view(text).substr(start, end - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = end + 1;
  }
  return out;
}

std::vector<std::string> suggestedAllowEnv(const State& s, std::int64_t programId) {
  // guardd's reason for a void approval ends "approve with --allow-env A,B to allow".
  static constexpr std::string_view kHead = "approve with --allow-env ";
  static constexpr std::string_view kTail = " to allow";
  auto fromReason = [](const std::string& reason) -> std::optional<std::vector<std::string>> {
    const auto at = reason.find(kHead);
    if (at == std::string::npos) return std::nullopt;
    const auto from = at + kHead.size();
    const auto end = reason.find(kTail, from);
    return splitList(reason.substr(from, end == std::string::npos ? end : end - from));
  };
  auto newestHeld = [&](const auto& attempts) -> std::optional<std::vector<std::string>> {
    for (const auto& a : attempts) {  // newest first
      if (a.programId != programId || a.verdict != "hold") continue;
      if (auto names = fromReason(a.reason)) return names;
    }
    return std::nullopt;
  };
  if (auto names = newestHeld(s.attempts)) return *names;
  if (const auto it = s.programAttempts.find(programId); it != s.programAttempts.end()) {
    if (auto names = newestHeld(it->second)) return *names;
  }
  return {};
}

const char* toString(VerdictFilter filter) {
  switch (filter) {
    case VerdictFilter::All:
      return "all verdicts";
    case VerdictFilter::Held:
      return "held only";
    case VerdictFilter::Refused:
      return "refused only";
  }
  return "?";
}

const char* toString(ProgramSort sort) {
  switch (sort) {
    case ProgramSort::PendingFirst:
      return "state (pending first)";
    case ProgramSort::LastSeen:
      return "last seen";
    case ProgramSort::Attempts:
      return "attempts";
    case ProgramSort::Path:
      return "path";
  }
  return "?";
}

const char* verb(Action action) {
  switch (action) {
    case Action::Approve:
      return "approve";
    case Action::Deny:
      return "deny";
    case Action::Forget:
      return "forget";
    case Action::Acknowledge:
      return "acknowledge";
  }
  return "?";
}

}  // namespace mailguard::tui
