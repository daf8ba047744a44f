#include "mailguard/mta/postfix_instance.hpp"

#include <cctype>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace mailguard::mta {
namespace {

constexpr std::string_view kCommandWord = "postfix";

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string trim(std::string_view s) {
  while (!s.empty() && isSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && isSpace(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// $name / ${name} / $(name) from `params`; unknown names expand to nothing, as postconf
// does. Bounded depth: a parameter that names itself stops there.
std::string expand(const std::string& value, const std::map<std::string, std::string>& params,
                   int depth = 0) {
  if (depth > 8) return value;
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] != '$' || i + 1 >= value.size()) {
      out += value[i];
      continue;
    }
    std::size_t start = i + 1;
    std::size_t end = start;
    char close = 0;
    if (value[start] == '{' || value[start] == '(') {
      close = value[start] == '{' ? '}' : ')';
      end = value.find(close, start);
      if (end == std::string::npos) {
        out += value.substr(i);
        break;
      }
      ++start;
    } else {
      while (end < value.size() &&
             (std::isalnum(static_cast<unsigned char>(value[end])) != 0 || value[end] == '_')) {
        ++end;
      }
    }
    const auto name = value.substr(start, end - start);
    if (const auto it = params.find(name); it != params.end()) {
      out += expand(it->second, params, depth + 1);
    }
    i = close != 0 ? end : end - 1;
  }
  return out;
}

bool safeDir(std::string_view dir) {
  if (dir.empty() || dir.front() != '/') return false;
  for (const char c : dir) {
    if (isSpace(c) || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return dir.find("/../") == std::string_view::npos && !dir.ends_with("/..");
}

}  // namespace

std::map<std::string, std::string> parsePostfixMainCf(std::string_view text) {
  std::map<std::string, std::string> params;
  std::string current;  // the logical line being joined
  auto finish = [&] {
    const auto eq = current.find('=');
    if (eq != std::string::npos) {
      const auto name = trim(std::string_view(current).substr(0, eq));
      if (!name.empty()) params[name] = trim(std::string_view(current).substr(eq + 1));
    }
    current.clear();
  };
  std::istringstream in{std::string(text)};
  std::string line;
  while (std::getline(in, line)) {
    const auto content = trim(line);
    if (content.empty() || content.front() == '#') continue;  // also inside a continuation
    if (isSpace(line.front())) {
      current += " " + content;  // a continuation of the parameter above
      continue;
    }
    finish();
    current = content;
  }
  finish();
  return params;
}

Result<PostfixInstance> readPostfixInstance(const std::filesystem::path& configDir) {
  const auto file = configDir / "main.cf";
  std::ifstream in(file);
  if (!in) return systemError("Failed to read '" + file.string() + "'", errno);
  std::stringstream text;
  text << in.rdbuf();
  // Debian's compiled-in defaults (postconf -d on bookworm).
  std::map<std::string, std::string> params{{"queue_directory", "/var/spool/postfix"},
                                            {"daemon_directory", "/usr/lib/postfix/sbin"},
                                            {"command_directory", "/usr/sbin"},
                                            {"mail_owner", "postfix"}};
  for (auto& [name, value] : parsePostfixMainCf(text.str())) params[name] = value;
  params["config_directory"] = configDir.string();
  PostfixInstance p;
  p.configDir = configDir;
  p.queueDirectory = expand(params["queue_directory"], params);
  p.daemonDirectory = expand(params["daemon_directory"], params);
  p.commandDirectory = expand(params["command_directory"], params);
  p.mailOwner = expand(params["mail_owner"], params);
  for (const auto* dir : {&p.queueDirectory, &p.daemonDirectory, &p.commandDirectory}) {
    if (!dir->is_absolute()) {
      return invalidArgument("'" + file.string() + "' names a directory that is not absolute: '" +
                             dir->string() + "'");
    }
  }
  return p;
}

std::string formatPostfixCommand(AgentAction action, const std::string& configDir,
                                 const std::vector<std::string>& ids) {
  std::string line(kCommandWord);
  line += " ";
  line += agentActionName(action);
  line += " ";
  line += configDir;
  for (const auto& id : ids) line += " " + id;
  return line + "\n";
}

bool isPostfixCommand(std::string_view line) {
  return line.starts_with(kCommandWord) && line.size() > kCommandWord.size() &&
         line[kCommandWord.size()] == ' ';
}

Result<PostfixCommand> parsePostfixCommand(std::string_view line) {
  std::istringstream words{std::string(line)};
  std::string word;
  std::string action;
  PostfixCommand c;
  if (!(words >> word) || word != kCommandWord || !(words >> action >> c.configDir)) {
    return invalidArgument("not a postfix command");
  }
  if (action == "release") {
    c.action = AgentAction::Release;
  } else if (action == "remove") {
    c.action = AgentAction::Remove;
  } else if (action == "hold") {
    c.action = AgentAction::Hold;
  } else {
    return invalidArgument("unknown postfix action '" + action + "'");
  }
  if (!safeDir(c.configDir)) return invalidArgument("not a configuration directory");
  while (words >> word) {
    if (!isQueueId(word)) return invalidArgument("not a queue id");
    c.ids.push_back(word);
  }
  if (c.ids.empty()) return invalidArgument("no queue ids");
  return c;
}

}  // namespace mailguard::mta
