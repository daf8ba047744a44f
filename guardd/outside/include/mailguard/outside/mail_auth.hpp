#pragma once
// SPF (RFC 7208) and DMARC (RFC 7489) records of the owner's domains: what makes
// receivers reject mail forged in the owner's name (a Joe Job) instead of bouncing it
// back to the owner.
#include <string>
#include <vector>

#include "mailguard/outside/dns.hpp"

namespace mailguard::outside {

struct DomainFinding {
  std::string kind;      // "spf-missing", "spf-multiple", "spf-pass-all", "spf-neutral-all",
                         // "spf-no-all", "dmarc-missing", "dmarc-multiple", "dmarc-none",
                         // "dmarc-invalid", "lookup-failed"
  std::string severity;  // "warning" or "critical"
  std::string title;     // one line a person can read
  std::string fix;       // the record to publish, and where
};

struct DomainReport {
  std::string domain;
  std::string spf;                      // the SPF record found ("" none; the first when several)
  std::string spfAll;                   // its "all" term as written ("-all", "~all", ...), "" none
  std::string dmarc;                    // the DMARC record found ("" none)
  std::string dmarcPolicy;              // its p= value, "" none
  std::vector<DomainFinding> findings;  // empty: the domain is protected
};

// Judge the TXT records of DOMAIN (SPF) and of _dmarc.DOMAIN (pure); each adds its
// findings to `report`.
void judgeSpf(const std::vector<std::string>& txt, DomainReport& report);
void judgeDmarc(const std::vector<std::string>& txt, DomainReport& report);

DomainReport checkDomain(Resolver& resolver, const std::string& domain);

}  // namespace mailguard::outside
