#include "profiles.hpp"

#include <algorithm>
#include <cmath>
#include <map>

// Parameters are the research's section 3.2 values where it gives them; the rest are
// assumptions marked [A] (the README lists them).
namespace mailguard::bench {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
constexpr double kDay = 86400;
constexpr double kMonthDays = 30.4375;

class Gen {
 public:
  Gen(std::mt19937_64& rng, TimePoint origin) : rng_(rng) {
    host.start = origin + toDur(uni(0, kDay));  // hosts start at any time of day
    host.end = host.start;
  }
  Host host;

 private:
  std::mt19937_64& rng_;

 public:
  double uni(double a, double b) { return std::uniform_real_distribution<double>(a, b)(rng_); }
  int uniInt(int a, int b) { return std::uniform_int_distribution<int>(a, b)(rng_); }
  bool chance(double p) { return uni(0, 1) < p; }
  double expo(double mean) { return std::exponential_distribution<double>(1.0 / mean)(rng_); }
  int poisson(double mean) { return std::poisson_distribution<int>(mean)(rng_); }
  double logUni(double a, double b) { return std::exp(uni(std::log(a), std::log(b))); }

  static TimePoint::duration toDur(double s) {
    return std::chrono::duration_cast<TimePoint::duration>(Seconds(s));
  }
  TimePoint at(double s) const { return host.start + toDur(s); }

  // A public-looking IPv4 address; distinct calls give distinct /24s almost always.
  std::string randomIp() {
    return std::to_string(uniInt(11, 223)) + "." + std::to_string(uniInt(0, 255)) + "." +
           std::to_string(uniInt(0, 255)) + "." + std::to_string(uniInt(1, 254));
  }
  // 1-3 addresses of a provider's submission service inside one /24.
  std::vector<std::string> relayPool() {
    const std::string base = std::to_string(uniInt(11, 223)) + "." +
                             std::to_string(uniInt(0, 255)) + "." + std::to_string(uniInt(0, 255)) +
                             ".";
    std::vector<std::string> pool;
    for (int i = uniInt(1, 3); i > 0; --i) pool.push_back(base + std::to_string(uniInt(1, 254)));
    return pool;
  }
  const std::string& pick(const std::vector<std::string>& v) {
    return v[static_cast<std::size_t>(uniInt(0, static_cast<int>(v.size()) - 1))];
  }

  std::uint16_t actor(const std::string& program, IdentityClass id, bool mta = false,
                      bool malicious = false) {
    Actor a;
    a.principal.exeSha256 = "sha-" + program + "-" + std::to_string(host.actors.size());
    a.principal.uid = mta ? 100 : 1000;
    a.program = program;
    a.idClass = mta ? IdentityClass::Packaged : id;
    a.mta = mta;
    a.malicious = malicious;
    host.actors.push_back(a);
    return static_cast<std::uint16_t>(host.actors.size() - 1);
  }

  // One connection attempt; failures as conntrack reports them (SYN_SENT times out
  // after 120 s, a refusal or reset within a round trip).
  SimEvent& attempt(std::uint16_t who, double t, const std::string& dst, std::uint16_t port,
                    ConnectOutcome outcome = ConnectOutcome::Established, double duration = 2) {
    SimEvent e;
    e.time = at(t);
    e.actor = who;
    e.malicious = host.actors[who].malicious;
    e.dst = dst;
    e.port = port;
    e.outcome = outcome;
    switch (outcome) {
      case ConnectOutcome::Established:
        e.outcomeDelay = Seconds(0.05);
        break;
      case ConnectOutcome::Refused:
        e.outcomeDelay = Seconds(0.03);
        break;
      case ConnectOutcome::Reset:
        e.outcomeDelay = Seconds(0.1);
        break;
      case ConnectOutcome::TimedOut:
        e.outcomeDelay = Seconds(120);
        break;
    }
    e.duration = outcome == ConnectOutcome::Established ? Seconds(duration) : e.outcomeDelay;
    host.events.push_back(e);
    return host.events.back();
  }
  SimEvent& local(std::uint16_t who, double t, ConnectOutcome o = ConnectOutcome::Established) {
    SimEvent& e = attempt(who, t, "127.0.0.1", 25, o, 0.5);
    e.toLocalMta = true;
    return e;
  }
  void bulk(std::uint16_t who, double t, unsigned recipients, hours window) {
    SimEvent e;
    e.time = at(t);
    e.kind = SimEvent::Kind::Bulk;
    e.actor = who;
    e.bulkRecipients = recipients;
    e.bulkWindow = window;
    host.events.push_back(e);
  }

  ConnectOutcome failure() {
    const double r = uni(0, 1);
    return r < 0.45 ? ConnectOutcome::TimedOut
                    : (r < 0.9 ? ConnectOutcome::Refused : ConnectOutcome::Reset);
  }
  ConnectOutcome outcome(double failureRate) {
    return chance(failureRate) ? failure() : ConnectOutcome::Established;
  }

