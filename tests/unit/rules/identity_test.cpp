#include "mailguard/rules/identity.hpp"

#include <gtest/gtest.h>

namespace mailguard::rules {
namespace {

std::optional<std::string> script(std::string_view exe, std::vector<std::string> argv) {
  return scriptArgument(exe, argv);
}

TEST(IsInterpreter, RecognisesPlainAndVersionedNames) {
  for (const char* name : {"python3", "python3.11", "python", "perl", "perl5.36", "ruby", "ruby3.1",
                           "node", "nodejs", "php", "php8.2", "sh", "bash", "dash", "java"}) {
    EXPECT_TRUE(isInterpreter(name)) << name;
  }
}

TEST(IsInterpreter, RejectsOtherPrograms) {
  for (const char* name : {"thunderbird", "sendmail", "python-config", "perldoc", "bashbug",
                           "javac", "nodemon", "", "pythonx"}) {
    EXPECT_FALSE(isInterpreter(name)) << name;
  }
}

TEST(ScriptArgument, ReturnsNothingForAProgramThatIsNoInterpreter) {
  EXPECT_EQ(script("thunderbird", {"thunderbird", "mail.py"}), std::nullopt);
}

TEST(ScriptArgument, ReturnsNothingWithoutArguments) {
  EXPECT_EQ(script("python3", {"python3"}), std::nullopt);
  EXPECT_EQ(script("python3", {}), std::nullopt);
}

TEST(ScriptArgumentPython, FindsThePlainScript) {
  EXPECT_EQ(script("python3", {"python3", "a.py", "--to", "x"}), "a.py");
}

TEST(ScriptArgumentPython, SkipsFlagOptions) {
  EXPECT_EQ(script("python3", {"python3", "-u", "-B", "/opt/bot.py"}), "/opt/bot.py");
  EXPECT_EQ(script("python3.11", {"python3.11", "-uBs", "bot.py"}), "bot.py");
}

TEST(ScriptArgumentPython, SkipsTheValuesOfWAndX) {
  EXPECT_EQ(script("python3", {"python3", "-W", "ignore", "bot.py"}), "bot.py");
  EXPECT_EQ(script("python3", {"python3", "-X", "dev", "-W", "x", "bot.py"}), "bot.py");
  EXPECT_EQ(script("python3", {"python3", "-Wignore", "bot.py"}), "bot.py");
  EXPECT_EQ(script("python3", {"python3", "-uX", "utf8", "bot.py"}), "bot.py");
}

TEST(ScriptArgumentPython, ReturnsNothingForCodeModuleOrStdin) {
  EXPECT_EQ(script("python3", {"python3", "-c", "import smtplib"}), std::nullopt);
  EXPECT_EQ(script("python3", {"python3", "-uc", "import smtplib"}), std::nullopt);
  EXPECT_EQ(script("python3", {"python3", "-m", "smtpd"}), std::nullopt);
  EXPECT_EQ(script("python3", {"python3", "-"}), std::nullopt);
  EXPECT_EQ(script("python3", {"python3", "-u"}), std::nullopt);
}

TEST(ScriptArgumentPython, TakesTheArgumentAfterDoubleDash) {
  EXPECT_EQ(script("python3", {"python3", "--", "-odd-name.py"}), "-odd-name.py");
}

TEST(ScriptArgumentPython, SkipsLongOptionsAndTheirValues) {
  EXPECT_EQ(script("python3", {"python3", "--check-hash-based-pycs", "always", "bot.py"}),
            "bot.py");
  EXPECT_EQ(script("python3", {"python3", "--check-hash-based-pycs=never", "bot.py"}), "bot.py");
}

TEST(ScriptArgumentPerl, FindsTheScriptAfterIncludeDirectories) {
  EXPECT_EQ(script("perl", {"perl", "-I", "/opt/lib", "spam.pl"}), "spam.pl");
  EXPECT_EQ(script("perl", {"perl", "-I/opt/lib", "-w", "spam.pl"}), "spam.pl");
  EXPECT_EQ(script("perl", {"perl", "-MNet::SMTP", "spam.pl"}), "spam.pl");
  EXPECT_EQ(script("perl5.36", {"perl5.36", "-0777", "-T", "spam.pl"}), "spam.pl");
}

TEST(ScriptArgumentPerl, ReturnsNothingForInlineCode) {
  EXPECT_EQ(script("perl", {"perl", "-e", "print 1"}), std::nullopt);
  EXPECT_EQ(script("perl", {"perl", "-E", "say 1"}), std::nullopt);
  EXPECT_EQ(script("perl", {"perl", "-lane", "print"}), std::nullopt);
  EXPECT_EQ(script("perl", {"perl", "-"}), std::nullopt);
}

TEST(ScriptArgumentPerl, TreatsTheRestOfAnInPlaceOptionAsItsExtension) {
  // perl -pie: "e" is the backup extension, not -e (the well-known perlrun trap).
  EXPECT_EQ(script("perl", {"perl", "-pie", "s/a/b/", "file"}), "s/a/b/");
}

TEST(ScriptArgumentShell, FindsTheScriptAfterOptions) {
  EXPECT_EQ(script("bash", {"bash", "-x", "script.sh"}), "script.sh");
  EXPECT_EQ(script("bash", {"bash", "-eu", "-o", "pipefail", "script.sh"}), "script.sh");
  EXPECT_EQ(script("bash", {"bash", "+x", "--norc", "script.sh"}), "script.sh");
  EXPECT_EQ(script("bash", {"bash", "--rcfile", "/etc/rc", "script.sh"}), "script.sh");
  EXPECT_EQ(script("sh", {"sh", "-", "script.sh"}), "script.sh");
  EXPECT_EQ(script("dash", {"dash", "/usr/lib/x/hook"}), "/usr/lib/x/hook");
}

TEST(ScriptArgumentShell, ReturnsNothingForCommandStringsAndStdin) {
  EXPECT_EQ(script("bash", {"bash", "-c", "mail x"}), std::nullopt);
  EXPECT_EQ(script("bash", {"bash", "-xc", "mail x", "script.sh"}), std::nullopt);
  EXPECT_EQ(script("sh", {"sh", "-s", "arg"}), std::nullopt);
  EXPECT_EQ(script("bash", {"bash"}), std::nullopt);
}

TEST(ScriptArgumentNode, FindsTheScriptAfterOptions) {
  EXPECT_EQ(script("node", {"node", "app.js"}), "app.js");
  EXPECT_EQ(script("node", {"node", "--max-old-space-size=512", "-r", "dotenv/config", "app.js"}),
            "app.js");
  EXPECT_EQ(script("nodejs", {"nodejs", "--require", "x", "--inspect", "app.js"}), "app.js");
}

TEST(ScriptArgumentNode, ReturnsNothingForEvalPrintAndStdin) {
  EXPECT_EQ(script("node", {"node", "-e", "require('net')"}), std::nullopt);
  EXPECT_EQ(script("node", {"node", "-pe", "1"}), std::nullopt);
  EXPECT_EQ(script("node", {"node", "--eval=1"}), std::nullopt);
  EXPECT_EQ(script("node", {"node", "-"}), std::nullopt);
}

TEST(ScriptArgumentRuby, FindsTheScriptAfterOptions) {
  EXPECT_EQ(script("ruby", {"ruby", "-I", "lib", "-rnet/smtp", "-w", "bot.rb"}), "bot.rb");
  EXPECT_EQ(script("ruby", {"ruby", "-e", "puts 1"}), std::nullopt);
}

TEST(ScriptArgumentPhp, FindsTheFileAndIgnoresInlineCode) {
  EXPECT_EQ(script("php", {"php", "-d", "memory_limit=1G", "mailer.php"}), "mailer.php");
  EXPECT_EQ(script("php8.2", {"php8.2", "-f", "mailer.php", "--", "x"}), "mailer.php");
  EXPECT_EQ(script("php", {"php", "-r", "mail('a','b','c');"}), std::nullopt);
  EXPECT_EQ(script("php", {"php", "--", "args"}), std::nullopt);
}

TEST(ScriptArgumentJava, TakesTheJarFile) {
  EXPECT_EQ(script("java", {"java", "-Xmx1g", "-Dmail.debug=true", "-jar", "/opt/app.jar", "x"}),
            "/opt/app.jar");
  EXPECT_EQ(script("java", {"java", "-jar"}), std::nullopt);
}

TEST(ScriptArgumentJava, SkipsTheClassPathAndTakesTheMainClass) {
  EXPECT_EQ(script("java", {"java", "-cp", "/opt/lib/*", "com.example.Mailer"}),
            "com.example.Mailer");
  EXPECT_EQ(script("java", {"java", "--class-path", "a.jar", "Main.java"}), "Main.java");
  EXPECT_EQ(script("java", {"java", "-m", "mail/com.example.Main"}), std::nullopt);
}

TEST(IsUnsafeLocation, FlagsWorldWritableAndHiddenPlaces) {
  for (const char* path :
       {"/tmp/x", "/dev/shm/x", "/var/tmp/x", "/home/u/.cache/x", "/root/.local/bin/x", "memfd:x",
        "/memfd:x", "/tmp", "/home/u/.x", "/usr/../tmp/x", "//tmp/x", "/run/user/1000/x",
        "relative/x", "//memfd:x", "/./memfd:x (deleted)"}) {
    EXPECT_TRUE(isUnsafeLocation(path)) << path;
  }
}

TEST(IsUnsafeLocation, AcceptsOrdinaryPlaces) {
  for (const char* path : {"/home/u/bin/x", "/usr/bin/x", "/usr/lib/thunderbird/thunderbird",
                           "/tmpfoo/x", "/opt/.hidden/x", "/rooted/.x"}) {
    EXPECT_FALSE(isUnsafeLocation(path)) << path;
  }
}

TEST(NormalisePath, ResolvesDotsAndEmptyParts) {
  EXPECT_EQ(normalisePath("/home/u", "bot.py"), "/home/u/bot.py");
  EXPECT_EQ(normalisePath("/home/u", "./bin/../bot.py"), "/home/u/bot.py");
  EXPECT_EQ(normalisePath("/home/u", "/usr//bin/./x"), "/usr/bin/x");
  EXPECT_EQ(normalisePath("/home/u/", "../../../../etc"), "/etc");
  EXPECT_EQ(normalisePath("/", ".."), "/");
  EXPECT_EQ(normalisePath("/srv", ""), "/srv");
}

TEST(IsHexSha256, AcceptsOnlySixtyFourLowercaseHexDigits) {
  const std::string good(64, 'a');
  EXPECT_TRUE(isHexSha256(good));
  EXPECT_TRUE(isHexSha256("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
  EXPECT_FALSE(isHexSha256(std::string(63, 'a')));
  EXPECT_FALSE(isHexSha256(std::string(65, 'a')));
  EXPECT_FALSE(isHexSha256(std::string(64, 'A')));
  EXPECT_FALSE(isHexSha256(std::string(64, 'g')));
  EXPECT_FALSE(isHexSha256(""));
}

TEST(ProgramIdentity, DisplaysThePathAndTheScript) {
  ProgramIdentity id;
  id.path = "/usr/bin/python3.11";
  EXPECT_EQ(id.display(), "/usr/bin/python3.11");
  EXPECT_FALSE(id.isInterpreted());
  id.scriptPath = "/home/u/a.py";
  EXPECT_EQ(id.display(), "/usr/bin/python3.11 /home/u/a.py");
  EXPECT_TRUE(id.isInterpreted());
}

TEST(Shebang, NamesTheInterpreterAndItsOneArgument) {
  const auto swaks = parseShebang("#!/usr/bin/perl -w\nuse strict;\n");
  ASSERT_TRUE(swaks);
  EXPECT_EQ(swaks->interpreter, "/usr/bin/perl");
  EXPECT_EQ(swaks->argument, "-w");
  EXPECT_FALSE(swaks->viaEnv);
  const auto spaced = parseShebang("#! /bin/sh\r\n");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->interpreter, "/bin/sh");
  EXPECT_EQ(spaced->argument, "");
}

TEST(Shebang, LooksThroughEnvToTheProgramItRuns) {
  const auto py = parseShebang("#!/usr/bin/env python3\nimport smtplib\n");
  ASSERT_TRUE(py);
  EXPECT_EQ(py->interpreter, "python3");
  EXPECT_TRUE(py->viaEnv);
  const auto split = parseShebang("#!/usr/bin/env -S -u HOME PYTHONX=1 python3 -u\n");
  ASSERT_TRUE(split);
  EXPECT_EQ(split->interpreter, "python3");
  EXPECT_EQ(split->argument, "-u");
}

TEST(Shebang, IsNoneForABinaryOrAnEmptyLine) {
  EXPECT_EQ(parseShebang("\x7f"
                         "ELF\x02\x01"),
            std::nullopt);
  EXPECT_EQ(parseShebang("#!   \nx"), std::nullopt);
  EXPECT_EQ(parseShebang("#!/usr/bin/env -i\n"), std::nullopt);
}

}  // namespace
}  // namespace mailguard::rules
