#include "backscatter_cmd.hpp"

#include <iostream>
#include <string>

#include "backscatter_rules.hpp"
#include "mailguard/dbus/host_client.hpp"
#include "output.hpp"

namespace mailguard::guardctl {

struct BackscatterCommand {
  CLI::App* cmd = nullptr;
  std::string domain;
};

std::shared_ptr<BackscatterCommand> addBackscatterCommand(CLI::App& app) {
  auto c = std::make_shared<BackscatterCommand>();
  c->cmd = app.add_subcommand(
      "backscatter",
      "Show bounces for mail this PC did not send (someone forging your address), with a "
      "filter for your mail program");
  c->cmd->add_option("--domain", c->domain,
                     "The domain of your own Message-IDs, as your mail program writes them "
                     "(default: the domain of the mailboxes the bounces went to)");
  c->cmd->footer(
      "guardd reads the bounces (DSNs, sent from <>) the local MTA delivers to mailboxes here\n"
      "and matches them against the mail this PC sent recently ([backscatter] remember_hours\n"
      "in guardd.conf, 72 by default); [backscatter] flood_per_hour bounces (20) that match\n"
      "nothing within an hour are a flood (one alert). The filter keeps bounces that quote one\n"
      "of your Message-IDs. --json: watching, flooding, last_hour, unmatched_last_hour, total,\n"
      "unmatched_total, since, last, recipients, flood_per_hour, alert_id, domain,\n"
      "rules {sieve, procmail, maildrop, thunderbird}.");
  return c;
}

std::optional<int> runBackscatterCommand(BackscatterCommand& c, bool json) {
  if (!*c.cmd) return std::nullopt;
  auto connected = dbus::HostClient::connect();
  if (const auto* e = dbus::errorOf(connected)) return fail(*e);
  auto& client = *std::get<std::unique_ptr<dbus::HostClient>>(connected);
  auto r = client.backscatter();
  if (const auto* e = dbus::errorOf(r)) return fail(*e);
  const auto& s = std::get<dbus::BackscatterStatus>(r);
  const auto domain = backscatterDomain(s, c.domain);
  if (json) {
    printJson(backscatterJson(s, domain));
  } else {
    std::cout << backscatterText(s, domain);
  }
  return 0;
}

}  // namespace mailguard::guardctl
