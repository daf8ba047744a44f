#include "output.hpp"

#include <pwd.h>
#include <sys/stat.h>

#include <array>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string_view>
#include <system_error>

#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"

namespace mailguard::guardctl {
namespace {

using nlohmann::json;

TimePoint fromMicros(std::int64_t us) { return TimePoint{std::chrono::microseconds(us)}; }

std::string joinComma(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

std::string identityText(const std::string& path, const std::string& script) {
  return script.empty() ? path : path + " " + script;
}

std::string endpoint(const std::string& addr, std::uint16_t port) {
  if (addr.find(':') != std::string::npos) return "[" + addr + "]:" + std::to_string(port);
  return addr + ":" + std::to_string(port);
}

// What each attribution path means for the owner.
std::string attributionText(const std::string& attribution) {
  if (attribution == "kernel") return "kernel (BPF hooks decide approved connects at connect())";
  if (attribution == "proc") {
    return "proc (each new mail connection is queued and its program looked up in /proc)";
  }
  return attribution.empty() ? "unknown (guardd does not say)" : attribution;
}

bool parseDigits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::string localTime(std::int64_t us) {
  if (us == 0) return "never";
  const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

namespace {

bool gJsonErrors = false;

const char* kindName(dbus::ClientError::Kind kind) {
  using Kind = dbus::ClientError::Kind;
  switch (kind) {
    case Kind::NoBus:
      return "no_bus";
    case Kind::NotRunning:
      return "not_running";
    case Kind::NotAuthorized:
      return "not_authorized";
    case Kind::InvalidArgument:
      return "invalid_argument";
    case Kind::NotFound:
      return "not_found";
    case Kind::Failed:
      break;
  }
  return "failed";
}

// Whether two paths are the same namespace (the same nsfs inode).
bool sameFile(const char* a, const char* b) {
  struct stat sa {};
  struct stat sb {};
  return ::stat(a, &sa) == 0 && ::stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// Whether this network namespace has no interface but `lo` (/proc/self/net/dev: two
// header lines, then "name: counters" per interface).
bool onlyLoopback() {
  std::ifstream dev("/proc/self/net/dev");
  std::string line;
  int lineNo = 0;
  bool any = false;
  while (std::getline(dev, line)) {
    if (++lineNo <= 2) continue;
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const auto first = line.find_first_not_of(' ');
    if (line.substr(first, colon - first) != "lo") return false;
    any = true;
  }
  return any;
}

}  // namespace

Machine thisMachine() {
  Machine m;
  std::error_code ec;
  m.systemd = std::filesystem::is_directory("/run/systemd/system", ec);
  // PID 1's namespace is readable by root only (ptrace access); `ip netns add` leaves a
  // bind mount of each named namespace in /run/netns, readable by everyone.
  struct stat init {};
  if (::stat("/proc/1/ns/net", &init) == 0) {
    m.namespaceTrial = !sameFile("/proc/self/ns/net", "/proc/1/ns/net");
  } else {
    for (const auto& entry : std::filesystem::directory_iterator("/run/netns", ec)) {
      if (sameFile("/proc/self/ns/net", entry.path().c_str())) m.namespaceTrial = true;
    }
    // A namespace made with `unshare -n` has no name; that it has nothing but loopback
    // gives it away (a PC's own namespace has its network interfaces).
    if (!m.namespaceTrial) m.namespaceTrial = onlyLoopback();
  }
  return m;
}

std::string withStartHint(const dbus::ClientError& e, const Machine& machine) {
  using Kind = dbus::ClientError::Kind;
  if (e.kind == Kind::NotRunning && machine.namespaceTrial) {
    return "guardd is not running (no org.mailguard.Guard1 on the system bus); this shell is in "
           "a network namespace trial, and guardd must run inside it (a system service would "
           "run in the host's namespace): start it here, with 'sudo ./install/setup.sh --restart' "
           "from the "
           "mailguard sources, or by hand: sudo guardd &";
  }
  if (e.kind == Kind::NoBus) {
    // The bus is not bound to a network namespace: systemd's dbus.service is the right
    // one in a trial too.
    if (machine.systemd) return e.message + "; start it with: sudo systemctl start dbus";
    return e.message +
           "; start it with: sudo dbus-daemon --system --fork (first remove a stale "
           "/run/dbus/system_bus_socket and /run/dbus/pid left by a bus that is gone), then "
           "restart guardd";
  }
  return e.message;
}

void setJsonErrors(bool on) { gJsonErrors = on; }

std::string failureText(const dbus::ClientError& e) {
  if (e.kind != dbus::ClientError::Kind::NotAuthorized) return withStartHint(e, thisMachine());
  // guardd's reason already says what would be allowed (root, or polkit's action and who
  // may use it).
  return "Not authorized: " + e.message;
}

int fail(const dbus::ClientError& e) {
  const std::string text = failureText(e);
  std::cerr << "guardctl: " << text << "\n";
  if (gJsonErrors) {
    printJson({{"error",
                {{"name", e.name.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.name)},
                 {"kind", kindName(e.kind)},
                 {"message", text}}}});
  }
  return 1;
}

namespace {

// What the quotes show of a typed argument: printable, at most 60 bytes.
std::string shown(std::string_view s) {
  std::string out = "'";
  for (const char c : s.substr(0, 60)) {
    const auto u = static_cast<unsigned char>(c);
    out += u < 0x20 || u == 0x7f ? '?' : c;
  }
  return out + (s.size() > 60 ? "...'" : "'");
}

// The file a bare command name runs, from $PATH, for a hint; empty when there is none.
std::string inSearchPath(std::string_view name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr || name.find('/') != std::string_view::npos) return {};
  std::string_view rest(path);
  while (!rest.empty()) {
    const auto colon = rest.find(':');
    const auto dir = rest.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (dir.empty() || dir.front() != '/') continue;
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate.string();
  }
  return {};
}

Result<std::string> pathTarget(std::string_view typed, const char* what) {
  if (typed.empty()) return invalidArgument(std::string("no ") + what + " given");
  if (typed.front() == '-') {
    return invalidArgument(shown(typed) + " is not " + what +
                           ": program ids are 1, 2, 3, ... (see 'guardctl programs') and a "
                           "path is like /usr/bin/msmtp; write a file whose name starts "
                           "with '-' as ./" +
                           std::string(typed));
  }
  if (typed.front() == '/') return std::string(typed);
  std::error_code ec;
  const auto abs = std::filesystem::absolute(std::filesystem::path(typed), ec).lexically_normal();
  if (ec || !std::filesystem::exists(abs, ec)) {
    std::string msg = shown(typed) + " is neither a program id nor a file in this directory";
    if (const auto found = inSearchPath(typed); !found.empty()) {
      msg += "; did you mean " + found + "?";
    } else {
      msg += " (give a path like /usr/bin/msmtp or ./bot, or an id from 'guardctl programs')";
    }
    return invalidArgument(msg);
  }
  return abs.string();
}

}  // namespace

Result<std::string> programTarget(std::string_view typed) {
  if (!typed.empty() && typed.find_first_not_of("0123456789") == std::string_view::npos) {
    const auto first = typed.find_first_not_of('0');
    if (first == std::string_view::npos) {
      return invalidArgument("program ids start at 1, got " + shown(typed) +
                             " (see 'guardctl programs')");
    }
    if (typed.size() - first > 18) {
      return invalidArgument(shown(typed) + " is too large for a program id");
    }
    return std::string(typed.substr(first));
  }
  return pathTarget(typed, "a program id or path");
}

Result<std::string> scriptTarget(std::string_view typed) { return pathTarget(typed, "a script"); }

void printJson(const json& j) { std::cout << j.dump(2) << "\n"; }

json timeJson(std::int64_t micros) {
  if (micros == 0) return nullptr;
  return formatRfc3339(fromMicros(micros));
}

namespace {

// What guardd sees of who is at the keyboard; null from a guardd that does not say.
json presenceJson(const dbus::Status& s) {
  if (s.presenceSource.empty()) return nullptr;
  json p = {{"source", s.presenceSource}, {"active_user", nullptr}, {"idle_s", nullptr}};
  if (s.presenceActiveUser) p["active_user"] = *s.presenceActiveUser;
  if (s.presenceIdleSeconds) p["idle_s"] = *s.presenceIdleSeconds;
  return p;
}

}  // namespace

json toJson(const dbus::Status& s) {
  return json{{"enforcing", s.enforcing},
              {"backend", s.backend},
              {"attribution", s.attribution.empty() ? json(nullptr) : json(s.attribution)},
              {"version", s.version},
              {"counters",
               {{"verdicts", s.allowed + s.held + s.rejected},
                {"allowed", s.allowed},
                {"held", s.held},
                {"rejected", s.rejected},
                {"queue_dropped", s.queueDropped},
                {"attempts_dropped", s.attemptsDropped},
                {"store_errors", s.storeErrors},
                {"table_restores", s.tableRestores},
                {"kernel_events_lost", s.kernelEventsLost}}},
              {"kernel", s.attribution == "kernel"
                             ? json{{"hooks", s.kernelHooks}, {"map_bytes", s.kernelMapBytes}}
                             : json(nullptr)},
              {"dns", {{"source", s.dnsSource}, {"queries", s.dnsQueries}, {"lost", s.dnsLost}}},
              {"replies", {{"sessions", s.replySessions}, {"lost", s.repliesLost}}},
              {"store_error", s.storeError.empty() ? json(nullptr) : json(s.storeError)},
              {"presence", presenceJson(s)}};
}

std::string attemptKind(const dbus::Attempt& a) {
  // A process of an interpreter runs a script or inline code; never the interpreter alone.
  if (!a.scriptPath.empty()) return "script";
  const auto slash = a.path.rfind('/');
  const auto base = slash == std::string::npos ? a.path : a.path.substr(slash + 1);
  return rules::isInterpreter(base) ? "inline" : "program";
}

Result<std::uint32_t> userId(const std::string& typed) {
  if (!typed.empty() && typed.find_first_not_of("0123456789") == std::string::npos) {
    if (typed.size() > 10 || std::stoull(typed) > 0xFFFFFFFEULL) {
      return invalidArgument(shown(typed) + " is not a uid");
    }
    return static_cast<std::uint32_t>(std::stoul(typed));
  }
  std::array<char, 4096> buffer{};
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwnam_r(typed.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return invalidArgument("no user named " + shown(typed) + " (a login name, a uid, or 'all')");
  }
  return static_cast<std::uint32_t>(found->pw_uid);
}

std::string coversText(const dbus::Program& p) {
  if (p.covers.empty()) return "-";
  return p.covers;
}

json toJson(const dbus::Program& p) {
  return json{{"id", p.id},
              {"path", p.path},
              {"sha256", p.sha256},
              {"uid", p.uid},
              {"state", p.state},
              {"attempts", p.attempts},
              {"last_attempt", timeJson(p.lastAttemptUs)},
              {"script_path", p.scriptPath.empty() ? json(nullptr) : json(p.scriptPath)},
              {"script_sha256", p.scriptSha256.empty() ? json(nullptr) : json(p.scriptSha256)},
              {"first_seen", timeJson(p.firstSeenUs)},
              {"held_messages", p.heldMessages},
              {"kind", p.kind},
              {"covers", p.covers.empty() ? json(nullptr) : json(p.covers)}};
}

json toJson(const dbus::Rule& r) {
  return json{{"id", r.id},
              {"action", r.action},
              {"path", r.path},
              {"sha256", r.sha256},
              {"script_path", r.scriptPath.empty() ? json(nullptr) : json(r.scriptPath)},
              {"script_sha256", r.scriptSha256.empty() ? json(nullptr) : json(r.scriptSha256)},
              {"only_to", r.onlyTo},
              {"allow_env", r.allowEnv},
              {"kind", r.kind},
              {"covers", r.covers}};
}

json toJson(const dbus::Attempt& a) {
  return json{{"id", a.id},
              {"time", timeJson(a.timeUs)},
              {"pid", a.pid == 0 ? json(nullptr) : json(a.pid)},
              {"path", a.path},
              {"uid", a.uid},
              {"dst", a.dst},
              {"port", a.dstPort},
              {"verdict", a.verdict},
              {"reason", a.reason},
              {"script_path", a.scriptPath.empty() ? json(nullptr) : json(a.scriptPath)},
              {"cmdline", a.cmdline},
              {"cmdline_hidden", a.cmdlineHidden.empty() ? json(nullptr) : json(a.cmdlineHidden)},
              {"src", a.src},
              {"src_port", a.srcPort},
              {"program_id", a.programId == 0 ? json(nullptr) : json(a.programId)},
              {"channel", channelText(a)},
              {"queue_id", a.queueId.empty() ? json(nullptr) : json(a.queueId)},
              {"kind", a.path.empty() ? json(nullptr) : json(attemptKind(a))}};
}

std::string alignTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& row : rows) {
    if (width.size() < row.size()) width.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += '\n';
  }
  return out;
}

std::string statusText(const dbus::Status& s) {
  std::ostringstream o;
  o << "guardd " << s.version << ": "
    << (s.enforcing ? "enforcing" : "NOT enforcing (mail connections are not being guarded)")
    << "\n";
  o << "queue backend:   " << (s.backend.empty() ? "none" : s.backend) << "\n";
  o << "attribution:     " << attributionText(s.attribution) << "\n";
  if (s.attribution == "kernel") {
    o << "kernel hooks:    taint hooks " << (s.kernelHooks.empty() ? "?" : s.kernelHooks) << ", "
      << s.kernelMapBytes / 1024 << " KiB of BPF maps, " << s.kernelEventsLost
      << " connects not reported (ring buffer full)\n";
  }
  // Verdicts, not attempts: a held connection's SYN retries each get one. The dashboard
  // and 'guardctl attempts' count attempts (one per connection).
  o << "verdicts:        since guardd started: " << s.allowed + s.held + s.rejected
    << " packet verdicts (" << s.allowed << " allowed, " << s.held << " held, " << s.rejected
    << " rejected; each SYN retry counts)\n";
  o << "dropped:         " << s.queueDropped << " by a full kernel queue, " << s.attemptsDropped
    << " attempts not recorded\n";
  if (s.tableRestores > 0) {
    o << "firewall table:  changed by another program and restored " << s.tableRestores
      << " time(s) (see guardctl alerts)\n";
  }
  if (s.presenceSource == "none") {
    o << "presence:        none (logind does not answer: the detector has no evidence of who "
         "is at the keyboard)\n";
  } else if (!s.presenceSource.empty()) {
    o << "presence:        " << s.presenceSource << ", active user ";
    if (s.presenceActiveUser) {
      o << *s.presenceActiveUser;
    } else {
      o << "none";
    }
    if (s.presenceIdleSeconds) o << ", idle " << *s.presenceIdleSeconds << " s";
    o << "\n";
  }
  o << "store:           ";
  if (s.storeError.empty() && s.storeErrors == 0) {
    o << "healthy\n";
  } else {
    o << s.storeErrors << " write errors" << (s.storeError.empty() ? "" : ", last: ")
      << s.storeError << "\n";
  }
  return o.str();
}

nlohmann::json toJson(const dbus::ProgramVersion& v) {
  return {{"id", v.id},
          {"sha256", v.sha256},
          {"first_seen", timeJson(v.firstSeenUs)},
          {"state", v.state}};
}

std::string programsTable(const std::vector<dbus::Program>& programs) {
  return programsTable(programs, {}, false);
}

std::string programsTable(const std::vector<dbus::Program>& programs, const VersionsById& versions,
                          bool listVersions) {
  if (programs.empty()) return "No programs have tried to send mail yet.\n";
  std::vector<std::vector<std::string>> rows{
      {"ID", "STATE", "KIND", "USERS", "ATTEMPTS", "HELD", "LAST ATTEMPT", "PROGRAM"}};
  // USERS: whom an approval covers (not who ran it last: that is the JSON's uid).
  for (const auto& p : programs) {
    const auto found = versions.find(p.id);
    const auto* history = found == versions.end() ? nullptr : &found->second;
    std::string state = p.state;
    std::string program = identityText(p.path, p.scriptPath);
    if (history != nullptr && !history->empty()) {
      // The current version's state says why it is pending ("changed since approved").
      if (history->front().id == p.id && history->front().state.starts_with(p.state + ":")) {
        state = history->front().state;
      }
      if (history->size() > 1) program += " (" + std::to_string(history->size()) + " versions)";
    }
    rows.push_back({std::to_string(p.id), state, p.kind, coversText(p), std::to_string(p.attempts),
                    p.heldMessages == 0 ? "-" : std::to_string(p.heldMessages),
                    localTime(p.lastAttemptUs), program});
    if (!listVersions || history == nullptr || history->size() < 2) continue;
    for (const auto& v : *history) {
      rows.push_back({"  " + std::to_string(v.id), v.state, "", "", "", "",
                      "first seen " + localTime(v.firstSeenUs),
                      "sha256 " + v.sha256.substr(0, 12) + (v.id == p.id ? " (current)" : "")});
    }
  }
  return alignTable(rows);
}

std::string commandText(const dbus::Attempt& a) {
  if (!a.cmdlineHidden.empty()) return "(hidden: " + a.cmdlineHidden + ")";
  return a.cmdline.empty() ? std::string("-") : a.cmdline;
}

std::string attemptsTable(const std::vector<dbus::Attempt>& attempts) {
  if (attempts.empty()) return "No attempts match.\n";
  // Whole command lines (up to 4 KiB) are in --json; a table row keeps the start.
  constexpr std::size_t kCommandWidth = 60;
  std::vector<std::vector<std::string>> rows{{"ID", "TIME", "VERDICT", "CHANNEL", "QUEUE ID", "PID",
                                              "UID", "DESTINATION", "PROGRAM", "COMMAND",
                                              "REASON"}};
  for (const auto& a : attempts) {
    std::string command = commandText(a);
    if (command.size() > kCommandWidth) {
      std::size_t n = kCommandWidth - 3;
      while (n > 0 && (static_cast<unsigned char>(command[n]) & 0xC0U) == 0x80U) --n;
      command = command.substr(0, n) + "...";
    }
    rows.push_back({std::to_string(a.id), localTime(a.timeUs), a.verdict, channelText(a),
                    a.queueId.empty() ? "-" : a.queueId, a.pid == 0 ? "-" : std::to_string(a.pid),
                    std::to_string(a.uid), destinationText(a),
                    a.path.empty() ? "(unknown)" : identityText(a.path, a.scriptPath), command,
                    a.reason});
  }
  return alignTable(rows);
}

std::string rulesTable(const std::vector<dbus::Rule>& rules) {
  if (rules.empty()) return "No programs are approved or denied yet.\n";
  std::vector<std::vector<std::string>> rows{
      {"RULE", "ACTION", "KIND", "FOR", "ONLY TO", "ALLOWS", "PROGRAM"}};
  for (const auto& r : rules) {
    std::string onlyTo = joinComma(r.onlyTo);
    if (onlyTo.empty()) onlyTo = r.action == "approve" ? "anywhere" : "-";
    std::string allows = joinComma(r.allowEnv);
    if (allows.empty()) allows = "-";
    rows.push_back({std::to_string(r.id), r.action, r.kind, r.covers, onlyTo, allows,
                    identityText(r.path, r.scriptPath)});
  }
  return alignTable(rows);
}

std::string programLine(const dbus::Program& p) {
  std::string what = identityText(p.path, p.scriptPath);
  if (p.kind == "inline") what = "inline code run by " + p.path;
  std::string line = "program " + std::to_string(p.id) + " (" + what + ") is " + p.state;
  if (p.state == "approved" && !p.covers.empty()) {
    line += p.covers == "all" ? " for all users" : " for " + p.covers + " only";
  }
  return line;
}

std::vector<std::string> decisionNotes(const dbus::Program& p, bool approved) {
  std::vector<std::string> notes;
  const auto slash = p.path.rfind('/');
  const auto base = slash == std::string::npos ? p.path : p.path.substr(slash + 1);
  if (p.kind == "script" && approved) {
    notes.push_back("approved " + p.scriptPath + ", run by " + p.path);
  } else if (p.kind == "inline" && approved) {
    notes.push_back("warning: any code typed or piped into " + base + " by user " + p.covers +
                    " may send mail");
  } else if (p.kind == "program" && rules::isInterpreter(base)) {
    notes.push_back(approved
                        ? "approved " + p.path +
                              " itself: its scripts and inline code are not approved by "
                              "this (approve a script with --script, or --inline)"
                        : "denied " + p.path + ": every script and inline program run by " + base);
  }
  return notes;
}

std::string attemptLine(const dbus::Attempt& a) {
  return localTime(a.timeUs) + "  " + a.verdict + "  " + destinationText(a) +
         (a.queueId.empty() ? "" : " (" + channelText(a) + " queue id " + a.queueId + ")") + "  " +
         (a.path.empty() ? "(unknown)" : identityText(a.path, a.scriptPath)) + " pid " +
         std::to_string(a.pid) + " uid " + std::to_string(a.uid) + ": " + a.reason;
}

std::string channelText(const dbus::Attempt& a) {
  return a.channel.empty() ? std::string("connection") : a.channel;
}

std::string destinationText(const dbus::Attempt& a) {
  // A message handed to the MTA goes to its recipients' domains, on no port of its own.
  if (a.channel == "mta") return a.dst.empty() ? std::string("-") : a.dst;
  return endpoint(a.dst, a.dstPort);
}

std::uint32_t heldMessagesOf(const std::vector<dbus::Program>& programs, const std::string& target,
                             const std::string& script, bool inlineCode) {
  std::uint32_t held = 0;
  const bool byId = !target.empty() && target.front() != '/';
  // guardd keeps real paths (/usr/bin/python3 is a link to python3.11): the rule is for
  // the file the path names.
  std::error_code ec;
  auto real = byId ? std::string() : std::filesystem::weakly_canonical(target, ec).string();
  if (ec) real = target;
  for (const auto& p : programs) {
    // A denial by path covers every content of that path (and script): the rule's key.
    const bool named = byId ? std::to_string(p.id) == target
                            : (p.path == target || p.path == real) && p.scriptPath == script &&
                                  (!inlineCode || p.kind == "inline");
    if (named) held += p.heldMessages;
  }
  return held;
}

std::string heldNotice(std::uint32_t held, const std::string& program) {
  return std::to_string(held) + (held == 1 ? " held message of " : " held messages of ") + program +
         " will be deleted";
}

std::optional<std::int64_t> parseTime(std::string_view text,
                                      std::chrono::system_clock::time_point now) {
  using namespace std::chrono;
  if (text.empty()) return std::nullopt;
  // A time ago: digits and one unit.
  if (const char unit = text.back(); unit == 's' || unit == 'm' || unit == 'h' || unit == 'd') {
    const auto digits = text.substr(0, text.size() - 1);
    if (!digits.empty() && digits.size() <= 9 &&
        digits.find_first_not_of("0123456789") == std::string_view::npos) {
      const long n = std::stol(std::string(digits));
      const long factor = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 86400;
      const auto t = now - seconds(n * factor);
      return duration_cast<microseconds>(t.time_since_epoch()).count();
    }
  }
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (!parseDigits(text, 0, 4, y) || text.size() < 10 || text[4] != '-' ||
      !parseDigits(text, 5, 2, mo) || text[7] != '-' || !parseDigits(text, 8, 2, d)) {
    return std::nullopt;
  }
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                           day{static_cast<unsigned>(d)}};
  if (!ymd.ok()) return std::nullopt;
  std::int64_t us = duration_cast<microseconds>(sys_days{ymd}.time_since_epoch()).count();
  if (text.size() == 10) return us;
  if ((text[10] != 'T' && text[10] != 't' && text[10] != ' ') || !parseDigits(text, 11, 2, h) ||
      text.size() < 19 || text[13] != ':' || !parseDigits(text, 14, 2, mi) || text[16] != ':' ||
      !parseDigits(text, 17, 2, s) || h > 23 || mi > 59 || s > 60) {
    return std::nullopt;
  }
  us += (static_cast<std::int64_t>(h) * 3600 + mi * 60 + s) * 1'000'000;
  std::size_t pos = 19;
  if (pos < text.size() && text[pos] == '.') {
    std::int64_t frac = 0;
    int digits = 0;
    for (++pos; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits) {
      if (digits < 6) frac = frac * 10 + (text[pos] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (int i = digits; i < 6; ++i) frac *= 10;
    us += frac;
  }
  if (pos == text.size()) return std::nullopt;  // RFC 3339 needs a zone
  if (text[pos] == 'Z' || text[pos] == 'z')
    return pos + 1 == text.size() ? std::optional(us) : std::nullopt;
  int oh = 0, om = 0;
  if ((text[pos] != '+' && text[pos] != '-') || text.size() != pos + 6 ||
      !parseDigits(text, pos + 1, 2, oh) || text[pos + 3] != ':' ||
      !parseDigits(text, pos + 4, 2, om)) {
    return std::nullopt;
  }
  const std::int64_t offset = (static_cast<std::int64_t>(oh) * 3600 + om * 60) * 1'000'000;
  return text[pos] == '+' ? us - offset : us + offset;
}

}  // namespace mailguard::guardctl
