#include "dashboard.hpp"

#include <poll.h>
#include <pwd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <csignal>
#include <ctime>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <utility>

#include "mailguard/tui/view.hpp"

namespace mailguard::tui {
namespace {

// Without a bus connection: try again this often. With one, guardd's coming and going is
// announced by the bus (NameOwnerChanged), so nothing is polled; the timer only moves the
// clock ("today") and follows an audit guardd runs by itself.
constexpr auto kReconnectPeriod = std::chrono::seconds(1);
constexpr auto kTickPeriod = std::chrono::seconds(2);
// guardd's counters are asked for after events, at most this often.
constexpr auto kStatusGap = std::chrono::seconds(1);
// Attempts since midnight counted at load, in pages of the server's maximum.
constexpr auto kPage = static_cast<std::uint32_t>(kAttemptPage);
constexpr int kMaxTodayPages = 50;

std::int64_t nowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t utcOffsetSec(std::int64_t us) {
  const std::time_t t = static_cast<std::time_t>(us / 1'000'000);
  std::tm local{};
  if (localtime_r(&t, &local) == nullptr) return 0;
  return local.tm_gmtoff;
}

template <class T>
const T* valueOf(const dbus::ClientResult<T>& r) {
  return std::get_if<T>(&r);
}

bool busGone(const dbus::ClientError& e) {
  return e.kind == dbus::ClientError::Kind::NoBus || e.kind == dbus::ClientError::Kind::NotRunning;
}

}  // namespace

// RunOutsideCheck, like RunAudit, takes seconds (DNS lookups): the same hand-over.
struct Dashboard::OutsideJob {
  int readFd = -1;
  int writeFd = -1;
  std::mutex mutex;
  std::optional<dbus::ClientResult<std::string>> result;
  ~OutsideJob() {
    if (readFd >= 0) ::close(readFd);
    if (writeFd >= 0) ::close(writeFd);
  }
};

struct Dashboard::AuditJob {
  int readFd = -1;
  int writeFd = -1;
  std::mutex mutex;
  std::optional<dbus::ClientResult<dbus::AuditReport>> result;
  ~AuditJob() {
    if (readFd >= 0) ::close(readFd);
    if (writeFd >= 0) ::close(writeFd);
  }
};

Dashboard::Dashboard(Terminal& terminal) : terminal_(terminal) {
  // SIGINT (Ctrl-C), SIGTERM and SIGHUP end the loop normally, so the terminal is
  // restored; they arrive through a signalfd, as one more fd in the poll set.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  if (sigprocmask(SIG_BLOCK, &set, nullptr) != 0) {
    throw std::system_error(errno, std::generic_category(), "sigprocmask");
  }
  signalFd_ = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd_ < 0) throw std::system_error(errno, std::generic_category(), "signalfd");
}

Dashboard::~Dashboard() {
  client_.reset();
  hostClient_.reset();
  if (signalFd_ >= 0) ::close(signalFd_);
}

