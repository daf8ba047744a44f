#include "mailguard/rules/settings.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <tuple>

namespace mailguard::rules {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

std::string fixture(const std::string& name) {
  return std::string(MAILGUARD_TEST_DATA) + "/settings/" + name;
}

// The error of loading a fixture, which must fail.
std::string errorOf(const std::string& name) {
  const Result<Settings> r = loadSettings(fixture(name), false);
  if (r.has_value()) return "(no error)";
  return r.error().message;
}

// "PATH:LINE: " for a fixture, the prefix every content error starts with.
std::string at(const std::string& name, int line) {
  return fixture(name) + ":" + std::to_string(line) + ": ";
}

TEST(SettingsDefaults, MatchTheDocumentedValues) {
  const Settings s;
  EXPECT_THAT(s.mailPorts, ElementsAre(25, 465, 587, 2525));
  EXPECT_EQ(s.queueNumber, 4025);
  EXPECT_FALSE(s.removeRulesOnExit);
  EXPECT_EQ(s.queueMaxLength, 4096u);
  EXPECT_EQ(s.retentionDays, 90u);
  EXPECT_EQ(s.maxAttempts, 1'000'000u);
  EXPECT_EQ(s.logLevel, "info");
  EXPECT_EQ(s.kernelIdentity, "auto");
  EXPECT_EQ(s.kernelCgroup, "");
  EXPECT_EQ(s.kernelMarkBit, 0x00100000u);
}

TEST(SettingsFile, ReadsEveryKey) {
  const Result<Settings> r = loadSettings(fixture("good.conf"), false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_THAT(r->mailPorts, ElementsAre(587, 25, 10025));
  EXPECT_EQ(r->queueNumber, 7);
  EXPECT_TRUE(r->removeRulesOnExit);
  EXPECT_EQ(r->queueMaxLength, 1024u);
  EXPECT_EQ(r->retentionDays, 30u);
  EXPECT_EQ(r->maxAttempts, 5000u);
  EXPECT_EQ(r->logLevel, "debug");
  EXPECT_EQ(r->kernelIdentity, "off");
  EXPECT_EQ(r->kernelCgroup, "/sys/fs/cgroup/mailguard-test");
  EXPECT_EQ(r->kernelMarkBit, 0x100u);
}

TEST(SettingsFile, TheInstalledDefaultFileGivesTheBuiltInDefaults) {
  const Result<Settings> r =
      loadSettings(std::string(MAILGUARD_TEST_DATA) + "/../../install/guardd.conf", false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Settings d;
  EXPECT_EQ(r->mailPorts, d.mailPorts);
  EXPECT_EQ(r->queueNumber, d.queueNumber);
  EXPECT_EQ(r->kernelIdentity, d.kernelIdentity);
  EXPECT_EQ(r->kernelCgroup, d.kernelCgroup);
  EXPECT_EQ(r->kernelMarkBit, d.kernelMarkBit);
}

// The commented keys of [backscatter] and [household] in install/guardd.conf, uncommented,
// are the built-in defaults: what the owner reads there is what guardd does.
TEST(SettingsFile, TheInstalledFilesBackscatterAndHouseholdValuesAreTheDefaults) {
  std::ifstream in(std::string(MAILGUARD_TEST_DATA) + "/../../install/guardd.conf");
  ASSERT_TRUE(in.good());
  std::string text;
  std::string table;
  int keys = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("[")) table = line;
    if (table != "[backscatter]" && table != "[household]") continue;
    if (line.starts_with("[")) {
      text += line + "\n";
    } else if (line.starts_with("# ") && line.find(" = ") != std::string::npos &&
               line.find(' ', 2) == line.find(" = ")) {
      text += line.substr(2) + "\n";  // "# key = value"
      ++keys;
    }
  }
  EXPECT_EQ(keys, 7);
  const Result<Settings> r = parseSettings(text, "guardd.conf");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  const Settings d;
  EXPECT_EQ(r->backscatterFloodPerHour, d.backscatterFloodPerHour);
  EXPECT_EQ(r->backscatterRememberHours, d.backscatterRememberHours);
  EXPECT_EQ(r->householdMaxSubnets, d.householdMaxSubnets);
  EXPECT_EQ(r->householdMinPrefix, d.householdMinPrefix);
  EXPECT_EQ(r->householdProbesPerSecond, d.householdProbesPerSecond);
  EXPECT_EQ(r->householdInFlight, d.householdInFlight);
  EXPECT_EQ(r->householdConnectTimeoutMs, d.householdConnectTimeoutMs);
}

TEST(SettingsFile, KeepsDefaultsForKeysItDoesNotSet) {
  const Result<Settings> r = loadSettings(fixture("partial.conf"), false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->logLevel, "warning");
  EXPECT_EQ(r->mailPorts, Settings{}.mailPorts);
  EXPECT_EQ(r->queueNumber, Settings{}.queueNumber);
}

TEST(SettingsFile, TreatsAnEmptyFileAsDefaults) {
  const Result<Settings> r = loadSettings(fixture("empty.conf"), false);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->mailPorts, Settings{}.mailPorts);
  EXPECT_EQ(r->logLevel, "info");
}

