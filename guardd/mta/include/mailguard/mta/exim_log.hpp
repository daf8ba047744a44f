#pragma once
// exim's main log, read for what became of each message (delivered, deferred, bounced),
// and the per-message tally that is charged to the program that submitted it.
//
// exim writes one line per recipient and delivery attempt, keyed by the message's queue
// id (exim spec, "Log files"):
//   2024-05-02 10:00:01 1s2QmB-000Bxe-2V => user@d1.example R=sink T=smtp_out H=... C="250 ok"
//   2024-05-02 10:00:01 1s2QmB-000Bxe-2V ** user@d2.example R=sink T=smtp_out H=...: SMTP
//     error from remote mail server after RCPT TO:<user@d2.example>: 550 5.1.1 user unknown
//   2024-05-02 10:00:01 1s2QmB-000Bxe-2V == user@d3.example R=sink T=smtp_out defer (-44) ...
//   2024-05-02 10:00:01 1s2QmB-000Bxe-2V Completed
// "=>" delivered (and "->" a further address of the same delivery), "==" deferred (tried
// again later), "**" failed for good (a bounce goes back to the sender), "Completed" all
// recipients are done and the message left the queue.
#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailguard/common/fd.hpp"
#include "mailguard/rules/clock.hpp"
#include "mailguard/rules/identity.hpp"
#include "mailguard/rules/result.hpp"

namespace mailguard::mta {

enum class DeliveryStatus : std::uint8_t { Delivered, Deferred, Failed, Completed };

struct EximLogLine {
  std::string queueId;
  DeliveryStatus status = DeliveryStatus::Completed;
  std::string recipient;  // empty for Completed
  // The remote server's reply from its 3-digit code on ("550 5.1.1 user unknown"), or
  // exim's own reason when there is no SMTP reply ("retry timeout exceeded"); bounded.
  std::string reply;
};
// The same line from any MTA's log (postfix_log.hpp fills it too).
using MtaLogLine = EximLogLine;

// nullopt: not a delivery line (arrivals "<=", frozen, retry notes, other messages).
std::optional<EximLogLine> parseEximLogLine(std::string_view line);

// What a failure's reply says about the recipient list (research O3, O4, O2).
enum class ReplyClass : std::uint8_t {
  Other,        // no evidence either way (exim's own errors, timeouts)
  UserUnknown,  // 550/5.1.1 "no such user": a harvested address
  Blocklisted,  // the reply names a DNS blocklist: the sender is listed
  Rejected,     // another 5xx reply from the server
};
ReplyClass classifyReply(std::string_view reply);

// One message's outcomes since it was last charged.
struct DeliveryTally {
  unsigned delivered = 0;
  unsigned deferred = 0;
  unsigned userUnknown = 0;
  unsigned blocklisted = 0;
  unsigned rejected = 0;
  unsigned otherFailed = 0;
  std::vector<std::string> domains;  // recipients' domains, distinct, bounded
  std::vector<std::string> replies;  // distinct failure/deferral replies, bounded
  [[nodiscard]] bool empty() const {
    return delivered + deferred + userUnknown + blocklisted + rejected + otherFailed == 0;
  }
  // "2 delivered, 18 bounced (550 5.1.1 user unknown)"
  [[nodiscard]] std::string summary() const;
};

// Who submitted a message: what its outcome is charged to.
struct Submitter {
  std::int64_t programId = 0;
  rules::ProgramIdentity identity;
  std::uint32_t uid = 0;
  int pid = 0;
  std::string where;  // the MTA instance holding it (HeldMessages::Entry::where)
};

// Queue id -> submitter and the outcomes seen, bounded. A message's tally is handed out
// when exim says "Completed", or, for a message still being retried, once no line came
// for `settle` (what is final so far is charged then; later lines start a new tally).
class DeliveryTracker {
 public:
  struct Finished {
    std::string queueId;
    Submitter submitter;
    DeliveryTally tally;
    bool completed = false;
  };
  explicit DeliveryTracker(std::size_t capacity = 20'000,
                           std::chrono::seconds settle = std::chrono::seconds(60),
                           std::chrono::hours keep = std::chrono::hours(24 * 5))
      : capacity_(capacity), settle_(settle), keep_(keep) {}

  void submitted(const std::string& queueId, Submitter submitter, MonoTime now);
  // A line of the log; a finished tally when it completes a message.
  std::optional<Finished> onLine(const EximLogLine& line, MonoTime now);
  // Tallies of messages with no line for `settle`; forgets messages older than `keep`.
  std::vector<Finished> expire(MonoTime now);
  [[nodiscard]] std::size_t size() const { return messages_.size(); }
  [[nodiscard]] bool knows(const std::string& queueId) const { return messages_.contains(queueId); }
  // Messages of this program still in the MTA's queue (no "Completed" seen yet), oldest
  // first: what must be held when the program is quarantined.
  struct Open {
    std::string queueId;
    std::string where;
  };
  [[nodiscard]] std::vector<Open> openOf(std::int64_t programId) const;

 private:
  struct Message {
    Submitter submitter;
    DeliveryTally tally;
    MonoTime submittedAt;
    MonoTime lastLine;
  };
  std::size_t capacity_;
  std::chrono::seconds settle_;
  std::chrono::hours keep_;
  std::map<std::string, Message> messages_;
  std::deque<std::string> order_;  // oldest submission first, for the capacity bound
};

// Follows a growing log file like `tail -F`: from its end at open, across rotation (a new
// file at the path: the rest of the old one is read first) and truncation. A line longer
// than kMaxLine is dropped, so memory stays bounded whatever the file holds.
class LogFollower {
 public:
  static constexpr std::size_t kMaxLine = 16 * 1024;
  explicit LogFollower(std::filesystem::path path) : path_(std::move(path)) {}
  // Reads what was appended since the last call; each complete line goes to `onLine`.
  // A missing file is not an error (exim creates it with its first line).
  Result<void> poll(const std::function<void(std::string_view)>& onLine);
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  Result<void> reopen(bool fromStart);
  Result<bool> drain(const std::function<void(std::string_view)>& onLine);
  std::filesystem::path path_;
  Fd fd_;
  std::uint64_t dev_ = 0;
  std::uint64_t ino_ = 0;
  std::uint64_t offset_ = 0;
  bool started_ = false;  // the first open starts at the end: history is not replayed
  std::string partial_;
  bool skipping_ = false;  // inside an overlong line
};

}  // namespace mailguard::mta
