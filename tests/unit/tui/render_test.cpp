#include "mailguard/tui/view.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "mailguard/tui/text.hpp"

namespace mailguard::tui {
namespace {

using namespace testing;

const std::string kUtf8Path =
    "/home/j\xC3\xBCrgen/\xE3\x83\xA1\xE3\x83\xBC\xE3\x83\xAB/\xE9\x80\x81\xE4\xBF\xA1";
const std::string kLongPath =
    "/home/alice/.local/share/virtualenvs/newsletter-tools-8f3a/lib/python3.11/site-packages/bin/"
    "mass-mailer";

State household(Size size) {
  Program tb = program(1, "/usr/bin/thunderbird", "approved", kMidnightUs + 3 * kHourUs, 40);
  Program bot = program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + kHourUs, 2);
  Program msmtp = program(3, "/usr/bin/msmtp", "denied", kMidnightUs + 4 * kHourUs, 7, 0);
  Program longOne = program(4, kLongPath, "quarantined", kMidnightUs + 90 * 1'000'000, 3);
  Program utf8 = program(5, kUtf8Path, "approved", kMidnightUs - 30 * kHourUs, 1);
  return loadedState(
      snapshot({tb, bot, msmtp, longOne, utf8}, {attempt(9, bot, "hold", "203.0.113.9"),
                                                 attempt(8, msmtp, "reject", "2001:db8::25", 587),
                                                 attempt(7, tb, "allow", "127.0.0.1", 465)}),
      size);
}

// Every row exactly as wide as the frame, counted in cells.
void expectExactWidths(const Frame& f) {
  ASSERT_EQ(static_cast<int>(f.rows.size()), f.size.rows);
  for (std::size_t i = 0; i < f.rows.size(); ++i) {
    EXPECT_EQ(displayWidth(f.rows[i].text()), f.size.cols)
        << "row " << i << ": " << f.rows[i].text();
  }
}

std::string lineWith(const Frame& f, const std::string& needle) {
  for (const auto& l : f.lines()) {
    if (l.find(needle) != std::string::npos) return l;
  }
  return {};
}

TEST(Render, ProgramsAt80x24FitAndShowEverythingThatMatters) {
  const State s = household({80, 24});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  const auto lines = f.lines();
  EXPECT_EQ(lines[0],
            " mailguard   1 Programs (1 pending)   2 Attempts  3 Alerts  4 Audit  5 Outside");
  EXPECT_EQ(lines[1],
            " connected  enforcing  xt-compat  proc id  today: 3 attempts, 1 held, 1 rejected");
  EXPECT_EQ(lines[2],
            " STATE       PROGRAM                         USER     ATTEMPTS DESTS "
            "LAST SEEN");
  EXPECT_EQ(lines[3],
            " PENDING     /home/alice/.cache/bot          alice           2     1 "
            "01:00:00");
  // Middle ellipsis: the start and, with more room, the file name stay readable.
  EXPECT_EQ(lines[4],
            " QUARANTINED /home/alic\xE2\x80\xA6"
            "ages/bin/mass-mailer alice           3"
            "     - 00:01:30");
  EXPECT_NE(lineWith(f, "/usr/bin/msmtp").find("root"), std::string::npos);
  EXPECT_NE(lineWith(f, "2024-03-12").find("j\xC3\xBCrgen"), std::string::npos)
      << "older than today shows the date; UTF-8 path intact";
  EXPECT_EQ(lines[23],
            " a approve  d deny  f forget  Enter details  / filter  s sort  ? help  q quit");
}

TEST(Render, TheHelpFitsWholeAt80x24) {
  State s = household({80, 24});
  s.help = true;
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "Reading works for every user."), "") << "its last line";
  for (const auto& l : f.lines()) {
    EXPECT_EQ(l.find("\xE2\x80\xA6"), std::string::npos) << "cut short: " << l;
  }
}

TEST(Render, PendingRowsCarryThePendingRoleAndTheSelectionIsMarked) {
  const State s = household({80, 24});
  const Frame f = render(s, {80, 24});
  const Row& pending = f.rows[3];
  EXPECT_TRUE(pending.selected);
  EXPECT_EQ(pending.spans[1].style, Style::Pending);
  EXPECT_EQ(pending.spans[3].style, Style::Pending);
  EXPECT_FALSE(f.rows[4].selected);
  EXPECT_EQ(f.rows[4].spans[1].style, Style::Quarantined);
}

