#include "backscatter.hpp"

#include <nlohmann/json.hpp>

#include "guard_impl.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {

TimePoint BackscatterMonitor::wall(MonoTime t) const {
  if (t == MonoTime{}) return TimePoint{};
  return clock_.now() - std::chrono::duration_cast<TimePoint::duration>(clock_.monotonic() - t);
}

void BackscatterMonitor::onLine(const mta::InboundLine& line, const std::string& log) {
  if (auto flood = watch_.onLine(line, clock_.monotonic())) raise(*flood, log);
}

void BackscatterMonitor::raise(const mta::BackscatterFigures& f, const std::string& log) {
  store::AlertRecord record;
  record.time = clock_.now();
  record.principal = "backscatter";
  record.path = log;
  record.tier = "soft";  // nothing is quarantined: the mail is someone else's forgery
  std::string to;
  for (const auto& r : f.recipients) to += (to.empty() ? "" : ", ") + r;
  record.summary = "Backscatter: " + std::to_string(f.lastHour) + " bounces within an hour, " +
                   std::to_string(f.unmatchedLastHour) +
                   " for mail this PC did not send (someone sends spam in " + to + "'s name)";
  record.reasons = {
      std::to_string(f.unmatchedLastHour) + " of " + std::to_string(f.lastHour) +
          " bounces (DSNs) in the last hour match no mail sent from here (flood: " +
          std::to_string(config_.floodPerHour) + " an hour)",
      "A filter for your mail program: guardctl backscatter",
      "Publishing SPF (-all) and DMARC (p=reject) for your domain makes receivers refuse "
      "the forgeries instead of bouncing them to you"};
  // "kind" first: clients tell the alert's kind by it.
  nlohmann::ordered_json evidence{{"kind", "backscatter"},
                                  {"dsns_last_hour", f.lastHour},
                                  {"unmatched_last_hour", f.unmatchedLastHour},
                                  {"flood_per_hour", config_.floodPerHour},
                                  {"recipients", f.recipients},
                                  {"log", log}};
  record.evidence = evidence.dump();
  log::warning("mta: " + record.summary);
  alertId_ = alerts_.raise(std::move(record));
}

BackscatterInfo BackscatterMonitor::info() const {
  const auto f = watch_.figures(clock_.monotonic());
  BackscatterInfo out;
  out.watching = watching_;
  out.flooding = f.flooding;
  out.lastHour = f.lastHour;
  out.unmatchedLastHour = f.unmatchedLastHour;
  out.total = f.total;
  out.unmatchedTotal = f.unmatchedTotal;
  out.since = wall(f.since);
  out.last = wall(f.last);
  out.recipients = f.recipients;
  out.floodPerHour = config_.floodPerHour;
  out.alertId = f.flooding ? alertId_ : 0;
  return out;
}

BackscatterInfo Guard::backscatter() const {
  return impl_->backscatter ? impl_->backscatter->info() : BackscatterInfo{};
}

}  // namespace mailguard::service
