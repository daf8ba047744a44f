#pragma once
// Relay self-audit: for each mail listener, the SMTP dialogue a stranger would have,
// from a throw-away network namespace joined to this one by a veth pair with test-net
// addresses (never loopback, never an address the server could count as its own
// network), and the dialogue a host on each directly connected LAN subnet would have
// (a free address of that subnet, in the same namespace). It tries the classic relay
// variants, stops after RCPT (never DATA) and says QUIT.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
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
  std::string ehlo;       // the EHLO (or HELO) reply: the extensions the server offers
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

// The SASL mechanisms an EHLO reply offers ("250-AUTH PLAIN LOGIN", or the old
// "250-AUTH=PLAIN" form); empty when it offers no AUTH. The audit never says STARTTLS,
// so whatever this lists is offered on the plain-text connection.
std::vector<std::string> authMechanisms(std::string_view ehloReply);

// A failure that a restarting server gives (connection refused, or closed before a
// banner), worth retrying; a timeout (a firewall drops the SYN, or the port speaks
// TLS from the first byte) is not.
bool isTransientFailure(int connectErrno, const DialogueResult& dialogue);

// The waits between retries of a transiently failing listener: about 4 s in all, longer
// than an MTA's restart.
std::vector<std::chrono::milliseconds> retryBackoff();

enum class RelayVerdict { Open, Closed, Unreachable };
std::string_view toString(RelayVerdict v);  // "open", "closed", "unreachable"
std::optional<RelayVerdict> relayVerdictOf(std::string_view text);

// A directly connected subnet of this PC and the address the audit borrows in it.
struct LanSubnet {
  int family = 0;            // AF_INET or AF_INET6
  std::string cidr;          // "198.18.4.0/24"
  std::string hostAddress;   // this PC's address in it ("198.18.4.1")
  std::string probeAddress;  // the free address the LAN probe comes from
};

// An address of one of this PC's interfaces (getifaddrs).
struct InterfaceAddress {
  std::string interface;
  int family = 0;
  std::array<std::uint8_t, 16> address{};
  int prefixLength = 0;
  bool loopback = false;  // the interface is IFF_LOOPBACK
};

inline constexpr std::size_t kMaxLanSubnets = 4;

// The subnets a LAN probe runs from: every IPv4/IPv6 subnet of `addresses` except
// loopback, /31-/32 and /127-/128 (nothing else lives in them), the audit's own veth and
// IPv6 link-local (fe80::/10, which needs scope ids); IPv4 link-local (169.254.0.0/16)
// only when no other subnet is left. At most
// `max`, in interface order. The probe address is the first host address after the PC's
// own (wrapping round the subnet, never the network or broadcast address) that is in
// neither `inUse` (the PC's addresses and the kernel's neighbour table) nor any
// subnet's own address; a subnet with no such address among the first 4096 is skipped.
std::vector<LanSubnet> lanSubnets(const std::vector<InterfaceAddress>& addresses,
                                  const std::set<std::string>& inUse,
                                  std::size_t max = kMaxLanSubnets);

// The relay dialogue from one LAN subnet.
struct LanVantage {
  std::string subnet;        // cidr
  std::string probeAddress;  // where it came from
  std::string target;        // where it connected to
  RelayVerdict relay = RelayVerdict::Unreachable;
  std::vector<std::string> accepted;
  std::string reason;
  DialogueResult dialogue;
  bool transient = false;  // as ListenerAudit::transientFailure, for this vantage
};

struct ListenerAudit {
  MailListener listener;
  RelayVerdict relay = RelayVerdict::Unreachable;
  std::vector<std::string> accepted;  // names of the accepted variants
  std::string reason;                 // why unreachable / how it was reached
  bool blockedByFirewall = false;     // unreachable because host_in drops it
  std::string probedAddress;          // where the probe connected to
  DialogueResult dialogue;            // the stranger's
  std::vector<LanVantage> lan;        // one per LAN subnet of the listener's family
  // AUTH offered on the plain-text connection (to the stranger or a LAN host).
  std::vector<std::string> authInClear;
  // Still refused / closed before the banner after the retries: the server is probably
  // restarting, so the audit before says more about it than this one.
  bool transientFailure = false;
};

struct AuditOptions {
  std::string ownDomain;  // empty: the name in the server's banner
  std::chrono::milliseconds connectTimeout{2000};
  std::chrono::milliseconds replyTimeout{5000};
  // The host firewall as installed, to tell "blocked by the firewall" from other
  // reasons a listener cannot be reached.
  rules::FirewallState firewall;
  // Whether to probe from the LAN subnets too (from getifaddrs and the neighbour table).
  bool lanVantage = true;
  // SO_MARK for the probe's sockets (0: none). From guardd's own namespace its connects
  // to mail ports pass its own output rules only with the allow mark.
  std::uint32_t socketMark = 0;
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
