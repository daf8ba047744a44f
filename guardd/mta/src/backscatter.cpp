#include "mailguard/mta/backscatter.hpp"
#include "log_token.hpp"

#include <algorithm>

#include "mailguard/mta/postfix_log.hpp"
#include "mailguard/mta/protocol.hpp"

namespace mailguard::mta {
namespace {

constexpr std::size_t kMaxPending = 20'000;
constexpr std::size_t kMaxCredits = 20'000;
constexpr std::size_t kMaxRecipient = 256;
// A DSN not delivered within a day (queued for a mailbox that is full, say) is forgotten.
constexpr auto kPendingFor = std::chrono::hours(24);

std::string printable(std::string_view s) {
  std::string out(s.substr(0, kMaxRecipient));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) c = '?';
  }
  return out;
}

// The last service of a postfix tag: "postfix/local", "postfix-in/virtual" -> the agent.
std::string_view serviceOf(std::string_view tag) {
  const auto slash = tag.rfind('/');
  return slash == std::string_view::npos ? std::string_view{} : tag.substr(slash + 1);
}

}  // namespace

std::optional<InboundLine> parsePostfixInbound(std::string_view tag, std::string_view text) {
  if (!isPostfixTag(tag)) return std::nullopt;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const auto colon = text.find(": ");
  if (colon == std::string_view::npos) return std::nullopt;
  const auto id = text.substr(0, colon);
  if (!isPostfixQueueId(id)) return std::nullopt;
  auto rest = text.substr(colon + 2);
  const auto service = serviceOf(tag);
  InboundLine out;
  out.queueId = std::string(id);
  // qmgr_active.c: "from=<%s>, size=%ld, nrcpt=%d (queue active)" when a message enters
  // the active queue ("from=<>, status=expired" is another record).
  if (service == "qmgr" && rest.starts_with("from=<>, size=")) {
    out.kind = InboundLine::Kind::NullSenderArrival;
    return out;
  }
  // bounce_notify_service.c and its siblings: "%s: sender non-delivery notification: %s",
  // "sender delivery status notification", "sender delay notification".
  if (service == "bounce") {
    for (std::string_view what :
         {"sender non-delivery notification: ", "sender delivery status notification: ",
          "sender delay notification: "}) {
      if (!rest.starts_with(what)) continue;
      const auto dsn = rest.substr(what.size());
      if (!isPostfixQueueId(dsn)) return std::nullopt;
      out.kind = InboundLine::Kind::Notification;
      out.about = out.queueId;
      out.queueId = std::string(dsn);
      return out;
    }
    return std::nullopt;
  }
  // Final delivery to a mailbox here: local(8) (mbox, maildir, .forward, procmail through
  // mailbox_command), virtual(8), lmtp(8) (dovecot's LMTP). smtp(8) sends it elsewhere.
  if (service != "local" && service != "virtual" && service != "lmtp") return std::nullopt;
  auto line = parsePostfixMessage(tag, text);
  if (!line || line->status != DeliveryStatus::Delivered) return std::nullopt;
  out.kind = InboundLine::Kind::LocalDelivery;
  out.recipient = printable(line->recipient);
  return out;
}

std::optional<InboundLine> parsePostfixInboundLine(std::string_view line) {
  const auto split = splitPostfixLogLine(line);
  if (!split) return std::nullopt;
  return parsePostfixInbound(split->first, split->second);
}

std::optional<InboundLine> parseEximInboundLine(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::string_view rest = line;
  const auto token = eximQueueIdToken(rest);
  if (!isQueueId(token)) return std::nullopt;
  InboundLine out;
  out.queueId = std::string(token);
  const auto marker = nextToken(rest);
  if (marker == "<=") {
    if (nextToken(rest) != "<>") return std::nullopt;
    out.kind = InboundLine::Kind::NullSenderArrival;
    // exim's own bounce names the message it is about: "R=<id>" (exim spec, "Log files":
    // "R=<message id> on a bounce arrival line").
    for (auto field = nextToken(rest); !field.empty(); field = nextToken(rest)) {
      if (field.starts_with("R=") && isQueueId(field.substr(2))) {
        out.about = std::string(field.substr(2));
        break;
      }
    }
    return out;
  }
  if (marker != "=>") return std::nullopt;
  // "=> ann <ann@pc.example> R=local_user T=mail_spool": a delivery to a remote host logs
  // H=; one without is local (a mailbox, a pipe to procmail, a file).
  const auto first = nextToken(rest);
  if (first.empty()) return std::nullopt;
  std::string_view recipient = first;
  for (auto field = nextToken(rest); !field.empty(); field = nextToken(rest)) {
    if (field.starts_with("H=")) return std::nullopt;
    if (field.size() > 2 && field.front() == '<' && field.back() == '>') {
      recipient = field.substr(1, field.size() - 2);
    }
  }
  out.kind = InboundLine::Kind::LocalDelivery;
  out.recipient = printable(recipient);
  return out;
}

void BackscatterWatch::sent(const std::string& queueId, MonoTime now) {
  forget(now);
  auto [it, inserted] = credits_.try_emplace(queueId);
  ++it->second.left;
  it->second.at = now;
  if (inserted) creditOrder_.push_back(queueId);
  while (credits_.size() > kMaxCredits && !creditOrder_.empty()) {
    credits_.erase(creditOrder_.front());
    creditOrder_.pop_front();
  }
}

