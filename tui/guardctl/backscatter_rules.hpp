#pragma once
// `guardctl backscatter`: the figures of a backscatter flood and a ready filter for the
// owner's mail program. Pure, so the rules are tested without a bus.
//
// What marks backscatter in a mailbox: a bounce (From: MAILER-DAEMON or postmaster, or a
// multipart/report with report-type=delivery-status, RFC 3462) whose quoted original was
// not written here. Every bounce quotes the original's headers (RFC 3464 section 2: the
// returned message or its headers), and a message the owner's mail program wrote carries
// a Message-ID in the owner's domain (RFC 5322 3.6.4: the right side names the host or
// domain that made it); a spammer's forgery carries its own. So the filter keeps bounces
// that quote "Message-ID: <...@DOMAIN>" and files the rest as junk.
#include <nlohmann/json.hpp>
#include <string>

#include "mailguard/dbus/host_client.hpp"

namespace mailguard::guardctl {

// The owner's Message-ID domain: `given` when set, else the domain of the first mailbox
// the bounces went to, else "example.org" (to be replaced by hand).
std::string backscatterDomain(const dbus::BackscatterStatus& s, const std::string& given);

struct BackscatterRules {
  std::string sieve;        // RFC 5228 with "body" (RFC 5173): Dovecot Pigeonhole, most webmail
  std::string procmail;     // ~/.procmailrc
  std::string maildrop;     // ~/.mailfilter
  std::string thunderbird;  // Message Filters, in words
};
BackscatterRules backscatterRules(const std::string& domain);

// {watching, flooding, last_hour, unmatched_last_hour, total, unmatched_total, since,
//  last, recipients, flood_per_hour, alert_id, domain, rules: {sieve, procmail, maildrop,
//  thunderbird}}
nlohmann::json backscatterJson(const dbus::BackscatterStatus& s, const std::string& domain);
std::string backscatterText(const dbus::BackscatterStatus& s, const std::string& domain);

}  // namespace mailguard::guardctl
