#include "mailguard/mta/postfix_log.hpp"
#include "log_token.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

namespace mailguard::mta {
namespace {

constexpr std::size_t kMaxReply = 300;
// RFC 5321 bounds a path at 256 octets; postfix logs longer ones, but nothing this long
// is a recipient anyone delivers to.
constexpr std::size_t kMaxRecipient = 1024;
// A record has a handful of fields; more is not a line postfix wrote.
constexpr int kMaxFields = 32;

bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Text that came from other programs ends up in D-Bus strings (valid UTF-8 only) and on
// the owner's terminal: printable ASCII only.
std::string printable(std::string_view s, std::size_t max) {
  std::string out(s.substr(0, max));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

// An address as log_adhoc writes it between '<' and '>': the local part may be quoted
// (and then hold '>' or ", status="), with '\' escapes inside the quotes. `rest` starts
// after the '<'; on success it is left after the '>'.
std::optional<std::string_view> takeAddress(std::string_view& rest) {
  bool quoted = false;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      const auto address = rest.substr(0, i);
      rest.remove_prefix(i + 1);
      return address;
    }
  }
  return std::nullopt;
}

// "5.1.1": the enhanced status code of RFC 3463.
bool isDsn(std::string_view s) {
  if (s.size() < 5 || s.size() > 11) return false;
  if (s[0] != '2' && s[0] != '4' && s[0] != '5') return false;
  int dots = 0;
  bool digitBefore = false;
  for (const char c : s.substr(1)) {
    if (c == '.') {
      if (dots > 0 && !digitBefore) return false;
      ++dots;
      digitBefore = false;
    } else if (isDigit(c)) {
      digitBefore = true;
    } else {
      return false;
    }
  }
  return dots == 2 && digitBefore;
}

// What the remote server answered, from its code on ("host mx[192.0.2.1] said: 550 5.1.1
// <a@b>: Recipient address rejected: User unknown (in reply to RCPT TO command)"), without
// postfix's "(in reply to ...)" note. Without a server reply (local, virtual, error, a
// connection that failed) it is postfix's own reason after its DSN code ("5.1.1 unknown
// user: \"x\""): the code says permanent or not, which classifyReply reads first.
std::string replyOf(std::string_view dsn, std::string_view reason) {
  constexpr std::string_view kSaid = " said: ";
  if (const auto at = reason.find(kSaid); at != std::string_view::npos) {
    auto tail = reason.substr(at + kSaid.size());
    if (tail.size() >= 4 && (tail[0] == '4' || tail[0] == '5') && isDigit(tail[1]) &&
        isDigit(tail[2]) && (tail[3] == ' ' || tail[3] == '-')) {
      constexpr std::string_view kNote = " (in reply to ";
      if (const auto note = tail.rfind(kNote); note != std::string_view::npos) {
        tail = tail.substr(0, note);
      }
      return printable(tail, kMaxReply);
    }
  }
  if (dsn.empty()) return printable(reason, kMaxReply);
  return printable(std::string(dsn) + " " + std::string(reason), kMaxReply);
}

std::optional<DeliveryStatus> statusOf(std::string_view word) {
  if (word == "sent") return DeliveryStatus::Delivered;
  if (word == "deferred") return DeliveryStatus::Deferred;
  // expired: qmgr gave up on a recipient still deferred; the sender gets it back.
  if (word == "bounced" || word == "expired" || word == "force-expired") {
    return DeliveryStatus::Failed;
  }
  // deliverable/undeliverable are address-verification probes, not deliveries.
  return std::nullopt;
}

// "from=<s@d>, status=expired, returned to sender" (qmgr_active.c): the recipients still
// deferred failed for good, all at once.
std::optional<MtaLogLine> parseExpired(std::string queueId, std::string_view rest) {
  if (!takeAddress(rest)) return std::nullopt;
  constexpr std::string_view kStatus = ", status=";
  if (!rest.starts_with(kStatus)) return std::nullopt;
  rest.remove_prefix(kStatus.size());
  const auto space = rest.find(',');
  const auto word = rest.substr(0, space);
  if (word != "expired" && word != "force-expired") return std::nullopt;
  MtaLogLine out;
  out.queueId = std::move(queueId);
  out.status = DeliveryStatus::Failed;
  out.reply = printable(rest, kMaxReply);  // "expired, returned to sender"
  return out;
}

std::optional<MtaLogLine> parseDelivery(std::string queueId, std::string_view rest) {
  const auto recipient = takeAddress(rest);
  if (!recipient || recipient->empty() || recipient->size() > kMaxRecipient) return std::nullopt;
  MtaLogLine out;
  out.queueId = std::move(queueId);
  out.recipient = printable(*recipient, kMaxRecipient);
  std::string_view dsn;
  // The fields in log_adhoc's order, each ", key=value"; status comes last and its reason
  // runs to the end of the line, so whatever the reason says ("status=sent", another
  // queue id) is only text.
  for (int field = 0; field < kMaxFields; ++field) {
    if (!rest.starts_with(", ")) return std::nullopt;
    rest.remove_prefix(2);
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    const auto key = rest.substr(0, eq);
    rest.remove_prefix(eq + 1);
    if (key == "orig_to") {
      if (!rest.starts_with('<')) return std::nullopt;
      rest.remove_prefix(1);
      if (!takeAddress(rest)) return std::nullopt;
      continue;
    }
    if (key == "status") {
      const auto end = rest.find_first_of(" ,");
      auto status = statusOf(rest.substr(0, end));
      if (!status) return std::nullopt;
      out.status = *status;
      if (out.status == DeliveryStatus::Delivered) return out;
      std::string_view reason;
      if (end != std::string_view::npos && rest[end] == ',') {
        reason = rest;  // "expired, returned to sender"
      } else if (end != std::string_view::npos) {
        reason = rest.substr(end + 1);
        if (reason.starts_with('(') && reason.ends_with(')')) {
          reason = reason.substr(1, reason.size() - 2);
        }
      }
      out.reply = replyOf(dsn, reason);
      return out;
    }
    // relay, conn_use, delay, delays, tls, dsn: no ", " inside their values.
    const auto end = rest.find(", ");
    if (end == std::string_view::npos) return std::nullopt;
    const auto value = rest.substr(0, end);
    if (key == "dsn" && isDsn(value)) dsn = value;
    rest.remove_prefix(end);
  }
  return std::nullopt;
}

bool isShortQueueId(std::string_view id) {
  // Five hex digits of microseconds, then the inode in hex (%lX).
  return id.size() >= 6 && id.size() <= 21 && std::all_of(id.begin(), id.end(), [](char c) {
           return isDigit(c) || (c >= 'A' && c <= 'F');
         });
}

bool isLongQueueId(std::string_view id) {
  // Seconds (six or more) and microseconds (four) in base 52, 'z', the inode in base 51
  // (no 'z'); the alphabet has no vowels.
  if (id.size() < 12 || id.size() > 40) return false;
  const auto z = id.rfind('z');
  if (z == std::string_view::npos || z < 10 || z + 1 == id.size()) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return isAlnum(c) && std::string_view("AEIOUaeiou").find(c) == std::string_view::npos;
  });
}

