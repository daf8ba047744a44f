#pragma once
// DNS as the detector needs it (research 2.2 N1-N3): which process asked for MX records
// of which domains, for A/AAAA of mail-server names, and which addresses it was told.
// The packets come from the kernel's port-53 tap (guardd/kernel), already attributed to
// the task that connected or sent to port 53; parsing is glibc's libresolv (ns_initparse,
// ns_parserr). Pure: no I/O but resolverIsLocal()'s reads.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/common/bounded_map.hpp"
#include "mailguard/detector/detector.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::dns {

inline constexpr std::uint16_t kTypeA = 1;
inline constexpr std::uint16_t kTypeMx = 15;
inline constexpr std::uint16_t kTypeAaaa = 28;

struct Question {
  std::string name;  // lower case, no final dot
  std::uint16_t type = 0;
};
struct AddressAnswer {
  std::string name;
  std::string address;  // inet_ntop text
  std::uint32_t ttl = 0;
};
// What guardd reads of one DNS message: its questions and the A/AAAA records of its
// answer and additional sections (an MX answer carries its hosts' addresses there).
struct Message {
  bool response = false;
  std::vector<Question> questions;
  std::vector<AddressAnswer> addresses;
};

// One DNS message (RFC 1035 wire format), or why not.
Result<Message> parseMessage(std::span<const std::uint8_t> wire);
// A tap payload: UDP is one message; a TCP segment starts with the 2-byte length prefix
// (RFC 1035 4.2.2) when it starts a message (a continuation segment does not parse).
Result<Message> parsePayload(std::span<const std::uint8_t> payload, bool tcp);

// A name a bot looks up to find a mail server by guessing (Musashi et al.): its first
// label is mail, smtp, mx or relay, optionally followed by digits ("mx1", "smtp2").
bool isMailServerName(std::string_view name);

// Whether this host's lookups go through a local caching resolver, which then asks the
// name servers itself: resolv.conf's first nameserver is a loopback address
// (systemd-resolved's 127.0.0.53, dnsmasq, unbound) or nscd's socket exists. Then a
// program's own lookups are not on port 53 in its name, and their absence means nothing.
bool resolverIsLocal(const std::filesystem::path& resolvConf = "/etc/resolv.conf",
                     const std::filesystem::path& nscdSocket = "/run/nscd/socket");

// The exact process: its tgid and its start time as /proc/PID/stat field 22 gives it
// (clock ticks), so a reused pid is another asker.
struct Asker {
  std::uint32_t pid = 0;
  std::uint64_t startTicks = 0;
  friend auto operator<=>(const Asker&, const Asker&) = default;
  // From a kernel stamp's task->start_boottime (ns).
  static Asker ofBoottime(std::uint32_t tgid, std::uint64_t startBoottimeNs);
};

struct Limits {
  std::size_t askers = 4096;          // processes remembered (the least recent go)
  std::size_t perAsker = 64;          // of each kind: MX names, mail names, addresses
  std::chrono::seconds window{60};    // N1/N3: asked this long before the attempt
  std::chrono::seconds minTtl{60};    // an answer counts at least this long (TTL 0)
  std::chrono::seconds maxTtl{3600};  // and at most this long, whatever its TTL
  std::chrono::seconds logEvery{60};  // one log line per asker and MX domain
};

// The bounded per-process record and the evidence read from it.
class Observations {
 public:
  // `localResolver`: see resolverIsLocal().
  explicit Observations(bool localResolver, Limits limits = {});

  // One message the asker sent (a question) or received (an answer). Returns the MX
  // domains it asked for that were not returned for it in the last logEvery (for the
  // daemon's log line).
  std::vector<std::string> record(const Asker& asker, const Message& message, MonoTime now);
  // A tap payload that did not parse (counted for status).
  void unparsed() { ++unparsed_; }

  // The DNS evidence for an attempt by `asker` to `dst` (an address literal). `seen`
  // only when the absence of a lookup means something: the tap runs, and the process
  // does its own DNS (no local caching resolver answers for it, or it was itself seen
  // asking a name server).
  [[nodiscard]] detector::DnsEvidence evidence(const Asker& asker, std::string_view dst,
                                               MonoTime now, bool tapRunning) const;

  [[nodiscard]] std::uint64_t queries() const { return queries_; }
  [[nodiscard]] std::uint64_t answers() const { return answers_; }
  [[nodiscard]] std::uint64_t unparsedCount() const { return unparsed_; }
  [[nodiscard]] bool localResolver() const { return localResolver_; }

 private:
  struct Named {
    std::string name;
    MonoTime asked;
    MonoTime logged;
  };
  struct Resolved {
    std::string address;
    MonoTime until;
  };
  struct Record {
    bool queried = false;  // seen sending to port 53 itself
    std::deque<Named> mx;
    std::deque<Named> mailNames;
    std::deque<Resolved> addresses;
  };

  bool localResolver_;
  Limits limits_;
  BoundedMap<Asker, Record> records_;
  std::uint64_t queries_ = 0;
  std::uint64_t answers_ = 0;
  std::uint64_t unparsed_ = 0;
};

}  // namespace mailguard::dns