int Dashboard::run() {
  state_.size = terminal_.size();
  tick();
  draw();
  connect();
  nextTimer_ = SteadyClock::now() + (client_ ? kTickPeriod : kReconnectPeriod);
  while (!quit_) {
    if (redraw_) draw();
    // A negative fd is ignored by poll(): no audit running, no bus.
    pollfd fds[5] = {{terminal_.inputFd(), POLLIN, 0},
                     {signalFd_, POLLIN, 0},
                     {auditJob_ ? auditJob_->readFd : -1, POLLIN, 0},
                     {outsideJob_ ? outsideJob_->readFd : -1, POLLIN, 0},
                     {-1, 0, 0}};
    nfds_t n = 4;
    const auto wake = statusStale_ ? std::min(nextTimer_, nextStatus_) : nextTimer_;
    auto untilTimer =
        std::chrono::duration_cast<std::chrono::milliseconds>(wake - SteadyClock::now()).count();
    int timeout = static_cast<int>(std::max<std::int64_t>(0, untilTimer));
    if (client_) {
      const auto spec = client_->pollSpec();
      if (const auto* s = valueOf(spec)) {
        fds[4] = {s->fd, s->events, 0};
        n = 5;
        if (s->timeoutMs >= 0 && s->timeoutMs < timeout) timeout = s->timeoutMs;
      } else {
        lost(std::get<dbus::ClientError>(spec));
        continue;
      }
    }
    const int ready = ::poll(fds, n, timeout);
    if (ready < 0 && errno != EINTR) {
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info{};
      while (::read(signalFd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        quit_ = true;
      }
    }
    if (fds[0].revents & (POLLHUP | POLLERR)) quit_ = true;  // the terminal went away
    if (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) finishAudit();
    if (fds[3].revents & (POLLIN | POLLHUP | POLLERR)) finishOutside();
    // A resize interrupts poll() (SIGWINCH) and shows up as KEY_RESIZE here.
    for (const auto& e : terminal_.readInput()) handle(e);
    if (client_) {
      dispatchBus();
      if (client_ && n == 5 && (fds[4].revents & (POLLHUP | POLLERR))) {
        lost(dbus::ClientError{dbus::ClientError::Kind::NoBus, "lost the system bus", {}});
      }
    }
    if (statusStale_ && SteadyClock::now() >= nextStatus_) refreshStatus();
    if (SteadyClock::now() >= nextTimer_) onTimer();
  }
  return 0;
}

void Dashboard::handle(const Event& event) {
  if (const auto* a = std::get_if<AttemptRecorded>(&event)) learnUser(a->attempt.uid);
  if (const auto* p = std::get_if<ProgramChanged>(&event)) learnUser(p->program.uid);
  if (const auto* a = std::get_if<AlertRaised>(&event)) learnUser(a->alert.uid);
  if (const auto* l = std::get_if<Loaded>(&event)) {
    for (const auto& p : l->programs) learnUser(p.uid);
    for (const auto& a : l->attempts) learnUser(a.uid);
    for (const auto& a : l->alerts) learnUser(a.uid);
  }
  const Effects fx = update(state_, event);
  redraw_ = redraw_ || fx.redraw;
  quit_ = quit_ || fx.quit;
  for (const auto& c : fx.commands) execute(c);
}

void Dashboard::sendPolicyCall(const Command& c) {
  dbus::PolicyCall call;
  call.target = std::to_string(c.programId);
  Action action = Action::Approve;
  switch (c.kind) {
    case Command::Kind::Approve:
      call.method = dbus::PolicyCall::Method::Approve;
      call.onlyTo = c.onlyTo;
      call.allowEnv = c.allowEnv;
      break;
    case Command::Kind::Deny:
      call.method = dbus::PolicyCall::Method::Deny;
      action = Action::Deny;
      break;
    case Command::Kind::Forget:
      call.method = dbus::PolicyCall::Method::Forget;
      action = Action::Forget;
      break;
    case Command::Kind::AckAlert:
      call.method = dbus::PolicyCall::Method::AckAlert;
      call.alertId = c.alertId;
      action = Action::Acknowledge;
      break;
    default:
      return;
  }
  const std::int64_t programId = c.programId;
  const std::int64_t alertId = c.alertId;
  if (!client_) {
    handle(ActionFailed{
        action, programId,
        dbus::ClientError{dbus::ClientError::Kind::NoBus, "not connected to the system bus", {}},
        alertId});
    return;
  }
  client_->callPolicyAsync(call, [this, action, programId,
                                  alertId](const dbus::ClientResult<dbus::PolicyReply>& r) {
    if (const auto* e = dbus::errorOf(r)) {
      replies_.emplace_back(ActionFailed{action, programId, *e, alertId});
      return;
    }
    const auto& reply = std::get<dbus::PolicyReply>(r);
    replies_.emplace_back(ActionSucceeded{action, programId, reply.program, reply.value, alertId});
  });
}

void Dashboard::execute(const Command& c) {
  switch (c.kind) {
    case Command::Kind::Approve:
    case Command::Kind::Deny:
    case Command::Kind::Forget:
    case Command::Kind::AckAlert:
      return sendPolicyCall(c);
    default:
      break;
  }
  if (!client_) return;
  switch (c.kind) {
    case Command::Kind::Approve:
    case Command::Kind::Deny:
    case Command::Kind::Forget:
    case Command::Kind::AckAlert:
      break;
    case Command::Kind::LoadProgramAttempts: {
      dbus::AttemptFilter f;
      f.limit = static_cast<std::uint32_t>(kDetailAttempts);
      f.programId = c.programId;
      auto r = client_->attempts(f);
      if (const auto* v = valueOf(r)) {
        handle(ProgramAttemptsLoaded{c.programId, *v});
      } else if (busGone(std::get<dbus::ClientError>(r))) {
        lost(std::get<dbus::ClientError>(r));
      }
      break;
    }
    case Command::Kind::Reload:
      load();
      break;
    case Command::Kind::LoadOlderAttempts: {
      dbus::AttemptFilter f;
      f.limit = static_cast<std::uint32_t>(kAttemptPage);
      f.beforeId = c.beforeId;
      auto r = client_->attempts(f);
      if (const auto* v = valueOf(r)) {
        handle(OlderAttemptsLoaded{c.beforeId, *v, {}});
      } else {
        const auto& e = std::get<dbus::ClientError>(r);
        handle(OlderAttemptsLoaded{c.beforeId, {}, e.message});
        if (busGone(e)) lost(e);
      }
      break;
    }
    case Command::Kind::LoadAudit:
      loadAudit();
      break;
    case Command::Kind::RunAudit:
      startAudit();
      break;
    case Command::Kind::LoadOutside:
      loadOutside();
      break;
    case Command::Kind::RunOutside:
      startOutside();
      break;
    case Command::Kind::LoadRules: {
      auto r = client_->rules();
      if (const auto* v = valueOf(r)) {
        handle(RulesLoaded{*v});
      } else if (busGone(std::get<dbus::ClientError>(r))) {
        lost(std::get<dbus::ClientError>(r));
      }
      break;
    }
  }
}

void Dashboard::onTimer() {
  tick();
  if (client_ && state_.connected) {
    // guardd audits by itself too (when listeners change): follow one it runs.
    if (state_.screen == Screen::Audit && state_.audit && state_.audit->running &&
        !state_.auditRequested) {
      loadAudit();
    }
  } else if (!client_) {
    connect();
  }
  // With a connection but no guardd, NameOwnerChanged says when it is back.
  nextTimer_ = SteadyClock::now() + (client_ ? kTickPeriod : kReconnectPeriod);
}

void Dashboard::ownerChanged(bool running) {
  if (running) {
    load();  // a new guardd: everything may differ
    return;
  }
  lost(dbus::ClientError{dbus::ClientError::Kind::NotRunning,
                         "guardd is not running (it left the system bus)", "org.mailguard.Guard1"});
}

void Dashboard::refreshStatus() {
  statusStale_ = false;
  nextStatus_ = SteadyClock::now() + kStatusGap;
  if (!client_ || !state_.connected) return;
  auto r = client_->status();
  if (const auto* e = std::get_if<dbus::ClientError>(&r)) return lost(*e);
  handle(StatusRefreshed{std::get<dbus::Status>(r)});
}

void Dashboard::connect() {
  if (!client_) {
    auto r = dbus::Client::connect();
    if (auto* e = std::get_if<dbus::ClientError>(&r)) {
      handle(Disconnected{e->message});
      return;
    }
    client_ = std::move(std::get<std::unique_ptr<dbus::Client>>(r));
    // Handlers only queue: the model is updated after dispatch() returns.
    client_->onAttemptRecorded(
        [this](const dbus::Attempt& a) { inbox_.emplace_back(AttemptRecorded{a}); });
    client_->onProgramChanged(
        [this](const dbus::Program& p) { inbox_.emplace_back(ProgramChanged{p}); });
    client_->onAlertRaised([this](const dbus::Alert& a) { inbox_.emplace_back(AlertRaised{a}); });
    client_->onAuditFinished(
        [this](const dbus::AuditEnded& a) { inbox_.emplace_back(AuditFinished{a.finishedUs}); });
    client_->onOutsideChecked(
        [this](const std::string& report) { inbox_.emplace_back(OutsideChecked{report}); });
    auto following = client_->onGuardOwnerChanged([this](bool running) { guardOwner_ = running; });
    if (const auto* e = dbus::errorOf(following)) {
      // Without it guardd's leaving would go unnoticed: treat it as no bus, retried.
      client_.reset();
      handle(Disconnected{e->message});
      return;
    }
  }
  load();
}

void Dashboard::load() {
  if (!client_) return;
  Loaded loaded;
  auto status = client_->status();
  if (const auto* e = std::get_if<dbus::ClientError>(&status)) return lost(*e);
  loaded.status = std::get<dbus::Status>(status);
  auto programs = client_->programs();
  if (const auto* e = std::get_if<dbus::ClientError>(&programs)) return lost(*e);
  loaded.programs = std::move(std::get<std::vector<dbus::Program>>(programs));
  // The details pane's pins and allowed loading; without them the rest still works.
  auto rules = client_->rules();
  if (const auto* e = std::get_if<dbus::ClientError>(&rules)) {
    if (busGone(*e)) return lost(*e);
  } else {
    loaded.rules = std::move(std::get<std::vector<dbus::Rule>>(rules));
  }
  dbus::AttemptFilter recent;
  recent.limit = kPage;
  auto attempts = client_->attempts(recent);
  if (const auto* e = std::get_if<dbus::ClientError>(&attempts)) return lost(*e);
  loaded.attempts = std::move(std::get<std::vector<dbus::Attempt>>(attempts));
  if (!loaded.attempts.empty()) loaded.countedUpToId = loaded.attempts.front().id;
  auto alerts = client_->alerts(static_cast<std::uint32_t>(kMaxAlerts));
  if (const auto* e = std::get_if<dbus::ClientError>(&alerts)) {
    if (busGone(*e)) return lost(*e);
    loaded.alertsError = e->message;  // an older guardd: the rest still works
  } else {
    loaded.alerts = std::move(std::get<std::vector<dbus::Alert>>(alerts));
  }

  // Today's counts: every attempt since local midnight, newest first, page by page.
  const auto now = nowUs();
  loaded.todayStartUs = localDayStart(now, utcOffsetSec(now));
  dbus::AttemptFilter today;
  today.limit = kPage;
  today.sinceUs = loaded.todayStartUs;
  for (int page = 0;; ++page) {
    if (page == kMaxTodayPages) {
      loaded.today.partial = true;
      break;
    }
    auto r = client_->attempts(today);
    if (const auto* e = std::get_if<dbus::ClientError>(&r)) return lost(*e);
    const auto& v = std::get<std::vector<dbus::Attempt>>(r);
    for (const auto& a : v) {
      loaded.countedUpToId = std::max(loaded.countedUpToId, a.id);
      if (a.verdict == "allow") ++loaded.today.allowed;
      if (a.verdict == "hold") ++loaded.today.held;
      if (a.verdict == "reject") ++loaded.today.rejected;
    }
    if (v.size() < kPage) break;
    today.beforeId = v.back().id;
  }
  handle(loaded);
  loadAudit();
}

void Dashboard::loadAudit() {
  if (!client_ || !state_.connected) return;
  if (!hostClient_) {
    auto r = dbus::HostClient::connect();
    if (const auto* e = std::get_if<dbus::ClientError>(&r)) {
      handle(AuditFailed{*e, false});
      return;
    }
    hostClient_ = std::move(std::get<std::unique_ptr<dbus::HostClient>>(r));
  }
  auto r = hostClient_->audit();
  if (const auto* report = valueOf(r)) {
    handle(AuditLoaded{*report});
    // The household's other servers, from the last scan the owner asked for: a guardd
    // without the method (older) simply shows none.
    auto h = hostClient_->household();
    if (const auto* scan = valueOf(h)) {
      handle(HouseholdLoaded{scan->finishedUs, scan->error, scan->json});
    }
  } else {
    const auto& e = std::get<dbus::ClientError>(r);
    // A connection whose bus went away is useless: make a new one next time.
    if (e.kind == dbus::ClientError::Kind::NoBus) hostClient_.reset();
    handle(AuditFailed{e, false});
  }
}

void Dashboard::startAudit() {
  if (auditJob_) return;  // one at a time; the model already says it runs
  auto job = std::make_shared<AuditJob>();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    handle(
        AuditFailed{dbus::ClientError{
                        dbus::ClientError::Kind::Failed, "cannot create a pipe for the audit", {}},
                    true});
    return;
  }
  job->readFd = fds[0];
  job->writeFd = fds[1];
  auditJob_ = job;
  // The thread has its own connection (HostClient is not shared between threads) and
  // only touches the job; it is detached so that quitting never waits for an audit.
  std::thread([job] {
    auto c = dbus::HostClient::connect();
    dbus::ClientResult<dbus::AuditReport> result = dbus::ClientError{};
    if (auto* e = std::get_if<dbus::ClientError>(&c)) {
      result = *e;
    } else {
      result = std::get<std::unique_ptr<dbus::HostClient>>(c)->runAudit();
    }
    {
      const std::lock_guard lock(job->mutex);
      job->result = std::move(result);
    }
    const char byte = 1;
    [[maybe_unused]] const auto w = ::write(job->writeFd, &byte, 1);
  }).detach();
}

