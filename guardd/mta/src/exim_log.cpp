#include "mailguard/mta/exim_log.hpp"
#include "log_token.hpp"
#include "mailguard/replies/smtp_replies.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <set>

namespace mailguard::mta {
namespace {

constexpr std::size_t kMaxReply = 300;
constexpr std::size_t kMaxDomains = 64;
constexpr std::size_t kMaxReplies = 4;
// Read at most this much per poll: a log that grew by gigabytes while guardd was busy
// is read over several turns of the loop instead of blocking it.
constexpr std::size_t kMaxReadPerPoll = 4 * 1024 * 1024;

bool allOf(std::string_view s, int (*pred)(int)) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [pred](char c) {
    return pred(static_cast<unsigned char>(c)) != 0;
  });
}

// exim's message id: three base-62 parts joined by '-' ("1s2QmB-000Bxe-2V" up to 4.96,
// longer parts from 4.97 on).
bool isQueueId(std::string_view s) {
  std::size_t parts = 0;
  while (true) {
    const auto dash = s.find('-');
    const auto part = s.substr(0, dash);
    if (!allOf(part, isalnum) || part.size() > 11) return false;
    ++parts;
    if (dash == std::string_view::npos) break;
    s.remove_prefix(dash + 1);
  }
  return parts == 3;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The reply of the remote server, from its code on: the first ": " followed by a 4xx/5xx
// code (the address before it is "RCPT TO:<...>", with no space after the colon).
std::string replyOf(std::string_view rest) {
  for (auto at = rest.find(": "); at != std::string_view::npos; at = rest.find(": ", at + 1)) {
    const auto tail = rest.substr(at + 2);
    if (tail.size() >= 4 && (tail[0] == '4' || tail[0] == '5') && std::isdigit(tail[1]) != 0 &&
        std::isdigit(tail[2]) != 0 && (tail[3] == ' ' || tail[3] == '-')) {
      return std::string(tail.substr(0, kMaxReply));
    }
  }
  // exim's own reason ("retry timeout exceeded", "Connection refused"): after the last
  // ": " of the line, or all of it.
  const auto at = rest.rfind(": ");
  auto reason = at == std::string_view::npos ? rest : rest.substr(at + 2);
  while (!reason.empty() && reason.front() == ' ') reason.remove_prefix(1);
  return std::string(reason.substr(0, kMaxReply));
}

std::string domainOf(std::string_view recipient) {
  const auto at = recipient.rfind('@');
  return lower(at == std::string_view::npos ? std::string_view{} : recipient.substr(at + 1));
}

template <class T>
void addDistinct(std::vector<T>& items, const T& item, std::size_t max) {
  if (items.size() >= max) return;
  if (std::find(items.begin(), items.end(), item) == items.end()) items.push_back(item);
}

}  // namespace

std::optional<EximLogLine> parseEximLogLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::string_view rest = line;
  const auto token = eximQueueIdToken(rest);
  if (!isQueueId(token)) return std::nullopt;
  EximLogLine out;
  out.queueId = std::string(token);
  const auto marker = nextToken(rest);
  if (marker == "Completed") {
    out.status = DeliveryStatus::Completed;
    return out;
  }
  if (marker == "=>" || marker == "->") {
    out.status = DeliveryStatus::Delivered;
  } else if (marker == "==") {
    out.status = DeliveryStatus::Deferred;
  } else if (marker == "**") {
    out.status = DeliveryStatus::Failed;
  } else {
    return std::nullopt;  // "<=" arrival, "*>" suppressed delivery, notes
  }
  const auto recipient = nextToken(rest);
  if (recipient.empty()) return std::nullopt;
  out.recipient = std::string(recipient);
  if (out.status != DeliveryStatus::Delivered) out.reply = replyOf(rest);
  return out;
}

ReplyClass classifyReply(std::string_view reply) {
  // The one reading of a server's reply, whichever way guardd saw it: a program's own
  // session (replies::SessionReplies) and the MTA's log agree on what is evidence.
  const auto c = replies::classifyRcptReply(reply);
  if (c == replies::RcptReply::Blocklisted) return ReplyClass::Blocklisted;
  // Only a permanent reply says anything of the address; exim's own reasons ("retry
  // timeout exceeded") have no code.
  if (reply.empty() || reply.front() != '5') return ReplyClass::Other;
  return c == replies::RcptReply::UserUnknown ? ReplyClass::UserUnknown : ReplyClass::Rejected;
}

std::string DeliveryTally::summary() const {
  std::string out;
  auto part = [&](unsigned n, const char* what) {
    if (n == 0) return;
    out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + what;
  };
  part(delivered, "delivered");
  part(userUnknown, "bounced as unknown users");
  part(blocklisted, "refused by a blocklist");
  part(rejected, "rejected");
  part(otherFailed, "failed");
  part(deferred, "deferred");
  if (out.empty()) out = "no outcome";
  for (std::size_t i = 0; i < replies.size(); ++i) {
    out += (i == 0 ? " (" : "; ") + replies[i];
  }
  if (!replies.empty()) out += ")";
  return out;
}

void DeliveryTracker::submitted(const std::string& queueId, Submitter submitter, MonoTime now) {
  if (queueId.empty()) return;
  while (messages_.size() >= capacity_ && !order_.empty()) {
    messages_.erase(order_.front());
    order_.pop_front();
  }
  auto [it, inserted] =
      messages_.insert_or_assign(queueId, Message{std::move(submitter), {}, now, now});
  (void)it;
  if (inserted) order_.push_back(queueId);
  if (order_.size() > 2 * capacity_) {
    std::erase_if(order_, [&](const std::string& id) { return !messages_.contains(id); });
  }
}

