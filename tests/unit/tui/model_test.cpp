#include "mailguard/tui/model.hpp"

#include <gtest/gtest.h>

#include "fixtures.hpp"

namespace mailguard::tui {
namespace {

using namespace testing;

std::vector<std::int64_t> programIds(const State& s) {
  std::vector<std::int64_t> ids;
  for (const auto* p : visiblePrograms(s)) ids.push_back(p->id);
  return ids;
}

State threePrograms() {
  return loadedState(snapshot({
      program(1, "/usr/bin/thunderbird", "approved", kMidnightUs + 3 * kHourUs, 40),
      program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + 1 * kHourUs, 2),
      program(3, "/usr/bin/msmtp", "denied", kMidnightUs + 4 * kHourUs, 7),
  }));
}

TEST(ProgramSorting, PutsPendingFirstThenQuarantinedThenByRecency) {
  State s = loadedState(snapshot({
      program(1, "/usr/bin/a", "approved", kMidnightUs + 5 * kHourUs),
      program(2, "/usr/bin/b", "pending", kMidnightUs + 1 * kHourUs),
      program(3, "/usr/bin/c", "quarantined", kMidnightUs + 2 * kHourUs),
      program(4, "/usr/bin/d", "pending", kMidnightUs + 3 * kHourUs),
      program(5, "/usr/bin/e", "denied", kMidnightUs + 4 * kHourUs),
  }));
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{4, 2, 3, 5, 1}));
}

TEST(ProgramSorting, SortKeyCyclesThroughLastSeenAttemptsAndPath) {
  State s = threePrograms();
  press(s, "s");
  EXPECT_EQ(s.sort, ProgramSort::LastSeen);
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{3, 1, 2}));
  press(s, "s");
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{1, 3, 2}));
  press(s, "s");
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{2, 3, 1}));  // by path
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->text, "Programs sorted by path");
  press(s, "s");
  EXPECT_EQ(s.sort, ProgramSort::PendingFirst);
}

TEST(Filtering, TypedTextKeepsMatchingProgramsCaseInsensitively) {
  State s = threePrograms();  // shown as 2 (pending), 3 (denied), 1 (approved)
  press(s, "/");
  EXPECT_TRUE(s.editingFilter);
  for (const char* c : {"U", "S", "R", "/", "B"}) press(s, c);
  EXPECT_EQ(s.filter, "USR/B");
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{3, 1}));
  press(s, KeyCode::Backspace);
  press(s, "X");
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{}));
  press(s, KeyCode::Backspace);
  for (const char* c : {"b", "i", "n", "/", "m"}) press(s, c);
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{3}));
  press(s, KeyCode::Enter);
  EXPECT_FALSE(s.editingFilter);
  EXPECT_EQ(s.filter, "USR/bin/m");
  press(s, KeyCode::Escape);  // clears a kept filter
  EXPECT_EQ(s.filter, "");
  EXPECT_EQ(programIds(s).size(), 3u);
}

TEST(Filtering, MatchesStateUserAndAttemptDestinations) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending");
  Program mta = program(5, "/usr/sbin/sendmail", "approved", kMidnightUs, 1, 0);
  State s = loadedState(snapshot({bot, mta}, {attempt(11, bot, "hold", "203.0.113.9", 25),
                                              attempt(12, mta, "allow", "127.0.0.1", 587)}));
  s.filter = "pend";
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{2}));
  s.filter = "root";
  EXPECT_EQ(programIds(s), (std::vector<std::int64_t>{5}));
  s.filter = "203.0.113";
  ASSERT_EQ(visibleAttempts(s).size(), 1u);
  EXPECT_EQ(visibleAttempts(s)[0]->id, 11);
  s.filter = "587";
  EXPECT_EQ(visibleAttempts(s)[0]->id, 12);
}

TEST(Filtering, BackspaceRemovesAWholeUtf8Character) {
  State s = threePrograms();
  press(s, "/");
  press(s, "m");
  press(s, "\xC3\xBC");  // ü
  press(s, KeyCode::Backspace);
  EXPECT_EQ(s.filter, "m");
}