TEST(SettingsFile, UsesDefaultsForAMissingDefaultFile) {
  const Result<Settings> r = loadSettings(fixture("does-not-exist.conf"), true);
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->queueNumber, 4025);
}

TEST(SettingsFile, RefusesAMissingFileThatWasAskedFor) {
  EXPECT_EQ(errorOf("does-not-exist.conf"),
            fixture("does-not-exist.conf") + ": cannot read: No such file or directory");
}

TEST(SettingsFile, RefusesADirectoryEvenWhenMissingWouldBeFine) {
  const Result<Settings> r = loadSettings(std::string(MAILGUARD_TEST_DATA) + "/settings", true);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message,
            std::string(MAILGUARD_TEST_DATA) + "/settings: cannot read: Is a directory");
}

TEST(SettingsErrors, NameAnUnknownTableWithItsLine) {
  EXPECT_THAT(errorOf("unknown_table.conf"),
              StartsWith(at("unknown_table.conf", 4) + "[mial]: unknown table"));
}

TEST(SettingsErrors, NameAnUnknownKeyWithItsLine) {
  EXPECT_EQ(errorOf("unknown_key.conf"),
            at("unknown_key.conf", 6) +
                "enforcement.remove_rules_on_exti: unknown key (known: queue, "
                "remove_rules_on_exit, queue_max_length)");
}

TEST(SettingsErrors, NameAKeyOutsideAnyTable) {
  EXPECT_THAT(errorOf("top_level_key.conf"),
              StartsWith(at("top_level_key.conf", 2) + "ports: unknown key"));
}

TEST(SettingsErrors, NameAnUnknownNestedTable) {
  EXPECT_THAT(errorOf("nested_unknown.conf"),
              StartsWith(at("nested_unknown.conf", 4) + "mail.extra: unknown key"));
}

TEST(SettingsErrors, RefuseASectionThatIsNotATable) {
  EXPECT_EQ(errorOf("section_not_table.conf"),
            at("section_not_table.conf", 1) + "mail: expected a table, got an integer");
}

TEST(SettingsErrors, RefuseAPortOutOfRangeOnItsOwnLine) {
  EXPECT_EQ(errorOf("port_out_of_range.conf"),
            at("port_out_of_range.conf", 5) + "mail.ports: 70000 is not a port (1-65535)");
}

TEST(SettingsErrors, RefusePortZero) {
  EXPECT_EQ(errorOf("port_zero.conf"),
            at("port_zero.conf", 2) + "mail.ports: 0 is not a port (1-65535)");
}

TEST(SettingsErrors, RefuseADuplicatePortWhereItRepeats) {
  EXPECT_EQ(errorOf("duplicate_port.conf"),
            at("duplicate_port.conf", 3) + "mail.ports: 25 is listed twice");
}

TEST(SettingsErrors, RefuseAnEmptyPortList) {
  EXPECT_THAT(errorOf("empty_ports.conf"),
              StartsWith(at("empty_ports.conf", 3) + "mail.ports: the list is empty"));
}

