#pragma once
// Who handed a message to the MTA: the process that asked guardd is the MTA's own
// submission program (exim, postfix's sendmail/postdrop), started by the submitter.
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

}  // namespace mailguard::mta
