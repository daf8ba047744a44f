#include "mailguard/mta/milter_session.hpp"

namespace mailguard::mta {
namespace {

// include/libmilter/mfdef.h
constexpr std::uint32_t kVersion = 6;
constexpr std::uint32_t kActQuarantine = 0x20;  // SMFIF_QUARANTINE
constexpr std::uint32_t kNoConnect = 0x1;       // SMFIP_NOCONNECT
constexpr std::uint32_t kNoHelo = 0x2;
constexpr std::uint32_t kNoBody = 0x10;
constexpr std::uint32_t kNoHeaders = 0x20;
constexpr std::uint32_t kNoEoh = 0x40;
constexpr std::uint32_t kNoUnknown = 0x100;
constexpr std::uint32_t kNoData = 0x200;
constexpr std::uint32_t kWanted =
    kNoConnect | kNoHelo | kNoBody | kNoHeaders | kNoEoh | kNoUnknown | kNoData;
// A stage guardd skips can still arrive (an MTA that ignores the flags): bounded anyway.
constexpr std::size_t kMaxPacket = std::size_t{1024} * 1024;
constexpr std::size_t kMaxRecipients = 10'000;

std::uint32_t readU32(std::string_view s) {
  return static_cast<std::uint32_t>(static_cast<unsigned char>(s[0])) << 24 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[1])) << 16 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[2])) << 8 |
         static_cast<std::uint32_t>(static_cast<unsigned char>(s[3]));
}

void writeU32(std::string& out, std::uint32_t v) {
  out += static_cast<char>((v >> 24) & 0xff);
  out += static_cast<char>((v >> 16) & 0xff);
  out += static_cast<char>((v >> 8) & 0xff);
  out += static_cast<char>(v & 0xff);
}

// NUL-separated strings ("<a@b>\0SIZE=10\0").
std::vector<std::string> strings(std::string_view data) {
  std::vector<std::string> out;
  while (!data.empty()) {
    const auto nul = data.find('\0');
    out.emplace_back(data.substr(0, nul));
    if (nul == std::string_view::npos) break;
    data.remove_prefix(nul + 1);
  }
  return out;
}

std::string unbracket(std::string address) {
  if (address.size() >= 2 && address.front() == '<' && address.back() == '>') {
    address = address.substr(1, address.size() - 2);
  }
  return address;
}

}  // namespace

std::string MilterSession::packet(char command, std::string_view data) {
  std::string out;
  writeU32(out, static_cast<std::uint32_t>(data.size() + 1));
  out += command;
  out += data;
  return out;
}

Result<std::optional<MilterSession::Message>> MilterSession::feed(std::string_view bytes,
                                                                  std::string& out) {
  buffer_ += bytes;
  std::optional<Message> ended;
  while (!waiting_ && !closed_ && buffer_.size() >= 4) {
    const auto length = readU32(buffer_);
    if (length == 0 || length > kMaxPacket) {
      return invalidArgument("milter packet of " + std::to_string(length) + " bytes");
    }
    if (buffer_.size() < 4 + length) break;
    const char command = buffer_[4];
    const std::string data = buffer_.substr(5, length - 1);
    buffer_.erase(0, 4 + length);
    if (auto r = handle(command, data, out, ended); !r) return r.error();
  }
  return ended;
}

Result<void> MilterSession::handle(char command, std::string_view data, std::string& out,
                                   std::optional<Message>& ended) {
  if (!negotiated_ && command != 'O') {
    return invalidArgument(std::string("milter command '") + command + "' before negotiation");
  }
  switch (command) {
    case 'O': {  // OPTNEG: version, actions, protocol
      if (data.size() < 12) return invalidArgument("short milter negotiation");
      const auto version = readU32(data);
      const auto protocol = readU32(data.substr(8));
      if (version < 2) return invalidArgument("milter version " + std::to_string(version));
      std::string reply;
      writeU32(reply, version < kVersion ? version : kVersion);
      writeU32(reply, kActQuarantine);
      writeU32(reply, protocol & kWanted);  // only flags the MTA offered
      out += packet('O', reply);
      negotiated_ = true;
      return {};
    }
    case 'D': {  // macros of a stage: the stage's command, then name\0value\0...
      if (data.empty()) return {};
      const auto items = strings(data.substr(1));
      for (std::size_t i = 0; i + 1 < items.size(); i += 2) {
        auto name = items[i];
        if (name.size() > 2 && name.front() == '{' && name.back() == '}') {
          name = name.substr(1, name.size() - 2);
        }
        macros_[name] = items[i + 1];
      }
      return {};
    }
    case 'M': {  // MAIL FROM: a new message
      const auto args = strings(data);
      message_ = Message{};
      message_.sender = args.empty() ? "" : unbracket(args[0]);
      out += packet('c', "");
      return {};
    }
    case 'R': {
      const auto args = strings(data);
      if (!args.empty() && message_.recipients.size() < kMaxRecipients) {
        message_.recipients.push_back(unbracket(args[0]));
      }
      out += packet('c', "");
      return {};
    }
    case 'E': {  // end of body: the verdict is the caller's
      if (const auto it = macros_.find("i"); it != macros_.end()) message_.queueId = it->second;
      ended = message_;
      waiting_ = true;
      return {};
    }
    case 'A':  // ABORT: the message is gone; the connection may carry another
      message_ = Message{};
      macros_.clear();
      return {};
    case 'Q':
      closed_ = true;
      return {};
    case 'K':  // QUIT_NC: a new connection's worth of messages follows
      message_ = Message{};
      macros_.clear();
      return {};
    default:  // connect, helo, headers, body, data, unknown: nothing to say
      out += packet('c', "");
      return {};
  }
}

void MilterSession::verdict(MilterVerdict v, std::string_view reason, std::string& out) {
  if (!waiting_) return;
  waiting_ = false;
  switch (v) {
    case MilterVerdict::Accept:
      // At end of message CONTINUE is acceptance; ACCEPT would also be, but an ACCEPT before
      // the end is taken for the whole connection by some MTAs.
      out += packet('c', "");
      break;
    case MilterVerdict::Quarantine: {
      std::string text(reason.substr(0, 200));
      for (auto& c : text) {
        if (c == '\0' || c == '\n' || c == '\r') c = ' ';
      }
      out += packet('q', text + '\0');
      out += packet('c', "");  // accepted into the queue, where the quarantine holds it
      break;
    }
    case MilterVerdict::Discard:
      out += packet('d', "");
      break;
  }
  message_ = Message{};
}

}  // namespace mailguard::mta