TEST(Render, ProgramsAt120x40GiveThePathMoreRoom) {
  const State s = household({120, 40});
  const Frame f = render(s, {120, 40});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "QUARANTINED")
                .find("/home/alice/.local/shar\xE2\x80\xA6"
                      "3a/lib/python3.11/"),
            std::string::npos)
      << lineWith(f, "QUARANTINED");
  EXPECT_NE(lineWith(f, "QUARANTINED").find("site-packages/bin/mass-mailer"), std::string::npos);
  EXPECT_NE(lineWith(f, kUtf8Path), "");
}

TEST(Render, AttemptsShowTimeVerdictProgramAndDestination) {
  State s = household({120, 40});
  update(s, KeyPressed{Key::ch("2")});
  const Frame f = render(s, {120, 40});
  expectExactWidths(f);
  EXPECT_NE(f.lines()[2].find("TIME     VERDICT PROGRAM"), std::string::npos) << f.lines()[2];
  EXPECT_NE(f.lines()[2].find("REASON"), std::string::npos);
  const std::string held = lineWith(f, "HOLD");
  EXPECT_NE(held.find("01:00:09"), std::string::npos) << held;
  EXPECT_NE(held.find("/home/alice/.cache/bot"), std::string::npos);
  EXPECT_NE(held.find("4009"), std::string::npos);
  EXPECT_NE(held.find("203.0.113.9:25"), std::string::npos);
  EXPECT_NE(held.find("unknown program"), std::string::npos);
  EXPECT_NE(lineWith(f, "REJECT").find("[2001:db8::25]:587"), std::string::npos);

  // At 80 columns the reason moves to the details pane.
  update(s, Resized{{80, 24}});
  const Frame narrow = render(s, {80, 24});
  expectExactWidths(narrow);
  EXPECT_EQ(narrow.lines()[2].find("REASON"), std::string::npos);
  EXPECT_NE(lineWith(narrow, "HOLD").find("203.0.113.9:25"), std::string::npos);
}

TEST(Render, DetailsPaneShowsFullPathHashAndRecentDestinations) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::of(KeyCode::Down)});  // the quarantined program with the long path
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  Program longOne = *findProgram(s, 4);
  update(s, ProgramAttemptsLoaded{4,
                                  {attempt(20, longOne, "reject", "192.0.2.1"),
                                   attempt(19, longOne, "reject", "192.0.2.1"),
                                   attempt(18, longOne, "reject", "192.0.2.2", 587)}});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  const auto text = f.text();
  EXPECT_NE(text.find("program details (Enter closes)"), std::string::npos) << text;
  // The full path, wrapped over two lines rather than cut.
  EXPECT_NE(text.find(" path       /home/alice/.local/share/virtualenvs/newsletter-tools-8f3a/lib/"
                      "pytho\n            n3.11/site-packages/bin/mass-mailer\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(std::string(64, 'a')), std::string::npos);
  EXPECT_NE(text.find("recent     192.0.2.1:25 x2, 192.0.2.2:587"), std::string::npos) << text;
  EXPECT_NE(text.find(" command    /home/alice/.local/share/virtualenvs/"), std::string::npos)
      << text;
  EXPECT_NE(text.find(" process    pid 4020   parent: not reported by guardd yet"),
            std::string::npos)
      << text;
}

TEST(Render, DetailsPaneSaysWhenGuarddWithheldAnotherUsersCommandLine) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::of(KeyCode::Down)});
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  Program longOne = *findProgram(s, 4);
  auto hidden = attempt(20, longOne, "reject", "192.0.2.1");
  hidden.cmdline.clear();
  hidden.cmdlineHidden = "another user's";
  update(s, ProgramAttemptsLoaded{4, {hidden}});
  const auto text = render(s, {80, 24}).text();
  EXPECT_NE(text.find(" command    (hidden: another user's)"), std::string::npos) << text;
}

TEST(Render, DetailsPaneTakesTheCommandLineFromLoadedAttemptsNotFromLiveOnes) {
  State s = household({80, 24});
  Program longOne = *findProgram(s, 4);
  auto live = attempt(21, longOne, "reject", "192.0.2.1");
  live.cmdline.clear();
  live.cmdlineHidden = "not in live updates";
  update(s, AttemptRecorded{live});
  update(s, KeyPressed{Key::of(KeyCode::Down)});
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  update(s, ProgramAttemptsLoaded{4, {attempt(20, longOne, "reject", "192.0.2.1")}});
  ASSERT_NE(render(s, {80, 24}).text().find("program details"), std::string::npos);
  const auto text = render(s, {80, 24}).text();
  EXPECT_NE(text.find(" command    /home/alice/.local/share/virtualenvs/"), std::string::npos)
      << text;
}

