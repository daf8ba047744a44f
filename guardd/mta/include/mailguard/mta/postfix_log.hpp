#pragma once
// postfix's log, read for what became of each message, in the line form the exim log's
// DeliveryTracker takes (exim_log.hpp).
//
// postfix logs through syslog (rsyslog's /var/log/mail.log, or only the journal) or through
// its own postlogd (maillog_file). Every record is "TAG[PID]: TEXT", the tag being
// syslog_name "/" service ("postfix/smtp", "postfix-out/local"). The lines that matter
// (postfix source, src/global/log_adhoc.c and qmgr/qmgr_active.c):
//   C93CEB08A046: to=<a@b>, [orig_to=<..>, ]relay=R, [conn_use=N, ]delay=D,
//       delays=a/b/c/d, [tls=.., ]dsn=X.Y.Z, status=sent|deferred|bounced|expired (REASON)
//         one per recipient and delivery attempt, from every delivery agent (smtp, lmtp,
//         local, virtual, pipe, error, retry, discard) and from qmgr;
//   C93CEB08A046: from=<s@d>, status=expired|force-expired, returned to sender
//         qmgr gave up on what was still deferred;
//   C93CEB08A046: removed
//         the message left the queue (qmgr, or postsuper -d): exim's "Completed".
// The queue id is short (upper-case hex: 5 digits of microseconds, then the inode) or,
// with enable_long_queue_ids, long (time in a vowel-free base 52, 'z', the inode).
//
// Anyone on the host can write a syslog record with any tag (logger -t postfix/smtp), and
// postlog(1) takes any tag from any user: a line of the file proves nothing about who
// wrote it. What limits a forgery: only queue ids submitted through the gate are charged,
// and a line is charged only to the queue id it starts with (a reply quoting another
// message's line is text of this one). The journal records the writer's uid (_UID, set by
// journald from the socket's credentials), so it is the better source where there is one.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "mailguard/mta/exim_log.hpp"

namespace mailguard::mta {

// A short or a long postfix queue id.
bool isPostfixQueueId(std::string_view id);

// A tag postfix writes with: "postfix/SERVICE" or an instance's "postfix-NAME/SERVICE"
// (postmulti names every instance "postfix-..."), without the "[pid]".
bool isPostfixTag(std::string_view tag);

// One record's text after its tag ("C93CEB08A046: to=<...>, ... status=bounced (...)").
// nullopt: not a delivery outcome of a message (arrivals, warnings, other daemons).
std::optional<MtaLogLine> parsePostfixMessage(std::string_view tag, std::string_view text);

// A whole line of a log file, in the traditional syslog form
// ("Dec  7 08:26:03 host postfix/smtp[123]: ..."), postlogd's ("Dec 07 08:26:03 ...") or
// the RFC 3339 one ("2026-12-07T08:26:03.123456+00:00 host postfix/smtp[123]: ...").
std::optional<MtaLogLine> parsePostfixLogLine(std::string_view line);
// The same line's tag (without "[pid]") and text, as parsePostfixMessage takes them.
std::optional<std::pair<std::string_view, std::string_view>> splitPostfixLogLine(
    std::string_view line);

// Whether postfix is configured on this host: main.cf in one of `configDirs`.
bool postfixInstalled(const std::vector<std::string>& configDirs);

}  // namespace mailguard::mta
