// mg-audit: the mail-server inventory and relay self-audit for the integration tests,
// until guardd and the D-Bus API carry them. Prints JSON.
//   mg-audit inventory [--ports 25,465,587,2525]
//   mg-audit audit [--ports ...] [--own-domain D] [--firewall-enabled] [--allow SPEC]...
//                  [--fail-at namespace|veth|configured|probing]
// `audit` prints {"audit":[...], "error":..., "cleanup":{...}}: after the audit, in the
// same process, whether any probe interface or the probe namespace is still there.
#include <dirent.h>
#include <net/if.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "mailguard/audit/findings.hpp"
#include "mailguard/audit/inventory.hpp"
#include "mailguard/audit/relay.hpp"

using namespace mailguard;

namespace {

std::string q(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      (void)std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string listenerJson(const audit::MailListener& l) {
  std::ostringstream o;
  o << "\"address\":" << q(l.addressText()) << ",\"port\":" << l.port
    << ",\"family\":" << (l.family == AF_INET ? 4 : 6)
    << ",\"exposure\":" << q(toString(l.exposure))
    << ",\"pid\":" << (l.pid ? std::to_string(*l.pid) : "null") << ",\"path\":" << q(l.path)
    << ",\"comm\":" << q(l.comm) << ",\"uid\":" << l.uid;
  return o.str();
}

std::vector<std::string> probeInterfaces() {
  std::vector<std::string> out;
  if (struct if_nameindex* names = ::if_nameindex()) {
    for (struct if_nameindex* i = names; i->if_index != 0; ++i) {
      if (std::string(i->if_name).rfind("mgp", 0) == 0) out.emplace_back(i->if_name);
    }
    ::if_freenameindex(names);
  }
  return out;
}

// Whether any thread of any process still holds the namespace with this inode.
bool namespaceHeld(std::uint64_t inode) {
  if (inode == 0) return false;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return false;
  bool held = false;
  while (dirent* p = ::readdir(proc)) {
    if (p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    const std::string tasks = std::string("/proc/") + p->d_name + "/task";
    DIR* dir = ::opendir(tasks.c_str());
    if (dir == nullptr) continue;
    while (dirent* t = ::readdir(dir)) {
      struct stat st {};
      if (::stat((tasks + "/" + t->d_name + "/ns/net").c_str(), &st) == 0 && st.st_ino == inode) {
        held = true;
      }
    }
    ::closedir(dir);
  }
  ::closedir(proc);
  return held;
}

std::vector<std::uint16_t> parsePorts(const std::string& text) {
  std::vector<std::uint16_t> ports;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) ports.push_back(static_cast<std::uint16_t>(std::stoi(item)));
  return ports;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || (args[0] != "inventory" && args[0] != "audit")) {
    std::fprintf(stderr, "usage: mg-audit inventory|audit [options]\n");
    return 2;
  }
  std::vector<std::uint16_t> ports{25, 465, 587, 2525};
  audit::AuditOptions options;
  std::string failAt;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "mg-audit: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return args[++i];
    };
    if (a == "--ports") {
      ports = parsePorts(next());
    } else if (a == "--own-domain") {
      options.ownDomain = next();
    } else if (a == "--firewall-enabled") {
      options.firewall.enabled = true;
    } else if (a == "--allow") {
      auto s = rules::parseService(next());
      if (!s) {
        std::fprintf(stderr, "mg-audit: %s\n", s.error().message.c_str());
        return 2;
      }
      options.firewall = rules::withService(options.firewall, *s);
    } else if (a == "--fail-at") {
      failAt = next();
    } else {
      std::fprintf(stderr, "mg-audit: unknown argument '%s'\n", a.c_str());
      return 2;
    }
  }
  if (!failAt.empty()) {
    options.faultInjection = [failAt](std::string_view stage) -> Result<void> {
      if (stage == failAt) return makeError("injected failure at stage '" + failAt + "'");
      return {};
    };
  }

  audit::SockDiagListeningSockets sockets;
  procinfo::DirProcFs procFs;
  procinfo::FileHasher hasher;
  procinfo::ProcessResolver resolver(procFs, hasher);
  auto listeners = audit::takeInventory(sockets, resolver, ports);
  if (!listeners) {
    std::fprintf(stderr, "mg-audit: %s\n", listeners.error().message.c_str());
    return 1;
  }
  if (args[0] == "inventory") {
    std::string out = "[";
    for (std::size_t i = 0; i < listeners->size(); ++i) {
      out += (i ? ",{" : "{") + listenerJson((*listeners)[i]) + "}";
    }
    std::printf("%s]\n", out.c_str());
    return 0;
  }

  audit::ProbeTrace trace;
  auto results = audit::auditRelays(*listeners, options, &trace);
  std::ostringstream o;
  o << "{\"audit\":[";
  if (results) {
    bool firstItem = true;
    for (const audit::ListenerAudit& a : *results) {
      o << (firstItem ? "{" : ",{") << listenerJson(a.listener)
        << ",\"relay\":" << q(toString(a.relay)) << ",\"accepted\":[";
      for (std::size_t i = 0; i < a.accepted.size(); ++i) o << (i ? "," : "") << q(a.accepted[i]);
      o << "],\"reason\":" << q(a.reason)
        << ",\"blocked_by_firewall\":" << (a.blockedByFirewall ? "true" : "false")
        << ",\"probed_address\":" << q(a.probedAddress)
        << ",\"own_domain\":" << q(a.dialogue.ownDomain) << ",\"replies\":[";
      for (std::size_t i = 0; i < a.dialogue.transcript.size(); ++i) {
        o << (i ? "," : "") << q(a.dialogue.transcript[i]);
      }
      o << "],\"findings\":[";
      const auto findings = audit::findingsFor(a, options.firewall);
      for (std::size_t i = 0; i < findings.size(); ++i) {
        const auto& f = findings[i];
        o << (i ? ",{" : "{") << "\"severity\":" << q(toString(f.severity))
          << ",\"title\":" << q(f.title) << ",\"fix\":" << q(f.fix)
          << ",\"offer_block\":" << (f.offerBlock ? "true" : "false")
          << ",\"block_command\":" << q(f.blockCommand) << "}";
      }
      o << "]}";
      firstItem = false;
    }
  }
  o << "],\"error\":" << (results ? "null" : q(results.error().message));
  // The veth is deleted synchronously; the namespace goes when its thread has exited.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while ((!probeInterfaces().empty() || namespaceHeld(trace.namespaceInode)) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  o << ",\"cleanup\":{\"probe_interface\":" << q(trace.hostInterface)
    << ",\"probe_namespace_inode\":" << trace.namespaceInode << ",\"interfaces_left\":[";
  const auto left = probeInterfaces();
  for (std::size_t i = 0; i < left.size(); ++i) o << (i ? "," : "") << q(left[i]);
  o << "],\"namespace_held\":" << (namespaceHeld(trace.namespaceInode) ? "true" : "false") << "}}";
  std::printf("%s\n", o.str().c_str());
  return results ? 0 : 1;
}
