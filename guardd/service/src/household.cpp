#include "household.hpp"

#include <nlohmann/json.hpp>

#include "guard_impl.hpp"
#include "mailguard/audit/household.hpp"
#include "mailguard/rules/ruleset.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

std::string hostKey(const std::string& address, std::uint64_t port) {
  return address + ":" + std::to_string(port);
}

nlohmann::ordered_json resultJson(const audit::HouseholdScan& scan) {
  nlohmann::ordered_json subnets = nlohmann::ordered_json::array();
  for (const auto& s : scan.subnets) {
    subnets.push_back(
        {{"cidr", s.cidr}, {"configured", s.configured}, {"host_address", s.hostAddress}});
  }
  nlohmann::ordered_json hosts = nlohmann::ordered_json::array();
  for (const auto& h : scan.hosts) {
    nlohmann::ordered_json findings = nlohmann::ordered_json::array();
    for (const auto& f : audit::householdFindings(h)) {
      findings.push_back({{"severity", std::string(audit::toString(f.severity))},
                          {"kind", f.kind},
                          {"title", f.title},
                          {"fix", f.fix}});
    }
    hosts.push_back({{"address", h.address},
                     {"port", h.port},
                     {"subnet", h.subnet},
                     {"relay", std::string(audit::toString(h.relay))},
                     {"accepted", h.accepted},
                     {"auth_in_clear", h.authInClear},
                     {"reason", h.reason},
                     {"banner", h.dialogue.banner},
                     {"findings", findings}});
  }
  return {{"subnets", subnets},
          {"connects", scan.stats.connects},
          {"took_ms", scan.stats.took.count()},
          {"hosts", hosts}};
}

// "address:port" of the open relays in a stored result.
std::set<std::string> openRelaysIn(const std::string& json) {
  std::set<std::string> out;
  const auto parsed = nlohmann::json::parse(json, nullptr, false);
  if (parsed.is_discarded() || !parsed.contains("hosts")) return out;
  for (const auto& h : parsed["hosts"]) {
    if (h.value("relay", "") == "open") {
      out.insert(hostKey(h.value("address", ""), h.value("port", std::uint64_t{0})));
    }
  }
  return out;
}

}  // namespace

HouseholdScanner::HouseholdScanner(const rules::Settings& settings, EventLoop& loop,
                                   const Clock& clock, store::SqliteStore& reader,
                                   store::StoreWriter& writer, AlertSink& alerts)
    : settings_(settings), loop_(loop), clock_(clock), writer_(writer), alerts_(alerts) {
  auto stored = reader.loadHouseholdScan();
  if (!stored) {
    log::warning("household scan: " + stored.error().message);
  } else if (stored->has_value()) {
    info_.finished = (*stored)->finished;
    info_.error = (*stored)->error;
    info_.json = (*stored)->json;
    alerted_ = openRelaysIn(info_.json);
  }
}

HouseholdScanner::~HouseholdScanner() {
  stop_ = true;
  if (worker_.joinable()) worker_.join();
}

void HouseholdScanner::scan(Done<HouseholdInfo> done) {
  waiting_.push_back(std::move(done));
  if (info_.running) return;
  info_.running = true;
  if (worker_.joinable()) worker_.join();
  log::info("household scan: started on the owner's request");
  // Copied here, on the loop thread: the worker reads nothing of guardd's state.
  audit::ScanOptions options;
  options.perSecond = settings_.householdProbesPerSecond;
  options.inFlight = settings_.householdInFlight;
  options.timeout = std::chrono::milliseconds(settings_.householdConnectTimeoutMs);
  const int minPrefix = static_cast<int>(settings_.householdMinPrefix);
  const std::size_t maxSubnets = settings_.householdMaxSubnets;
  worker_ = std::thread([this, options, minPrefix, maxSubnets]() mutable {
    // guardd's own connects to mail ports would meet its own output rule and be queued
    // to itself: the allow mark lets the kernel accept them first.
    options.stop = &stop_;
    options.socketMark = rules::kMarkAllow;
    audit::AuditOptions probe;
    probe.socketMark = rules::kMarkAllow;
    Outcome outcome;
    auto scan = audit::scanHousehold(options, probe, minPrefix, maxSubnets);
    if (!scan) {
      outcome.error = scan.error().message;
      outcome.json = "{}";
    } else if (scan->subnets.empty()) {
      outcome.error = "this computer has no IPv4 subnet of its own to scan";
      outcome.json = resultJson(*scan).dump();
    } else {
      outcome.json = resultJson(*scan).dump();
    }
    loop_.post([this, outcome = std::move(outcome)]() mutable { finish(std::move(outcome)); });
  });
}

void HouseholdScanner::finish(Outcome outcome) {
  if (worker_.joinable()) worker_.join();
  info_.running = false;
  info_.finished = clock_.now();
  info_.error = outcome.error;
  info_.json = outcome.json;
  log::info("household scan: " + (info_.error.empty() ? std::string("done") : info_.error));

  // One alert per open relay that the scan before did not find.
  std::set<std::string> open;
  const auto parsed = nlohmann::json::parse(info_.json, nullptr, false);
  if (!parsed.is_discarded() && parsed.contains("hosts")) {
    for (const auto& h : parsed["hosts"]) {
      if (h.value("relay", "") != "open") continue;
      const std::string address = h.value("address", "");
      const auto port = h.value("port", std::uint64_t{0});
      const std::string key = hostKey(address, port);
      open.insert(key);
      if (alerted_.contains(key)) continue;
      std::string title = "The mail server at " + key + " relays mail for anyone on your LAN";
      std::string fix;
      for (const auto& f : h["findings"]) {
        if (f.value("kind", "") == "open-relay-lan") {
          title = f.value("title", title);
          fix = f.value("fix", "");
        }
      }
      store::AlertRecord record;
      record.time = info_.finished;
      record.principal = "household:" + key;
      record.path = address;
      // Critical as this PC's own open relay is; nothing here is quarantined.
      record.tier = "hard";
      record.summary = title;
      record.reasons = {title, fix,
                        "Another computer of the household: change it there. "
                        "guardctl audit --hosts shows the whole scan"};
      nlohmann::ordered_json evidence{{"kind", "household-relay"},
                                      {"host", address},
                                      {"port", port},
                                      {"subnet", h.value("subnet", "")},
                                      {"accepted", h.value("accepted", nlohmann::json::array())},
                                      {"banner", h.value("banner", "")},
                                      {"fix", fix}};
      record.evidence = evidence.dump();
      log::warning("household scan: " + title);
      alerts_.raise(std::move(record));
    }
  }
  alerted_ = std::move(open);

  store::HouseholdScanRow row{info_.finished, info_.error, info_.json};
  writer_.saveHouseholdScan(std::move(row), [](Result<void> saved) {
    if (!saved) log::error(saved.error().message);
  });
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& done : waiting) done(info_);
}

void Guard::scanHousehold(Done<HouseholdInfo> done) {
  if (!impl_->household) {
    done(makeError("the household scan needs guardd to be running"));
    return;
  }
  impl_->household->scan(std::move(done));
}

HouseholdInfo Guard::household() const {
  return impl_->household ? impl_->household->info() : HouseholdInfo{};
}

}  // namespace mailguard::service