void Dashboard::finishAudit() {
  if (!auditJob_) return;
  std::optional<dbus::ClientResult<dbus::AuditReport>> result;
  {
    const std::lock_guard lock(auditJob_->mutex);
    result = std::move(auditJob_->result);
  }
  if (!result) return;  // woken early; the byte comes with the result
  auditJob_.reset();
  if (const auto* report = valueOf(*result)) {
    handle(AuditLoaded{*report});
  } else {
    handle(AuditFailed{std::get<dbus::ClientError>(*result), true});
  }
}

bool Dashboard::hostClient() {
  if (hostClient_) return true;
  auto r = dbus::HostClient::connect();
  if (const auto* e = std::get_if<dbus::ClientError>(&r)) {
    handle(OutsideFailed{*e, false});
    return false;
  }
  hostClient_ = std::move(std::get<std::unique_ptr<dbus::HostClient>>(r));
  return true;
}

void Dashboard::loadOutside() {
  if (!client_ || !state_.connected || !hostClient()) return;
  auto r = hostClient_->outside();
  if (const auto* report = valueOf(r)) {
    handle(OutsideLoaded{*report});
  } else {
    const auto& e = std::get<dbus::ClientError>(r);
    if (e.kind == dbus::ClientError::Kind::NoBus) hostClient_.reset();
    handle(OutsideFailed{e, false});
  }
}

