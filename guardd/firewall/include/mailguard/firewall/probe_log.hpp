#pragma once
// Inbound probes of mail ports: host_in logs them to an NFLOG group, already
// rate-limited in the kernel (`limit rate`); NflogProbeSource reads them and
// ProbeRecorder folds them into bounded (source, port, count) records, so a port scan
// costs a few records, never one row per packet.
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::firewall {

struct ProbeEvent {
  int family = 0;  // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> source{};
  std::uint16_t port = 0;  // destination (mail) port
  [[nodiscard]] std::string sourceAddress() const;
};

// Parses the messages of one NFLOG datagram (NFULNL_MSG_PACKET with NFULA_PAYLOAD
// starting at the network header). Messages that are not TCP probes, or carry another
// prefix than rules::kProbeLogPrefix, are skipped.
std::vector<ProbeEvent> parseNflogDatagram(std::span<const std::uint8_t> datagram);

// Binds to one NFLOG group (nfnetlink_log; needs CAP_NET_ADMIN). Only one reader per
// group per network namespace: a second bind fails with EBUSY.
class NflogProbeSource {
 public:
  static Result<std::unique_ptr<NflogProbeSource>> open(std::uint16_t group);
  ~NflogProbeSource();
  NflogProbeSource(const NflogProbeSource&) = delete;
  NflogProbeSource& operator=(const NflogProbeSource&) = delete;

  [[nodiscard]] int fd() const { return fd_.get(); }  // for the event loop (EPOLLIN)
  // Everything queued now, without blocking.
  Result<std::vector<ProbeEvent>> readAvailable();

 private:
  NflogProbeSource() = default;
  Fd fd_;
};

struct ProbeRecord {
  int family = 0;
  std::array<std::uint8_t, 16> source{};
  std::uint16_t port = 0;
  std::uint64_t count = 0;
  TimePoint first{};
  TimePoint last{};
  [[nodiscard]] std::string sourceAddress() const;
};

// Folds events into at most `maxRecords` (source, port) records; events for a new key
// once full are counted in dropped(). drain() hands the changed records to the store
// (one batch per tick) and starts a new period.
class ProbeRecorder {
 public:
  ProbeRecorder(const Clock& clock, std::size_t maxRecords = 256);
  void record(const ProbeEvent& event);
  [[nodiscard]] std::vector<ProbeRecord> records() const;
  std::vector<ProbeRecord> drain();
  [[nodiscard]] std::uint64_t dropped() const { return dropped_; }
  [[nodiscard]] std::uint64_t events() const { return events_; }

 private:
  using Key = std::tuple<int, std::array<std::uint8_t, 16>, std::uint16_t>;
  const Clock& clock_;
  std::size_t maxRecords_;
  std::map<Key, ProbeRecord> records_;
  std::uint64_t dropped_ = 0;
  std::uint64_t events_ = 0;
};

}  // namespace mailguard::firewall
