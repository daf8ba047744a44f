#include "detector_codec.hpp"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

namespace mailguard::service {
namespace {

using nlohmann::json;
namespace det = mailguard::detector;

// 2: the principal has the executable's path ("path"). Version 1 text is still read (see
// principalFrom).
constexpr int kSnapshotVersion = 2;
constexpr int kPathlessVersion = 1;

std::int64_t micros(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}
TimePoint fromMicros(std::int64_t us) { return TimePoint{std::chrono::microseconds(us)}; }

template <class E, std::size_t N>
std::optional<E> enumFrom(std::string_view name) {
  for (std::size_t i = 0; i < N; ++i) {
    const auto e = static_cast<E>(i);
    if (det::toString(e) == name) return e;
  }
  return std::nullopt;
}
constexpr std::size_t kEvidenceCount = static_cast<std::size_t>(det::kLastEvidence) + 1;
constexpr std::size_t kTierCount = 3;

json principalJson(const det::Principal& p) {
  return json{{"sha256", p.exeSha256},
              {"path", p.exePath},
              {"script", p.scriptPath},
              {"script_sha256", p.scriptSha256},
              {"uid", p.uid}};
}

// The executable's path in a version 1 principal, which had none: `program` (the
// ProgramIdentity::display() of the principal's last attempt, "path" or "path script")
// names the file that connected last. Empty when it does not parse.
std::string pathOfProgram(const std::string& program, const std::string& script) {
  std::string path = program;
  if (!script.empty()) {
    const std::string suffix = " " + script;
    if (path.size() <= suffix.size() ||
        path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0) {
      return {};
    }
    path.resize(path.size() - suffix.size());
  }
  return !path.empty() && path.front() == '/' ? path : std::string();
}

// `program`: for version 1 text, where the path comes from (see pathOfProgram).
det::Principal principalFrom(const json& j, const std::string& program = {}) {
  det::Principal p;
  p.exeSha256 = j.at("sha256").get<std::string>();
  p.scriptPath = j.at("script").get<std::string>();
  p.scriptSha256 = j.at("script_sha256").get<std::string>();
  p.uid = j.at("uid").get<std::uint32_t>();
  p.exePath =
      j.contains("path") ? j.at("path").get<std::string>() : pathOfProgram(program, p.scriptPath);
  return p;
}

json reasonsJson(const std::vector<det::Reason>& reasons) {
  auto arr = json::array();
  for (const auto& r : reasons) {
    arr.push_back(
        {{"evidence", det::toString(r.evidence)}, {"weight", r.weight}, {"count", r.count}});
  }
  return arr;
}

json alertJson(const det::Alert& a) {
  return json{{"time", micros(a.time)},
              {"principal", principalJson(a.principal)},
              {"program", a.program},
              {"tier", det::toString(a.tier)},
              {"channel", det::toString(a.channel)},
              {"score", a.score},
              {"threshold", a.threshold},
              {"reasons", reasonsJson(a.reasons)},
              {"attempts_24h", a.attempts24h},
              {"destinations_24h", a.destinations24h},
              {"failures_24h", a.failures24h},
              {"sample_destinations", a.sampleDestinations}};
}

det::Alert alertFrom(const json& j) {
  det::Alert a;
  a.time = fromMicros(j.at("time").get<std::int64_t>());
  a.program = j.at("program").get<std::string>();
  a.principal = principalFrom(j.at("principal"), a.program);
  a.tier =
      enumFrom<det::Tier, kTierCount>(j.at("tier").get<std::string>()).value_or(det::Tier::None);
  a.channel = enumFrom<det::Channel, det::kChannelCount>(j.at("channel").get<std::string>())
                  .value_or(det::Channel::Direct);
  a.score = j.at("score").get<double>();
  a.threshold = j.at("threshold").get<double>();
  for (const auto& r : j.at("reasons")) {
    const auto e = enumFrom<det::Evidence, kEvidenceCount>(r.at("evidence").get<std::string>());
    if (!e) continue;  // evidence a later version added: dropped, the rest kept
    a.reasons.push_back({*e, r.at("weight").get<double>(), r.at("count").get<unsigned>()});
  }
  a.attempts24h = j.at("attempts_24h").get<unsigned>();
  a.destinations24h = j.at("destinations_24h").get<unsigned>();
  a.failures24h = j.at("failures_24h").get<unsigned>();
  a.sampleDestinations = j.at("sample_destinations").get<std::vector<std::string>>();
  return a;
}

}  // namespace

std::string encodeSnapshot(const det::PrincipalSnapshot& s) {
  auto ws = json::array();
  for (const auto& e : s.workingSet) {
    ws.push_back({{"destination", e.destination},
                  {"first_seen", micros(e.firstSeen)},
                  {"last_seen", micros(e.lastSeen)},
                  {"last_success", micros(e.lastSuccess)},
                  {"success_days", e.successDays},
                  {"learned", e.learned}});
  }
  auto updated = json::array();
  for (const TimePoint t : s.cusumUpdated) updated.push_back(micros(t));
  auto mailed = json::array();
  for (const auto& [domain, last] : s.mailedDomains) {
    mailed.push_back({{"domain", domain}, {"last", micros(last)}});
  }
  json j{{"version", kSnapshotVersion},
         {"principal", principalJson(s.principal)},
         {"program", s.program},
         {"id_class", static_cast<int>(s.idClass)},
         {"mta", s.mta},
         {"cusum", s.cusum},
         {"cusum_updated", updated},
         {"soft_alerted", s.softAlerted},
         {"last_activity", micros(s.lastActivity)},
         {"working_set", ws},
         {"mailed_domains", mailed},
         {"quarantined", s.quarantined}};
  j["quarantine_alert"] = s.quarantineAlert ? alertJson(*s.quarantineAlert) : json(nullptr);
  return j.dump();
}

std::optional<det::PrincipalSnapshot> decodeSnapshot(std::string_view text) {
  const auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    const int version = j.at("version").get<int>();
    if (version != kSnapshotVersion && version != kPathlessVersion) return std::nullopt;
    det::PrincipalSnapshot s;
    s.program = j.at("program").get<std::string>();
    // Version 1 charged every copy of a file to one principal; its state goes to the file
    // that connected last (its `program`), the best guess at whose it mostly is. Text
    // that names no file is not guessed at: dropped, as text this version did not write.
    s.principal = principalFrom(j.at("principal"), s.program);
    if (version == kPathlessVersion && s.principal.exePath.empty()) return std::nullopt;
    const int idClass = j.at("id_class").get<int>();
    if (idClass < 0 || idClass > static_cast<int>(det::IdentityClass::Suspicious)) {
      return std::nullopt;
    }
    s.idClass = static_cast<det::IdentityClass>(idClass);
    s.mta = j.at("mta").get<bool>();
    s.cusum = j.at("cusum").get<std::array<double, det::kChannelCount>>();
    s.lastActivity = fromMicros(j.at("last_activity").get<std::int64_t>());
    // Added later in version 1. Absent: every channel counts as updated at the last
    // activity, as before they were kept.
    s.cusumUpdated.fill(s.lastActivity);
    if (j.contains("cusum_updated")) {
      const auto updated =
          j.at("cusum_updated").get<std::array<std::int64_t, det::kChannelCount>>();
      for (std::size_t i = 0; i < det::kChannelCount; ++i) {
        s.cusumUpdated[i] = fromMicros(updated[i]);
      }
    }
    s.softAlerted = j.value("soft_alerted", false);
    for (const auto& e : j.at("working_set")) {
      det::WorkingSetEntry w;
      w.destination = e.at("destination").get<std::string>();
      w.firstSeen = fromMicros(e.at("first_seen").get<std::int64_t>());
      w.lastSeen = fromMicros(e.at("last_seen").get<std::int64_t>());
      w.lastSuccess = fromMicros(e.at("last_success").get<std::int64_t>());
      w.successDays = e.at("success_days").get<std::uint32_t>();
      w.learned = e.at("learned").get<bool>();
      s.workingSet.push_back(std::move(w));
    }
    // Added later in version 2 (S1's memory). Absent: none, as before they were kept.
    if (j.contains("mailed_domains")) {
      for (const auto& m : j.at("mailed_domains")) {
        s.mailedDomains.emplace_back(m.at("domain").get<std::string>(),
                                     fromMicros(m.at("last").get<std::int64_t>()));
      }
    }
    s.quarantined = j.at("quarantined").get<bool>();
    if (const auto& qa = j.at("quarantine_alert"); !qa.is_null()) s.quarantineAlert = alertFrom(qa);
    return s;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::string encodeBulk(const BulkDeclaration& b) {
  return json{{"version", kSnapshotVersion},
              {"principal", principalJson(b.principal)},
              {"recipients", b.recipients},
              {"until", micros(b.until)}}
      .dump();
}

std::optional<BulkDeclaration> decodeBulk(std::string_view text) {
  const auto j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  try {
    const int version = j.at("version").get<int>();
    if (version != kSnapshotVersion && version != kPathlessVersion) return std::nullopt;
    // Version 1 has no path (and no program to take it from): exePath stays empty, and
    // the caller declares it again for every path the program was seen at.
    BulkDeclaration b;
    b.principal = principalFrom(j.at("principal"));
    b.recipients = j.at("recipients").get<unsigned>();
    b.until = fromMicros(j.at("until").get<std::int64_t>());
    return b;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

std::string alertEvidence(const det::Alert& a, const std::vector<std::string>& parents) {
  auto j = alertJson(a);
  j.erase("time");
  j["principal_key"] = a.principal.key();
  j["parents"] = parents;
  return j.dump();
}

std::vector<std::string> alertReasons(const det::Alert& a) {
  std::vector<std::string> out;
  for (const auto& r : a.reasons) {
    char weight[32];
    std::snprintf(weight, sizeof weight, "%.2f", r.weight);
    out.push_back(std::string(det::toString(r.evidence)) + " " + weight + " nats x" +
                  std::to_string(r.count));
  }
  return out;
}

}  // namespace mailguard::service
