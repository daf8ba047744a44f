#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "mailguard/dns/dns.hpp"

namespace mailguard::dns {
namespace {

// The address in inet_ntop's form, so "::FFFF:..." or a zero-padded literal compares
// equal to what an answer gave; unchanged when it is not an address.
std::string canonical(std::string_view text) {
  const std::string s(text);
  std::array<char, INET6_ADDRSTRLEN> out{};
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, s.c_str(), &v4) == 1)
    return ::inet_ntop(AF_INET, &v4, out.data(), out.size()) ? out.data() : s;
  if (::inet_pton(AF_INET6, s.c_str(), &v6) == 1) {
    // An IPv4 destination reached through an IPv6 socket (::ffff:a.b.c.d) was resolved
    // as an A record.
    if (IN6_IS_ADDR_V4MAPPED(&v6)) {
      std::memcpy(&v4, &v6.s6_addr[12], 4);
      return ::inet_ntop(AF_INET, &v4, out.data(), out.size()) ? out.data() : s;
    }
    return ::inet_ntop(AF_INET6, &v6, out.data(), out.size()) ? out.data() : s;
  }
  return s;
}

template <class T>
void bound(std::deque<T>& q, std::size_t limit) {
  while (q.size() > limit) q.pop_front();
}

}  // namespace

Observations::Observations(bool localResolver, Limits limits)
    : localResolver_(localResolver), limits_(limits), records_(limits.askers) {}

std::vector<std::string> Observations::record(const Asker& asker, const Message& message,
                                              MonoTime now) {
  std::vector<std::string> toLog;
  auto& r = records_.tryPut(asker, Record{}).first;
  records_.touch(asker);
  if (!message.response) {
    ++queries_;
    r.queried = true;
    for (const auto& q : message.questions) {
      if (q.type == kTypeMx) {
        auto it = std::find_if(r.mx.begin(), r.mx.end(),
                               [&](const Named& n) { return n.name == q.name; });
        if (it == r.mx.end()) {
          r.mx.push_back(Named{q.name, now, now});
          bound(r.mx, limits_.perAsker);
          toLog.push_back(q.name);
        } else {
          it->asked = now;
          if (now - it->logged >= limits_.logEvery) {
            it->logged = now;
            toLog.push_back(q.name);
          }
        }
      } else if ((q.type == kTypeA || q.type == kTypeAaaa) && isMailServerName(q.name)) {
        auto it = std::find_if(r.mailNames.begin(), r.mailNames.end(),
                               [&](const Named& n) { return n.name == q.name; });
        if (it == r.mailNames.end()) {
          r.mailNames.push_back(Named{q.name, now, now});
          bound(r.mailNames, limits_.perAsker);
        } else {
          it->asked = now;
        }
      }
    }
    return toLog;
  }
  ++answers_;
  for (const auto& a : message.addresses) {
    const auto ttl = std::clamp(std::chrono::seconds{a.ttl}, limits_.minTtl, limits_.maxTtl);
    const auto until = now + ttl;
    const auto address = canonical(a.address);
    auto it = std::find_if(r.addresses.begin(), r.addresses.end(),
                           [&](const Resolved& x) { return x.address == address; });
    if (it != r.addresses.end()) {
      it->until = std::max(it->until, until);
    } else {
      r.addresses.push_back(Resolved{address, until});
      bound(r.addresses, limits_.perAsker);
    }
  }
  return toLog;
}

detector::DnsEvidence Observations::evidence(const Asker& asker, std::string_view dst, MonoTime now,
                                             bool tapRunning) const {
  detector::DnsEvidence e;
  if (!tapRunning) return e;
  const Record* r = records_.find(asker);
  const bool queried = r != nullptr && r->queried;
  e.seen = !localResolver_ || queried;
  if (!e.seen || r == nullptr) return e;
  const auto recent = [&](const Named& n) { return now - n.asked <= limits_.window; };
  e.mxQueried = std::any_of(r->mx.begin(), r->mx.end(), recent);
  e.mailNameQueried = std::any_of(r->mailNames.begin(), r->mailNames.end(), recent);
  const auto address = canonical(dst);
  e.dstResolved = std::any_of(r->addresses.begin(), r->addresses.end(), [&](const Resolved& x) {
    return x.address == address && now <= x.until;
  });
  return e;
}

}  // namespace mailguard::dns
