#pragma once
// guard-tui's model: everything that is on screen and how keys and bus events change
// it. Pure: no terminal, no bus, no clock. `update()` is the only way the state
// changes; the effects it returns tell the loop what to do (redraw, quit, call guardd).
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "mailguard/dbus/host_client.hpp"

namespace mailguard::tui {

using dbus::Alert;
using dbus::Attempt;
using dbus::AuditReport;
using dbus::AuditResult;
using dbus::Program;
using dbus::Rule;
using dbus::Status;

// guardd lists at most this many attempts a call: the load asks for the newest page, and
// paging past the oldest one in memory asks for the page before it.
inline constexpr std::size_t kAttemptPage = 1000;
// The dashboard keeps at most this many attempts in memory (newest first).
inline constexpr std::size_t kMaxAttempts = 10'000;
// Recent destinations shown in a program's details.
inline constexpr std::size_t kDetailAttempts = 50;
// Alerts kept in memory (newest first); the load asks guardd for this many.
inline constexpr std::size_t kMaxAlerts = 200;

enum class Screen { Programs, Attempts, Alerts, Audit, Outside };
inline constexpr int kScreenCount = 5;

// Programs list order; `s` cycles through them.
enum class ProgramSort { PendingFirst, LastSeen, Attempts, Path };

// The Attempts list by verdict; `v` cycles through them.
enum class VerdictFilter { All, Held, Refused };

struct Size {
  int cols = 80;
  int rows = 24;
};

enum class KeyCode {
  Char,  // `text` holds one character, UTF-8
  Up,
  Down,
  Left,
  Right,
  PageUp,
  PageDown,
  Home,
  End,
  Tab,
  BackTab,
  Enter,
  Escape,
  Backspace,
};

struct Key {
  KeyCode code = KeyCode::Char;
  std::string text;
  static Key ch(std::string t) { return Key{KeyCode::Char, std::move(t)}; }
  static Key of(KeyCode c) { return Key{c, {}}; }
};

struct TodayCounts {
  std::uint64_t allowed = 0;
  std::uint64_t held = 0;
  std::uint64_t rejected = 0;
  bool partial = false;  // more attempts today than the dashboard counted at load
};

enum class Action { Approve, Deny, Forget, Acknowledge };

// Events: what happened outside the model.
struct KeyPressed {
  Key key;
};
struct Resized {
  Size size;
};
// Wall clock, for "today"; utcOffsetSec is the local zone's offset at nowUs.
struct Tick {
  std::int64_t nowUs = 0;
  std::int64_t utcOffsetSec = 0;
};
// A full (re)load after connecting: what guardd says now.
struct Loaded {
  Status status;
  std::vector<Program> programs;
  std::vector<Attempt> attempts;  // newest first
  TodayCounts today;
  std::int64_t todayStartUs = 0;   // the local midnight the counts start at
  std::int64_t countedUpToId = 0;  // attempts with a larger id are not in `today`
  std::vector<Alert> alerts;       // newest first
  std::string alertsError;         // non-empty: guardd did not list its alerts
  std::vector<Rule> rules;         // the owner's approvals and denials
};
struct StatusRefreshed {
  Status status;
};
struct Disconnected {
  std::string reason;
};
struct AttemptRecorded {
  Attempt attempt;
};
struct ProgramChanged {
  Program program;
};
// The zombie detector raised an alert (AlertRaised signal): shown at once, highlighted.
struct AlertRaised {
  Alert alert;
};
// The latest mail-server audit (Audit() or the end of RunAudit()).
struct AuditLoaded {
  AuditReport report;
};
// Asking for the audit or running it failed.
struct AuditFailed {
  dbus::ClientError error;
  bool run = false;  // it was a RunAudit
};
// guardd says an audit ended (the AuditFinished signal): one started by `guardctl audit
// --run`, by another dashboard, or by guardd itself when mail listeners changed.
struct AuditFinished {
  std::int64_t finishedUs = 0;
};
// The last outside check (Outside() or the end of RunOutsideCheck()): guardd's JSON report
// ({time, public_address, blocklists: [...], domains: [...]}, as guardctl outside --json).
struct OutsideLoaded {
  std::string report;
};
// guardd says an outside check ended (the OutsideChecked signal): scheduled, or run by
// `guardctl outside --run` or another dashboard; its report as OutsideLoaded has it.
struct OutsideChecked {
  std::string report;
};
// The last scan of the household's other mail servers (Household(), `guardctl audit
// --hosts`): guardd's JSON ({subnets, hosts: [{address, port, relay, ...}]}).
struct HouseholdLoaded {
  std::int64_t finishedUs = 0;  // 0: never scanned
  std::string error;
  std::string json;
};
// Asking for the outside check or running it failed.
struct OutsideFailed {
  dbus::ClientError error;
  bool run = false;  // it was a RunOutsideCheck
};
// The owner's rules again, after a program changed (an approval's pins may have).
struct RulesLoaded {
  std::vector<Rule> rules;
};
// The page of attempts older than beforeId (PgDn or End reached the oldest in memory).
struct OlderAttemptsLoaded {
  std::int64_t beforeId = 0;
  std::vector<Attempt> attempts;  // newest first
  std::string error;              // non-empty: guardd did not answer
};
struct ProgramAttemptsLoaded {
  std::int64_t programId = 0;
  std::vector<Attempt> attempts;  // newest first
};
struct ActionSucceeded {
  Action action = Action::Approve;
  std::int64_t programId = 0;
  std::optional<Program> program;  // approve and deny return the program
  bool removed = false;            // forget: whether a rule was removed
  std::int64_t alertId = 0;        // acknowledge: the alert
};
struct ActionFailed {
  Action action = Action::Approve;
  std::int64_t programId = 0;
  dbus::ClientError error;
  std::int64_t alertId = 0;
};

using Event =
    std::variant<KeyPressed, Resized, Tick, Loaded, StatusRefreshed, Disconnected, AttemptRecorded,
                 ProgramChanged, ProgramAttemptsLoaded, ActionSucceeded, ActionFailed, AlertRaised,
                 AuditLoaded, AuditFailed, AuditFinished, RulesLoaded, OlderAttemptsLoaded,
                 OutsideLoaded, OutsideFailed, HouseholdLoaded, OutsideChecked>;

// Effects: what the loop should do next.
struct Command {
  // RunAudit may take long: the loop runs it without blocking the screen and answers
  // with AuditLoaded or AuditFailed when it ends.
  enum class Kind {
    Approve,
    Deny,
    Forget,
    LoadProgramAttempts,
    Reload,
    AckAlert,
    LoadAudit,
    RunAudit,
    LoadRules,
    LoadOlderAttempts,
    LoadOutside,
    RunOutside  // like RunAudit: seconds of DNS lookups, answered by OutsideLoaded/Failed
  };
  Kind kind = Kind::Reload;
  std::int64_t programId = 0;
  std::int64_t alertId = 0;   // AckAlert
  std::int64_t beforeId = 0;  // LoadOlderAttempts
  // Approve from the options form: ApproveWithOptions when either is non-empty.
  std::vector<std::string> onlyTo{};
  std::vector<std::string> allowEnv{};
};

struct Effects {
  bool redraw = false;
  bool quit = false;
  std::vector<Command> commands;
};

// A y/n question; the view always keeps "[y/n]" visible and shortens the subject.
struct Confirmation {
  Action action = Action::Approve;
  std::int64_t programId = 0;
  std::string question;  // "Approve so it may send mail?"
  std::string subject;   // the program, as a path
};

// `A`: approve with options. Nothing is sent until Enter; Esc throws it away.
struct ApproveForm {
  std::int64_t programId = 0;
  std::string subject;   // the program, as a path
  std::string onlyTo;    // as typed: "192.0.2.7:587, mail.example.org"
  std::string allowEnv;  // as typed: "PYTHONPATH, -M"
  int field = 0;         // 0: only to, 1: allow variables
};

// A policy call sent to guardd and not answered yet (polkit may be asking for a password).
struct PendingCall {
  Action action = Action::Approve;
  std::string subject;  // the program, as a path
};

struct Message {
  enum class Kind { Info, Error };
  Kind kind = Kind::Info;
  std::string text;
};

struct State {
  Size size;
  Screen screen = Screen::Programs;

