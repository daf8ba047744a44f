#pragma once
// DNS lookups for the outside checks, behind a role interface so the judging code is
// tested on recorded answers and the real resolver against a DNS server in a namespace.
#include <chrono>
#include <string>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::outside {

enum class RecordType { A, Txt };

struct DnsReply {
  // False: the name does not exist (NXDOMAIN). True with no records: the name exists but
  // has none of that type (NOERROR, NODATA).
  bool nameExists = true;
  // A: dotted quads; TXT: each record's character-strings joined without a separator
  // (RFC 7208 3.3: that is how a split SPF record is read back).
  std::vector<std::string> records;
};

class Resolver {
 public:
  virtual ~Resolver() = default;
  // An error is a failed lookup (timeout, SERVFAIL, REFUSED), not an absent name.
  virtual Result<DnsReply> lookup(const std::string& name, RecordType type) = 0;
};

struct ResolverConfig {
  // "" = the nameservers of /etc/resolv.conf; "A.B.C.D" or "A.B.C.D:PORT" = only that one.
  std::string nameserver;
  std::chrono::seconds timeout{3};  // per try
  int attempts = 2;
};

// Parses "A.B.C.D" or "A.B.C.D:PORT"; an error names what is wrong.
Result<void> validateNameserver(const std::string& spec);

// glibc's stub resolver (res_nquery) on a res_state of its own: blocking, bounded by
// timeout x attempts x nameservers; one per thread.
class ResolvResolver final : public Resolver {
 public:
  explicit ResolvResolver(ResolverConfig config) : config_(std::move(config)) {}
  Result<DnsReply> lookup(const std::string& name, RecordType type) override;

 private:
  ResolverConfig config_;
};

}  // namespace mailguard::outside