void Dashboard::startOutside() {
  if (outsideJob_) return;  // one at a time; the model already says it runs
  auto job = std::make_shared<OutsideJob>();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    handle(OutsideFailed{
        dbus::ClientError{
            dbus::ClientError::Kind::Failed, "cannot create a pipe for the outside check", {}},
        true});
    return;
  }
  job->readFd = fds[0];
  job->writeFd = fds[1];
  outsideJob_ = job;
  std::thread([job] {
    auto c = dbus::HostClient::connect();
    dbus::ClientResult<std::string> result = dbus::ClientError{};
    if (auto* e = std::get_if<dbus::ClientError>(&c)) {
      result = *e;
    } else {
      result = std::get<std::unique_ptr<dbus::HostClient>>(c)->runOutside();
    }
    {
      const std::lock_guard lock(job->mutex);
      job->result = std::move(result);
    }
    const char byte = 1;
    [[maybe_unused]] const auto w = ::write(job->writeFd, &byte, 1);
  }).detach();
}

void Dashboard::finishOutside() {
  if (!outsideJob_) return;
  std::optional<dbus::ClientResult<std::string>> result;
  {
    const std::lock_guard lock(outsideJob_->mutex);
    result = std::move(outsideJob_->result);
  }
  if (!result) return;  // woken early; the byte comes with the result
  outsideJob_.reset();
  if (const auto* report = valueOf(*result)) {
    handle(OutsideLoaded{*report});
  } else {
    handle(OutsideFailed{std::get<dbus::ClientError>(*result), true});
  }
}

