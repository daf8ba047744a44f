#include "outside_cmd.hpp"

#include <iostream>

#include "mailguard/dbus/host_client.hpp"
#include "output.hpp"

namespace mailguard::guardctl {
namespace {

constexpr int kOk = 0;
constexpr int kFailed = 1;

std::string str(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

struct OutsideCommands {
  CLI::App* outside = nullptr;
  bool run = false;
};

std::shared_ptr<OutsideCommands> addOutsideCommands(CLI::App& app) {
  auto c = std::make_shared<OutsideCommands>();
  c->outside = app.add_subcommand(
      "outside",
      "Show whether your public address is on a spam blocklist and whether your mail domains "
      "are protected against forgery (SPF, DMARC)");
  c->outside->add_flag("--run", c->run,
                       "Check now (a few seconds of DNS lookups; needs the same rights as "
                       "approve) instead of showing the last result");
  c->outside->footer(
      "guardd looks up the household's public IPv4 address in each blocklist of [outside]\n"
      "blocklists once a day, and raises an alert naming the list and the likely cause when\n"
      "it is listed. For each domain in [outside] domains it reads the SPF and DMARC records:\n"
      "without \"-all\" (or \"~all\") and p=quarantine (or reject), receivers bounce mail\n"
      "forged in your name back to you instead of dropping it (a Joe Job). With --json: the\n"
      "object {time, public_address, address_source, address_error, address_notes,\n"
      "address_shared, running, next_run, blocklists: [{zone, status, codes, reason, error,\n"
      "first_seen}], domains: [{domain, spf, spf_all, dmarc, dmarc_policy, findings: [{kind,\n"
      "severity, title, fix}]}]}; status is listed, not-listed or error. address_source is\n"
      "where the address came from ([outside] address_sources: router:upnp, router:natpmp,\n"
      "https:URL, dns:NAME, or settings); address_notes why the sources asked before it gave\n"
      "none; address_shared is true behind the provider's carrier-grade NAT.");
  return c;
}

std::string outsideText(const nlohmann::json& r) {
  std::string out;
  if (r.value("running", false)) out += "A check is running now.\n";
  if (!r.contains("time") || r["time"].is_null()) {
    out += "No outside check yet (run one with: guardctl outside --run).\n";
    return out;
  }
  out += "Outside check of " + str(r, "time") + ":\n";
  const std::string address = str(r, "public_address");
  if (address.empty()) {
    out += "Public address unknown: " + str(r, "address_error") + "\n";
  } else {
    out += "Public address " + address + " (from " + str(r, "address_source") + ")\n";
  }
  // Each source asked before the one that gave it, and why it did not (double NAT, ...).
  if (!address.empty() && r.contains("address_notes") && r["address_notes"].is_array()) {
    for (const auto& note : r["address_notes"]) {
      if (note.is_string()) out += "  Note: " + note.get<std::string>() + "\n";
    }
  }
  if (r.contains("blocklists") && !r["blocklists"].empty()) {
    out += "\nBlocklists:\n";
    for (const auto& b : r["blocklists"]) {
      const std::string status = str(b, "status");
      out += "  " + str(b, "zone") + ": ";
      if (status == "listed") {
        out += "LISTED since " + str(b, "first_seen");
        if (!str(b, "reason").empty()) out += " (" + str(b, "reason") + ")";
      } else if (status == "error") {
        out += "error: " + str(b, "error");
      } else {
        out += "not listed";
      }
      out += "\n";
    }
  }
  if (r.contains("domains") && !r["domains"].empty()) {
    out += "\nDomains:\n";
    for (const auto& d : r["domains"]) {
      const auto& findings = d["findings"];
      out += "  " + str(d, "domain") + ": " +
             (findings.empty() ? "protected (SPF " + str(d, "spf_all") +
                                     ", DMARC p=" + str(d, "dmarc_policy") + ")"
                               : std::to_string(findings.size()) + " finding(s)") +
             "\n";
      for (const auto& f : findings) {
        out += "    [" + str(f, "severity") + "] " + str(f, "title") + "\n";
        out += "      Fix: " + str(f, "fix") + "\n";
      }
    }
  }
  if (r.contains("next_run") && r["next_run"].is_string()) {
    out += "\nNext check: " + r["next_run"].get<std::string>() + "\n";
  }
  return out;
}

std::string outsideLine(const nlohmann::json& r) {
  if (!r.is_object()) return "outside check ended (unreadable report)";
  std::string out = "outside check " + str(r, "time") + ": ";
  const std::string address = str(r, "public_address");
  if (address.empty()) return out + "public address unknown: " + str(r, "address_error");
  std::string listed;
  std::size_t lists = 0;
  std::size_t errors = 0;
  if (r.contains("blocklists") && r["blocklists"].is_array()) {
    for (const auto& b : r["blocklists"]) {
      ++lists;
      if (str(b, "status") == "listed") listed += (listed.empty() ? "" : ", ") + str(b, "zone");
      if (str(b, "status") == "error") ++errors;
    }
  }
  out += address + (listed.empty() ? " on none of " + std::to_string(lists) + " blocklists"
                                   : " LISTED on " + listed);
  if (errors > 0) out += " (" + std::to_string(errors) + " could not be asked)";
  std::size_t findings = 0;
  if (r.contains("domains") && r["domains"].is_array()) {
    for (const auto& d : r["domains"]) {
      if (d.contains("findings") && d["findings"].is_array()) findings += d["findings"].size();
    }
  }
  if (findings > 0) out += "; " + std::to_string(findings) + " domain finding(s)";
  return out;
}

std::optional<int> runOutsideCommands(OutsideCommands& c, bool json) {
  if (!*c.outside) return std::nullopt;
  auto connected = dbus::HostClient::connect();
  if (const auto* e = dbus::errorOf(connected)) return fail(*e);
  auto& client = *std::get<std::unique_ptr<dbus::HostClient>>(connected);
  auto r = c.run ? client.runOutside() : client.outside();
  if (const auto* e = dbus::errorOf(r)) return fail(*e);
  const auto report = nlohmann::json::parse(std::get<std::string>(r), nullptr, false);
  if (!report.is_object()) {
    std::cerr << "guardctl: guardd's outside report is not a JSON object\n";
    return kFailed;
  }
  if (json) {
    auto shown = report;
    shown.erase("time_us");
    for (auto& b : shown["blocklists"]) b.erase("first_seen_us");
    printJson(shown);
  } else {
    std::cout << outsideText(report);
  }
  return kOk;
}

}  // namespace mailguard::guardctl
