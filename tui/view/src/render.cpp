#include "mailguard/tui/view.hpp"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "mailguard/dbus/names.hpp"
#include "mailguard/tui/text.hpp"

namespace mailguard::tui {
namespace {

constexpr int kMinCols = 40;
constexpr int kMinRows = 10;
constexpr std::int64_t kDayUs = 86'400'000'000;

// Appends spans left to right and cuts whatever passes the frame's width.
class RowBuilder {
 public:
  explicit RowBuilder(int width) : width_(width) {}
  RowBuilder& add(std::string_view text, Style style = Style::Normal) {
    const int room = width_ - used_;
    if (room <= 0) return *this;
    std::string t = fitEnd(text, room, false);
    used_ += displayWidth(t);
    row_.spans.push_back(Span{std::move(t), style});
    return *this;
  }
  // Adds text already fitted by the caller (keeps its padding).
  RowBuilder& cell(std::string text, Style style = Style::Normal) { return add(text, style); }
  RowBuilder& space(int n = 1) { return add(std::string(static_cast<std::size_t>(n), ' ')); }
  [[nodiscard]] int used() const { return used_; }
  Row finish(Style fill = Style::Normal, bool selected = false) {
    if (used_ < width_) add(std::string(static_cast<std::size_t>(width_ - used_), ' '), fill);
    row_.selected = selected;
    return std::move(row_);
  }

 private:
  int width_;
  int used_ = 0;
  Row row_;
};

Row plain(int width, std::string_view text, Style style = Style::Normal) {
  RowBuilder b(width);
  b.add(text, style);
  return b.finish(style == Style::Header ? Style::Header : Style::Normal);
}

// Howard Hinnant's days_from_civil inverse: a day count since 1970-01-01 to y-m-d.
void civil(std::int64_t days, int& y, int& m, int& d) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0));
}

struct LocalTime {
  int year, month, day, hour, minute, second;
};

LocalTime localTime(const State& s, std::int64_t us) {
  std::int64_t secs = us / 1'000'000 + s.utcOffsetSec;
  if (us < 0 && us % 1'000'000 != 0) --secs;
  std::int64_t days = secs / 86400;
  std::int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  LocalTime t{};
  civil(days, t.year, t.month, t.day);
  t.hour = static_cast<int>(rem / 3600);
  t.minute = static_cast<int>(rem % 3600 / 60);
  t.second = static_cast<int>(rem % 60);
  return t;
}

