#include "mailguard/outside/dns.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>

#include <array>
#include <charconv>
#include <cstring>
#include <memory>

namespace mailguard::outside {
namespace {

struct Nameserver {
  in_addr address{};
  std::uint16_t port = 53;
};

Result<Nameserver> parseNameserver(const std::string& spec) {
  Nameserver ns;
  std::string host = spec;
  if (const auto colon = spec.find(':'); colon != std::string::npos) {
    host = spec.substr(0, colon);
    const std::string port = spec.substr(colon + 1);
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc{} || end != port.data() + port.size() || value == 0 || value > 65535) {
      return invalidArgument("\"" + spec + "\": the port is not 1-65535");
    }
    ns.port = static_cast<std::uint16_t>(value);
  }
  if (::inet_pton(AF_INET, host.c_str(), &ns.address) != 1) {
    return invalidArgument("\"" + spec + "\" is not an IPv4 address (A.B.C.D or A.B.C.D:PORT)");
  }
  return ns;
}

// res_nclose frees what res_ninit allocated; the state itself is ours.
struct ResState {
  struct __res_state state {};
  bool open = false;
  ~ResState() {
    if (open) ::res_nclose(&state);
  }
};

std::string h_errnoText(int code) {
  switch (code) {
    case TRY_AGAIN:
      return "no answer (timeout or SERVFAIL)";
    case NO_RECOVERY:
      return "the server refused or could not answer (REFUSED, FORMERR, NOTIMP)";
    default:
      return "lookup failed (h_errno " + std::to_string(code) + ")";
  }
}

}  // namespace

Result<void> validateNameserver(const std::string& spec) {
  if (auto ns = parseNameserver(spec); !ns) return ns.error();
  return {};
}

Result<DnsReply> ResolvResolver::lookup(const std::string& name, RecordType type) {
  auto rs = std::make_unique<ResState>();
  if (::res_ninit(&rs->state) != 0) return makeError("Failed to set up the resolver");
  rs->open = true;
  rs->state.retrans = static_cast<int>(config_.timeout.count());
  rs->state.retry = config_.attempts;
  // No search list: the names asked are absolute, and a search suffix would turn an
  // NXDOMAIN (not listed) into a question about some other name.
  rs->state.options &= ~static_cast<unsigned long>(RES_DEFNAMES | RES_DNSRCH);
  if (!config_.nameserver.empty()) {
    auto ns = parseNameserver(config_.nameserver);
    if (!ns) return ns.error();
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(ns->port);
    sin.sin_addr = ns->address;
    // glibc reads nsaddr_list[i] unless _u._ext.nsaddrs[i] holds an IPv6 server from
    // resolv.conf; that one is overwritten in place (it is a sockaddr_in6, larger).
    rs->state.nsaddr_list[0] = sin;
    if (rs->state._u._ext.nsaddrs[0] != nullptr) {
      std::memset(rs->state._u._ext.nsaddrs[0], 0, sizeof(sockaddr_in6));
      std::memcpy(rs->state._u._ext.nsaddrs[0], &sin, sizeof sin);
    }
    rs->state.nscount = 1;
  }

  std::array<unsigned char, 4096> answer{};
  const int qtype = type == RecordType::A ? ns_t_a : ns_t_txt;
  const int len = ::res_nquery(&rs->state, name.c_str(), ns_c_in, qtype, answer.data(),
                               static_cast<int>(answer.size()));
  if (len < 0) {
    const int code = rs->state.res_h_errno;
    if (code == HOST_NOT_FOUND) return DnsReply{false, {}};
    if (code == NO_DATA) return DnsReply{true, {}};
    return makeError("Failed to look up '" + name + "': " + h_errnoText(code));
  }
  ns_msg msg{};
  if (::ns_initparse(answer.data(), std::min(len, static_cast<int>(answer.size())), &msg) != 0) {
    return makeError("Failed to look up '" + name + "': the answer does not parse");
  }
  DnsReply reply;
  const int count = ns_msg_count(msg, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr{};
    if (::ns_parserr(&msg, ns_s_an, i, &rr) != 0) continue;
    const unsigned char* data = ns_rr_rdata(rr);
    const std::size_t size = ns_rr_rdlen(rr);
    // CNAMEs on the way to the answer are in the answer section too: skipped.
    if (type == RecordType::A && ns_rr_type(rr) == ns_t_a && size == 4) {
      char text[INET_ADDRSTRLEN] = {};
      ::inet_ntop(AF_INET, data, text, sizeof text);
      reply.records.emplace_back(text);
    } else if (type == RecordType::Txt && ns_rr_type(rr) == ns_t_txt) {
      // RDATA is one or more <length><bytes> character-strings (RFC 1035 3.3.14).
      std::string joined;
      std::size_t at = 0;
      while (at < size) {
        const std::size_t n = data[at];
        if (at + 1 + n > size) break;
        joined.append(reinterpret_cast<const char*>(data + at + 1), n);
        at += 1 + n;
      }
      reply.records.push_back(std::move(joined));
    }
  }
  return reply;
}

}  // namespace mailguard::outside