TEST(SettingsErrors, RefusePortsThatAreNotAList) {
  EXPECT_EQ(
      errorOf("ports_not_array.conf"),
      at("ports_not_array.conf", 2) + "mail.ports: expected an array of ports, got an integer");
}

TEST(SettingsErrors, RefuseAPortThatIsNotANumber) {
  EXPECT_EQ(errorOf("port_not_integer.conf"),
            at("port_not_integer.conf", 2) + "mail.ports: expected an integer, got a string");
}

TEST(SettingsErrors, RefuseAQuotedNumber) {
  EXPECT_EQ(
      errorOf("queue_wrong_type.conf"),
      at("queue_wrong_type.conf", 2) + "enforcement.queue: expected an integer, got a string");
}

TEST(SettingsErrors, RefuseAFloatWhereAnIntegerBelongs) {
  EXPECT_EQ(errorOf("queue_float.conf"),
            at("queue_float.conf", 3) +
                "enforcement.queue: expected an integer, got a floating-point number");
}

TEST(SettingsErrors, RefuseAQueueNumberBeyondSixteenBits) {
  EXPECT_EQ(errorOf("queue_out_of_range.conf"),
            at("queue_out_of_range.conf", 2) +
                "enforcement.queue: 65536 is not a queue number (0-65535)");
}

TEST(SettingsErrors, RefuseAZeroQueueLength) {
  EXPECT_EQ(errorOf("queue_max_length_zero.conf"),
            at("queue_max_length_zero.conf", 2) +
                "enforcement.queue_max_length: 0 is not a queue length (1-4294967295)");
}

TEST(SettingsErrors, RefuseAWordWhereABooleanBelongs) {
  EXPECT_EQ(errorOf("bool_wrong_type.conf"),
            at("bool_wrong_type.conf", 3) +
                "enforcement.remove_rules_on_exit: expected true or false, got a string");
}

TEST(SettingsErrors, RefuseANegativeRetention) {
  EXPECT_EQ(errorOf("retention_negative.conf"),
            at("retention_negative.conf", 3) +
                "store.attempt_retention_days: -1 is not a number of days (1-4294967295)");
}

TEST(SettingsErrors, RefuseAnAttemptLimitBeyondThirtyTwoBits) {
  EXPECT_THAT(errorOf("max_attempts_too_large.conf"),
              StartsWith(at("max_attempts_too_large.conf", 2) +
                         "store.max_attempts: 4294967296 is not a number of attempts"));
}

TEST(SettingsErrors, RefuseAnUnknownLogLevel) {
  EXPECT_EQ(errorOf("bad_log_level.conf"),
            at("bad_log_level.conf", 3) +
                "log.level: \"verbose\" is not a log level (debug, info, warning, error)");
}

TEST(SettingsErrors, RefuseALogLevelThatIsNotAString) {
  EXPECT_EQ(errorOf("log_level_wrong_type.conf"),
            at("log_level_wrong_type.conf", 2) + "log.level: expected a string, got an integer");
}

// The [kernel] keys, each error on the line of its value.
std::string kernelError(const std::string& line) {
  const Result<Settings> r = parseSettings("[kernel]\n\n" + line + "\n", "guardd.conf");
  if (r.has_value()) return "(no error)";
  return r.error().message;
}