  // ---- DNS seen on the kernel's port-53 tap just before an attempt (N1-N3) ----
  // A client resolving its relay's name (smtp.<provider>): the answer holds the relay
  // unless the program's own cache outlived the look-up (3% of sends [A]).
  void dnsRelay(SimEvent& e) { e.dns = {true, false, !chance(0.03), true}; }
  // MX of the recipient's domain, then the MX host's address (M1/M8-like bots; an MTA).
  static void dnsMx(SimEvent& e) { e.dns = {true, true, true, false}; }
  // A hard-coded address (M2), or loopback: nothing resolved.
  static void dnsNone(SimEvent& e) { e.dns = {true, false, false, false}; }
  // A/AAAA of a guessed mail.<domain> (M3, Mytob).
  static void dnsGuess(SimEvent& e) { e.dns = {true, false, true, true}; }

  // ---- presence (U1/U2): logind's active session and the last real input ----
  void since(SimEvent& e, double seconds) { e.presence = {true, true, toDur(seconds)}; }
  void clicked(SimEvent& e) { since(e, uni(0.2, 2)); }  // a click or key <= 2 s before
  // Nobody at the keyboard: no active session, or the last input 10 min to 8 h ago.
  void nobody(SimEvent& e) {
    if (chance(0.5)) {
      e.presence = {true, false, std::nullopt};
    } else {
      since(e, uni(600, 8 * 3600));
    }
  }
  // A random moment on a PC that is in use half of the time (the user types every ~30 s).
  void ambient(SimEvent& e) {
    if (chance(0.5)) {
      since(e, expo(30));
    } else {
      nobody(e);
    }
  }

  // ---- RCPT replies of a session or final outcomes of a message ----
  // `n` recipients, each unknown with `unknownRate`; with `blocklistRate` the reply names
  // a blocklist instead and refuses them all.
  void rcpts(SimEvent& e, unsigned n, double unknownRate, double blocklistRate) {
    e.replies = true;
    if (chance(blocklistRate)) {
      e.blocklisted = n;
      return;
    }
    for (unsigned i = 0; i < n; ++i) ++(chance(unknownRate) ? e.userUnknown : e.accepted);
  }

