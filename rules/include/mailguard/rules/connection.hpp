#pragma once
// The 5-tuple of a queued packet, as plain data.
#include <array>
#include <cstdint>
#include <string>

namespace mailguard::rules {

struct ConnectionTuple {
  int family = 0;                      // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> src{};  // IPv4 uses the first 4 bytes
  std::array<std::uint8_t, 16> dst{};
  std::uint16_t srcPort = 0;  // host byte order
  std::uint16_t dstPort = 0;

  [[nodiscard]] std::string srcAddress() const;  // "127.0.0.1", "::1"; "" for another family
  [[nodiscard]] std::string dstAddress() const;
  friend bool operator==(const ConnectionTuple&, const ConnectionTuple&) = default;
};

}  // namespace mailguard::rules
