// guardd: parse the command line, build the guard, run the loop, return an exit code.
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "mailguard/bus/bus_adaptor.hpp"
#include "mailguard/common/fd.hpp"
#include "mailguard/netfilter/ruleset_manager.hpp"
#include "mailguard/rules/settings.hpp"
#include "mailguard/service/event_loop.hpp"
#include "mailguard/service/guard.hpp"
#include "mailguard/service/log.hpp"
#include "mailguard/service/privileges.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/mailguard/guardd.conf";

int removeRules(const std::string& table) {
  auto manager = mailguard::netfilter::RulesetManager::open();
  if (!manager) {
    mailguard::log::error(manager.error().message);
    return 1;
  }
  if (auto r = manager.value()->remove(table); !r) {
    mailguard::log::error(r.error().message);
    return 1;
  }
  std::printf("Removed table 'inet %s' (mail connections are no longer guarded).\n", table.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mailguard;
  // Fixed thresholds: glibc's own rise (to the size of the largest block freed that was
  // mmap'd: the kernel's BTF, 5 MiB, parsed at start) would keep up to twice that of
  // freed heap resident after every burst of attempts, for the life of the daemon.
  ::mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  ::mallopt(M_TRIM_THRESHOLD, 512 * 1024);
  CLI::App app{
      "guardd: lets only approved programs open outbound mail connections and guards "
      "this PC against sending spam.\nRuns in the foreground; use the guardd.service unit "
      "to run it as a service."};
  std::string configFile;
  std::string stateDir = "/var/lib/mailguard";
  bool remove = false;
  bool version = false;
  bool checkConfig = false;
  app.add_option("--config", configFile, "Settings file (TOML)")
      ->option_text("FILE (default: " + std::string(kDefaultConfig) + ")");
  app.add_option("--state-dir", stateDir, "Directory for the SQLite state")->capture_default_str();
  app.add_flag("--remove-rules", remove,
               "Delete the 'inet mailguard' nftables table and exit (mail is then unguarded)");
  app.add_flag("--check-config", checkConfig, "Check the settings file and exit");
  app.add_flag("--version", version, "Print the version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (version) {
    std::printf("guardd %s\n", MAILGUARD_VERSION);
    return 0;
  }

  const bool explicitConfig = !configFile.empty();
  if (!explicitConfig) configFile = kDefaultConfig;
  auto settings = rules::loadSettings(configFile, !explicitConfig);
  if (!settings) {
    log::error(settings.error().message);
    return 1;
  }
  if (checkConfig) {
    std::printf("%s: settings are valid\n", configFile.c_str());
    return 0;
  }
  log::Level level{};
  if (log::parseLevel(settings->logLevel, level)) log::setLevel(level);

  if (geteuid() != 0) {
    log::error(
        "guardd must run as root: it installs an nftables table and reads other users' "
        "processes (try: sudo guardd)");
    return 1;
  }
  if (remove) return removeRules(rules::kTableName);

  // Down to the four capabilities guardd needs, before anything else: capabilities belong
  // to each thread, so only while guardd has one thread does this cover every thread it
  // will have (and every program it runs). Start-up needs no more than run time does.
  auto dropped = service::dropPrivileges();
  if (!dropped) {
    log::error(dropped.error().message);
    return 1;
  }
  log::info(*dropped);

  // Block the signals before any thread starts, so only the signalfd sees them.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  const Fd sigfd{signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK)};
  if (!sigfd) {
    log::error(std::string("Failed to create signalfd: ") + std::strerror(errno));
    return 1;
  }

  service::EventLoop loop;
  service::Guard::Options options;
  options.settings = settings.value();
  options.stateDir = stateDir;
  auto guard = service::Guard::create(std::move(options), loop);
  if (!guard) {
    log::error(guard.error().message);
    return 1;
  }
  auto watched = loop.add(sigfd.get(), EPOLLIN, [&](std::uint32_t) {
    signalfd_siginfo info{};
    while (read(sigfd.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      if (info.ssi_signo == SIGHUP) continue;  // nothing to reload yet: approvals reload live
      log::info(std::string("received ") + strsignal(static_cast<int>(info.ssi_signo)));
      loop.stop();
    }
  });
  if (!watched) {
    // Without it SIGTERM could not stop guardd cleanly: refuse to start.
    log::error(watched.error().message);
    guard.value()->shutdown();
    return 1;
  }
  // Declared after the guard so it is destroyed first; without a bus it keeps
  // retrying in the background while verdicts go on.
  bus::BusAdaptor busAdaptor(*guard.value(), loop);
  sd_notify(0, "READY=1");
  auto ran = loop.run();
  sd_notify(0, "STOPPING=1");
  guard.value()->shutdown();
  if (!ran) {
    log::error(ran.error().message);
    return 1;
  }
  return 0;
}
