#include "backscatter_rules.hpp"

#include "output.hpp"

namespace mailguard::guardctl {
namespace {

// A domain as a POSIX extended regular expression (procmail, maildrop): dots escaped.
std::string regexOf(const std::string& domain) {
  std::string out;
  for (const char c : domain) {
    if (c == '.' || c == '+' || c == '*' || c == '?' || c == '[' || c == ']' || c == '(' ||
        c == ')' || c == '$' || c == '^' || c == '|' || c == '\\' || c == '{' || c == '}') {
      out += '\\';
    }
    out += c;
  }
  return out;
}

// Only what a domain is made of goes into a rule: a typo cannot break out of its quotes.
bool isDomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (const char c : s) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string backscatterDomain(const dbus::BackscatterStatus& s, const std::string& given) {
  if (isDomain(given)) return given;
  for (const auto& r : s.recipients) {
    const auto at = r.rfind('@');
    if (at != std::string::npos && isDomain(r.substr(at + 1))) return r.substr(at + 1);
  }
  return "example.org";
}

BackscatterRules backscatterRules(const std::string& d) {
  const std::string domain = isDomain(d) ? d : "example.org";
  const std::string re = regexOf(domain);
  BackscatterRules out;
  out.sieve =
      "require [\"fileinto\", \"body\"];\n"
      "# Bounces that quote no Message-ID of yours: backscatter of mail forged in your name.\n"
      "if allof (anyof (address :localpart :is \"from\" [\"MAILER-DAEMON\", \"postmaster\"],\n"
      "                 header :contains \"content-type\" \"report-type=delivery-status\"),\n"
      "          not body :raw :matches \"*Message-I?: <*@" +
      domain +
      ">*\") {\n"
      "  fileinto \"Junk\";\n"
      "  stop;\n"
      "}\n";
  out.procmail =
      "# Bounces that quote no Message-ID of yours: backscatter of mail forged in your name.\n"
      ":0\n"
      "* ^From:.*(MAILER-DAEMON|postmaster)\n"
      "* ! B ?? ^Message-I[Dd]: *<[^>]*@" +
      re +
      ">\n"
      "backscatter/\n";
  out.maildrop =
      "# Bounces that quote no Message-ID of yours: backscatter of mail forged in your name.\n"
      "if (/^From:.*(MAILER-DAEMON|postmaster)/ && !/^Message-I[Dd]: *<[^>]*@" +
      re +
      ">/:b)\n"
      "{\n"
      "  to \"$HOME/Maildir/.Junk/\"\n"
      "}\n";
  out.thunderbird =
      "Tools > Message Filters > New. Name it \"Backscatter\"; choose \"Match all of the "
      "following\"; add \"From\" \"contains\" \"MAILER-DAEMON\" and \"Body\" \"doesn't "
      "contain\" \"@" +
      domain +
      ">\"; as the action choose \"Move Message to\" your Junk folder. (Thunderbird searches "
      "the body of the bounce, where the returned message's Message-ID is quoted.)\n";
  return out;
}

nlohmann::json backscatterJson(const dbus::BackscatterStatus& s, const std::string& domain) {
  const auto rules = backscatterRules(domain);
  return {{"watching", s.watching},
          {"flooding", s.flooding},
          {"last_hour", s.lastHour},
          {"unmatched_last_hour", s.unmatchedLastHour},
          {"total", s.total},
          {"unmatched_total", s.unmatchedTotal},
          {"since", timeJson(s.sinceUs)},
          {"last", timeJson(s.lastUs)},
          {"recipients", s.recipients},
          {"flood_per_hour", s.floodPerHour},
          {"alert_id", s.alertId == 0 ? nlohmann::json(nullptr) : nlohmann::json(s.alertId)},
          {"domain", domain},
          {"rules",
           {{"sieve", rules.sieve},
            {"procmail", rules.procmail},
            {"maildrop", rules.maildrop},
            {"thunderbird", rules.thunderbird}}}};
}

std::string backscatterText(const dbus::BackscatterStatus& s, const std::string& domain) {
  std::string out;
  if (!s.watching) {
    out +=
        "Bounces are not watched: guardd follows no local MTA's log ([mta] exim_log, "
        "postfix_log).\n";
  } else if (s.flooding) {
    out += "Backscatter flood since " + localTime(s.sinceUs) +
           (s.alertId != 0 ? " (alert " + std::to_string(s.alertId) + ")" : std::string()) +
           ": someone sends mail in your name and the bounces come to you.\n";
    out += "  since then: " + std::to_string(s.total) + " bounces, " +
           std::to_string(s.unmatchedTotal) + " for mail this PC did not send\n";
  } else {
    out += "No backscatter flood (a flood: " + std::to_string(s.floodPerHour) +
           " bounces an hour for mail this PC did not send).\n";
  }
  if (s.watching) {
    out += "  last hour: " + std::to_string(s.lastHour) + " bounces, " +
           std::to_string(s.unmatchedLastHour) + " for mail this PC did not send\n";
    if (!s.recipients.empty()) {
      std::string to;
      for (const auto& r : s.recipients) to += (to.empty() ? "" : ", ") + r;
      out += "  delivered to: " + to + "\n";
    }
  }
  const auto rules = backscatterRules(domain);
  out += "\nA filter for your mail program: bounces that quote no Message-ID of yours (@" + domain +
         "; another with --domain) go to Junk.\n";
  out += "\nSieve (Dovecot, most webmail):\n" + rules.sieve;
  out += "\nprocmail (~/.procmailrc):\n" + rules.procmail;
  out += "\nmaildrop (~/.mailfilter):\n" + rules.maildrop;
  out += "\nThunderbird:\n" + rules.thunderbird;
  out +=
      "\nThe lasting fix is at your domain: SPF with -all and DMARC with p=reject make "
      "receivers refuse the forgeries instead of bouncing them to you.\n";
  return out;
}

}  // namespace mailguard::guardctl
