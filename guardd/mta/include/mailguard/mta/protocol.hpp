#pragma once
// What the MTA and guardd say to each other over guardd's MTA socket.
//
// The MTA's question (install/exim4/: an ACL's ${readsocket}, one connection per
// message; exim write-shuts the socket after the request and reads until EOF):
//   mailguard-mta 1\n
//   mta=exim\n  id=<queue id>\n  uid=<caller uid>\n  sender=<address>\n  rcpt=<a>, <b>\n
// guardd's answer, then it closes: "accept", "freeze <reason>" or "deny <reason>", without
// a newline (the ACL compares what it read, whole, with "accept").
//
// The release agent (guard-mta-agent, root) connects and says "mailguard-agent 1\n";
// guardd then sends it "release <id> <id>...\n", "remove <id>...\n" or "hold <id>...\n" (keep
// messages in the queue undelivered: exim freezes them) and the agent answers each with
// "done\n" once the MTA carried it out (or "failed <reason>\n").
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

inline constexpr std::string_view kSubmissionHello = "mailguard-mta 1";
inline constexpr std::string_view kAgentHello = "mailguard-agent 1";

struct Submission {
  std::string mta;  // "exim"
  std::string queueId;
  std::optional<std::uint32_t> callerUid;  // what the MTA says; SO_PEERCRED is what counts
  std::string sender;
  std::vector<std::string> recipients;
};

// The question as the MTA sent it; an error names what is wrong with it.
Result<Submission> parseSubmission(std::string_view text);

// True for a queue id as exim (4.x: 6-6-2, 4.97+: 6-11-4 characters of [0-9A-Za-z]) or
// postfix (hex or long base-52 ids) writes it: nothing a shell or exim option could read as
// more than one argument.
bool isQueueId(std::string_view id);

// The recipients' domains, lower case, sorted, each once ("a@X.org, b@x.org" -> {"x.org"}).
// An address without a domain counts as "localhost".
std::vector<std::string> recipientDomains(const std::vector<std::string>& recipients);

enum class Answer { Accept, Freeze, Deny };
// One line the ACL compares: the reason loses newlines and is bounded.
std::string formatAnswer(Answer answer, std::string_view reason);

enum class AgentAction { Release, Remove, Hold };
// The command's word on the wire: "release", "remove", "hold".
std::string_view agentActionName(AgentAction action);
std::string formatAgentCommand(AgentAction action, const std::vector<std::string>& ids);
struct AgentCommand {
  AgentAction action = AgentAction::Release;
  std::vector<std::string> ids;
};
Result<AgentCommand> parseAgentCommand(std::string_view line);

}  // namespace mailguard::mta
