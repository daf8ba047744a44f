#include "mailguard/mta/journal_follower.hpp"

#include <pwd.h>
#include <systemd/sd-journal.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

#include "mailguard/mta/postfix_log.hpp"

namespace mailguard::mta {
namespace {

// A record's MESSAGE longer than this is cut by sd-journal before it reaches us; the
// parser bounds what it keeps anyway.
constexpr std::size_t kDataThreshold = 16 * 1024;

// The value of FIELD in an entry, or nullopt. sd_journal_get_data hands out "FIELD=value".
std::optional<std::string_view> field(sd_journal* j, const char* name) {
  const void* data = nullptr;
  std::size_t length = 0;
  if (sd_journal_get_data(j, name, &data, &length) < 0) return std::nullopt;
  std::string_view text(static_cast<const char*>(data), length);
  const auto eq = text.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  return text.substr(eq + 1);
}

}  // namespace

bool isTrustedPostfixRecord(std::string_view identifier, std::optional<std::uint32_t> uid,
                            const std::vector<std::uint32_t>& postfixUids) {
  if (!uid || !isPostfixTag(identifier)) return false;
  return std::find(postfixUids.begin(), postfixUids.end(), *uid) != postfixUids.end();
}

std::vector<std::uint32_t> postfixUids(const char* mailOwner) {
  std::vector<std::uint32_t> out{0};
  std::array<char, 4096> buf{};
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwnam_r(mailOwner, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_uid != 0) {
    out.push_back(found->pw_uid);
  }
  return out;
}

bool journaldRuns(const std::filesystem::path& socket) {
  std::error_code ec;
  return std::filesystem::is_socket(socket, ec);
}

Result<std::unique_ptr<JournalFollower>> JournalFollower::open(
    std::vector<std::uint32_t> trustedUids) {
  sd_journal* j = nullptr;
  // SYSTEM: postfix's records are the system journal's; LOCAL_ONLY: not other machines'
  // journals that happen to be stored here.
  if (const int r = sd_journal_open(&j, SD_JOURNAL_LOCAL_ONLY | SD_JOURNAL_SYSTEM); r < 0) {
    return systemError("cannot open the journal", -r);
  }
  return start(j, std::move(trustedUids));
}

Result<std::unique_ptr<JournalFollower>> JournalFollower::openNamespace(
    const char* name, std::vector<std::uint32_t> trustedUids) {
  sd_journal* j = nullptr;
  if (const int r = sd_journal_open_namespace(&j, name, SD_JOURNAL_LOCAL_ONLY); r < 0) {
    return systemError(std::string("cannot open the journal namespace ") + name, -r);
  }
  return start(j, std::move(trustedUids));
}

Result<std::unique_ptr<JournalFollower>> JournalFollower::start(
    sd_journal* j, std::vector<std::uint32_t> trustedUids) {
  std::unique_ptr<sd_journal, decltype(&sd_journal_close)> owned(j, &sd_journal_close);
  // syslog's "mail" facility (LOG_MAIL = 2 << 3; the journal stores the number, 2).
  if (const int r = sd_journal_add_match(j, "SYSLOG_FACILITY=2", 0); r < 0) {
    return systemError("cannot match the journal's mail records", -r);
  }
  if (const int r = sd_journal_set_data_threshold(j, kDataThreshold); r < 0) {
    return systemError("cannot bound the journal's fields", -r);
  }
  // At the end: seek_tail places the cursor after the last entry, and one step back makes
  // the next sd_journal_next() return the first entry written from now on.
  if (const int r = sd_journal_seek_tail(j); r < 0) {
    return systemError("cannot seek to the journal's end", -r);
  }
  if (const int r = sd_journal_previous(j); r < 0) {
    return systemError("cannot read the journal", -r);
  }
  const int fd = sd_journal_get_fd(j);
  if (fd < 0) return systemError("cannot watch the journal", -fd);
  return std::unique_ptr<JournalFollower>(
      new JournalFollower(owned.release(), fd, std::move(trustedUids)));
}

JournalFollower::~JournalFollower() { sd_journal_close(j_); }

void JournalFollower::trust(std::uint32_t uid) {
  if (std::find(trustedUids_.begin(), trustedUids_.end(), uid) == trustedUids_.end()) {
    trustedUids_.push_back(uid);
  }
}

Result<void> JournalFollower::poll(const std::function<void(const MtaLogLine&)>& onLine,
                                   const std::function<void(const InboundLine&)>& onInbound) {
  // Acknowledges the wake-up (and notices new or rotated journal files).
  if (const int r = sd_journal_process(j_); r < 0) {
    return systemError("cannot follow the journal", -r);
  }
  for (int n = 0; n < kMaxPerPoll; ++n) {
    const int r = sd_journal_next(j_);
    if (r < 0) return systemError("cannot read the journal", -r);
    if (r == 0) return {};
    const auto identifier = field(j_, "SYSLOG_IDENTIFIER");
    const auto uidText = field(j_, "_UID");
    std::optional<std::uint32_t> uid;
    if (uidText) {
      std::uint32_t value = 0;
      const auto* end = uidText->data() + uidText->size();
      if (auto [p, ec] = std::from_chars(uidText->data(), end, value);
          ec == std::errc{} && p == end) {
        uid = value;
      }
    }
    if (!identifier || !isTrustedPostfixRecord(*identifier, uid, trustedUids_)) continue;
    const auto message = field(j_, "MESSAGE");
    if (!message) continue;
    if (auto line = parsePostfixMessage(*identifier, *message)) onLine(*line);
    // The same trusted record, read the way a log file's line is for the backscatter
    // watch: a forged "from=<>" or "relay=local" never gets this far.
    if (onInbound) {
      if (auto in = parsePostfixInbound(*identifier, *message)) onInbound(*in);
    }
  }
  return {};
}

}  // namespace mailguard::mta