TEST(SettingsKernel, AcceptsAutoAndOffAndAnEmptyOrAbsoluteCgroup) {
  const Result<Settings> r =
      parseSettings("[kernel]\nidentity = \"off\"\ncgroup = \"\"\nmark_bit = 0x80000000\n", "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->kernelIdentity, "off");
  EXPECT_EQ(r->kernelCgroup, "");
  EXPECT_EQ(r->kernelMarkBit, 0x80000000u);
  EXPECT_EQ(kernelError("identity = \"auto\""), "(no error)");
  EXPECT_EQ(kernelError("cgroup = \"/sys/fs/cgroup/user.slice\""), "(no error)");
}

TEST(SettingsKernel, RefusesAnIdentityModeOtherThanAutoOrOff) {
  EXPECT_EQ(kernelError("identity = \"bpf\""),
            "guardd.conf:3: kernel.identity: \"bpf\" is not auto or off");
  EXPECT_EQ(kernelError("identity = true"),
            "guardd.conf:3: kernel.identity: expected a string, got a boolean");
}

TEST(SettingsKernel, RefusesARelativeCgroup) {
  EXPECT_THAT(kernelError("cgroup = \"user.slice\""),
              StartsWith("guardd.conf:3: kernel.cgroup: \"user.slice\" is not an absolute path"));
}

TEST(SettingsKernel, RefusesAMarkThatIsNotExactlyOneBit) {
  EXPECT_EQ(kernelError("mark_bit = 0x00300000"),
            "guardd.conf:3: kernel.mark_bit: 0x00300000 is not exactly one bit");
  EXPECT_THAT(kernelError("mark_bit = 0"),
              StartsWith("guardd.conf:3: kernel.mark_bit: 0 is not a socket mark"));
  EXPECT_THAT(kernelError("mark_bit = 0x100000000"),
              StartsWith("guardd.conf:3: kernel.mark_bit: 4294967296 is not a socket mark"));
  EXPECT_EQ(kernelError("mark_bit = \"0x100\""),
            "guardd.conf:3: kernel.mark_bit: expected an integer, got a string");
}

TEST(SettingsKernel, RefusesABitOfTheVerdictMarks) {
  // 0x6d670001 and 0x6d670002 share bit 16; bits 0 and 1 tell them apart.
  for (const char* bit : {"0x00010000", "0x00000001", "0x00000002", "0x40000000"}) {
    EXPECT_THAT(kernelError(std::string("mark_bit = ") + bit),
                StartsWith(std::string("guardd.conf:3: kernel.mark_bit: ") + bit +
                           " is a bit of guardd's verdict marks"))
        << bit;
  }
}

TEST(SettingsKernel, NamesItsKeysForAnUnknownOne) {
  EXPECT_EQ(kernelError("markbit = 1"),
            "guardd.conf:3: kernel.markbit: unknown key (known: identity, cgroup, mark_bit)");
}

TEST(SettingsErrors, ReportSyntaxErrorsWithLineAndColumn) {
  const std::string e = errorOf("syntax_error.conf");
  EXPECT_THAT(e, StartsWith(fixture("syntax_error.conf") + ":"));
  // FILE:LINE:COLUMN: description, pointing into the unterminated array.
  EXPECT_THAT(e.substr(fixture("syntax_error.conf").size()), MatchesRegex(":[23]:[0-9]+: .+"));
}

TEST(SettingsErrors, ReportADuplicateKeyAsASyntaxError) {
  EXPECT_THAT(errorOf("duplicate_key.conf"), MatchesRegex(".*/duplicate_key\\.conf:3:[0-9]+: .+"));
}

TEST(SettingsText, NamesTheOriginInErrors) {
  const Result<Settings> r = parseSettings("[log]\nlevel = \"loud\"\n", "guardd.conf");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, StartsWith("guardd.conf:2: log.level: "));
}

TEST(SettingsText, AcceptsInlineTablesAndDottedKeys) {
  const Result<Settings> r = parseSettings("mail = { ports = [25] }\nlog.level = \"error\"\n", "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_THAT(r->mailPorts, ElementsAre(25));
  EXPECT_EQ(r->logLevel, "error");
}

TEST(SettingsText, RefusesInvalidUtf8WithoutThrowing) {
  const Result<Settings> r = parseSettings("[log]\nlevel = \"\xff\"\n", "x");
  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().message, StartsWith("x:2:"));
}

TEST(SettingsPresence, InputDevicesAreOffUnlessTurnedOn) {
  EXPECT_FALSE(Settings{}.presenceInputDevices);
  const Result<Settings> on = parseSettings("[presence]\ninput_devices = true\n", "guardd.conf");
  ASSERT_TRUE(on.has_value()) << on.error().message;
  EXPECT_TRUE(on->presenceInputDevices);
}

