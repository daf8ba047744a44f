#pragma once
// Relay self-audit: for each mail listener, the SMTP dialogue a stranger would have,
// from a throw-away network namespace joined to this one by a veth pair with test-net
// addresses (never loopback, never an address the server could count as its own
// network). It tries the classic relay variants, stops after RCPT (never DATA) and
// says QUIT.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/audit/inventory.hpp"
#include "mailguard/rules/firewall.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::audit {

struct RelayVariant {
  std::string name;  // "plain", "null-sender", ...
  std::string mailFrom;
  std::string rcptTo;
};
// The classic variants: plain foreign sender and recipient, null sender, own domain
// as sender, percent hack, bang path, quoted recipient, source-routed recipient,
// IP-literal recipient. Foreign domains are the reserved example.net / 203.0.113.0/24.
std::vector<RelayVariant> relayVariants(std::string_view ownDomain);

// One line-oriented SMTP connection (the real one is a TCP socket in the probe
// namespace; unit tests script one).
class SmtpConnection {
 public:
  virtual ~SmtpConnection() = default;
  // A whole reply, continuation lines joined with "\n"; an error when the peer closed
  // or timed out.
  virtual Result<std::string> readReply() = 0;
  virtual Result<void> sendLine(std::string_view line) = 0;  // CRLF appended
};

struct VariantResult {
  std::string name;
  bool accepted = false;  // RCPT got a 2xx
  std::string mailReply;
  std::string rcptReply;  // empty when MAIL was refused
};

struct DialogueResult {
  std::string banner;
  std::string ownDomain;  // used for the variants
  std::vector<VariantResult> variants;
  std::vector<std::string> transcript;  // "> MAIL FROM:<...>", "< 250 2.1.0 Ok"
  std::optional<std::string> error;     // the dialogue ended early
};

// The dialogue on one connection; `reconnect` opens a fresh one when the server hung
// up part way (servers drop strangers after a few refused commands).
DialogueResult runRelayDialogue(SmtpConnection& first,
                                const std::function<std::unique_ptr<SmtpConnection>()>& reconnect,
                                std::string_view ownDomain);

enum class RelayVerdict { Open, Closed, Unreachable };
std::string_view toString(RelayVerdict v);  // "open", "closed", "unreachable"

struct ListenerAudit {
  MailListener listener;
  RelayVerdict relay = RelayVerdict::Unreachable;
  std::vector<std::string> accepted;  // names of the accepted variants
  std::string reason;                 // why unreachable / how it was reached
  bool blockedByFirewall = false;     // unreachable because host_in drops it
  std::string probedAddress;          // where the probe connected to
  DialogueResult dialogue;
};

struct AuditOptions {
  std::string ownDomain;  // empty: the name in the server's banner
  std::chrono::milliseconds connectTimeout{2000};
  std::chrono::milliseconds replyTimeout{5000};
  // The host firewall as installed, to tell "blocked by the firewall" from other
  // reasons a listener cannot be reached.
  rules::FirewallState firewall;
  // Test hook: called at each stage ("namespace", "veth", "configured", "probing");
  // an error aborts the audit there, as a real failure would.
  std::function<Result<void>(std::string_view stage)> faultInjection;
};

// What the probe network was, for checking that nothing is left behind.
struct ProbeTrace {
  std::string hostInterface;  // the veth end in this namespace
  std::uint64_t namespaceInode = 0;
};

// Runs the audit; blocking (seconds), so guardd runs it off its event loop. Needs
// CAP_NET_ADMIN (and CAP_SYS_ADMIN for unshare) and iproute2's `ip`. The probe
// namespace and veth are removed on every path, errors included.
Result<std::vector<ListenerAudit>> auditRelays(const std::vector<MailListener>& listeners,
                                               const AuditOptions& options,
                                               ProbeTrace* trace = nullptr);

}  // namespace mailguard::audit