TEST(Render, StatusBarNamesTheAttributionPath) {
  State s = household({80, 24});
  s.status.attribution = "kernel";
  Frame f = render(s, {100, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[1],
            " connected  enforcing  xt-compat  kernel id  today: 3 attempts, 1 held, 1 rejected");
  // 81 columns in all: at 80 the backend gives way (see the next test).
  f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[1],
            " connected  enforcing  kernel id  today: 3 attempts, 1 held, 1 rejected");
  // A guardd that does not say: the bar as it was.
  s.status.attribution.clear();
  f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[1],
            " connected  enforcing  xt-compat  today: 3 attempts, 1 held, 1 rejected");
}

TEST(Render, StatusBarGivesUpTheBackendBeforeTheAttributionOrTheCountsAt80Columns) {
  State s = household({80, 24});
  s.status.attribution = "kernel";
  s.today.allowed = 12345;
  s.today.held = 678;
  s.today.rejected = 90;
  Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[1],
            " connected  enforcing  kernel id  today: 13113 attempts, 678 held, 90 rejected");
  // With room, the backend is back.
  f = render(s, {120, 40});
  EXPECT_EQ(
      f.lines()[1].rfind(" connected  enforcing  xt-compat  kernel id  today: 13113 attempts", 0),
      0u)
      << f.lines()[1];
}

TEST(Render, DisconnectedIsPlainToSee) {
  State s = household({80, 24});
  update(s, Disconnected{"guardd is not running (no org.mailguard.Guard1 on the system bus)"});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[1].rfind(" DISCONNECTED from guardd, retrying", 0), 0u) << f.lines()[1];
  EXPECT_EQ(f.lines()[22].rfind(" Lost guardd: guardd is not running", 0), 0u) << f.lines()[22];
  EXPECT_EQ(f.rows[1].spans[1].style, Style::Bad);
}

TEST(Render, AlertsShowTimeProgramTierAckAndTopReasons) {
  State s = household({80, 24});
  Program bot = *findProgram(s, 4);
  Loaded l = snapshot(s.programs);
  l.alerts = {alert(2, bot, "hard"), alert(1, bot, "soft", true)};
  update(s, l);
  update(s, KeyPressed{Key::ch("3")});
  Frame f = render(s, {80, 24});
  expectExactWidths(f);
  const auto lines = f.lines();
  EXPECT_NE(lines[0].find("3 Alerts (1 new)"), std::string::npos) << lines[0];
  EXPECT_EQ(lines[2].substr(0, 20), " TIME     TIER PROGR");
  EXPECT_NE(lines[2].find("ACKED"), std::string::npos);
  EXPECT_NE(lines[2].find("TOP REASONS"), std::string::npos);
  EXPECT_EQ(
      lines[3].rfind(" 01:02:00 HARD /home/a\u2026bin/mass-mailer no    direct-to-mx 6.00", 0), 0u)
      << lines[3];
  EXPECT_EQ(lines[4].rfind(" 01:01:00 soft ", 0), 0u) << lines[4];
  EXPECT_NE(lines[4].find(" yes "), std::string::npos) << lines[4];
  EXPECT_EQ(f.rows[3].spans[3].style, Style::Quarantined);  // HARD
  EXPECT_EQ(f.rows[4].spans[3].style, Style::Held);         // soft
  EXPECT_EQ(f.rows[4].spans[1].style, Style::Dim);          // acknowledged: quiet
  EXPECT_TRUE(f.rows[3].selected);
  EXPECT_EQ(lines[23],
            " K acknowledge  a approve  d deny  Enter evidence  / filter  ? help  q quit");
  EXPECT_EQ(f.text().find("not available"), std::string::npos);
}

