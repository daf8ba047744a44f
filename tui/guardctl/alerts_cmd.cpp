#include "alerts_cmd.hpp"

#include <cmath>
#include <iostream>

#include "mailguard/dbus/names.hpp"
#include "output.hpp"

namespace mailguard::guardctl {
namespace {

using nlohmann::json;

constexpr int kOk = 0;
constexpr int kFailed = 1;
constexpr int kUsage = 2;

}  // namespace

namespace {

// Scores and thresholds are sums of floating-point weights: 6.8999999999999995 reads as
// a mistake. Four decimals say all the detector means, and print as 6.9.
void roundNumbers(json& j) {
  if (j.is_number_float()) {
    j = std::round(j.get<double>() * 10'000.0) / 10'000.0;
  } else if (j.is_structured()) {
    for (auto& e : j) roundNumbers(e);
  }
}

}  // namespace

json toJson(const dbus::Alert& a) {
  auto evidence = json::parse(a.evidence, nullptr, false);
  if (evidence.is_discarded()) evidence = json::object();
  roundNumbers(evidence);
  return json{{"id", a.id},
              {"time", timeJson(a.timeUs)},
              {"path", a.path},
              {"tier", a.tier},
              {"kind", a.kind},
              {"reasons", a.reasons},
              {"acknowledged", a.acknowledged},
              {"program_id", a.programId == 0 ? json(nullptr) : json(a.programId)},
              {"uid", a.uid},
              {"summary", a.summary},
              {"evidence", evidence}};
}

// An audit alert names its finding in its evidence (guardd/service/src/host_protection.cpp).
std::string auditLabel(const dbus::Alert& a) {
  const auto evidence = nlohmann::json::parse(a.evidence, nullptr, false);
  const std::string finding =
      evidence.is_object() ? evidence.value("finding", std::string()) : std::string();
  if (finding == "open-relay-lan") return "audit: LAN relay";
  if (finding == "auth-without-tls") return "audit: AUTH in clear";
  if (finding == "exposed") return "audit: exposed";
  if (finding == "open-relay-stranger") return "audit: open relay";
  return a.tier == "hard" ? "audit: open relay" : "audit: exposed";
}

std::string tierLabel(const dbus::Alert& a) {
  if (a.kind == "audit") return auditLabel(a);
  if (a.kind == "tamper") return "firewall tampered";  // restored already
  if (a.kind == "backscatter") return "backscatter";   // bounces of forged mail
  // An open relay on another computer of the household: nothing here is quarantined.
  if (a.kind == "household-relay") return "relay on your LAN";
  return a.tier == "hard" ? "quarantined" : "suspicious";
}

std::string alertLine(const dbus::Alert& a) {
  return localTime(a.timeUs) + "  alert " + std::to_string(a.id) + " (" + tierLabel(a) + ")  " +
         a.path + ": " + (a.reasons.empty() ? a.summary : a.reasons.front());
}

std::string alertsTable(const std::vector<dbus::Alert>& alerts) {
  if (alerts.empty()) {
    return "No alerts: no program has behaved like a spam bot and the mail-server audit found "
           "nothing.\n";
  }
  std::vector<std::vector<std::string>> rows{{"ID", "TIME", "TIER", "ACK", "PROGRAM", "WHY"}};
  std::vector<std::string> fixes;
  for (const auto& a : alerts) {
    const bool audit = a.kind == "audit";
    rows.push_back({std::to_string(a.id), localTime(a.timeUs), tierLabel(a),
                    a.acknowledged ? "yes" : "no", a.path,
                    a.reasons.empty() ? a.summary : a.reasons.front()});
    if (audit && !a.acknowledged) {
      for (std::size_t i = 1; i < a.reasons.size(); ++i) {
        fixes.push_back("  " + std::to_string(a.id) + ": " + a.reasons[i]);
      }
    }
  }
  std::string out = alignTable(rows);
  if (!fixes.empty()) {
    out += "\nHow to fix the audit findings:\n";
    for (const auto& f : fixes) out += f + "\n";
  }
  return out;
}

DetectorCommands::DetectorCommands(CLI::App& app) {
  alerts_ = app.add_subcommand(
      "alerts",
      "List the alerts: programs that behaved like a spam bot (zombie detector) and "
      "mail servers open to strangers (mail-server audit)");
  alerts_->require_subcommand(0, 1);
  alerts_->add_option("--limit", limit_, "How many to show, newest first, 1 to 1000 (default 50)")
      ->check(CLI::Range(1u, 1000u));
  alerts_->footer(
      "Tiers: suspicious (soft: new destinations are slowed down) and quarantined (hard:\n"
      "every mail connection of the program is refused until you release it).\n"
      "Audit alerts (kind audit) name a mail server: hard for an open relay, soft for one\n"
      "other computers can reach; the reasons hold the fix. Nothing is quarantined.\n"
      "--json gives [{id, time, path, tier, kind, reasons, acknowledged, evidence, ...}].\n"
      "Example: guardctl alerts;  sudo guardctl alerts ack 3");
  ack_ = alerts_->add_subcommand("ack", "Mark an alert as seen (a quarantine stays)");
  ack_->add_option("ID", ackId_, "The alert's id from 'guardctl alerts'")
      ->required()
      ->check(CLI::PositiveNumber);
  ack_->footer("Needs root (sudo) or an administrator's password via polkit.");

  release_ = app.add_subcommand("release", "Lift a program's quarantine");
  release_
      ->add_option("PATH|ID", target_, "The program: its id from 'guardctl programs', or its path")
      ->required();
  release_->add_option("--script", script_, "For an interpreter: the script it runs");
  release_->footer(
      "Do this only when you know why the program sent so much mail (a newsletter, a\n"
      "mailing list): its mail connections are then held or allowed by your approvals\n"
      "again, and the servers it reached count as its usual ones.\n"
      "Example: sudo guardctl release /usr/bin/python3 --script /home/ann/newsletter.py\n"
      "Needs root (sudo) or an administrator's password via polkit.");

  bulk_ = app.add_subcommand("bulk", "Announce a large mailing so it is not taken for a spam bot");
  bulk_->add_option("PATH|ID", target_, "The program: its id from 'guardctl programs', or its path")
      ->required();
  bulk_->add_option("--script", script_, "For an interpreter: the script it runs");
  bulk_->add_option("--recipients", recipients_, "How many messages, 1 to 1000000")
      ->required()
      ->check(CLI::Range(1u, 1'000'000u));
  bulk_->add_option("--hours", hours_, "Within how many hours from now, 1 to 168")
      ->required()
      ->check(CLI::Range(1u, 168u));
  bulk_->footer(
      "For that window the program gets no 'suspicious' alerts and no daily limits; it\n"
      "is still quarantined if it behaves like a bot (many refused connections, direct\n"
      "delivery to many mail servers).\n"
      "Example: sudo guardctl bulk /usr/bin/python3 --script /srv/list.py --recipients 800 "
      "--hours 4\n"
      "Needs root (sudo) or an administrator's password via polkit.");
}

std::optional<int> DetectorCommands::checkArguments() {
  if (!*release_ && !*bulk_) return std::nullopt;
  auto target = programTarget(target_);
  if (!target) {
    std::cerr << "guardctl: " << target.error().message << "\n";
    return kUsage;
  }
  resolvedTarget_ = *target;
  if (!script_.empty()) {
    auto script = scriptTarget(script_);
    if (!script) {
      std::cerr << "guardctl: --script: " << script.error().message << "\n";
      return kUsage;
    }
    resolvedScript_ = *script;
  }
  return std::nullopt;
}

std::optional<int> DetectorCommands::run(dbus::Client& client, bool json) {
  if (*ack_) {
    // guardd's store marks an acknowledged alert again without complaint: look first, so
    // that acknowledging twice says there was nothing to do. An alert older than the
    // listed ones is left to guardd (NotFound when there is no such alert).
    if (auto listed = client.alerts(dbus::kMaxAttemptsLimit);
        const auto* list = std::get_if<0>(&listed)) {
      for (const auto& a : *list) {
        if (a.id == ackId_ && a.acknowledged) {
          std::cerr << "guardctl: alert " << ackId_ << " is already acknowledged: nothing to do\n";
          return kFailed;
        }
      }
    }
    auto r = client.ackAlert(ackId_);
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    if (json) {
      printJson({{"acknowledged", true}, {"id", ackId_}});
    } else {
      std::cout << "Alert " << ackId_ << " acknowledged.\n";
    }
    return kOk;
  }
  if (*alerts_) {
    auto r = client.alerts(limit_);
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& list = std::get<std::vector<dbus::Alert>>(r);
    if (json) {
      auto arr = json::array();
      for (const auto& a : list) arr.push_back(toJson(a));
      printJson(arr);
    } else {
      std::cout << alertsTable(list);
    }
    return kOk;
  }
  if (*release_ || *bulk_) {
    const auto& target = resolvedTarget_;
    const auto& script = resolvedScript_;
    // Releasing a program that is not quarantined is answered NotFound: exit 1.
    auto r = *release_ ? client.release(target, script)
                       : client.bulk(target, script, recipients_, hours_);
    if (const auto* e = dbus::errorOf(r)) return fail(*e);
    const auto& p = std::get<dbus::Program>(r);
    if (json) {
      printJson(toJson(p));
    } else if (*release_) {
      std::cout << "Released: " << programLine(p) << "\n";
    } else {
      std::cout << "Bulk send of " << recipients_ << " messages in " << hours_ << " h declared for "
                << programLine(p) << "\n";
    }
    return kOk;
  }
  return std::nullopt;
}

}  // namespace mailguard::guardctl
