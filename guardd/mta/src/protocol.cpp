#include "mailguard/mta/protocol.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace mailguard::mta {
namespace {

constexpr std::size_t kMaxReason = 300;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())) != 0) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (true) {
    const auto at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

}  // namespace

Result<Submission> parseSubmission(std::string_view text) {
  auto lines = split(text, '\n');
  if (lines.empty() || trim(lines.front()) != kSubmissionHello) {
    return invalidArgument("not a mailguard MTA question (expected \"" +
                           std::string(kSubmissionHello) + "\" first)");
  }
  Submission s;
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto line = lines[i];
    if (trim(line).empty()) continue;
    const auto eq = line.find('=');
    if (eq == std::string_view::npos) return invalidArgument("a line without '=' in the question");
    const auto key = line.substr(0, eq);
    const auto value = trim(line.substr(eq + 1));
    if (key == "mta") {
      s.mta = value;
    } else if (key == "id") {
      s.queueId = value;
    } else if (key == "uid") {
      std::uint32_t uid = 0;
      const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), uid);
      if (ec == std::errc{} && p == value.data() + value.size()) s.callerUid = uid;
    } else if (key == "sender") {
      s.sender = value;
    } else if (key == "rcpt") {
      // exim's $recipients: addresses separated by ", " (an address has no bare comma
      // outside quotes in practice; a quoted one only costs a wrong domain in the list).
      for (auto a : split(value, ',')) {
        a = trim(a);
        if (!a.empty()) s.recipients.emplace_back(a);
      }
    }  // unknown keys: a newer ACL, ignored
  }
  if (!isQueueId(s.queueId)) return invalidArgument("no valid queue id in the question");
  if (s.mta.empty()) s.mta = "exim";
  return s;
}

bool isQueueId(std::string_view id) {
  // postfix's short ids are 5 hex digits of microseconds and the queue file's inode in
  // hex: 6 characters with a small inode. exim's are 16 or 23.
  if (id.size() < 6 || id.size() > 32) return false;
  return std::all_of(
             id.begin(), id.end(),
             [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-'; }) &&
         id.front() != '-';
}

std::vector<std::string> recipientDomains(const std::vector<std::string>& recipients) {
  std::vector<std::string> out;
  for (const auto& r : recipients) {
    std::string_view a = r;
    if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
    const auto at = a.rfind('@');
    std::string domain = at == std::string_view::npos ? "localhost" : std::string(a.substr(at + 1));
    std::transform(domain.begin(), domain.end(), domain.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (domain.empty()) domain = "localhost";
    out.push_back(std::move(domain));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string formatAnswer(Answer answer, std::string_view reason) {
  std::string out;
  switch (answer) {
    case Answer::Accept:
      return "accept";
    case Answer::Freeze:
      out = "freeze ";
      break;
    case Answer::Deny:
      out = "deny ";
      break;
  }
  // The ACL puts the reason into a log line and a bounce: one printable line.
  for (const char c : reason.substr(0, kMaxReason)) {
    out += std::isprint(static_cast<unsigned char>(c)) != 0 ? c : ' ';
  }
  return out;
}

std::string_view agentActionName(AgentAction action) {
  switch (action) {
    case AgentAction::Release:
      return "release";
    case AgentAction::Remove:
      return "remove";
    case AgentAction::Hold:
      return "hold";
  }
  return "release";
}

std::string formatAgentCommand(AgentAction action, const std::vector<std::string>& ids) {
  std::string out(agentActionName(action));
  for (const auto& id : ids) out += " " + id;
  return out + "\n";
}

Result<AgentCommand> parseAgentCommand(std::string_view line) {
  auto words = split(trim(line), ' ');
  AgentCommand c;
  if (words.front() == "release") {
    c.action = AgentAction::Release;
  } else if (words.front() == "remove") {
    c.action = AgentAction::Remove;
  } else if (words.front() == "hold") {
    c.action = AgentAction::Hold;
  } else {
    return invalidArgument("unknown agent command \"" + std::string(words.front()) + "\"");
  }
  for (std::size_t i = 1; i < words.size(); ++i) {
    if (words[i].empty()) continue;
    // The agent passes ids to exim as arguments: nothing but well-formed ids.
    if (!isQueueId(words[i]))
      return invalidArgument("not a queue id: \"" + std::string(words[i]) + "\"");
    c.ids.emplace_back(words[i]);
  }
  if (c.ids.empty()) return invalidArgument("an agent command without queue ids");
  return c;
}

}  // namespace mailguard::mta