TEST(Render, RaisedAlertIsHighlightedAndEvidenceIsInTheDetails) {
  State s = household({100, 30});
  update(s, KeyPressed{Key::ch("3")});
  Frame f = render(s, {100, 30});
  EXPECT_NE(f.text().find("No alerts: nothing has behaved like a spam bot."), std::string::npos);
  update(s, AlertRaised{alert(7, *findProgram(s, 2), "soft")});
  f = render(s, {100, 30});
  EXPECT_NE(f.lines()[3].find(" NEW "), std::string::npos) << f.lines()[3];
  EXPECT_EQ(f.rows[3].spans[1].style, Style::Pending);  // highlighted like a pending program
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  f = render(s, {100, 30});
  expectExactWidths(f);
  const std::string text = f.text();
  EXPECT_NE(text.find("alert evidence (Enter closes)"), std::string::npos) << text;
  EXPECT_NE(
      text.find("score      10.5 (threshold 8)   24h: 40 attempts, 12 destinations, 3 failures"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("sample     198.51.100.7:25, 203.0.113.9:25"), std::string::npos) << text;
  EXPECT_NE(text.find("parents    4242 /usr/bin/bash, 1 /sbin/init"), std::string::npos) << text;
  EXPECT_NE(text.find("now PENDING"), std::string::npos) << text;
}

TEST(Render, TamperAlertSaysTheFirewallWasChangedAndWhatToDo) {
  State s = household({100, 30});
  Alert a;
  a.id = 9;
  a.timeUs = kMidnightUs + kHourUs;
  a.path = "/usr/sbin/nft";
  a.tier = "soft";
  a.kind = "tamper";
  a.summary = "Firewall table 'inet mailguard' was changed by nft (pid 77): deleted table";
  a.reasons = {"changed by nft (pid 77): deleted table", "guardd restored the table 1 time(s)",
               "Only root can change the firewall: find the program that ran"};
  a.evidence = R"({"kind":"tamper","table":"inet mailguard"})";
  update(s, KeyPressed{Key::ch("3")});
  update(s, AlertRaised{a});
  Frame f = render(s, {100, 30});
  EXPECT_EQ(lineWith(f, "/usr/sbin/nft").find(" FW! "), 9u) << lineWith(f, "/usr/sbin/nft");
  EXPECT_EQ(f.rows[3].spans[3].style, Style::Quarantined);
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  f = render(s, {100, 30});
  expectExactWidths(f);
  const std::string text = f.text();
  EXPECT_NE(text.find("firewall table changed by someone else   id 9"), std::string::npos) << text;
  EXPECT_NE(text.find("change     changed by nft (pid 77): deleted table"), std::string::npos)
      << text;
  EXPECT_NE(text.find("to do      Only root can change the firewall"), std::string::npos) << text;
  EXPECT_EQ(text.find("score"), std::string::npos) << text;  // not a detector alert
}

TEST(Render, HouseholdRelayAndBackscatterAlertsHaveTheirOwnLayout) {
  State s = household({80, 24});
  Alert relay;
  relay.id = 21;
  relay.timeUs = kMidnightUs + kHourUs;
  relay.path = "198.18.6.2";
  relay.tier = "hard";
  relay.kind = "household-relay";
  relay.summary = "the mail server at 198.18.6.2:25 relays mail for anyone on your LAN";
  relay.reasons = {relay.summary, "Remove 198.18.6.0/26 from the relay networks"};
  relay.evidence =
      R"({"kind":"household-relay","host":"198.18.6.2","port":25,"banner":"220 nb ESMTP Exim"})";
  Alert flood;
  flood.id = 22;
  flood.timeUs = kMidnightUs + kHourUs;
  flood.path = "/var/log/mail.log";
  flood.tier = "soft";
  flood.kind = "backscatter";
  flood.summary = "Backscatter: 60 bounces within an hour";
  flood.reasons = {"60 of 60 bounces match no mail sent from here",
                   "A filter for your mail program: guardctl backscatter"};
  flood.evidence = R"({"kind":"backscatter","dsns_last_hour":60})";
  update(s, KeyPressed{Key::ch("3")});
  update(s, AlertRaised{flood});
  update(s, AlertRaised{relay});
  Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "198.18.6.2").find(" LAN! "), std::string::npos)
      << lineWith(f, "198.18.6.2");
  EXPECT_NE(lineWith(f, "/var/log/mail.log").find(" BSC "), std::string::npos)
      << lineWith(f, "/var/log/mail.log");
  // The details of the relay alert (alone, so that it is the selected row).
  s = household({100, 30});
  update(s, KeyPressed{Key::ch("3")});
  update(s, AlertRaised{relay});
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  f = render(s, {100, 30});
  expectExactWidths(f);
  const std::string text = f.text();
  EXPECT_NE(text.find("open relay on your network   id 21"), std::string::npos) << text;
  EXPECT_NE(text.find("198.18.6.2:25   220 nb ESMTP Exim"), std::string::npos) << text;
  EXPECT_EQ(text.find("score"), std::string::npos) << text;  // not a detector alert
}

