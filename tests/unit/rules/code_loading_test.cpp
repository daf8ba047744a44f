#include "mailguard/rules/code_loading.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace mailguard::rules {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::vector<std::string> names(const std::vector<CodeLoading>& found) {
  std::vector<std::string> out;
  for (const auto& f : found) out.push_back(f.name);
  return out;
}

std::vector<std::string> envFindings(std::string_view exe, std::vector<std::string> env) {
  return names(codeLoadingFindings(exe, {std::string(exe), "/srv/x"}, env));
}

std::vector<std::string> argFindings(std::string_view exe, std::vector<std::string> argv) {
  return names(codeLoadingFindings(exe, argv, {}));
}

struct VariableCase {
  std::string_view exe;
  std::string_view variable;
};

class EveryVariable : public ::testing::TestWithParam<VariableCase> {};

TEST_P(EveryVariable, IsAFindingForTheProgramThatReadsIt) {
  const auto& c = GetParam();
  const std::string entry = std::string(c.variable) + "=/home/ann/.x/evil";
  const auto found =
      codeLoadingFindings(c.exe, {std::string(c.exe), "/srv/news"}, {"HOME=/", entry});
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].name, c.variable);
  EXPECT_FALSE(found[0].option);
  EXPECT_EQ(found[0].value, "/home/ann/.x/evil");
  EXPECT_TRUE(isCodeLoadingName(c.variable));
}

TEST_P(EveryVariable, IsNoFindingWhenEmpty) {
  const auto& c = GetParam();
  EXPECT_THAT(envFindings(c.exe, {std::string(c.variable) + "="}), IsEmpty());
}

INSTANTIATE_TEST_SUITE_P(
    CodeLoading, EveryVariable,
    ::testing::Values(
        VariableCase{"msmtp", "LD_PRELOAD"}, VariableCase{"python3", "LD_PRELOAD"},
        VariableCase{"swaks", "LD_LIBRARY_PATH"}, VariableCase{"perl", "LD_AUDIT"},
        VariableCase{"python3.11", "PYTHONPATH"}, VariableCase{"python3", "PYTHONINSPECT"},
        VariableCase{"perl5.36", "PERL5LIB"}, VariableCase{"perl", "PERL5OPT"},
        VariableCase{"bash", "BASH_ENV"}, VariableCase{"dash", "ENV"}, VariableCase{"bash", "ENV"},
        VariableCase{"ruby", "RUBYOPT"}, VariableCase{"ruby3.1", "RUBYLIB"},
        VariableCase{"node", "NODE_OPTIONS"}, VariableCase{"nodejs", "NODE_OPTIONS"},
        VariableCase{"java", "JAVA_TOOL_OPTIONS"}, VariableCase{"java", "_JAVA_OPTIONS"},
        VariableCase{"java", "JDK_JAVA_OPTIONS"}));

TEST(CodeLoading, IgnoresAnotherInterpretersVariables) {
  EXPECT_THAT(envFindings("msmtp", {"PYTHONPATH=/x", "PERL5OPT=-MBot", "BASH_ENV=/x"}), IsEmpty());
  EXPECT_THAT(envFindings("python3", {"PERL5LIB=/x", "NODE_OPTIONS=-r x", "ENV=/x"}), IsEmpty());
  EXPECT_THAT(envFindings("dash", {"BASH_ENV=/x"}), IsEmpty());
}

TEST(CodeLoading, CountsPythonStartupOnlyWhenPythonIsInteractive) {
  EXPECT_THAT(envFindings("python3", {"PYTHONSTARTUP=/home/a/s.py"}), IsEmpty());
  EXPECT_THAT(envFindings("python3", {"PYTHONSTARTUP=/home/a/s.py", "PYTHONINSPECT=1"}),
              ElementsAre("PYTHONINSPECT", "PYTHONSTARTUP"));
  EXPECT_THAT(names(codeLoadingFindings("python3", {"python3", "-i", "/srv/x.py"},
                                        {"PYTHONSTARTUP=/home/a/s.py"})),
              ElementsAre("-i", "PYTHONSTARTUP"));
}

TEST(CodeLoading, PythonIgnoresItsVariablesWithMinusEOrIsolated) {
  EXPECT_THAT(names(codeLoadingFindings("python3", {"python3", "-E", "/srv/x.py"},
                                        {"PYTHONPATH=/x", "LD_PRELOAD=/x.so"})),
              ElementsAre("LD_PRELOAD"));
  EXPECT_THAT(names(codeLoadingFindings("python3", {"python3", "-sI", "/srv/x.py"},
                                        {"PYTHONPATH=/x", "PYTHONINSPECT=1"})),
              IsEmpty());
}