std::string basename(const std::string& path) {
  const auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// A program as a person recognises it: the script for interpreters, else the executable.
std::string programLabel(const std::string& path, const std::string& script, int width) {
  if (path.empty()) return fitEnd("(process not found)", width);
  if (script.empty()) return fitMiddle(path, width);
  const std::string suffix = " (" + sanitize(basename(path)) + ")";
  const int sw = displayWidth(suffix);
  if (sw * 2 > width) return fitMiddle(script, width);
  std::string out = fitMiddle(script, width - sw, false) + suffix;
  const int used = displayWidth(out);
  if (used < width) out.append(static_cast<std::size_t>(width - used), ' ');
  return out;
}

// A program whose file changed keeps its row; the marker says it has a history.
std::string versionsNote(const Program& p) {
  return p.versions > 1 ? " (" + std::to_string(p.versions) + " versions)" : std::string();
}

std::pair<std::string, Style> stateCell(const std::string& state) {
  if (state == "pending") return {"PENDING", Style::Pending};
  if (state == "quarantined") return {"QUARANTINED", Style::Quarantined};
  if (state == "denied") return {"denied", Style::Denied};
  if (state == "approved") return {"approved", Style::Approved};
  return {state, Style::Normal};
}

std::pair<std::string, Style> verdictCell(const std::string& verdict) {
  if (verdict == "allow") return {"allow", Style::Allowed};
  if (verdict == "hold") return {"HOLD", Style::Held};
  if (verdict == "reject") return {"REJECT", Style::Blocked};
  return {verdict, Style::Normal};
}

void tabBar(const State& s, int width, std::vector<Row>& rows) {
  RowBuilder b(width);
  b.add(" mailguard ", Style::Title).space();
  std::vector<std::string> labels;
  int total = b.used();
  for (int i = 0; i < kScreenCount; ++i) {
    const auto screen = static_cast<Screen>(i);
    std::string label = " " + std::to_string(i + 1) + " " + toString(screen);
    if (screen == Screen::Programs) {
      if (const auto n = pendingCount(s); n > 0) label += " (" + std::to_string(n) + " pending)";
    }
    if (screen == Screen::Alerts) {
      if (const auto n = unacknowledgedAlerts(s); n > 0)
        label += " (" + std::to_string(n) + " new)";
    }
    total += displayWidth(label) + 2;
    labels.push_back(std::move(label));
  }
  // Five tabs with counts do not fit 80 columns padded on both sides: drop the right pad.
  const bool compact = total > width;
  for (int i = 0; i < kScreenCount; ++i) {
    const auto screen = static_cast<Screen>(i);
    auto& label = labels[static_cast<std::size_t>(i)];
    if (!compact || screen == s.screen) label += " ";
    b.add(label, screen == s.screen ? Style::TabActive : Style::Tab).space();
  }
  rows.push_back(b.finish());
}

// The status bar's short name for guardd's attribution path; empty when it does not say.
std::string attributionLabel(const std::string& attribution) {
  if (attribution == "kernel") return "kernel id";
  if (attribution == "proc") return "proc id";
  return attribution.empty() ? std::string() : attribution + " id";
}

void statusLine(const State& s, int width, std::vector<Row>& rows) {
  RowBuilder b(width);
  b.space();
  const auto& t = s.today;
  if (s.connected) {
    const std::string enforcing = s.status.enforcing ? "enforcing" : "NOT ENFORCING";
    const std::string backend = s.status.backend.empty() ? "backend ?" : s.status.backend;
    const std::string attribution = attributionLabel(s.status.attribution);
    const std::string plus = t.partial ? "+" : "";
    // The counts of the day, as added below: their width decides what fits.
    const std::string today =
        "  today: " + std::to_string(t.allowed + t.held + t.rejected) + plus +
        (t.allowed + t.held + t.rejected == 1 ? " attempt, " : " attempts, ") +
        std::to_string(t.held) + plus + " held, " + std::to_string(t.rejected) + plus + " rejected";
    const std::size_t full = 1 + 9 + 2 + enforcing.size() + 2 + backend.size() +
                             (attribution.empty() ? 0 : 2 + attribution.size()) + today.size();
    b.add("connected", Style::Good).add("  ");
    b.add(enforcing, s.status.enforcing ? Style::Good : Style::Bad);
    // The queue backend is plumbing (guardctl status has it): it gives way first, so
    // that 80 columns keep the attribution path and the day's counts.
    if (full <= static_cast<std::size_t>(width) || attribution.empty()) {
      b.add("  ").add(backend, Style::Dim);
    }
    if (!attribution.empty()) b.add("  ").add(attribution, Style::Dim);
  } else {
    b.add("DISCONNECTED", Style::Bad).add(" from guardd, retrying", Style::Dim);
  }
  // Attempts (one per connection, as on the Attempts screen), never guardctl status'
  // packet verdicts since guardd started (a held connection's SYN retries count there).
  // The allowed ones are the rest: 80 columns have no room for a fourth number.
  const std::uint64_t attempts = t.allowed + t.held + t.rejected;
  b.add("  today: ")
      .add(std::to_string(attempts) + (t.partial ? "+" : "") +
               (attempts == 1 ? " attempt" : " attempts"),
           Style::Normal)
      .add(", ")
      .add(std::to_string(t.held) + (t.partial ? "+" : "") + " held",
           t.held > 0 ? Style::Held : Style::Normal)
      .add(", ")
      .add(std::to_string(t.rejected) + (t.partial ? "+" : "") + " rejected",
           t.rejected > 0 ? Style::Blocked : Style::Normal);
  if (s.connected && (!s.status.storeError.empty() || s.status.storeErrors > 0)) {
    b.add("  store errors!", Style::Bad);
  }
  if (s.connected && s.status.queueDropped > 0) b.add("  queue overflowed", Style::Bad);
  rows.push_back(b.finish());
}

struct ProgramColumns {
  int state = 11, program = 0, user = 8, attempts = 8, dests = 5, seen = 11;
};

ProgramColumns programColumns(int width) {
  ProgramColumns c;
  c.program = std::max(
      10, width - (1 + c.state + 1 + 1 + c.user + 1 + c.attempts + 1 + c.dests + 1 + c.seen));
  return c;
}

void programsList(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  const auto c = programColumns(width);
  {
    RowBuilder b(width);
    b.space()
        .cell(fitEnd("STATE", c.state), Style::Header)
        .space()
        .cell(fitEnd("PROGRAM", c.program), Style::Header)
        .space()
        .cell(fitEnd("USER", c.user), Style::Header)
        .space()
        .cell(alignRight("ATTEMPTS", c.attempts), Style::Header)
        .space()
        .cell(alignRight("DESTS", c.dests), Style::Header)
        .space()
        .cell(fitEnd("LAST SEEN", c.seen), Style::Header);
    rows.push_back(b.finish(Style::Header));
  }
  const auto items = visiblePrograms(s);
  const auto dests = distinctDestinations(s);
  for (int r = 0; r < l.listRows; ++r) {
    const int i = s.programTop + r;
    if (i >= static_cast<int>(items.size())) {
      if (items.empty() && r == 1) {
        if (!s.filter.empty()) {
          rows.push_back(plain(width,
                               "   Nothing matches the filter \"" + s.filter + "\" (Esc clears it)",
                               Style::Dim));
        } else if (!s.everLoaded) {
          rows.push_back(plain(width, "   Waiting for guardd ...", Style::Dim));
        } else {
          rows.push_back(plain(width, "   No program has tried to send mail yet.", Style::Dim));
        }
      } else {
        rows.push_back(plain(width, ""));
      }
      continue;
    }
    const Program& p = *items[static_cast<std::size_t>(i)];
    const auto [label, stateStyle] = stateCell(p.state);
    const Style rowStyle = p.state == "pending" ? Style::Pending : Style::Normal;
    const auto d = dests.find(p.id);
    RowBuilder b(width);
    b.space()
        .cell(fitEnd(label, c.state), stateStyle)
        .space()
        .cell(programLabel((p.kind == "inline" ? p.path + " (inline code)" : p.path) +
                               (p.scriptPath.empty() ? versionsNote(p) : ""),
                           p.scriptPath.empty() ? "" : p.scriptPath + versionsNote(p), c.program),
              rowStyle)
        .space()
        // An approved row shows whom the approval covers ("all", a user), not who ran it.
        .cell(fitEnd(p.state == "approved" && !p.covers.empty() ? p.covers : userName(s, p.uid),
                     c.user),
              rowStyle)
        .space()
        .cell(alignRight(std::to_string(p.attempts), c.attempts), rowStyle)
        .space()
        .cell(alignRight(d == dests.end() ? "-" : std::to_string(d->second), c.dests), rowStyle)
        .space()
        .cell(fitEnd(formatTime(s, p.lastAttemptUs), c.seen), rowStyle);
    rows.push_back(b.finish(rowStyle, p.id == s.selectedProgram));
  }
}

struct AttemptColumns {
  int time = 8, verdict = 7, program = 0, pid = 7, user = 8, dest = 22, reason = 0;
};

AttemptColumns attemptColumns(int width) {
  AttemptColumns c;
  const int fixed = 1 + c.time + 1 + c.verdict + 1 + 1 + c.pid + 1 + c.user + 1 + c.dest;
  const int rest = width - fixed;
  if (width >= 100) {
    c.program = (rest - 1) / 2;
    c.reason = rest - 1 - c.program;
  } else {
    c.program = std::max(8, rest);  // the reason is in the details pane (Enter)
  }
  return c;
}

void attemptsList(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  const auto c = attemptColumns(width);
  {
    RowBuilder b(width);
    b.space()
        .cell(fitEnd("TIME", c.time), Style::Header)
        .space()
        .cell(fitEnd("VERDICT", c.verdict), Style::Header)
        .space()
        .cell(fitEnd("PROGRAM", c.program), Style::Header)
        .space()
        .cell(alignRight("PID", c.pid), Style::Header)
        .space()
        .cell(fitEnd("USER", c.user), Style::Header)
        .space()
        .cell(fitEnd("DESTINATION", c.dest), Style::Header);
    if (c.reason > 0) b.space().cell(fitEnd("REASON", c.reason), Style::Header);
    rows.push_back(b.finish(Style::Header));
  }
  const auto items = visibleAttempts(s);
  for (int r = 0; r < l.listRows; ++r) {
    const int i = s.attemptTop + r;
    if (i >= static_cast<int>(items.size())) {
      if (items.empty() && r == 1) {
        rows.push_back(plain(
            width,
            s.filter.empty() ? "   No mail connection attempts yet."
                             : "   Nothing matches the filter \"" + s.filter + "\" (Esc clears it)",
            Style::Dim));
      } else {
        rows.push_back(plain(width, ""));
      }
      continue;
    }
    const Attempt& a = *items[static_cast<std::size_t>(i)];
    const auto [label, style] = verdictCell(a.verdict);
    const Style rowStyle = a.verdict == "hold" ? Style::Held : Style::Normal;
    RowBuilder b(width);
    b.space()
        .cell(fitEnd(formatTime(s, a.timeUs), c.time), rowStyle)
        .space()
        .cell(fitEnd(label, c.verdict), style)
        .space()
        .cell(programLabel(a.path, a.scriptPath, c.program), rowStyle)
        .space()
        .cell(alignRight(a.pid > 0 ? std::to_string(a.pid) : "?", c.pid), rowStyle)
        .space()
        .cell(fitEnd(userName(s, a.uid), c.user), rowStyle)
        .space()
        .cell(fitMiddle(attemptDestination(a), c.dest), rowStyle);
    if (c.reason > 0) b.space().cell(fitEnd(a.reason, c.reason), rowStyle);
    rows.push_back(b.finish(rowStyle, a.id == s.selectedAttempt));
  }
}

// An audit alert (a mail server open to strangers) quarantines nothing: "AUD" marks it.
std::pair<std::string, Style> tierCell(const std::string& tier, const std::string& kind = {}) {
  if (kind == "audit") {
    return tier == "hard" ? std::pair<std::string, Style>{"AUD!", Style::Quarantined}
                          : std::pair<std::string, Style>{"aud", Style::Held};
  }
  // Someone changed guardd's firewall table (it is back already): "FW!" marks it.
  if (kind == "tamper") return {"FW!", Style::Quarantined};
  // Bounces for mail sent in the owner's name, and an open relay on another computer at
  // home: nothing of this PC is quarantined.
  if (kind == "backscatter") return {"BSC", Style::Held};
  if (kind == "household-relay") return {"LAN!", Style::Quarantined};
  if (tier == "hard") return {"HARD", Style::Quarantined};
  if (tier == "soft") return {"soft", Style::Held};
  return {tier, Style::Normal};
}

std::string joinTop(const std::vector<std::string>& items, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < items.size() && i < n; ++i) {
    if (!out.empty()) out += "; ";
    out += items[i];
  }
  if (items.size() > n) out += "; +" + std::to_string(items.size() - n) + " more";
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& i : items) {
    if (!out.empty()) out += sep;
    out += i;
  }
  return out;
}