TEST(Render, AuditShowsTheHouseholdsOtherMailServersBelowThisPCs) {
  State s = household({100, 30});
  update(s, KeyPressed{Key::ch("4")});
  AuditReport report;
  report.finishedUs = kMidnightUs + kHourUs;
  report.results = {auditResult("127.0.0.1", 25, "loopback", "closed")};
  update(s, AuditLoaded{report});
  Frame f = render(s, {100, 30});
  EXPECT_NE(lineWith(f, "Other mail servers on your network").size(), 0u) << f.text();
  EXPECT_NE(lineWith(f, "not scanned").find("guardctl audit --hosts"), std::string::npos);

  update(s, HouseholdLoaded{kMidnightUs + 2 * kHourUs, "",
                            R"({"subnets":["198.18.6.0/26"],"hosts":[)"
                            R"({"address":"198.18.6.2","port":25,"relay":"open"},)"
                            R"({"address":"198.18.6.3","port":587,"relay":"closed"}]})"});
  f = render(s, {100, 30});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "scanned 2024-03-14 02:00:00").find("2 servers"), std::string::npos)
      << f.text();
  const std::string open = lineWith(f, "198.18.6.2:25");
  EXPECT_NE(open.find("OPEN RELAY"), std::string::npos) << f.text();
  EXPECT_NE(lineWith(f, "198.18.6.3:587").find("closed"), std::string::npos);
  // At 80x24 too, every line fits.
  expectExactWidths(render(s, {80, 24}));
}

TEST(Render, QuarantinedProgramHasItsOwnStyle) {
  State s = household({80, 24});
  const Frame f = render(s, {80, 24});
  int row = -1;
  for (int i = 0; i < 24; ++i) {
    if (f.lines()[static_cast<std::size_t>(i)].starts_with(" QUARANTINED")) row = i;
  }
  ASSERT_GE(row, 0) << f.text();
  EXPECT_EQ(f.rows[static_cast<std::size_t>(row)].spans[1].style, Style::Quarantined);
}

TEST(Render, AuditShowsServersRelayAndFindingsFix) {
  State s = household({100, 30});
  update(s, KeyPressed{Key::ch("4")});
  Frame f = render(s, {100, 30});
  EXPECT_NE(f.lines()[3].find("No audit yet: press R"), std::string::npos) << f.lines()[3];
  AuditReport report;
  report.finishedUs = kMidnightUs + kHourUs;
  report.results = {auditResult("0.0.0.0", 25, "external", "open"),
                    auditResult("127.0.0.1", 587, "loopback", "closed")};
  update(s, AuditLoaded{report});
  f = render(s, {100, 30});
  expectExactWidths(f);
  const auto lines = f.lines();
  EXPECT_EQ(lines[3], " Last audit 2024-03-14 01:00:00: 2 servers, 1 external, 1 open relay");
  EXPECT_EQ(lines[4].rfind(" 0.0.0.0:25             EXTERNAL OPEN        exim4   ", 0), 0u)
      << lines[4];
  EXPECT_NE(lines[4].find("plain, percent-hack"), std::string::npos);
  EXPECT_EQ(lines[5].rfind(" 127.0.0.1:587          loopback closed      ", 0), 0u) << lines[5];
  EXPECT_TRUE(f.rows[4].selected);
  EXPECT_EQ(lines[29], " R run audit now  Enter findings  Tab screen  ? help  q quit");
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  f = render(s, {100, 30});
  const std::string text = f.text();
  EXPECT_NE(text.find("audit findings (Enter closes)"), std::string::npos) << text;
  EXPECT_NE(text.find("critical   Open relay: relays mail for anyone"), std::string::npos) << text;
  EXPECT_NE(text.find("fix      Set dc_relay_nets to 127.0.0.1"), std::string::npos) << text;
}

