// guard-tui's model: policy calls in flight, the Attempts/Alerts paging line and filters,
// and the approve-with-options form.
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "mailguard/tui/view.hpp"

namespace mailguard::tui {
namespace {

using testing::alert;
using testing::attempt;
using testing::kHourUs;
using testing::kMidnightUs;
using testing::loadedState;
using testing::press;
using testing::program;
using testing::snapshot;

State oneHeld() {
  const auto swaks = program(7, "/usr/bin/swaks", "pending", kMidnightUs + kHourUs, 1);
  return loadedState(snapshot({swaks}, {attempt(1, swaks, "hold")}));
}

// 200 attempts of two programs, every fourth refused, every other held.
State twoHundredAttempts(Size size = {80, 24}) {
  const auto bot = program(1, "/home/alice/.cache/bot", "pending");
  const auto tb = program(2, "/usr/bin/thunderbird", "approved");
  std::vector<Attempt> attempts;
  for (int i = 200; i >= 1; --i) {  // newest first
    const auto& p = i % 2 == 0 ? bot : tb;
    const char* verdict = i % 4 == 0 ? "reject" : i % 2 == 0 ? "hold" : "allow";
    attempts.push_back(attempt(i, p, verdict, "198.51.100." + std::to_string(i % 50)));
  }
  State s = loadedState(snapshot({bot, tb}, attempts), size);
  press(s, "2");
  return s;
}

TEST(PolicyCallsInFlight, ApprovingSaysItWaitsAndTheRowIsBusyUntilTheAnswer) {
  State s = oneHeld();
  press(s, "a");
  Effects fx = press(s, "y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Approve);
  EXPECT_EQ(waitingText(s), "approving /usr/bin/swaks... waiting for authorization");

  // The screen keeps working: moving and switching screens are fine meanwhile.
  press(s, KeyCode::Down);
  press(s, "2");
  press(s, "1");
  EXPECT_EQ(waitingText(s), "approving /usr/bin/swaks... waiting for authorization");

  // A second action on the same program sends nothing and says why.
  fx = press(s, "d");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_FALSE(s.confirm);
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->text, "Busy: still approving /usr/bin/swaks... waiting for authorization");
  fx = press(s, "A");
  EXPECT_FALSE(s.form);

  auto approved = program(7, "/usr/bin/swaks", "approved", kMidnightUs + kHourUs, 1);
  update(s, ActionSucceeded{Action::Approve, 7, approved, false, 0});
  EXPECT_EQ(waitingText(s), "");
  EXPECT_EQ(s.message->text, "Approved: /usr/bin/swaks may send mail");
  press(s, "d");
  EXPECT_TRUE(s.confirm) << "the row is free again";
}

TEST(PolicyCallsInFlight, ARefusalReplacesTheWaitingLine) {
  State s = oneHeld();
  press(s, "a");
  press(s, "y");
  update(s, ActionFailed{Action::Approve, 7,
                         dbus::ClientError{
                             dbus::ClientError::Kind::InvalidArgument, "invalid argument: no", {}},
                         0});
  EXPECT_EQ(waitingText(s), "");
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->kind, Message::Kind::Error);
  EXPECT_EQ(s.message->text, "Could not approve: invalid argument: no");
}

TEST(PolicyCallsInFlight, LosingGuarddForgetsTheCallsAndSaysSo) {
  State s = oneHeld();
  press(s, "a");
  press(s, "y");
  update(s, Disconnected{"guardd is not running"});
  EXPECT_EQ(waitingText(s), "");
  EXPECT_TRUE(s.inFlight.empty());
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->kind, Message::Kind::Error);
  EXPECT_NE(s.message->text.find("Lost guardd while approving /usr/bin/swaks"), std::string::npos)
      << s.message->text;
}

