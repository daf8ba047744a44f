#pragma once
// What guardctl prints: aligned tables for people, and the JSON shapes DESIGN.md
// fixes for scripts ("guardctl --json": keys may be added, never renamed).
#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/dbus/client.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::guardctl {

// RFC 3339 in UTC, or null for 0 ("never").
nlohmann::json timeJson(std::int64_t micros);

nlohmann::json toJson(const dbus::Status& s);
nlohmann::json toJson(const dbus::Program& p);
nlohmann::json toJson(const dbus::Attempt& a);
// {id, action, path, sha256, script_path, script_sha256, only_to, allow_env}; only_to is
// a list, empty for an approval that holds for any destination; allow_env the
// code-loading variables and options an approval allows, empty for none.
nlohmann::json toJson(const dbus::Rule& r);

std::string statusText(const dbus::Status& s);
// {id, sha256, first_seen, state}: one version of a program (ProgramVersions).
nlohmann::json toJson(const dbus::ProgramVersion& v);

// A program's versions (ProgramVersions: the current one first), by the row's id.
using VersionsById = std::map<std::int64_t, std::vector<dbus::ProgramVersion>>;
std::string programsTable(const std::vector<dbus::Program>& programs);
// With the versions of each row: "(3 versions)" after the program, a pending state's
// reason ("pending: changed since approved"), and with listVersions every version of a
// program that has more than one, indented below its row.
std::string programsTable(const std::vector<dbus::Program>& programs, const VersionsById& versions,
                          bool listVersions);
std::string attemptsTable(const std::vector<dbus::Attempt>& attempts);
std::string rulesTable(const std::vector<dbus::Rule>& rules);
// The command line, "(hidden: another user's)" when guardd withheld it, "-" when none.
std::string commandText(const dbus::Attempt& a);
std::string programLine(const dbus::Program& p);
// What an approval or denial covers, in words: a script "run by" its interpreter, the
// warning for inline code, what a decision about an interpreter itself means.
std::vector<std::string> decisionNotes(const dbus::Program& p, bool approved);
// A user named by login name or uid, as --user takes it.
Result<std::uint32_t> userId(const std::string& typed);
// "program", "script" or "inline": what an attempt's process ran.
std::string attemptKind(const dbus::Attempt& a);  // "program 3 (/usr/bin/msmtp) is approved"
std::string attemptLine(const dbus::Attempt& a);  // one line for `guardctl watch`
// "connection", or how the mail left otherwise: "mta" (handed to the local MTA).
std::string channelText(const dbus::Attempt& a);
// "192.0.2.25:25", or for a message handed to the MTA its recipients' domains.
std::string destinationText(const dbus::Attempt& a);
// The messages the MTA holds for the programs a policy command names (an id, or a path
// with its script: every program of that path and script; with inlineCode only the inline
// code run by the interpreter at that path).
std::uint32_t heldMessagesOf(const std::vector<dbus::Program>& programs, const std::string& target,
                             const std::string& script, bool inlineCode = false);
// "3 held messages of /usr/bin/python3 /srv/x.py will be deleted"
std::string heldNotice(std::uint32_t held, const std::string& program);

// Local time to the second, for people; "never" for 0.
std::string localTime(std::int64_t us);

// How guardd and the system bus are started here: by systemd where it is PID 1, and by
// hand inside a network namespace trial (`ip netns exec`, `unshare -n`), where systemd
// would start guardd in the host's namespace.
struct Machine {
  bool systemd = false;         // /run/systemd/system exists (sd_booted(3))
  bool namespaceTrial = false;  // another network namespace than PID 1's
};
Machine thisMachine();
// The error's message, with the way to start guardd (NotRunning) or the bus (NoBus) that
// works on `machine`; other errors unchanged.
std::string withStartHint(const dbus::ClientError& e, const Machine& machine);

// Shared by the commands: prints "guardctl: <message>" to stderr and returns the exit
// code of a failed command (1); a guardd or bus not running gets withStartHint for this
// machine. A refusal reads "Not authorized: <guardd's reason>". With
// setJsonErrors(true) (--json) it also prints, on stdout, {"error": {"name": <the D-Bus
// error name or null>, "kind": "not_authorized"|"not_running"|"no_bus"|
// "invalid_argument"|"not_found"|"failed", "message": <the same text>}}.
int fail(const dbus::ClientError& e);
void setJsonErrors(bool on);
// The text fail() prints after "guardctl: ".
std::string failureText(const dbus::ClientError& e);
// PATH|ID as typed, as guardd wants it: a program id (digits, 1 and up) or an absolute
// path. A relative path ("./bot", "bot.py") is taken from the current directory and must
// name a file there. Anything else is refused with why: "-1" (ids start at 1; a file
// whose name starts with '-' is written "./-1"), "0", a word that names no file here.
Result<std::string> programTarget(std::string_view typed);
// A --script argument: a path only (digits are a file name here), same rules otherwise.
Result<std::string> scriptTarget(std::string_view typed);
// Prints --json output, indented.
void printJson(const nlohmann::json& j);

// Columns padded to the widest cell; the last column is never padded.
std::string alignTable(const std::vector<std::vector<std::string>>& rows);

// "2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", "2024-05-01" (midnight UTC), or
// a time ago: "90s", "15m", "2h", "7d". Microseconds since the epoch; nullopt if bad.
std::optional<std::int64_t> parseTime(std::string_view text,
                                      std::chrono::system_clock::time_point now);

}  // namespace mailguard::guardctl
