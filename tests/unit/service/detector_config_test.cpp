#include "detector_config.hpp"

#include <gtest/gtest.h>

#include <set>

#include "mailguard/rules/detector_settings.hpp"
#include "mailguard/rules/settings.hpp"

namespace mailguard::service {
namespace {

TEST(DetectorConfig, EveryDetectorSettingOfGuarddConfIsApplied) {
  std::map<std::string, double> all;
  for (const auto& spec : rules::detectorSettingSpecs()) all[std::string(spec.name)] = spec.min;
  std::vector<std::string> unknown;
  (void)detectorConfig(all, &unknown);
  EXPECT_TRUE(unknown.empty()) << unknown.front();
}

TEST(DetectorConfig, EveryAppliedNameCanBeSetInGuarddConf) {
  std::set<std::string> settable;
  for (const auto& spec : rules::detectorSettingSpecs()) settable.emplace(spec.name);
  for (const auto& name : detectorConfigNames()) {
    EXPECT_TRUE(settable.contains(name)) << name << " is applied but guardd.conf refuses it";
  }
  auto parsed = rules::parseSettings("[detector]\ninteractive = -0.5\n", "guardd.conf");
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_DOUBLE_EQ(detectorConfig(parsed.value().detector).interactive, -0.5);
}

TEST(DetectorConfig, OverridesReplaceDefaultsAndLeaveTheRest) {
  const auto defaults = detector::DetectorConfig{};
  const auto c = detectorConfig(
      {{"hard_threshold", 12.5}, {"burst_window_seconds", 30}, {"h3_connections", 40}});
  EXPECT_DOUBLE_EQ(c.hardThreshold, 12.5);
  EXPECT_EQ(c.burstWindow, std::chrono::seconds(30));
  EXPECT_EQ(c.h3Connections, 40U);
  EXPECT_DOUBLE_EQ(c.softThreshold, defaults.softThreshold);
  EXPECT_EQ(c.workingSetSize, defaults.workingSetSize);
}

TEST(DetectorConfig, GuarddConfDetectorTableIsCheckedWithFileAndLine) {
  auto ok = rules::parseSettings("[detector]\nhard_threshold = 12.5\nh3_connections = 40\n",
                                 "guardd.conf");
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_DOUBLE_EQ(ok->detector.at("hard_threshold"), 12.5);
  EXPECT_DOUBLE_EQ(ok->detector.at("h3_connections"), 40);

  auto unknown = rules::parseSettings("[detector]\n\nhard_treshold = 12\n", "guardd.conf");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("guardd.conf:3: detector.hard_treshold: unknown key"),
            std::string::npos)
      << unknown.error().message;

  auto range = rules::parseSettings("[detector]\nsoft_threshold = -1\n", "guardd.conf");
  ASSERT_FALSE(range);
  EXPECT_NE(range.error().message.find("guardd.conf:2: detector.soft_threshold: out of range"),
            std::string::npos)
      << range.error().message;

  auto type = rules::parseSettings("[detector]\nh3_connections = 2.5\n", "guardd.conf");
  ASSERT_FALSE(type);
  EXPECT_NE(type.error().message.find("expected an integer"), std::string::npos);
}

}  // namespace
}  // namespace mailguard::service
