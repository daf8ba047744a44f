#include "mta_gate.hpp"

#include <pwd.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

#include "mailguard/mta/submitter.hpp"
#include "mailguard/service/log.hpp"

namespace mailguard::service {
namespace {

std::string joinDomains(const std::vector<std::string>& domains) {
  // The attempts list shows it as the destination: bounded like a command line.
  constexpr std::size_t kMax = 1024;
  std::string out;
  for (const auto& d : domains) {
    if (out.size() + d.size() + 1 > kMax) {
      out += ",...";
      break;
    }
    out += (out.empty() ? "" : ",") + d;
  }
  return out;
}

// exim's user on Debian (exim4-base creates it); root's uid where there is none, so that
// only root's exim counts as exim's own.
std::uint32_t eximUid() {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r("Debian-exim", &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) {
    return 0;
  }
  return static_cast<std::uint32_t>(found->pw_uid);
}

// readlink(2) of a /proc link; "" when it cannot be read (the process exited).
std::string readLink(const std::string& path) {
  char buf[PATH_MAX];
  const auto n = ::readlink(path.c_str(), buf, sizeof buf);
  return n <= 0 ? std::string{} : std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace

Result<std::unique_ptr<MtaGate>> MtaGate::open(Deps deps, const std::filesystem::path& socket,
                                               const std::filesystem::path& heldFile,
                                               const std::filesystem::path& eximLog,
                                               const std::filesystem::path& postfixLog) {
  auto held = mta::HeldMessages::open(heldFile);
  if (!held) return held.error();
  auto listener = mta::GateSocket::open(socket);
  if (!listener) return listener.error();
  std::unique_ptr<MtaGate> gate(
      new MtaGate(deps, std::move(listener.value()), std::move(held.value())));
  auto* self = gate.get();
  self->eximUid_ = eximUid();
  // A question waits while its programs are hashed (a large interpreter: well under exim's
  // 10 s); it is not decided before, since an unknown file could pass for an approved one.
  deps.loop.every(std::chrono::milliseconds(20), [self] { self->retry(); });
  if (!eximLog.empty() || !postfixLog.empty()) {
    // Held messages are still to be delivered (or deleted): their outcomes are charged
    // after a restart of guardd too.
    for (const auto programId : self->held_.programs()) {
      const auto* view = deps.programs.find(programId);
      if (view == nullptr) continue;
      for (auto& e : self->held_.entries(programId)) {
        self->tracker_.submitted(
            e.id, mta::Submitter{programId, view->identity, view->uid, 0, std::move(e.where)},
            deps.clock.monotonic());
      }
    }
    // A follower per MTA, each with its own parser: an exim line is never read as
    // postfix's, nor the other way round.
    if (!eximLog.empty()) self->log_ = std::make_unique<mta::LogFollower>(eximLog);
    std::error_code ec;
    self->postfixLogPath_ = postfixLog;
    if (!postfixLog.empty() && !std::filesystem::exists(postfixLog, ec) && mta::journaldRuns()) {
      // Debian without rsyslog: postfix's syslog(3) records are only in the journal. (Not
      // without journald: then the file is one postfix has yet to create, its
      // maillog_file.)
      auto journal = mta::JournalFollower::open(mta::postfixUids());
      if (journal) {
        self->journal_ = std::move(journal.value());
        log::info("mta: following postfix's records in the journal (" +
                  log::quote(postfixLog.string()) + " does not exist)");
      } else {
        log::warning("mta: " + journal.error().message + "; waiting for " +
                     log::quote(postfixLog.string()) + " instead");
      }
    }
    if (!postfixLog.empty() && !self->journal_) {
      self->postfixLog_ = std::make_unique<mta::LogFollower>(postfixLog);
    }
    // The first read marks where history ends: now, before the socket answers, so that no
    // message guardd lets through can be logged before that mark and skipped as history.
    self->followLog();
    // A timer rather than inotify: a rotated or not yet created log needs no watch of its
    // folder, and a quarter second is well inside a bounce storm's pace.
    deps.loop.every(std::chrono::milliseconds(250), [self] { self->followLog(); });
    if (self->journal_) {
      // The journal's fd (inotify) wakes the loop when records are written; the timer
      // above reads it too, for what sd_journal_get_fd cannot signal (sd-journal(3)).
      if (auto r = deps.loop.add(self->journal_->fd(), EPOLLIN,
                                 [self](std::uint32_t) { self->followJournal(); });
          !r) {
        return r.error();
      }
    }
  }
  if (auto r =
          deps.loop.add(self->socket_->fd(), EPOLLIN, [self](std::uint32_t) { self->onAccept(); });
      !r) {
    return r.error();
  }
  return gate;
}

MtaGate::~MtaGate() {
  if (journal_) d_.loop.remove(journal_->fd());
  for (const auto& [fd, peer] : peers_) d_.loop.remove(fd);
  if (socket_) d_.loop.remove(socket_->fd());
  for (const auto& [fd, milter] : milters_) d_.loop.remove(fd);
  for (const auto& route : postfix_) {
    if (route.milter) d_.loop.remove(route.milter->fd());
  }
  if (maildrop_) d_.loop.remove(maildrop_->fd());
}

void MtaGate::onAccept() {
  while (true) {
    auto accepted = socket_->accept();
    if (!accepted) {
      log::error(accepted.error().message);
      return;
    }
    if (!*accepted) return;
    const int fd = (*accepted)->fd.get();
    if (auto r = d_.loop.add(fd, EPOLLIN, [this, fd](std::uint32_t) { onReadable(fd); }); !r) {
      log::error(r.error().message);
      continue;  // the connection closes: exim freezes the message (fail closed)
    }
    peers_.emplace(fd, std::move(**accepted));
  }
}

void MtaGate::close(int fd) {
  d_.loop.remove(fd);
  if (fd == agentFd_) {
    agentFd_ = -1;
    // Unanswered commands are sent again to the next agent: their ids are still held
    // (listed), and holds are kept to be sent first.
    for (auto& sent : inFlight_) {
      if (sent.action != mta::AgentAction::Hold) continue;
      auto& ids = toHold_[sent.where];
      ids.insert(ids.end(), sent.ids.begin(), sent.ids.end());
    }
    inFlight_.clear();
    log::warning("mta: the release agent disconnected");
  }
  peers_.erase(fd);
}

void MtaGate::onReadable(int fd) {
  auto it = peers_.find(fd);
  if (it == peers_.end()) return;
  auto& peer = it->second;
  auto ended = mta::GateSocket::readSome(peer);
  if (!ended) {
    log::warning(ended.error().message);
    return close(fd);
  }
  if (fd == agentFd_) {
    std::size_t eol = 0;
    while ((eol = peer.received.find('\n')) != std::string::npos) {
      const auto line = peer.received.substr(0, eol);
      peer.received.erase(0, eol + 1);
      onAgentLine(line);
    }
    if (*ended) close(fd);
    return;
  }
  // The agent says hello and keeps the connection open; exim shuts its side after asking.
  if (peer.received.starts_with(std::string(mta::kAgentHello) + "\n")) {
    // Only root may carry out decisions (and be told which messages are held).
    if (peer.uid != 0 || agentFd_ != -1) {
      log::warning("mta: refused a release agent (pid " + std::to_string(peer.pid) + ", uid " +
                   std::to_string(peer.uid) + (agentFd_ != -1 ? ", one is connected" : "") + ")");
      return close(fd);
    }
    agentFd_ = fd;
    peer.received.erase(0, mta::kAgentHello.size() + 1);
    log::info("mta: release agent connected (pid " + std::to_string(peer.pid) + ")");
    reconcile();
    return;
  }
  if (!*ended) return;
  std::string reply;
  if (auto question = mta::parseSubmission(peer.received); !question) {
    reply = mta::formatAnswer(mta::Answer::Deny, question.error().message);
  } else if (auto answered = answer(peer, *question)) {
    reply = *answered;
  } else {
    d_.loop.remove(fd);  // nothing more to read; answered by retry()
    waiting_.push_back({fd, std::move(question.value()), d_.clock.monotonic()});
    return;
  }
  if (auto r = mta::GateSocket::writeAll(fd, reply); !r) log::warning(r.error().message);
  close(fd);
}

void MtaGate::retry() {
  if (waiting_.empty()) return;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  const auto now = d_.clock.monotonic();
  for (auto& w : waiting) {
    const auto peer = peers_.find(w.fd);
    if (peer == peers_.end()) continue;
    std::optional<std::string> reply = answer(peer->second, w.question);
    if (!reply && now - w.since > std::chrono::seconds(5)) {
      reply = mta::formatAnswer(mta::Answer::Freeze, "its program could not be read in time");
    }
    if (!reply) {
      waiting_.push_back(std::move(w));
      continue;
    }
    if (auto r = mta::GateSocket::writeAll(w.fd, *reply); !r) log::warning(r.error().message);
    peers_.erase(peer);
  }
}

std::optional<std::string> MtaGate::answer(const mta::PeerConnection& c, const mta::Submission& s) {
  auto describe = [this](int pid) { return d_.resolver.describe(pid); };
  // The asker must be the MTA itself (a root-owned exim): anyone else could only make up
  // attempts, and is told no.
  auto asker = describe(c.pid);
  if (!asker && asker.error().code == Errc::Pending) return std::nullopt;
  if (!asker || !mta::isMtaProgram(*asker)) {
    log::warning("mta: a question from pid " + std::to_string(c.pid) + " (" +
                 (asker ? log::quote(asker->identity.path) : asker.error().message) +
                 "), which is not the MTA's own program; refused");
    return mta::formatAnswer(mta::Answer::Deny, "not asked by the MTA");
  }
  auto own = mta::isEximOwnMessage(*asker, s.sender, eximUid_, describe);
  if (!own && own.error().code == Errc::Pending) return std::nullopt;
  if (own && *own) return acceptOwn(*asker, s);
  auto submitter = mta::findSubmitter(asker->ppid, describe);
  if (!submitter && submitter.error().code == Errc::Pending) return std::nullopt;
  const auto [verdict, reason] = judge(submitter, s, asker->uid, {}, false);
  return mta::formatAnswer(verdict, reason);
}

std::string MtaGate::acceptOwn(const procinfo::ProcessInfo& asker, const mta::Submission& s) {
  store::AttemptRecord attempt;
  attempt.time = d_.clock.now();
  attempt.channel = "mta";
  attempt.queueId = s.queueId;
  attempt.src = s.mta;
  attempt.dst = joinDomains(mta::recipientDomains(s.recipients));
  attempt.pid = asker.pid;
  attempt.uid = asker.uid;
  attempt.path = asker.identity.path;
  for (const auto& a : asker.cmdline) {
    if (attempt.cmdline.size() > 4096) break;
    attempt.cmdline += (attempt.cmdline.empty() ? "" : " ") + a;
  }
  attempt.verdict = rules::Verdict::Allow;
  attempt.reason = "mail handed to " + s.mta + " (" + std::to_string(s.recipients.size()) +
                   " recipients): exim's own message (bounce or warning)";
  // Not charged to a program: no submitter's counters, no backstop, no outcome tracking.
  d_.pipeline.recordSubmission(std::move(attempt), nullptr, false);
  return mta::formatAnswer(mta::Answer::Accept, "exim's own message");
}

std::pair<mta::Answer, std::string> MtaGate::judge(const Result<procinfo::ProcessInfo>& submitter,
                                                   const mta::Submission& s, std::uint32_t uid,
                                                   const std::string& where, bool holdRefused) {
  const auto domains = mta::recipientDomains(s.recipients);
  store::AttemptRecord attempt;
  attempt.time = d_.clock.now();
  attempt.channel = "mta";
  attempt.queueId = s.queueId;  // links the message to its outcome in the MTA's log
  attempt.src = s.mta;          // the MTA that took it: "exim", "postfix"
  attempt.dst = joinDomains(domains);
  attempt.uid = uid;
  rules::Decision decision;
  ProgramView* program = nullptr;
  if (submitter) {
    // First: a submission over the MTA channel's daily limit quarantines the program, and
    // this message is refused with it.
    // Mail of a program the owner has not approved waits for them whatever the detector
    // says: where it would go is evidence only once it can go there.
    const bool held =
        rules::decide(submitter->identity, false, d_.approvals, submitter->uid).verdict !=
        rules::Verdict::Allow;
    d_.detection.onMtaSubmission(submitter->identity, submitter->uid,
                                 static_cast<unsigned>(s.recipients.size()), domains, held);
  }
  if (!submitter) {
    decision.verdict = rules::Verdict::Hold;
    decision.reason = "could not name the program that submitted it: " + submitter.error().message;
  } else {
    const auto& p = *submitter;
    program = &d_.programs.remember(p.identity, p.uid, d_.clock.now(), d_.clock.monotonic());
    decision = rules::decide(p.identity, program->state == rules::ProgramState::Quarantined,
                             d_.approvals, p.uid);
    attempt.pid = p.pid;
    attempt.uid = p.uid;
    attempt.path = p.identity.path;
    attempt.scriptPath = p.identity.scriptPath;
    for (const auto& a : p.cmdline) {
      if (attempt.cmdline.size() > 4096) break;
      attempt.cmdline += (attempt.cmdline.empty() ? "" : " ") + a;
    }
  }
  mta::Answer verdict = mta::Answer::Freeze;
  if (decision.verdict == rules::Verdict::Allow) verdict = mta::Answer::Accept;
  if (decision.verdict == rules::Verdict::Reject) verdict = mta::Answer::Deny;
  if (verdict == mta::Answer::Deny && holdRefused &&
      (program == nullptr || program->state != rules::ProgramState::Denied)) {
    verdict = mta::Answer::Freeze;
  }
  if (verdict == mta::Answer::Freeze && program != nullptr && mta::isQueueId(s.queueId)) {
    if (auto r = held_.add(program->id, s.queueId, where); !r) {
      // Still frozen in exim's spool; only guardd's list of it is missing (logged).
      log::error("mta: " + r.error().message);
    }
  }
  if (verdict != mta::Answer::Deny && program != nullptr) {
    tracker_.submitted(
        s.queueId,
        mta::Submitter{program->id, program->identity, submitter->uid, submitter->pid, where},
        d_.clock.monotonic());
  }
  attempt.verdict = decision.verdict;
  attempt.reason =
      "mail handed to " + s.mta + " (" + std::to_string(s.recipients.size()) +
      " recipients): " + (verdict == mta::Answer::Freeze ? "held in the MTA's queue; " : "") +
      decision.reason;
  const bool quarantined = program != nullptr && program->state == rules::ProgramState::Quarantined;
  d_.pipeline.recordSubmission(attempt, program, quarantined);
  return {verdict, decision.reason};
}

void MtaGate::follow(mta::LogFollower& log,
                     std::optional<mta::MtaLogLine> (*parse)(std::string_view),
                     std::optional<mta::InboundLine> (*inbound)(std::string_view),
                     std::string& lastError) {
  auto polled = log.poll([this, parse, inbound, &log](std::string_view text) {
    if (auto line = parse(text)) onOutcome(*line);
    if (backscatter_ == nullptr) return;
    if (auto in = inbound(text)) backscatter_->onLine(*in, log.path().string());
  });
  if (!polled) {
    // Once per kind of failure: the timer would repeat it four times a second.
    if (polled.error().message != lastError) log::warning("mta: " + polled.error().message);
    lastError = polled.error().message;
  } else {
    lastError.clear();
  }
}

void MtaGate::onOutcome(const mta::MtaLogLine& line) {
  if (backscatter_ != nullptr && tracker_.knows(line.queueId) &&
      (line.status == mta::DeliveryStatus::Delivered ||
       line.status == mta::DeliveryStatus::Failed)) {
    backscatter_->sent(line.queueId);
  }
  if (auto finished = tracker_.onLine(line, d_.clock.monotonic())) charge(*finished);
}

void MtaGate::watchBackscatter(BackscatterMonitor& monitor) {
  backscatter_ = &monitor;
  monitor.setWatching(log_ != nullptr || postfixLog_ != nullptr || journal_ != nullptr);
}

void MtaGate::followJournal() {
  auto polled = journal_->poll([this](const mta::MtaLogLine& line) { onOutcome(line); },
                               [this](const mta::InboundLine& in) {
                                 // Named in the alert as a log file's path is: where the owner
                                 // finds the bounces (the mail facility holds every postfix
                                 // instance's records, whatever its syslog_name).
                                 if (backscatter_ != nullptr)
                                   backscatter_->onLine(in, std::string(kJournalPlace));
                               });
  if (!polled) {
    if (polled.error().message != lastPostfixLogError_) {
      log::warning("mta: " + polled.error().message);
    }
    lastPostfixLogError_ = polled.error().message;
  } else {
    lastPostfixLogError_.clear();
  }
}

void MtaGate::followLog() {
  if (log_) follow(*log_, &mta::parseEximLogLine, &mta::parseEximInboundLine, lastLogError_);
  if (postfixLog_) {
    follow(*postfixLog_, &mta::parsePostfixLogLine, &mta::parsePostfixInboundLine,
           lastPostfixLogError_);
  }
  if (journal_) {
    std::error_code ec;
    if (std::filesystem::exists(postfixLogPath_, ec)) {
      // rsyslog was installed, or postfix now writes its own file: follow that from its
      // end (what it holds so far came through the journal already, and would count twice).
      log::info("mta: following postfix's records in " + log::quote(postfixLogPath_.string()));
      d_.loop.remove(journal_->fd());
      journal_.reset();
      postfixLog_ = std::make_unique<mta::LogFollower>(postfixLogPath_);
      if (backscatter_ != nullptr) backscatter_->setWatching(true);
      follow(*postfixLog_, &mta::parsePostfixLogLine, &mta::parsePostfixInboundLine,
             lastPostfixLogError_);
    } else {
      followJournal();
    }
  }
  const auto now = d_.clock.monotonic();
  if (now - lastExpire_ < std::chrono::seconds(1)) return;
  lastExpire_ = now;
  for (const auto& finished : tracker_.expire(now)) charge(finished);
}

void MtaGate::charge(const mta::DeliveryTracker::Finished& f) {
  const auto& who = f.submitter;
  const auto& t = f.tally;
  store::AttemptRecord attempt;
  attempt.time = d_.clock.now();
  attempt.programId = who.programId;
  attempt.pid = who.pid;
  attempt.uid = who.uid;
  attempt.path = who.identity.path;
  attempt.scriptPath = who.identity.scriptPath;
  // The queue id says whose it is: exim's have '-' in them, postfix's never do. (A
  // settled tally comes from expire(), with no log line at hand to tell.)
  const std::string mtaName = mta::isPostfixQueueId(f.queueId) ? "postfix" : "exim";
  if (f.completed) {
    // Delivered before the agent could hold it (a quarantine during its last attempt):
    // it is no longer in the queue, and no longer held.
    const auto listed = held_.entries(who.programId);
    if (std::any_of(listed.begin(), listed.end(),
                    [&](const mta::HeldMessages::Entry& e) { return e.id == f.queueId; })) {
      if (auto r = held_.remove({f.queueId}); !r) log::error("mta: " + r.error().message);
    }
  }
  attempt.src = mtaName;
  attempt.dst = joinDomains(t.domains);
  // The message was let through; what its servers answered is the reason.
  attempt.verdict = rules::Verdict::Allow;
  attempt.channel = "mta";
  attempt.queueId = f.queueId;
  attempt.reason = "outcome of mail handed to " + mtaName + ": " + t.summary();
  // Not a new attempt of the program: its counters stay as they are.
  d_.pipeline.recordSubmission(std::move(attempt), nullptr, false);
  if (t.delivered + t.userUnknown + t.blocklisted + t.rejected == 0) return;  // deferred only
  detector::DeliveryEvent e;
  e.delivered = t.delivered;
  e.userUnknown = t.userUnknown;
  e.blocklisted = t.blocklisted;
  e.rejected = t.rejected;
  e.domains = t.domains;
  d_.detection.onMtaDelivery(who.identity, who.uid, e);
}

void MtaGate::programChanged(const ProgramView& view) {
  if (view.state != rules::ProgramState::Quarantined) return;
  std::size_t count = 0;
  for (auto& open : tracker_.openOf(view.id)) {
    // Only an MTA whose log is followed says when a message left its queue: without it,
    // the tracker still names messages delivered long ago.
    const bool followed = open.where.empty() ? log_ != nullptr : (postfixLog_ || journal_);
    if (!followed) continue;
    const auto listed = held_.entries(view.id);
    if (std::any_of(listed.begin(), listed.end(),
                    [&](const mta::HeldMessages::Entry& e) { return e.id == open.queueId; })) {
      continue;  // frozen when it was submitted
    }
    // Listed first: should guardd stop before the agent holds it, the owner's decision
    // still releases or deletes it.
    if (auto r = held_.add(view.id, open.queueId, open.where); !r) {
      log::error("mta: " + r.error().message);
      continue;
    }
    toHold_[open.where].push_back(std::move(open.queueId));
    ++count;
  }
  if (count == 0) return;
  log::info("mta: holding " + std::to_string(count) + " queued message(s) of quarantined " +
            log::quote(view.identity.path) +
            (view.identity.scriptPath.empty() ? "" : " " + log::quote(view.identity.scriptPath)));
  reconcile();
}

bool MtaGate::sendHolds() {
  auto pending = std::move(toHold_);
  toHold_.clear();
  for (auto it = pending.begin(); it != pending.end(); ++it) {
    const auto& where = it->first;
    constexpr std::string_view kPostfix = "postfix:";
    const auto command = where.starts_with(kPostfix)
                             ? mta::formatPostfixCommand(mta::AgentAction::Hold,
                                                         where.substr(kPostfix.size()), it->second)
                             : mta::formatAgentCommand(mta::AgentAction::Hold, it->second);
    if (auto r = mta::GateSocket::writeAll(agentFd_, command); !r) {
      log::warning(r.error().message);
      // What was not sent is sent to the next agent.
      for (; it != pending.end(); ++it) {
        auto& ids = toHold_[it->first];
        ids.insert(ids.end(), it->second.begin(), it->second.end());
      }
      close(agentFd_);
      return false;
    }
    inFlight_.push_back({mta::AgentAction::Hold, std::move(it->second), where});
  }
  return true;
}

std::size_t MtaGate::heldOfProgram(const ProgramView& view) const {
  std::size_t n = 0;
  for (const auto programId : held_.programs()) {
    const auto* version = d_.programs.find(programId);
    if (programId == view.id ||
        (version != nullptr && sameProgram(version->identity, view.identity))) {
      n += held_.count(programId);
    }
  }
  return n;
}

void MtaGate::reconcile() {
  if (agentFd_ == -1 || !inFlight_.empty()) return;
  // Holds first: a quarantined program's queued messages are being retried meanwhile.
  if (!sendHolds()) return;
  for (const auto programId : held_.programs()) {
    const auto* view = d_.programs.find(programId);
    if (view == nullptr) continue;
    // The owner decides about the row, whose state is its current version's: approving the
    // new content of a rewritten script releases what the older content submitted too (the
    // owner saw them counted on that row). Without a decision on the row (pending, or
    // quarantined, whose mail waits for the owner), a version goes by its own state; a
    // quarantined version's mail waits for its release, or goes with a denial.
    const auto current = d_.programs.currentVersion(*view);
    auto state = view->state;
    if (current.state == rules::ProgramState::Denied ||
        (current.state == rules::ProgramState::Approved &&
         view->state != rules::ProgramState::Quarantined)) {
      state = current.state;
    }
    mta::AgentAction action{};
    if (state == rules::ProgramState::Approved) {
      action = mta::AgentAction::Release;
    } else if (state == rules::ProgramState::Denied) {
      action = mta::AgentAction::Remove;
    } else {
      continue;
    }
    log::info(
        std::string("mta: ") + (action == mta::AgentAction::Release ? "releasing " : "deleting ") +
        std::to_string(held_.count(programId)) + " held message(s) of " +
        log::quote(view->identity.path) +
        (view->identity.scriptPath.empty() ? "" : " " + log::quote(view->identity.scriptPath)));
    // One command per MTA instance holding them ("" exim, "postfix:DIR").
    std::map<std::string, std::vector<std::string>> byPlace;
    for (auto& e : held_.entries(programId)) byPlace[e.where].push_back(std::move(e.id));
    for (auto& [where, ids] : byPlace) {
      constexpr std::string_view kPostfix = "postfix:";
      const auto command =
          where.starts_with(kPostfix)
              ? mta::formatPostfixCommand(action, where.substr(kPostfix.size()), ids)
              : mta::formatAgentCommand(action, ids);
      if (auto r = mta::GateSocket::writeAll(agentFd_, command); !r) {
        log::warning(r.error().message);
        return close(agentFd_);
      }
      inFlight_.push_back({action, std::move(ids), where});
    }
  }
}

void MtaGate::onAgentLine(const std::string& line) {
  if (inFlight_.empty()) return;
  auto sent = std::move(inFlight_.front());
  inFlight_.pop_front();
  if (line != "done") log::warning("mta: the release agent reports: " + log::quote(line));
  // Held or not (a message delivered meanwhile: exim refuses to freeze what is gone), the
  // ids stay listed for the owner's decision; a completed one leaves the list in charge().
  if (sent.action == mta::AgentAction::Hold) {
    if (inFlight_.empty()) reconcile();
    return;
  }
  // Done or failed, the ids leave the list: a message that is no longer in the queue
  // would fail for ever. What failed is in the agent's log and guardd's.
  if (auto r = held_.remove(sent.ids); !r) log::error("mta: " + r.error().message);
  if (inFlight_.empty()) reconcile();
}

Result<void> MtaGate::watchPostfix(const std::vector<mta::PostfixInstance>& instances) {
  if (instances.empty()) return {};
  if (!maildrop_) {
    auto watch = mta::MaildropWatch::open();
    if (!watch) return watch.error();
    maildrop_ = std::move(watch.value());
    if (auto r =
            d_.loop.add(maildrop_->fd(), EPOLLIN, [this](std::uint32_t) { onMaildropEvents(); });
        !r) {
      maildrop_.reset();
      return r.error();
    }
    d_.loop.every(std::chrono::milliseconds(20), [this] { retryOpens(); });
  }
  for (const auto& instance : instances) {
    // Its unprivileged daemons (qmgr, bounce) write as its mail_owner, which need not be
    // "postfix"; an account that does not exist writes nothing.
    if (journal_) {
      for (const auto uid : mta::postfixUids(instance.mailOwner.c_str())) journal_->trust(uid);
    }
    std::error_code ec;
    const auto maildrop = std::filesystem::canonical(instance.maildrop(), ec);
    if (ec) {
      return makeError("Failed to find postfix's maildrop '" + instance.maildrop().string() +
                       "': " + ec.message());
    }
    // install/setup.sh makes the folder (guardd's view of /var/spool is read-only); a test's
    // queue directory is guardd's to write.
    std::filesystem::create_directories(instance.milterSocket().parent_path(), ec);
    auto milter = mta::GateSocket::open(instance.milterSocket());
    if (!milter) return milter.error();
    // The milter first: a message is never picked up unasked while the watch is in place.
    if (auto r = maildrop_->watch(maildrop); !r) return r.error();
    const auto index = postfix_.size();
    const int fd = milter.value()->fd();
    postfix_.push_back({instance, maildrop, std::move(milter.value())});
    if (auto r = d_.loop.add(fd, EPOLLIN, [this, index](std::uint32_t) { onMilterAccept(index); });
        !r) {
      return r.error();
    }
    log::info("mta: gating postfix (" + instance.configDir.string() + "): maildrop " +
              maildrop.string() + ", milter " + instance.milterSocket().string());
  }
  return {};
}

void MtaGate::onMaildropEvents() {
  auto read =
      maildrop_->read([this](mta::MaildropOpen&& open) { onMaildropOpen(std::move(open)); });
  if (!read) log::error("mta: " + read.error().message);
}

// Every open is allowed (when `open` goes out of scope, or once its writer is known): this
// only notes who wrote each file, and which file pickup reads.
void MtaGate::onMaildropOpen(mta::MaildropOpen&& open) {
  struct stat st {};
  if (::fstat(open.fd(), &st) != 0 || !S_ISREG(st.st_mode)) return;
  const std::filesystem::path file = readLink("/proc/self/fd/" + std::to_string(open.fd()));
  std::size_t instance = postfix_.size();
  for (std::size_t i = 0; i < postfix_.size(); ++i) {
    if (file.parent_path() == postfix_[i].maildrop) instance = i;
  }
  if (instance == postfix_.size()) return;
  const mta::FileKey key{static_cast<std::uint64_t>(st.st_dev),
                         static_cast<std::uint64_t>(st.st_ino)};
  const auto& route = postfix_[instance];
  if (readLink("/proc/" + std::to_string(open.pid()) + "/exe") ==
      route.instance.pickup().string()) {
    maildropFiles_.pickedUp(route.instance.where(), key);
    return;
  }
  // Only the open that creates a file names its writer (the file is still empty then):
  // a later open of a written file is someone reading it (showq for `postqueue -p`,
  // postsuper), not a submission, and a file written while guardd was not watching stays
  // unnamed rather than charged to whoever looks at it first.
  if (st.st_size != 0) return;
  // guardd's own threads (the hasher) are not submitters, and must not wait on themselves.
  if (open.pid() == ::getpid()) return;
  WaitingOpen w{std::move(open), instance, key, true, d_.clock.monotonic()};
  if (!noteWriter(w, false)) waitingOpens_.push_back(std::move(w));
}

bool MtaGate::noteWriter(const WaitingOpen& w, bool late) {
  auto describe = [this](int pid) { return d_.resolver.describe(pid); };
  const auto opener = describe(w.open.pid());
  auto submitter = opener ? mta::findSubmitter(w.open.pid(), describe)
                          : Result<procinfo::ProcessInfo>(opener.error());
  if (!submitter && submitter.error().code == Errc::Pending) {
    if (!late) return false;
    submitter = makeError("its program could not be read in time");
  }
  const std::uint32_t uid = opener ? opener->uid : (submitter ? submitter->uid : 0);
  maildropFiles_.opened(w.file, w.empty,
                        mta::MaildropFiles::Creator{std::move(submitter), uid, w.since});
  return true;
}

void MtaGate::retryOpens() {
  if (waitingOpens_.empty()) return;
  auto waiting = std::move(waitingOpens_);
  waitingOpens_.clear();
  const auto now = d_.clock.monotonic();
  // Its writer waits meanwhile: a bound well under a person's patience with sendmail.
  for (auto& w : waiting) {
    if (!noteWriter(w, now - w.since > std::chrono::seconds(3))) {
      waitingOpens_.push_back(std::move(w));
    }
  }
}

void MtaGate::onMilterAccept(std::size_t instance) {
  while (true) {
    auto accepted = postfix_[instance].milter->accept();
    if (!accepted) {
      log::error(accepted.error().message);
      return;
    }
    if (!*accepted) return;
    auto& peer = **accepted;
    // Only the instance's cleanup may ask: anyone else could only make guardd decide the
    // file pickup is reading, under a message of its own.
    const auto exe = readLink("/proc/" + std::to_string(peer.pid) + "/exe");
    if (exe != postfix_[instance].instance.cleanup().string()) {
      log::warning("mta: refused a milter connection from pid " + std::to_string(peer.pid) + " (" +
                   log::quote(exe) + "), which is not postfix's cleanup");
      continue;  // closed as it goes out of scope
    }
    const int fd = peer.fd.get();
    if (auto r = d_.loop.add(fd, EPOLLIN, [this, fd](std::uint32_t) { onMilterReadable(fd); });
        !r) {
      log::error(r.error().message);
      continue;  // cleanup tempfails the message (default_action): it stays in the maildrop
    }
    milters_.emplace(fd, MilterPeer{std::move(peer), instance, mta::MilterSession{}});
  }
}

void MtaGate::closeMilter(int fd) {
  d_.loop.remove(fd);
  milters_.erase(fd);
}

void MtaGate::onMilterReadable(int fd) {
  auto it = milters_.find(fd);
  if (it == milters_.end()) return;
  auto& m = it->second;
  auto ended = mta::GateSocket::readSome(m.peer);
  if (!ended) {
    log::warning(ended.error().message);
    return closeMilter(fd);
  }
  std::string input = std::move(m.peer.received);
  m.peer.received.clear();
  std::string out;
  while (true) {
    auto message = m.session.feed(input, out);
    input.clear();
    if (!message) {
      log::warning("mta: postfix's milter connection: " + message.error().message);
      return closeMilter(fd);
    }
    if (!*message) break;
    const auto& route = postfix_[m.instance];
    const auto& msg = **message;
    auto creator = maildropFiles_.takeCurrent(route.instance.where());
    Result<procinfo::ProcessInfo> submitter =
        creator ? std::move(creator->submitter)
                : Result<procinfo::ProcessInfo>(
                      notFound("guardd did not see its file written into the maildrop"));
    const mta::Submission s{"postfix", msg.queueId, std::nullopt, msg.sender, msg.recipients};
    const auto [verdict, reason] =
        judge(submitter, s, creator ? creator->uid : m.peer.uid, route.instance.where(), true);
    m.session.verdict(verdict == mta::Answer::Accept   ? mta::MilterVerdict::Accept
                      : verdict == mta::Answer::Freeze ? mta::MilterVerdict::Quarantine
                                                       : mta::MilterVerdict::Discard,
                      "mailguard: " + reason, out);
  }
  if (!out.empty()) {
    if (auto r = mta::GateSocket::writeAll(fd, out); !r) {
      log::warning(r.error().message);
      return closeMilter(fd);
    }
  }
  if (*ended || m.session.closed()) closeMilter(fd);
}

}  // namespace mailguard::service