TEST(Selection, SurvivesANewPendingProgramSortedAboveIt) {
  State s = threePrograms();  // order: 2 (pending), 3 (denied), 1 (approved)
  press(s, KeyCode::Down);
  EXPECT_EQ(s.selectedProgram, 3);
  EXPECT_EQ(selectedRow(s), 1);
  update(s, ProgramChanged{program(9, "/tmp/zombie", "pending", kMidnightUs + 5 * kHourUs)});
  EXPECT_EQ(s.selectedProgram, 3) << "selection follows the program, not the row";
  EXPECT_EQ(selectedRow(s), 2);
  ASSERT_NE(selectedProgram(s), nullptr);
  EXPECT_EQ(selectedProgram(s)->path, "/usr/bin/msmtp");
}

TEST(Selection, ANewVersionOfTheSelectedProgramTakesItsRowAndTheSelection) {
  State s = threePrograms();  // order: 2 (pending), 3 (denied), 1 (approved)
  EXPECT_EQ(s.selectedProgram, 2);
  Program v2 = program(9, "/home/alice/.cache/bot", "pending", kMidnightUs + 5 * kHourUs);
  update(s, ProgramChanged{v2});
  EXPECT_EQ(s.programs.size(), 3U) << "one row per program, not per content";
  EXPECT_EQ(findProgram(s, 2), nullptr);
  ASSERT_NE(findProgram(s, 9), nullptr);
  EXPECT_EQ(findProgram(s, 9)->versions, 2U);
  EXPECT_EQ(s.selectedProgram, 9);
  // The same version changing again keeps its count; another kind is another program.
  v2.state = "approved";
  update(s, ProgramChanged{v2});
  EXPECT_EQ(findProgram(s, 9)->versions, 2U);
  Program other = program(10, "/home/alice/.cache/bot", "pending");
  other.kind = "inline";
  update(s, ProgramChanged{other});
  EXPECT_EQ(s.programs.size(), 4U);
}

TEST(Selection, SurvivesSortingAndStateChanges) {
  State s = threePrograms();
  press(s, KeyCode::End);
  EXPECT_EQ(s.selectedProgram, 1);
  EXPECT_EQ(selectedRow(s), 2);
  press(s, "s");
  press(s, "s");  // by attempts: 1 (40), 3 (7), 2 (2)
  EXPECT_EQ(s.selectedProgram, 1);
  EXPECT_EQ(selectedRow(s), 0);
  update(s, ProgramChanged{program(1, "/usr/bin/thunderbird", "denied", kMidnightUs, 41)});
  EXPECT_EQ(s.selectedProgram, 1);
  EXPECT_EQ(findProgram(s, 1)->state, "denied");
}

TEST(Selection, MovesToTheNeighbourWhenTheSelectedProgramIsFilteredOut) {
  State s = threePrograms();  // 2, 3, 1
  press(s, KeyCode::Down);
  ASSERT_EQ(s.selectedProgram, 3);
  s.filter = "thunder";
  update(s, Tick{kMidnightUs + 2 * kHourUs, 0});
  EXPECT_EQ(s.selectedProgram, 1);
  s.filter = "nothing-matches";
  update(s, Tick{kMidnightUs + 2 * kHourUs, 0});
  EXPECT_EQ(selectedProgram(s), nullptr);
}

TEST(Selection, ScrollsToKeepTheSelectionOnScreen) {
  std::vector<Program> many;
  for (int i = 1; i <= 60; ++i) {
    many.push_back(
        program(i, "/usr/bin/p" + std::to_string(i), "approved", kMidnightUs + i * 1'000'000));
  }
  State s = loadedState(snapshot(many), {80, 24});
  const int rows = layoutFor(s, s.size).listRows;
  EXPECT_EQ(rows, 19);
  for (int i = 0; i < 25; ++i) press(s, KeyCode::Down);
  EXPECT_EQ(selectedRow(s), 25);
  EXPECT_EQ(s.programTop, 25 - rows + 1);
  press(s, KeyCode::Home);
  EXPECT_EQ(s.programTop, 0);
  press(s, KeyCode::PageDown);  // a page further, the cursor with it
  EXPECT_EQ(selectedRow(s), rows);
  EXPECT_EQ(s.programTop, rows);
  press(s, KeyCode::PageUp);
  EXPECT_EQ(selectedRow(s), 0);
  EXPECT_EQ(s.programTop, 0);
  press(s, "G");
  EXPECT_EQ(selectedRow(s), 59);
  EXPECT_EQ(s.programTop, 60 - rows);
  // Shrinking the terminal keeps it visible too.
  update(s, Resized{{80, 12}});
  const int small = layoutFor(s, s.size).listRows;
  EXPECT_GE(selectedRow(s), s.programTop);
  EXPECT_LT(selectedRow(s), s.programTop + small);
}