void emptyList(int width, const Layout& l, std::vector<Row>& rows, int from,
               const std::vector<std::pair<std::string, Style>>& text) {
  for (int r = from; r < l.listRows; ++r) {
    const auto i = static_cast<std::size_t>(r - from - 1);
    rows.push_back(r > from && i < text.size() ? plain(width, "   " + text[i].first, text[i].second)
                                               : plain(width, ""));
  }
}

struct AlertColumns {
  int time = 8, tier = 4, program = 0, ack = 5, reasons = 0;
};

AlertColumns alertColumns(int width) {
  AlertColumns c;
  const int rest = width - (1 + c.time + 1 + c.tier + 1 + 1 + c.ack + 1);
  c.program = std::max(10, rest * 2 / 5);
  c.reasons = std::max(0, rest - c.program);
  return c;
}

void alertsList(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  const auto c = alertColumns(width);
  {
    RowBuilder b(width);
    b.space()
        .cell(fitEnd("TIME", c.time), Style::Header)
        .space()
        .cell(fitEnd("TIER", c.tier), Style::Header)
        .space()
        .cell(fitEnd("PROGRAM", c.program), Style::Header)
        .space()
        .cell(fitEnd("ACKED", c.ack), Style::Header)
        .space()
        .cell(fitEnd("TOP REASONS", c.reasons), Style::Header);
    rows.push_back(b.finish(Style::Header));
  }
  const auto items = visibleAlerts(s);
  if (items.empty()) {
    std::vector<std::pair<std::string, Style>> text;
    if (!s.filter.empty()) {
      text = {{"Nothing matches the filter \"" + s.filter + "\" (Esc clears it)", Style::Dim}};
    } else if (!s.everLoaded) {
      text = {{"Waiting for guardd ...", Style::Dim}};
    } else if (!s.alertsError.empty()) {
      text = {{"guardd did not list its alerts: " + s.alertsError, Style::Error}};
    } else {
      text = {
          {"No alerts: nothing has behaved like a spam bot.", Style::Dim},
          {"A program that sends like one is throttled (soft) or quarantined (hard);", Style::Dim},
          {"its alert shows up here at once, highlighted.", Style::Dim}};
    }
    emptyList(width, l, rows, 0, text);
    return;
  }
  for (int r = 0; r < l.listRows; ++r) {
    const int i = s.alertTop + r;
    if (i >= static_cast<int>(items.size())) {
      rows.push_back(plain(width, ""));
      continue;
    }
    const Alert& a = *items[static_cast<std::size_t>(i)];
    const auto [tier, tierStyle] = tierCell(a.tier, a.kind);
    const bool fresh = s.newAlerts.contains(a.id);
    const Style rowStyle = fresh ? Style::Pending : a.acknowledged ? Style::Dim : Style::Normal;
    RowBuilder b(width);
    b.space()
        .cell(fitEnd(formatTime(s, a.timeUs), c.time), rowStyle)
        .space()
        .cell(fitEnd(tier, c.tier), tierStyle)
        .space()
        .cell(programLabel(a.path, {}, c.program), rowStyle)
        .space()
        .cell(fitEnd(a.acknowledged ? "yes"
                     : fresh        ? "NEW"
                                    : "no",
                     c.ack),
              rowStyle)
        .space()
        .cell(fitEnd(joinTop(a.reasons, 2), c.reasons), rowStyle);
    rows.push_back(b.finish(rowStyle, a.id == s.selectedAlert));
  }
}

std::pair<std::string, Style> relayCell(const std::string& relay) {
  if (relay == "open") return {"OPEN", Style::Bad};
  if (relay == "closed") return {"closed", Style::Good};
  if (relay == "unreachable") return {"unreachable", Style::Dim};
  return {relay.empty() ? "-" : relay, Style::Normal};
}

// Open for strangers, or else for a LAN: the first LAN line that is open.
const dbus::LanRelay* openForLan(const std::vector<dbus::LanRelay>& lines) {
  for (const auto& l : lines) {
    if (l.relay == "open") return &l;
  }
  return nullptr;
}

struct AuditColumns {
  int address = 22, exposure = 8, relay = 11, program = 0, accepted = 0;
};

AuditColumns auditColumns(int width) {
  AuditColumns c;
  const int rest = width - (1 + c.address + 1 + c.exposure + 1 + c.relay + 1 + 1);
  c.program = std::max(8, rest / 2);
  c.accepted = std::max(0, rest - c.program);
  return c;
}