TEST(CodeLoading, FindsPythonInspectOption) {
  EXPECT_THAT(argFindings("python3", {"python3", "-i", "/srv/x.py"}), ElementsAre("-i"));
  EXPECT_THAT(argFindings("python3", {"python3", "-ui", "/srv/x.py"}), ElementsAre("-i"));
  EXPECT_THAT(argFindings("python3", {"python3", "-W", "ignore", "-i", "/srv/x.py"}),
              ElementsAre("-i"));
  // After the script, -c or -m the arguments are the program's own.
  EXPECT_THAT(argFindings("python3", {"python3", "/srv/x.py", "-i"}), IsEmpty());
  EXPECT_THAT(argFindings("python3", {"python3", "-c", "pass", "-i"}), IsEmpty());
  EXPECT_THAT(argFindings("python3", {"python3", "-Wi", "/srv/x.py"}), IsEmpty());
}

TEST(CodeLoading, FindsPerlModuleAndIncludeOptions) {
  EXPECT_THAT(argFindings("perl", {"perl", "-MBot", "/srv/x.pl"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-mBot", "/srv/x.pl"}), ElementsAre("-m"));
  EXPECT_THAT(argFindings("perl", {"perl", "-I", "/home/a/lib", "/srv/x.pl"}), ElementsAre("-I"));
  EXPECT_THAT(argFindings("perl", {"perl", "-I/home/a/lib", "/srv/x.pl"}), ElementsAre("-I"));
  EXPECT_THAT(argFindings("perl", {"perl", "-d:Trace", "/srv/x.pl"}), ElementsAre("-d"));
  // Clustered behind flags, octal separators and unicode flags.
  EXPECT_THAT(argFindings("perl", {"perl", "-wMBot", "/srv/x.pl"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-lMBot", "/srv/x.pl"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-0777MBot", "/srv/x.pl"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-0xffMBot", "/srv/x.pl"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-CSDAMBot", "/srv/x.pl"}), ElementsAre("-M"));
  // After -e code the switches go on; -i's extension ends at a blank.
  EXPECT_THAT(argFindings("perl", {"perl", "-e", "1", "-MBot"}), ElementsAre("-M"));
  EXPECT_THAT(argFindings("perl", {"perl", "-i.bak -MBot", "/srv/x.pl"}), ElementsAre("-M"));
  // Plain flags and what follows the script are not findings.
  EXPECT_THAT(argFindings("perl", {"perl", "-w", "-T", "/srv/x.pl", "-MBot"}), IsEmpty());
  EXPECT_THAT(argFindings("perl", {"perl", "-e", "-MBot"}), IsEmpty());
  EXPECT_THAT(argFindings("perl", {"perl", "--", "-MBot"}), IsEmpty());
}

TEST(CodeLoading, FindsRubyRequireAndInclude) {
  EXPECT_THAT(argFindings("ruby", {"ruby", "-rbot", "/srv/x.rb"}), ElementsAre("-r"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "-r", "bot", "/srv/x.rb"}), ElementsAre("-r"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "-wI/a", "/srv/x.rb"}), ElementsAre("-I"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "-W0rbot", "/srv/x.rb"}), ElementsAre("-r"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "-e", "1", "-rbot"}), ElementsAre("-r"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "/srv/x.rb", "-rbot"}), IsEmpty());
  EXPECT_THAT(argFindings("ruby", {"ruby", "-C", "-rbot", "/srv/x.rb"}), IsEmpty());
}

TEST(CodeLoading, FindsNodeLoaders) {
  EXPECT_THAT(argFindings("node", {"node", "-r", "./bot.js", "/srv/x.js"}),
              ElementsAre("--require"));
  EXPECT_THAT(argFindings("node", {"node", "--require=./bot.js", "/srv/x.js"}),
              ElementsAre("--require"));
  EXPECT_THAT(argFindings("node", {"node", "--import", "./bot.mjs", "/srv/x.js"}),
              ElementsAre("--import"));
  EXPECT_THAT(argFindings("node", {"node", "--loader", "./l.mjs", "/srv/x.js"}),
              ElementsAre("--loader"));
  EXPECT_THAT(argFindings("node", {"node", "--experimental-loader=./l.mjs", "/srv/x.js"}),
              ElementsAre("--experimental-loader"));
  EXPECT_THAT(argFindings("node", {"node", "--title", "--require", "/srv/x.js"}), IsEmpty());
  EXPECT_THAT(argFindings("node", {"node", "/srv/x.js", "-r", "x"}), IsEmpty());
}