TEST(Selection, AttemptSelectionStaysOnTheSameAttemptAsNewOnesArrive) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending");
  State s = loadedState(
      snapshot({bot}, {attempt(3, bot, "hold"), attempt(2, bot, "hold"), attempt(1, bot, "hold")}));
  press(s, "2");
  EXPECT_EQ(s.screen, Screen::Attempts);
  press(s, KeyCode::Down);
  EXPECT_EQ(s.selectedAttempt, 2);
  update(s, AttemptRecorded{attempt(4, bot, "hold")});
  EXPECT_EQ(s.selectedAttempt, 2);
  EXPECT_EQ(selectedRow(s), 2);
}

TEST(Actions, ApproveAsksForConfirmationBeforeWideningPermissions) {
  State s = threePrograms();  // row 0: the pending bot
  Effects fx = press(s, "a");
  EXPECT_TRUE(fx.commands.empty());
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->question, "Approve so it may send mail?");
  EXPECT_EQ(s.confirm->subject, "/home/alice/.cache/bot");
  press(s, "j");  // other keys do nothing while asking
  EXPECT_TRUE(s.confirm);
  EXPECT_EQ(s.selectedProgram, 2);
  fx = press(s, "y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Approve);
  EXPECT_EQ(fx.commands[0].programId, 2);
  EXPECT_FALSE(s.confirm);
}

TEST(Actions, TheQuickKeyDoesNotApproveInlineCode) {
  Program py = program(9, "/usr/bin/python3.11", "pending", kMidnightUs + 6 * kHourUs, 3);
  py.kind = "inline";
  State s = loadedState(snapshot({py}));
  const Effects fx = press(s, "a");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_FALSE(s.confirm);
  ASSERT_TRUE(s.message);
  EXPECT_NE(s.message->text.find("guardctl approve --inline /usr/bin/python3.11 --user NAME"),
            std::string::npos)
      << s.message->text;
}

TEST(Actions, AnsweringNoChangesNothing) {
  State s = threePrograms();
  press(s, "a");
  const Effects fx = press(s, "n");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_FALSE(s.confirm);
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->text, "Cancelled: nothing was changed");
}

TEST(Actions, DenyAsksNamingTheProgramLikeApproveAndForget) {
  State s = threePrograms();  // row 0: the pending bot
  Effects fx = press(s, "d");
  EXPECT_TRUE(fx.commands.empty()) << "one key must not deny without asking";
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->question, "Deny so its mail connections are refused?");
  EXPECT_EQ(s.confirm->subject, "/home/alice/.cache/bot");
  fx = press(s, "y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Deny);
  EXPECT_EQ(fx.commands[0].programId, 2);
  EXPECT_EQ(s.message->text, "Denying /home/alice/.cache/bot... waiting for authorization");
}

TEST(Actions, DenyNamesHowManyHeldMessagesItWillDelete) {
  auto bot = program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + 1 * kHourUs, 2);
  bot.heldMessages = 20;
  State s = loadedState(snapshot({bot}));
  press(s, "d");
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->question, "Deny and DELETE its 20 held messages?");
  EXPECT_EQ(s.confirm->subject, "/home/alice/.cache/bot");
  const Effects fx = press(s, "y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Deny);
  // One message is one.
  bot.heldMessages = 1;
  State one = loadedState(snapshot({bot}));
  press(one, "d");
  ASSERT_TRUE(one.confirm);
  EXPECT_EQ(one.confirm->question, "Deny and DELETE its 1 held message?");
}

TEST(LiveUpdates, AProgramChangeReloadsTheRulesForTheDetails) {
  State s = threePrograms();
  Loaded l = snapshot({program(1, "/usr/bin/thunderbird", "approved")});
  Rule r;
  r.id = 1;
  r.action = "approve";
  r.path = "/usr/bin/thunderbird";
  l.rules = {r};
  update(s, l);
  ASSERT_NE(ruleFor(s, *findProgram(s, 1)), nullptr);
  Effects fx = update(s, ProgramChanged{program(1, "/usr/bin/thunderbird", "approved")});
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadRules);
  r.onlyTo = {"192.0.2.7:587"};
  update(s, RulesLoaded{{r}});
  ASSERT_NE(ruleFor(s, *findProgram(s, 1)), nullptr);
  EXPECT_EQ(ruleFor(s, *findProgram(s, 1))->onlyTo, std::vector<std::string>{"192.0.2.7:587"});
  update(s, RulesLoaded{{}});
  EXPECT_EQ(ruleFor(s, *findProgram(s, 1)), nullptr);
}