TEST(PolicyCallsInFlight, AcknowledgingOneAlertTwiceSendsOnce) {
  const auto bot = program(1, "/home/alice/.cache/bot", "quarantined");
  Loaded l = snapshot({bot});
  l.alerts = {alert(3, bot, "hard")};
  State s = loadedState(l);
  press(s, "3");
  EXPECT_EQ(press(s, "K").commands.size(), 1u);
  EXPECT_EQ(waitingText(s), "acknowledging alert 3... waiting for authorization");
  EXPECT_TRUE(press(s, "K").commands.empty());
  EXPECT_EQ(s.message->text, "Busy: still acknowledging alert 3... waiting for authorization");
  update(s, ActionSucceeded{Action::Acknowledge, 1, std::nullopt, false, 3});
  EXPECT_EQ(waitingText(s), "");
}

TEST(Paging, TheWindowSaysWhichRowsOfHowManyAreShown) {
  State s = twoHundredAttempts();
  const int rows = layoutFor(s, s.size).listRows;
  ListWindow w = listWindow(s);
  EXPECT_EQ(w.first, 1);
  EXPECT_EQ(w.last, rows);
  EXPECT_EQ(w.total, 200);
  press(s, KeyCode::PageDown);
  press(s, KeyCode::PageDown);
  w = listWindow(s);
  EXPECT_EQ(w.first, 2 * rows + 1);
  EXPECT_EQ(w.last, 3 * rows);
  EXPECT_EQ(selectedRow(s), 2 * rows);
  press(s, KeyCode::PageUp);
  EXPECT_EQ(listWindow(s).first, rows + 1);
  press(s, KeyCode::End);
  w = listWindow(s);
  EXPECT_EQ(w.last, 200);
  EXPECT_EQ(w.first, 200 - rows + 1);
  EXPECT_EQ(selectedAttempt(s)->id, 1) << "the oldest attempt is last";
  press(s, KeyCode::Home);
  EXPECT_EQ(listWindow(s).first, 1);
  EXPECT_EQ(selectedAttempt(s)->id, 200);
}

TEST(Paging, VerdictFilterCyclesHeldRefusedAll) {
  State s = twoHundredAttempts();
  press(s, "v");
  EXPECT_EQ(s.verdictFilter, VerdictFilter::Held);
  auto shown = visibleAttempts(s);
  EXPECT_EQ(shown.size(), 50u);
  for (const auto* a : shown) EXPECT_EQ(a->verdict, "hold");
  EXPECT_EQ(listWindow(s).total, 50);
  press(s, "v");
  EXPECT_EQ(s.verdictFilter, VerdictFilter::Refused);
  shown = visibleAttempts(s);
  EXPECT_EQ(shown.size(), 50u);
  for (const auto* a : shown) EXPECT_EQ(a->verdict, "reject");
  press(s, "v");
  EXPECT_EQ(s.verdictFilter, VerdictFilter::All);
  EXPECT_EQ(visibleAttempts(s).size(), 200u);
}

TEST(Paging, TextAndVerdictFiltersCombine) {
  State s = twoHundredAttempts();
  press(s, "/");
  for (const char c : std::string("thunderbird")) press(s, std::string(1, c));
  press(s, KeyCode::Enter);
  EXPECT_EQ(visibleAttempts(s).size(), 100u);
  press(s, "v");  // held: thunderbird's are all allowed
  EXPECT_TRUE(visibleAttempts(s).empty());
  EXPECT_EQ(listWindow(s).total, 0);
  press(s, KeyCode::Escape);  // clears the text filter
  EXPECT_EQ(visibleAttempts(s).size(), 50u);
}

