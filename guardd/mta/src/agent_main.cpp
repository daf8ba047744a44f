// guard-mta-agent: carries out the owner's decisions on the local MTA's queue.
//
// guardd runs with four capabilities, no_new_privs and a read-only view of /var/spool
// (install/guardd.service), so it cannot run exim's setuid binary or touch its spool. This
// agent, root and nothing else, connects to guardd's MTA socket, and for each command
// guardd sends ("release ID...", "remove ID...", "hold ID...": ids checked against the
// queue-id syntax) runs the MTA's own admin command (exim -M: thaw and deliver now; exim
// -Mrm: delete; exim -Mf: freeze, so that a message still being retried is not delivered)
// with fixed arguments, then answers "done" or "failed <why>". It takes no other input.
// For postfix ("postfix release|remove|hold CONFIG_DIR ID...") it runs postsuper -c
// CONFIG_DIR -H ID (out of the hold queue into the deferred one) and then postqueue -i ID
// (deliver now, not at the next deferred-queue run), postsuper -d ID, or postsuper -h ID
// (into the hold queue); CONFIG_DIR must be one the
// agent was told of (--postfix-config, default /etc/postfix): guardd cannot make root run
// postfix with a configuration of its choosing.
//
//   guard-mta-agent [--socket PATH] [--exim BINARY] [--exim-config FILE]
//                   [--postfix-bin DIR] [--postfix-config DIR]...
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <algorithm>

#include "mailguard/common/fd.hpp"
#include "mailguard/mta/postfix_instance.hpp"
#include "mailguard/mta/protocol.hpp"

namespace {

using mailguard::Fd;
namespace mta = mailguard::mta;

struct Options {
  std::string socket = "/run/mailguard/mta.sock";
  std::string exim = "/usr/sbin/exim4";
  std::string eximConfig;                   // empty: exim's compiled-in default
  std::string postfixBin = "/usr/sbin";     // postsuper, postqueue
  std::vector<std::string> postfixConfigs;  // empty: /etc/postfix
};

Fd connectTo(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Fd{};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  Fd fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (!fd) return fd;
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return Fd{};
  return fd;
}

bool writeAll(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const auto n = ::send(fd, text.data() + done, text.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

// The program's exit status tells whether it did it; its output goes to the agent's stderr
// (the journal under systemd). Empty when it succeeded.
std::string runArgs(std::vector<std::string> args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return std::string("fork: ") + std::strerror(errno);
  if (pid == 0) {
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "guard-mta-agent: cannot run %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  return args[0] + " exited with status " +
         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

std::string run(const Options& o, const mta::AgentCommand& c) {
  std::vector<std::string> args{o.exim};
  if (!o.eximConfig.empty()) args.insert(args.end(), {"-C", o.eximConfig});
  args.emplace_back(c.action == mta::AgentAction::Release  ? "-M"
                    : c.action == mta::AgentAction::Remove ? "-Mrm"
                                                           : "-Mf");
  args.insert(args.end(), c.ids.begin(), c.ids.end());
  return runArgs(std::move(args));
}

std::string runPostfix(const Options& o, const mta::PostfixCommand& c) {
  const auto& allowed = o.postfixConfigs;
  if (allowed.empty() ? c.configDir != "/etc/postfix"
                      : std::find(allowed.begin(), allowed.end(), c.configDir) == allowed.end()) {
    return "'" + c.configDir + "' is not a postfix configuration this agent serves";
  }
  std::vector<std::string> args{o.postfixBin + "/postsuper", "-c", c.configDir};
  for (const auto& id : c.ids) {
    args.emplace_back(c.action == mta::AgentAction::Release  ? "-H"
                      : c.action == mta::AgentAction::Remove ? "-d"
                                                             : "-h");
    args.push_back(id);
  }
  if (auto failed = runArgs(std::move(args)); !failed.empty()) return failed;
  if (c.action != mta::AgentAction::Release) return {};
  // Released mail sits in the deferred queue until the next scan (queue_run_delay, 300 s
  // by default); the flush service schedules each message now. A failure here only delays.
  for (const auto& id : c.ids) {
    if (auto failed = runArgs({o.postfixBin + "/postqueue", "-c", c.configDir, "-i", id});
        !failed.empty()) {
      std::fprintf(stderr, "guard-mta-agent: %s (message %s is released, delivered later)\n",
                   failed.c_str(), id.c_str());
    }
  }
  return {};
}

// One connection to guardd, until it closes.
void serve(const Options& o, int fd) {
  std::string buffer;
  char chunk[4096];
  while (true) {
    const auto n = ::read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t eol = 0;
    while ((eol = buffer.find('\n')) != std::string::npos) {
      const auto line = buffer.substr(0, eol);
      buffer.erase(0, eol + 1);
      std::string answer;
      if (mta::isPostfixCommand(line)) {
        auto command = mta::parsePostfixCommand(line);
        const auto failure = command ? runPostfix(o, *command) : command.error().message;
        answer = failure.empty() ? "done\n" : "failed " + failure + "\n";
        if (!answer.starts_with("done")) {
          std::fprintf(stderr, "guard-mta-agent: %s", answer.c_str());
        }
        if (!writeAll(fd, answer)) return;
        continue;
      }
      auto command = mta::parseAgentCommand(line);
      if (!command) {
        answer = "failed " + command.error().message + "\n";
      } else {
        const auto failure = run(o, *command);
        answer = failure.empty() ? "done\n" : "failed " + failure + "\n";
      }
      if (!answer.starts_with("done")) std::fprintf(stderr, "guard-mta-agent: %s", answer.c_str());
      if (!writeAll(fd, answer)) return;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 < argc && a == "--socket") {
      o.socket = argv[++i];
    } else if (i + 1 < argc && a == "--exim") {
      o.exim = argv[++i];
    } else if (i + 1 < argc && a == "--exim-config") {
      o.eximConfig = argv[++i];
    } else if (i + 1 < argc && a == "--postfix-bin") {
      o.postfixBin = argv[++i];
    } else if (i + 1 < argc && a == "--postfix-config") {
      o.postfixConfigs.emplace_back(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: guard-mta-agent [--socket PATH] [--exim BINARY] [--exim-config FILE]\n"
                   "                       [--postfix-bin DIR] [--postfix-config DIR]...\n");
      return 2;
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "guard-mta-agent: must run as root (it runs the MTA's admin commands)\n");
    return 1;
  }
  // guardd may start later or restart: keep trying, once a second (a daemon's back-off).
  bool said = false;
  while (true) {
    Fd fd = connectTo(o.socket);
    if (fd && writeAll(fd.get(), std::string(mta::kAgentHello) + "\n")) {
      std::fprintf(stderr, "guard-mta-agent: connected to %s\n", o.socket.c_str());
      said = false;
      serve(o, fd.get());
      std::fprintf(stderr, "guard-mta-agent: guardd closed the connection\n");
    } else if (!said) {
      std::fprintf(stderr, "guard-mta-agent: waiting for guardd at %s\n", o.socket.c_str());
      said = true;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}
