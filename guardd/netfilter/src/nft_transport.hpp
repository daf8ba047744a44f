#pragma once
// The nf_tables transport: one NETLINK_NETFILTER socket that sends a batch and reads
// every ack, or sends one request and reads its answers. Private to guardd/netfilter.
#include <linux/netlink.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mailguard/netfilter/batch.hpp"
#include "mailguard/netfilter/netlink.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::netfilter {

// strerror(err) plus what the user can do about it ("guardd needs root /
// CAP_NET_ADMIN", "is the module available?").
std::string nftErrnoText(int err);

class NftTransport {
 public:
  // A bound NETLINK_NETFILTER socket (blocking; every wait is a poll with a timeout).
  static Result<NftTransport> open();

  [[nodiscard]] std::uint32_t portId() const { return portId_; }
  // The next free sequence number; a batch built from it is sent with send().
  [[nodiscard]] std::uint32_t nextSeq() const { return seq_; }
  // Takes one sequence number for a single request.
  std::uint32_t takeSeq() { return seq_++; }

  // The first message of a batch the kernel refused: its errno and what it did.
  struct Failure {
    int err = 0;
    std::string what;
  };
  // Sends the batch and reads one ack per acked message (nfnetlink processes a batch
  // synchronously inside sendmsg, so they are all queued when send returns). An error
  // is a transport failure; a refused message is the optional Failure.
  Result<std::optional<Failure>> send(const NftBatch& batch);

  // One request (NLM_F_DUMP, or NLM_F_ACK for a single object); every answer to it goes
  // to `each` until NLMSG_DONE or the ack. A refusal is an error carrying its errno.
  Result<void> request(const nlmsghdr* request, const std::function<void(const nlmsghdr*)>& each);

 private:
  NftTransport() = default;
  // Waits for the next datagram; 0 on timeout, <0 with errno on error.
  ssize_t receiveOne(int timeoutMs);

  MnlSocketPtr socket_;
  std::uint32_t portId_ = 0;
  std::uint32_t seq_ = 0;
  std::vector<char> rx_;
};

}  // namespace mailguard::netfilter