  // Poisson times in waking hours (08:00-23:00) of day `d`.
  std::vector<double> wakingTimes(int d, double perDay) {
    std::vector<double> ts;
    for (int i = poisson(perDay); i > 0; --i) ts.push_back(d * kDay + uni(8, 23) * 3600);
    std::sort(ts.begin(), ts.end());
    return ts;
  }
  // A send to the relay; a transient failure is retried after 1-5 min (MUA behaviour).
  // The first try follows a click (`mode` Clicked), or nobody touched the PC for a while
  // (Idle: 5 s-10 min), or it is a daemon's (Daemon: any moment); relay sessions are
  // TLS (465, or STARTTLS on 587): no RCPT replies are seen.
  enum class Mode : std::uint8_t { Clicked, Idle, Daemon };
  void sendWithRetry(std::uint16_t who, double t, const std::vector<std::string>& relay,
                     std::uint16_t port, double failRate, int tries = 3,
                     Mode mode = Mode::Clicked) {
    const double t0 = t;
    const double lastInput = uni(0.2, 2);
    for (int i = 0; i < tries; ++i) {
      const ConnectOutcome o = outcome(failRate);
      SimEvent& e = attempt(who, t, pick(relay), port, o, uni(1, 4));
      dnsRelay(e);
      if (mode == Mode::Daemon) {
        ambient(e);
      } else if (mode == Mode::Idle) {
        since(e, t - t0 + uni(5, 600));
      } else {
        since(e, t - t0 + lastInput);
      }
      if (o == ConnectOutcome::Established) return;
      t += (o == ConnectOutcome::TimedOut ? 120 : 0) + uni(60, 300);
    }
  }
};

int daysOf(double months) { return static_cast<int>(std::lround(months * kMonthDays)); }

// B1 GUI mail client: 5-40 sends/day in waking hours to one provider relay; 1% transient.
Host b1(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto mua = g.actor("/usr/bin/thunderbird", IdentityClass::Packaged);
  const auto relay = g.relayPool();
  const std::uint16_t port = g.chance(0.7) ? 587 : 465;
  const double perDay = g.uni(5, 40);
  for (int d = 0; d < daysOf(months); ++d) {
    for (double t : g.wakingTimes(d, perDay)) g.sendWithRetry(mua, t, relay, port, 0.01);
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// B2 outbox flush: a client with a few sends a day that flushes 10-30 queued messages in
// one burst after resume or network-up, sequentially, each its own session.
Host b2(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto mua = g.actor("/usr/bin/evolution", IdentityClass::Packaged);
  const auto relay = g.relayPool();
  const double perDay = g.uni(2, 10);
  for (int d = 0; d < daysOf(months); ++d) {
    for (double t : g.wakingTimes(d, perDay)) {
      g.sendWithRetry(mua, t, relay, 587, 0.01, 3, Gen::Mode::Idle);
    }
    if (g.chance(0.6)) {
      double t = d * kDay + g.uni(7, 23) * 3600;
      const double flushStart = t;
      const double resumed = g.uni(5, 60);  // the flush follows the resume, not a click
      for (int i = g.uniInt(10, 30); i > 0; --i) {
        const double dur = g.uni(0.5, 3);
        SimEvent& e = g.attempt(mua, t, g.pick(relay), 587, g.outcome(0.01), dur);
        g.dnsRelay(e);
        g.since(e, resumed + t - flushStart);
        t += dur + g.uni(0.05, 0.5);
      }
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// B3 mutt + msmtp: 1-10/day from a terminal.
Host b3(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto msmtp = g.actor("/usr/bin/msmtp", IdentityClass::Packaged);
  g.host.actors[msmtp].interactive = true;  // mutt runs it in the user's terminal
  const auto relay = g.relayPool();
  const std::uint16_t port = g.chance(0.5) ? 587 : 465;
  const double perDay = g.uni(1, 10);
  for (int d = 0; d < daysOf(months); ++d) {
    for (double t : g.wakingTimes(d, perDay)) g.sendWithRetry(msmtp, t, relay, port, 0.01, 1);
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// B4 heavy user on a flaky link: 60/day; each day 1-2 h with 10-30% timeouts to the
// relay; on 10% of days a captive portal resets every connection for 10 minutes.
Host b4(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto mua = g.actor("/usr/bin/thunderbird", IdentityClass::Packaged);
  const auto relay = g.relayPool();
  for (int d = 0; d < daysOf(months); ++d) {
    const double flakyFrom = d * kDay + g.uni(8, 21) * 3600;
    const double flakyTo = flakyFrom + g.uni(1, 2) * 3600;
    const double flakyRate = g.uni(0.1, 0.3);
    const bool portal = g.chance(0.1);
    const double portalFrom = d * kDay + g.uni(8, 22) * 3600;
    for (double t : g.wakingTimes(d, 60)) {
      const double t0 = t;
      for (int i = 0; i < 4; ++i) {
        ConnectOutcome o = ConnectOutcome::Established;
        if (portal && t >= portalFrom && t < portalFrom + 600) {
          o = ConnectOutcome::Reset;
        } else if (t >= flakyFrom && t < flakyTo && g.chance(flakyRate)) {
          o = ConnectOutcome::TimedOut;
        } else if (g.chance(0.01)) {
          o = g.failure();
        }
        SimEvent& e = g.attempt(mua, t, g.pick(relay), 587, o, g.uni(1, 4));
        g.dnsRelay(e);
        g.since(e, t - t0 + g.uni(0.2, 2));
        if (o == ConnectOutcome::Established) break;
        t += (o == ConnectOutcome::TimedOut ? 120 : 0) + 60;
      }
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// B5 cron and system mail, 1-5/day at fixed times: sendmail -> postfix -> relayhost
// (sendmail itself opens no connection); on half the hosts a cron script submits to
// the local MTA on 127.0.0.1:25 instead (python smtplib) [A].
Host b5(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto postfix = g.actor("/usr/lib/postfix/sbin/smtp", IdentityClass::Packaged, true);
  const bool script = g.chance(0.5);
  const auto cron =
      script ? g.actor("/usr/bin/python3 /usr/local/bin/report.py", IdentityClass::Unknown)
             : postfix;
  const auto relay = g.relayPool();
  const std::uint16_t relayPort = g.chance(0.7) ? 587 : 25;
  // The script mails the same one or two addresses (the admin, a team list) [A].
  std::vector<std::string> to{"ops" + g.randomIp()};
  if (g.chance(0.3)) to.push_back("team" + g.randomIp());
  std::vector<double> slots;
  for (int i = g.uniInt(1, 5); i > 0; --i) slots.push_back(g.uni(0, 24) * 3600);
  for (int d = 0; d < daysOf(months); ++d) {
    for (double s : slots) {
      const double t = d * kDay + s + g.uni(0, 30);
      if (script) {
        SimEvent& e = g.local(cron, t);
        e.recipients = static_cast<unsigned>(to.size());
        e.domains = to;
        Gen::dnsNone(e);
        g.ambient(e);  // cron runs whether or not anyone is there
      }
      g.sendWithRetry(postfix, t + 1, relay, relayPort, 0.01, 3, Gen::Mode::Daemon);
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// Personal mail through a direct-delivery postfix: the client submits on loopback, the MTA
// connects to 1-3 MX hosts per message (a contact list plus new domains); 1% greylisting
// (a retry 5-30 min later), 0.5% TCP failures. `blocked`: B9, every port-25 attempt times
// out and postfix retries with backoff for days.
Host directPostfix(std::mt19937_64& rng, TimePoint origin, double months, bool blocked) {
  Gen g(rng, origin);
  const auto mua = g.actor("/usr/bin/thunderbird", IdentityClass::Packaged);
  const auto postfix = g.actor("/usr/lib/postfix/sbin/smtp", IdentityClass::Packaged, true);
  std::vector<std::string> contacts;
  for (int i = 0; i < 50; ++i) contacts.push_back(g.randomIp());
  const double perDay = g.uni(2, 20);
  for (int d = 0; d < daysOf(months); ++d) {
    for (double t : g.wakingTimes(d, perDay)) {
      const std::size_t sub = g.host.events.size();
      g.local(mua, t);
      Gen::dnsNone(g.host.events[sub]);
      g.clicked(g.host.events[sub]);
      const int recipients = g.uniInt(1, 3);
      // Final outcomes from postfix's log once delivered: 1% of addresses mistyped [A];
      // none while port 25 is blocked (everything stays deferred).
      if (!blocked) {
        g.rcpts(g.host.events[sub], static_cast<unsigned>(recipients), 0.01, 0);
        g.host.events[sub].replyDelay = Seconds(g.uni(5, 20));
      }
      g.host.events[sub].recipients = static_cast<unsigned>(recipients);
      for (int r = recipients; r > 0; --r) {
        const std::string mx = g.chance(0.7)
                                   ? contacts[static_cast<std::size_t>(std::min(49.0, g.expo(8)))]
                                   : g.randomIp();
        auto& domains = g.host.events[sub].domains;  // one domain per MX host here
        if (std::find(domains.begin(), domains.end(), mx) == domains.end()) domains.push_back(mx);
        double when = t + 2;
        if (blocked) {
          for (double backoff = 300; backoff < 5 * kDay; backoff *= 2) {
            Gen::dnsMx(g.attempt(postfix, when, mx, 25, ConnectOutcome::TimedOut));
            when += backoff;
          }
          continue;
        }
        Gen::dnsMx(g.attempt(postfix, when, mx, 25, g.outcome(0.005), g.uni(1, 10)));
        if (g.chance(0.01)) Gen::dnsMx(g.attempt(postfix, when + g.uni(300, 1800), mx, 25));
      }
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}
Host b6(std::mt19937_64& rng, TimePoint origin, double months) {
  return directPostfix(rng, origin, months, false);
}
Host b9(std::mt19937_64& rng, TimePoint origin, double months) {
  return directPostfix(rng, origin, months, true);
}

// B7 weekly newsletter through a direct-delivery postfix: 300-5,000 recipients over >= 200
// MX domains in 10-60 min; the list manager submits on loopback in batches of <= 500
// recipients (Mailman's SMTP_MAX_RCPTS) [A]; greylisting retries; 1% TCP failures.
Host newsletter(std::mt19937_64& rng, TimePoint origin, double months, bool declared) {
  Gen g(rng, origin);
  const auto lists =
      g.actor("/usr/bin/python3 /usr/lib/mailman3/bin/runner", IdentityClass::Unknown);
  const auto postfix = g.actor("/usr/lib/postfix/sbin/smtp", IdentityClass::Packaged, true);
  const int weekday = g.uniInt(0, 6);
  const double hour = g.uni(6, 20);
  const int recipientsBase = g.uniInt(300, 5000);
  // The list's recipient domains: the same every week, 2% replaced [A].
  std::vector<std::string> pool;
  for (int i = std::min(recipientsBase, std::max(200, recipientsBase / 3)); i > 0; --i) {
    pool.push_back(g.randomIp());
  }
  for (int d = weekday; d < daysOf(months); d += 7) {
    for (auto& dom : pool) {
      if (g.chance(0.02)) dom = g.randomIp();
    }
    const double t0 = d * kDay + hour * 3600;
    const int recipients = std::max(300, static_cast<int>(recipientsBase * g.uni(0.95, 1.05)));
    const int domains = std::min(recipients, std::max(200, recipients / 3));
    const double span = g.uni(10, 60) * 60;
    if (declared) g.bulk(lists, t0 - 60, static_cast<unsigned>(recipients), hours(2));
    // An opt-in list: 2-5% of addresses unknown (research B7), never a blocklist.
    const double unknown = g.uni(0.02, 0.05);
    for (int b = 0; b < (recipients + 499) / 500; ++b) {
      SimEvent& e = g.local(lists, t0 + b * 5);
      Gen::dnsNone(e);
      g.nobody(e);
      const int n = std::min(500, recipients - b * 500);
      g.rcpts(e, static_cast<unsigned>(n), unknown, 0);
      e.recipients = static_cast<unsigned>(n);
      const std::size_t per = (pool.size() + 9) / 10;  // a batch covers a slice of the list
      for (std::size_t k = static_cast<std::size_t>(b) * per;
           k < std::min(pool.size(), static_cast<std::size_t>(b + 1) * per); ++k) {
        e.domains.push_back(pool[k]);
      }
      e.replyDelay = Seconds(10 + span);  // final once the run is through
    }
    for (int i = 0; i < domains; ++i) {
      const double t = t0 + 10 + span * i / domains;
      const std::string mx = g.randomIp();
      Gen::dnsMx(g.attempt(postfix, t, mx, 25, g.outcome(0.01), g.uni(1, 10)));
      if (g.chance(0.03)) Gen::dnsMx(g.attempt(postfix, t + g.uni(300, 1800), mx, 25));
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}
Host b7(std::mt19937_64& rng, TimePoint origin, double months) {
  return newsletter(rng, origin, months, false);
}
Host b7d(std::mt19937_64& rng, TimePoint origin, double months) {
  return newsletter(rng, origin, months, true);
}

// B8 a developer testing with swaks: 2-6 sessions a month, each to 3-10 of the
// developer's own test MX hosts, 1-3 runs each, interactively (20-120 s apart).
Host b8(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  // A perl script: guardd classifies interpreter + script as Unknown, never Packaged.
  const auto swaks = g.actor("/usr/bin/perl /usr/bin/swaks", IdentityClass::Unknown);
  g.host.actors[swaks].interactive = true;  // run by hand from a terminal
  std::vector<std::string> testHosts;
  for (int i = 0; i < 10; ++i) testHosts.push_back(g.randomIp());
  // swaks --server <name>: the test host's A/AAAA; half of such names read mx1./mail.
  // (N3) [A]; 30% of developers use --to alone, which looks up MX (N1) [A].
  std::map<std::string, bool> mailName;
  for (const auto& h : testHosts) mailName[h] = g.chance(0.5);
  const bool viaMx = g.chance(0.3);
  const double sessionsPerMonth = g.uni(2, 6);
  const int days = daysOf(months);
  for (int d = 0; d < days; ++d) {
    if (!g.chance(sessionsPerMonth / kMonthDays)) continue;
    double t = d * kDay + g.uni(9, 19) * 3600;
    std::vector<std::string> hostsToday = testHosts;
    std::shuffle(hostsToday.begin(), hostsToday.end(), rng);
    hostsToday.resize(static_cast<std::size_t>(g.uniInt(3, 10)));
    for (const auto& h : hostsToday) {
      const std::uint16_t port = g.chance(0.75) ? 25 : 587;
      for (int r = g.uniInt(1, 3); r > 0; --r) {
        SimEvent& e = g.attempt(swaks, t, h, port, g.outcome(0.05), g.uni(0.5, 2));
        e.dns = {true, viaMx, true, mailName[h]};
        g.clicked(e);  // typed and run at once
        // One recipient; 10% of runs test a rejection on purpose [A]. 587 is TLS.
        if (port == 25) g.rcpts(e, 1, 0.1, 0);
        t += g.uni(20, 120);
      }
    }
  }
  g.host.end = g.at(days * kDay);
  return g.host;
}

// B10 a headless sync daemon: 5-30/day at any hour, no input, a fixed relay, sometimes
// 3-10 queued at once after a reconnect; 2% transient failures.
Host b10(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto sync = g.actor("/usr/bin/java /opt/davmail/davmail.jar", IdentityClass::Unknown);
  const auto relay = g.relayPool();
  const double perDay = g.uni(5, 30);
  for (int d = 0; d < daysOf(months); ++d) {
    for (int i = g.poisson(perDay); i > 0; --i) {
      g.sendWithRetry(sync, d * kDay + g.uni(0, kDay), relay, 587, 0.02, 3, Gen::Mode::Daemon);
    }
    if (g.chance(0.3)) {
      double t = d * kDay + g.uni(0, kDay);
      for (int i = g.uniInt(3, 10); i > 0; --i) {
        SimEvent& e = g.attempt(sync, t, g.pick(relay), 587, g.outcome(0.02), 1);
        g.dnsRelay(e);
        g.ambient(e);
        t += g.uni(1, 3);
      }
    }
  }
  g.host.end = g.at(daysOf(months) * kDay);
  return g.host;
}

// A fast direct-to-MX bot (M1/M2/M3/M7): Poisson attempts at `perMinute`, each to a new
// MX host, with up to `concurrency` sessions; `failRate` refused/timeouts.
// At most kMaxBotAttempts are generated: a bot not caught by then counts as missed.
constexpr int kMaxBotAttempts = 3000;
// A bot's direct sessions from a residential address: a reply names a blocklist on 5% of
// them [A] (research 1.3: Spamhaus/Barracuda texts; most bots' hosts are listed).
constexpr double kBotBlocklisted = 0.05;
// How a bot finds its targets (research 2.2 N1-N3): `dns` marks each attempt. A
// harvested list leaves 20-40% of its RCPTs "user unknown" (research M8) [A for direct];
// 1-5 RCPTs per session [A].
void fastBot(Gen& g, std::uint16_t bot, double t0, double horizon, double perMinute,
             unsigned concurrency, double failRate, void (*dns)(SimEvent&)) {
  double t = t0;
  const double unknown = g.uni(0.2, 0.4);
  for (int n = 0; t < horizon && n < kMaxBotAttempts; ++n) {
    SimEvent& e = g.attempt(bot, t, g.randomIp(), 25, g.outcome(failRate), g.uni(2, 20));
    e.maxSessions = concurrency;
    dns(e);
    g.ambient(e);
    if (e.outcome == ConnectOutcome::Established) {
      g.rcpts(e, static_cast<unsigned>(g.uniInt(1, 5)), unknown, kBotBlocklisted);
    }
    t += g.expo(60.0 / perMinute);
  }
}

// A stealthy bot (M5/M6): `perDay` attempts in waking hours, each within 3 s of the
// user's input (it piggybacks on it), a new MX each time (looked up: N1), valid list:
// 2% TCP failures, 2% unknown RCPTs [A], 10% greylisted (the first session is deferred,
// no evidence) and retried.
void stealthBot(Gen& g, std::uint16_t bot, double perDay, int days, std::uint16_t port,
                const std::vector<std::string>* relay) {
  for (int d = 0; d < days; ++d) {
    for (double t : g.wakingTimes(d, perDay)) {
      const std::string dst = relay ? g.pick(*relay) : g.randomIp();
      SimEvent& e = g.attempt(bot, t, dst, port, g.outcome(0.02), g.uni(2, 10));
      g.since(e, g.uni(0.2, 3));
      if (relay) {
        g.dnsRelay(e);
        continue;  // TLS to the relay: no replies seen
      }
      Gen::dnsMx(e);
      const bool greylisted = g.chance(0.1);
      if (!greylisted && e.outcome == ConnectOutcome::Established) {
        g.rcpts(e, static_cast<unsigned>(g.uniInt(1, 3)), 0.02, kBotBlocklisted);
      }
      if (greylisted) {
        SimEvent& r = g.attempt(bot, t + g.uni(300, 1800), dst, port);
        Gen::dnsMx(r);
        g.ambient(r);  // the retry comes from the bot's queue, not after input
        g.rcpts(r, static_cast<unsigned>(g.uniInt(1, 3)), 0.02, kBotBlocklisted);
      }
    }
  }
}

constexpr double kBotDays = 1;

IdentityClass dropperClass(Gen& g) {
  return g.chance(0.5) ? IdentityClass::Suspicious : IdentityClass::Unknown;
}

// M1: unknown executable in /tmp, 5-400 attempts/min, 10-50 concurrent, 20-50% failures.
Host m1(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot = g.actor("/tmp/.x/kworker", IdentityClass::Suspicious, false, true);
  fastBot(g, bot, 0, months * kMonthDays * kDay, g.logUni(5, 400),
          static_cast<unsigned>(g.uniInt(10, 50)), g.uni(0.2, 0.5), Gen::dnsMx);
  g.host.end = g.at(months * kMonthDays * kDay);
  return g.host;
}
// M2: hard-coded target list (no DNS); here also a binary in a plain home folder (no
// identity shift) on half the runs.
Host m2(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot = g.actor("/home/u/bin/update", dropperClass(g), false, true);
  fastBot(g, bot, 0, months * kMonthDays * kDay, g.logUni(5, 400),
          static_cast<unsigned>(g.uniInt(10, 50)), g.uni(0.2, 0.5), Gen::dnsNone);
  g.host.end = g.at(months * kMonthDays * kDay);
  return g.host;
}
// M3: Mytob-style guessing of mail.<domain> hosts: slower, most guesses fail.
Host m3(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot =
      g.actor("/home/u/.cache/mytob (deleted)", IdentityClass::Suspicious, false, true);
  fastBot(g, bot, 0, months * kMonthDays * kDay, g.logUni(1, 60),
          static_cast<unsigned>(g.uniInt(5, 20)), g.uni(0.5, 0.8), Gen::dnsGuess);
  g.host.end = g.at(months * kMonthDays * kDay);
  return g.host;
}

// The owner's mail client, one week of use, so its relay is learned before a bot starts.
struct Owner {
  std::uint16_t mua;
  std::vector<std::string> relay;
};
Owner ownerClient(Gen& g, int warmDays) {
  Owner o{g.actor("/usr/bin/thunderbird", IdentityClass::Packaged), g.relayPool()};
  for (int d = 0; d < warmDays; ++d) {
    for (double t : g.wakingTimes(d, 15)) g.sendWithRetry(o.mua, t, o.relay, 587, 0.01);
  }
  return o;
}
constexpr int kWarmDays = 7;

// M4: stolen credentials: a new program on the owner's relay over 587; every 1-6 h a
// burst of 5-50 messages (50-500 RCPTs), 1-5 at a time, no input.
Host m4(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const Owner owner = ownerClient(g, kWarmDays);
  const auto bot = g.actor("/home/u/.config/autostart/sync", dropperClass(g), false, true);
  const double t0 = kWarmDays * kDay;
  const double end = t0 + months * kMonthDays * kDay;
  const auto conc = static_cast<unsigned>(g.uniInt(1, 5));
  for (double t = t0 + g.uni(0, 3600); t < end; t += g.uni(1, 6) * 3600) {
    double s = t;
    for (int i = g.uniInt(5, 50); i > 0; --i) {
      SimEvent& e = g.attempt(bot, s, g.pick(owner.relay), 587, g.outcome(0.02), g.uni(2, 8));
      e.maxSessions = conc;
      g.dnsRelay(e);
      g.ambient(e);
      s += g.uni(2, 8) / conc;
    }
  }
  g.host.start = g.at(t0);
  g.host.end = g.at(end);
  return g.host;
}

// M5: stealthy, 1-10 attempts/hour while the user is active, direct to MX.
Host m5(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot = g.actor("/home/u/.cache/tracker-extract", dropperClass(g), false, true);
  const int days = daysOf(months);
  stealthBot(g, bot, g.uni(1, 10) * 15, days, 25, nullptr);
  g.host.end = g.at(days * kDay);
  return g.host;
}
// M6: trickle, 1-3 a day for weeks.
Host m6(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot = g.actor("/home/u/.local/share/gvfsd-helper", dropperClass(g), false, true);
  const int days = daysOf(months);
  stealthBot(g, bot, g.uni(1, 3), days, 25, nullptr);
  g.host.end = g.at(days * kDay);
  return g.host;
}
// M7: a binary named postfix in ~/.local/bin (not package-owned, so not a recognised
// MTA); behaves like M1 or like M5.
Host m7(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto bot = g.actor("/home/u/.local/bin/postfix", IdentityClass::Suspicious, false, true);
  if (g.chance(0.5)) {
    fastBot(g, bot, 0, months * kMonthDays * kDay, g.logUni(5, 400),
            static_cast<unsigned>(g.uniInt(10, 50)), g.uni(0.2, 0.5), Gen::dnsMx);
  } else {
    stealthBot(g, bot, g.uni(1, 10) * 15, daysOf(months), 25, nullptr);
  }
  g.host.end = g.at(months * kMonthDays * kDay);
  return g.host;
}

// M8: malware or a compromised CMS submitting to the local postfix on 127.0.0.1:25 at
// 5-400 messages/min with 1-20 recipient domains each; postfix delivers directly; the
// harvested list leaves 10-30% of deliveries refused or timing out [A] (its 20-40% "user
// unknown" are SMTP replies this version cannot see).
Host m8(std::mt19937_64& rng, TimePoint origin, double months) {
  Gen g(rng, origin);
  const auto postfix = g.actor("/usr/lib/postfix/sbin/smtp", IdentityClass::Packaged, true);
  const auto bot = g.chance(0.5)
                       ? g.actor("/tmp/.ICE-unix/php-fpm", IdentityClass::Suspicious, false, true)
                       : g.actor("/usr/bin/php8.2 /var/www/html/wp-content/x.php",
                                 IdentityClass::Unknown, false, true);
  const double perMinute = g.logUni(5, 400);
  const auto conc = static_cast<unsigned>(g.uniInt(1, 20));
  const double failRate = g.uni(0.1, 0.3);
  const int maxDomains = g.uniInt(1, 20);
  const double end = months * kMonthDays * kDay;
  int n = 0;
  const double unknown = g.uni(0.2, 0.4);
  for (double t = 0; t < end && n < kMaxBotAttempts; t += g.expo(60.0 / perMinute), ++n) {
    const std::size_t sub = g.host.events.size();
    g.local(bot, t).maxSessions = conc;
    Gen::dnsNone(g.host.events[sub]);
    g.ambient(g.host.events[sub]);
    // One recipient per domain; the message's final outcomes come from postfix's log
    // once its last connected delivery is through (refused/timed-out ones stay deferred).
    unsigned connected = 0;
    double last = 0;
    const int domains = g.uniInt(1, maxDomains);
    g.host.events[sub].recipients = static_cast<unsigned>(domains);
    for (int r = domains; r > 0; --r) {
      const double at = g.uni(1, 30);
      const std::string mx = g.randomIp();
      g.host.events[sub].domains.push_back(mx);  // a harvested list: one domain per MX
      SimEvent& e = g.attempt(postfix, t + at, mx, 25, g.outcome(failRate), g.uni(1, 10));
      Gen::dnsMx(e);
      if (e.outcome == ConnectOutcome::Established) {
        ++connected;
        last = std::max(last, at + g.uni(0.5, 2));
      }
    }
    if (connected > 0) {
      g.rcpts(g.host.events[sub], connected, unknown, kBotBlocklisted);
      g.host.events[sub].replyDelay = Seconds(last);
    }
  }
  g.host.end = g.at(end);
  return g.host;
}

// M9: M5 behaviour from inside the owner's mail client (same principal): (a) direct to
// MX, (b) through the client's own relay; (c) M6's trickle (1-3 a day) direct, where the
// client's own learned submissions outnumber the bot's attempts (the case research 2.1
// makes for the channel split; not one of the research's profiles).
Host m9(std::mt19937_64& rng, TimePoint origin, double months, bool viaRelay,
        bool trickle = false) {
  Gen g(rng, origin);
  const Owner owner = ownerClient(g, kWarmDays);
  const double t0 = kWarmDays * kDay;
  Gen bot(rng, origin);  // same host clock; events shifted below
  bot.host.actors = g.host.actors;
  bot.host.actors[owner.mua].malicious = true;
  const int days = daysOf(months);
  stealthBot(bot, owner.mua, trickle ? g.uni(1, 3) : g.uni(1, 10) * 15, days, viaRelay ? 587 : 25,
             viaRelay ? &owner.relay : nullptr);
  for (int d = kWarmDays; d < kWarmDays + days; ++d) {
    for (double t : g.wakingTimes(d, 15)) g.sendWithRetry(owner.mua, t, owner.relay, 587, 0.01);
  }
  for (SimEvent e : bot.host.events) {
    e.time = g.at(t0) + (e.time - bot.host.start);
    g.host.events.push_back(e);
  }
  g.host.actors[owner.mua].malicious = true;  // alerts after the bot starts are detections
  g.host.start = g.at(t0);
  g.host.end = g.at(t0 + days * kDay);
  return g.host;
}
Host m9a(std::mt19937_64& rng, TimePoint origin, double months) {
  return m9(rng, origin, months, false);
}
Host m9b(std::mt19937_64& rng, TimePoint origin, double months) {
  return m9(rng, origin, months, true);
}
Host m9c(std::mt19937_64& rng, TimePoint origin, double months) {
  return m9(rng, origin, months, false, true);
}

}  // namespace

detector::AttemptEvent attemptOf(const Actor& actor, const SimEvent& e) {
  detector::AttemptEvent a;
  a.principal = actor.principal;
  a.program = actor.program;
  a.dst = e.dst;
  a.port = e.port;
  a.toLocalMta = e.toLocalMta;
  a.fromMta = actor.mta;
  a.idClass = actor.idClass;
  a.interactive = actor.interactive;
  a.dns = e.dns;
  a.presence = e.presence;
  return a;
}

const std::vector<Profile>& profiles() {
  constexpr double kYear = 12;
  constexpr double kBot = kBotDays / kMonthDays;
  static const std::vector<Profile> all = {
      {"B1", "GUI mail client, 5-40/day, one relay", Kind::Benign, kYear, b1},
      {"B2", "outbox flush, 10-30 in one burst", Kind::Benign, kYear, b2},
      {"B3", "mutt + msmtp, 1-10/day", Kind::Benign, kYear, b3},
      {"B4", "heavy user, flaky link", Kind::Benign, kYear, b4},
      {"B5", "cron mail via postfix relayhost", Kind::Benign, kYear, b5},
      {"B6", "postfix direct delivery", Kind::Benign, kYear, b6},
      {"B7", "postfix newsletter, undeclared", Kind::Benign, kYear, b7},
      {"B7d", "postfix newsletter, declared bulk", Kind::Benign, kYear, b7d},
      {"B8", "developer testing with swaks", Kind::Benign, kYear, b8},
      {"B9", "postfix, port 25 blocked upstream", Kind::Benign, kYear, b9},
      {"B10", "headless sync daemon", Kind::Benign, kYear, b10},
      {"M1", "fast direct-to-MX bot in /tmp", Kind::Malicious, kBot, m1},
      {"M2", "hard-coded target list", Kind::Malicious, kBot, m2},
      {"M3", "mail-host guessing", Kind::Malicious, kBot, m3},
      {"M4", "stolen credentials on owner's relay", Kind::Malicious, 7 / kMonthDays, m4},
      {"M5", "stealthy, 1-10/h direct", Kind::Malicious, 30 / kMonthDays, m5},
      {"M6", "trickle, 1-3/day direct", Kind::Malicious, 30 / kMonthDays, m6},
      {"M7", "masquerading 'postfix' (M1 or M5)", Kind::Malicious, 30 / kMonthDays, m7},
      {"M8", "local-MTA abuse via 127.0.0.1:25", Kind::Malicious, kBot, m8},
      {"M9a", "injected into the MUA, direct", Kind::Malicious, 30 / kMonthDays, m9a},
      {"M9b", "injected into the MUA, same relay", Kind::Malicious, 30 / kMonthDays, m9b},
      {"M9c", "injected into the MUA, trickle direct", Kind::Malicious, 30 / kMonthDays, m9c},
  };
  return all;
}

}  // namespace mailguard::bench