TEST(SettingsPresence, RefusesAWordAndAnUnknownKeyOnTheirLines) {
  const Result<Settings> word =
      parseSettings("[presence]\n\ninput_devices = \"yes\"\n", "guardd.conf");
  ASSERT_FALSE(word.has_value());
  EXPECT_THAT(word.error().message, StartsWith("guardd.conf:3: presence.input_devices: "));
  const Result<Settings> unknown = parseSettings("[presence]\nkeyboard = true\n", "guardd.conf");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().message,
            "guardd.conf:2: presence.keyboard: unknown key (known: input_devices)");
}

TEST(SettingsText, ReadsTheOutsideSection) {
  const Result<Settings> defaults = parseSettings("", "x");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->outsidePublicAddress, "auto");
  EXPECT_THAT(defaults->outsideBlocklists, ::testing::Contains("zen.spamhaus.org"));
  EXPECT_TRUE(defaults->outsideDomains.empty());
  EXPECT_EQ(defaults->outsideIntervalHours, 24U);

  const Result<Settings> r = parseSettings(
      "[outside]\npublic_address = \"198.18.0.7\"\nblocklists = [\"zen.test-bl.test\"]\n"
      "domains = [\"example.test\", \"other.test\"]\nnameserver = \"127.0.0.1:5353\"\n"
      "myip_name = \"\"\nmyip_resolver = \"\"\ninterval_hours = 0\ntimeout_seconds = 1\n"
      "cause_days = 7\n",
      "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->outsidePublicAddress, "198.18.0.7");
  EXPECT_THAT(r->outsideBlocklists, ElementsAre("zen.test-bl.test"));
  EXPECT_THAT(r->outsideDomains, ElementsAre("example.test", "other.test"));
  EXPECT_EQ(r->outsideNameserver, "127.0.0.1:5353");
  EXPECT_EQ(r->outsideMyipName, "");
  EXPECT_EQ(r->outsideIntervalHours, 0U);
  EXPECT_EQ(r->outsideTimeoutSeconds, 1U);
  EXPECT_EQ(r->outsideCauseDays, 7U);
}

