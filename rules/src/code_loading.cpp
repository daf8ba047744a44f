#include "mailguard/rules/code_loading.hpp"

#include "mailguard/rules/identity.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

namespace mailguard::rules {
namespace {

enum class Family { Other, Python, Perl, Ruby, Node, Java, Bash, Shell };

Family familyOf(std::string_view name) {
  auto versioned = [name](std::string_view stem) { return isVersionOf(name, stem); };
  if (versioned("python") || versioned("pypy")) return Family::Python;
  if (versioned("perl")) return Family::Perl;
  if (versioned("ruby")) return Family::Ruby;
  if (name == "node" || name == "nodejs") return Family::Node;
  if (name == "java") return Family::Java;
  if (name == "bash") return Family::Bash;
  static constexpr std::array<std::string_view, 6> kShells{"sh",  "dash", "zsh",
                                                           "ksh", "mksh", "ash"};
  if (std::find(kShells.begin(), kShells.end(), name) != kShells.end()) return Family::Shell;
  return Family::Other;
}

// Every variable, with the family that reads it (Other: the dynamic loader, any program).
struct Variable {
  std::string_view name;
  Family family;
};
// ld.so(8): LD_PRELOAD and LD_AUDIT load libraries into the process, LD_LIBRARY_PATH
// chooses which file a library name resolves to. ENV is read by interactive POSIX shells
// (and bash as sh); BASH_ENV by every non-interactive bash before its script.
constexpr std::array<Variable, 16> kVariables{{
    {"LD_PRELOAD", Family::Other},
    {"LD_LIBRARY_PATH", Family::Other},
    {"LD_AUDIT", Family::Other},
    {"PYTHONPATH", Family::Python},
    {"PYTHONINSPECT", Family::Python},
    {"PYTHONSTARTUP", Family::Python},
    {"PERL5LIB", Family::Perl},
    {"PERL5OPT", Family::Perl},
    {"RUBYOPT", Family::Ruby},
    {"RUBYLIB", Family::Ruby},
    {"NODE_OPTIONS", Family::Node},
    {"JAVA_TOOL_OPTIONS", Family::Java},
    {"_JAVA_OPTIONS", Family::Java},
    {"JDK_JAVA_OPTIONS", Family::Java},
    {"BASH_ENV", Family::Bash},
    {"ENV", Family::Shell},
}};

constexpr std::array<std::string_view, 13> kOptions{
    "-M",         "-m",         "-I",       "-d",       "-r",
    "-i",         "--require",  "--import", "--loader", "--experimental-loader",
    "-javaagent", "-agentpath", "-agentlib"};
constexpr std::string_view kArgfile = "@argfile";

std::string shorten(std::string_view v) {
  std::string out;
  for (const char c : v.substr(0, kCodeLoadingValueMax)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  if (v.size() > kCodeLoadingValueMax) out += "...";
  return out;
}

class Findings {
 public:
  void add(std::string_view name, std::string_view value, bool option) {
    const bool seen = std::any_of(list_.begin(), list_.end(),
                                  [&](const CodeLoading& f) { return f.name == name; });
    if (!seen) list_.push_back({std::string(name), shorten(value), option});
  }
  void option(std::string_view name, std::string_view value) { add(name, value, true); }
  [[nodiscard]] bool has(std::string_view name) const {
    return std::any_of(list_.begin(), list_.end(),
                       [&](const CodeLoading& f) { return f.name == name; });
  }
  std::vector<CodeLoading> take() { return std::move(list_); }

 private:
  std::vector<CodeLoading> list_;
};

std::string_view next(const std::vector<std::string>& argv, std::size_t* i) {
  if (*i + 1 >= argv.size()) return {};
  ++*i;
  return argv[*i];
}

// What python's options mean here: -i inspects after the script (and then reads code
// from stdin); -E and -I make it ignore every PYTHON* variable; -c and -m end the options
// (what follows is sys.argv).
struct PythonOptions {
  bool inspect = false;
  bool ignoreEnvironment = false;
};
PythonOptions scanPython(const std::vector<std::string>& argv, Findings& out) {
  PythonOptions o;
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "-" || a == "--" || !a.starts_with('-') || a.size() < 2) break;
    if (a.starts_with("--")) {
      if (a == "--check-hash-based-pycs") next(argv, &i);
      continue;
    }
    bool done = false;
    for (std::size_t j = 1; j < a.size() && !done; ++j) {
      switch (a[j]) {
        case 'i':
          o.inspect = true;
          out.option("-i", "");
          break;
        case 'E':
        case 'I':
          o.ignoreEnvironment = true;
          break;
        case 'W':
        case 'X':
        case 'Q':
          if (j + 1 == a.size()) next(argv, &i);
          done = true;
          break;
        case 'c':
        case 'm':
          return o;
        default:
          break;
      }
    }
  }
  return o;
}

// perlrun(1). Switches may be clustered ("-lw", "-wMBot") and the scan goes on after
// -e CODE (the remaining non-switch arguments are @ARGV). -I takes the rest of the
// cluster or the next argument; -M, -m and -d take the rest; -0 and -l take octal (or
// -0x hex) digits and -C unicode flags, then the cluster goes on; -i, -x and -F take the
// rest up to a blank, after which perl reads more switches.
void scanPerl(const std::vector<std::string>& argv, Findings& out) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "-" || a == "--" || !a.starts_with('-') || a.size() < 2) return;
    std::size_t j = 1;
    while (j < a.size()) {
      const char c = a[j];
      const std::string_view rest = a.substr(j + 1);
      if (c == 'I') {
        out.option("-I", rest.empty() ? next(argv, &i) : rest);
        break;
      }
      if (c == 'M' || c == 'm' || c == 'd') {
        out.option(std::string{'-', c}, rest);
        break;
      }
      if (c == 'e' || c == 'E') {
        if (rest.empty()) next(argv, &i);
        break;
      }
      if (c == 'i' || c == 'x' || c == 'F') {
        const std::size_t blank = rest.find_first_of(" \t\n");
        if (blank == std::string_view::npos) break;
        j += 1 + blank + 1;
        if (j < a.size() && a[j] == '-') ++j;
        continue;
      }
      ++j;
      if (c == '0' && j < a.size() && (a[j] == 'x' || a[j] == 'X')) {
        ++j;
        while (j < a.size() && std::isxdigit(static_cast<unsigned char>(a[j])) != 0) ++j;
      } else if (c == '0' || c == 'l') {
        while (j < a.size() && a[j] >= '0' && a[j] <= '7') ++j;
      } else if (c == 'C') {
        while (j < a.size() &&
               std::string_view("0123456789IOEioeSDALa").find(a[j]) != std::string_view::npos) {
          ++j;
        }
      } else if (c == 'D') {
        while (j < a.size() && std::isalnum(static_cast<unsigned char>(a[j])) != 0) ++j;
      }
    }
  }
}

