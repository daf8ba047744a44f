#include "mailguard/rules/connection.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

namespace mailguard::rules {
namespace {

// inet_ntop gives the canonical text (RFC 5952 for IPv6, "::ffff:1.2.3.4" for mapped
// addresses), which is also what `ss` and `nft` print.
std::string formatAddress(int family, const std::array<std::uint8_t, 16>& bytes) {
  if (family != AF_INET && family != AF_INET6) return {};
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes.data(), buf, sizeof buf) == nullptr) return {};
  return buf;
}

}  // namespace

std::string ConnectionTuple::srcAddress() const { return formatAddress(family, src); }
std::string ConnectionTuple::dstAddress() const { return formatAddress(family, dst); }

}  // namespace mailguard::rules
