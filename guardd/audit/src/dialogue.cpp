// The SMTP side of the relay audit (RFC 5321): banner, EHLO, then per variant
// MAIL FROM / RCPT TO / RSET, and QUIT. Never DATA.
#include <algorithm>
#include <cctype>
#include <cerrno>

#include "mailguard/audit/relay.hpp"

namespace mailguard::audit {
namespace {

// The domain an outsider would take as this server's own: the first word after the
// code in the banner ("220 mail.example.org ESMTP Postfix").
std::string domainFromBanner(std::string_view banner) {
  if (banner.size() < 5) return {};
  std::string_view rest = banner.substr(4);
  const auto end = rest.find_first_of(" \r\n");
  std::string word(rest.substr(0, end));
  if (word.find('.') == std::string::npos) return {};
  return word;
}

bool positive(std::string_view reply) { return !reply.empty() && reply[0] == '2'; }

class Dialogue {
 public:
  Dialogue(SmtpConnection& first, const std::function<std::unique_ptr<SmtpConnection>()>& reconnect,
           DialogueResult& result)
      : conn_(&first), reconnect_(reconnect), result_(result) {}

  Result<std::string> command(const std::string& line) {
    result_.transcript.push_back("> " + line);
    if (auto sent = conn_->sendLine(line); !sent) return sent.error();
    return reply();
  }
  Result<std::string> reply() {
    auto r = conn_->readReply();
    if (r) result_.transcript.push_back("< " + *r);
    return r;
  }
  // Banner and EHLO (HELO when EHLO is refused).
  Result<std::string> greet() {
    auto banner = reply();
    if (!banner) return banner;
    if (!positive(*banner)) return makeError("the server refused the connection: " + *banner);
    auto ehlo = command("EHLO mailguard-audit.invalid");
    if (!ehlo) return ehlo.error();
    if (!positive(*ehlo)) {
      auto helo = command("HELO mailguard-audit.invalid");
      if (!helo) return helo.error();
      if (!positive(*helo)) return makeError("the server refused HELO: " + *helo);
      if (result_.ehlo.empty()) result_.ehlo = *helo;
    } else if (result_.ehlo.empty()) {
      result_.ehlo = *ehlo;
    }
    return banner;
  }
  bool reopen() {
    if (!reconnect_) return false;
    owned_ = reconnect_();
    if (!owned_) return false;
    conn_ = owned_.get();
    result_.transcript.push_back("(reconnected)");
    return greet().has_value();
  }
  Result<VariantResult> variant(const RelayVariant& v) {
    VariantResult out{v.name, false, {}, {}};
    auto mail = command("MAIL FROM:" + v.mailFrom);
    if (!mail) return mail.error();
    out.mailReply = *mail;
    if (positive(*mail)) {
      auto rcpt = command("RCPT TO:" + v.rcptTo);
      if (!rcpt) return rcpt.error();
      out.rcptReply = *rcpt;
      out.accepted = positive(*rcpt);
    }
    // Forget the transaction: the next variant starts clean. Nothing was sent.
    if (auto rset = command("RSET"); !rset) return rset.error();
    return out;
  }
  void quit() {
    result_.transcript.push_back("> QUIT");
    if (conn_->sendLine("QUIT")) (void)reply();
  }