TEST(ApproveForm, IsPrefilledWithTheVariablesTheHeldAttemptNamedAndSendsOnlyOnEnter) {
  const auto py = program(9, "/usr/bin/python3.11", "approved");
  auto held = attempt(5, py, "hold");
  held.reason =
      "approval void: PYTHONPATH set (/home/alice/lib), option -i; approve with --allow-env "
      "PYTHONPATH,-i to allow";
  State s = loadedState(snapshot({py}, {held}));
  EXPECT_EQ(suggestedAllowEnv(s, 9), (std::vector<std::string>{"PYTHONPATH", "-i"}));
  Effects fx = press(s, "A");
  EXPECT_TRUE(fx.commands.empty());
  ASSERT_TRUE(s.form);
  EXPECT_EQ(s.form->allowEnv, "PYTHONPATH, -i");
  EXPECT_EQ(s.form->onlyTo, "");
  for (const char c : std::string("192.0.2.7:587 ,, [2001:db8::7]")) {
    EXPECT_TRUE(press(s, std::string(1, c)).commands.empty());
  }
  press(s, KeyCode::Tab);
  press(s, KeyCode::Backspace);
  press(s, KeyCode::Backspace);
  press(s, KeyCode::Backspace);  // "PYTHONPATH, -i" -> "PYTHONPATH,"
  press(s, KeyCode::Tab);        // back to "only to"
  press(s, "x");
  press(s, KeyCode::Backspace);
  fx = press(s, KeyCode::Enter);
  EXPECT_FALSE(s.form);
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Approve);
  EXPECT_EQ(fx.commands[0].programId, 9);
  EXPECT_EQ(fx.commands[0].onlyTo, (std::vector<std::string>{"192.0.2.7:587", "[2001:db8::7]"}));
  EXPECT_EQ(fx.commands[0].allowEnv, (std::vector<std::string>{"PYTHONPATH"}));
  EXPECT_EQ(waitingText(s), "approving /usr/bin/python3.11... waiting for authorization");
}

TEST(ApproveForm, EscapeSendsNothing) {
  State s = oneHeld();
  press(s, "A");
  ASSERT_TRUE(s.form);
  EXPECT_EQ(s.form->allowEnv, "") << "the plain held attempt named no variables";
  press(s, "1");
  press(s, "q");  // typed into the field, not quitting
  const Effects fx = press(s, KeyCode::Escape);
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_FALSE(fx.quit);
  EXPECT_FALSE(s.form);
  EXPECT_EQ(s.message->text, "Cancelled: nothing was changed");
  EXPECT_TRUE(s.inFlight.empty());
}

TEST(ApproveForm, SplitListDropsBlanksAndSpaces) {
  EXPECT_EQ(splitList(" a, b ,,c ,"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(splitList("  ").empty());
}

TEST(PagingRender, TheMessageLineSaysWhichRowsOfHowManyAndTheVerdictShown) {
  State s = twoHundredAttempts({80, 24});
  auto lines = render(s, s.size).lines();
  const int rows = layoutFor(s, s.size).listRows;
  // Right-aligned, one space from the edge.
  const std::string first = "rows 1-" + std::to_string(rows) + " of 200";
  EXPECT_EQ(lines[22], std::string(79 - first.size(), ' ') + first);
  press(s, "v");
  press(s, KeyCode::End);
  lines = render(s, s.size).lines();
  const std::string want = "rows " + std::to_string(50 - rows + 1) + "-50 of 50, held only";
  EXPECT_EQ(lines[22].substr(lines[22].size() - want.size()), want) << lines[22];
}

TEST(PagingRender, ThousandsAreGroupedAndAFullPageSaysThereIsMore) {
  const auto bot = program(1, "/home/alice/.cache/bot", "pending");
  std::vector<Attempt> attempts;
  for (int i = static_cast<int>(kAttemptPage); i >= 1; --i) {
    attempts.push_back(attempt(i + 5000, bot, "hold"));
  }
  State s = loadedState(snapshot({bot}, attempts));
  press(s, "2");
  auto lines = render(s, s.size).lines();
  EXPECT_NE(lines[22].find("rows 1-19 of 1,000+"), std::string::npos) << lines[22];
  press(s, KeyCode::End);
  lines = render(s, s.size).lines();
  EXPECT_NE(lines[22].find("rows 982-1,000 of 1,000+, loading older"), std::string::npos)
      << lines[22];
}

TEST(Paging, ReachingTheOldestAttemptInMemoryLoadsThePageBeforeIt) {
  const auto bot = program(1, "/home/alice/.cache/bot", "pending");
  std::vector<Attempt> attempts;
  for (int i = static_cast<int>(kAttemptPage); i >= 1; --i) {
    attempts.push_back(attempt(i + 5000, bot, "hold"));
  }
  State s = loadedState(snapshot({bot}, attempts));
  press(s, "2");
  EXPECT_TRUE(s.olderAttempts);
  EXPECT_TRUE(press(s, KeyCode::PageDown).commands.empty()) << "far from the end";
  Effects fx = press(s, KeyCode::End);
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadOlderAttempts);
  EXPECT_EQ(fx.commands[0].beforeId, 5001);
  EXPECT_TRUE(press(s, KeyCode::End).commands.empty()) << "one request at a time";

  // guardd has 300 older ones: all there, nothing older.
  std::vector<Attempt> older;
  for (int i = 5000; i > 4700; --i) older.push_back(attempt(i, bot, "hold"));
  update(s, OlderAttemptsLoaded{5001, older, {}});
  EXPECT_FALSE(s.loadingOlder);
  EXPECT_FALSE(s.olderAttempts);
  EXPECT_EQ(s.attempts.size(), 1300u);
  EXPECT_EQ(s.attempts.back().id, 4701);
  EXPECT_EQ(selectedAttempt(s)->id, 5001) << "the selection stays where it was";
  EXPECT_EQ(listWindow(s).total, 1300);
  press(s, KeyCode::End);
  EXPECT_EQ(selectedAttempt(s)->id, 4701);
  EXPECT_TRUE(press(s, KeyCode::End).commands.empty()) << "nothing older to ask for";
}

TEST(Paging, AnOlderPageForAListThatWasReloadedMeanwhileIsDropped) {
  const auto bot = program(1, "/home/alice/.cache/bot", "pending");
  std::vector<Attempt> attempts;
  for (int i = static_cast<int>(kAttemptPage); i >= 1; --i)
    attempts.push_back(attempt(i, bot, "hold"));
  State s = loadedState(snapshot({bot}, attempts));
  press(s, "2");
  press(s, KeyCode::End);
  update(s, OlderAttemptsLoaded{999, {attempt(998, bot, "hold")}, {}});
  EXPECT_EQ(s.attempts.size(), kAttemptPage);
  update(s, OlderAttemptsLoaded{1, {}, "guardd did not answer in time"});
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->text, "Could not load older attempts: guardd did not answer in time");
}