TEST(Actions, DenyingAnApprovedProgramSaysItIsApproved) {
  State s = threePrograms();
  press(s, KeyCode::End);  // thunderbird, approved
  press(s, "d");
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->question, "Deny an APPROVED program (its mail will be refused)?");
  EXPECT_EQ(s.confirm->subject, "/usr/bin/thunderbird");
  EXPECT_TRUE(press(s, "n").commands.empty());
  EXPECT_EQ(findProgram(s, 1)->state, "approved");
}

TEST(Selection, StaysOnTheChosenProgramAcrossResortsAndRefreshes) {
  State s = threePrograms();  // 2 (pending), 3 (denied), 1 (approved)
  press(s, KeyCode::End);
  ASSERT_EQ(s.selectedProgram, 1);
  // A refresh where every row moved: a new pending program on top and 2 now approved.
  Loaded again = snapshot({
      program(1, "/usr/bin/thunderbird", "approved", kMidnightUs + 3 * kHourUs, 40),
      program(2, "/home/alice/.cache/bot", "approved", kMidnightUs + 1 * kHourUs, 2),
      program(3, "/usr/bin/msmtp", "denied", kMidnightUs + 4 * kHourUs, 7),
      program(4, "/usr/bin/swaks", "pending", kMidnightUs + 5 * kHourUs, 1),
  });
  update(s, again);
  EXPECT_EQ(s.selectedProgram, 1);
  press(s, "s");  // last seen: 4, 3, 1, 2
  EXPECT_EQ(selectedRow(s), 2);
  EXPECT_EQ(s.selectedProgram, 1);
  // A filter typed on another screen hides it for a while: the cursor rests on a
  // neighbour and comes back to the chosen program when the filter is cleared.
  press(s, "2");
  s.filter = "swaks";
  update(s, Tick{kMidnightUs + 6 * kHourUs, 0});
  EXPECT_EQ(s.selectedProgram, 4);
  s.filter.clear();
  update(s, Tick{kMidnightUs + 6 * kHourUs, 0});
  EXPECT_EQ(s.selectedProgram, 1) << "the selection followed a row, not the program";
  press(s, "1");
  press(s, "d");
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->programId, 1);
  EXPECT_EQ(s.confirm->subject, "/usr/bin/thunderbird");
}

TEST(Selection, AProgramGoneForGoodHandsTheChoiceToItsNeighbour) {
  State s = threePrograms();
  press(s, KeyCode::Down);  // 3
  update(s, snapshot({
                program(1, "/usr/bin/thunderbird", "approved", kMidnightUs + 3 * kHourUs, 40),
                program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + 1 * kHourUs, 2),
            }));
  EXPECT_EQ(s.selectedProgram, 1);
  EXPECT_EQ(s.chosenProgram, 1);
}

TEST(Actions, ForgetAsksFirstAndReloadsAfterwards) {
  State s = threePrograms();
  press(s, "f");
  ASSERT_TRUE(s.confirm);
  Effects fx = press(s, "Y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Forget);
  fx = update(s, ActionSucceeded{Action::Forget, 2, std::nullopt, true});
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::Reload);
}

TEST(Actions, RefusalShowsHowToGetPermission) {
  State s = threePrograms();
  dbus::ClientError e{dbus::ClientError::Kind::NotAuthorized,
                      "changing policy needs root, or ... group 'mailguard' ...",
                      "org.mailguard.Error.NotAuthorized"};
  update(s, ActionFailed{Action::Approve, 2, e});
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->kind, Message::Kind::Error);
  EXPECT_EQ(s.message->text,
            "Not authorized: changing policy needs root, or ... group 'mailguard' ...");
}

TEST(Actions, SuccessUpdatesTheProgramAndSaysSo) {
  State s = threePrograms();
  update(s, ActionSucceeded{
                Action::Approve, 2,
                program(2, "/home/alice/.cache/bot", "approved", kMidnightUs + kHourUs, 2), false});
  EXPECT_EQ(findProgram(s, 2)->state, "approved");
  EXPECT_EQ(s.message->text, "Approved: /home/alice/.cache/bot may send mail");
}

