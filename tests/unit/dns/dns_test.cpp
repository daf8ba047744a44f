#include <arpa/nameser.h>
#include <netinet/in.h>
#include <resolv.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mailguard/dns/dns.hpp"

namespace mailguard::dns {
namespace {

using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

// A query as glibc's resolver sends it (res_mkquery).
Bytes query(const std::string& name, int type) {
  std::array<std::uint8_t, 512> buf{};
  const int n = res_mkquery(ns_o_query, name.c_str(), ns_c_in, type, nullptr, 0, nullptr,
                            buf.data(), static_cast<int>(buf.size()));
  EXPECT_GT(n, 0) << name;
  return Bytes(buf.begin(), buf.begin() + std::max(n, 0));
}

void put16(Bytes& b, unsigned v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v & 0xff));
}
void put32(Bytes& b, std::uint32_t v) {
  put16(b, v >> 16);
  put16(b, v & 0xffff);
}

// The answer a name server gives to `query(name, MX)`: one MX record naming `host`, and
// the host's A record in the additional section, both with owner names compressed to
// the question's name (offset 12), as dnsmasq and BIND write them.
Bytes mxResponse(const std::string& name, const std::string& hostLabel,
                 std::array<std::uint8_t, 4> addr, std::uint32_t ttl) {
  Bytes b = query(name, ns_t_mx);
  b[2] |= 0x80;  // QR
  b[7] = 1;      // ANCOUNT
  b[11] = 1;     // ARCOUNT
  // MX: owner = pointer to the question's name; RDATA = preference + hostLabel.<name>
  const std::size_t hostAt = b.size() + 12 + 2;
  put16(b, 0xc00c);
  put16(b, ns_t_mx);
  put16(b, ns_c_in);
  put32(b, ttl);
  put16(b, static_cast<unsigned>(2 + 1 + hostLabel.size() + 2));
  put16(b, 10);
  b.push_back(static_cast<std::uint8_t>(hostLabel.size()));
  b.insert(b.end(), hostLabel.begin(), hostLabel.end());
  put16(b, 0xc00c);
  // A of the host: owner = pointer to the host name in the MX RDATA.
  put16(b, static_cast<unsigned>(0xc000 | hostAt));
  put16(b, ns_t_a);
  put16(b, ns_c_in);
  put32(b, ttl);
  put16(b, 4);
  b.insert(b.end(), addr.begin(), addr.end());
  return b;
}

TEST(DnsMessage, ReadsTheQuestionOfAResolverQuery) {
  const auto m = parseMessage(query("Example.TEST", ns_t_mx));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_FALSE(m->response);
  ASSERT_EQ(m->questions.size(), 1U);
  EXPECT_EQ(m->questions[0].name, "example.test");
  EXPECT_EQ(m->questions[0].type, kTypeMx);
}

TEST(DnsMessage, ReadsAddressesOfAnswerAndAdditionalSections) {
  const auto m = parseMessage(mxResponse("victim.test", "mx", {127, 1, 0, 25}, 300));
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_TRUE(m->response);
  ASSERT_EQ(m->addresses.size(), 1U);
  EXPECT_EQ(m->addresses[0].name, "mx.victim.test");
  EXPECT_EQ(m->addresses[0].address, "127.1.0.25");
  EXPECT_EQ(m->addresses[0].ttl, 300U);
}

TEST(DnsMessage, RefusesTruncatedMessagesAndReadsTcpLengthPrefix) {
  auto wire = mxResponse("victim.test", "mx", {127, 1, 0, 25}, 300);
  Bytes cut(wire.begin(), wire.end() - 3);
  EXPECT_FALSE(parseMessage(cut).has_value());
  Bytes tcp;
  put16(tcp, static_cast<unsigned>(wire.size()));
  tcp.insert(tcp.end(), wire.begin(), wire.end());
  const auto m = parsePayload(tcp, true);
  ASSERT_TRUE(m.has_value()) << m.error().message;
  EXPECT_EQ(m->addresses.size(), 1U);
  // A segment that is only the first part of a message.
  Bytes partial(tcp.begin(), tcp.end() - 5);
  EXPECT_FALSE(parsePayload(partial, true).has_value());
}

TEST(DnsMessage, KnowsMailServerNames) {
  EXPECT_TRUE(isMailServerName("mail.example.test"));
  EXPECT_TRUE(isMailServerName("smtp2.example.test"));
  EXPECT_TRUE(isMailServerName("mx.example.test"));
  EXPECT_TRUE(isMailServerName("relay.isp.test"));
  EXPECT_FALSE(isMailServerName("mailbox.example.test"));
  EXPECT_FALSE(isMailServerName("www.example.test"));
  EXPECT_FALSE(isMailServerName("mail"));
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    path_ = std::filesystem::temp_directory_path() /
            ("mailguard-resolv-" + std::to_string(::getpid()) + "-" + std::to_string(n_++));
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  static inline int n_ = 0;
  std::filesystem::path path_;
};

TEST(ResolverIsLocal, LoopbackNameserverOrNscdIsLocal) {
  const std::filesystem::path noNscd = "/nonexistent/nscd/socket";
  TempFile resolved("# systemd-resolved\nnameserver 127.0.0.53\noptions edns0\n");
  EXPECT_TRUE(resolverIsLocal(resolved.path(), noNscd));
  TempFile v6("nameserver ::1\n");
  EXPECT_TRUE(resolverIsLocal(v6.path(), noNscd));
  TempFile remote("search lan\nnameserver 192.168.1.1\nnameserver 127.0.0.1\n");
  EXPECT_FALSE(resolverIsLocal(remote.path(), noNscd));
  EXPECT_TRUE(resolverIsLocal(remote.path(), remote.path())) << "nscd's socket exists";
  TempFile none("search lan\n");
  EXPECT_TRUE(resolverIsLocal(none.path(), noNscd)) << "glibc then asks 127.0.0.1";
}

