#include "outside_check.hpp"

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "guard_impl.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {

OutsideCheck::OutsideCheck(const rules::Settings& settings, EventLoop& loop, const Clock& clock,
                           store::SqliteStore& reader, store::StoreWriter& writer,
                           AlertSink& alerts, Evidence evidence)
    : settings_(settings),
      loop_(loop),
      clock_(clock),
      reader_(reader),
      writer_(writer),
      alerts_(alerts),
      evidence_(std::move(evidence)) {}

OutsideCheck::~OutsideCheck() {
  if (worker_.joinable()) worker_.join();
}

void OutsideCheck::start() {
  started_ = clock_.now();
  auto stored = reader_.loadOutsideReport();
  if (!stored) {
    log::error(stored.error().message);
  } else if (!stored->empty()) {
    auto parsed = outside::fromJson(*stored);
    if (parsed) {
      last_ = std::move(*parsed);
    } else {
      log::warning("Failed to read the stored outside check: " + parsed.error().message);
    }
  }
  // A minute is fine-grained enough for a daily check.
  if (settings_.outsideIntervalHours > 0) {
    loop_.every(std::chrono::minutes(1), [this] { runIfDue(); });
  }
}

std::string OutsideCheck::reportJson() const {
  auto j = nlohmann::ordered_json::parse(outside::toJson(last_));
  j["running"] = running_;
  if (settings_.outsideIntervalHours > 0) {
    j["next_run"] = formatRfc3339(outside::nextRunDue(
        last_.time, started_, std::chrono::hours(settings_.outsideIntervalHours)));
  } else {
    j["next_run"] = nullptr;
  }
  return j.dump();
}

void OutsideCheck::runIfDue() {
  if (running_ || settings_.outsideIntervalHours == 0) return;
  const auto due =
      outside::nextRunDue(last_.time, started_, std::chrono::hours(settings_.outsideIntervalHours));
  if (clock_.now() >= due) run(nullptr);
}

void OutsideCheck::run(std::function<void(const std::string&)> done) {
  if (done) waiting_.push_back(std::move(done));
  if (running_) return;
  running_ = true;
  if (worker_.joinable()) worker_.join();
  outside::OutsideConfig config;
  config.publicAddress = settings_.outsidePublicAddress;
  config.blocklists = settings_.outsideBlocklists;
  config.domains = settings_.outsideDomains;
  outside::ResolverConfig dns;
  dns.nameserver = settings_.outsideNameserver;
  dns.timeout = std::chrono::seconds(settings_.outsideTimeoutSeconds);
  outside::AddressSourceConfig address;
  address.order = settings_.outsideAddressSources;
  address.timeout = std::chrono::seconds(settings_.outsideTimeoutSeconds);
  address.myipUrl = settings_.outsideMyipUrl;
  address.myipCaFile = settings_.outsideMyipCaFile;
  // myip_name or myip_resolver "": the DNS source is off.
  address.myipName = settings_.outsideMyipResolver.empty() ? "" : settings_.outsideMyipName;
  address.myipResolver = dns;
  address.myipResolver.nameserver = settings_.outsideMyipResolver;
  const TimePoint now = clock_.now();
  worker_ = std::thread([this, config = std::move(config), dns, address = std::move(address), now] {
    outside::ResolvResolver resolver(dns);
    std::vector<std::unique_ptr<outside::AddressSource>> owned;
    if (config.publicAddress == "auto") owned = outside::makeAddressSources(address);
    std::vector<outside::AddressSource*> sources;
    for (const auto& s : owned) sources.push_back(s.get());
    auto report = outside::runChecks(config, resolver, sources, now);
    loop_.post([this, report = std::move(report)]() mutable { finish(std::move(report)); });
  });
}

void OutsideCheck::finish(outside::OutsideReport report) {
  if (worker_.joinable()) worker_.join();
  running_ = false;
  const auto fresh = outside::carryOver(last_, report);
  last_ = std::move(report);
  writer_.saveOutsideReport(outside::toJson(last_), [](Result<void> saved) {
    if (!saved) log::error(saved.error().message);
  });
  if (!last_.address.error.empty()) {
    log::warning("Outside check: " + last_.address.error);
  } else {
    for (const auto& note : last_.address.notes) log::info("Outside check: " + note);
  }
  if (!fresh.empty()) {
    const std::string cause = outside::likelyCause(evidence_(), last_.address.shared);
    for (const auto& b : last_.blocklists) {
      if (std::find(fresh.begin(), fresh.end(), b.zone) == fresh.end()) continue;
      store::AlertRecord alert;
      alert.time = clock_.now();
      alert.principal = "outside:" + b.zone;
      alert.tier = "hard";
      alert.summary = "This household's public address " + last_.address.address +
                      " is listed on the blocklist " + b.zone;
      alert.reasons = {"Listed on " + b.zone + " since " + formatRfc3339(b.firstSeen) +
                           (b.reason.empty() ? "" : ": " + b.reason),
                       "Likely cause: " + cause};
      nlohmann::ordered_json evidence{
          {"kind", "blocklist"}, {"zone", b.zone},     {"address", last_.address.address},
          {"codes", b.codes},    {"reason", b.reason}, {"first_seen", formatRfc3339(b.firstSeen)},
          {"cause", cause}};
      alert.evidence = evidence.dump();
      log::warning(alert.summary + " (likely cause: " + cause + ")");
      alerts_.raise(std::move(alert));
    }
  }
  const std::string json = reportJson();
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& done : waiting) done(json);
  if (finished_) finished_(json);
}

// The Guard methods of the outside check, and the evidence it names as a likely cause.

outside::LocalEvidence Guard::Impl::outsideEvidence() {
  outside::LocalEvidence e;
  const auto since = clock.now() - std::chrono::hours(24) * options.settings.outsideCauseDays;
  std::set<std::string> named;
  // The detector's hard tier is a quarantine; audit and tamper alerts carry a "kind".
  if (auto list = listAlerts(1000); list) {
    for (const auto& a : *list) {
      if (a.tier != "hard" || a.time < since || a.path.empty()) continue;
      auto evidence = nlohmann::json::parse(a.evidence, nullptr, false);
      if (evidence.is_object() && evidence.contains("kind")) continue;
      if (!named.insert(a.path).second) continue;
      e.quarantined.push_back(a.path + ", quarantined " + formatRfc3339(a.time));
    }
  } else {
    log::error(list.error().message);
  }
  for (const auto& p : self.programs()) {
    if (p.state != rules::ProgramState::Quarantined) continue;
    if (!named.insert(p.identity.path).second) continue;
    e.quarantined.push_back(p.identity.path + ", quarantined now");
  }
  for (const auto& entry : host->summary().entries) {
    const auto& r = entry.result;
    if (r.relay != "open") continue;
    e.openRelays.push_back(r.address + ":" + std::to_string(r.port) +
                           (r.path.empty() ? "" : " (" + r.path + ")"));
  }
  return e;
}

std::string Guard::outsideReport() const { return impl_->outside->reportJson(); }

void Guard::runOutsideCheck(std::function<void(const std::string&)> done) {
  impl_->outside->run(std::move(done));
}

}  // namespace mailguard::service