TEST(Actions, FromTheAttemptsScreenActOnTheAttemptsProgram) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending");
  State s = loadedState(snapshot({bot}, {attempt(7, bot, "hold")}));
  press(s, KeyCode::Tab);
  EXPECT_EQ(s.screen, Screen::Attempts);
  press(s, "d");
  const Effects fx = press(s, "y");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].programId, 2);
}

TEST(Actions, AreRefusedWhileDisconnected) {
  State s = threePrograms();
  update(s, Disconnected{"guardd is not running"});
  const Effects fx = press(s, "d");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_EQ(s.message->kind, Message::Kind::Error);
}

TEST(Connection, DisconnectKeepsLastDataAndReloadSaysReconnected) {
  State s = threePrograms();
  press(s, "a");
  update(s, Disconnected{"guardd is not running"});
  EXPECT_FALSE(s.connected);
  EXPECT_FALSE(s.confirm) << "a question about a program must not outlive the connection";
  EXPECT_EQ(s.programs.size(), 3u);
  update(s, snapshot({program(1, "/usr/bin/thunderbird", "approved")}));
  EXPECT_TRUE(s.connected);
  EXPECT_EQ(s.programs.size(), 1u);
  EXPECT_EQ(s.message->text, "Reconnected to guardd");
}

TEST(LiveUpdates, AttemptSignalsCountTodayAndUpdateTheProgram) {
  Program bot =
      program(2, "/home/alice/.cache/bot", "pending", kMidnightUs + kHourUs + 1'000'000, 1);
  State s = loadedState(snapshot({bot}, {attempt(1, bot, "hold")}));
  EXPECT_EQ(s.today.held, 1u);
  update(s, AttemptRecorded{attempt(1, bot, "hold")});  // raced with the load: ignored
  EXPECT_EQ(s.attempts.size(), 1u);
  EXPECT_EQ(s.today.held, 1u);
  update(s, AttemptRecorded{attempt(2, bot, "reject", "198.51.100.7")});
  EXPECT_EQ(s.attempts.size(), 2u);
  EXPECT_EQ(s.attempts.front().id, 2);
  EXPECT_EQ(s.today.rejected, 1u);
  EXPECT_EQ(findProgram(s, 2)->attempts, 2);
  EXPECT_EQ(distinctDestinations(s).at(2), 2u);
}

TEST(LiveUpdates, FirstAttemptOfANewProgramIsNotCountedTwice) {
  State s = loadedState(snapshot({}));
  Program fresh = program(8, "/tmp/x", "pending", 0, 1);
  Attempt first = attempt(1, fresh, "hold");
  fresh.lastAttemptUs = first.timeUs;  // guardd's snapshot already includes the attempt
  update(s, ProgramChanged{fresh});
  update(s, AttemptRecorded{first});
  EXPECT_EQ(findProgram(s, 8)->attempts, 1);
  EXPECT_EQ(s.selectedProgram, 8) << "the first program to appear is selected";
}

TEST(LiveUpdates, KeepsAtMostTheNewestAttempts) {
  Program bot = program(2, "/home/alice/.cache/bot", "denied");
  State s = loadedState(snapshot({bot}));
  for (int i = 1; i <= static_cast<int>(kMaxAttempts) + 5; ++i) {
    update(s, AttemptRecorded{attempt(i, bot, "reject")});
  }
  EXPECT_EQ(s.attempts.size(), kMaxAttempts);
  EXPECT_EQ(s.attempts.front().id, static_cast<std::int64_t>(kMaxAttempts) + 5);
  EXPECT_EQ(s.today.rejected, kMaxAttempts + 5);
}

TEST(Today, CountsStartAgainAtLocalMidnight) {
  Program bot = program(2, "/home/alice/.cache/bot", "pending");
  State s = loadedState(snapshot({bot}, {attempt(1, bot, "hold")}));
  EXPECT_EQ(s.today.held, 1u);
  update(s, Tick{kMidnightUs + 25 * kHourUs, 0});
  EXPECT_EQ(s.today.held, 0u);
  EXPECT_EQ(localDayStart(kMidnightUs + 25 * kHourUs, 0), kMidnightUs + 24 * kHourUs);
  // UTC+2: local midnight is 22:00 UTC the day before.
  EXPECT_EQ(localDayStart(kMidnightUs + kHourUs, 7200), kMidnightUs - 2 * kHourUs);
}

