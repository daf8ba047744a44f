#pragma once
// The MTA side of one milter connection, the small subset guardd needs: option
// negotiation, the queue id ("i" macro), the envelope (MAIL, RCPT), and a verdict at end
// of message. Written here rather than with libmilter: libmilter runs its own threads and
// accept loop (smfi_main), and guardd has one event loop with no locks (STYLE 6).
//
// Protocol facts relied on (sendmail's libmilter/docs and include/libmilter/mfdef.h, as
// postfix's milter8.c speaks them): each packet is a 4-byte big-endian length, then a
// command byte, then length-1 bytes of data. The MTA opens with OPTNEG (version, actions,
// protocol flags, 32 bits each); the reply names the actions the filter may take
// (SMFIF_QUARANTINE) and the stages it wants left out (SMFIP_NO*: connect, helo, headers,
// body, ...). Macros ('D') and ABORT get no reply; every other stage gets one; at end of
// body ('E') modification replies (quarantine) come before the final one.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

enum class MilterVerdict : std::uint8_t {
  Accept,      // deliver it
  Quarantine,  // postfix: into the hold queue (SMFIR_QUARANTINE), released or deleted later
  Discard,     // accepted and dropped without a bounce (SMFIR_DISCARD)
};

class MilterSession {
 public:
  // The message that reached its end and waits for verdict().
  struct Message {
    std::string queueId;  // the "i" macro; empty if the MTA did not send it
    std::string sender;
    std::vector<std::string> recipients;
  };

  // Takes bytes from the MTA and appends the replies due to `out`. Returns the message
  // once its end arrived: no further bytes are read until verdict() answered it. An error
  // means the connection must be closed (the MTA then applies the milter's default action).
  Result<std::optional<Message>> feed(std::string_view bytes, std::string& out);
  // The reply to the waiting message; `reason` goes with a quarantine. Then feed("", out)
  // goes on with what was buffered.
  void verdict(MilterVerdict v, std::string_view reason, std::string& out);
  // The MTA said QUIT.
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] bool waiting() const { return waiting_; }

  // A packet as the MTA or filter writes it (for replies and for tests).
  static std::string packet(char command, std::string_view data);

 private:
  Result<void> handle(char command, std::string_view data, std::string& out,
                      std::optional<Message>& ended);
  std::string buffer_;
  std::map<std::string, std::string> macros_;
  Message message_;
  bool negotiated_ = false;
  bool waiting_ = false;
  bool closed_ = false;
};

}  // namespace mailguard::mta
