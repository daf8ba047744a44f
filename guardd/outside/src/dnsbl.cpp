#include "mailguard/outside/dnsbl.hpp"

#include <arpa/inet.h>

namespace mailguard::outside {

const char* toString(Listing l) {
  switch (l) {
    case Listing::NotListed:
      return "not-listed";
    case Listing::Listed:
      return "listed";
    case Listing::Error:
      return "error";
  }
  return "error";
}

Result<std::string> blocklistQueryName(const std::string& ipv4, const std::string& zone) {
  in_addr addr{};
  if (::inet_pton(AF_INET, ipv4.c_str(), &addr) != 1) {
    return invalidArgument("\"" + ipv4 + "\" is not an IPv4 address");
  }
  if (zone.empty()) return invalidArgument("an empty blocklist zone");
  const auto* b = reinterpret_cast<const unsigned char*>(&addr.s_addr);  // network order
  return std::to_string(b[3]) + "." + std::to_string(b[2]) + "." + std::to_string(b[1]) + "." +
         std::to_string(b[0]) + "." + zone;
}

namespace {

// Spamhaus's return codes that are not listings
// (spamhaus.org "DNSBL return codes": 127.255.255.252 typing error in the zone name,
// .254 query through a public/open resolver, .255 excessive number of queries).
std::string spamhausRefusal(const std::string& code) {
  if (code == "127.255.255.252") return "the list says the zone name is mistyped (127.255.255.252)";
  if (code == "127.255.255.254") {
    return "the list refuses queries through public or open resolvers (127.255.255.254): "
           "set [outside] nameserver to a resolver of your own";
  }
  if (code == "127.255.255.255") {
    return "the list refuses this resolver for too many queries (127.255.255.255)";
  }
  return "";
}

}  // namespace

BlocklistResult classifyBlocklistAnswer(const std::string& zone, const Result<DnsReply>& a) {
  BlocklistResult r;
  r.zone = zone;
  if (!a) {
    r.listing = Listing::Error;
    r.error = a.error().message;
    return r;
  }
  if (!a->nameExists || a->records.empty()) return r;  // NXDOMAIN (or NODATA): not listed
  r.codes = a->records;
  for (const auto& code : a->records) {
    in_addr addr{};
    if (::inet_pton(AF_INET, code.c_str(), &addr) != 1) {
      r.listing = Listing::Error;
      r.error = "the answer \"" + code + "\" is not an address";
      return r;
    }
    const auto* b = reinterpret_cast<const unsigned char*>(&addr.s_addr);
    if (b[0] != 127) {
      // A resolver that answers NXDOMAIN with an address of its own (an ISP's search
      // page) would otherwise make every list look like a listing.
      r.listing = Listing::Error;
      r.error = "the answer " + code +
                " is outside 127.0.0.0/8: the resolver rewrites answers or the zone is no "
                "blocklist";
      return r;
    }
    if (auto refusal = spamhausRefusal(code); !refusal.empty()) {
      r.listing = Listing::Error;
      r.error = refusal;
      return r;
    }
    if (code == "127.0.0.1") {
      r.listing = Listing::Error;
      r.error = "the answer 127.0.0.1 is no listing code (RFC 5782 section 5)";
      return r;
    }
  }
  r.listing = Listing::Listed;
  return r;
}

BlocklistResult checkBlocklist(Resolver& resolver, const std::string& ipv4,
                               const std::string& zone) {
  auto name = blocklistQueryName(ipv4, zone);
  if (!name) {
    BlocklistResult r;
    r.zone = zone;
    r.listing = Listing::Error;
    r.error = name.error().message;
    return r;
  }
  auto result = classifyBlocklistAnswer(zone, resolver.lookup(*name, RecordType::A));
  if (result.listing == Listing::Listed) {
    // The reason is a courtesy of the list: a failed TXT lookup leaves it empty.
    if (auto txt = resolver.lookup(*name, RecordType::Txt); txt && !txt->records.empty()) {
      for (const auto& t : txt->records) {
        result.reason += (result.reason.empty() ? "" : " ") + t;
      }
    }
  }
  return result;
}

}  // namespace mailguard::outside