// The household's other mail servers, from the last scan the owner asked for (`guardctl
// audit --hosts`), shown below this PC's own listeners.
std::vector<std::pair<std::string, Style>> householdLines(const State& s) {
  std::vector<std::pair<std::string, Style>> out;
  out.emplace_back("Other mail servers on your network", Style::Header);
  const auto& h = s.household;
  if (h.finishedUs == 0) {
    out.emplace_back("  not scanned: sudo guardctl audit --hosts looks for them (only when asked)",
                     Style::Dim);
    return out;
  }
  const auto doc = nlohmann::json::parse(h.json, nullptr, false);
  const auto hosts =
      doc.is_object() ? doc.value("hosts", nlohmann::json::array()) : nlohmann::json::array();
  std::string when = "  scanned " + formatFullTime(s, h.finishedUs);
  if (!h.error.empty()) {
    out.emplace_back(when + ": failed: " + h.error, Style::Error);
    return out;
  }
  if (!hosts.is_array() || hosts.empty()) {
    out.emplace_back(when + ": no other mail server answered", Style::Dim);
    return out;
  }
  out.emplace_back(
      when + ": " + std::to_string(hosts.size()) + (hosts.size() == 1 ? " server" : " servers"),
      Style::Dim);
  for (const auto& host : hosts) {
    if (!host.is_object()) continue;
    const std::string relay = host.value("relay", "");
    const bool open = relay == "open";
    std::string line = "  " + formatEndpoint(host.value("address", ""),
                                             static_cast<std::uint16_t>(host.value("port", 0)));
    line += open ? "  OPEN RELAY: passes on mail for anyone on your LAN"
                 : "  " + (relay.empty() ? std::string("not audited") : relay);
    out.emplace_back(line, open ? Style::Bad : Style::Normal);
  }
  return out;
}

void auditList(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  const auto c = auditColumns(width);
  {
    RowBuilder b(width);
    b.space()
        .cell(fitEnd("ADDRESS:PORT", c.address), Style::Header)
        .space()
        .cell(fitEnd("EXPOSURE", c.exposure), Style::Header)
        .space()
        .cell(fitEnd("RELAY", c.relay), Style::Header)
        .space()
        .cell(fitEnd("PROGRAM", c.program), Style::Header)
        .space()
        .cell(fitEnd("ACCEPTED", c.accepted), Style::Header);
    rows.push_back(b.finish(Style::Header));
  }
  // The summary line.
  {
    RowBuilder b(width);
    b.space();
    if (auditRunning(s)) {
      b.add("auditing...", Style::Held)
          .add(" probing the mail servers on this PC; the rest of the dashboard stays live",
               Style::Dim);
    } else if (!s.auditError.empty()) {
      b.add("No audit: " + s.auditError, Style::Error);
    } else if (!s.audit || s.audit->finishedUs == 0) {
      b.add(s.everLoaded ? "No audit yet: press R to audit the mail servers on this PC now"
                         : "Waiting for guardd ...",
            Style::Dim);
    } else {
      std::size_t open = 0;
      std::size_t external = 0;
      for (const auto& r : s.audit->results) {
        if (r.relay == "open" || openForLan(r.lan) != nullptr) ++open;
        if (r.exposure == "external") ++external;
      }
      b.add("Last audit " + formatFullTime(s, s.audit->finishedUs) + ": " +
            std::to_string(s.audit->results.size()) +
            (s.audit->results.size() == 1 ? " server" : " servers") + ", " +
            std::to_string(external) + " external");
      b.add(", " + std::to_string(open) + " open relay" + (open == 1 ? "" : "s"),
            open > 0 ? Style::Bad : Style::Normal);
      if (!s.audit->error.empty()) b.add("  failed: " + s.audit->error, Style::Error);
    }
    rows.push_back(b.finish());
  }
  const auto items = visibleAuditResults(s);
  const auto household = householdLines(s);
  if (items.empty()) {
    std::vector<std::pair<std::string, Style>> text;
    if (s.audit && s.audit->finishedUs != 0) {
      text.emplace_back("No mail server listens on this PC.", Style::Dim);
      text.emplace_back("", Style::Normal);
    }
    if (s.everLoaded) text.insert(text.end(), household.begin(), household.end());
    emptyList(width, l, rows, 1, text);
    return;
  }
  for (int r = 1; r < l.listRows; ++r) {
    const int i = s.auditTop + r - 1;
    if (i >= static_cast<int>(items.size())) {
      // Below the last listener, after a blank row: the household's other servers.
      const int k = i - static_cast<int>(items.size()) - 1;
      const bool show = s.auditTop == 0 && k >= 0 && k < static_cast<int>(household.size());
      rows.push_back(show ? plain(width, " " + household[static_cast<std::size_t>(k)].first,
                                  household[static_cast<std::size_t>(k)].second)
                          : plain(width, ""));
      continue;
    }
    const AuditResult& a = *items[static_cast<std::size_t>(i)];
    auto [relay, relayStyle] = relayCell(a.relay);
    std::string accepted = a.accepted.empty() ? "-" : join(a.accepted, ", ");
    if (const auto* lan = openForLan(a.lan); lan != nullptr && a.relay != "open") {
      relay = "OPEN (LAN)";  // closed to strangers, open to anyone on a LAN
      relayStyle = Style::Bad;
      accepted = "LAN: " + join(lan->accepted, ", ");
    }
    const bool external = a.exposure == "external";
    // The program's name here; the full path is in the details.
    std::string program = a.path.empty() ? a.comm : basename(a.path);
    if (program.empty()) program = "(unknown)";
    RowBuilder b(width);
    b.space()
        .cell(fitMiddle(formatEndpoint(a.address, a.port), c.address))
        .space()
        .cell(fitEnd(external ? "EXTERNAL" : a.exposure, c.exposure),
              external ? Style::Bad : Style::Normal)
        .space()
        .cell(fitEnd(relay, c.relay), relayStyle)
        .space()
        .cell(fitMiddle(program, c.program))
        .space()
        .cell(fitEnd(accepted, c.accepted));
    rows.push_back(b.finish(Style::Normal, i == s.auditRow));
  }
}

// Label and value lines for the details pane; long values wrap.
class Details {
 public:
  explicit Details(int width) : width_(width) {}
  // Paths and hashes wrap by cells; prose (`words`) between words.
  void add(const std::string& label, const std::string& value, Style style = Style::Normal,
           int maxLines = 1, bool words = false) {
    const int valueWidth = width_ - kLabel - 2;
    const std::string v = value.empty() ? "-" : value;
    const auto parts = words ? wrapWords(v, valueWidth, maxLines) : wrap(v, valueWidth, maxLines);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      RowBuilder b(width_);
      b.space().cell(fitEnd(i == 0 ? label : "", kLabel), Style::Dim).space().add(parts[i], style);
      lines_.push_back(b.finish());
    }
  }
  std::vector<Row> take() { return std::move(lines_); }

 private:
  static constexpr int kLabel = 10;
  int width_;
  std::vector<Row> lines_;
};

// "(hidden: another user's)" when guardd withheld it: guardd gives a command line only to
// root and to the user who ran the program.
std::string commandText(const Attempt& a) {
  if (!a.cmdlineHidden.empty()) return "(hidden: " + a.cmdlineHidden + ")";
  return a.cmdline;
}

std::string recentDestinations(const std::vector<Attempt>& attempts) {
  std::vector<std::pair<std::string, int>> counts;  // in order of most recent use
  for (const auto& a : attempts) {
    const auto e = formatEndpoint(a.dst, a.dstPort);
    auto it =
        std::find_if(counts.begin(), counts.end(), [&](const auto& c) { return c.first == e; });
    if (it == counts.end()) {
      counts.emplace_back(e, 1);
    } else {
      ++it->second;
    }
  }
  std::string out;
  for (const auto& [e, n] : counts) {
    if (!out.empty()) out += ", ";
    out += e + (n > 1 ? " x" + std::to_string(n) : "");
  }
  return out;
}

