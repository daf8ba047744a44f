#include "mta_gate.hpp"

#include <sys/epoll.h>

#include <algorithm>

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

}  // namespace

Result<std::unique_ptr<MtaGate>> MtaGate::open(Deps deps, const std::filesystem::path& socket,
                                               const std::filesystem::path& heldFile,
                                               const std::filesystem::path& eximLog) {
  auto held = mta::HeldMessages::open(heldFile);
  if (!held) return held.error();
  auto listener = mta::GateSocket::open(socket);
  if (!listener) return listener.error();
  std::unique_ptr<MtaGate> gate(
      new MtaGate(deps, std::move(listener.value()), std::move(held.value())));
  auto* self = gate.get();
  // A question waits while its programs are hashed (a large interpreter: well under exim's
  // 10 s); it is not decided before, since an unknown file could pass for an approved one.
  deps.loop.every(std::chrono::milliseconds(20), [self] { self->retry(); });
  if (!eximLog.empty()) {
    // Held messages are still to be delivered (or deleted): their outcomes are charged
    // after a restart of guardd too.
    for (const auto programId : self->held_.programs()) {
      const auto* view = deps.programs.find(programId);
      if (view == nullptr) continue;
      for (const auto& id : self->held_.of(programId)) {
        self->tracker_.submitted(id, mta::Submitter{programId, view->identity, view->uid, 0},
                                 deps.clock.monotonic());
      }
    }
    self->log_ = std::make_unique<mta::LogFollower>(eximLog);
    // The first read marks where history ends: now, before the socket answers, so that no
    // message guardd lets through can be logged before that mark and skipped as history.
    self->followLog();
    // A timer rather than inotify: a rotated or not yet created log needs no watch of its
    // folder, and a quarter second is well inside a bounce storm's pace.
    deps.loop.every(std::chrono::milliseconds(250), [self] { self->followLog(); });
  }
  if (auto r =
          deps.loop.add(self->socket_->fd(), EPOLLIN, [self](std::uint32_t) { self->onAccept(); });
      !r) {
    return r.error();
  }
  return gate;
}

MtaGate::~MtaGate() {
  for (const auto& [fd, peer] : peers_) d_.loop.remove(fd);
  if (socket_) d_.loop.remove(socket_->fd());
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
    // Unanswered commands are sent again to the next agent: their ids are still held.
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
  const auto domains = mta::recipientDomains(s.recipients);
  store::AttemptRecord attempt;
  attempt.time = d_.clock.now();
  attempt.channel = "mta";
  attempt.queueId = s.queueId;  // links the message to its outcome in the MTA's log
  attempt.src = s.mta;          // the MTA that took it: "exim"
  attempt.dst = joinDomains(domains);
  attempt.uid = asker->uid;
  auto submitter = mta::findSubmitter(asker->ppid, describe);
  if (!submitter && submitter.error().code == Errc::Pending) return std::nullopt;
  rules::Decision decision;
  ProgramView* program = nullptr;
  if (submitter) {
    // First: a submission over the MTA channel's daily limit quarantines the program, and
    // this message is refused with it.
    d_.detection.onMtaSubmission(submitter->identity, submitter->uid,
                                 static_cast<unsigned>(s.recipients.size()), domains);
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
  if (verdict == mta::Answer::Freeze && program != nullptr) {
    if (auto r = held_.add(program->id, s.queueId); !r) {
      // Still frozen in exim's spool; only guardd's list of it is missing (logged).
      log::error("mta: " + r.error().message);
    }
  }
  if (verdict != mta::Answer::Deny && program != nullptr) {
    tracker_.submitted(
        s.queueId, mta::Submitter{program->id, program->identity, submitter->uid, submitter->pid},
        d_.clock.monotonic());
  }
  attempt.verdict = decision.verdict;
  attempt.reason =
      "mail handed to " + s.mta + " (" + std::to_string(s.recipients.size()) +
      " recipients): " + (verdict == mta::Answer::Freeze ? "held in the MTA's queue; " : "") +
      decision.reason;
  const bool quarantined = program != nullptr && program->state == rules::ProgramState::Quarantined;
  d_.pipeline.recordSubmission(attempt, program, quarantined);
  return mta::formatAnswer(verdict, decision.reason);
}

void MtaGate::followLog() {
  auto polled = log_->poll([this](std::string_view text) {
    auto line = mta::parseEximLogLine(text);
    if (!line) return;
    if (auto finished = tracker_.onLine(*line, d_.clock.monotonic())) charge(*finished);
  });
  if (!polled) {
    // Once per kind of failure: the timer would repeat it four times a second.
    if (polled.error().message != lastLogError_) log::warning("mta: " + polled.error().message);
    lastLogError_ = polled.error().message;
  } else {
    lastLogError_.clear();
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
  attempt.src = "exim";
  attempt.dst = joinDomains(t.domains);
  // The message was let through; what its servers answered is the reason.
  attempt.verdict = rules::Verdict::Allow;
  attempt.channel = "mta";
  attempt.queueId = f.queueId;
  attempt.reason = "outcome of mail handed to exim: " + t.summary();
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

void MtaGate::reconcile() {
  if (agentFd_ == -1 || !inFlight_.empty()) return;
  for (const auto programId : held_.programs()) {
    const auto* view = d_.programs.find(programId);
    if (view == nullptr) continue;
    mta::AgentAction action{};
    if (view->state == rules::ProgramState::Approved) {
      action = mta::AgentAction::Release;
    } else if (view->state == rules::ProgramState::Denied) {
      action = mta::AgentAction::Remove;
    } else {
      continue;
    }
    auto ids = held_.of(programId);
    log::info(
        std::string("mta: ") + (action == mta::AgentAction::Release ? "releasing " : "deleting ") +
        std::to_string(ids.size()) + " held message(s) of " + log::quote(view->identity.path) +
        (view->identity.scriptPath.empty() ? "" : " " + log::quote(view->identity.scriptPath)));
    if (auto r = mta::GateSocket::writeAll(agentFd_, mta::formatAgentCommand(action, ids)); !r) {
      log::warning(r.error().message);
      return close(agentFd_);
    }
    inFlight_.push_back(std::move(ids));
  }
}

void MtaGate::onAgentLine(const std::string& line) {
  if (inFlight_.empty()) return;
  auto ids = std::move(inFlight_.front());
  inFlight_.pop_front();
  // Done or failed, the ids leave the list: a message that is no longer in the queue
  // would fail for ever. What failed is in the agent's log and guardd's.
  if (line != "done") log::warning("mta: the release agent reports: " + log::quote(line));
  if (auto r = held_.remove(ids); !r) log::error("mta: " + r.error().message);
  if (inFlight_.empty()) reconcile();
}

}  // namespace mailguard::service