  bool connected = false;
  bool everLoaded = false;
  std::string disconnectReason;

  Status status;
  std::vector<Program> programs;  // unordered; views sort
  std::vector<Rule> rules;        // the owner's, for the details pane (pins, allowed loading)
  std::deque<Attempt> attempts;   // newest first, at most kMaxAttempts
  bool olderAttempts = false;     // guardd may have attempts older than these
  bool loadingOlder = false;      // LoadOlderAttempts sent, not answered yet
  std::map<std::int64_t, std::vector<Attempt>> programAttempts;  // for the details pane

  std::vector<Alert> alerts;         // newest first, at most kMaxAlerts
  std::string alertsError;           // guardd did not list its alerts (why)
  std::set<std::int64_t> newAlerts;  // raised while watching and not acknowledged: highlighted

  std::optional<AuditReport> audit;  // the latest audit guardd reported
  std::string auditError;            // asking for it failed
  bool auditRequested = false;       // RunAudit sent by us and not answered yet

  HouseholdLoaded household;  // the last household scan guardd reported (finishedUs 0: none)

  std::string outside;            // the last outside check's JSON report ("" = none read)
  std::string outsideError;       // asking for it or running it failed
  bool outsideRequested = false;  // RunOutside sent by us and not answered yet

  TodayCounts today;
  std::int64_t todayStartUs = 0;
  std::int64_t countedUpToId = 0;
  std::int64_t nowUs = 0;
  std::int64_t utcOffsetSec = 0;

