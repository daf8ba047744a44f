// guardctl: the scripting CLI of mailguard. Parses the command line, makes one call
// to guardd over D-Bus, prints a table or JSON. Exit codes: 0 ok, 1 refused or
// failed, 2 usage.
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "alerts_cmd.hpp"
#include "backscatter_cmd.hpp"
#include "firewall_cmd.hpp"
#include "mailguard/dbus/client.hpp"
#include "mailguard/rules/code_loading.hpp"
#include "mailguard/rules/destination.hpp"
#include "output.hpp"
#include "outside_cmd.hpp"

namespace {

using mailguard::dbus::Client;
using mailguard::dbus::ClientResult;
namespace out = mailguard::guardctl;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

volatile std::sig_atomic_t gStop = 0;

using out::fail;
using out::printJson;

// A policy command's program and script as guardd wants them; a usage error otherwise.
struct Resolved {
  std::string target;
  std::string script;
};
std::optional<Resolved> resolveTargets(const std::string& target, const std::string& script) {
  auto t = out::programTarget(target);
  if (!t) {
    std::cerr << "guardctl: " << t.error().message << "\n";
    return std::nullopt;
  }
  Resolved r{*t, {}};
  if (!script.empty()) {
    auto s = out::scriptTarget(script);
    if (!s) {
      std::cerr << "guardctl: --script: " << s.error().message << "\n";
      return std::nullopt;
    }
    r.script = *s;
  }
  return r;
}

// Asks on the terminal; false when the answer is not yes.
bool confirm(const std::string& question) {
  std::cerr << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) return false;
  return answer == "y" || answer == "Y" || answer == "yes" || answer == "YES" || answer == "Yes";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "guardctl: control mailguard, which lets only approved programs on this PC send mail.\n"
      "\n"
      "Every program that opens a mail connection (ports 25, 465, 587, 2525) is held until\n"
      "you approve it, or rejected once you deny it. Reading works for every user; approving,\n"
      "denying and forgetting need root (sudo) or an administrator's password via polkit.\n"
      "\n"
      "Examples:\n"
      "  guardctl status                      is mailguard guarding mail right now?\n"
      "  guardctl programs                    which programs tried to send mail\n"
      "  guardctl attempts --verdict hold     connections waiting for your decision\n"
      "  sudo guardctl approve /usr/bin/msmtp let msmtp send mail\n"
      "  sudo guardctl deny 7                 block program 7 from the programs list\n"
      "  guardctl alerts                      programs that behaved like spam bots\n"
      "  sudo guardctl release 7              lift program 7's quarantine\n"
      "  sudo guardctl firewall enable        refuse inbound connections nobody allowed\n"
      "  guardctl audit --run                 is a mail server here an open relay?\n"
      "  guardctl outside                     is your address on a spam blocklist?\n"
      "\n"
      "Run 'guardctl COMMAND --help' for the options of a command.",
      "guardctl"};
  app.require_subcommand(1, 1);
  app.fallthrough();
  bool json = false;
  app.add_flag("--json", json,
               "Print JSON for scripts (shapes are stable: keys may be added, never renamed)");
  app.set_version_flag("--version", std::string("guardctl ") + MAILGUARD_VERSION);

  auto* status = app.add_subcommand(
      "status", "Show whether mail connections are being guarded, and the counters");
  status->footer(
      "Exit code 0 when guardd answered (check 'enforcing' to see it is guarding).\n"
      "verdicts: packet verdicts since guardd started (a held connection's SYN retries count\n"
      "each time); the dashboard's 'today: N attempts' and 'guardctl attempts' count attempts,\n"
      "one per connection.\n"
      "--json: counters.allowed, counters.held and counters.rejected are those packet verdicts\n"
      "since guardd started; counters.verdicts is their sum.");

  auto* programs =
      app.add_subcommand("programs", "List the programs that tried to send mail, with their state");
  programs->footer(
      "States: pending (waiting for your decision: its mail connections are held), approved,\n"
      "denied (its connections are refused at once) and quarantined (it behaved like a spam\n"
      "bot: its connections are refused until 'guardctl release'; see 'guardctl alerts').\n"
      "HELD: messages the program handed to the local MTA that it holds (frozen) until you\n"
      "decide: sent when you approve, deleted when you deny. --json: held_messages.\n"
      "KIND: program, script (run by the interpreter shown) or inline (code typed or piped\n"
      "into the interpreter: python3 -c, perl -e, stdin). USERS: whom its approval covers\n"
      "('all' or user names), not who ran it last (that is the JSON's uid). --json: kind,\n"
      "covers (null when not approved).\n"
      "One row per program (path, script, kind): a new content of its file is a new version\n"
      "on the same row, shown as '(3 versions)'; the row's ID and state are the newest\n"
      "version's ('pending: changed since approved' when the approval of an earlier content\n"
      "does not carry over: a file outside root-owned folders). --versions lists each\n"
      "version with when it was first seen and what you decided for it. --json: versions,\n"
      "[{id, sha256, first_seen, state}], the current one first.");
  bool listVersions = false;
  programs->add_flag("--versions", listVersions,
                     "List every version of each program below its row");

  mailguard::dbus::AttemptFilter filter;
  std::string since, until;
  auto* attempts = app.add_subcommand("attempts", "List mail connection attempts, newest first");
  attempts->footer(
      "CHANNEL: 'connection', or 'mta' for a message handed to the local MTA without TCP\n"
      "(sendmail, exim -t): DESTINATION is then its recipients' domains and QUEUE ID the\n"
      "MTA's id of the message. --json: channel, queue_id (null for a connection).");
  attempts->add_option("--limit", filter.limit, "How many to show, 1 to 1000 (default 50)")
      ->check(CLI::Range(1u, 1000u));
  attempts
      ->add_option("--before", filter.beforeId,
                   "Only attempts with an id below this one (to page back)")
      ->check(CLI::PositiveNumber);
  attempts
      ->add_option("--program", filter.programId,
                   "Only attempts of this program id (see 'guardctl programs')")
      ->check(CLI::PositiveNumber);
  attempts->add_option("--verdict", filter.verdict, "Only this verdict: allow, hold or reject")
      ->check(CLI::IsMember({"allow", "hold", "reject"}));
  attempts->add_option("--since", since,
                       "Only attempts at or after this time: 2024-05-01T10:00:00Z, 2024-05-01, "
                       "or a time ago like 15m, 2h, 7d");
  attempts->add_option("--until", until, "Only attempts at or before this time (same forms)");

  struct PolicyCommand {
    CLI::App* cmd = nullptr;
    std::string target;
    std::string script;
  };
  auto addPolicy = [&](const char* name, const std::string& what, const std::string& footer) {
    PolicyCommand pc;
    pc.cmd = app.add_subcommand(name, what);
    pc.cmd
        ->add_option("PATH|ID", pc.target,
                     "The program: its id from 'guardctl programs', or its path "
                     "(like /usr/bin/msmtp; a relative path is taken from here)")
        ->required();
    pc.cmd->add_option("--script", pc.script,
                       "For an interpreter (python3, perl, sh, ...): the script it runs, so "
                       "that only this script is meant, not every script of that interpreter");
    pc.cmd->footer(footer + "\nNeeds root (sudo) or an administrator's password via polkit.");
    return pc;
  };
  auto approve = addPolicy(
      "approve", "Let a program send mail",
      "The program's current content (SHA-256) is recorded with its path: if the file\n"
      "changes later, it is held again, unless it sits in a root-owned system folder where\n"
      "package upgrades keep the approval.\n"
      "Approval is by program: an approved client (swaks, curl, msmtp) run by someone else\n"
      "with their own arguments can send anywhere. --only-to pins the approval to the servers\n"
      "you name: a connection elsewhere is held as a new decision (see 'guardctl attempts\n"
      "--verdict hold'); approving again with --only-to adds servers, without it lifts the pin.\n"
      "HOST is an IP address or prefix, not a name: a connection carries only an address,\n"
      "and what a name resolves to changes (look it up yourself: 'getent ahosts NAME').\n"
      "Example: sudo guardctl approve /usr/bin/msmtp\n"
      "         sudo guardctl approve /usr/bin/msmtp --only-to 192.0.2.7:587 --only-to "
      "[2001:db8::7]:587\n"
      "         sudo guardctl approve /usr/bin/python3 --script /home/ann/bin/newsletter.py\n"
      "         sudo guardctl approve /usr/bin/swaks    (a perl script: approved with perl)\n"
      "         sudo guardctl approve /usr/bin/curl --user alice\n"
      "What an approval covers: a program (approving an interpreter such as python3 itself\n"
      "approves none of its scripts or inline code), a script run by its interpreter, or\n"
      "with --inline the code one user types or pipes into an interpreter (python3 -c,\n"
      "perl -e, stdin): any such code of that user may then send mail.\n"
      "A process of the program whose environment or options load other code (LD_PRELOAD,\n"
      "PYTHONPATH, PERL5OPT, perl -M, node --require, ...) is held; --allow-env names the\n"
      "ones this approval allows.");
  std::vector<std::string> allowEnv;
  approve.cmd
      ->add_option("--allow-env", allowEnv,
                   "Allow these code-loading variables or options (NAME[,NAME], like "
                   "PYTHONPATH or --allow-env=-M) when the program runs")
      ->delimiter(',');
  std::string approveUser;
  approve.cmd->add_option("--user", approveUser,
                          "Approve for this user only (NAME or UID), or 'all' for every user. "
                          "Default: a program or script in a home folder is for that home's "
                          "owner, any other for every user");
  bool approveInline = false;
  approve.cmd->add_flag("--inline", approveInline,
                        "PATH is an interpreter (python3, perl, sh, ...): approve the code one "
                        "user types or pipes into it (-c, -e, stdin); needs --user");
  std::vector<std::string> onlyTo;
  approve.cmd->add_option("--only-to", onlyTo,
                          "Allow only connections to HOST[:PORT] (repeatable). HOST: an IPv4 or "
                          "IPv6 address or prefix (192.0.2.7, 192.0.2.0/24, [2001:db8::7]); "
                          "PORT: one port, else any mail port");

  auto* rulesCmd = app.add_subcommand(
      "rules", "List your decisions: approved and denied programs, and where approvals may send");
  rulesCmd->footer(
      "ONLY TO: the destinations an approval is pinned to ('guardctl approve --only-to'),\n"
      "or 'anywhere'. ALLOWS: the code-loading variables and options it allows\n"
      "('guardctl approve --allow-env'). --json: array of {id, action, path, sha256,\n"
      "script_path, script_sha256, only_to, allow_env, kind, covers}.");
  auto deny = addPolicy("deny", "Refuse a program's mail connections at once",
                        "Its next connection fails immediately (connection refused).\n"
                        "Mail it handed to the local MTA and that is held there (see HELD in\n"
                        "'guardctl programs') is deleted: guardctl says how many and asks first;\n"
                        "without a terminal to ask on it refuses unless --yes is given.\n"
                        "Example: sudo guardctl deny 7");
  bool denyYes = false;
  deny.cmd->add_flag("--yes,-y", denyYes, "Delete the program's held messages without asking");
  bool denyInline = false;
  deny.cmd->add_flag("--inline", denyInline,
                     "PATH is an interpreter (python3, perl, sh, ...): deny the code typed or "
                     "piped into it (-c, -e, stdin) by every user, not its scripts");
  auto forget = addPolicy(
      "forget", "Remove your decision about a program",
      "The program becomes pending again: its next mail connection is held and you are asked.\n"
      "Example: sudo guardctl forget /usr/bin/msmtp\n"
      "         sudo guardctl forget --inline /usr/bin/python3 --user alice");
  bool forgetInline = false;
  forget.cmd->add_flag("--inline", forgetInline,
                       "PATH is an interpreter: forget the decisions about the code typed or "
                       "piped into it (-c, -e, stdin), not about it or its scripts");
  std::string forgetUser;
  forget.cmd->add_option("--user", forgetUser,
                         "Forget only the approvals for this user (NAME or UID), not those "
                         "for every user nor denials");

  mailguard::guardctl::DetectorCommands detectorCommands(app);  // alerts, release, bulk

  long count = 0;
  auto* watch = app.add_subcommand(
      "watch",
      "Print attempts, program changes, alerts and outside checks as they happen (Ctrl-C to "
      "stop)");
  watch->add_option("--count", count, "Stop after this many events")->check(CLI::PositiveNumber);
  watch->footer(
      "With --json, one JSON object per line: {\"signal\": \"AttemptRecorded\", \"attempt\": "
      "{...}},\n{\"signal\": \"ProgramChanged\", \"program\": {...}}, "
      "{\"signal\": \"AlertRaised\", \"alert\": {...}}\nor {\"signal\": \"OutsideChecked\", "
      "\"report\": {...}} (as guardctl --json outside prints it).");

  // firewall and audit (firewall_cmd.cpp).
  auto hostCommands = out::addHostCommands(app);
  auto backscatterCommand = out::addBackscatterCommand(app);
  // blocklists and SPF/DMARC (outside_cmd.cpp).
  auto outsideCommands = out::addOutsideCommands(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }

  if (*attempts) {
    const auto now = std::chrono::system_clock::now();
    for (auto [text, dest, opt] : {std::tuple{&since, &filter.sinceUs, "--since"},
                                   std::tuple{&until, &filter.untilUs, "--until"}}) {
      if (text->empty()) continue;
      const auto t = out::parseTime(*text, now);
      if (!t) {
        std::cerr << "guardctl: " << opt << " '" << *text
                  << "' is not a time: use 2024-05-01T10:00:00Z, 2024-05-01 or 15m/2h/7d ago\n";
        return kUsage;
      }
      *dest = *t;
    }
  }

  out::setJsonErrors(json);
  if (auto code = out::runHostCommands(*hostCommands, json)) return *code;
  if (auto code = out::runBackscatterCommand(*backscatterCommand, json)) return *code;
  if (auto code = out::runOutsideCommands(*outsideCommands, json)) return *code;

  // Ids and paths are told apart before guardd is asked: "-1" is a mistake, not ./-1.
  std::optional<Resolved> policyTargets;
  for (auto* pc : {&approve, &deny, &forget}) {
    if (!*pc->cmd) continue;
    policyTargets = resolveTargets(pc->target, pc->script);
    if (!policyTargets) return kUsage;
  }
  if (auto code = detectorCommands.checkArguments()) return *code;
  mailguard::dbus::ApproveScope scope;
  scope.inlineCode = approveInline;
  if (approveInline && !approve.script.empty()) {
    std::cerr << "guardctl: --inline and --script: inline code has no script\n";
    return kUsage;
  }
  if (approveUser == "all") {
    scope.allUsers = true;
  } else if (!approveUser.empty()) {
    auto uid = out::userId(approveUser);
    if (!uid) {
      std::cerr << "guardctl: --user: " << uid.error().message << "\n";
      return kUsage;
    }
    scope.user = *uid;
  }
  mailguard::dbus::RuleScope denyScope;
  mailguard::dbus::RuleScope forgetScope;
  denyScope.inlineCode = denyInline;
  forgetScope.inlineCode = forgetInline;
  for (auto [on, pc] : {std::pair{denyInline, &deny}, std::pair{forgetInline, &forget}}) {
    if (!on) continue;
    if (!pc->script.empty()) {
      std::cerr << "guardctl: --inline and --script: inline code has no script\n";
      return kUsage;
    }
    if (policyTargets && !policyTargets->target.empty() && policyTargets->target.front() != '/') {
      std::cerr << "guardctl: --inline goes with an interpreter's path (an id names inline "
                   "code as such already)\n";
      return kUsage;
    }
  }
  if (!forgetUser.empty()) {
    auto uid = out::userId(forgetUser);
    if (!uid) {
      std::cerr << "guardctl: --user: " << uid.error().message << "\n";
      return kUsage;
    }
    forgetScope.user = *uid;
  }
  if (approveInline && !scope.user) {
    std::cerr << "guardctl: --inline needs --user NAME: inline code is approved for one user "
                 "only\n";
    return kUsage;
  }
  for (const auto& text : onlyTo) {
    if (auto d = mailguard::rules::parseDestination(text); !d) {
      std::cerr << "guardctl: --only-to " << d.error().message << "\n";
      return kUsage;
    }
  }
  for (const auto& name : allowEnv) {
    if (!mailguard::rules::isCodeLoadingName(name)) {
      std::cerr << "guardctl: --allow-env: '" << name
                << "' is not a code-loading variable or option (LD_PRELOAD, LD_LIBRARY_PATH, "
                   "LD_AUDIT, PYTHONPATH, PYTHONINSPECT, PYTHONSTARTUP, PERL5LIB, PERL5OPT, "
                   "BASH_ENV, ENV, RUBYOPT, RUBYLIB, NODE_OPTIONS, JAVA_TOOL_OPTIONS, "
                   "_JAVA_OPTIONS, JDK_JAVA_OPTIONS, -M, -m, -I, -d, -r, -i, --require, "
                   "--import, --loader, --experimental-loader, -javaagent, -agentpath, "
                   "-agentlib, @argfile)\n";
      return kUsage;
    }
  }

  auto connected = Client::connect();
  if (const auto* e = mailguard::dbus::errorOf(connected)) return fail(*e);
  auto& client = *std::get<std::unique_ptr<Client>>(connected);

  if (*status) {
    auto r = client.status();
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    const auto& s = std::get<mailguard::dbus::Status>(r);
    if (json) {
      printJson(out::toJson(s));
    } else {
      std::cout << out::statusText(s);
    }
    return kOk;
  }
  if (*programs) {
    // The histories are read below, once each: not also for the counts.
    auto r = client.programs(/*withVersions=*/false);
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    const auto& list = std::get<std::vector<mailguard::dbus::Program>>(r);
    // Each row's history; a program forgotten meanwhile (evicted) just shows none.
    out::VersionsById versions;
    for (const auto& p : list) {
      auto v = client.programVersions(std::to_string(p.id));
      if (auto* found = std::get_if<std::vector<mailguard::dbus::ProgramVersion>>(&v)) {
        versions.emplace(p.id, std::move(*found));
      }
    }
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& p : list) {
        auto row = out::toJson(p);
        auto history = nlohmann::json::array();
        if (const auto it = versions.find(p.id); it != versions.end()) {
          for (const auto& v : it->second) history.push_back(out::toJson(v));
        }
        row["versions"] = std::move(history);
        arr.push_back(std::move(row));
      }
      printJson(arr);
    } else {
      std::cout << out::programsTable(list, versions, listVersions);
    }
    return kOk;
  }
  if (*attempts) {
    auto r = client.attempts(filter);
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    const auto& list = std::get<std::vector<mailguard::dbus::Attempt>>(r);
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& a : list) arr.push_back(out::toJson(a));
      printJson(arr);
    } else {
      std::cout << out::attemptsTable(list);
    }
    return kOk;
  }
  if (*rulesCmd) {
    auto r = client.rules();
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    const auto& list = std::get<std::vector<mailguard::dbus::Rule>>(r);
    if (json) {
      auto arr = nlohmann::json::array();
      for (const auto& rule : list) arr.push_back(out::toJson(rule));
      printJson(arr);
    } else {
      std::cout << out::rulesTable(list);
    }
    return kOk;
  }
  if (*deny.cmd) {
    // Denying deletes what the MTA holds for the program: said before, and confirmed. A
    // script is never left waiting on a prompt it cannot answer.
    const auto& [target, script] = *policyTargets;
    auto known = client.programs(/*withVersions=*/false);
    if (const auto* e = mailguard::dbus::errorOf(known)) return fail(*e);
    const auto& list = std::get<std::vector<mailguard::dbus::Program>>(known);
    const auto held = out::heldMessagesOf(list, target, script, denyInline);
    if (held > 0) {
      std::string name = script.empty() ? target : target + " " + script;
      for (const auto& p : list) {
        if (std::to_string(p.id) == target) {
          name = p.scriptPath.empty() ? p.path : p.path + " " + p.scriptPath;
        }
      }
      const auto notice = out::heldNotice(held, name);
      if (denyYes) {
        std::cerr << notice << " (going ahead: --yes)\n";
      } else if (::isatty(STDIN_FILENO) == 0 || ::isatty(STDERR_FILENO) == 0) {
        std::cerr << "guardctl: not denied: " << notice
                  << "; confirm with --yes (no terminal to ask on)\n";
        return kFailed;
      } else {
        std::cerr << notice << ".\n";
        if (!confirm("Deny it and delete them?")) {
          std::cerr << "Not denied.\n";
          return kFailed;
        }
      }
    }
  }
  for (auto* pc : {&approve, &deny}) {
    if (!*pc->cmd) continue;
    const auto& [target, script] = *policyTargets;
    auto r = pc == &approve ? client.approve(target, script, allowEnv, onlyTo, scope)
                            : client.deny(target, script, denyScope);
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    const auto& p = std::get<mailguard::dbus::Program>(r);
    const auto notes = out::decisionNotes(p, pc == &approve);
    if (json) {
      // The warnings go to stderr, where a script's reader still sees them.
      for (const auto& note : notes) std::cerr << note << "\n";
      printJson(out::toJson(p));
    } else {
      std::cout << out::programLine(p) << "\n";
      for (const auto& note : notes) std::cout << note << "\n";
      if (pc == &approve && !allowEnv.empty()) {
        std::cout << "  allowed to run with: " << mailguard::rules::joinNames(allowEnv) << "\n";
      }
    }
    return kOk;
  }
  if (*forget.cmd) {
    const auto& [target, script] = *policyTargets;
    // Decisions are kept by path: forgetting one version's forgets them all. Named
    // before forgetting, for the message.
    std::string name = script.empty() ? target : target + " " + script;
    std::size_t versionCount = 0;
    // A path with --inline names the interpreter's inline code, which has no versions.
    if (forgetInline) {
      name = "the inline code of " + target;
    } else if (auto v = client.programVersions(target, script);
               auto* found = std::get_if<std::vector<mailguard::dbus::ProgramVersion>>(&v)) {
      versionCount = found->size();
    }
    if (auto known = client.programs(/*withVersions=*/false);
        auto* list = std::get_if<std::vector<mailguard::dbus::Program>>(&known)) {
      for (const auto& p : *list) {
        if (std::to_string(p.id) == target) {
          name = p.scriptPath.empty() ? p.path : p.path + " " + p.scriptPath;
        }
      }
    }
    if (!forgetUser.empty()) name += " for " + forgetUser;
    auto r = client.forget(target, script, forgetScope);
    // With nothing to forget guardd answers NotFound, saying so: exit 1.
    if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    if (json) {
      printJson({{"removed", std::get<bool>(r)}});
    } else if (versionCount > 1) {
      std::cout << "Forgot the decisions about " << name << " (all " << versionCount
                << " versions); it is pending again.\n";
    } else {
      std::cout << "Forgot the decision about " << name << "; it is pending again.\n";
    }
    return kOk;
  }
  if (const auto code = detectorCommands.run(client, json)) return *code;
  if (*watch) {
    long seen = 0;
    client.onAttemptRecorded([&](const mailguard::dbus::Attempt& a) {
      ++seen;
      if (json) {
        std::cout
            << nlohmann::json{{"signal", "AttemptRecorded"}, {"attempt", out::toJson(a)}}.dump()
            << "\n";
      } else {
        std::cout << out::attemptLine(a) << "\n";
      }
      std::cout.flush();
    });
    client.onProgramChanged([&](const mailguard::dbus::Program& p) {
      ++seen;
      if (json) {
        std::cout
            << nlohmann::json{{"signal", "ProgramChanged"}, {"program", out::toJson(p)}}.dump()
            << "\n";
      } else {
        std::cout << out::programLine(p) << "\n";
      }
      std::cout.flush();
    });
    client.onAlertRaised([&](const mailguard::dbus::Alert& a) {
      ++seen;
      if (json) {
        std::cout << nlohmann::json{{"signal", "AlertRaised"},
                                    {"alert", mailguard::guardctl::toJson(a)}}
                         .dump()
                  << "\n";
      } else {
        std::cout << mailguard::guardctl::alertLine(a) << "\n";
      }
      std::cout.flush();
    });
    client.onOutsideChecked([&](const std::string& report) {
      ++seen;
      const auto parsed = nlohmann::json::parse(report, nullptr, false);
      if (json) {
        std::cout << nlohmann::json{{"signal", "OutsideChecked"}, {"report", parsed}}.dump()
                  << "\n";
      } else {
        std::cout << mailguard::guardctl::outsideLine(parsed) << "\n";
      }
      std::cout.flush();
    });
    // Fail early and clearly when guardd is not there; the subscription is already in place.
    const auto reachable = client.status();
    if (const auto* e = mailguard::dbus::errorOf(reachable)) return fail(*e);
    std::signal(SIGINT, [](int) { gStop = 1; });
    std::signal(SIGTERM, [](int) { gStop = 1; });
    std::cerr << "Watching guardd (Ctrl-C to stop)\n";
    while (gStop == 0 && (count == 0 || seen < count)) {
      auto r = client.waitAndDispatch(500);
      if (const auto* e = mailguard::dbus::errorOf(r)) return fail(*e);
    }
    return kOk;
  }
  return kUsage;
}
