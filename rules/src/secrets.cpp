#include "mailguard/rules/secrets.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstddef>
#include <optional>

#include "mailguard/rules/identity.hpp"

namespace mailguard::rules {
namespace {

// Where an option's value is: the next argument, attached to the option ("-apX"), or
// either.
enum class Form { Separate, Attached, Either };
// Which part of the value is secret: all of it, or what follows the first ':' (curl's
// USER:PASSWORD keeps the user readable).
enum class Part { Whole, AfterColon };

struct ClientOption {
  std::string_view program;
  std::string_view option;
  Form form;
  Part part;
};

// From the programs' man pages: swaks(1) "-ap, --auth-password"; ssmtp(8) "-ap<password>";
// sendEmail "-xp PASSWORD"; curl(1) "-u, --user <user:password>", "-U, --proxy-user";
// sshpass(1) "-p password"; sendxmpp(1) "-p, --password"; mysql(1) "-p[password]" (only
// attached: "-p x" prompts and x is the database).
constexpr std::array kClientOptions = {
    ClientOption{"swaks", "-ap", Form::Separate, Part::Whole},
    ClientOption{"swaks", "--ap", Form::Separate, Part::Whole},
    ClientOption{"ssmtp", "-ap", Form::Either, Part::Whole},
    ClientOption{"sendemail", "-xp", Form::Separate, Part::Whole},
    ClientOption{"curl", "-u", Form::Either, Part::AfterColon},
    ClientOption{"curl", "-U", Form::Either, Part::AfterColon},
    ClientOption{"curl", "--user", Form::Separate, Part::AfterColon},
    ClientOption{"curl", "--proxy-user", Form::Separate, Part::AfterColon},
    ClientOption{"sshpass", "-p", Form::Either, Part::Whole},
    ClientOption{"sendxmpp", "-p", Form::Separate, Part::Whole},
    ClientOption{"mysql", "-p", Form::Attached, Part::Whole},
    ClientOption{"mariadb", "-p", Form::Attached, Part::Whole},
    ClientOption{"mysqldump", "-p", Form::Attached, Part::Whole},
};

// curl's short options that take no value, so "-su USER:PASS" and "-svuUSER:PASS" are
// -s -u and -s -v -u.
constexpr std::string_view kCurlFlags = "0123456#aBfgGIijJklLMnNOpqRsSvVZ";

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view baseName(std::string_view path) {
  const auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

bool isKeyChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || c == '_' || c == '-' || c == '.' || c == '@';
}

std::vector<std::string_view> words(std::string_view name) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '-' || name[i] == '_' || name[i] == '.' || name[i] == '@') {
      if (i > start) out.push_back(name.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

bool secretWord(std::string_view w) {
  return w == "pass" || w == "secret" || w.starts_with("password") || w.starts_with("passwd") ||
         w.starts_with("passphrase");
}

// The lower-case program whose client options apply: argv[0]'s name, or the script an
// interpreter runs.
std::string clientOf(const std::vector<std::string>& argv) {
  if (argv.empty()) return {};
  const auto exe = baseName(argv.front());
  if (isInterpreter(exe)) {
    if (const auto script = scriptArgument(exe, argv)) return lower(baseName(*script));
  }
  return lower(exe);
}

void maskFrom(std::string& arg, std::size_t from, Part part) {
  if (from > arg.size()) return;
  if (part == Part::AfterColon) {
    const auto colon = arg.find(':', from);
    if (colon == std::string::npos) return;
    from = colon + 1;
  }
  arg.replace(from, std::string::npos, kMaskedSecret);
}

// user:password@ in every URL of the argument: the authority ends at the first '/',
// '?', '#', quote or blank (RFC 3986 3.2), and its userinfo at the last '@' in it.
void maskUrls(std::string& arg) {
  std::size_t pos = 0;
  while ((pos = arg.find("://", pos)) != std::string::npos) {
    const std::size_t start = pos + 3;
    const std::size_t end = std::min(arg.find_first_of("/?#\"' \t\n", start), arg.size());
    const auto at = arg.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= start) {
      const auto colon = arg.find(':', start);
      if (colon < at) {
        arg.replace(colon + 1, at - colon - 1, kMaskedSecret);
        pos = colon + 1 + kMaskedSecret.size() + 1;
        continue;
      }
    }
    pos = start;
  }
}

// KEY=VALUE anywhere in the argument ("--auth-password=X", "smtp-auth-password=X",
// "set smtp_pass=X; set ..."): the value runs to a blank, ';', '&' or quote.
void maskKeyValues(std::string& arg) {
  std::size_t eq = 0;
  while ((eq = arg.find('=', eq)) != std::string::npos) {
    std::size_t keyStart = eq;
    while (keyStart > 0 && isKeyChar(arg[keyStart - 1])) --keyStart;
    const std::size_t valueStart = eq + 1;
    std::size_t valueEnd = arg.find_first_of(" \t\n;&\"'", valueStart);
    if (valueEnd == std::string::npos) valueEnd = arg.size();
    if (keyStart < eq && valueEnd > valueStart &&
        namesSecret(std::string_view(arg).substr(keyStart, eq - keyStart))) {
      arg.replace(valueStart, valueEnd - valueStart, kMaskedSecret);
      eq = valueStart + kMaskedSecret.size();
      continue;
    }
    eq = valueStart;
  }
}

struct Pending {
  bool active = false;
  Part part = Part::Whole;
};

// The client option this argument is, if any: sets `next` when its value is the next
// argument, masks it in place when attached.
bool clientOption(std::string_view client, std::string& arg, Pending& next) {
  for (const auto& o : kClientOptions) {
    if (o.program != client) continue;
    if (arg == o.option && o.form != Form::Attached) {
      next = {true, o.part};
      return true;
    }
    // "--user=USER:PASS": getopt_long's attached form of any long option.
    if (o.option.starts_with("--") && arg.size() > o.option.size() && arg.starts_with(o.option) &&
        arg[o.option.size()] == '=') {
      maskFrom(arg, o.option.size() + 1, o.part);
      return true;
    }
    if (arg.size() > o.option.size() && arg.starts_with(o.option) && o.form != Form::Separate &&
        arg.compare(0, 2, "--") != 0) {
      maskFrom(arg, o.option.size(), o.part);
      return true;
    }
  }
  if (client == "curl" && arg.size() > 2 && arg[0] == '-' && arg[1] != '-') {
    // A cluster of flags ending in -u or -U: "-su", "-svuUSER:PASS".
    for (std::size_t i = 1; i < arg.size(); ++i) {
      if (arg[i] == 'u' || arg[i] == 'U') {
        if (i + 1 == arg.size()) {
          next = {true, Part::AfterColon};
        } else {
          maskFrom(arg, i + 1, Part::AfterColon);
        }
        return true;
      }
      if (kCurlFlags.find(arg[i]) == std::string_view::npos) break;
    }
  }
  return false;
}

void maskArgs(std::vector<std::string>& args, std::string_view client) {
  Pending next;
  for (auto& arg : args) {
    if (next.active) {
      next.active = false;
      // "--password --to x": an option, not the value of the one before.
      if (!arg.starts_with("--")) {
        maskFrom(arg, 0, next.part);
        continue;
      }
    }
    if (!clientOption(client, arg, next) && arg.size() > 1 && arg[0] == '-') {
      // "--auth-password X", "-password X": the value follows; "--passwordeval=echo x":
      // the rest of the argument, blanks and all.
      // Only a name an option can have: masking a URL's password in an argument such as
      // "-e; smtp://u:p=x@secret" removes the '=', and a name running to "@secret" must
      // not then make the next argument a password (masking twice must change nothing).
      const auto eq = arg.find('=');
      const auto name = std::string_view(arg).substr(0, eq);
      if (std::all_of(name.begin(), name.end(), isKeyChar) && namesSecret(name)) {
        if (eq == std::string::npos) {
          next = {true, Part::Whole};
        } else {
          maskFrom(arg, eq + 1, Part::Whole);
        }
      }
    }
    // A mask takes the delimiters of what it hides with it: masking a KEY=VALUE may end an
    // URL's authority later ("://u@:x/_pass=a/b;:y@h"), so the two run until nothing
    // changes (a mask adds no delimiter, so this settles within a few rounds; the bound
    // keeps a hostile argument cheap whatever happens).
    for (int round = 0; round < 16; ++round) {
      const std::string before = arg;
      maskUrls(arg);
      maskKeyValues(arg);
      if (arg == before) break;
    }
  }
}

}  // namespace

bool namesSecret(std::string_view name) {
  while (!name.empty() && name.front() == '-') name.remove_prefix(1);
  if (name.empty()) return false;
  const std::string low = lower(name);
  const auto ws = words(low);
  if (ws.empty()) return false;
  // Options about a password that take none, or only where to find one: --no-password,
  // --ask-password, --password-stdin, --password-file PATH, --password-fd N.
  const auto first = ws.front();
  const auto last = ws.back();
  if (first == "no" || first == "ask" || last == "stdin" || last == "file" || last == "fd" ||
      last == "prompt") {
    return false;
  }
  // "--pass*" except "--passive*" (wget --passive-ftp) and "--passthrough".
  if (low.starts_with("pass") && !low.starts_with("passive") && !low.starts_with("passthr") &&
      !low.starts_with("pass-thr") && !low.starts_with("passenger")) {
    return true;
  }
  return std::any_of(ws.begin(), ws.end(), secretWord);
}

bool mayReadCommandLine(std::uint32_t callerUid, std::uint32_t programUid) {
  return callerUid == 0 || callerUid == programUid;
}

std::vector<std::string> maskSecrets(std::vector<std::string> argv) {
  // A mask can change what the rest means: a masked program name ("m_pass=x/curl") is
  // another client, whose options read otherwise. So masking goes on until nothing
  // changes, and masking what is masked changes nothing (a few rounds; the bound keeps a
  // hostile command line cheap).
  for (int round = 0; round < 8; ++round) {
    const auto before = argv;
    maskArgs(argv, clientOf(argv));
    if (argv == before) break;
  }
  return argv;
}

std::string maskCommandLine(std::string_view commandLine) {
  std::vector<std::string> args;
  std::size_t start = 0;
  while (true) {
    const auto space = commandLine.find(' ', start);
    args.emplace_back(commandLine.substr(start, space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  args = maskSecrets(std::move(args));
  std::string out;
  out.reserve(commandLine.size());
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (i > 0) out += ' ';
    out += args[i];
  }
  return out;
}

}  // namespace mailguard::rules
