#include "dpkg_sums.hpp"

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>

namespace mailguard::service {
namespace {

std::uint64_t pathHash(std::string_view path) {  // FNV-1a: stable, and enough spread here
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : path) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

std::optional<std::array<std::uint8_t, 16>> parseMd5(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  std::array<std::uint8_t, 16> out{};
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 16; ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return out;
}

}  // namespace

DpkgSums DpkgSums::read(const std::filesystem::path& infoDir) {
  DpkgSums sums;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(infoDir, ec)) {
    if (entry.path().extension() != ".md5sums") continue;
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line)) {
      // "<32 hex>  usr/sbin/exim4"
      if (line.size() < 35 || line[32] != ' ' || line[33] != ' ') continue;
      const auto md5 = parseMd5(std::string_view(line).substr(0, 32));
      if (!md5) continue;
      sums.sums_.emplace_back(pathHash("/" + line.substr(34)), *md5);
    }
  }
  std::sort(sums.sums_.begin(), sums.sums_.end());
  sums.sums_.shrink_to_fit();
  return sums;
}

std::span<const DpkgSums::Entry> DpkgSums::entriesFor(std::string_view path) const {
  const auto [first, last] =
      std::equal_range(sums_.begin(), sums_.end(), Entry{pathHash(path), Md5{}},
                       [](const Entry& a, const Entry& b) { return a.first < b.first; });
  return {first, last};
}

template <class Test>
bool DpkgSums::underEitherPath(std::string_view path, Test test) const {
  // usrmerge: dpkg may list /bin/x for what is /usr/bin/x on disk.
  return test(entriesFor(path)) || (path.starts_with("/usr/") && test(entriesFor(path.substr(4))));
}

bool DpkgSums::recorded(std::string_view path, std::string_view md5Hex) const {
  const auto md5 = parseMd5(md5Hex);
  return md5 && underEitherPath(path, [&](std::span<const Entry> entries) {
           return std::any_of(entries.begin(), entries.end(),
                              [&](const Entry& e) { return e.second == *md5; });
         });
}

bool DpkgSums::knows(std::string_view path) const {
  return underEitherPath(path, [](std::span<const Entry> entries) { return !entries.empty(); });
}

}  // namespace mailguard::service
