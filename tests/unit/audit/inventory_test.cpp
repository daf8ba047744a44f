#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <filesystem>

#include "mailguard/audit/inventory.hpp"

namespace mailguard::audit {
namespace {

std::array<std::uint8_t, 16> addr(int family, const char* text) {
  std::array<std::uint8_t, 16> a{};
  (void)inet_pton(family, text, a.data());
  return a;
}

TEST(Exposure, LoopbackOnlyFor127And1AndMappedLoopback) {
  EXPECT_EQ(exposureOf(AF_INET, addr(AF_INET, "127.0.0.1")), Exposure::Loopback);
  EXPECT_EQ(exposureOf(AF_INET, addr(AF_INET, "127.8.9.10")), Exposure::Loopback);
  EXPECT_EQ(exposureOf(AF_INET6, addr(AF_INET6, "::1")), Exposure::Loopback);
  EXPECT_EQ(exposureOf(AF_INET6, addr(AF_INET6, "::ffff:127.0.0.1")), Exposure::Loopback);
  EXPECT_EQ(exposureOf(AF_INET, addr(AF_INET, "0.0.0.0")), Exposure::External);
  EXPECT_EQ(exposureOf(AF_INET6, addr(AF_INET6, "::")), Exposure::External);
  EXPECT_EQ(exposureOf(AF_INET, addr(AF_INET, "192.168.1.5")), Exposure::External);
}

class FakeListeningSockets final : public ListeningSockets {
 public:
  Result<std::vector<ListeningSocket>> listTcp() override { return sockets; }
  std::vector<ListeningSocket> sockets;
};

TEST(Inventory, KeepsMailPortsSortedAndToleratesVanishedOwners) {
  FakeListeningSockets fake;
  fake.sockets = {{AF_INET, addr(AF_INET, "0.0.0.0"), 2525, 0, 0},
                  {AF_INET, addr(AF_INET, "0.0.0.0"), 22, 11, 0},
                  {AF_INET6, addr(AF_INET6, "::1"), 25, 12, 0},
                  {AF_INET, addr(AF_INET, "127.0.0.1"), 587, 13, 0}};
  // An empty /proc: nobody owns the sockets any more.
  const auto empty = std::filesystem::temp_directory_path() / "mailguard-empty-proc";
  std::filesystem::create_directories(empty);
  procinfo::DirProcFs proc(empty);
  procinfo::FileHasher hasher;
  procinfo::ProcessResolver resolver(proc, hasher);
  auto listeners = takeInventory(fake, resolver, {25, 465, 587, 2525});
  ASSERT_TRUE(listeners) << listeners.error().message;
  ASSERT_EQ(listeners->size(), 3U);
  EXPECT_EQ((*listeners)[0].port, 25);
  EXPECT_EQ((*listeners)[0].addressText(), "::1");
  EXPECT_EQ((*listeners)[0].exposure, Exposure::Loopback);
  EXPECT_EQ((*listeners)[2].port, 2525);
  EXPECT_TRUE((*listeners)[2].isWildcard());
  EXPECT_EQ((*listeners)[2].exposure, Exposure::External);
  for (const auto& l : *listeners) EXPECT_FALSE(l.pid);
}

}  // namespace
}  // namespace mailguard::audit