std::vector<Row> programDetails(const State& s, const Program& p, int width) {
  Details d(width);
  d.add("path", p.path, Style::Normal, 2);
  d.add("sha256", p.sha256);
  if (!p.scriptPath.empty()) {
    d.add("script", p.scriptPath, Style::Normal, 2);
    d.add("script sha", p.scriptSha256);
  }
  const auto [label, style] = stateCell(p.state);
  d.add("state",
        label + "   user " + userName(s, p.uid) + " (uid " + std::to_string(p.uid) + ")   id " +
            std::to_string(p.id),
        style);
  d.add("attempts", std::to_string(p.attempts) + "   first seen " +
                        formatFullTime(s, p.firstSeenUs) + "   last " +
                        formatFullTime(s, p.lastAttemptUs));
  if (p.heldMessages > 0) {
    d.add("held mail",
          std::to_string(p.heldMessages) +
              " held by the local MTA: sent if you approve, deleted if you deny",
          Style::Held, 2, true);
  }
  if (const Rule* r = ruleFor(s, p); r != nullptr && r->action == "approve") {
    d.add("only to", r->onlyTo.empty() ? "anywhere" : join(r->onlyTo, ", "), Style::Normal, 2);
    d.add("allows",
          r->allowEnv.empty() ? "no code-loading variables or options" : join(r->allowEnv, ", "),
          Style::Normal, 2);
  }
  // The newest attempt in memory tells the command line and process.
  const Attempt* latest = nullptr;
  const auto cached = s.programAttempts.find(p.id);
  if (cached != s.programAttempts.end() && !cached->second.empty()) {
    latest = &cached->second.front();
  }
  for (const auto& a : s.attempts) {
    if (a.programId == p.id && (!latest || a.id > latest->id)) {
      latest = &a;
      break;
    }
  }
  // Live updates carry no command line; the program's attempts loaded on request do.
  const Attempt* withCommand = latest;
  if (latest != nullptr && latest->cmdlineHidden == dbus::kCmdlineNotLive &&
      cached != s.programAttempts.end() && !cached->second.empty()) {
    withCommand = &cached->second.front();
  }
  d.add("command", withCommand ? commandText(*withCommand) : "no attempt in view");
  d.add("process",
        (latest && latest->pid > 0 ? "pid " + std::to_string(latest->pid) + "   " : std::string()) +
            "parent: not reported by guardd yet");
  std::vector<Attempt> recent;
  if (cached != s.programAttempts.end()) {
    recent = cached->second;
  } else {
    for (const auto& a : s.attempts) {
      if (a.programId == p.id && recent.size() < kDetailAttempts) recent.push_back(a);
    }
  }
  d.add("recent", recent.empty() ? "none" : recentDestinations(recent), Style::Normal, 2);
  return d.take();
}

std::vector<Row> attemptDetails(const State& s, const Attempt& a, int width) {
  Details d(width);
  const auto [label, style] = verdictCell(a.verdict);
  d.add("time",
        formatFullTime(s, a.timeUs) + "   verdict " + label + "   attempt " + std::to_string(a.id),
        style);
  d.add("reason", a.reason, Style::Normal, 2);
  d.add("program", a.path.empty() ? "(process not found)" : a.path, Style::Normal, 2);
  if (!a.scriptPath.empty()) d.add("script", a.scriptPath, Style::Normal, 2);
  d.add("command", commandText(a), Style::Normal, 2);
  d.add("process", "pid " + (a.pid > 0 ? std::to_string(a.pid) : std::string("unknown")) +
                       "   user " + userName(s, a.uid) + " (uid " + std::to_string(a.uid) + ")");
  if (a.channel == "mta") {
    d.add("channel", "mail handed to the local MTA (" + (a.src.empty() ? "?" : a.src) +
                         ")   queue id " + (a.queueId.empty() ? "unknown" : a.queueId));
    d.add("recipients", a.dst.empty() ? "unknown" : a.dst, Style::Normal, 2);
  } else {
    d.add("connection",
          formatEndpoint(a.src, a.srcPort) + " -> " + formatEndpoint(a.dst, a.dstPort));
  }
  return d.take();
}

// A JSON value as short text: strings bare, arrays joined, objects as key=value; numbers
// with at most two decimals (a threshold is 6.9, not the 6.8999999999999995 it is stored as).
std::string jsonText(const nlohmann::json& v) {
  if (v.is_number_float()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", v.get<double>());
    std::string out = buf;
    while (out.find('.') != std::string::npos && (out.back() == '0' || out.back() == '.')) {
      const bool dot = out.back() == '.';
      out.pop_back();
      if (dot) break;
    }
    return out;
  }
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v.get<double>());
    return buf;
  }
  if (v.is_array()) {
    std::string out;
    for (const auto& e : v) {
      if (!out.empty()) out += ", ";
      out += jsonText(e);
    }
    return out;
  }
  if (v.is_object()) {
    std::string out;
    for (const auto& [k, e] : v.items()) {
      if (!out.empty()) out += " ";
      out += k + "=" + jsonText(e);
    }
    return out;
  }
  return v.dump();
}

