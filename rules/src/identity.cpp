#include "mailguard/rules/identity.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace mailguard::rules {
namespace {

enum class Family { None, Python, Perl, Ruby, Node, Php, Shell, Java };

Family familyOf(std::string_view name) {
  auto versioned = [name](std::string_view stem) { return isVersionOf(name, stem); };
  if (versioned("python") || versioned("pypy")) return Family::Python;
  if (versioned("perl")) return Family::Perl;
  if (versioned("ruby")) return Family::Ruby;
  if (versioned("php")) return Family::Php;
  if (name == "node" || name == "nodejs") return Family::Node;
  if (name == "java") return Family::Java;
  static constexpr std::array<std::string_view, 7> kShells{"sh",  "bash", "dash", "zsh",
                                                           "ksh", "mksh", "ash"};
  if (std::find(kShells.begin(), kShells.end(), name) != kShells.end()) return Family::Shell;
  return Family::None;
}

// How one interpreter spells its options. Short options may be clustered ("-uW x",
// "perl -lane"), as getopt-style parsers in all of these interpreters allow.
struct Syntax {
  std::string_view valueLetters{};     // value is the rest of the cluster, else the next argument
  std::string_view attachedLetters{};  // optional value, only ever the rest of the cluster
  std::string_view octalLetters{};     // optional octal digits follow ("perl -0777", "-l")
  std::string_view codeLetters{};      // program text, a module or stdin: no script file
  std::string_view scriptLetters{};    // the value is the script ("php -f FILE")
  std::vector<std::string_view> longWithValue{};  // "--name value" (never "--name=value")
  std::vector<std::string_view> longCode{};
  std::vector<std::string_view> longScript{};
  bool dashIsStdin = true;         // "-" reads the program from stdin; else it ends options
  bool doubleDashIsStdin = false;  // php: "--" passes arguments to a program read from stdin
  bool plusOptions = false;        // sh: "+x", "+o name"
};

const Syntax& syntaxOf(Family family) {
  // python3 --help: -c cmd, -m mod, -W arg, -X opt (-Q arg in Python 2).
  static const Syntax kPython{
      .valueLetters = "WXQ", .codeLetters = "cm", .longWithValue = {"--check-hash-based-pycs"}};
  // perlrun(1): only -I takes a separate argument; -M/-m/-i/-x/-F/-C/-d/-D take the rest.
  static const Syntax kPerl{.valueLetters = "I",
                            .attachedLetters = "MmiCdDxFV",
                            .octalLetters = "0l",
                            .codeLetters = "eE"};
  // ruby --help.
  static const Syntax kRuby{.valueLetters = "IrCE",
                            .attachedLetters = "xFKTWi",
                            .octalLetters = "0",
                            .codeLetters = "e",
                            .longWithValue = {"--enable", "--disable", "--encoding",
                                              "--external-encoding", "--internal-encoding"}};
  // node --help.
  static const Syntax kNode{
      .valueLetters = "rC",
      .codeLetters = "ep",
      .longWithValue = {"--require", "--import", "--loader", "--experimental-loader",
                        "--conditions", "--input-type", "--title", "--inspect-port",
                        "--redirect-warnings", "--openssl-config", "--icu-data-dir"},
      .longCode = {"--eval", "--print"}};
  // php --help: -r/-B/-R/-E take code, -a is interactive, -f/-F name the file.
  static const Syntax kPhp{
      .valueLetters = "dcztS",
      .codeLetters = "rBREa",
      .scriptLetters = "fF",
      .longWithValue = {"--define", "--php-ini", "--rf", "--rc", "--re", "--rz", "--ri"},
      .longCode = {"--run", "--process-begin", "--process-code", "--process-end", "--interactive"},
      .longScript = {"--file", "--process-file"},
      .doubleDashIsStdin = true};
  // bash(1)/dash(1): -c string, -s reads stdin; "-o name"/"+o name", bash's "-O shopt".
  static const Syntax kShell{.valueLetters = "oO",
                             .codeLetters = "cs",
                             .longWithValue = {"--rcfile", "--init-file"},
                             .dashIsStdin = false,
                             .plusOptions = true};
  switch (family) {
    case Family::Perl:
      return kPerl;
    case Family::Ruby:
      return kRuby;
    case Family::Node:
      return kNode;
    case Family::Php:
      return kPhp;
    case Family::Shell:
      return kShell;
    default:
      return kPython;
  }
}

bool contains(std::string_view letters, char c) {
  return letters.find(c) != std::string_view::npos;
}
bool contains(const std::vector<std::string_view>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

std::optional<std::string> argumentAt(const std::vector<std::string>& argv, std::size_t i) {
  if (i < argv.size()) return argv[i];
  return std::nullopt;
}

// java [options] -jar FILE | java [options] MAINCLASS | java [options] SOURCE.java
// | java [options] -m MODULE[/CLASS]. Java options are never clustered.
std::optional<std::string> javaScript(const std::vector<std::string>& argv) {
  static const std::vector<std::string_view> kWithValue{"-cp",
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
    if (a == "-jar") return argumentAt(argv, i + 1);
    if (a == "-m" || a == "--module" || a.starts_with("--module=")) return std::nullopt;
    if (contains(kWithValue, a)) {
      ++i;
      continue;
    }
    // "-Dk=v", "-Xmx1g", "--add-opens=...", and "@argfile" (options read from a file).
    if (a.starts_with('-') || a.starts_with('@')) continue;
    return argv[i];
  }
  return std::nullopt;
}

std::optional<std::string> genericScript(const Syntax& syntax,
                                         const std::vector<std::string>& argv) {
  for (std::size_t i = 1; i < argv.size(); ++i) {
    const std::string_view a = argv[i];
    if (a == "--") {
      if (syntax.doubleDashIsStdin) return std::nullopt;
      return argumentAt(argv, i + 1);
    }
    if (a == "-") {
      if (syntax.dashIsStdin) return std::nullopt;
      return argumentAt(argv, i + 1);
    }
    if (a.starts_with("--")) {
      const std::size_t eq = a.find('=');
      const std::string_view name = a.substr(0, eq);
      if (contains(syntax.longCode, name)) return std::nullopt;
      if (contains(syntax.longScript, name)) {
        if (eq != std::string_view::npos) return std::string(a.substr(eq + 1));
        return argumentAt(argv, i + 1);
      }
      if (eq == std::string_view::npos && contains(syntax.longWithValue, name)) ++i;
      continue;
    }
    const bool isOption = a.size() > 1 && (a[0] == '-' || (syntax.plusOptions && a[0] == '+'));
    if (!isOption) return argv[i];
    for (std::size_t j = 1; j < a.size(); ++j) {
      const char c = a[j];
      const std::string_view rest = a.substr(j + 1);
      if (contains(syntax.codeLetters, c)) return std::nullopt;
      if (contains(syntax.scriptLetters, c)) {
        if (!rest.empty()) return std::string(rest);
        return argumentAt(argv, i + 1);
      }
      if (contains(syntax.valueLetters, c)) {
        if (rest.empty()) ++i;  // the value is the next argument
        break;
      }
      if (contains(syntax.attachedLetters, c)) break;
      if (contains(syntax.octalLetters, c)) {
        // perl -0xHH gives the separator in hex.
        if (c == '0' && (a.substr(j + 1).starts_with('x') || a.substr(j + 1).starts_with('X'))) {
          ++j;
          while (j + 1 < a.size() && std::isxdigit(static_cast<unsigned char>(a[j + 1])) != 0) ++j;
        }
        while (j + 1 < a.size() && a[j + 1] >= '0' && a[j + 1] <= '7') ++j;
      }
    }
  }
  return std::nullopt;
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    if (end > start) parts.push_back(path.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

}  // namespace

bool isVersionOf(std::string_view name, std::string_view stem) {
  if (!name.starts_with(stem)) return false;
  const std::string_view suffix = name.substr(stem.size());
  if (suffix.empty()) return true;
  if (suffix.front() < '0' || suffix.front() > '9') return false;
  return std::all_of(suffix.begin(), suffix.end(),
                     [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
}

std::string ProgramIdentity::display() const {
  if (scriptPath.empty()) return path;
  return path + " " + scriptPath;
}

bool isInterpreter(std::string_view exeBasename) { return familyOf(exeBasename) != Family::None; }

std::string_view toString(IdentityKind k) {
  switch (k) {
    case IdentityKind::Program:
      return "program";
    case IdentityKind::Script:
      return "script";
    case IdentityKind::Inline:
      return "inline";
  }
  return "program";
}

std::optional<IdentityKind> identityKindFromString(std::string_view s) {
  if (s == "program") return IdentityKind::Program;
  if (s == "script") return IdentityKind::Script;
  if (s == "inline") return IdentityKind::Inline;
  return std::nullopt;
}

IdentityKind ProgramIdentity::kind() const {
  if (isInterpreted()) return IdentityKind::Script;
  if (binaryItself) return IdentityKind::Program;
  const std::string_view p = path;
  const auto slash = p.rfind('/');
  const std::string_view base = slash == std::string_view::npos ? p : p.substr(slash + 1);
  return isInterpreter(base) ? IdentityKind::Inline : IdentityKind::Program;
}

std::optional<std::string> scriptArgument(std::string_view exeBasename,
                                          const std::vector<std::string>& argv) {
  const Family family = familyOf(exeBasename);
  switch (family) {
    case Family::None:
      return std::nullopt;
    case Family::Java:
      return javaScript(argv);
    default:
      return genericScript(syntaxOf(family), argv);
  }
}

std::optional<Shebang> parseShebang(std::string_view head) {
  if (!head.starts_with("#!")) return std::nullopt;
  std::string_view line = head.substr(2);
  line = line.substr(0, line.find('\n'));
  auto isBlank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  auto trimFront = [&](std::string_view v) {
    while (!v.empty() && isBlank(v.front())) v.remove_prefix(1);
    return v;
  };
  auto trimBack = [&](std::string_view v) {
    while (!v.empty() && isBlank(v.back())) v.remove_suffix(1);
    return v;
  };
  line = trimBack(trimFront(line));
  if (line.empty()) return std::nullopt;
  std::size_t end = 0;
  while (end < line.size() && !isBlank(line[end])) ++end;
  Shebang out;
  out.interpreter = std::string(line.substr(0, end));
  out.argument = std::string(trimFront(line.substr(end)));
  const auto slash = out.interpreter.rfind('/');
  const std::string_view base = slash == std::string::npos
                                    ? std::string_view(out.interpreter)
                                    : std::string_view(out.interpreter).substr(slash + 1);
  if (base != "env") return out;
  // env's own options ("-S" splits the rest into words, "-u NAME", "-i") come first; the
  // first other word is the program.
  std::string_view rest = out.argument;
  while (!rest.empty()) {
    std::size_t wordEnd = 0;
    while (wordEnd < rest.size() && !isBlank(rest[wordEnd])) ++wordEnd;
    const std::string_view word = rest.substr(0, wordEnd);
    rest = trimFront(rest.substr(wordEnd));
    if (word == "-u" || word == "-C" || word == "--unset" || word == "--chdir") {
      std::size_t valueEnd = 0;
      while (valueEnd < rest.size() && !isBlank(rest[valueEnd])) ++valueEnd;
      rest = trimFront(rest.substr(valueEnd));
      continue;
    }
    if (word.starts_with('-') || word.find('=') != std::string_view::npos) continue;
    Shebang viaEnv;
    viaEnv.interpreter = std::string(word);
    viaEnv.argument = std::string(rest);
    viaEnv.viaEnv = true;
    return viaEnv;
  }
  return std::nullopt;
}

bool isUnsafeLocation(std::string_view path) {
  // memfd_create(2) executables show as "/memfd:NAME (deleted)" in /proc/PID/exe.
  if (path.starts_with("memfd:") || path.starts_with("/memfd:")) return true;
  // Anything that is not an absolute path cannot be vouched for.
  if (!path.starts_with('/')) return true;
  const std::string normal = normalisePath("/", path);
  // "//memfd:x" spells the same name (found by fuzzing: the check above alone let it by).
  if (normal.starts_with("/memfd:")) return true;
  // World-writable (sticky) or per-user tmpfs directories: any user can plant a file
  // there. /run/shm and /var/lock are the older names of /dev/shm and /run/lock.
  static constexpr std::array<std::string_view, 8> kWritableRoots{
      "/tmp",      "/var/tmp",  "/dev/shm",    "/run/shm",
      "/run/lock", "/var/lock", "/dev/mqueue", "/run/user"};
  for (const std::string_view root : kWritableRoots) {
    if (normal == root || (normal.starts_with(root) && normal[root.size()] == '/')) return true;
  }
  // Hidden folders of home directories (~/.cache, ~/.local, ~/.config/...) are where
  // user-level malware settles, because nobody looks there.
  const std::vector<std::string_view> parts = splitPath(normal);
  std::size_t firstInHome = 0;
  if (!parts.empty() && parts[0] == "home") firstInHome = 1;
  if (!parts.empty() && parts[0] == "root") firstInHome = 1;
  if (firstInHome == 0) return false;
  return std::any_of(parts.begin() + static_cast<std::ptrdiff_t>(firstInHome), parts.end(),
                     [](std::string_view p) { return p.starts_with('.'); });
}

std::string normalisePath(std::string_view base, std::string_view path) {
  std::vector<std::string_view> parts;
  auto add = [&parts](std::string_view p) {
    for (const std::string_view part : splitPath(p)) {
      if (part == ".") continue;
      if (part == "..") {
        if (!parts.empty()) parts.pop_back();  // "/.." is "/"
        continue;
      }
      parts.push_back(part);
    }
  };
  if (!path.starts_with('/')) add(base);
  add(path);
  std::string out;
  for (const std::string_view part : parts) {
    out += '/';
    out += part;
  }
  return out.empty() ? "/" : out;
}

bool isHexSha256(std::string_view s) {
  // Lowercase only: hashes are compared as strings, so "AB.." would never match "ab..".
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace mailguard::rules