TEST(Render, AuditShowsARelayOpenOnlyForTheLanAsOpen) {
  State s = household({100, 30});
  update(s, KeyPressed{Key::ch("4")});
  AuditReport report;
  report.finishedUs = kMidnightUs + kHourUs;
  auto lanOnly = auditResult("198.18.4.1", 25, "external", "closed");
  lanOnly.accepted.clear();
  lanOnly.lan = {{"198.18.4.0/24",
                  "198.18.4.3",
                  "198.18.4.1",
                  "open",
                  {"plain", "null-sender"},
                  "reached from 198.18.4.3 (a host on your LAN 198.18.4.0/24) at 198.18.4.1",
                  {}}};
  report.results = {lanOnly};
  update(s, AuditLoaded{report});
  Frame f = render(s, {100, 30});
  expectExactWidths(f);
  const auto lines = f.lines();
  EXPECT_EQ(lines[3], " Last audit 2024-03-14 01:00:00: 1 server, 1 external, 1 open relay");
  EXPECT_EQ(lines[4].rfind(" 198.18.4.1:25          EXTERNAL OPEN (LAN) ", 0), 0u) << lines[4];
  EXPECT_NE(lines[4].find("LAN: plain, null-sender"), std::string::npos) << lines[4];
  EXPECT_TRUE(f.rows[4].selected);
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  const std::string text = render(s, {100, 30}).text();
  EXPECT_NE(text.find("198.18.4.0/24 (from 198.18.4.3): relay OPEN"), std::string::npos) << text;
}

TEST(Render, RunningAuditSaysAuditing) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::ch("4")});
  update(s, KeyPressed{Key::ch("R")});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[3].rfind(" auditing... probing", 0), 0u) << f.lines()[3];
  EXPECT_EQ(f.text().find("not available"), std::string::npos);
}

TEST(Render, AMessageHandedToTheMtaShowsItsDomainsAndQueueId) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + kHourUs, 2);
  Attempt a = attempt(9, bot, "hold", "victim.example,other.example", 0);
  a.src = "exim";
  a.channel = "mta";
  a.queueId = "1rXyZa-000Abc-7Q";
  State s = loadedState(snapshot({bot}, {a}), {120, 40});
  update(s, KeyPressed{Key::ch("2")});
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  const Frame f = render(s, {120, 40});
  expectExactWidths(f);
  const std::string held = lineWith(f, "HOLD");
  // The column is narrower than the domains: shortened in the middle, never given a port.
  EXPECT_NE(held.find("mta: vi"), std::string::npos) << held;
  EXPECT_NE(held.find(",other.example "), std::string::npos) << held;
  EXPECT_EQ(held.find("example:0"), std::string::npos) << held;
  const auto text = f.text();
  EXPECT_NE(
      text.find(" channel    mail handed to the local MTA (exim)   queue id 1rXyZa-000Abc-7Q"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(" recipients victim.example,other.example"), std::string::npos) << text;
}

TEST(Render, ProgramDetailsShowHeldMailPinsAndAllowedCodeLoading) {
  Program perl = program(5, "/usr/bin/perl", "approved", kMidnightUs + kHourUs, 3);
  perl.heldMessages = 4;
  Loaded l = snapshot({perl});
  Rule r;
  r.id = 1;
  r.action = "approve";
  r.path = "/usr/bin/perl";
  r.onlyTo = {"192.0.2.7:587", "[2001:db8::7]:25"};
  r.allowEnv = {"PERL5LIB", "-M"};
  l.rules = {r};
  State s = loadedState(l, {100, 30});
  update(s, KeyPressed{Key::of(KeyCode::Enter)});
  Frame f = render(s, {100, 30});
  expectExactWidths(f);
  auto text = f.text();
  EXPECT_NE(text.find(" only to    192.0.2.7:587, [2001:db8::7]:25"), std::string::npos) << text;
  EXPECT_NE(text.find(" allows     PERL5LIB, -M"), std::string::npos) << text;
  EXPECT_NE(text.find(" held mail  4 held by the local MTA: sent if you approve, deleted if"),
            std::string::npos)
      << text;
  // Without a pin or an allowance it says so; without held mail there is no line.
  r.onlyTo.clear();
  r.allowEnv.clear();
  update(s, RulesLoaded{{r}});
  perl.heldMessages = 0;
  update(s, ProgramChanged{perl});
  text = render(s, {100, 30}).text();
  EXPECT_NE(text.find(" only to    anywhere"), std::string::npos) << text;
  EXPECT_NE(text.find(" allows     no code-loading variables or options"), std::string::npos)
      << text;
  EXPECT_EQ(text.find("held mail"), std::string::npos) << text;
}

