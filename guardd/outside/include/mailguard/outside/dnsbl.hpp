#pragma once
// DNS blocklists (RFC 5782): the address A.B.C.D is looked up as D.C.B.A.ZONE; an A
// record in 127.0.0.0/8 means listed, NXDOMAIN means not listed, and a TXT record at the
// same name may say why.
#include <string>
#include <vector>

#include "mailguard/outside/dns.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::outside {

enum class Listing { NotListed, Listed, Error };
const char* toString(Listing l);

struct BlocklistResult {
  std::string zone;
  Listing listing = Listing::NotListed;
  std::vector<std::string> codes;  // the A answers ("127.0.0.2")
  std::string reason;              // the TXT answer when listed, else ""
  std::string error;               // with Listing::Error: what went wrong
  TimePoint firstSeen{};           // when this listing was first seen (zero: not listed)
};

// The query name for an IPv4 address in a zone; InvalidArgument for anything that is
// not a dotted quad or an empty zone.
Result<std::string> blocklistQueryName(const std::string& ipv4, const std::string& zone);

// Judges the A lookup alone (pure). Answers outside 127.0.0.0/8 (a resolver that rewrites
// NXDOMAIN, say), 127.0.0.1 (RFC 5782 5: never a listing) and Spamhaus's 127.255.255.x
// return codes (query refused: public or open resolver, too many queries, typing error)
// are errors, never listings.
BlocklistResult classifyBlocklistAnswer(const std::string& zone, const Result<DnsReply>& a);

// Looks the address up in one zone; when listed also asks for the TXT reason.
BlocklistResult checkBlocklist(Resolver& resolver, const std::string& ipv4,
                               const std::string& zone);

}  // namespace mailguard::outside
