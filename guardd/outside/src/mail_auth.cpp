#include "mailguard/outside/mail_auth.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace mailguard::outside {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

// RFC 7208 4.5: a record is SPF when it starts with "v=spf1" followed by a space or its
// end (case-insensitive); "v=spf10" is not one.
bool isSpf(const std::string& txt) {
  const std::string l = lower(txt);
  return l.rfind("v=spf1", 0) == 0 && (l.size() == 6 || l[6] == ' ');
}

// RFC 7489 6.4: the record starts with the tag "v=DMARC1" (exact case), then ';'.
bool isDmarc(const std::string& txt) {
  const std::string t = trim(txt);
  if (t.rfind("v=DMARC1", 0) != 0) return false;
  const std::string rest = trim(t.substr(8));
  return rest.empty() || rest.front() == ';';
}

std::string spfFix(const std::string& domain) {
  return "Publish ONE TXT record at " + domain +
         " listing the servers that send its mail and ending in -all, for example "
         "\"v=spf1 mx include:<your mail provider's SPF domain> -all\" (your provider's help "
         "names the include: _spf.google.com for Google Workspace, spf.protection.outlook.com "
         "for Microsoft 365). A domain that sends no mail at all: \"v=spf1 -all\".";
}

std::string dmarcFix(const std::string& domain) {
  return "Publish a TXT record at _dmarc." + domain +
         ": \"v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@" + domain +
         "\" (p=reject once the reports show only your own servers). Receivers then drop "
         "mail forged in your name instead of bouncing it to you.";
}

void add(DomainReport& r, std::string kind, std::string severity, std::string title,
         std::string fix) {
  r.findings.push_back({std::move(kind), std::move(severity), std::move(title), std::move(fix)});
}

}  // namespace

void judgeSpf(const std::vector<std::string>& txt, DomainReport& report) {
  std::vector<std::string> spf;
  for (const auto& t : txt) {
    if (isSpf(t)) spf.push_back(t);
  }
  const std::string& d = report.domain;
  if (spf.empty()) {
    add(report, "spf-missing", "warning",
        d + " publishes no SPF record: anyone may send mail in its name", spfFix(d));
    return;
  }
  report.spf = spf.front();
  if (spf.size() > 1) {
    // RFC 7208 4.5: more than one record is a permanent error; receivers ignore SPF.
    add(report, "spf-multiple", "warning",
        d + " publishes " + std::to_string(spf.size()) +
            " SPF records: receivers treat that as an error and ignore them all",
        "Merge them into one record. " + spfFix(d));
    return;
  }
  std::istringstream terms(spf.front());
  std::string term;
  bool redirect = false;
  while (terms >> term) {
    const std::string l = lower(term);
    if (l.rfind("redirect=", 0) == 0) redirect = true;
    std::string bare = l;
    if (!bare.empty() && std::string("+-~?").find(bare.front()) != std::string::npos) {
      bare = bare.substr(1);
    }
    if (bare == "all") report.spfAll = term;
  }
  const std::string all = lower(report.spfAll);
  if (all == "-all" || all == "~all") return;
  if (all == "all" || all == "+all") {
    add(report, "spf-pass-all", "critical",
        d + "'s SPF record ends in \"" + report.spfAll +
            "\": it declares every server on the Internet allowed to send its mail",
        "Replace \"" + report.spfAll + "\" with \"-all\" (or \"~all\"). " + spfFix(d));
  } else if (all == "?all") {
    add(report, "spf-neutral-all", "warning",
        d + "'s SPF record ends in \"?all\": receivers are told nothing about forgeries",
        "Replace \"?all\" with \"-all\" (or \"~all\"). " + spfFix(d));
  } else if (!redirect) {
    add(report, "spf-no-all", "warning",
        d + "'s SPF record has no \"all\" term: mail from other servers is neutral, not "
            "rejected",
        "End the record with \"-all\". " + spfFix(d));
  }
}

void judgeDmarc(const std::vector<std::string>& txt, DomainReport& report) {
  std::vector<std::string> dmarc;
  for (const auto& t : txt) {
    if (isDmarc(t)) dmarc.push_back(t);
  }
  const std::string& d = report.domain;
  if (dmarc.empty()) {
    add(report, "dmarc-missing", "warning",
        d + " publishes no DMARC record: receivers decide alone what to do with forgeries",
        dmarcFix(d));
    return;
  }
  report.dmarc = dmarc.front();
  if (dmarc.size() > 1) {
    // RFC 7489 6.6.3: several records mean no DMARC processing at all.
    add(report, "dmarc-multiple", "warning",
        d + " publishes " + std::to_string(dmarc.size()) +
            " DMARC records: receivers then apply none of them",
        "Keep one. " + dmarcFix(d));
    return;
  }
  std::istringstream tags(dmarc.front());
  std::string tag;
  while (std::getline(tags, tag, ';')) {
    tag = trim(tag);
    const auto eq = tag.find('=');
    if (eq == std::string::npos) continue;
    if (lower(trim(tag.substr(0, eq))) == "p") report.dmarcPolicy = lower(trim(tag.substr(eq + 1)));
  }
  const std::string& p = report.dmarcPolicy;
  if (p == "quarantine" || p == "reject") return;
  if (p == "none") {
    add(report, "dmarc-none", "warning",
        d + "'s DMARC policy is p=none: forgeries are reported, not stopped",
        "Change p=none to p=quarantine (later p=reject). " + dmarcFix(d));
  } else {
    add(report, "dmarc-invalid", "warning",
        d + "'s DMARC record has " + (p.empty() ? "no p= policy" : "the unknown policy p=" + p),
        dmarcFix(d));
  }
}

DomainReport checkDomain(Resolver& resolver, const std::string& domain) {
  DomainReport report;
  report.domain = domain;
  auto spf = resolver.lookup(domain, RecordType::Txt);
  if (spf) {
    judgeSpf(spf->records, report);
  } else {
    add(report, "lookup-failed", "warning", "Could not read the SPF record of " + domain,
        spf.error().message);
  }
  auto dmarc = resolver.lookup("_dmarc." + domain, RecordType::Txt);
  if (dmarc) {
    judgeDmarc(dmarc->records, report);
  } else {
    add(report, "lookup-failed", "warning", "Could not read the DMARC record of " + domain,
        dmarc.error().message);
  }
  return report;
}

}  // namespace mailguard::outside
