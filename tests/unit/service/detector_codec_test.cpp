#include "detector_codec.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace mailguard::service {
namespace {

namespace det = mailguard::detector;

TimePoint at(std::int64_t seconds) { return TimePoint{std::chrono::seconds(seconds)}; }

det::Alert sampleAlert() {
  det::Alert a;
  a.time = at(1'700'000'100);
  a.principal = {"ab12", "/usr/bin/python3", "/home/ann/bot.py", "cd34", 1000};
  a.program = "/usr/bin/python3 /home/ann/bot.py";
  a.tier = det::Tier::Hard;
  a.channel = det::Channel::Direct;
  a.score = 9.5;
  a.threshold = 6.9;
  a.reasons = {{det::Evidence::DirectToMx, 6.0, 4}, {det::Evidence::NewDestination, 2.0, 4}};
  a.attempts24h = 5;
  a.destinations24h = 4;
  a.failures24h = 1;
  a.sampleDestinations = {"198.51.100.7", "203.0.113.9"};
  return a;
}

TEST(DetectorCodec, SnapshotSurvivesARoundTripWithItsQuarantineAlert) {
  det::PrincipalSnapshot s;
  s.principal = {"ab12", "/usr/bin/python3", "/home/ann/bot.py", "cd34", 1000};
  s.program = "/usr/bin/python3 /home/ann/bot.py";
  s.idClass = det::IdentityClass::Suspicious;
  s.mta = false;
  s.cusum = {0.5, 9.5, 1.25};
  s.cusumUpdated = {at(1'600'000'000), at(1'700'000'100), TimePoint{}};
  s.softAlerted = true;
  s.lastActivity = at(1'700'000'100);
  s.workingSet = {
      {"198.51.100.0/24", at(1'700'000'000), at(1'700'000'050), at(1'700'000'040), 2, false},
      {"local-mta", at(1'600'000'000), at(1'700'000'000), at(1'700'000'000), 5, true}};
  s.mailedDomains = {{"example.org", at(1'700'000'050)}, {"example.net", at(1'600'000'000)}};
  s.quarantined = true;
  s.quarantineAlert = sampleAlert();
  const auto decoded = decodeSnapshot(encodeSnapshot(s));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, s);
}

TEST(DetectorCodec, SnapshotWithoutAlertRoundTrips) {
  det::PrincipalSnapshot s;
  s.principal = {"ef56", "/usr/bin/msmtp", "", "", 0};
  s.program = "/usr/bin/msmtp";
  s.idClass = det::IdentityClass::Packaged;
  const auto decoded = decodeSnapshot(encodeSnapshot(s));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, s);
  // A principal this version made without a path (the evaluation's) is read as written.
  s.principal.exePath.clear();
  EXPECT_EQ(decodeSnapshot(encodeSnapshot(s)), s);
}

// Every Evidence value, the second version's (DNS, presence, RCPT replies) and the last
// one included, survives a stored alert: the codec maps names back over the whole enum.
TEST(DetectorCodec, AlertWithEveryEvidenceRoundTrips) {
  det::PrincipalSnapshot s;
  s.principal = {"ab12", "/usr/bin/python3", "/home/ann/bot.py", "cd34", 1000};
  s.quarantined = true;
  s.quarantineAlert = sampleAlert();
  s.quarantineAlert->reasons = {{det::Evidence::MxLookup, 1.5, 1},
                                {det::Evidence::UserAway, 1.5, 1},
                                {det::kLastEvidence, -0.13, 2}};
  const auto decoded = decodeSnapshot(encodeSnapshot(s));
  ASSERT_TRUE(decoded.has_value());
  ASSERT_TRUE(decoded->quarantineAlert.has_value());
  EXPECT_EQ(decoded->quarantineAlert->reasons, s.quarantineAlert->reasons);
}

// Snapshots stored before the per-channel times were kept: every channel counts as
// updated at the last activity (the old behaviour), no soft alert outstanding, no mailed
// domains (S1's memory, kept since issue 17's fourth round).
TEST(DetectorCodec, SnapshotWithoutChannelTimesTakesTheLastActivity) {
  det::PrincipalSnapshot s;
  s.principal = {"ef56", "/usr/bin/msmtp", "", "", 0};
  s.cusum = {0, 5.5, 0};
  s.cusumUpdated = {at(1), at(2), at(3)};
  s.softAlerted = true;
  s.lastActivity = at(1'700'000'100);
  s.mailedDomains = {{"example.org", at(1'700'000'050)}};
  auto j = nlohmann::json::parse(encodeSnapshot(s));
  j.erase("cusum_updated");
  j.erase("soft_alerted");
  j.erase("mailed_domains");  // nor the mailed domains: none
  const auto decoded = decodeSnapshot(j.dump());
  ASSERT_TRUE(decoded.has_value());
  for (const TimePoint t : decoded->cusumUpdated) EXPECT_EQ(t, s.lastActivity);
  EXPECT_FALSE(decoded->softAlerted);
  EXPECT_TRUE(decoded->mailedDomains.empty());
  EXPECT_EQ(decoded->cusum, s.cusum);
}

// Version 1 text as an earlier guardd wrote it: no "path" in any principal.
nlohmann::json asVersion1(const det::PrincipalSnapshot& s) {
  auto j = nlohmann::json::parse(encodeSnapshot(s));
  j["version"] = 1;
  j["principal"].erase("path");
  if (!j["quarantine_alert"].is_null()) j["quarantine_alert"]["principal"].erase("path");
  return j;
}

// A version 1 principal was every copy of the content at once; it is read as the file
// that connected last (its program), quarantine and evidence included.
TEST(DetectorCodec, Version1SnapshotIsTheFileThatConnectedLast) {
  det::PrincipalSnapshot s;
  s.principal = {"ab12", "/usr/bin/python3", "/home/ann/bot.py", "cd34", 1000};
  s.program = "/usr/bin/python3 /home/ann/bot.py";
  s.cusum = {0, 9.5, 0};
  s.lastActivity = at(1'700'000'100);
  s.cusumUpdated.fill(s.lastActivity);
  s.quarantined = true;
  s.quarantineAlert = sampleAlert();
  const auto decoded = decodeSnapshot(asVersion1(s).dump());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, s);
  EXPECT_EQ(decoded->principal.exePath, "/usr/bin/python3");
  EXPECT_EQ(decoded->quarantineAlert->principal.exePath, "/usr/bin/python3");

  det::PrincipalSnapshot plain;
  plain.principal = {"ef56", "/home/ann/bin/msmtp", "", "", 1000};
  plain.program = "/home/ann/bin/msmtp";
  const auto decodedPlain = decodeSnapshot(asVersion1(plain).dump());
  ASSERT_TRUE(decodedPlain.has_value());
  EXPECT_EQ(decodedPlain->principal, plain.principal);
}

// No file to give the state to: not guessed at (the caller logs it and starts afresh).
TEST(DetectorCodec, Version1SnapshotThatNamesNoFileIsNotRead) {
  det::PrincipalSnapshot s;
  s.principal = {"ab12", "/usr/bin/python3", "/home/ann/bot.py", "cd34", 1000};
  s.program = "/usr/bin/python3 /home/ann/other.py";  // not its script: not its text
  EXPECT_FALSE(decodeSnapshot(asVersion1(s).dump()).has_value());
  s.program = "";
  EXPECT_FALSE(decodeSnapshot(asVersion1(s).dump()).has_value());
  s.principal.scriptPath.clear();
  s.program = "relative/msmtp";
  EXPECT_FALSE(decodeSnapshot(asVersion1(s).dump()).has_value());
}

// A version 1 bulk declaration has no path: read with an empty one, which the caller
// declares again for every path the program was seen at.
TEST(DetectorCodec, Version1BulkDeclarationHasNoPath) {
  const BulkDeclaration b{{"ab12", "/usr/bin/python3", "/srv/list.py", "cd34", 1000},
                          800,
                          TimePoint{std::chrono::seconds(1'700'014'400)}};
  auto j = nlohmann::json::parse(encodeBulk(b));
  j["version"] = 1;
  j["principal"].erase("path");
  const auto decoded = decodeBulk(j.dump());
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->principal.exePath, "");
  EXPECT_EQ(decoded->principal.scriptPath, "/srv/list.py");
  EXPECT_EQ(decoded->recipients, 800U);
}

TEST(DetectorCodec, RejectsTextItDidNotWrite) {
  EXPECT_FALSE(decodeSnapshot("").has_value());
  EXPECT_FALSE(decodeSnapshot("not json").has_value());
  EXPECT_FALSE(decodeSnapshot("[]").has_value());
  EXPECT_FALSE(decodeSnapshot(R"({"version": 2})").has_value());
  EXPECT_FALSE(decodeSnapshot(R"({"version": 3})").has_value());
  EXPECT_FALSE(decodeSnapshot(R"({"version": 1, "principal": {}})").has_value());
}

TEST(DetectorCodec, EvidenceCarriesCountsDestinationsReasonsAndParents) {
  const auto j = nlohmann::json::parse(alertEvidence(sampleAlert(), {"42 /usr/bin/bash"}));
  EXPECT_EQ(j["tier"], "hard");
  EXPECT_EQ(j["channel"], "DIRECT");
  EXPECT_EQ(j["attempts_24h"], 5);
  EXPECT_EQ(j["sample_destinations"][0], "198.51.100.7");
  EXPECT_EQ(j["reasons"][0]["evidence"], "direct-to-mx");
  EXPECT_EQ(j["reasons"][0]["count"], 4);
  EXPECT_EQ(j["parents"][0], "42 /usr/bin/bash");
  EXPECT_EQ(j["principal_key"], "ab12:/usr/bin/python3:/home/ann/bot.py:cd34/1000");
  EXPECT_EQ(j["principal"]["path"], "/usr/bin/python3");
}

TEST(DetectorCodec, ReasonsReadHeaviestFirstWithWeightAndCount) {
  const auto reasons = alertReasons(sampleAlert());
  ASSERT_EQ(reasons.size(), 2U);
  EXPECT_EQ(reasons[0], "direct-to-mx 6.00 nats x4");
  EXPECT_EQ(reasons[1], "new-destination 2.00 nats x4");
}

}  // namespace
}  // namespace mailguard::service

namespace mailguard::service {
namespace {

TEST(DetectorCodec, BulkDeclarationRoundTripsAndRejectsOtherText) {
  const BulkDeclaration b{{"ab12", "/usr/bin/python3", "/srv/list.py", "cd34", 1000},
                          800,
                          TimePoint{std::chrono::seconds(1'700'014'400)}};
  const auto decoded = decodeBulk(encodeBulk(b));
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(*decoded, b);
  EXPECT_FALSE(decodeBulk("{}").has_value());
  EXPECT_FALSE(decodeBulk(encodeSnapshot({})).has_value());
}

}  // namespace
}  // namespace mailguard::service