TEST(Render, AProgramWithSeveralVersionsSaysHowMany) {
  Program x = program(7, "/usr/local/bin/x", "pending");
  x.versions = 3;
  Program y = program(8, "/usr/local/bin/y", "approved");
  y.versions = 1;
  const State s = loadedState(snapshot({x, y}), {80, 24});
  const auto text = render(s, {80, 24}).text();
  EXPECT_NE(text.find("/usr/local/bin/x (3 versions)"), std::string::npos) << text;
  EXPECT_EQ(text.find("/usr/local/bin/y ("), std::string::npos) << text;
}

TEST(Render, DenyConfirmationNamesTheHeldMessageCount) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + kHourUs, 2);
  bot.heldMessages = 20;
  State s = loadedState(snapshot({bot}), {80, 24});
  update(s, KeyPressed{Key::ch("d")});
  const Frame f = render(s, {80, 24});
  EXPECT_EQ(f.lines()[22], " Deny and DELETE its 20 held messages? /home/alice/.cache/bot [y/n]");
}

TEST(Render, ConfirmationAndRefusalAppearOnTheMessageLine) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::ch("a")});
  Frame f = render(s, {80, 24});
  EXPECT_EQ(f.lines()[22], " Approve so it may send mail? /home/alice/.cache/bot [y/n]");
  EXPECT_EQ(f.rows[22].spans[0].style, Style::Prompt);
  EXPECT_EQ(f.lines()[23], " y yes  n no");
  // A long path is shortened, never the [y/n].
  update(s, KeyPressed{Key::ch("n")});
  update(s, KeyPressed{Key::of(KeyCode::Down)});
  update(s, KeyPressed{Key::ch("a")});
  f = render(s, {80, 24});
  EXPECT_EQ(f.lines()[22],
            " Approve a program quarantined as a suspected spam bot? /home\xE2\x80\xA6"
            "/mass-mailer [y/n]");
  update(s, KeyPressed{Key::ch("n")});
  update(s, KeyPressed{Key::of(KeyCode::Up)});
  update(s, KeyPressed{Key::ch("a")});
  update(s, KeyPressed{Key::ch("y")});
  update(s, ActionFailed{Action::Approve, 2,
                         dbus::ClientError{dbus::ClientError::Kind::NotAuthorized, "x", "y"}});
  f = render(s, {80, 24});
  EXPECT_EQ(f.lines()[22], " Not authorized: x");
  EXPECT_EQ(f.rows[22].spans[0].style, Style::Error);
}

TEST(Render, HelpListsTheKeys) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::ch("?")});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  const auto text = f.text();
  for (const char* k : {"approve the program", "deny it", "forget the decision", "filter by text",
                        "sort programs", "quit"}) {
    EXPECT_NE(text.find(k), std::string::npos) << k;
  }
}

TEST(Render, HelpFitsAt80x24DownToItsLastLine) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::ch("?")});
  const Frame f = render(s, {80, 24});
  EXPECT_NE(f.text().find("Reading works for every user."), std::string::npos) << f.text();
  EXPECT_NE(f.text().find("5 Outside"), std::string::npos);
}

const char* const kOutsideReport = R"({"time":"2026-12-07T10:00:00Z","public_address":"198.18.0.7",
  "address_source":"settings","address_error":"","running":false,"next_run":"2026-12-08T10:00:00Z",
  "blocklists":[{"zone":"bl.test","status":"listed","codes":["127.0.0.2"],"reason":"spam trap hit",
    "error":"","first_seen":"2026-12-06T09:00:00Z"},
   {"zone":"clean.test","status":"not-listed","codes":[],"reason":"","error":"","first_seen":null},
   {"zone":"broken.test","status":"error","codes":[],"reason":"","error":"refused","first_seen":null}],
  "domains":[{"domain":"example.test","spf":"v=spf1 +all","spf_all":"+all","dmarc":"","dmarc_policy":"",
    "findings":[{"kind":"spf-permissive","severity":"high","title":"SPF allows every sender",
      "fix":"End the SPF record with -all"}]}]})";

