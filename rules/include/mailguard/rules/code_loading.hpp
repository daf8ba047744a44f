#pragma once
// Code that a program loads from outside its own file, named by its environment or its
// command line: the dynamic loader's LD_PRELOAD, an interpreter's module path, a module
// loaded by an option. An approval is of a file; a process that runs that file with such
// code inside is not the approved program. Pure functions, fuzzed: the environment and
// command line come from /proc/PID/environ and /proc/PID/cmdline, written by whoever
// started the process.
#include <string>
#include <string_view>
#include <vector>

namespace mailguard::rules {

struct CodeLoading {
  // The variable ("PYTHONPATH") or the option as the interpreter spells it ("-M",
  // "--require", "-javaagent"); also what `--allow-env` names to allow it.
  std::string name;
  std::string value;    // shortened to kCodeLoadingValueMax characters, control bytes as '?'
  bool option = false;  // a command-line option, not an environment variable
  // "PYTHONPATH set (/home/ann/lib)", "option -M (Bot)", "environment unreadable (...)".
  [[nodiscard]] std::string display() const;
  friend bool operator==(const CodeLoading&, const CodeLoading&) = default;
};

inline constexpr std::size_t kCodeLoadingValueMax = 24;
// The finding for a process whose environment could not be read (or was cut short):
// what it loads is unknown, so it cannot pass for the approved program either.
inline constexpr std::string_view kEnvironUnreadable = "environ";

// Every code-loading variable set to a non-empty value in `env` ("NAME=value"
// strings) that the program named by `exeBasename` reads, and every code-loading option
// of its command line (argv[0] is the program): LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT
// (any program); PYTHONPATH, PYTHONINSPECT, PYTHONSTARTUP with PYTHONINSPECT or -i, and
// `-i` (python, unless -E or -I make it ignore PYTHON*); PERL5LIB, PERL5OPT, `-M`, `-m`,
// `-I`, `-d` (perl); RUBYOPT, RUBYLIB, `-r`, `-I` (ruby); NODE_OPTIONS, `--require`
// (also `-r`), `--import`, `--loader`, `--experimental-loader` (node); JAVA_TOOL_OPTIONS,
// _JAVA_OPTIONS, JDK_JAVA_OPTIONS, `-javaagent`, `-agentpath`, `-agentlib`, `@argfile`
// (java); BASH_ENV (bash), ENV (shells). In the order found, each name once.
std::vector<CodeLoading> codeLoadingFindings(std::string_view exeBasename,
                                             const std::vector<std::string>& argv,
                                             const std::vector<std::string>& env);

CodeLoading environUnreadable(std::string_view why);

// The findings whose name is not in `allowed` (kEnvironUnreadable always).
std::vector<CodeLoading> notAllowed(const std::vector<CodeLoading>& findings,
                                    const std::vector<std::string>& allowed);

// Every name codeLoadingFindings() can report: what `--allow-env` accepts.
bool isCodeLoadingName(std::string_view name);

// "PYTHONPATH,PERL5OPT" -> {"PYTHONPATH", "PERL5OPT"}; blanks around names and empty
// parts are dropped. Names are not checked (isCodeLoadingName does that).
std::vector<std::string> splitNames(std::string_view list);
std::string joinNames(const std::vector<std::string>& names);  // "A,B"

}  // namespace mailguard::rules