  ProgramSort sort = ProgramSort::PendingFirst;
  VerdictFilter verdictFilter = VerdictFilter::All;
  std::string filter;
  bool editingFilter = false;

  // Selection is by id so it survives sorting, filtering and live updates; the row
  // hint keeps the cursor near where it was when the selected item disappears.
  // The chosen* ids are what the owner last moved to: while a filter hides that item the
  // cursor rests on a neighbour, and it goes back to the chosen one when it shows again
  // (only an item that is gone for good hands the choice to the neighbour).
  std::int64_t selectedProgram = 0;
  std::int64_t selectedAttempt = 0;
  std::int64_t chosenProgram = 0;
  std::int64_t chosenAttempt = 0;
  std::int64_t chosenAlert = 0;
  int programRowHint = 0;
  int attemptRowHint = 0;
  std::int64_t selectedAlert = 0;
  int auditRow = 0;    // audit results have no id: the row is the selection
  int programTop = 0;  // first list row shown (scrolling)
  int attemptTop = 0;
  int alertRowHint = 0;
  int alertTop = 0;
  int auditTop = 0;

  bool details = false;
  bool help = false;
  std::optional<Confirmation> confirm;
  std::optional<ApproveForm> form;
  // One call in flight per program (by program id) and per alert (acknowledging): the
  // screen keeps working meanwhile; a second action on the same row says "busy".
  std::map<std::int64_t, PendingCall> inFlight;
  std::set<std::int64_t> acksInFlight;
  std::optional<Message> message;

  // uid -> user name, filled by the loop (the model does no lookups).
  std::map<std::uint32_t, std::string> userNames;
};

// Where things are on a screen of `size`: rows [listTop, listTop + listRows) hold list
// items; the details pane, when open, sits below the list.
struct Layout {
  int headerRow = 2;
  int listTop = 3;
  int listRows = 0;
  int detailsTop = 0;
  int detailsRows = 0;  // 0 when closed
  int messageRow = 0;
  int keysRow = 0;
};
// The Audit screen's first list row is its summary line; results start below it.
Layout layoutFor(const State& state, Size size);

Effects update(State& state, const Event& event);

// What the lists show, filtered and in order.
std::vector<const Program*> visiblePrograms(const State& state);
std::vector<const Attempt*> visibleAttempts(const State& state);
std::vector<const Alert*> visibleAlerts(const State& state);
// Audit results shown (all of them, in guardd's order).
std::vector<const AuditResult*> visibleAuditResults(const State& state);
// Whether an audit is running (ours or one guardd runs by itself).
bool auditRunning(const State& state);
// Row of the selection in the current screen's visible list, or -1.
int selectedRow(const State& state);
const Program* selectedProgram(const State& state);
const Attempt* selectedAttempt(const State& state);
const Alert* selectedAlert(const State& state);
const AuditResult* selectedAuditResult(const State& state);
std::size_t unacknowledgedAlerts(const State& state);
const Program* findProgram(const State& state, std::int64_t id);
// The owner's rule for this program (same path and script), or nullptr.
const Rule* ruleFor(const State& state, const Program& program);

std::string userName(const State& state, std::uint32_t uid);
// Distinct destinations (address and port) per program among the attempts in memory.
std::map<std::int64_t, std::size_t> distinctDestinations(const State& state);
// Local midnight at or before nowUs.
std::int64_t localDayStart(std::int64_t nowUs, std::int64_t utcOffsetSec);
std::size_t pendingCount(const State& state);

// "approving /usr/bin/swaks... waiting for authorization" while a policy call is in
// flight ("(+2 more)" when there are others); empty when none is.
std::string waitingText(const State& state);

// The rows of the current list on screen: first and last are 1-based, total counts the
// rows that pass the filters. first is 0 when the list is empty.
struct ListWindow {
  int first = 0;
  int last = 0;
  int total = 0;
};
ListWindow listWindow(const State& state);

// Code-loading variables and options the newest held attempt of this program named
// ("approve with --allow-env PYTHONPATH,-M to allow"), in that order; empty if none.
std::vector<std::string> suggestedAllowEnv(const State& state, std::int64_t programId);
// "a, b ,,c" -> {"a", "b", "c"}.
std::vector<std::string> splitList(const std::string& text);

const char* toString(Screen screen);
const char* toString(ProgramSort sort);
const char* toString(VerdictFilter filter);
const char* verb(Action action);  // "approve"

}  // namespace mailguard::tui