TEST(Keys, ScreensHelpDetailsAndQuit) {
  State s = threePrograms();
  press(s, "3");
  EXPECT_EQ(s.screen, Screen::Alerts);
  press(s, KeyCode::Tab);
  EXPECT_EQ(s.screen, Screen::Audit);
  press(s, KeyCode::Tab);
  EXPECT_EQ(s.screen, Screen::Outside);
  press(s, KeyCode::Tab);
  EXPECT_EQ(s.screen, Screen::Programs);
  press(s, KeyCode::BackTab);
  EXPECT_EQ(s.screen, Screen::Outside);
  press(s, KeyCode::BackTab);
  EXPECT_EQ(s.screen, Screen::Audit);
  press(s, "1");
  press(s, "?");
  EXPECT_TRUE(s.help);
  EXPECT_FALSE(press(s, "q").quit) << "q closes the help first";
  EXPECT_FALSE(s.help);
  Effects fx = press(s, KeyCode::Enter);
  EXPECT_TRUE(s.details);
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadProgramAttempts);
  EXPECT_EQ(fx.commands[0].programId, 2);
  press(s, KeyCode::Escape);
  EXPECT_FALSE(s.details);
  EXPECT_TRUE(press(s, "q").quit);
}

TEST(Layout, DetailsPaneTakesRowsFromTheList) {
  State s = threePrograms();
  Layout closed = layoutFor(s, {80, 24});
  EXPECT_EQ(closed.listRows, 19);
  EXPECT_EQ(closed.messageRow, 22);
  EXPECT_EQ(closed.keysRow, 23);
  s.details = true;
  Layout open = layoutFor(s, {80, 24});
  EXPECT_EQ(open.detailsRows, 9);
  EXPECT_EQ(open.listRows, 10);
  EXPECT_EQ(open.detailsTop, 13);
}

TEST(Alerts, LoadedNewestFirstAndRaisedOnesArriveAtOnceHighlighted) {
  State s = threePrograms();
  const Program bot = *findProgram(s, 2);
  Loaded l = snapshot(s.programs);
  l.alerts = {alert(3, bot, "soft", true)};
  update(s, l);
  press(s, "3");
  EXPECT_EQ(s.selectedAlert, 3);
  EXPECT_TRUE(s.newAlerts.empty()) << "alerts from the load are not news";
  const Effects fx = update(s, AlertRaised{alert(5, bot, "hard")});
  EXPECT_TRUE(fx.redraw);
  ASSERT_EQ(visibleAlerts(s).size(), 2u);
  EXPECT_EQ(visibleAlerts(s)[0]->id, 5);
  EXPECT_TRUE(s.newAlerts.contains(5));
  EXPECT_EQ(unacknowledgedAlerts(s), 1u);
  EXPECT_EQ(s.selectedAlert, 3) << "the selection stays on its alert";
  update(s, AlertRaised{alert(5, bot, "hard")});  // a repeat is not a second alert
  EXPECT_EQ(s.alerts.size(), 2u);
}

TEST(Alerts, AcknowledgeKeySendsTheCallAndMarksTheAlert) {
  State s = threePrograms();
  const Program bot = *findProgram(s, 2);
  update(s, AlertRaised{alert(5, bot, "hard")});
  press(s, "3");
  Effects fx = press(s, "K");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::AckAlert);
  EXPECT_EQ(fx.commands[0].alertId, 5);
  update(s, ActionSucceeded{Action::Acknowledge, 2, std::nullopt, false, 5});
  EXPECT_TRUE(s.alerts[0].acknowledged);
  EXPECT_FALSE(s.newAlerts.contains(5));
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->text, "Acknowledged alert 5");
  fx = press(s, "K");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_EQ(s.message->text, "Already acknowledged: alert 5");
}

TEST(Alerts, RefusedAcknowledgeShowsNotAllowed) {
  State s = threePrograms();
  update(s, AlertRaised{alert(5, *findProgram(s, 2), "soft")});
  press(s, "3");
  press(s, "K");
  update(s, ActionFailed{Action::Acknowledge, 2,
                         dbus::ClientError{dbus::ClientError::Kind::NotAuthorized, "no", {}}, 5});
  ASSERT_TRUE(s.message);
  EXPECT_EQ(s.message->kind, Message::Kind::Error);
  EXPECT_EQ(s.message->text, "Not authorized: no");
  EXPECT_FALSE(s.alerts[0].acknowledged);
  EXPECT_TRUE(s.newAlerts.contains(5));
}

