#include "mailguard/rules/secrets.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mailguard::rules {
namespace {

using Argv = std::vector<std::string>;

TEST(MaskSecrets, MasksLongPasswordOptionsSeparateAndAttached) {
  EXPECT_EQ(maskSecrets({"swaks", "--auth-password", "s3cret", "--to", "a@b.example"}),
            (Argv{"swaks", "--auth-password", "***", "--to", "a@b.example"}));
  EXPECT_EQ(maskSecrets({"swaks", "--auth-password=s3cret"}),
            (Argv{"swaks", "--auth-password=***"}));
  EXPECT_EQ(maskSecrets({"tool", "--pass", "x"}), (Argv{"tool", "--pass", "***"}));
  EXPECT_EQ(maskSecrets({"tool", "--passwd=x"}), (Argv{"tool", "--passwd=***"}));
  EXPECT_EQ(maskSecrets({"tool", "--smtp-password", "x"}),
            (Argv{"tool", "--smtp-password", "***"}));
  EXPECT_EQ(maskSecrets({"openssl", "-pass", "pass:x"}), (Argv{"openssl", "-pass", "***"}));
  EXPECT_EQ(maskSecrets({"msmtp", "--passwordeval=echo s3cret"}),
            (Argv{"msmtp", "--passwordeval=***"}));
  EXPECT_EQ(maskSecrets({"msmtp", "--passwordeval", "echo s3cret"}),
            (Argv{"msmtp", "--passwordeval", "***"}));
}

TEST(MaskSecrets, MasksKnownClientsShortOptions) {
  EXPECT_EQ(maskSecrets({"/usr/bin/swaks", "-ap", "s3cret", "-p", "587"}),
            (Argv{"/usr/bin/swaks", "-ap", "***", "-p", "587"}));
  EXPECT_EQ(maskSecrets({"/usr/bin/perl", "-w", "/usr/bin/swaks", "-ap", "s3cret"}),
            (Argv{"/usr/bin/perl", "-w", "/usr/bin/swaks", "-ap", "***"}));
  EXPECT_EQ(maskSecrets({"ssmtp", "-auuser", "-aps3cret", "bob@example.org"}),
            (Argv{"ssmtp", "-auuser", "-ap***", "bob@example.org"}));
  EXPECT_EQ(maskSecrets({"sendEmail", "-xu", "me", "-xp", "s3cret"}),
            (Argv{"sendEmail", "-xu", "me", "-xp", "***"}));
  EXPECT_EQ(maskSecrets({"sshpass", "-ps3cret", "ssh", "host"}),
            (Argv{"sshpass", "-p***", "ssh", "host"}));
  EXPECT_EQ(maskSecrets({"mysql", "-ps3cret", "db"}), (Argv{"mysql", "-p***", "db"}));
}

TEST(MaskSecrets, KeepsCurlUserAndMasksItsPassword) {
  EXPECT_EQ(maskSecrets({"curl", "-u", "me:s3cret", "smtp://h"}),
            (Argv{"curl", "-u", "me:***", "smtp://h"}));
  EXPECT_EQ(maskSecrets({"curl", "-ume:s3cret"}), (Argv{"curl", "-ume:***"}));
  EXPECT_EQ(maskSecrets({"curl", "--user", "me:s3cret"}), (Argv{"curl", "--user", "me:***"}));
  EXPECT_EQ(maskSecrets({"curl", "--user=me:s3cret"}), (Argv{"curl", "--user=me:***"}));
  EXPECT_EQ(maskSecrets({"curl", "-svu", "me:s3cret"}), (Argv{"curl", "-svu", "me:***"}));
  EXPECT_EQ(maskSecrets({"curl", "-sume:s3cret"}), (Argv{"curl", "-sume:***"}));
  EXPECT_EQ(maskSecrets({"curl", "-u", "me"}), (Argv{"curl", "-u", "me"}));  // curl prompts
}

TEST(MaskSecrets, MasksPasswordsInUrlsOfAnyScheme) {
  EXPECT_EQ(maskSecrets({"curl", "smtps://me:s3cret@mail.example.org:465"}),
            (Argv{"curl", "smtps://me:***@mail.example.org:465"}));
  EXPECT_EQ(maskSecrets({"x", "--url=smtp://me:p@ss@h/"}), (Argv{"x", "--url=smtp://me:***@h/"}));
  EXPECT_EQ(maskSecrets({"x", "https://u:p@h/a?b=c", "http://v:q@i"}),
            (Argv{"x", "https://u:***@h/a?b=c", "http://v:***@i"}));
  EXPECT_EQ(maskSecrets({"mailx", "-S", "smtp=smtps://me:s3cret@h:465"}),
            (Argv{"mailx", "-S", "smtp=smtps://me:***@h:465"}));
}

TEST(MaskSecrets, MasksKeyValueArguments) {
  EXPECT_EQ(maskSecrets({"mailx", "-S", "smtp-auth-password=s3cret", "-S", "smtp-auth-user=me"}),
            (Argv{"mailx", "-S", "smtp-auth-password=***", "-S", "smtp-auth-user=me"}));
  EXPECT_EQ(maskSecrets({"mutt", "-e", "set smtp_pass=s3cret; set smtp_user=me"}),
            (Argv{"mutt", "-e", "set smtp_pass=***; set smtp_user=me"}));
  EXPECT_EQ(maskSecrets({"env", "SMTP_PASSWORD=s3cret", "prog"}),
            (Argv{"env", "SMTP_PASSWORD=***", "prog"}));
  EXPECT_EQ(maskSecrets({"x", "user=me", "password=s3cret"}),
            (Argv{"x", "user=me", "password=***"}));
}

TEST(MaskSecrets, LeavesOrdinaryArgumentsAlone) {
  const std::vector<Argv> ordinary = {
      {"swaks", "--port", "25", "-p", "587", "--to", "bob@example.org", "--server", "mx.example"},
      {"ssh", "-p", "22", "me@host"},
      {"nc", "-p", "2525", "localhost", "25"},
      {"msmtp", "--port=587", "--host=smtp.example.org", "--user=me"},
      {"wget", "--passive-ftp", "ftp://ftp.example.org/file"},
      {"docker", "login", "--password-stdin", "registry.example"},
      {"tool", "--password-file", "/etc/secret.txt", "--no-password", "arg"},
      {"curl", "-o", "out", "-H", "User-Agent: x", "smtp://mail.example.org:587"},
      {"python3", "/srv/news.py", "--compass", "north", "--bypass", "x"},
      {"mail", "-s", "pass the salt", "bob@example.org"},
      {"git", "clone", "https://github.com/a/b.git"},
      {"mysql", "-p", "mydb"},
  };
  for (const auto& argv : ordinary) EXPECT_EQ(maskSecrets(argv), argv) << argv.front();
}

TEST(MaskSecrets, DoesNotTakeTheNextOptionAsAValue) {
  EXPECT_EQ(maskSecrets({"swaks", "--auth-password", "--to", "a@b"}),
            (Argv{"swaks", "--auth-password", "--to", "a@b"}));
}

TEST(MaskCommandLine, MasksAJoinedCommandLineWordByWord) {
  EXPECT_EQ(maskCommandLine("/usr/bin/perl /usr/bin/swaks --auth-password s3cret --to a@b -ap x"),
            "/usr/bin/perl /usr/bin/swaks --auth-password *** --to a@b -ap ***");
  EXPECT_EQ(maskCommandLine("curl  -u me:pw smtp://h"), "curl  -u me:*** smtp://h");
  EXPECT_EQ(maskCommandLine(""), "");
  EXPECT_EQ(maskCommandLine("swaks -p 25"), "swaks -p 25");
}

TEST(MaskCommandLine, IsIdempotent) {
  for (const char* line : {"swaks --auth-password s3cret", "curl -u me:x smtps://a:b@c",
                           "x password=a=b", "mutt -e set smtp_pass=x;"}) {
    const auto once = maskCommandLine(line);
    EXPECT_EQ(maskCommandLine(once), once) << line;
  }
}

// Found by fuzz_secrets: masking "_pass=x/bi" took the '/' that ended the URL's authority,
// so a second masking found a user:password@ that the first had not.
TEST(MaskSecrets, MaskingAKeyValueThatEndsAnUrlIsIdempotent) {
  const std::vector<std::string> argv{"m", "ms:// sms://m@:h\xff_pass=x/bi;:h@snb2"};
  const auto once = maskSecrets(argv);
  EXPECT_EQ(maskSecrets(once), once);
  EXPECT_EQ(once[1].find("x/bi"), std::string::npos) << once[1];
}

// Found by fuzz_secrets: masking the URL's password took the '=' with it, and the rest,
// up to "@secret", was then read as an option's name naming a password: a second masking
// masked the next argument, which the first had left alone.
TEST(MaskSecrets, AnArgumentThatIsNoOptionNameNamesNoPasswordForTheNext) {
  const std::vector<std::string> argv{"mutt", "-e; smsp://u:p=smtp:):pju@secret", "next"};
  const auto once = maskSecrets(argv);
  EXPECT_EQ(once[1], "-e; smsp://u:***@secret");
  EXPECT_EQ(once[2], "next");
  EXPECT_EQ(maskSecrets(once), once);
  // A real option still names the next argument a password.
  EXPECT_EQ(maskSecrets({"x", "--smtp-pass@work", "s3cret"})[2], kMaskedSecret);
}

// Found by fuzz_secrets: a program named "m_pass=x/curl" had its name masked, so a second
// masking no longer took it for curl and read its options otherwise. Masking now goes on
// until nothing changes.
TEST(MaskSecrets, AMaskedProgramNameIsMaskedToTheEnd) {
  const std::vector<std::string> argv{"m_pass=x/curl", "-uu-xpm_pass=x;", "y"};
  const auto once = maskSecrets(argv);
  EXPECT_EQ(once[0], "m_pass=***");
  EXPECT_EQ(maskSecrets(once), once);
  const auto line = maskCommandLine("m_pass=x/curl -uu-xpm_pass=x; y");
  EXPECT_EQ(maskCommandLine(line), line);
  // "java - --pass-ava - ...": masking the "-" after a password option changes which
  // argument java runs.
  const auto java = maskCommandLine("java - --pass-ava - --pass-thr-spypy thr-spypy -HHHHy   p-");
  EXPECT_EQ(maskCommandLine(java), java);
}

TEST(MayReadCommandLine, OnlyRootAndTheUserWhoRanIt) {
  EXPECT_TRUE(mayReadCommandLine(0, 1000));
  EXPECT_TRUE(mayReadCommandLine(1000, 1000));
  EXPECT_TRUE(mayReadCommandLine(0, 0));
  EXPECT_FALSE(mayReadCommandLine(1000, 0));
  EXPECT_FALSE(mayReadCommandLine(65534, 1000));
}

TEST(NamesSecret, TellsPasswordNamesFromOthers) {
  for (const char* yes :
       {"--password", "pass", "--auth-password", "smtp_pass", "PASSWORD", "--passphrase",
        "client-secret", "smtp-auth-password", "--passwordeval"}) {
    EXPECT_TRUE(namesSecret(yes)) << yes;
  }
  for (const char* no : {"--port", "--passive-ftp", "--password-file", "--no-password", "user",
                         "--compass", "--bypass", "", "--"}) {
    EXPECT_FALSE(namesSecret(no)) << no;
  }
}

}  // namespace
}  // namespace mailguard::rules