TEST(CodeLoading, FindsJavaAgents) {
  EXPECT_THAT(argFindings("java", {"java", "-javaagent:/home/a/bot.jar", "-jar", "/srv/m.jar"}),
              ElementsAre("-javaagent"));
  EXPECT_THAT(argFindings("java", {"java", "-agentpath:/home/a/libbot.so", "Main"}),
              ElementsAre("-agentpath"));
  EXPECT_THAT(argFindings("java", {"java", "-agentlib:jdwp=transport=dt_socket", "Main"}),
              ElementsAre("-agentlib"));
  EXPECT_THAT(argFindings("java", {"java", "@/home/a/opts", "Main"}), ElementsAre("@argfile"));
  EXPECT_THAT(argFindings("java", {"java", "-cp", "-javaagent:x", "Main"}), IsEmpty());
  EXPECT_THAT(argFindings("java", {"java", "-jar", "/srv/m.jar", "-javaagent:x"}), IsEmpty());
}

TEST(CodeLoading, ReportsEachNameOnceAndKeepsTheOrderFound) {
  const auto found = codeLoadingFindings(
      "perl", {"perl", "-MA", "-MB", "/srv/x.pl"},
      {"PERL5OPT=-MBot", "LD_PRELOAD=/a.so", "PERL5OPT=-MOther", "LD_PRELOAD="});
  EXPECT_THAT(names(found), ElementsAre("-M", "PERL5OPT", "LD_PRELOAD"));
  EXPECT_EQ(found[0].value, "A");
  EXPECT_EQ(found[1].value, "-MBot");
}

TEST(CodeLoading, ShortensAndCleansValuesForMessages) {
  const auto found = codeLoadingFindings(
      "python3", {"python3"}, {"PYTHONPATH=/home/ann/a/very/long/path/that/goes/on\n\x1b[31m"});
  ASSERT_EQ(found.size(), 1U);
  EXPECT_EQ(found[0].value, "/home/ann/a/very/long/pa...");
  EXPECT_EQ(found[0].display(), "PYTHONPATH set (/home/ann/a/very/long/pa...)");
  const auto ctl = codeLoadingFindings("perl", {"perl", "-MB\x01t"}, {});
  ASSERT_EQ(ctl.size(), 1U);
  EXPECT_EQ(ctl[0].display(), "option -M (B?t)");
  EXPECT_EQ(environUnreadable("Permission denied").display(),
            "environment unreadable (Permission denied)");
}

TEST(CodeLoading, ToleratesOddInput) {
  EXPECT_THAT(names(codeLoadingFindings("", {}, {})), IsEmpty());
  EXPECT_THAT(names(codeLoadingFindings("perl", {}, {"", "=", "==", "LD_PRELOAD", "=x"})),
              IsEmpty());
  EXPECT_THAT(argFindings("perl", {"perl", "-"}), IsEmpty());
  EXPECT_THAT(argFindings("perl", {"perl", "-I"}), ElementsAre("-I"));
  EXPECT_THAT(argFindings("ruby", {"ruby", "-r"}), ElementsAre("-r"));
  EXPECT_THAT(argFindings("node", {"node", "--require"}), ElementsAre("--require"));
  EXPECT_THAT(argFindings("perl", {"perl", "-0x"}), IsEmpty());
  EXPECT_THAT(argFindings("perl", {"perl", "-i "}), IsEmpty());
  EXPECT_THAT(argFindings("python3", {"python3", "-W"}), IsEmpty());
  EXPECT_THAT(envFindings("python3", {std::string("PYTHONPATH=\0x", 13)}),
              ElementsAre("PYTHONPATH"));
}

TEST(CodeLoading, FiltersWhatTheApprovalAllows) {
  const auto found =
      codeLoadingFindings("perl", {"perl", "/srv/x.pl"}, {"PERL5LIB=/a", "PERL5OPT=-MBot"});
  EXPECT_THAT(names(notAllowed(found, {"PERL5LIB"})), ElementsAre("PERL5OPT"));
  EXPECT_THAT(names(notAllowed(found, {"PERL5OPT", "PERL5LIB"})), IsEmpty());
  EXPECT_THAT(names(notAllowed({environUnreadable("x")}, {"PERL5LIB"})), ElementsAre("environ"));
}

TEST(CodeLoading, SplitsAndChecksAllowEnvNames) {
  EXPECT_THAT(splitNames(" PYTHONPATH, PERL5OPT,,PYTHONPATH "),
              ElementsAre("PYTHONPATH", "PERL5OPT"));
  EXPECT_THAT(splitNames(""), IsEmpty());
  EXPECT_EQ(joinNames({"A", "B"}), "A,B");
  for (const char* n : {"LD_PRELOAD", "-M", "-r", "--require", "--import", "-javaagent", "-i"}) {
    EXPECT_TRUE(isCodeLoadingName(n)) << n;
  }
  for (const char* n : {"PATH", "", "environ", "pythonpath", "-w"}) {
    EXPECT_FALSE(isCodeLoadingName(n)) << n;
  }
}

}  // namespace
}  // namespace mailguard::rules
