#include "caller_context.hpp"

#include <algorithm>
#include <sstream>
#include <string>

namespace mailguard::service {
namespace {

constexpr std::size_t kAncestorLimit = 64;

}  // namespace

rules::CallerContext callerContextOf(const procinfo::ProcFs& proc, int pid) {
  rules::CallerContext context;
  if (pid <= 0) return context;
  if (auto environ = proc.read(std::to_string(pid) + "/environ"); environ) {
    std::string_view env = *environ;
    while (!env.empty()) {
      const auto end = std::min(env.find('\0'), env.size());
      const std::string_view var = env.substr(0, end);
      env.remove_prefix(std::min(end + 1, env.size()));
      if (var.rfind("SSH_CONNECTION=", 0) == 0) {
        // "client-address client-port server-address server-port"
        context.remoteSession = true;
        std::istringstream fields{std::string(var.substr(15))};
        std::string clientAddress, clientPort, serverAddress;
        unsigned serverPort = 0;
        if (fields >> clientAddress >> clientPort >> serverAddress >> serverPort &&
            serverPort > 0 && serverPort <= 65535) {
          context.sshPort = static_cast<std::uint16_t>(serverPort);
        }
      } else if (var.rfind("SSH_CLIENT=", 0) == 0) {
        context.remoteSession = true;
      }
    }
  }
  if (context.remoteSession) return context;
  // sudo drops SSH_CONNECTION from the environment; the login's sshd is still an ancestor.
  int current = pid;
  for (std::size_t depth = 0; depth < kAncestorLimit && current > 1; ++depth) {
    auto stat = proc.read(std::to_string(current) + "/stat");
    if (!stat) break;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')'
    // ends it.
    const auto open = stat->find('(');
    const auto close = stat->rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) break;
    const std::string comm = stat->substr(open + 1, close - open - 1);
    if (comm == "sshd" || comm == "sshd-session") {
      context.remoteSession = true;
      return context;
    }
    std::istringstream rest(stat->substr(close + 1));
    std::string state;
    int parent = 0;
    if (!(rest >> state >> parent)) break;
    current = parent;
  }
  return context;
}

}  // namespace mailguard::service
