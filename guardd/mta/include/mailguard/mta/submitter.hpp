#pragma once
// Who handed a message to the MTA: the process that asked guardd is the MTA's own
// submission program (exim, postfix's sendmail/postdrop), started by the submitter.
#include <functional>

#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

// The MTA's own submission programs (exim, exim4, sendmail, postdrop, ...), by file name,
// only where the file is root's (pathTrusted): a bot's own /tmp/sendmail is a program
// like any other and is never skipped.
bool isMtaProgram(const procinfo::ProcessInfo& p);
// A shell that runs a command line (`sh -c ...`: system(), popen(), PHP's mail()) rather
// than a script of its own: it only passes the submitter's request on. A shell running a
// script file is a program in its own right (its script is its identity), as are cron and
// mail/mailx.
bool isShellWrapper(const procinfo::ProcessInfo& p);

using Describe = std::function<Result<procinfo::ProcessInfo>(int pid)>;
// Walks up from `mtaPid` (the process that asked, from SO_PEERCRED) to the nearest process
// that is neither an MTA program nor a shell wrapper. Error: the chain vanished or ended in
// MTA programs only (exim started by init: a queue run, never a submission).
Result<procinfo::ProcessInfo> findSubmitter(int mtaPid, const Describe& describe);

}  // namespace mailguard::mta