// ruby --help: -r LIB and -I DIR take the rest of the cluster or the next argument, as do
// -e CODE, -C DIR and -E ENC (and the scan goes on after them); -W, -T and -0 take
// digits (-W:category) and the cluster goes on; -x, -F, -K and -i take the rest.
void scanRuby(const std::vector<std::string>& argv, Findings& out) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "-" || a == "--" || !a.starts_with('-') || a.size() < 2) return;
    if (a.starts_with("--")) {
      static constexpr std::array<std::string_view, 5> kWithValue{
          "--enable", "--disable", "--encoding", "--external-encoding", "--internal-encoding"};
      if (std::find(kWithValue.begin(), kWithValue.end(), a) != kWithValue.end()) next(argv, &i);
      continue;
    }
    std::size_t j = 1;
    while (j < a.size()) {
      const char c = a[j];
      const std::string_view rest = a.substr(j + 1);
      if (c == 'r' || c == 'I') {
        out.option(std::string{'-', c}, rest.empty() ? next(argv, &i) : rest);
        break;
      }
      if (c == 'e' || c == 'C' || c == 'E') {
        if (rest.empty()) next(argv, &i);
        break;
      }
      if (c == 'x' || c == 'F' || c == 'K' || c == 'i') break;
      ++j;
      if (c == 'W' || c == 'T' || c == '0') {
        if (c == 'W' && j < a.size() && a[j] == ':') {
          ++j;
          while (j < a.size() && std::isalpha(static_cast<unsigned char>(a[j])) != 0) ++j;
        }
        while (j < a.size() && std::isdigit(static_cast<unsigned char>(a[j])) != 0) ++j;
      }
    }
  }
}

// node --help: options are never clustered; a value is "--name=value" or the next
// argument; -e and -p take code and the scan goes on.
void scanNode(const std::vector<std::string>& argv, Findings& out) {
  static constexpr std::array<std::string_view, 4> kLoading{"--require", "--import", "--loader",
                                                            "--experimental-loader"};
  static constexpr std::array<std::string_view, 12> kWithValue{"-e",
                                                               "--eval",
                                                               "-p",
                                                               "--print",
                                                               "-C",
                                                               "--conditions",
                                                               "--input-type",
                                                               "--title",
                                                               "--inspect-port",
                                                               "--redirect-warnings",
                                                               "--openssl-config",
                                                               "--icu-data-dir"};
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "-" || a == "--" || !a.starts_with('-') || a.size() < 2) return;
    const std::size_t eq = a.find('=');
    std::string_view name = a.substr(0, eq);
    if (name == "-r") name = "--require";
    const bool loading = std::find(kLoading.begin(), kLoading.end(), name) != kLoading.end();
    const bool withValue =
        loading || std::find(kWithValue.begin(), kWithValue.end(), name) != kWithValue.end();
    std::string_view value;
    if (eq != std::string_view::npos) {
      value = a.substr(eq + 1);
    } else if (withValue) {
      value = next(argv, &i);
    }
    if (loading) out.option(name, value);
  }
}

