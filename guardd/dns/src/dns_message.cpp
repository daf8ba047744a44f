// DNS messages read with glibc's libresolv: ns_initparse() checks the header and walks
// every section's bounds once, ns_parserr() expands each record's (possibly compressed)
// owner name. We read questions and A/AAAA records only.
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mailguard/dns/dns.hpp"

namespace mailguard::dns {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  while (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

}  // namespace

Result<Message> parseMessage(std::span<const std::uint8_t> wire) {
  ns_msg handle{};
  if (wire.size() > static_cast<std::size_t>(NS_MAXMSG) ||
      ns_initparse(wire.data(), static_cast<int>(wire.size()), &handle) != 0)
    return invalidArgument("not a whole DNS message (" + std::to_string(wire.size()) +
                           " bytes): " + std::strerror(errno));
  Message m;
  m.response = ns_msg_getflag(handle, ns_f_qr) != 0;
  const int questions = ns_msg_count(handle, ns_s_qd);
  for (int i = 0; i < questions; ++i) {
    ns_rr rr{};
    if (ns_parserr(&handle, ns_s_qd, i, &rr) != 0) break;
    m.questions.push_back(Question{lower(ns_rr_name(rr)), ns_rr_type(rr)});
  }
  for (const ns_sect section : {ns_s_an, ns_s_ar}) {
    const int n = ns_msg_count(handle, section);
    for (int i = 0; i < n; ++i) {
      ns_rr rr{};
      if (ns_parserr(&handle, section, i, &rr) != 0) break;
      if (ns_rr_class(rr) != ns_c_in) continue;
      std::array<char, INET6_ADDRSTRLEN> text{};
      const auto type = ns_rr_type(rr);
      if (type == ns_t_a && ns_rr_rdlen(rr) == 4) {
        ::inet_ntop(AF_INET, ns_rr_rdata(rr), text.data(), text.size());
      } else if (type == ns_t_aaaa && ns_rr_rdlen(rr) == 16) {
        ::inet_ntop(AF_INET6, ns_rr_rdata(rr), text.data(), text.size());
      } else {
        continue;
      }
      m.addresses.push_back(AddressAnswer{lower(ns_rr_name(rr)), text.data(), ns_rr_ttl(rr)});
    }
  }
  return m;
}

Result<Message> parsePayload(std::span<const std::uint8_t> payload, bool tcp) {
  if (!tcp) return parseMessage(payload);
  if (payload.size() < 2) return invalidArgument("a TCP DNS segment shorter than its prefix");
  const std::size_t length = (std::size_t{payload[0]} << 8) | payload[1];
  if (payload.size() - 2 < length)
    return invalidArgument("a TCP DNS message split over segments or longer than the copy");
  return parseMessage(payload.subspan(2, length));
}

bool isMailServerName(std::string_view name) {
  const auto dot = name.find('.');
  if (dot == std::string_view::npos) return false;  // a bare label is no server's name
  std::string_view label = name.substr(0, dot);
  while (!label.empty() && std::isdigit(static_cast<unsigned char>(label.back())))
    label.remove_suffix(1);
  return label == "mail" || label == "smtp" || label == "mx" || label == "relay";
}

bool resolverIsLocal(const std::filesystem::path& resolvConf,
                     const std::filesystem::path& nscdSocket) {
  std::error_code ec;
  if (std::filesystem::exists(nscdSocket, ec)) return true;
  std::ifstream in(resolvConf);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    // The first nameserver is the one asked first (and usually the only one).
    in_addr v4{};
    in6_addr v6{};
    if (::inet_pton(AF_INET, value.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    if (::inet_pton(AF_INET6, value.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    return false;
  }
  // No nameserver line: glibc then asks 127.0.0.1 (resolv.conf(5)).
  return true;
}

Asker Asker::ofBoottime(std::uint32_t tgid, std::uint64_t startBoottimeNs) {
  static const auto ticksPerSecond = static_cast<std::uint64_t>(::sysconf(_SC_CLK_TCK));
  return Asker{tgid, startBoottimeNs / (1'000'000'000ULL / ticksPerSecond)};
}

}  // namespace mailguard::dns
