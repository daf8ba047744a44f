#pragma once
// Program identity (DESIGN.md "Program identity"): the executable's real path and
// SHA-256, plus the script for interpreters. Pure functions only: the facts about
// files (owner, mode, hash) are gathered by guardd/procinfo and passed in.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mailguard::rules {

// What runs: a program (its executable is the code), a script run by an interpreter, or
// inline code (`python3 -c`, `perl -e`, `python3 -`, a REPL, `-m module`): code that was
// typed or piped in and has no file to hash, so an approval of it can only ever mean
// "whatever this user runs through this interpreter".
enum class IdentityKind { Program, Script, Inline };
std::string_view toString(IdentityKind k);  // "program" "script" "inline"
std::optional<IdentityKind> identityKindFromString(std::string_view s);

struct ProgramIdentity {
  std::string path;          // real path of the executable, without " (deleted)"
  std::string sha256;        // lowercase hex of the executable's content as mapped
  std::string scriptPath;    // absolute script path when path is an interpreter, else empty
  std::string scriptSha256;  // lowercase hex of the script, empty when none or unreadable
  bool deleted = false;      // the executable (or script) no longer exists at its path
  // The file (and script, if any) and every parent directory are root-owned and not
  // writable by group or others: only then may a path-only approval apply.
  bool pathTrusted = false;
  // Why the script named on the command line may not be what the interpreter runs: named
  // by a relative path (a chdir after opening makes it another file), or changed since
  // the process started. Non-empty: no approval applies, even one with the same hash,
  // since the hash was taken of a file the process may never have read.
  std::string scriptDoubt;
  // The process sees the filesystem through another mount namespace or root; its script
  // was read through its own view (/proc/PID/root), and its path proves nothing here.
  bool foreignView = false;
  // An interpreter named as a file by the owner (approve or deny /usr/bin/python3), not a
  // process running code in it: kind Program. A process of an interpreter is always a
  // Script or Inline.
  bool binaryItself = false;

  [[nodiscard]] bool isInterpreted() const { return !scriptPath.empty(); }
  // Script when a script is named; Inline when the executable is an interpreter
  // (isInterpreter of its basename) running no script; else Program.
  [[nodiscard]] IdentityKind kind() const;
  // "path" or "path script", for messages and logs.
  [[nodiscard]] std::string display() const;
  friend bool operator==(const ProgramIdentity&, const ProgramIdentity&) = default;
};

// python3, python3.11, perl, perl5.36, ruby, node, nodejs, php, php8.2, sh, bash, dash,
// java: the basenames whose identity includes the script they run.
bool isInterpreter(std::string_view exeBasename);

// `name` is `stem` with nothing or a version after it ("python", "python3", "python3.11"):
// Debian installs versioned names, and /usr/bin/python3 is really /usr/bin/python3.11.
bool isVersionOf(std::string_view name, std::string_view stem);

// The script argument of an interpreter command line (argv[0] is the interpreter),
// skipping the interpreter's own options (and their values, e.g. python's "-W arg",
// "-X opt"; java's "-cp path", "-jar FILE" yields FILE). Returns nullopt when the
// code comes from elsewhere: "-c", "-e", "-m", stdin ("-" or no argument).
std::optional<std::string> scriptArgument(std::string_view exeBasename,
                                          const std::vector<std::string>& argv);

// What a script's "#!" line runs it with. execve(2): "#!interpreter [optional-arg]", the
// argument being the rest of the line as one word. For "#!/usr/bin/env [-S] NAME ...",
// interpreter is NAME as env finds it in PATH (viaEnv; absolute only if NAME is).
struct Shebang {
  std::string interpreter;
  std::string argument;
  bool viaEnv = false;
};
// nullopt when `head` (the file's first bytes) does not start with "#!" or names nothing.
std::optional<Shebang> parseShebang(std::string_view head);

// Under /tmp, /dev/shm, /var/tmp, a hidden directory of a home directory
// (/home/USER/.x/..., /root/.x/...), or an anonymous file ("memfd:", "/memfd:").
// Such executables never get a path-only approval.
bool isUnsafeLocation(std::string_view path);

// Lexically absolute and normalised (no "." or ".." parts, no empty parts).
std::string normalisePath(std::string_view base, std::string_view path);

bool isHexSha256(std::string_view s);

}  // namespace mailguard::rules