// java(1): options are never clustered; the first argument that is not an option (or the
// one after -jar) is the program. -javaagent:JAR, -agentpath:LIB and -agentlib:NAME load
// code into the JVM; "@file" reads more options from a file guardd cannot vouch for.
void scanJava(const std::vector<std::string>& argv, Findings& out) {
  static constexpr std::array<std::string_view, 14> kWithValue{"-cp",
                                                               "-classpath",
                                                               "--class-path",
                                                               "-p",
                                                               "--module-path",
                                                               "--upgrade-module-path",
                                                               "--add-modules",
                                                               "--limit-modules",
                                                               "--add-exports",
                                                               "--add-opens",
                                                               "--add-reads",
                                                               "--patch-module",
                                                               "--enable-native-access",
                                                               "--source"};
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "-jar" || a == "-m" || a == "--module") return;
    if (a.starts_with('@')) {
      out.option(kArgfile, a.substr(1));
      continue;
    }
    for (const std::string_view agent : {"-javaagent", "-agentpath", "-agentlib"}) {
      if (a.starts_with(agent) && a.size() > agent.size() && a[agent.size()] == ':') {
        out.option(agent, a.substr(agent.size() + 1));
      }
    }
    if (std::find(kWithValue.begin(), kWithValue.end(), a) != kWithValue.end()) {
      ++i;
      continue;
    }
    if (!a.starts_with('-')) return;
  }
}

}  // namespace

std::string CodeLoading::display() const {
  if (name == kEnvironUnreadable) return "environment unreadable (" + value + ")";
  std::string out = option ? "option " + name : name + " set";
  if (!value.empty()) out += " (" + value + ")";
  return out;
}

std::vector<CodeLoading> codeLoadingFindings(std::string_view exeBasename,
                                             const std::vector<std::string>& argv,
                                             const std::vector<std::string>& env) {
  const Family family = familyOf(exeBasename);
  Findings out;
  PythonOptions python;
  switch (family) {
    case Family::Python:
      python = scanPython(argv, out);
      break;
    case Family::Perl:
      scanPerl(argv, out);
      break;
    case Family::Ruby:
      scanRuby(argv, out);
      break;
    case Family::Node:
      scanNode(argv, out);
      break;
    case Family::Java:
      scanJava(argv, out);
      break;
    default:
      break;
  }

  // A variable set twice counts if either is non-empty: getenv(3) takes the first, the
  // dynamic loader its own pick.
  std::optional<std::string_view> startup;
  bool inspect = python.inspect;
  for (const std::string& entry : env) {
    const std::size_t eq = entry.find('=');
    if (eq == std::string::npos || eq + 1 == entry.size()) continue;
    const std::string_view name = std::string_view(entry).substr(0, eq);
    const std::string_view value = std::string_view(entry).substr(eq + 1);
    const auto* var = std::find_if(kVariables.begin(), kVariables.end(),
                                   [&](const Variable& v) { return v.name == name; });
    if (var == kVariables.end()) continue;
    const bool reads = var->family == Family::Other || var->family == family ||
                       (var->family == Family::Shell && family == Family::Bash);
    if (!reads) continue;
    if (family == Family::Python && python.ignoreEnvironment && name.starts_with("PYTHON")) {
      continue;
    }
    // PYTHONSTARTUP runs only in an interactive session, which PYTHONINSPECT or -i give.
    if (name == "PYTHONSTARTUP") {
      if (!startup) startup = value;
      continue;
    }
    if (name == "PYTHONINSPECT") inspect = true;
    out.add(name, value, false);
  }
  if (startup && inspect) out.add("PYTHONSTARTUP", *startup, false);
  return out.take();
}

CodeLoading environUnreadable(std::string_view why) {
  return {std::string(kEnvironUnreadable), std::string(why), false};
}

std::vector<CodeLoading> notAllowed(const std::vector<CodeLoading>& findings,
                                    const std::vector<std::string>& allowed) {
  std::vector<CodeLoading> out;
  for (const CodeLoading& f : findings) {
    // An environment that could not be read hides whatever it holds: nothing allows that.
    if (f.name == kEnvironUnreadable ||
        std::find(allowed.begin(), allowed.end(), f.name) == allowed.end()) {
      out.push_back(f);
    }
  }
  return out;
}

bool isCodeLoadingName(std::string_view name) {
  return name == kArgfile ||
         std::any_of(kVariables.begin(), kVariables.end(),
                     [&](const Variable& v) { return v.name == name; }) ||
         std::find(kOptions.begin(), kOptions.end(), name) != kOptions.end();
}

std::vector<std::string> splitNames(std::string_view list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t end = list.find(',', start);
    if (end == std::string_view::npos) end = list.size();
    std::string_view part = list.substr(start, end - start);
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) part.remove_prefix(1);
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) part.remove_suffix(1);
    if (!part.empty() && std::find(out.begin(), out.end(), part) == out.end()) {
      out.emplace_back(part);
    }
    start = end + 1;
  }
  return out;
}

std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

}  // namespace mailguard::rules