TEST(Render, OutsideShowsListingsWithCauseAndDomainFindingsWithFixes) {
  State s = household({100, 30});
  Alert alert;
  alert.id = 77;
  alert.kind = "blocklist";
  alert.tier = "hard";
  alert.evidence = R"({"kind":"blocklist","zone":"bl.test","cause":"mailbot sent 300 messages"})";
  update(s, AlertRaised{alert});
  const Effects fx = update(s, KeyPressed{Key::ch("o")});
  EXPECT_EQ(s.screen, Screen::Outside);
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadOutside);
  update(s, OutsideLoaded{kOutsideReport});
  const Frame f = render(s, {100, 30});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "bl.test").find("LISTED since 2026-12-06T09:00:00Z (spam trap hit)"),
            std::string::npos)
      << f.text();
  EXPECT_NE(lineWith(f, "Likely cause:").find("mailbot sent 300 messages"), std::string::npos);
  EXPECT_NE(lineWith(f, "clean.test").find("not listed"), std::string::npos);
  EXPECT_NE(lineWith(f, "broken.test").find("error: refused"), std::string::npos);
  EXPECT_NE(lineWith(f, "example.test").find("1 finding"), std::string::npos);
  EXPECT_NE(lineWith(f, "SPF allows every sender").find("[high]"), std::string::npos);
  EXPECT_NE(lineWith(f, "Fix:").find("End the SPF record with -all"), std::string::npos);
  EXPECT_NE(lineWith(f, "198.18.0.7").find("Last check"), std::string::npos);
}

TEST(Render, OutsideNamesTheAddressSourceAndWhyEarlierSourcesGaveNone) {
  State s = household({100, 30});
  update(s, KeyPressed{Key::ch("o")});
  update(s, OutsideLoaded{R"json({"time":"2026-12-07T10:00:00Z","public_address":"198.18.0.9",
    "address_source":"dns:myip.opendns.com","address_error":"",
    "address_notes":["router:upnp: the router's own address 100.64.3.4 is not public: your provider shares addresses (carrier-grade NAT)"],
    "running":false,"next_run":null,"blocklists":[],"domains":[]})json"});
  const Frame f = render(s, {100, 30});
  expectExactWidths(f);
  EXPECT_NE(lineWith(f, "198.18.0.9").find("(from dns:myip.opendns.com)"), std::string::npos)
      << f.text();
  EXPECT_NE(lineWith(f, "Note: router:upnp").find("100.64.3.4 is not public"), std::string::npos)
      << f.text();
}

TEST(Render, OutsideRunRefusedSaysNotAuthorized) {
  State s = household({80, 24});
  update(s, KeyPressed{Key::ch("5")});
  const Effects fx = update(s, KeyPressed{Key::ch("R")});
  ASSERT_FALSE(fx.commands.empty());
  EXPECT_EQ(fx.commands.back().kind, Command::Kind::RunOutside);
  EXPECT_NE(render(s, {80, 24}).text().find("checking..."), std::string::npos);
  update(s, OutsideFailed{dbus::ClientError{
                              dbus::ClientError::Kind::NotAuthorized, "needs an administrator", {}},
                          true});
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  EXPECT_NE(f.text().find("Not authorized: needs an administrator"), std::string::npos) << f.text();
  EXPECT_EQ(f.text().find("checking..."), std::string::npos);
}

TEST(Render, FilterPromptAndEmptyResults) {
  State s = household({80, 24});
  for (const char* k : {"/", "z", "z"}) update(s, KeyPressed{Key::ch(k)});
  const Frame f = render(s, {80, 24});
  EXPECT_EQ(f.lines()[22], " Filter: zz_   (Enter keeps it, Esc clears)");
  EXPECT_EQ(f.lines()[4], "   Nothing matches the filter \"zz\" (Esc clears it)");
}

TEST(Render, HostileNamesCannotInjectTerminalSequences) {
  State s = loadedState(snapshot({program(1, "/tmp/\x1b]0;pwned\x07\x1b[2J", "pending")}));
  const Frame f = render(s, {80, 24});
  expectExactWidths(f);
  for (const auto& row : f.rows) {
    for (const auto& span : row.spans) {
      for (const char c : span.text) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
    }
  }
}

TEST(Render, ATinyTerminalGetsAShortNote) {
  const State s = household({30, 8});
  const Frame f = render(s, {30, 8});
  expectExactWidths(f);
  EXPECT_EQ(f.lines()[0], "Terminal too small for guard-\xE2\x80\xA6");
}

TEST(Render, FrameSizesFollowTheTerminalFrom80x24To120x40) {
  State s = household({120, 40});
  for (Size size : {Size{120, 40}, Size{80, 24}, Size{100, 30}, Size{40, 10}}) {
    update(s, Resized{size});
    for (int screen = 1; screen <= 4; ++screen) {
      update(s, KeyPressed{Key::ch(std::to_string(screen))});
      const Frame f = render(s, size);
      expectExactWidths(f);
    }
  }
}

}  // namespace
}  // namespace mailguard::tui
