// The user-space half of the exec hook's command-line record: the same keyed SipHash-2-4
// of an argv area that mailguard.bpf.c computes at exec.
#include <algorithm>
#include <cstring>
#include <string_view>

#include "mailguard/kernel/kernel_identity.hpp"

namespace mailguard::kernel {
namespace {

constexpr std::uint64_t rotl(std::uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct SipState {
  std::uint64_t v0, v1, v2, v3;
  void round() {
    v0 += v1;
    v1 = rotl(v1, 13);
    v1 ^= v0;
    v0 = rotl(v0, 32);
    v2 += v3;
    v3 = rotl(v3, 16);
    v3 ^= v2;
    v0 += v3;
    v3 = rotl(v3, 21);
    v3 ^= v0;
    v2 += v1;
    v1 = rotl(v1, 17);
    v1 ^= v2;
    v2 = rotl(v2, 32);
  }
  void compress(std::uint64_t m) {
    v3 ^= m;
    round();
    round();
    v0 ^= m;
  }
};

}  // namespace

ArgvDigest argvDigest(const ArgvKey& key, std::string_view argvArea) {
  const std::string_view bytes = argvArea.substr(0, kArgvHashBound);
  SipState s{0x736f6d6570736575ULL ^ key[0], 0x646f72616e646f6dULL ^ key[1],
             0x6c7967656e657261ULL ^ key[0], 0x7465646279746573ULL ^ key[1]};
  // Native loads, as the BPF program's (SipHash proper on little-endian machines).
  const std::size_t words = bytes.size() / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t m = 0;
    std::memcpy(&m, bytes.data() + i * 8, 8);
    s.compress(m);
  }
  std::uint64_t last = 0;
  std::memcpy(&last, bytes.data() + words * 8, bytes.size() - words * 8);
  s.compress((static_cast<std::uint64_t>(bytes.size()) << 56) | last);
  s.v2 ^= 0xff;
  for (int i = 0; i < 4; ++i) s.round();
  ArgvDigest out;
  out.hash = s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
  out.length =
      static_cast<std::uint32_t>(std::min<std::size_t>(argvArea.size(), std::uint32_t{0xffffffff}));
  return out;
}

}  // namespace mailguard::kernel