void Dashboard::lost(const dbus::ClientError& e) {
  // With the bus itself gone the connection is useless: build a new one next time.
  if (e.kind != dbus::ClientError::Kind::NotRunning) client_.reset();
  inbox_.clear();
  replies_.clear();  // the model forgets the calls in flight on Disconnected
  guardOwner_.reset();
  statusStale_ = false;
  handle(Disconnected{e.message});
  nextTimer_ = SteadyClock::now() + kReconnectPeriod;
}

void Dashboard::dispatchBus() {
  auto r = client_->dispatch();
  if (const auto* e = std::get_if<dbus::ClientError>(&r)) {
    dbus::ClientError gone = *e;
    gone.kind = dbus::ClientError::Kind::NoBus;
    return lost(gone);
  }
  auto replies = std::move(replies_);
  replies_.clear();
  for (const auto& ev : replies) handle(ev);
  if (const auto owner = std::exchange(guardOwner_, std::nullopt)) {
    ownerChanged(*owner);  // a (re)load or "not running": the queued signals are stale
    inbox_.clear();
    return;
  }
  auto events = std::move(inbox_);
  inbox_.clear();
  if (!state_.connected) return;  // a fresh load follows the reconnect
  for (const auto& ev : events) handle(ev);
  if (!events.empty()) statusStale_ = true;
}

void Dashboard::tick() {
  const auto now = nowUs();
  handle(Tick{now, utcOffsetSec(now)});
}

void Dashboard::learnUser(std::uint32_t uid) {
  if (state_.userNames.contains(uid)) return;
  passwd pw{};
  passwd* found = nullptr;
  char buf[4096];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found != nullptr) {
    state_.userNames[uid] = found->pw_name;
  } else {
    state_.userNames[uid] = std::to_string(uid);
  }
}

void Dashboard::draw() {
  // The terminal may have been resized before its KEY_RESIZE was read.
  const Size now = terminal_.size();
  if (now.cols != state_.size.cols || now.rows != state_.size.rows) handle(Resized{now});
  terminal_.draw(render(state_, state_.size));
  redraw_ = false;
}

}  // namespace mailguard::tui