bool isMonth(std::string_view s) {
  static constexpr std::string_view kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  return std::find(std::begin(kMonths), std::end(kMonths), s) != std::end(kMonths);
}

}  // namespace

bool isPostfixQueueId(std::string_view id) { return isShortQueueId(id) || isLongQueueId(id); }

bool isPostfixTag(std::string_view tag) {
  const auto slash = tag.find('/');
  if (slash == std::string_view::npos) return false;
  const auto name = tag.substr(0, slash);
  if (name != "postfix" && !(name.starts_with("postfix-") && name.size() > 8)) return false;
  // Debian's master.cf adds a level: "postfix/submission/smtpd".
  const auto services = tag.substr(slash + 1);
  if (services.empty() || services.back() == '/') return false;
  return std::all_of(tag.begin(), tag.end(), [](char c) {
    return isAlnum(c) || c == '/' || c == '-' || c == '_' || c == '.';
  });
}

std::optional<MtaLogLine> parsePostfixMessage(std::string_view tag, std::string_view text) {
  if (!isPostfixTag(tag)) return std::nullopt;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const auto colon = text.find(": ");
  if (colon == std::string_view::npos) {
    return std::nullopt;
  }
  const auto id = text.substr(0, colon);
  if (!isPostfixQueueId(id)) return std::nullopt;
  auto rest = text.substr(colon + 2);
  if (rest == "removed") {
    MtaLogLine out;
    out.queueId = std::string(id);
    out.status = DeliveryStatus::Completed;
    return out;
  }
  constexpr std::string_view kTo = "to=<";
  constexpr std::string_view kFrom = "from=<";
  if (rest.starts_with(kTo)) return parseDelivery(std::string(id), rest.substr(kTo.size()));
  if (rest.starts_with(kFrom)) return parseExpired(std::string(id), rest.substr(kFrom.size()));
  return std::nullopt;
}

std::optional<std::pair<std::string_view, std::string_view>> splitPostfixLogLine(
    std::string_view line) {
  std::string_view rest = line;
  const auto first = nextToken(rest);
  if (first.size() >= 19 && first[4] == '-' && first[10] == 'T') {
    // RFC 3339 (rsyslog's RSYSLOG_FileFormat, journalctl -o short-iso).
  } else {
    // "Dec  7 08:26:03" (syslog pads the day with a space, postlogd with a zero).
    const auto day = nextToken(rest);
    const auto time = nextToken(rest);
    if (!isMonth(first) || day.empty() || day.size() > 2 || !isDigit(day[0]) || time.size() < 8 ||
        time[2] != ':' || time[5] != ':') {
      return std::nullopt;
    }
  }
  const auto host = nextToken(rest);
  auto tag = nextToken(rest);
  if (host.empty() || !tag.ends_with(':') || !rest.starts_with(' ')) return std::nullopt;
  tag.remove_suffix(1);
  if (tag.ends_with(']')) {
    const auto open = tag.rfind('[');
    if (open == std::string_view::npos) return std::nullopt;
    tag = tag.substr(0, open);
  }
  return std::pair{tag, rest.substr(1)};
}

std::optional<MtaLogLine> parsePostfixLogLine(std::string_view line) {
  const auto split = splitPostfixLogLine(line);
  if (!split) return std::nullopt;
  return parsePostfixMessage(split->first, split->second);
}

bool postfixInstalled(const std::vector<std::string>& configDirs) {
  std::error_code ec;
  return std::any_of(configDirs.begin(), configDirs.end(), [&ec](const std::string& dir) {
    return std::filesystem::exists(std::filesystem::path(dir) / "main.cf", ec);
  });
}

}  // namespace mailguard::mta
