#include "mailguard/outside/report.hpp"

#include <nlohmann/json.hpp>

namespace mailguard::outside {
namespace {

using Json = nlohmann::ordered_json;

std::int64_t micros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
TimePoint fromMicros(std::int64_t us) {
  return TimePoint{std::chrono::duration_cast<TimePoint::duration>(std::chrono::microseconds{us})};
}
Json timeJson(TimePoint t) { return t == TimePoint{} ? Json(nullptr) : Json(formatRfc3339(t)); }

bool isIpv4(const std::string& s) { return classifyAddress(s) != AddressKind::NotIpv4; }

}  // namespace

PublicAddress findPublicAddress(const OutsideConfig& config,
                                std::span<AddressSource* const> sources) {
  PublicAddress out;
  if (config.publicAddress != "auto") {
    out.address = config.publicAddress;
    out.source = "settings";
    return out;
  }
  const std::string advice = "set [outside] public_address to your router's public IPv4 address";
  if (sources.empty()) {
    out.error =
        "no way to learn the public address is configured ([outside] address_sources): " + advice;
    return out;
  }
  auto found = askSources(sources);
  out.address = std::move(found.address);
  out.source = std::move(found.source);
  out.notes = std::move(found.notes);
  out.shared = found.shared;
  if (out.address.empty()) {
    out.error = "no source gave a public address (";
    for (std::size_t i = 0; i < out.notes.size(); ++i) {
      out.error += (i == 0 ? "" : "; ") + out.notes[i];
    }
    out.error += "): " + advice;
  }
  return out;
}

OutsideReport runChecks(const OutsideConfig& config, Resolver& resolver,
                        std::span<AddressSource* const> sources, TimePoint now) {
  OutsideReport report;
  report.time = now;
  report.address = findPublicAddress(config, sources);
  if (!report.address.address.empty() && !isIpv4(report.address.address)) {
    report.address.error = "\"" + report.address.address + "\" is not an IPv4 address";
    report.address.address.clear();
  }
  if (!report.address.address.empty()) {
    for (const auto& zone : config.blocklists) {
      auto r = checkBlocklist(resolver, report.address.address, zone);
      if (r.listing == Listing::Listed) r.firstSeen = now;
      report.blocklists.push_back(std::move(r));
    }
  }
  for (const auto& domain : config.domains) report.domains.push_back(checkDomain(resolver, domain));
  return report;
}

std::vector<std::string> carryOver(const OutsideReport& previous, OutsideReport& current) {
  std::vector<std::string> fresh;
  const bool sameAddress = previous.address.address == current.address.address;
  for (auto& r : current.blocklists) {
    if (r.listing != Listing::Listed) continue;
    bool before = false;
    if (sameAddress) {
      for (const auto& p : previous.blocklists) {
        if (p.zone == r.zone && p.listing == Listing::Listed && p.firstSeen != TimePoint{}) {
          r.firstSeen = p.firstSeen;
          before = true;
        }
      }
      // A lookup that failed last time says nothing: a listing seen before that failure
      // is not new, but its first sighting is lost with it; now is the best we know.
    }
    if (!before) fresh.push_back(r.zone);
  }
  return fresh;
}

std::string likelyCause(const LocalEvidence& evidence, bool sharedAddress) {
  const std::string shared =
      "the address is shared with your provider's other customers (carrier-grade NAT), whose "
      "mail may have put it on the list";
  std::string out;
  for (const auto& q : evidence.quarantined) {
    out += (out.empty() ? "" : "; ") +
           std::string("a program on this PC behaved like a spam bot: ") + q;
  }
  for (const auto& r : evidence.openRelays) {
    out += (out.empty() ? "" : "; ") + std::string("the last audit found an open relay: ") + r;
  }
  if (out.empty()) {
    if (sharedAddress)
      return "no cause found on this PC: " + shared + "; or another device at home";
    return "no cause found on this PC: another device at home, or a previous holder of the "
           "address";
  }
  if (sharedAddress) out += "; also, " + shared;
  return out;
}

TimePoint nextRunDue(TimePoint lastRun, TimePoint started, std::chrono::hours interval) {
  if (lastRun == TimePoint{}) return started + interval;
  return lastRun + interval;
}

std::string toJson(const OutsideReport& report) {
  Json lists = Json::array();
  for (const auto& b : report.blocklists) {
    lists.push_back({{"zone", b.zone},
                     {"status", toString(b.listing)},
                     {"codes", b.codes},
                     {"reason", b.reason},
                     {"error", b.error},
                     {"first_seen", timeJson(b.firstSeen)},
                     {"first_seen_us", micros(b.firstSeen)}});
  }
  Json domains = Json::array();
  for (const auto& d : report.domains) {
    Json findings = Json::array();
    for (const auto& f : d.findings) {
      findings.push_back(
          {{"kind", f.kind}, {"severity", f.severity}, {"title", f.title}, {"fix", f.fix}});
    }
    domains.push_back({{"domain", d.domain},
                       {"spf", d.spf},
                       {"spf_all", d.spfAll},
                       {"dmarc", d.dmarc},
                       {"dmarc_policy", d.dmarcPolicy},
                       {"findings", findings}});
  }
  Json out{{"time", timeJson(report.time)},
           {"time_us", micros(report.time)},
           {"public_address", report.address.address},
           {"address_source", report.address.source},
           {"address_error", report.address.error},
           {"address_notes", report.address.notes},
           {"address_shared", report.address.shared},
           {"blocklists", lists},
           {"domains", domains}};
  return out.dump();
}

Result<OutsideReport> fromJson(const std::string& text) {
  try {
    const auto j = Json::parse(text);
    OutsideReport r;
    r.time = fromMicros(j.at("time_us").get<std::int64_t>());
    r.address.address = j.at("public_address").get<std::string>();
    r.address.source = j.at("address_source").get<std::string>();
    r.address.error = j.at("address_error").get<std::string>();
    // Reports stored before the address had several sources have no notes.
    if (j.contains("address_notes")) {
      r.address.notes = j.at("address_notes").get<std::vector<std::string>>();
    }
    r.address.shared = j.value("address_shared", false);
    for (const auto& b : j.at("blocklists")) {
      BlocklistResult br;
      br.zone = b.at("zone").get<std::string>();
      const auto status = b.at("status").get<std::string>();
      br.listing = status == "listed"  ? Listing::Listed
                   : status == "error" ? Listing::Error
                                       : Listing::NotListed;
      br.codes = b.at("codes").get<std::vector<std::string>>();
      br.reason = b.at("reason").get<std::string>();
      br.error = b.at("error").get<std::string>();
      br.firstSeen = fromMicros(b.at("first_seen_us").get<std::int64_t>());
      r.blocklists.push_back(std::move(br));
    }
    for (const auto& d : j.at("domains")) {
      DomainReport dr;
      dr.domain = d.at("domain").get<std::string>();
      dr.spf = d.at("spf").get<std::string>();
      dr.spfAll = d.at("spf_all").get<std::string>();
      dr.dmarc = d.at("dmarc").get<std::string>();
      dr.dmarcPolicy = d.at("dmarc_policy").get<std::string>();
      for (const auto& f : d.at("findings")) {
        dr.findings.push_back({f.at("kind").get<std::string>(), f.at("severity").get<std::string>(),
                               f.at("title").get<std::string>(), f.at("fix").get<std::string>()});
      }
      r.domains.push_back(std::move(dr));
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    return invalidArgument(std::string("the stored outside report does not parse: ") + e.what());
  }
}

}  // namespace mailguard::outside