std::vector<Row> alertDetails(const State& s, const Alert& a, int width) {
  Details d(width);
  const auto [tier, style] = tierCell(a.tier);
  const auto ev = nlohmann::json::parse(a.evidence, nullptr, false);
  if (a.kind == "audit") {
    d.add("alert",
          formatFullTime(s, a.timeUs) + "   mail-server audit (" +
              (a.tier == "hard" ? "open relay" : "reachable from other computers") + ")   id " +
              std::to_string(a.id) + "   " +
              (a.acknowledged ? "acknowledged" : "not acknowledged (K)"),
          style);
    d.add("program", a.path.empty() ? "(unknown)" : a.path, Style::Normal, 2);
    if (ev.is_object() && ev.contains("listener")) d.add("listener", jsonText(ev["listener"]));
    if (!a.reasons.empty()) d.add("finding", a.reasons.front(), Style::Normal, 2, true);
    for (std::size_t i = 1; i < a.reasons.size(); ++i) {
      d.add("fix", a.reasons[i], Style::Normal, 4, true);
    }
    return d.take();
  }
  if (a.kind == "backscatter" || a.kind == "household-relay") {
    const bool relay = a.kind == "household-relay";
    d.add("alert",
          formatFullTime(s, a.timeUs) + "   " +
              (relay ? "open relay on your network" : "bounces for mail you did not send") +
              "   id " + std::to_string(a.id) + "   " +
              (a.acknowledged ? "acknowledged" : "not acknowledged (K)"),
          relay ? Style::Quarantined : Style::Held);
    d.add("summary", a.summary, Style::Normal, 2, true);
    if (relay && ev.is_object() && ev.contains("host")) {
      d.add("host", jsonText(ev["host"]) + ":" + jsonText(ev.value("port", nlohmann::json(0))) +
                        "   " + jsonText(ev.value("banner", nlohmann::json(""))));
    } else if (!relay && !a.path.empty()) {
      d.add("log", a.path);
    }
    for (std::size_t i = 0; i < a.reasons.size(); ++i) {
      d.add(i == 0 ? "why" : "to do", a.reasons[i], Style::Normal, 3, true);
    }
    return d.take();
  }
  if (a.kind == "tamper") {
    d.add("alert",
          formatFullTime(s, a.timeUs) + "   firewall table changed by someone else   id " +
              std::to_string(a.id) + "   " +
              (a.acknowledged ? "acknowledged" : "not acknowledged (K)"),
          Style::Quarantined);
    d.add("summary", a.summary, Style::Normal, 2, true);
    static constexpr std::array<const char*, 3> kLabels{"change", "restored", "to do"};
    for (std::size_t i = 0; i < a.reasons.size(); ++i) {
      d.add(i < kLabels.size() ? kLabels[i] : "", a.reasons[i], Style::Normal, 3, true);
    }
    return d.take();
  }
  d.add("alert",
        formatFullTime(s, a.timeUs) + "   tier " + tier + "   id " + std::to_string(a.id) + "   " +
            (a.acknowledged ? "acknowledged" : "not acknowledged (K)"),
        style);
  d.add("program", a.path.empty() ? "(unknown)" : a.path, Style::Normal, 2);
  std::string who = "user " + userName(s, a.uid) + " (uid " + std::to_string(a.uid) + ")";
  if (const Program* p = findProgram(s, a.programId)) who += "   now " + stateCell(p->state).first;
  d.add("who", who);
  if (ev.is_object()) {
    auto field = [&](const char* key) {
      return ev.contains(key) ? jsonText(ev[key]) : std::string("-");
    };
    d.add("score", field("score") + " (threshold " + field("threshold") + ")   24h: " +
                       field("attempts_24h") + " attempts, " + field("destinations_24h") +
                       " destinations, " + field("failures_24h") + " failures");
    if (ev.contains("sample_destinations")) {
      d.add("sample", jsonText(ev["sample_destinations"]), Style::Normal, 2, true);
    }
    if (ev.contains("parents")) {
      d.add("parents", jsonText(ev["parents"]), Style::Normal, 2, true);
    }
  } else if (!a.evidence.empty()) {
    d.add("evidence", a.evidence, Style::Normal, 4);
  }
  d.add("reasons", join(a.reasons, "; "), Style::Normal, 2, true);
  if (!a.summary.empty()) d.add("summary", a.summary, Style::Normal, 2, true);
  if (ev.is_object()) {
    for (const char* key : {"principal", "channel"}) {
      if (ev.contains(key)) d.add(key, jsonText(ev[key]));
    }
  }
  return d.take();
}

std::vector<Row> auditDetails(const State& s, const AuditResult& r, int width) {
  (void)s;
  Details d(width);
  const auto [relay, relayStyle] = relayCell(r.relay);
  d.add("server",
        formatEndpoint(r.address, r.port) + "   " + r.exposure + "   relay " + relay +
            (r.blockedByFirewall ? "   blocked by the firewall" : ""),
        relayStyle);
  d.add("program",
        (r.path.empty() ? r.comm : r.path) +
            (r.pid > 0 ? "   pid " + std::to_string(r.pid) : std::string()) + "   uid " +
            std::to_string(r.uid),
        Style::Normal, 1);
  if (!r.reason.empty()) d.add("why", r.reason, Style::Normal, 2, true);
  if (!r.accepted.empty()) d.add("accepted", join(r.accepted, ", "), Style::Bad, 2, true);
  for (const auto& lan : r.lan) {
    const auto [lanRelay, lanStyle] = relayCell(lan.relay);
    d.add("LAN",
          lan.subnet + " (from " + lan.probeAddress + "): relay " + lanRelay +
              (lan.accepted.empty() ? std::string() : "   accepted " + join(lan.accepted, ", ")),
          lanStyle, 2, true);
  }
  if (r.findings.empty()) d.add("findings", "none");
  for (const auto& f : r.findings) {
    const Style st = f.severity == "critical"  ? Style::Bad
                     : f.severity == "warning" ? Style::Held
                                               : Style::Normal;
    d.add(f.severity, f.title, st, 2, true);
    d.add("  fix", f.fix, Style::Normal, 4, true);
    if (!f.blockCommand.empty()) d.add("  block", f.blockCommand, Style::Key, 1);
  }
  return d.take();
}

void detailsPane(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  if (l.detailsRows == 0) return;
  std::vector<Row> lines;
  std::string title = " details ";
  if (s.screen == Screen::Programs) {
    if (const auto* p = selectedProgram(s)) lines = programDetails(s, *p, width);
    title = " program details (Enter closes) ";
  } else if (s.screen == Screen::Attempts) {
    if (const auto* a = selectedAttempt(s)) lines = attemptDetails(s, *a, width);
    title = " attempt details (Enter closes) ";
  } else if (s.screen == Screen::Alerts) {
    if (const auto* a = selectedAlert(s)) lines = alertDetails(s, *a, width);
    title = " alert evidence (Enter closes) ";
  } else if (s.screen == Screen::Audit) {
    if (const auto* r = selectedAuditResult(s)) lines = auditDetails(s, *r, width);
    title = " audit findings (Enter closes) ";
  }
  RowBuilder sep(width);
  sep.add("\u2500\u2500", Style::Dim).add(title, Style::Title);
  std::string fill;
  for (int i = sep.used(); i < width; ++i) fill += "\u2500";
  sep.add(fill, Style::Dim);
  rows.push_back(sep.finish());
  for (int r = 1; r < l.detailsRows; ++r) {
    const auto i = static_cast<std::size_t>(r - 1);
    rows.push_back(i < lines.size() ? std::move(lines[i]) : plain(width, ""));
  }
}

