#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

#include "mailguard/detector/detector.hpp"

namespace mailguard::detector {

// inet_pton/inet_ntop are pure conversions (no system call).
namespace {

// Dotted-quad IPv4 without a libc round trip: this runs once per attempt.
bool parseIpv4(std::string_view s, std::array<unsigned, 4>& out) {
  std::size_t part = 0;
  unsigned value = 0;
  std::size_t digits = 0;
  for (char c : s) {
    if (c == '.') {
      if (digits == 0 || part == 3) return false;
      out[part++] = value;
      value = 0;
      digits = 0;
    } else if (c >= '0' && c <= '9' && digits < 3) {
      value = value * 10 + static_cast<unsigned>(c - '0');
      ++digits;
    } else {
      return false;
    }
  }
  if (digits == 0 || part != 3 || value > 255) return false;
  out[3] = value;
  return std::all_of(out.begin(), out.end(), [](unsigned v) { return v <= 255; });
}

}  // namespace

std::string destinationKey(std::string_view address, const DetectorConfig& config) {
  std::array<unsigned, 4> v4{};
  if (parseIpv4(address, v4)) {
    const unsigned bits = std::min(config.ipv4PrefixBits, 32U);
    std::uint32_t ip = (v4[0] << 24U) | (v4[1] << 16U) | (v4[2] << 8U) | v4[3];
    ip = bits == 0 ? 0 : ip & (0xFFFFFFFFU << (32 - bits));
    return std::to_string(ip >> 24U) + "." + std::to_string((ip >> 16U) & 0xFFU) + "." +
           std::to_string((ip >> 8U) & 0xFFU) + "." + std::to_string(ip & 0xFFU) + "/" +
           std::to_string(bits);
  }
  const std::string text(address);
  std::array<unsigned char, 16> bytes{};
  int family = AF_INET;
  unsigned bits = config.ipv4PrefixBits;
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) != 1) {
    if (inet_pton(AF_INET6, text.c_str(), bytes.data()) != 1) return text;
    family = AF_INET6;
    bits = config.ipv6PrefixBits;
  }
  const unsigned total = family == AF_INET ? 32U : 128U;
  if (bits > total) bits = total;
  for (unsigned i = 0; i < total / 8; ++i) {
    const unsigned from = i * 8;
    if (from >= bits) {
      bytes[i] = 0;
    } else if (from + 8 > bits) {
      bytes[i] = static_cast<unsigned char>(bytes[i] & (0xFFU << (from + 8 - bits)));
    }
  }
  std::array<char, INET6_ADDRSTRLEN> out{};
  if (inet_ntop(family, bytes.data(), out.data(), out.size()) == nullptr) return text;
  return std::string(out.data()) + "/" + std::to_string(bits);
}

}  // namespace mailguard::detector
