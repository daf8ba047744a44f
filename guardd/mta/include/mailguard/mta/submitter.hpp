#pragma once
// Who handed a message to the MTA: the process that asked guardd is the MTA's own
// submission program (exim, postfix's sendmail/postdrop), started by the submitter.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

// The MTA's own submission programs (exim, exim4, sendmail, postdrop, ...), by file name,
// only where the file is root's (pathTrusted): a bot's own /tmp/sendmail is a program
// like any other and is never skipped.
bool isMtaProgram(const procinfo::ProcessInfo& p);
// The file name alone (for rules, which have no process).
bool isMtaName(std::string_view fileName);
// A shell that runs a command line (`sh -c ...`: system(), popen(), PHP's mail()) rather
// than a script of its own: it only passes the submitter's request on. A shell running a
// script file is a program in its own right (its script is its identity), as are cron and
// mail/mailx.
bool isShellWrapper(const procinfo::ProcessInfo& p);

// The MTA's binary run with a configuration that is not the system's: exim with -C FILE
// (other than `eximConfig`, the one [mta] exim_config names; "" = none allowed) or with -D
// macros. Any user may do that: exim drops root and runs as that user, with a spool and
// routers of the user's choosing and no mailguard ACL, and its deliveries would connect as
// the approved MTA. The reason, for the verdict ("not trusted although approved: ..."), or
// nullopt for the system's MTA and for every other program.
std::optional<std::string> foreignMtaConfig(const procinfo::ProcessInfo& p,
                                            std::string_view eximConfig);

using Describe = std::function<Result<procinfo::ProcessInfo>(int pid)>;
// Walks up from `mtaPid` (the process that asked, from SO_PEERCRED) to the nearest process
// that is neither an MTA program nor a shell wrapper. Error: the chain vanished or ended in
// MTA programs only (exim started by init: a queue run, never a submission).
Result<procinfo::ProcessInfo> findSubmitter(int mtaPid, const Describe& describe);

// A message exim generated itself (a bounce or DSN to a local sender, a delay warning),
// told apart from a submission: exim's delivery process (or queue runner) creates these
// by running a child `exim -t -oem -oi -f <> -E<id>` and writing the message into it
// (exim 4.96 child.c, child_open_exim2), so the exim that asks (`asker`, already known to
// be the MTA's own program) has an empty envelope sender, -E with a queue id among its
// arguments and, as its parent, another
// root-owned exim whose real uid is root or exim's own user (`eximUid`, Debian-exim),
// started before it.
// Why nothing else passes: a program that runs exim (sendmail, exim -t) is the parent of
// that exim and is no exim; a bot's exim orphaned by a double fork is adopted by init or
// a subreaper, none of them exim. exim is setuid root, which sets the effective uid only:
// every exim a user starts keeps the user's real uid, and so does any exim it starts in
// turn, except where exim itself sets all its uids (it then runs only its own code with
// arguments it chose, not the user's). exim with -C or -D of the user's drops root for the
// user's uid. To pass, a non-root program would need an exim with real uid root or
// Debian-exim to run a child that receives the program's message: it would have to be root
// or exim's user already (then it can write the spool and needs no gate), or make exim's
// own code do it, and what that code sends on its own is a bounce or warning to the
// sender of a message it handled, which exim forces to the user's own local address for
// any caller that is not trusted (untrusted_set_sender is empty in Debian).
// A /proc read that failed is returned as the error (Errc::Pending: ask again later).
Result<bool> isEximOwnMessage(const procinfo::ProcessInfo& asker, std::string_view sender,
                              std::uint32_t eximUid, const Describe& describe);

}  // namespace mailguard::mta
