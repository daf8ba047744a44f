#include "mailguard/replies/smtp_replies.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace mailguard::replies {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// `word` in `text` not as part of a longer word ("listed" is not "unlisted").
bool hasWord(const std::string& text, std::string_view word) {
  for (auto at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool startOk = at == 0 || !isAlnum(text[at - 1]);
    const auto end = at + word.size();
    const bool endOk = end >= text.size() || !isAlnum(text[end]);
    if (startOk && endOk) return true;
  }
  return false;
}

int codeOf(std::string_view reply) {
  if (reply.size() < 3 || !std::isdigit(static_cast<unsigned char>(reply[0])) ||
      !std::isdigit(static_cast<unsigned char>(reply[1])) ||
      !std::isdigit(static_cast<unsigned char>(reply[2])))
    return 0;
  return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

// Zeek's SMTP::blocklist_error_messages (research 1.3) and the words such replies use;
// "blocked using" is postfix's reject_rbl_client reply whatever the list ("Client host
// [ip] blocked using LIST"). Each matched as a word: "rbl" is not in "verbless".
constexpr std::array kBlocklistWords = {
    "spamhaus",        "barracuda",      "spamcop",      "sorbs",
    "abuseat",         "uceprotect",     "psbl",         "hostkarma",
    "mail-abuse",      "sophos.com",     "borderware",   "antispam.imp.ch",
    "rbl.knology.net", "datapacket.net", "blocklist",    "blacklist",
    "block list",      "black list",     "rbl",          "dnsbl",
    "blocklisted",     "blacklisted",    "blocked using"};
// Weaker: "listed" alone also says "Recipient not listed in the address book".
constexpr std::string_view kListed = "listed";
// Not "mailbox unavailable": RFC 5321's text for any 550, policy rejections included.
constexpr std::array kUserUnknown = {"user unknown",      "unknown user",      "no such user",
                                     "does not exist",    "no such mailbox",   "unknown recipient",
                                     "recipient unknown", "mailbox not found", "invalid recipient"};

}  // namespace

RcptReply classifyRcptReply(std::string_view reply) {
  const int code = codeOf(reply);
  if (code >= 200 && code < 300) return RcptReply::Accepted;
  const auto text = lower(reply);
  for (const auto* w : kBlocklistWords)
    if (hasWord(text, w)) return RcptReply::Blocklisted;
  const bool transient = code >= 400 && code < 500;
  if (!transient) {
    // The enhanced status code (RFC 3463) follows the reply code on each line.
    if (text.find(" 5.1.1") != std::string::npos || text.find("-5.1.1") != std::string::npos)
      return RcptReply::UserUnknown;
    for (const auto* w : kUserUnknown)
      if (text.find(w) != std::string::npos) return RcptReply::UserUnknown;
  }
  if (hasWord(text, kListed)) return RcptReply::Blocklisted;
  return transient ? RcptReply::Deferred : RcptReply::Rejected;
}

void SessionReplies::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (stage_ == Stage::Stopped) return;
    if (c != '\n') {
      if (line_.size() >= kMaxLine) {
        stage_ = Stage::Stopped;  // not an SMTP server's reply
        return;
      }
      line_ += c;
      continue;
    }
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    const bool last = line_.size() < 4 || line_[3] != '-';
    if (reply_.size() + line_.size() < kMaxReply) {
      reply_ += line_;
      reply_ += '\n';
    }
    line_.clear();
    if (last) {
      reply(reply_);
      reply_.clear();
    }
  }
}

void SessionReplies::reply(std::string_view text) {
  const int code = codeOf(text);
  if (code == 0) {
    stage_ = Stage::Stopped;
    return;
  }
  if (code == 221 || code == 421) {  // closing
    stage_ = Stage::Stopped;
    closing_ = true;
    return;
  }
  switch (stage_) {
    case Stage::Greeting:
      stage_ = code == 220 ? Stage::Hello : Stage::Stopped;
      return;
    case Stage::Hello:
      // A refused EHLO is followed by HELO's reply.
      if (code == 250) stage_ = Stage::Mail;
      return;
    case Stage::Mail:
      if (code == 220) {  // STARTTLS: encrypted from here on
        stage_ = Stage::Stopped;
        tls_ = true;
      }
      if (code == 250) stage_ = Stage::Rcpt;
      return;  // 334/235/535 (AUTH), 5xx to MAIL: still before a transaction
    case Stage::Rcpt:
      if (code == 354) {
        stage_ = Stage::Data;
        return;
      }
      switch (classifyRcptReply(text)) {
        case RcptReply::Accepted:
          ++counts_.accepted;
          break;
        case RcptReply::UserUnknown:
          ++counts_.userUnknown;
          break;
        case RcptReply::Blocklisted:
          ++counts_.blocklisted;
          break;
        case RcptReply::Rejected:
          ++counts_.rejected;
          break;
        case RcptReply::Deferred:
          ++counts_.deferred;
          break;
      }
      return;
    case Stage::Data:
      stage_ = Stage::Mail;  // the end-of-data reply; the next is the next MAIL's (or RSET's)
      return;
    case Stage::Stopped:
      return;
  }
}

void OrderedSession::segment(std::uint32_t seq, std::string_view bytes, std::uint32_t wireLength) {
  if (stopped() || wireLength == 0) return;
  if (!started_) {
    started_ = true;
    next_ = seq;
  }
  // Sequence numbers wrap (RFC 9293 3.4): compare by signed distance.
  const auto ahead = static_cast<std::int32_t>(seq - next_);
  if (ahead > 0) {
    gap_ = true;
    return;
  }
  const auto seen = static_cast<std::uint32_t>(-static_cast<std::int64_t>(ahead));
  if (seen >= wireLength) return;  // a retransmission of bytes already read
  if (seen < bytes.size()) replies_.feed(bytes.substr(seen));
  if (bytes.size() < wireLength) {
    gap_ = true;  // the copy was cut short
    return;
  }
  next_ = seq + wireLength;
}

}  // namespace mailguard::replies
