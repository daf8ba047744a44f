#include "mailguard/audit/findings.hpp"

#include <algorithm>

namespace mailguard::audit {
namespace {

bool containsText(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

std::string where(const ListenerAudit& a) {
  const MailListener& l = a.listener;
  const std::string address = l.family == 10 ? "[" + l.addressText() + "]" : l.addressText();
  std::string program = l.path.empty() ? "a program" : "'" + l.path + "'";
  return program + " on " + address + ":" + std::to_string(l.port);
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string relayFix(Mta mta, const std::vector<std::string>& accepted) {
  const auto has = [&](std::string_view v) {
    return std::find(accepted.begin(), accepted.end(), v) != accepted.end();
  };
  switch (mta) {
    case Mta::Postfix:
      return "In /etc/postfix/main.cf let only this computer relay: "
             "`mynetworks = 127.0.0.0/8 [::1]/128` and "
             "`smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, "
             "defer_unauth_destination` (reject_unauth_destination on older versions); "
             "remove any `permit` or wide networks before them. Then run `postfix reload`." +
             std::string(has("percent-hack") || has("bang-path") || has("source-routed")
                             ? " The accepted address tricks (percent hack, bang path, source "
                               "route) are closed by the same restrictions."
                             : "");
    case Mta::Exim:
      return "Let only this computer relay: on Debian run `dpkg-reconfigure exim4-config` and "
             "leave \"Machines to relay mail for\" empty (dc_relay_nets='' in "
             "/etc/exim4/update-exim4.conf.conf), or in exim.conf set "
             "`hostlist relay_from_hosts = <; 127.0.0.1 ; ::1`; then "
             "`update-exim4.conf && systemctl restart exim4`.";
    case Mta::Other:
      break;
  }
  return "Configure the mail server to relay only for this computer and for users who log "
         "in (SMTP AUTH), and to refuse mail for other domains from everyone else.";
}

std::string lanRelayFix(Mta mta, const std::string& subnet) {
  switch (mta) {
    case Mta::Postfix:
      return "In /etc/postfix/main.cf remove " + subnet +
             " (and any other LAN network) from `mynetworks`, leaving `mynetworks = "
             "127.0.0.0/8 [::1]/128`, or set `mynetworks_style = host`; devices that send "
             "through this server should log in (SMTP AUTH over TLS). Then run `postfix reload`.";
    case Mta::Exim:
      return "Remove " + subnet +
             " from the relay networks: on Debian run `dpkg-reconfigure exim4-config` and leave "
             "\"Machines to relay mail for\" empty (dc_relay_nets='' in "
             "/etc/exim4/update-exim4.conf.conf), or in exim.conf set "
             "`hostlist relay_from_hosts = <; 127.0.0.1 ; ::1`; then "
             "`update-exim4.conf && systemctl restart exim4`.";
    case Mta::Other:
      break;
  }
  return "Configure the mail server to relay only for this computer and for users who log in "
         "(SMTP AUTH), not for every address of " +
         subnet + ".";
}

std::string authFix(Mta mta) {
  switch (mta) {
    case Mta::Postfix:
      return "Offer AUTH only after STARTTLS: in /etc/postfix/main.cf set up TLS "
             "(`smtpd_tls_cert_file`, `smtpd_tls_key_file`, `smtpd_tls_security_level = may`) "
             "and set `smtpd_tls_auth_only = yes`; then run `postfix reload`.";
    case Mta::Exim:
      return "Offer AUTH only after STARTTLS: give each authenticator in exim.conf "
             "`server_advertise_condition = ${if def:tls_in_cipher}` (Debian: TLS on with "
             "MAIN_TLS_ENABLE = yes), then restart exim4.";
    case Mta::Other:
      break;
  }
  return "Offer SMTP AUTH only on encrypted connections (after STARTTLS, or on port 465).";
}

std::string loopbackFix(Mta mta) {
  switch (mta) {
    case Mta::Postfix:
      return "If only programs on this computer send mail through it, set "
             "`inet_interfaces = loopback-only` in /etc/postfix/main.cf and run "
             "`systemctl restart postfix`.";
    case Mta::Exim:
      return "If only programs on this computer send mail through it, set "
             "dc_local_interfaces='127.0.0.1 ; ::1' in /etc/exim4/update-exim4.conf.conf "
             "(exim.conf: `local_interfaces = <; 127.0.0.1 ; ::1`) and restart exim4.";
    case Mta::Other:
      break;
  }
  return "If only programs on this computer use it, make it listen on 127.0.0.1 and ::1 only.";
}

}  // namespace

Mta mtaOf(std::string_view path, std::string_view comm) {
  if (containsText(path, "postfix") || comm == "master" || comm == "smtpd") return Mta::Postfix;
  if (containsText(path, "exim") || containsText(comm, "exim")) return Mta::Exim;
  return Mta::Other;
}

std::string_view toString(Finding::Severity s) {
  switch (s) {
    case Finding::Severity::Info:
      return "info";
    case Finding::Severity::Warning:
      return "warning";
    case Finding::Severity::Critical:
      return "critical";
  }
  return "?";
}

std::vector<Finding> findingsFor(const ListenerAudit& a, const rules::FirewallState& firewall) {
  std::vector<Finding> out;
  const Mta mta = mtaOf(a.listener.path, a.listener.comm);
  const std::uint16_t port = a.listener.port;
  if (a.relay == RelayVerdict::Open) {
    Finding f;
    f.severity = Finding::Severity::Critical;
    f.kind = "open-relay-stranger";
    f.title = where(a) +
              " is an open relay: it accepted mail from a stranger for other "
              "domains (" +
              joined(a.accepted) + ")";
    f.fix = relayFix(mta, a.accepted);
    f.port = port;
    out.push_back(std::move(f));
  } else {
    // Open for strangers covers the LAN too; otherwise each subnet is its own finding.
    for (const LanVantage& v : a.lan) {
      if (v.relay != RelayVerdict::Open) continue;
      Finding f;
      f.severity = Finding::Severity::Critical;
      f.kind = "open-relay-lan";
      f.title = where(a) + " relays mail for anyone on your LAN " + v.subnet +
                ": any infected device at home can send spam through it (" + joined(v.accepted) +
                ")";
      f.fix = lanRelayFix(mta, v.subnet);
      f.port = port;
      out.push_back(std::move(f));
    }
  }
  if (!a.authInClear.empty()) {
    Finding f;
    f.severity = Finding::Severity::Warning;
    f.kind = "auth-without-tls";
    std::string mechanisms;
    for (const auto& m : a.authInClear) mechanisms += (mechanisms.empty() ? "" : " ") + m;
    f.title = where(a) + " offers AUTH (" + mechanisms +
              ") on a plain-text connection: passwords would cross the network in clear";
    f.fix = authFix(mta);
    f.port = port;
    out.push_back(std::move(f));
  }
  if (a.listener.exposure == Exposure::External && a.relay != RelayVerdict::Unreachable) {
    Finding f;
    f.severity =
        a.relay == RelayVerdict::Open ? Finding::Severity::Critical : Finding::Severity::Warning;
    f.kind = "exposed";
    f.title = where(a) + " can be reached from other computers";
    f.fix = loopbackFix(mta) +
            " If no other computer needs to reach it, block the port in the host firewall.";
    f.offerBlock = true;
    f.port = port;
    if (!firewall.enabled) {
      f.blockCommand = "guardctl firewall enable";
    } else {
      // Allowed by a service: removing the service blocks it.
      for (const rules::AllowedService& s : firewall.services) {
        for (const rules::ServicePort& p : s.ports) {
          if (p == rules::ServicePort{rules::Protocol::Tcp, port}) {
            f.blockCommand = "guardctl firewall remove " + s.name;
          }
        }
      }
    }
    out.push_back(std::move(f));
  }
  if (a.listener.exposure == Exposure::External && a.blockedByFirewall) {
    Finding f;
    f.severity = Finding::Severity::Info;
    f.kind = "blocked-by-firewall";
    f.title = where(a) + " listens on a public address, but the host firewall blocks it";
    f.fix = loopbackFix(mta);
    f.port = port;
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace mailguard::audit
