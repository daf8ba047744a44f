#pragma once
// What a mail server answered a program's own plaintext SMTP session, read from the
// server's side of the stream only: the client's commands and the message are never
// read. Which reply answers RCPT follows from the order replies come in (RFC 5321 4.3.2:
// one reply per command, in order, also when pipelined): greeting, EHLO/HELO, then per
// transaction MAIL, the RCPTs, DATA's 354 and the end-of-data reply. AUTH's 334/235 are
// skipped; a 220 after the greeting is STARTTLS's go-ahead, after which nothing is
// readable. Only counts leave this class; the reply texts are never kept.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mailguard::replies {

enum class RcptReply { Accepted, UserUnknown, Blocklisted, Rejected, Deferred };

// One whole reply (its lines, "550-..." continuations included) to a RCPT command.
// A reply naming a blocklist (Spamhaus, Barracuda, SpamCop, "blocklist", "listed",
// "RBL", ...) is Blocklisted whatever its code; 5.1.1 or "user unknown"-like text is
// UserUnknown; other 5xx Rejected; 4xx Deferred; 2xx Accepted.
RcptReply classifyRcptReply(std::string_view reply);

struct RcptCounts {
  unsigned accepted = 0;
  unsigned userUnknown = 0;
  unsigned blocklisted = 0;
  unsigned rejected = 0;
  unsigned deferred = 0;
  [[nodiscard]] unsigned total() const {
    return accepted + userUnknown + blocklisted + rejected + deferred;
  }
};

// The server-to-client bytes of one session, fed as they arrive (any split).
class SessionReplies {
 public:
  void feed(std::string_view bytes);
  [[nodiscard]] const RcptCounts& counts() const { return counts_; }
  // STARTTLS began (or the stream stopped making sense): nothing more is read.
  [[nodiscard]] bool stopped() const { return stage_ == Stage::Stopped; }
  // Why it stopped: STARTTLS's go-ahead, or the server closing (221, 421).
  [[nodiscard]] bool startedTls() const { return tls_; }
  [[nodiscard]] bool closing() const { return closing_; }

 private:
  enum class Stage { Greeting, Hello, Mail, Rcpt, Data, Stopped };
  void reply(std::string_view text);

  static constexpr std::size_t kMaxLine = 1024;  // longer: not SMTP (RFC 5321: 512)
  static constexpr std::size_t kMaxReply = 8192;
  Stage stage_ = Stage::Greeting;
  bool tls_ = false;
  bool closing_ = false;
  std::string line_;   // the current line, until its LF
  std::string reply_;  // the current reply's lines, until its last line
  RcptCounts counts_;
};

// A SessionReplies fed TCP segments as a packet tap sees them: by sequence number, with
// retransmissions (wholly or partly seen before) cut to their new bytes. A gap (a segment
// the tap could not copy, or copied only in part) stops the reading: past it, which reply
// answers which command is unknown. Counts before the gap stand.
class OrderedSession {
 public:
  // `bytes`: the copied part of a segment of `wireLength` bytes starting at `seq`.
  void segment(std::uint32_t seq, std::string_view bytes, std::uint32_t wireLength);
  [[nodiscard]] const RcptCounts& counts() const { return replies_.counts(); }
  [[nodiscard]] bool stopped() const { return gap_ || replies_.stopped(); }
  [[nodiscard]] bool gap() const { return gap_; }
  [[nodiscard]] bool startedTls() const { return !gap_ && replies_.startedTls(); }
  [[nodiscard]] bool closing() const { return !gap_ && replies_.closing(); }

 private:
  SessionReplies replies_;
  bool started_ = false;
  bool gap_ = false;
  std::uint32_t next_ = 0;  // the sequence number of the next new byte
};

}  // namespace mailguard::replies
