#pragma once
// The MD5 sums dpkg recorded for every file it installed (/var/lib/dpkg/info/*.md5sums),
// which the detector uses to tell a package-owned binary (a recognised MTA, an identity it
// may trust more) from a look-alike. A Debian desktop lists 100,000 files or more: kept as
// (path hash, MD5) pairs, about 24 bytes a file, where a map of strings took about 250
// (44 MB of guardd's RSS on the development machine).
#include <array>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace mailguard::service {

class DpkgSums {
 public:
  DpkgSums() = default;
  // Reads every *.md5sums of `infoDir`; unreadable files and malformed lines are skipped.
  static DpkgSums read(const std::filesystem::path& infoDir);

  // True when dpkg recorded `md5Hex` for `path` (or, with usrmerge, for the path without
  // its leading /usr: dpkg may list /bin/x for what is /usr/bin/x on disk).
  [[nodiscard]] bool recorded(std::string_view path, std::string_view md5Hex) const;
  [[nodiscard]] bool knows(std::string_view path) const;
  [[nodiscard]] std::size_t size() const { return sums_.size(); }

 private:
  using Md5 = std::array<std::uint8_t, 16>;
  using Entry = std::pair<std::uint64_t, Md5>;  // (hash of the path, recorded MD5)
  // The entries of the paths hashing like `path` (usually one: this path's).
  [[nodiscard]] std::span<const Entry> entriesFor(std::string_view path) const;
  // `test` on the entries of `path`, then of `path` without its leading /usr.
  template <class Test>
  [[nodiscard]] bool underEitherPath(std::string_view path, Test test) const;
  // Sorted by hash; paths whose hashes collide keep every MD5, and a match on any counts
  // only when the file's content is what dpkg recorded for one of them.
  std::vector<Entry> sums_;
};

}  // namespace mailguard::service