std::optional<DeliveryTracker::Finished> DeliveryTracker::onLine(const EximLogLine& line,
                                                                 MonoTime now) {
  auto it = messages_.find(line.queueId);
  if (it == messages_.end()) return std::nullopt;  // not submitted through the gate
  Message& m = it->second;
  m.lastLine = now;
  DeliveryTally& t = m.tally;
  if (line.status == DeliveryStatus::Completed) {
    std::optional<Finished> out;
    if (!t.empty()) out = Finished{line.queueId, std::move(m.submitter), std::move(t), true};
    messages_.erase(it);
    return out;
  }
  // postfix's "expired" names no recipient: it is about all those still deferred.
  if (!line.recipient.empty()) addDistinct(t.domains, domainOf(line.recipient), kMaxDomains);
  switch (line.status) {
    case DeliveryStatus::Delivered:
      ++t.delivered;
      return std::nullopt;
    case DeliveryStatus::Deferred:
      ++t.deferred;
      break;
    case DeliveryStatus::Failed:
      switch (classifyReply(line.reply)) {
        case ReplyClass::UserUnknown:
          ++t.userUnknown;
          break;
        case ReplyClass::Blocklisted:
          ++t.blocklisted;
          break;
        case ReplyClass::Rejected:
          ++t.rejected;
          break;
        case ReplyClass::Other:
          ++t.otherFailed;
          break;
      }
      break;
    case DeliveryStatus::Completed:
      break;
  }
  if (!line.reply.empty()) addDistinct(t.replies, line.reply, kMaxReplies);
  return std::nullopt;
}

std::vector<DeliveryTracker::Open> DeliveryTracker::openOf(std::int64_t programId) const {
  std::vector<Open> out;
  std::set<std::string_view> seen;  // order_ may name an id twice (submitted again)
  for (const auto& id : order_) {
    const auto it = messages_.find(id);
    if (it == messages_.end() || it->second.submitter.programId != programId) continue;
    if (!seen.insert(id).second) continue;
    out.push_back({id, it->second.submitter.where});
  }
  return out;
}

std::vector<DeliveryTracker::Finished> DeliveryTracker::expire(MonoTime now) {
  std::vector<Finished> out;
  for (auto it = messages_.begin(); it != messages_.end();) {
    Message& m = it->second;
    if (!m.tally.empty() && now - m.lastLine >= settle_) {
      out.push_back(Finished{it->first, m.submitter, std::exchange(m.tally, {}), false});
    }
    it = now - m.submittedAt > keep_ ? messages_.erase(it) : std::next(it);
  }
  return out;
}

Result<void> LogFollower::reopen(bool fromStart) {
  const int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    if (errno == ENOENT) {
      fd_.reset();
      return {};
    }
    return systemError("cannot open " + path_.string(), errno);
  }
  Fd opened(fd);
  struct stat st {};
  if (::fstat(opened.get(), &st) != 0) return systemError("cannot stat " + path_.string(), errno);
  offset_ = fromStart ? 0 : static_cast<std::uint64_t>(st.st_size);
  if (::lseek(opened.get(), static_cast<off_t>(offset_), SEEK_SET) < 0) {
    return systemError("cannot seek in " + path_.string(), errno);
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  fd_ = std::move(opened);
  partial_.clear();
  skipping_ = false;
  return {};
}

Result<bool> LogFollower::drain(const std::function<void(std::string_view)>& onLine) {
  std::array<char, 65536> buf{};
  std::size_t total = 0;
  while (total < kMaxReadPerPoll) {
    const ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return systemError("cannot read " + path_.string(), errno);
    }
    if (n == 0) return true;  // at the end
    total += static_cast<std::size_t>(n);
    offset_ += static_cast<std::uint64_t>(n);
    std::string_view data(buf.data(), static_cast<std::size_t>(n));
    while (!data.empty()) {
      const auto eol = data.find('\n');
      const auto piece = data.substr(0, eol);
      if (!skipping_) {
        if (partial_.size() + piece.size() > kMaxLine) {
          partial_.clear();
          skipping_ = true;
        } else {
          partial_.append(piece);
        }
      }
      if (eol == std::string_view::npos) break;
      if (!skipping_) onLine(partial_);
      partial_.clear();
      skipping_ = false;
      data.remove_prefix(eol + 1);
    }
  }
  return false;  // more to read: the next poll goes on
}

Result<void> LogFollower::poll(const std::function<void(std::string_view)>& onLine) {
  if (!fd_) {
    const bool first = !started_;
    started_ = true;
    // History is not replayed at start-up; a file that appears later is new and read whole.
    if (auto r = reopen(!first); !r) return r.error();
    if (!fd_) return {};
  }
  auto atEnd = drain(onLine);
  if (!atEnd) return atEnd.error();
  if (!*atEnd) return {};
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    // Rotated away and not yet recreated: keep the old file until the new one is there.
    if (errno == ENOENT) return {};
    return systemError("cannot stat " + path_.string(), errno);
  }
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    // Rotated: the old file was read to its end above; the new one is read from its start.
    if (auto r = reopen(true); !r) return r.error();
    if (!fd_) return {};
    if (auto more = drain(onLine); !more) return more.error();
    return {};
  }
  if (static_cast<std::uint64_t>(st.st_size) < offset_) {
    // Truncated in place (copytruncate): start over.
    if (auto r = reopen(true); !r) return r.error();
    if (auto more = drain(onLine); !more) return more.error();
  }
  return {};
}

}  // namespace mailguard::mta