std::string jsonText(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

// The likely cause of a listing is not in the report: guardd names it in the blocklist
// alert it raised when the listing was new (evidence {kind, zone, cause}).
std::string listingCause(const State& s, const std::string& zone) {
  for (const auto& a : s.alerts) {
    if (a.kind != "blocklist") continue;
    const auto e = nlohmann::json::parse(a.evidence, nullptr, false);
    if (e.is_object() && jsonText(e, "zone") == zone) return jsonText(e, "cause");
  }
  return {};
}

// The last outside check: the public address in each blocklist, then each domain's SPF
// and DMARC findings with their fixes.
void outsideScreen(const State& s, const Layout& l, int width, std::vector<Row>& rows) {
  rows.push_back(
      plain(width, " OUTSIDE: how the rest of the internet sees this household", Style::Header));
  std::vector<Row> lines;
  auto line = [&](const std::string& text, Style style = Style::Normal) {
    lines.push_back(plain(width, " " + text, style));
  };
  if (s.outsideRequested) {
    line("checking... DNS lookups of the blocklists and your domains", Style::Held);
  }
  if (!s.outsideError.empty()) line("No outside check: " + s.outsideError, Style::Error);
  const auto r = nlohmann::json::parse(s.outside, nullptr, false);
  if (!r.is_object()) {
    if (s.outsideError.empty() && !s.outsideRequested) {
      line(s.everLoaded ? "No outside check yet: press R to check now" : "Waiting for guardd ...",
           Style::Dim);
    }
  } else if (!r.contains("time") || !r["time"].is_string()) {
    line("No outside check yet: press R to check now", Style::Dim);
  } else {
    if (r.value("running", false) && !s.outsideRequested)
      line("A check is running now", Style::Held);
    const std::string address = jsonText(r, "public_address");
    line("Last check " + jsonText(r, "time") + ": " +
             (address.empty()
                  ? "public address unknown: " + jsonText(r, "address_error")
                  : "public address " + address + " (from " + jsonText(r, "address_source") + ")"),
         address.empty() ? Style::Error : Style::Normal);
    // Why the sources asked before it gave none (a router behind carrier-grade NAT, ...).
    if (!address.empty() && r.contains("address_notes") && r["address_notes"].is_array()) {
      for (const auto& note : r["address_notes"]) {
        if (note.is_string()) line("  Note: " + note.get<std::string>(), Style::Dim);
      }
    }
    if (r.contains("blocklists") && r["blocklists"].is_array() && !r["blocklists"].empty()) {
      line("Blocklists", Style::Header);
      for (const auto& b : r["blocklists"]) {
        const std::string zone = jsonText(b, "zone");
        const std::string status = jsonText(b, "status");
        if (status == "listed") {
          const std::string reason = jsonText(b, "reason");
          line("  " + zone + "  LISTED since " + jsonText(b, "first_seen") +
                   (reason.empty() ? "" : " (" + reason + ")"),
               Style::Bad);
          if (const auto cause = listingCause(s, zone); !cause.empty()) {
            line("    Likely cause: " + cause);
          }
        } else if (status == "error") {
          line("  " + zone + "  error: " + jsonText(b, "error"), Style::Error);
        } else {
          line("  " + zone + "  not listed", Style::Good);
        }
      }
    }
    if (r.contains("domains") && r["domains"].is_array() && !r["domains"].empty()) {
      line("Domains", Style::Header);
      for (const auto& d : r["domains"]) {
        const auto findings = d.value("findings", nlohmann::json::array());
        if (findings.empty()) {
          line("  " + jsonText(d, "domain") + "  protected (SPF " + jsonText(d, "spf_all") +
                   ", DMARC p=" + jsonText(d, "dmarc_policy") + ")",
               Style::Good);
          continue;
        }
        line("  " + jsonText(d, "domain") + "  " + std::to_string(findings.size()) +
             (findings.size() == 1 ? " finding" : " findings"));
        for (const auto& f : findings) {
          line("    [" + jsonText(f, "severity") + "] " + jsonText(f, "title"), Style::Bad);
          line("      Fix: " + jsonText(f, "fix"));
        }
      }
    }
    if (r.contains("next_run") && r["next_run"].is_string()) {
      line("Next check: " + r["next_run"].get<std::string>(), Style::Dim);
    }
  }
  for (int i = 0; i < l.listRows; ++i) {
    const auto k = static_cast<std::size_t>(i);
    rows.push_back(k < lines.size() ? std::move(lines[k]) : plain(width, ""));
  }
}

void helpScreen(const Layout& l, int width, std::vector<Row>& rows) {
  static const std::vector<std::pair<std::string, std::string>> kKeys = {
      {"Up/Down  j/k", "move the selection (PgUp/PgDn, Home/End: by page, to the ends)"},
      {"Tab  1-5  o", "screens: 1 Programs 2 Attempts 3 Alerts 4 Audit 5 Outside"},
      {"Enter", "show or hide the details of the selected line"},
      {"a", "approve the program: it may send mail (asks y/n first)"},
      {"A", "approve with options: pin it to servers, allow variables"},
      {"d", "deny it: its mail connections are refused at once"},
      {"f", "forget the decision: it is held and asked about again (y/n)"},
      {"K", "Alerts: acknowledge the selected alert (a approves its program)"},
      {"R", "Audit: audit mail servers now; Outside: check blocklists now"},
      {"/", "filter by text: path, user, state, destination; Esc clears"},
      {"v", "Attempts: show all, held only, refused only"},
      {"s", "sort programs: pending first, last seen, attempts, path"},
      {"r", "reload everything from guardd"},
      {"?", "this help (any key closes it)"},
      {"q", "quit"},
  };
  rows.push_back(plain(width, " Keys", Style::Header));
  std::vector<Row> lines;
  for (const auto& [k, v] : kKeys) {
    RowBuilder b(width);
    b.add("   ").cell(fitEnd(k, 14), Style::Key).add(v);
    lines.push_back(b.finish());
  }
  // No blank line above: at 80x24 every line of the help fits.
  for (const char* text : {"PENDING programs wait for your decision: their mail connections",
                           "are held until you approve or deny them.",
                           "Approving, denying, forgetting and acknowledging need root (sudo).",
                           "Reading works for every user."}) {
    lines.push_back(plain(width, std::string("   ") + text));
  }
  for (int r = 0; r < l.listRows; ++r) {
    const auto i = static_cast<std::size_t>(r);
    rows.push_back(i < lines.size() ? std::move(lines[i]) : plain(width, ""));
  }
}

// "1,234"
std::string grouped(int n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

// "rows 41-80 of 1,234" for the long lists, with what narrows them.
std::string windowText(const State& s) {
  if (s.screen != Screen::Attempts && s.screen != Screen::Alerts) return {};
  const ListWindow w = listWindow(s);
  // "1,000+": guardd has older attempts, loaded when paging reaches them; alerts are
  // loaded up to kMaxAlerts (Alerts() takes a limit only; guardctl alerts lists more).
  const bool more = s.screen == Screen::Attempts ? s.olderAttempts : s.alerts.size() >= kMaxAlerts;
  std::string text = w.total == 0 ? "no rows"
                                  : "rows " + grouped(w.first) + "-" + grouped(w.last) + " of " +
                                        grouped(w.total) + (more ? "+" : "");
  if (s.screen == Screen::Attempts) {
    if (s.loadingOlder) text += ", loading older";
    if (s.verdictFilter != VerdictFilter::All) {
      text += ", " + std::string(toString(s.verdictFilter));
    }
  }
  return text + " ";
}

// The `A` form, in the rows above the message line and on it.
void approveForm(const State& s, int width, std::vector<Row>& rows) {
  const auto& f = *s.form;
  const int top = static_cast<int>(rows.size()) - 2;
  const auto field = [&](int index, const std::string& label, const std::string& value) {
    RowBuilder b(width);
    const bool active = f.field == index;
    b.add(active ? " > " : "   ", Style::Prompt)
        .add(label, Style::Prompt)
        .add(value + (active ? "_" : ""), active ? Style::Normal : Style::Dim);
    return b.finish();
  };
  const std::string head = " Approve with options: ";
  const std::string tail = " (nothing is sent until Enter)";
  const int room = width - displayWidth(head) - displayWidth(tail);
  rows[static_cast<std::size_t>(std::max(0, top))] = plain(
      width, head + (room > 0 ? fitMiddle(f.subject, room, false) : "") + tail, Style::Prompt);
  rows[static_cast<std::size_t>(std::max(0, top + 1))] =
      field(0, "only to (host[:port], comma separated): ", f.onlyTo);
  rows.push_back(field(1, "allow variables: ", f.allowEnv));
}

void messageLine(const State& s, int width, std::vector<Row>& rows) {
  const std::string window = windowText(s);
  const std::string waiting = waitingText(s);
  if (s.form) {
    approveForm(s, width, rows);
  } else if (s.editingFilter) {
    RowBuilder b(width);
    b.add(" Filter: ", Style::Prompt)
        .add(s.filter + "_")
        .add("   (Enter keeps it, Esc clears)", Style::Dim);
    rows.push_back(b.finish());
  } else if (s.confirm) {
    const std::string head = " " + s.confirm->question + " ";
    const std::string tail = " [y/n]";
    const int room = width - displayWidth(head) - displayWidth(tail);
    rows.push_back(plain(width,
                         head + (room > 0 ? fitMiddle(s.confirm->subject, room, false) : "") + tail,
                         Style::Prompt));
  } else if (s.message) {
    rows.push_back(plain(width, " " + s.message->text,
                         s.message->kind == Message::Kind::Error ? Style::Error : Style::Info));
  } else if (!s.connected) {
    rows.push_back(plain(width,
                         " Lost guardd" +
                             (s.disconnectReason.empty() ? "" : ": " + s.disconnectReason) +
                             "; reconnecting as soon as it is back",
                         Style::Error));
  } else if (!waiting.empty()) {
    rows.push_back(plain(width, " " + waiting, Style::Info));
  } else {
    std::string left;
    if (!s.filter.empty()) left = " Filter: \"" + s.filter + "\" (/ edits, Esc clears)";
    const int gap = width - displayWidth(left) - displayWidth(window);
    rows.push_back(plain(
        width, gap >= 2 ? left + std::string(static_cast<std::size_t>(gap), ' ') + window : left,
        Style::Dim));
  }
}

void keysLine(const State& s, int width, std::vector<Row>& rows) {
  std::vector<std::pair<std::string, std::string>> keys;
  if (s.form) {
    keys = {{"Tab", "next field"}, {"Enter", "approve"}, {"Esc", "cancel"}};
  } else if (s.confirm) {
    keys = {{"y", "yes"}, {"n", "no"}};
  } else if (s.help) {
    keys = {{"any key", "close help"}};
  } else if (s.screen == Screen::Programs || s.screen == Screen::Attempts) {
    keys = {{"a", "approve"}, {"d", "deny"}, {"f", "forget"}, {"Enter", "details"},
            {"/", "filter"},  {"s", "sort"}, {"?", "help"},   {"q", "quit"}};
  } else if (s.screen == Screen::Alerts) {
    keys = {{"K", "acknowledge"}, {"a", "approve"}, {"d", "deny"}, {"Enter", "evidence"},
            {"/", "filter"},      {"?", "help"},    {"q", "quit"}};
  } else if (s.screen == Screen::Outside) {
    keys = {{"R", "check now"}, {"Tab", "screen"}, {"?", "help"}, {"q", "quit"}};
  } else {
    keys = {{"R", "run audit now"},
            {"Enter", "findings"},
            {"Tab", "screen"},
            {"?", "help"},
            {"q", "quit"}};
  }
  RowBuilder b(width);
  for (const auto& [k, v] : keys) {
    b.add(b.used() == 0 ? " " : "  ").add(k, Style::Key).add(" " + v, Style::Dim);
  }
  rows.push_back(b.finish());
}

}  // namespace

std::string Row::text() const {
  std::string out;
  for (const auto& s : spans) out += s.text;
  return out;
}

std::vector<std::string> Frame::lines() const {
  std::vector<std::string> out;
  for (const auto& r : rows) {
    auto t = r.text();
    while (!t.empty() && t.back() == ' ') t.pop_back();
    out.push_back(std::move(t));
  }
  return out;
}

std::string Frame::text() const {
  std::string out;
  for (const auto& l : lines()) out += l + "\n";
  return out;
}

std::string formatTime(const State& s, std::int64_t us) {
  if (us == 0) return "never";
  const auto t = localTime(s, us);
  char buf[32];
  if (s.todayStartUs != 0 && us >= s.todayStartUs && us < s.todayStartUs + kDayUs) {
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d", t.hour, t.minute, t.second);
  } else {
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", t.year, t.month, t.day);
  }
  return buf;
}

std::string formatFullTime(const State& s, std::int64_t us) {
  if (us == 0) return "never";
  const auto t = localTime(s, us);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", t.year, t.month, t.day, t.hour,
                t.minute, t.second);
  return buf;
}

