#include "mailguard/outside/address.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>

namespace mailguard::outside {
namespace {

std::optional<std::uint32_t> parseIpv4(const std::string& text) {
  in_addr a{};
  // glibc's inet_pton takes only the four-part dotted decimal form (no "1.2.3", no
  // leading zeros): exactly what a source must answer.
  if (::inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

bool in(std::uint32_t v, std::uint32_t net, int bits) {
  const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
  return (v & mask) == net;
}

std::string groupOf(const std::string& name) { return name.substr(0, name.find(':')); }

// Why a source's answer is no public address, in the owner's words. The router's own
// address not being public is the useful news: something else translates again.
std::string whyNotPublic(const std::string& source, const std::string& address, AddressKind kind) {
  const bool router = groupOf(source) == "router";
  const std::string what = router ? "the router's own address " + address : "the answer " + address;
  switch (kind) {
    case AddressKind::SharedCgnat:
      return what +
             " is not public: your provider shares addresses (carrier-grade NAT), so the "
             "address the internet sees belongs to the provider and is shared with other "
             "customers, whose mail can put it on a blocklist";
    case AddressKind::Private:
      return what + " is private: another router stands between it and the internet (double NAT)";
    case AddressKind::Special:
      return what + " is not a public address";
    case AddressKind::NotIpv4:
      return "answered \"" + address + "\", which is not an IPv4 address";
    case AddressKind::Public:
      break;
  }
  return {};
}

// What a body may be quoted as in an error: printable ASCII, shortened.
std::string printable(const std::string& text) {
  constexpr std::size_t kShown = 40;
  std::string out;
  for (const char c : text.substr(0, kShown)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (text.size() > kShown) out += "...";
  return out;
}

}  // namespace

AddressKind classifyAddress(const std::string& text) {
  const auto parsed = parseIpv4(text);
  if (!parsed) return AddressKind::NotIpv4;
  const std::uint32_t v = *parsed;
  if (in(v, 0x0A000000, 8) || in(v, 0xAC100000, 12) || in(v, 0xC0A80000, 16)) {
    return AddressKind::Private;
  }
  if (in(v, 0x64400000, 10)) return AddressKind::SharedCgnat;
  if (in(v, 0x00000000, 8) || in(v, 0x7F000000, 8) || in(v, 0xA9FE0000, 16) || v >= 0xE0000000) {
    return AddressKind::Special;
  }
  return AddressKind::Public;
}

bool isLanAddress(const std::string& text) {
  const auto parsed = parseIpv4(text);
  if (!parsed) return false;
  const std::uint32_t v = *parsed;
  return in(v, 0x0A000000, 8) || in(v, 0xAC100000, 12) || in(v, 0xC0A80000, 16) ||
         in(v, 0xA9FE0000, 16) || in(v, 0x64400000, 10) || in(v, 0xC6120000, 15);
}

std::string urlHost(const std::string& url) {
  const std::string scheme = "http://";
  if (url.compare(0, scheme.size(), scheme) != 0) return {};
  const auto start = scheme.size();
  const auto end = url.find_first_of(":/", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

AddressFinding askSources(std::span<AddressSource* const> sources) {
  AddressFinding out;
  std::set<std::string> settled;  // groups that gave a non-public address
  for (AddressSource* source : sources) {
    const std::string name = source->name();
    if (settled.contains(groupOf(name))) continue;
    auto answer = source->ask();
    if (!answer) {
      out.notes.push_back(name + ": " + answer.error().message);
      continue;
    }
    if (answer->empty()) {
      out.notes.push_back(name + ": gave no address");
      continue;
    }
    std::optional<std::string> why;
    for (const auto& a : *answer) {
      const auto kind = classifyAddress(a);
      if (kind == AddressKind::Public) {
        out.address = a;
        out.source = name;
        return out;
      }
      if (!why) why = whyNotPublic(name, kind == AddressKind::NotIpv4 ? printable(a) : a, kind);
    }
    out.notes.push_back(name + ": " + *why);
    settled.insert(groupOf(name));
    if (groupOf(name) == "router" && classifyAddress(answer->front()) == AddressKind::SharedCgnat) {
      out.shared = true;
    }
  }
  return out;
}

Result<std::string> addressFromBody(const std::string& body) {
  const char* space = " \t\r\n";
  const auto first = body.find_first_not_of(space);
  if (first == std::string::npos) return makeError("the answer is empty");
  const auto last = body.find_last_not_of(space);
  std::string trimmed = body.substr(first, last - first + 1);
  if (!parseIpv4(trimmed)) {
    return makeError("the answer \"" + printable(trimmed) + "\" is not one IPv4 address");
  }
  return trimmed;
}

Result<std::vector<std::string>> DnsAddressSource::ask() {
  auto reply = resolver_->lookup(name_, RecordType::A);
  if (!reply) return makeError("the lookup failed (" + reply.error().message + ")");
  if (!reply->nameExists) return makeError("the name does not exist (NXDOMAIN)");
  return reply->records;
}

std::vector<std::unique_ptr<AddressSource>> makeAddressSources(const AddressSourceConfig& config) {
  std::vector<std::unique_ptr<AddressSource>> out;
  const auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(config.timeout);
  for (const auto& kind : config.order) {
    if (kind == "router") {
      // SSDP answers come within a second or two (the spec's MX); the rest of the timeout
      // would only be waited out when no router answers at all.
      out.push_back(
          std::make_unique<UpnpAddressSource>(std::min(timeout, std::chrono::milliseconds(2000))));
      out.push_back(std::make_unique<NatPmpAddressSource>(timeout));
    } else if (kind == "https" && !config.myipUrl.empty()) {
      out.push_back(
          std::make_unique<HttpsAddressSource>(config.myipUrl, config.myipCaFile, timeout));
    } else if (kind == "dns" && !config.myipName.empty() &&
               !config.myipResolver.nameserver.empty()) {
      out.push_back(std::make_unique<DnsAddressSource>(
          config.myipName, std::make_unique<ResolvResolver>(config.myipResolver)));
    }
  }
  return out;
}

}  // namespace mailguard::outside