TEST(PagingRender, AlertsSayWhenMoreThanTheLoadedOnesMayExist) {
  const auto bot = program(1, "/home/alice/.cache/bot", "quarantined");
  Loaded l = snapshot({bot});
  for (int i = static_cast<int>(kMaxAlerts); i >= 1; --i) l.alerts.push_back(alert(i, bot, "soft"));
  State s = loadedState(l);
  press(s, "3");
  auto lines = render(s, s.size).lines();
  EXPECT_NE(lines[22].find("rows 1-19 of 200+"), std::string::npos) << lines[22];
  l.alerts.resize(3);
  s = loadedState(l);
  press(s, "3");
  lines = render(s, s.size).lines();
  EXPECT_EQ(lines[22].substr(lines[22].size() - 13), "rows 1-3 of 3") << lines[22];
}

TEST(ApproveFormRender, ShowsBothFieldsAndTheKeys) {
  const auto py = program(9, "/usr/bin/python3.11", "approved");
  auto held = attempt(5, py, "hold");
  held.reason = "approval void: PYTHONPATH set (/x); approve with --allow-env PYTHONPATH to allow";
  State s = loadedState(snapshot({py}, {held}));
  press(s, "A");
  press(s, "m");
  const auto lines = render(s, s.size).lines();
  EXPECT_EQ(lines[20], " Approve with options: /usr/bin/python3.11 (nothing is sent until Enter)");
  EXPECT_EQ(lines[21], " > only to (host[:port], comma separated): m_");
  EXPECT_EQ(lines[22], "   allow variables: PYTHONPATH");
  EXPECT_EQ(lines[23], " Tab next field  Enter approve  Esc cancel");
}

TEST(PolicyCallsRender, TheWaitingLineStaysWhileKeysAreUsed) {
  State s = oneHeld();
  press(s, "a");
  press(s, "y");
  press(s, KeyCode::Down);  // clears the message; the waiting line remains
  const auto lines = render(s, s.size).lines();
  EXPECT_EQ(lines[22], " approving /usr/bin/swaks... waiting for authorization");
}

}  // namespace
}  // namespace mailguard::tui