TEST(SettingsText, ReadsWhereThePublicAddressComesFrom) {
  const Result<Settings> defaults = parseSettings("", "x");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_THAT(defaults->outsideAddressSources, ElementsAre("router", "dns"));
  EXPECT_EQ(defaults->outsideMyipUrl, "");

  // The URL may come after the list that needs it.
  const Result<Settings> r = parseSettings(
      "[outside]\naddress_sources = [\"https\", \"router\"]\n"
      "myip_url = \"https://myip.test:8443/ip\"\nmyip_ca_file = \"/tmp/ca.pem\"\n",
      "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_THAT(r->outsideAddressSources, ElementsAre("https", "router"));
  EXPECT_EQ(r->outsideMyipUrl, "https://myip.test:8443/ip");
  EXPECT_EQ(r->outsideMyipCaFile, "/tmp/ca.pem");
}

TEST(SettingsText, RefusesBadOutsideValuesWithTheLine) {
  const std::pair<const char*, const char*> bad[] = {
      {"public_address = \"myrouter\"", "outside.public_address"},
      {"nameserver = \"127.0.0.1:0\"", "outside.nameserver"},
      {"myip_resolver = \"::1\"", "outside.myip_resolver"},
      {"domains = [\"a..test\"]", "outside.domains"},
      {"blocklists = [\"x.test\", \"x.test\"]", "listed twice"},
      {"timeout_seconds = 0", "outside.timeout_seconds"},
      {"address_sources = [\"router\", \"upnp\"]", "\"upnp\" is not an address source"},
      {"address_sources = [\"dns\", \"dns\"]", "listed twice"},
      {"address_sources = []", "the list is empty"},
      {"address_sources = \"router\"", "expected an array"},
      {"address_sources = [\"https\"]", "\"https\" needs [outside] myip_url"},
      {"myip_url = \"http://myip.test/\"", "is not an https:// URL"},
      {"myip_ca_file = \"ca.pem\"", "not an absolute path"},
      {"color = 1", "unknown key"}};
  for (const auto& [line, expected] : bad) {
    const Result<Settings> r = parseSettings(std::string("[outside]\n") + line + "\n", "g.conf");
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_THAT(r.error().message, StartsWith("g.conf:2: ")) << line;
    EXPECT_THAT(r.error().message, HasSubstr(expected)) << line;
  }
}

TEST(SettingsBackscatter, DefaultsAreTheWatchsConstantsAndKeysChangeThem) {
  const Result<Settings> defaults = parseSettings("", "x");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->backscatterFloodPerHour, 20U);
  EXPECT_EQ(defaults->backscatterRememberHours, 72U);
  const Result<Settings> r =
      parseSettings("[backscatter]\nflood_per_hour = 5\nremember_hours = 120\n", "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->backscatterFloodPerHour, 5U);
  EXPECT_EQ(r->backscatterRememberHours, 120U);
}

TEST(SettingsHousehold, DefaultsAreTheScansConstantsAndKeysChangeThem) {
  const Result<Settings> defaults = parseSettings("", "x");
  ASSERT_TRUE(defaults.has_value());
  EXPECT_EQ(defaults->householdMaxSubnets, 4U);
  EXPECT_EQ(defaults->householdMinPrefix, 22U);
  EXPECT_EQ(defaults->householdProbesPerSecond, 100U);
  EXPECT_EQ(defaults->householdInFlight, 32U);
  EXPECT_EQ(defaults->householdConnectTimeoutMs, 1500U);
  const Result<Settings> r = parseSettings(
      "[household]\nmax_subnets = 1\nmin_prefix = 24\nprobes_per_second = 20\nin_flight = 4\n"
      "connect_timeout_ms = 500\n",
      "x");
  ASSERT_TRUE(r.has_value()) << r.error().message;
  EXPECT_EQ(r->householdMaxSubnets, 1U);
  EXPECT_EQ(r->householdMinPrefix, 24U);
  EXPECT_EQ(r->householdProbesPerSecond, 20U);
  EXPECT_EQ(r->householdInFlight, 4U);
  EXPECT_EQ(r->householdConnectTimeoutMs, 500U);
}

TEST(SettingsText, RefusesBackscatterAndHouseholdValuesOutOfBoundsWithTheLine) {
  const std::tuple<const char*, const char*, const char*> bad[] = {
      {"backscatter", "flood_per_hour = 0", "backscatter.flood_per_hour: 0 is not"},
      {"backscatter", "flood_per_hour = 10001", "(1-10000)"},
      {"backscatter", "flood_per_hour = \"20\"", "expected an integer, got a string"},
      {"backscatter", "remember_hours = 721", "backscatter.remember_hours"},
      {"backscatter", "threshold = 5", "unknown key (known: flood_per_hour, remember_hours)"},
      {"household", "max_subnets = 17", "household.max_subnets: 17 is not"},
      {"household", "min_prefix = 8", "household.min_prefix: 8 is not a prefix length (16-30)"},
      {"household", "min_prefix = 31", "household.min_prefix"},
      {"household", "probes_per_second = 0", "household.probes_per_second"},
      {"household", "probes_per_second = 5000", "(1-1000)"},
      {"household", "in_flight = 0", "household.in_flight"},
      {"household", "connect_timeout_ms = 50", "household.connect_timeout_ms"},
      {"household", "connect_timeout_ms = 1.5", "expected an integer, got a floating-point"},
      {"household", "max_hosts = 10", "unknown key"}};
  for (const auto& [table, line, expected] : bad) {
    const Result<Settings> r =
        parseSettings(std::string("# a comment\n[") + table + "]\n\n" + line + "\n", "/etc/g.conf");
    ASSERT_FALSE(r.has_value()) << line;
    EXPECT_THAT(r.error().message, StartsWith("/etc/g.conf:4: ")) << line;
    EXPECT_THAT(r.error().message, HasSubstr(expected)) << line;
  }
}

}  // namespace
}  // namespace mailguard::rules
