#pragma once
// Does the caller of "firewall enable" look like part of a remote login?
#include "mailguard/procinfo/procinfo.hpp"
#include "mailguard/rules/firewall.hpp"

namespace mailguard::service {

// SSH_CONNECTION (or SSH_CLIENT) in the environment of `pid`, or sshd among its
// ancestors (sudo drops the variables). The SSH port is the server port of
// SSH_CONNECTION, else 22. A process that is gone or unreadable looks local.
rules::CallerContext callerContextOf(const procinfo::ProcFs& proc, int pid);

}  // namespace mailguard::service
