// mg-fw: drives the host firewall library directly (rules::FirewallState -> HostFirewall
// -> kernel). guardd, D-Bus and guardctl carry the firewall now; the integration tests
// keep this tool only for --force-kernel-failure, a batch the kernel refuses, which
// guardd offers no way to provoke. Each call states the whole firewall; the table is
// replaced atomically.
//   mg-fw apply [--table T] [--enable] [--allow SPEC]... [--allow-local SPEC]...
//               [--local CIDR]... [--no-ping] [--force-kernel-failure] [--print]
//   mg-fw remove [--table T]
//   mg-fw watch-probes SECONDS [--group G]   prints {"events":N,"dropped":N,"records":[...]}
#include <poll.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "mailguard/firewall/host_firewall.hpp"
#include "mailguard/firewall/probe_log.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"

using namespace mailguard;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "mg-fw: %s\n", message.c_str());
  return 1;
}

// Fails inside the kernel, after the table delete of the batch was accepted: a chain
// name longer than NFT_NAME_MAXLEN.
class BreakingApplier final : public firewall::TableApplier {
 public:
  explicit BreakingApplier(firewall::TableApplier& inner) : inner_(inner) {}
  Result<void> apply(const rules::Table& table) override {
    rules::Table broken = table;
    broken.chains.push_back({std::string(300, 'x'), rules::Hook::Input, 0, false, {}});
    return inner_.apply(broken);
  }

 private:
  firewall::TableApplier& inner_;
};

int watchProbes(int seconds, std::uint16_t group) {
  auto source = firewall::NflogProbeSource::open(group);
  if (!source) return fail(source.error().message);
  SystemClock clock;
  firewall::ProbeRecorder recorder(clock, 64);
  std::printf("ready\n");
  std::fflush(stdout);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{(*source)->fd(), POLLIN, 0};
    (void)::poll(&p, 1, 100);
    auto events = (*source)->readAvailable();
    if (!events) return fail(events.error().message);
    for (const auto& e : *events) recorder.record(e);
  }
  std::printf("{\"events\":%llu,\"dropped\":%llu,\"records\":[",
              static_cast<unsigned long long>(recorder.events()),
              static_cast<unsigned long long>(recorder.dropped()));
  bool first = true;
  for (const auto& r : recorder.records()) {
    std::printf("%s{\"source\":\"%s\",\"port\":%u,\"count\":%llu}", first ? "" : ",",
                r.sourceAddress().c_str(), r.port, static_cast<unsigned long long>(r.count));
    first = false;
  }
  std::printf("]}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return fail("usage: mg-fw apply|remove|watch-probes ...");
  std::string table = rules::kTableName;
  rules::FirewallState state;
  std::vector<std::string> local;
  bool breakIt = false;
  bool print = false;
  std::uint16_t group = state.probeLogGroup;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) std::exit(fail(a + " needs a value"));
      return args[++i];
    };
    if (a == "--table") {
      table = next();
    } else if (a == "--enable") {
      state.enabled = true;
    } else if (a == "--allow" || a == "--allow-local") {
      auto s = rules::parseService(next(), a == "--allow-local");
      if (!s) return fail(s.error().message);
      state = rules::withService(state, *s);
    } else if (a == "--local") {
      local.push_back(next());
    } else if (a == "--no-ping") {
      state.allowPing = false;
    } else if (a == "--force-kernel-failure") {
      breakIt = true;
    } else if (a == "--print") {
      print = true;
    } else if (a == "--group") {
      group = static_cast<std::uint16_t>(std::stoi(next()));
    } else if (args[0] == "watch-probes" && i == 1) {
      continue;
    } else {
      return fail("unknown argument '" + a + "'");
    }
  }
  if (args[0] == "watch-probes") {
    if (args.size() < 2) return fail("watch-probes SECONDS");
    return watchProbes(std::stoi(args[1]), group);
  }
  auto manager = netfilter::RulesetManager::open();
  if (!manager) return fail(manager.error().message);
  if (args[0] == "remove") {
    auto r = (*manager)->remove(table);
    return r ? 0 : fail(r.error().message);
  }
  if (args[0] != "apply") return fail("unknown command '" + args[0] + "'");
  auto subnets = rules::withLocalSubnets(state, local);
  if (!subnets) return fail(subnets.error().message);
  state = *subnets;
  auto backend = (*manager)->probeQueueBackend();
  if (!backend) return fail(backend.error().message);
  firewall::KernelTableApplier kernel(**manager, *backend);
  BreakingApplier breaking(kernel);
  firewall::HostFirewall fw(breakIt ? static_cast<firewall::TableApplier&>(breaking) : kernel,
                            rules::Settings{}, table);
  if (auto r = fw.setState(state); !r) return fail(r.error().message);
  if (print) std::fputs(rules::toNftText(fw.table()).c_str(), stdout);
  return 0;
}