 private:
  SmtpConnection* conn_;
  std::unique_ptr<SmtpConnection> owned_;
  const std::function<std::unique_ptr<SmtpConnection>()>& reconnect_;
  DialogueResult& result_;
};

}  // namespace

std::vector<RelayVariant> relayVariants(std::string_view ownDomain) {
  const std::string own(ownDomain);
  const std::string stranger = "<mailguard-audit@example.com>";
  const std::string postmaster = "<postmaster@" + own + ">";
  return {
      {"plain", stranger, "<relay-test@example.net>"},
      {"null-sender", "<>", "<relay-test@example.net>"},
      {"own-domain-sender", postmaster, "<relay-test@example.net>"},
      {"percent-hack", stranger, "<relay-test%example.net@" + own + ">"},
      {"bang-path", stranger, "<example.net!relay-test@" + own + ">"},
      {"quoted-recipient", stranger, "<\"relay-test@example.net\"@" + own + ">"},
      {"source-routed", stranger, "<@" + own + ":relay-test@example.net>"},
      {"ip-literal", stranger, "<relay-test@[203.0.113.25]>"},
  };
}

DialogueResult runRelayDialogue(SmtpConnection& first,
                                const std::function<std::unique_ptr<SmtpConnection>()>& reconnect,
                                std::string_view ownDomain) {
  DialogueResult result;
  Dialogue d(first, reconnect, result);
  auto banner = d.greet();
  if (!banner) {
    result.error = banner.error().message;
    return result;
  }
  result.banner = *banner;
  result.ownDomain = !ownDomain.empty() ? std::string(ownDomain) : domainFromBanner(*banner);
  if (result.ownDomain.empty()) result.ownDomain = "localhost";
  for (const RelayVariant& v : relayVariants(result.ownDomain)) {
    auto r = d.variant(v);
    if (!r && d.reopen()) r = d.variant(v);  // the server may hang up on strangers
    if (!r) {
      result.error = "the dialogue ended at variant '" + v.name + "': " + r.error().message;
      return result;
    }
    result.variants.push_back(std::move(*r));
  }
  d.quit();
  return result;
}

std::vector<std::string> authMechanisms(std::string_view ehloReply) {
  // RFC 4954: "250-AUTH mech ..." among the EHLO lines; some servers also send the
  // pre-standard "AUTH=mech ..." line for old Outlook clients.
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < ehloReply.size()) {
    auto end = ehloReply.find('\n', start);
    if (end == std::string_view::npos) end = ehloReply.size();
    std::string_view line = ehloReply.substr(start, end - start);
    start = end + 1;
    if (line.size() < 4) continue;
    line.remove_prefix(4);  // "250-" / "250 "
    std::string upper;
    for (char c : line) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (upper.rfind("AUTH", 0) != 0 || upper.size() < 5 || (upper[4] != ' ' && upper[4] != '=')) {
      continue;
    }
    std::string_view rest = std::string_view(upper).substr(5);
    while (!rest.empty()) {
      const auto space = rest.find(' ');
      std::string mech(rest.substr(0, space));
      if (!mech.empty() && std::find(out.begin(), out.end(), mech) == out.end()) {
        out.push_back(mech);
      }
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
  }
  return out;
}

bool isTransientFailure(int connectErrno, const DialogueResult& dialogue) {
  if (connectErrno != 0) return connectErrno == ECONNREFUSED || connectErrno == ECONNRESET;
  // Connected, but closed (or reset) before a banner: the listener is going away or a
  // new one is not serving yet.
  if (!dialogue.error || !dialogue.banner.empty()) return false;
  const std::string& e = *dialogue.error;
  return e.find("closed the connection") != std::string::npos ||
         e.find("Connection reset") != std::string::npos;
}

std::vector<std::chrono::milliseconds> retryBackoff() {
  using std::chrono::milliseconds;
  return {milliseconds(250), milliseconds(500), milliseconds(1000), milliseconds(2000)};
}

std::optional<RelayVerdict> relayVerdictOf(std::string_view text) {
  for (RelayVerdict v : {RelayVerdict::Open, RelayVerdict::Closed, RelayVerdict::Unreachable}) {
    if (toString(v) == text) return v;
  }
  return std::nullopt;
}

std::string_view toString(RelayVerdict v) {
  switch (v) {
    case RelayVerdict::Open:
      return "open";
    case RelayVerdict::Closed:
      return "closed";
    case RelayVerdict::Unreachable:
      return "unreachable";
  }
  return "?";
}

}  // namespace mailguard::audit
