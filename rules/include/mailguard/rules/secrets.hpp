#pragma once
// Password-like values in command lines, masked before anything is stored, logged or
// sent over the bus: a stored command line is readable for months, and on a shared PC
// by people other than the one who typed it.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace mailguard::rules {

// What a secret is replaced with.
inline constexpr std::string_view kMaskedSecret = "***";

// argv with the values of password-like arguments replaced by kMaskedSecret:
// - options named like a password (--auth-password X, --auth-password=X, --pass*,
//   --password*, -password X, smtp_pass=X, password=X and any KEY=VALUE whose key names
//   a password); not --passive-ftp, --password-file, --no-password, --password-stdin;
// - user:pass@ in URLs of any scheme (smtp://, smtps://, http(s)://, ...);
// - the password options of known clients: swaks -ap, ssmtp -ap/-apX, sendemail -xp,
//   curl -u/-U/--user/--proxy-user USER:PASS (the user is kept), sshpass and sendxmpp
//   -p, mysql/mariadb -pX. -p of any other program (a port, mostly) is left alone.
// The program is argv[0]'s file name, or the script an interpreter runs
// ("perl /usr/bin/swaks"). Masking a masked argv changes nothing.
std::vector<std::string> maskSecrets(std::vector<std::string> argv);

// The same for a command line already joined with single spaces (as attempts store it):
// each space-separated word is taken as one argument. An argument that held spaces
// itself ("-e 'set smtp_pass=a b'") may keep the part after its first space.
std::string maskCommandLine(std::string_view commandLine);

// Whether a caller may read the command line (and environment) of a process that ran as
// programUid: root, and the user who ran it. Command lines hold what users type,
// passwords the masking missed among it.
bool mayReadCommandLine(std::uint32_t callerUid, std::uint32_t programUid);

// True when an option or KEY=VALUE key (leading dashes allowed) names a secret value.
bool namesSecret(std::string_view name);

}  // namespace mailguard::rules