TEST(Alerts, ApproveFromAnAlertAsksAboutTheQuarantinedProgram) {
  State s = loadedState(snapshot({program(4, "/home/alice/bot", "quarantined")}));
  update(s, AlertRaised{alert(5, s.programs[0], "hard")});
  press(s, "3");
  press(s, "a");
  ASSERT_TRUE(s.confirm);
  EXPECT_EQ(s.confirm->programId, 4);
  EXPECT_EQ(s.confirm->question, "Approve a program quarantined as a suspected spam bot?");
}

TEST(Audit, SwitchingLoadsAndRunKeyRunsOnceAtATime) {
  State s = threePrograms();
  Effects fx = press(s, "4");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadAudit);
  fx = press(s, "R");
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::RunAudit);
  EXPECT_TRUE(auditRunning(s));
  fx = press(s, "R");
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_EQ(s.message->text, "An audit is already running");
  AuditReport r;
  r.finishedUs = kMidnightUs;
  r.results = {auditResult("127.0.0.1", 25, "loopback", "closed")};
  update(s, AuditLoaded{r});
  EXPECT_FALSE(auditRunning(s));
  EXPECT_EQ(s.message->text, "Audit finished: 1 mail server checked");
  ASSERT_NE(selectedAuditResult(s), nullptr);
  EXPECT_EQ(selectedAuditResult(s)->port, 25);
}

TEST(Audit, AnAuditRunElsewhereIsFetchedWhenItsSignalArrives) {
  State s = threePrograms();
  AuditReport old;
  old.finishedUs = kMidnightUs;
  old.results = {auditResult("127.0.0.1", 25, "loopback", "closed")};
  update(s, AuditLoaded{old});
  // `guardctl audit --run` ended: the screen must not wait for `r`.
  Effects fx = update(s, AuditFinished{kMidnightUs + kHourUs});
  ASSERT_EQ(fx.commands.size(), 1u);
  EXPECT_EQ(fx.commands[0].kind, Command::Kind::LoadAudit);
  // The audit already shown: nothing to fetch.
  EXPECT_TRUE(update(s, AuditFinished{kMidnightUs}).commands.empty());
  // Our own run answers with its report: no second call.
  press(s, "4");
  press(s, "R");
  EXPECT_TRUE(update(s, AuditFinished{kMidnightUs + 2 * kHourUs}).commands.empty());
  // Disconnected: the reload after reconnecting brings it.
  State gone = threePrograms();
  update(gone, Disconnected{"guardd is not running"});
  EXPECT_TRUE(update(gone, AuditFinished{kMidnightUs}).commands.empty());
}

TEST(Outside, ACheckRunElsewhereIsShownWhenItsSignalArrives) {
  State s = threePrograms();
  press(s, "5");
  update(s, OutsideLoaded{R"({"time":null,"blocklists":[]})"});
  update(s, OutsideFailed{dbus::ClientError{dbus::ClientError::Kind::Failed, "timeout", {}}});
  // `guardctl outside --run`, or the daily check: the report comes with the signal, so the
  // screen needs no key and no second call.
  const std::string report = R"({"time":"2026-12-07T15:00:00Z","public_address":"198.18.0.7"})";
  Effects fx = update(s, OutsideChecked{report});
  EXPECT_TRUE(fx.redraw);
  EXPECT_TRUE(fx.commands.empty());
  EXPECT_EQ(s.outside, report);
  EXPECT_EQ(s.outsideError, "");
  // On another screen too: the Outside screen shows it when opened.
  press(s, "1");
  update(s, OutsideChecked{"{}"});
  EXPECT_EQ(s.outside, "{}");
}

TEST(Audit, FailedRunIsReportedAndCanBeRetried) {
  State s = threePrograms();
  press(s, "4");
  press(s, "R");
  update(s, AuditFailed{dbus::ClientError{dbus::ClientError::Kind::Failed, "timed out", {}}, true});
  EXPECT_FALSE(auditRunning(s));
  EXPECT_EQ(s.message->text, "Could not run the audit: timed out");
  EXPECT_EQ(press(s, "R").commands.size(), 1u);
}

}  // namespace
}  // namespace mailguard::tui