void BackscatterWatch::forget(MonoTime now) {
  while (!creditOrder_.empty()) {
    auto it = credits_.find(creditOrder_.front());
    if (it != credits_.end() && now - it->second.at < config_.remember && it->second.left > 0) {
      break;
    }
    if (it != credits_.end()) credits_.erase(it);
    creditOrder_.pop_front();
  }
  while (!pendingOrder_.empty()) {
    auto it = pending_.find(pendingOrder_.front());
    if (it != pending_.end() && now - it->second.at < kPendingFor) break;
    if (it != pending_.end()) pending_.erase(it);
    pendingOrder_.pop_front();
  }
  while (!hour_.empty() && now - hour_.front().at >= std::chrono::hours(1)) hour_.pop_front();
}

bool BackscatterWatch::take(const std::string& about) {
  if (!about.empty()) {
    // The MTA's own DSN about its own message: that message's recipient, if it was one
    // submitted through the gate (else it is still the MTA's own, and matched).
    auto it = credits_.find(about);
    if (it != credits_.end() && it->second.left > 0) --it->second.left;
    return true;
  }
  // The oldest recipient still owed a bounce (a remote server bounces after its retries).
  for (const auto& id : creditOrder_) {
    auto it = credits_.find(id);
    if (it != credits_.end() && it->second.left > 0) {
      --it->second.left;
      return true;
    }
  }
  return false;
}

std::optional<BackscatterFigures> BackscatterWatch::onLine(const InboundLine& line, MonoTime now) {
  forget(now);
  switch (line.kind) {
    case InboundLine::Kind::NullSenderArrival:
    case InboundLine::Kind::Notification: {
      auto [it, inserted] = pending_.try_emplace(line.queueId);
      if (inserted) {
        it->second.at = now;
        pendingOrder_.push_back(line.queueId);
      }
      if (!line.about.empty()) {
        // postfix's bounce names its DSN before qmgr sees it; exim names the message on
        // the arrival itself. Either way the local MTA wrote it about its own message.
        it->second.ownNotification = true;
        it->second.about = line.about;
      }
      while (pending_.size() > kMaxPending && !pendingOrder_.empty()) {
        pending_.erase(pendingOrder_.front());
        pendingOrder_.pop_front();
      }
      // Delivered DSNs leave pending_ at once but their ids stay queued behind older ones:
      // dropped here, so the queue stays bounded by the map's capacity.
      if (pendingOrder_.size() > 2 * kMaxPending) {
        std::erase_if(pendingOrder_,
                      [this](const std::string& id) { return !pending_.contains(id); });
      }
      return std::nullopt;
    }
    case InboundLine::Kind::LocalDelivery:
      break;
  }
  auto it = pending_.find(line.queueId);
  if (it == pending_.end()) return std::nullopt;  // not a DSN (or delivered already)
  const auto dsn = it->second;
  // One DSN is one bounce, however many mailboxes it goes to (an alias, a list).
  pending_.erase(it);
  const bool matched = take(dsn.ownNotification ? dsn.about : std::string{});
  const bool wasFlooding = flood_.flooding;
  count(!matched, line.recipient, now);
  if (!wasFlooding && flood_.flooding) return figures(now);
  return std::nullopt;
}

void BackscatterWatch::count(bool unmatched, const std::string& recipient, MonoTime now) {
  const auto isUnmatched = [](const Seen& s) { return s.unmatched; };
  // No unmatched DSN for an hour: a flood is over, the next one is reported again.
  if (std::none_of(hour_.begin(), hour_.end(), isUnmatched)) flood_ = {};
  hour_.push_back(Seen{now, unmatched});
  const auto unmatchedHour =
      static_cast<unsigned>(std::count_if(hour_.begin(), hour_.end(), isUnmatched));
  if (!flood_.flooding && unmatchedHour >= config_.floodPerHour) {
    flood_.flooding = true;
    // The flood began with the oldest unmatched DSN of this hour; its figures count
    // every DSN from then on.
    for (const auto& s : hour_) {
      if (!s.unmatched) continue;
      flood_.since = s.at;
      break;
    }
    for (const auto& s : hour_) {
      if (s.at < flood_.since) continue;
      ++flood_.total;
      if (s.unmatched) ++flood_.unmatchedTotal;
    }
  } else if (flood_.flooding) {
    ++flood_.total;
    if (unmatched) ++flood_.unmatchedTotal;
  }
  flood_.last = now;
  if (flood_.flooding || unmatched) {
    auto& r = flood_.recipients;
    if (r.size() < BackscatterFigures::kMaxRecipients &&
        std::find(r.begin(), r.end(), recipient) == r.end()) {
      r.push_back(recipient);
    }
  }
}

BackscatterFigures BackscatterWatch::figures(MonoTime now) const {
  BackscatterFigures out = flood_;
  for (const auto& s : hour_) {
    if (now - s.at >= std::chrono::hours(1)) continue;
    ++out.lastHour;
    if (s.unmatched) ++out.unmatchedLastHour;
  }
  if (out.flooding && out.unmatchedLastHour == 0) out.flooding = false;  // ended, not yet seen
  if (!out.flooding) {
    out.total = 0;
    out.unmatchedTotal = 0;
    out.since = {};
  }
  return out;
}

}  // namespace mailguard::mta