std::string formatEndpoint(const std::string& address, std::uint16_t port) {
  if (address.find(':') != std::string::npos) return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

std::string attemptDestination(const Attempt& a) {
  // A message handed to the MTA has no address or port yet: its recipients' domains.
  if (a.channel == "mta") return "mta: " + (a.dst.empty() ? std::string("?") : a.dst);
  return formatEndpoint(a.dst, a.dstPort);
}

Frame render(const State& s, Size size) {
  Frame f;
  f.size = size;
  const int width = std::max(0, size.cols);
  if (size.cols < kMinCols || size.rows < kMinRows) {
    for (int r = 0; r < size.rows; ++r) {
      f.rows.push_back(
          plain(width, r == 0 ? "Terminal too small for guard-tui (needs 40x10)" : ""));
    }
    return f;
  }
  const Layout l = layoutFor(s, size);
  tabBar(s, width, f.rows);
  statusLine(s, width, f.rows);
  if (s.help) {
    helpScreen(l, width, f.rows);
  } else {
    switch (s.screen) {
      case Screen::Programs:
        programsList(s, l, width, f.rows);
        break;
      case Screen::Attempts:
        attemptsList(s, l, width, f.rows);
        break;
      case Screen::Alerts:
        alertsList(s, l, width, f.rows);
        break;
      case Screen::Audit:
        auditList(s, l, width, f.rows);
        break;
      case Screen::Outside:
        outsideScreen(s, l, width, f.rows);
        break;
    }
    detailsPane(s, l, width, f.rows);
  }
  while (static_cast<int>(f.rows.size()) < l.messageRow) f.rows.push_back(plain(width, ""));
  messageLine(s, width, f.rows);
  keysLine(s, width, f.rows);
  f.rows.resize(static_cast<std::size_t>(size.rows));
  return f;
}

}  // namespace mailguard::tui