Message parsed(const Bytes& wire) {
  auto m = parseMessage(wire);
  EXPECT_TRUE(m.has_value());
  return m ? *m : Message{};
}

const MonoTime kT0{std::chrono::hours{1000}};

TEST(Observations, MxQuestionThenItsAnswerThenConnect) {
  Observations obs(false);
  const Asker bot{4242, 777};
  EXPECT_EQ(obs.record(bot, parsed(query("victim.test", ns_t_mx)), kT0),
            std::vector<std::string>{"victim.test"});
  obs.record(bot, parsed(mxResponse("victim.test", "mx", {127, 1, 0, 25}, 300)), kT0 + 1ms);
  const auto e = obs.evidence(bot, "127.1.0.25", kT0 + 2s, true);
  EXPECT_TRUE(e.seen);
  EXPECT_TRUE(e.mxQueried);
  EXPECT_TRUE(e.dstResolved);
  EXPECT_FALSE(e.mailNameQueried);
  EXPECT_EQ(obs.queries(), 1U);
  EXPECT_EQ(obs.answers(), 1U);
  // Another address: not resolved (N2), though MX was asked.
  const auto other = obs.evidence(bot, "127.9.9.9", kT0 + 2s, true);
  EXPECT_TRUE(other.mxQueried);
  EXPECT_FALSE(other.dstResolved);
}

TEST(Observations, WindowsAndTtlsExpire) {
  Observations obs(false);
  const Asker bot{4242, 777};
  obs.record(bot, parsed(query("victim.test", ns_t_mx)), kT0);
  obs.record(bot, parsed(mxResponse("victim.test", "mx", {127, 1, 0, 25}, 0)), kT0);
  EXPECT_TRUE(obs.evidence(bot, "127.1.0.25", kT0 + 59s, true).dstResolved)
      << "a TTL of 0 counts for a minute";
  const auto later = obs.evidence(bot, "127.1.0.25", kT0 + 61s, true);
  EXPECT_FALSE(later.mxQueried);
  EXPECT_FALSE(later.dstResolved);
  EXPECT_TRUE(later.seen);
}

TEST(Observations, ALookupByAnotherProcessIsNotChargedToThisOne) {
  Observations obs(false);
  const Asker client{100, 5}, bot{200, 6}, reusedPid{100, 9};
  obs.record(client, parsed(query("mail.isp.test", ns_t_a)), kT0);
  obs.record(client, parsed(query("isp.test", ns_t_mx)), kT0);
  EXPECT_TRUE(obs.evidence(client, "127.0.0.1", kT0, true).mailNameQueried);
  for (const auto& other : {bot, reusedPid}) {
    const auto e = obs.evidence(other, "127.0.0.1", kT0, true);
    EXPECT_TRUE(e.seen) << "no local resolver: a process that asks nothing is seen asking nothing";
    EXPECT_FALSE(e.mxQueried);
    EXPECT_FALSE(e.mailNameQueried);
  }
}

TEST(Observations, SeenOnlyWhereAbsenceMeansSomething) {
  const Asker quiet{1, 1}, direct{2, 2};
  Observations local(true);
  local.record(direct, parsed(query("victim.test", ns_t_mx)), kT0);
  EXPECT_FALSE(local.evidence(quiet, "127.1.0.25", kT0, true).seen)
      << "its lookups went through the local resolver, in the resolver's name";
  EXPECT_TRUE(local.evidence(direct, "127.1.0.25", kT0, true).seen)
      << "it asked a name server itself";
  Observations remote(false);
  EXPECT_FALSE(remote.evidence(quiet, "127.1.0.25", kT0, false).seen) << "no tap";
}

TEST(Observations, LogsAnMxDomainOncePerMinuteAndStaysBounded) {
  Limits limits;
  limits.askers = 2;
  limits.perAsker = 3;
  Observations obs(false, limits);
  const Asker bot{7, 7};
  const auto mx = parsed(query("victim.test", ns_t_mx));
  EXPECT_EQ(obs.record(bot, mx, kT0).size(), 1U);
  EXPECT_TRUE(obs.record(bot, mx, kT0 + 30s).empty());
  EXPECT_EQ(obs.record(bot, mx, kT0 + 61s).size(), 1U);
  for (int i = 0; i < 10; ++i)
    obs.record(bot, parsed(query("d" + std::to_string(i) + ".test", ns_t_mx)), kT0 + 62s);
  // The oldest domain was forgotten (3 per asker), so it is news again.
  EXPECT_EQ(obs.record(bot, mx, kT0 + 63s).size(), 1U);
  // Three askers, room for two: the least recent goes.
  obs.record(Asker{8, 8}, mx, kT0 + 64s);
  obs.record(Asker{9, 9}, mx, kT0 + 65s);
  EXPECT_FALSE(obs.evidence(bot, "127.0.0.1", kT0 + 66s, true).mxQueried);
  EXPECT_TRUE(obs.evidence(Asker{9, 9}, "127.0.0.1", kT0 + 66s, true).mxQueried);
}

TEST(Observations, MatchesAnIpv4DestinationGivenAsMappedIpv6) {
  Observations obs(false);
  const Asker a{3, 3};
  obs.record(a, parsed(mxResponse("victim.test", "mx", {127, 1, 0, 25}, 300)), kT0);
  EXPECT_TRUE(obs.evidence(a, "::ffff:127.1.0.25", kT0, true).dstResolved);
}

}  // namespace
}  // namespace mailguard::dns
