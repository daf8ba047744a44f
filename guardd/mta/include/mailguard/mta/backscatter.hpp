#pragma once
// Backscatter: bounces for mail this PC never sent. Someone forges the owner's address as
// the sender of spam (a "Joe Job"); the servers that refuse it send their delivery status
// notifications (DSNs) to the forged sender, and they arrive here by the hundred.
//
// A DSN is sent with the null reverse path, MAIL FROM:<> (RFC 5321 4.5.5, RFC 3464), so
// the local MTA's log names it at arrival:
//   postfix (qmgr):  C93CEB08A046: from=<>, size=2345, nrcpt=1 (queue active)
//   exim:            2026-12-07 08:26:03 1s2QmB-000Bxe-2V <= <> H=mx.d1.example [192.0.2.1] ...
// and then its delivery to a mailbox on this host:
//   postfix (local, virtual or lmtp): C93CEB08A046: to=<ann@pc.example>, relay=local, ...,
//                                     status=sent (delivered to mailbox)
//   exim (a delivery with no remote host, H=): 1s2QmB-000Bxe-2V => ann <ann@pc.example>
//                                     R=local_user T=mail_spool
//
// What a DSN is matched on. The log does not carry what a bounce is about (its
// Final-Recipient and the original Message-ID are in its body, which guardd does not read).
// What guardd does know:
//  - a DSN the local MTA wrote itself is about a message in its own queue, which it names:
//      postfix (bounce): 4RkWZq2RZ2z9sVH: sender non-delivery notification: 8F1A2B3C4D
//      exim:             1s2QmC-... <= <> R=1s2QmB-000Bxe-2V U=Debian-exim P=local ...
//    (R= is the message bounced): mail that left from here, so never backscatter;
//  - every recipient a message submitted through the gate was delivered to or refused for
//    (the DeliveryTracker's lines of a tracked queue id) can come back as at most one DSN
//    from a remote server, for as long as `remember` (three days: a remote queue's retry
//    time, after which it bounces).
// A remote DSN takes one such recipient, the oldest first; when none is left it matches
// nothing sent from here. A flood is `floodPerHour` such unmatched DSNs within an hour; it
// is reported once, and ends when an hour passes without an unmatched DSN.
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/rules/clock.hpp"

namespace mailguard::mta {

// A line of the local MTA's log about mail received here.
struct InboundLine {
  enum class Kind : std::uint8_t {
    NullSenderArrival,  // a message with MAIL FROM:<> entered the queue (`about`: exim's R=)
    LocalDelivery,      // a message was delivered to a mailbox here (`recipient`)
    Notification,       // the MTA wrote DSN `queueId` about its message `about` (postfix)
  };
  Kind kind = Kind::NullSenderArrival;
  std::string queueId;
  std::string recipient;
  std::string about;
};

// One postfix record's text after its tag (as parsePostfixMessage takes it).
std::optional<InboundLine> parsePostfixInbound(std::string_view tag, std::string_view text);
// A whole line of postfix's log file (any of the forms parsePostfixLogLine reads).
std::optional<InboundLine> parsePostfixInboundLine(std::string_view line);
// A line of exim's main log.
std::optional<InboundLine> parseEximInboundLine(std::string_view line);

struct BackscatterConfig {
  unsigned floodPerHour = 20;  // unmatched DSNs within an hour that make a flood
  std::chrono::hours remember{72};
};

struct BackscatterFigures {
  bool flooding = false;
  unsigned lastHour = 0;           // DSNs delivered here in the last hour
  unsigned unmatchedLastHour = 0;  // of those, matching nothing sent from here
  unsigned total = 0;              // since the flood began (0 without one)
  unsigned unmatchedTotal = 0;
  MonoTime since{};  // the flood's first unmatched DSN
  MonoTime last{};   // the newest DSN
  // Whom they were delivered to (distinct, at most kMaxRecipients), since the flood began.
  std::vector<std::string> recipients;
  static constexpr std::size_t kMaxRecipients = 16;
};

class BackscatterWatch {
 public:
  explicit BackscatterWatch(BackscatterConfig config = {}) : config_(config) {}

  // A message submitted through the gate was delivered to, or refused for, one more
  // recipient: one bounce it may earn.
  void sent(const std::string& queueId, MonoTime now);
  // A line of the log; the figures when this line starts a flood (report it once).
  std::optional<BackscatterFigures> onLine(const InboundLine& line, MonoTime now);
  [[nodiscard]] BackscatterFigures figures(MonoTime now) const;

 private:
  struct Pending {
    bool ownNotification = false;  // written by the local MTA about a message of its own
    std::string about;
    MonoTime at;
  };
  struct Seen {
    MonoTime at;
    bool unmatched = false;
  };
  void forget(MonoTime now);
  // Takes a recipient sent from here, the oldest; false when none is left. With `about`
  // (the MTA's own DSN) that message's, if any: true either way.
  bool take(const std::string& about);
  void count(bool unmatched, const std::string& recipient, MonoTime now);

  BackscatterConfig config_;
  std::map<std::string, Pending> pending_;  // null-sender messages not yet delivered
  std::deque<std::string> pendingOrder_;
  struct Credit {
    unsigned left = 0;
    MonoTime at;
  };
  std::map<std::string, Credit> credits_;  // queue id of mail sent from here -> bounces owed
  std::deque<std::string> creditOrder_;    // oldest first
  std::deque<Seen> hour_;                  // DSNs delivered within the last hour
  BackscatterFigures flood_;               // the current flood's running figures
};

}  // namespace mailguard::mta
