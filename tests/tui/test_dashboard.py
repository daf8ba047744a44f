"""Guard-tui end to end. tmux runs the real binary against a real guardd on
a private system-style bus (tests/integration's fixtures), inside a fresh network
namespace (ctest starts each test under `unshare -n`). Keys go in with send-keys; the
tests wait, with a deadline, until capture-pane shows the expected text."""
import json
import os
import re
import subprocess
import sys
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
from busfixture import BUS_NAME, IFACE, OBJECT, GuarddOnBusTest  # noqa: E402
from mgtest import BUILD, CONNECT, Listener, connect, copy_program, wait_for  # noqa: E402
from fwtest import responder  # noqa: E402

mgtest.require_private_netns()

GUARD_TUI = os.path.join(BUILD, "tui", "guard-tui")
# guardd's own reason (no polkitd on the test bus): root is needed.
REFUSED = "Not authorized: changing policy needs root"
R_RUN_AUDIT = " R run audit now  Enter findings  Tab screen  ? help  q quit"
KEYS_LINE = " a approve  d deny  f forget  Enter details  / filter  s sort  ? help  q quit"
# The status bar at 80 columns with one held attempt: the attribution path is shown; the
# queue backend gives way to it when the line would not fit (with "kernel id").
STATUS_80 = re.compile(r" connected  enforcing  (?:xt-compat  proc id|kernel id)  "
                       r"today: 1 attempt, 1 held, 0 rejected$")
ALERT_KEYS_LINE = " K acknowledge  a approve  d deny  Enter evidence  / filter  ? help  q quit"


def screen_lines(screen):
    """capture-pane prints every row of the pane, each ended by a newline."""
    return screen[:-1].split("\n") if screen.endswith("\n") else screen.split("\n")


class Tmux:
    """One private tmux server (its own -L socket) holding one pane; only this server is
    ever killed."""

    def __init__(self, test, directory, cols=120, rows=40):
        self.test = test
        self.socket = f"mgtui-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.config = os.path.join(directory, "tmux.conf")
        with open(self.config, "w") as f:
            # No status bar (the pane gets every row); keep a pane whose program exited,
            # so a crash stays readable in the capture.
            f.write("set -g status off\nset -g remain-on-exit on\nset -g history-limit 0\n")
        self.cols, self.rows = cols, rows
        self.last = ""
        test.addCleanup(self.kill)

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-L", self.socket, "-f", self.config, *args],
                              capture_output=True, text=True, check=check, timeout=20)

    def start(self, argv, env):
        assignments = [f"{k}={v}" for k, v in env.items()]
        self.tmux("new-session", "-d", "-s", "tui", "-x", str(self.cols), "-y", str(self.rows),
                  "--", "env", "-i", *assignments, *argv)
        return self

    def send(self, *keys):
        self.tmux("send-keys", "-t", "tui", *keys)

    def capture(self, escapes=False):
        args = ["capture-pane", "-p", "-t", "tui"] + (["-e"] if escapes else [])
        self.last = self.tmux(*args).stdout
        return self.last

    def lines(self):
        return screen_lines(self.capture())

    def wait_for(self, predicate, what, timeout=20):
        try:
            return wait_for(lambda: predicate(self.capture()), timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- screen ---\n{self.last}--- end ---") from None

    def wait_for_text(self, *texts, timeout=20):
        return self.wait_for(lambda screen: all(t in screen for t in texts),
                             f"screen to show {texts}", timeout)

    def wait_until_settled(self, *texts, timeout=20, polls=3):
        """The texts are on screen and the screen stayed the same for a few captures: tmux
        may show a frame half drawn (a repaint clears the screen first)."""
        history = []

        def settled(screen):
            history.append(screen)
            recent = history[-polls:]
            return (len(recent) == polls and all(r == screen for r in recent) and
                    all(t in screen for t in texts))
        self.wait_for(settled, f"a settled screen showing {texts}", timeout)
        return self.last

    def resize(self, cols, rows):
        self.tmux("resize-window", "-t", "tui", "-x", str(cols), "-y", str(rows))

    def kill(self):
        self.tmux("kill-server", check=False)
        # The server leaves its socket file behind; remove ours.
        directory = os.environ.get("TMUX_TMPDIR", "/tmp")
        try:
            os.unlink(os.path.join(directory, f"tmux-{os.geteuid()}", self.socket))
        except FileNotFoundError:
            pass


class Dashboard(GuarddOnBusTest):
    def setUp(self):
        if not os.path.exists(GUARD_TUI):
            self.fail(f"{GUARD_TUI} is not built")
        super().setUp()

    def tui(self, user=None, cols=120, rows=40, extra_env=None, shell_after=False):
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "TZ": "UTC"}
        env.update(extra_env or {})
        argv = [GUARD_TUI]
        if shell_after:
            # After guard-tui exits, show its exit code and the terminal's modes.
            argv = ["sh", "-c", f"'{GUARD_TUI}'; echo EXITED-$?; stty -a; exec sleep 60"]
        argv = self.bus.as_user(argv, user)
        return Tmux(self, self.dir, cols, rows).start(argv, env)

    def program_states(self):
        """{path: state} straight from the bus (Programs returns (id, path, sha256, script,
        script_sha256, uid, state, ...) structs)."""
        r = self.bus.busctl("--json=short", "call", BUS_NAME, OBJECT, IFACE, "Programs")
        self.assertEqual(r.returncode, 0, r.stderr)
        return {p[1]: p[6] for p in json.loads(r.stdout)["data"][0]}

    # 2: held -> pending in the dashboard -> approved with keys -> the connection succeeds.
    def test_held_program_shows_pending_and_approving_with_keys_lets_it_connect(self):
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        tui = self.tui()
        tui.wait_for_text("connected", "No program has tried to send mail yet.")
        pending = mgtest.start_connect("127.0.0.1", 25, 30000, exe=self.client)
        self.addCleanup(lambda: pending.poll() is None and pending.kill())
        # Live: the program appears from the signals, highlighted as pending.
        row = tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s),
                           "the held program as PENDING")
        self.assertIn("1 Programs (1 pending)", tui.last)
        self.assertIsNone(pending.poll(), "the client should still be retrying its SYN")
        tui.send("a")
        tui.wait_for_text("Approve so it may send mail?", "mailclient [y/n]")
        tui.send("y")
        tui.wait_for(lambda s: re.search(r"Approved: \S*/mailclient may send mail", s),
                     "the approval to be confirmed")
        out, _ = pending.communicate(timeout=30)
        self.assertTrue(json.loads(out)["connected"], out)
        tui.wait_for(lambda s: re.search(r"approved +\S*/mailclient", s), "the row as approved")
        tui.send("2")
        tui.wait_for(lambda s: re.search(r"allow +\S*/mailclient", s) and "HOLD" in s,
                     "the held and the allowed attempt on the Attempts screen")
        self.assertEqual(self.program_states(), {self.client: "approved"})

    # A program whose file changed twice is one row with its versions counted, on the
    # first load (one ProgramVersionCounts call, not one ProgramVersions per row).
    def test_a_rewritten_program_is_one_row_with_its_versions_counted(self):
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        os.chmod(self.dir, 0o755)
        exe = os.path.join(self.dir, "rewritten")
        for n in (1, 2, 3):
            mgtest.distinct_copy(mgtest.CONNECT, exe, f"version {n}")
            r = mgtest.connect("127.0.0.1", 25, timeout_ms=800, exe=exe)
            self.assertFalse(r["connected"], r)
        mgtest.wait_for(lambda: len([p for p in self.ctl_json("programs") if p["path"] == exe
                                     and len(p["versions"]) == 3]) == 1, 10,
                        "one row with three versions")
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/rewritten \(3 versions\)", s),
                     "the row with its three versions counted")

    # 3: the same as `nobody`: refused with a visible message, nothing changes.
    def test_approve_as_nobody_is_refused_with_a_visible_message(self):
        self.start_guardd()
        self.held_program(self.client, user="nobody")
        tui = self.tui(user="nobody")
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient +nobody", s),
                     "the program held for nobody")
        tui.send("a")
        tui.wait_for_text("[y/n]")
        tui.send("y")
        tui.wait_for_text(REFUSED)
        self.assertEqual(self.program_states(), {self.client: "pending"})
        tui.send("2", "1")  # any key clears the message
        tui.wait_for(lambda s: REFUSED not in s, "the message to clear")
        tui.send("d")  # deny asks too, and is refused the same way
        tui.wait_for_text("Deny so its mail connections are refused?", "mailclient [y/n]")
        tui.send("y")
        tui.wait_for_text(REFUSED)
        self.assertEqual(self.program_states(), {self.client: "pending"})
        self.assertIn("connected", tui.capture())

    # 4a: 120x40 -> 80x24 keeps every part of the screen in place and readable.
    def test_resize_from_120x40_to_80x24_stays_readable(self):
        deep = os.path.join(self.dir, "a-rather-long-folder-name", "with-another-level-below-it")
        os.makedirs(deep)
        os.chmod(os.path.join(self.dir, "a-rather-long-folder-name"), 0o755)
        os.chmod(deep, 0o755)
        client = copy_program(CONNECT, os.path.join(deep, "mailclient"))
        self.start_guardd()
        self.held_program(client)
        tui = self.tui(cols=120, rows=40)
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        wide = tui.lines()
        self.assertEqual(len(wide), 40)
        self.assertEqual(wide[39], KEYS_LINE)
        tui.resize(80, 24)

        # tmux cuts its own copy of the screen at once and tells guard-tui later: wait
        # for the dashboard's own 80x24 layout, whole (a repaint may be half drawn).
        def readable(screen):
            lines = screen_lines(screen)
            return (len(lines) == 24 and lines[23] == KEYS_LINE and
                    lines[0].startswith(" mailguard   1 Programs (1 pending)   2 Attempts") and
                    STATUS_80.match(lines[1]) is not None and
                    lines[2].split() == ["STATE", "PROGRAM", "USER", "ATTEMPTS", "DESTS",
                                         "LAST", "SEEN"] and
                    "PENDING" in lines[3])
        tui.wait_for(readable, "the dashboard laid out for 80x24")
        lines = screen_lines(tui.wait_until_settled())
        self.assertTrue(readable(tui.last), lines)
        row = next(l for l in lines if "PENDING" in l)
        # The path is cut in the middle: its start and the file name both stay visible.
        self.assertRegex(row, r"^ PENDING +/tmp/\S*\u2026\S*/mailclient +root +1 +1 +\d\d:\d\d:\d\d$")
        self.assertTrue(all(len(l) <= 80 for l in lines), lines)
        tui.send("Enter")
        tui.wait_for_text("program details (Enter closes)", " path       /tmp/mailguard-", " sha256 ")
        tui.send("Enter", "2")
        tui.wait_for(lambda s: re.search(r"HOLD +\S*/mailclient +\d+ root +127\.0\.0\.1:25", s),
                     "the held attempt at 80 columns")
        tui.resize(120, 40)
        tui.wait_for(lambda s: len(screen_lines(s)) == 40 and "REASON" in s,
                     "the reason column back at 120 columns")
        # Shrinking again leaves no pieces of the wide screen behind: at a new size the
        # dashboard repaints every cell, not only what changed.
        tui.resize(80, 24)
        tui.send("3")
        expected = {0: " mailguard   1 Programs (1 pending)  2 Attempts  3 Alerts   4 Audit  5 Outside",
                    3: "", 4: "   No alerts: nothing has behaved like a spam bot.",
                    23: ALERT_KEYS_LINE}
        tui.wait_for(lambda s: len(screen_lines(s)) == 24 and
                     all(screen_lines(s)[i] == line for i, line in expected.items()) and
                     screen_lines(s)[2].split() == ["TIME", "TIER", "PROGRAM", "ACKED", "TOP",
                                                    "REASONS"],
                     "the Alerts screen drawn whole at 80x24")

    # 4b: guardd killed and restarted: "disconnected", then live data again.
    def test_guardd_restart_shows_disconnected_then_live_data_again(self):
        self.start_guardd()
        self.held_program(self.client)
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        self.guardd.kill9()
        tui.wait_for_text("DISCONNECTED from guardd, retrying", "Lost guardd: guardd is not running",
                          timeout=10)
        self.assertIn("/mailclient", tui.last, "the last data stays on screen")
        self.start_guardd()
        tui.wait_for(lambda s: " connected  enforcing" in s and "DISCONNECTED" not in s,
                     "the dashboard to reconnect", timeout=15)
        tui.wait_for_text("Reconnected to guardd")
        # Live again: a new program's attempt arrives by signal.
        second = copy_program(CONNECT, os.path.join(self.dir, "secondclient"))
        self.held_program(second)
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/secondclient", s)
                     and "(2 pending)" in s, "the new program after the restart")

    # q restores the terminal; NO_COLOR gives attributes only.
    def test_q_quits_and_restores_the_terminal_and_no_color_is_respected(self):
        self.start_guardd()
        self.held_program(self.client)
        tui = self.tui(shell_after=True, extra_env={"NO_COLOR": "1"})
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        coloured = tui.capture(escapes=True)
        self.assertIsNone(re.search(r"\x1b\[[0-9;]*(3[0-7]|38;5;\d+)m", coloured),
                          "NO_COLOR must give no colours")
        self.assertIn("\x1b[1m", coloured, "attributes still mark roles without colour")
        tui.send("q")
        tui.wait_for_text("EXITED-0")
        # `stty -a` runs after the echo: wait for its output, whichever way it reads.
        tui.wait_for(lambda s: re.search(r"(^|\s)-?icanon(\s|$)", s), "stty's report")
        stty = tui.capture()
        self.assertRegex(stty, r"(^|\s)icanon(\s|$)")
        self.assertRegex(stty, r"(^|\s)echo(\s|$)")
        self.assertNotIn("PENDING", stty, "the dashboard's screen must be gone")

    # Issue 5 in the dashboard: a bot quarantined by the detector shows up at once on the
    # Alerts screen, highlighted, with its evidence; acknowledging is refused for nobody
    # and works for root; Programs shows it QUARANTINED.
    def test_quarantined_bot_alert_appears_live_with_evidence_and_is_acknowledged(self):
        Listener(self, "0.0.0.0", 25)
        self.start_guardd()
        bot = copy_program(CONNECT, os.path.join(self.dir, "bot"))
        tui = self.tui()
        tui.wait_for_text("connected", "No program has tried to send mail yet.")
        tui.send("3")
        # The stand-in MTA listens on every address: the start-up audit's finding comes
        # first, marked as an audit alert (aud), not as a quarantine. (Which program it
        # names is the audit's business: once, under CI load, it named none.)
        tui.wait_for(lambda s: re.search(r"aud +.* .*0\.0\.0\.0:25", s) and
                     "HARD" not in s, "the audit's alert for the public stand-in MTA")
        for n in range(1, 11):
            r = connect(f"127.1.0.{n}", 25, timeout_ms=300, exe=bot)
            self.assertFalse(r["connected"], "an unapproved bot must not get through")
            if self.program_states().get(bot) == "quarantined":
                break
        self.assertEqual(self.program_states().get(bot), "quarantined")
        # A soft alert (throttled) may come first; the hard one is the newest, on top.
        tui.wait_for(lambda s: re.search(r"HARD +\S*/bot +NEW +direct-to-mx", s) and
                     re.search(r"3 Alerts \(\d new\)", s), "the alert, live and marked NEW")
        tui.send("g", "Enter")
        tui.wait_for_text("alert evidence (Enter closes)", " score ", " sample ", " parents ",
                          "now QUARANTINED")
        tui.send("Enter")

        nobody = self.tui(user="nobody")
        nobody.wait_for_text("connected")
        nobody.send("3")
        nobody.wait_for(lambda s: re.search(r"HARD +\S*/bot", s), "the alert for nobody")
        nobody.send("K")
        nobody.wait_for_text(REFUSED)

        tui.send("K")
        tui.wait_for(lambda s: re.search(r"Acknowledged alert \d+", s) and
                     re.search(r"HARD +\S*/bot +yes ", s), "the alert acknowledged")
        tui.send("1")
        tui.wait_for(lambda s: re.search(r"QUARANTINED +\S*/bot +root", s),
                     "the bot QUARANTINED on Programs")

    # Issue 6 in the dashboard: R runs the audit without freezing the screen; an open
    # relay listening on every address is shown with its fix in the details.
    def test_audit_screen_runs_an_audit_and_shows_an_open_relay_with_its_fix(self):
        responder(self, "0.0.0.0", 25, "open")
        self.start_guardd()
        tui = self.tui()
        tui.wait_for_text("connected")
        tui.send("4")
        tui.wait_for_text("ADDRESS:PORT", "EXPOSURE", "RELAY", R_RUN_AUDIT)
        tui.send("R")
        # While it runs the screen stays live: switching screens answers at once.
        tui.send("1")
        tui.wait_for_text("No program has tried to send mail yet.", timeout=5)
        tui.send("4")
        tui.wait_for(lambda s: re.search(r"0\.0\.0\.0:25 +EXTERNAL +OPEN +\S+", s) and
                     "Last audit " in s, "the audit's result", timeout=90)
        self.assertRegex(tui.last, r"1 servers?, 1 external, 1 open relay")
        tui.send("Enter")
        tui.wait_for_text("audit findings (Enter closes)", " fix ")

    # d asks like a and f, naming the program; the selection stays on the program the
    # owner chose while rows move (a re-sort, a new pending program above it).
    def test_deny_asks_and_the_selection_stays_on_the_same_program(self):
        swaks = copy_program(CONNECT, os.path.join(self.dir, "swaks"))
        bot = copy_program(CONNECT, os.path.join(self.dir, "zbot"))
        self.start_guardd()
        self.held_program(swaks)
        self.ctl("approve", swaks)
        self.held_program(self.client)
        tui = self.tui()
        # Pending first: mailclient, then the approved swaks.
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s) and
                     re.search(r"approved +\S*/swaks", s), "both programs")
        tui.send("Down")  # swaks, row 1
        tui.send("s", "s", "s")  # by path: mailclient, swaks
        tui.wait_for_text("Programs sorted by path")
        self.held_program(bot)  # a new pending row sorts above once the sort cycles back
        tui.send("s")  # pending first: zbot, mailclient, then swaks on row 2
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/zbot", s) and
                     "Programs sorted by state" in s, "the new pending program")
        tui.send("d")
        tui.wait_for_text("Deny an APPROVED program (its mail will be refused)?", "swaks [y/n]")
        tui.send("n")
        tui.wait_for_text("Cancelled: nothing was changed")
        self.assertEqual(self.program_states()[swaks], "approved")
        tui.send("d")
        tui.wait_for_text("swaks [y/n]")
        tui.send("y")
        tui.wait_for(lambda s: re.search(r"Denied: \S*/swaks is refused", s), "swaks denied")
        # (The copies share mg-connect's content, so guardd's same-content rule may
        # refuse them too: only swaks' own state is this test's business.)
        self.assertEqual(self.program_states()[swaks], "denied")

    # An audit run elsewhere (guardctl audit --run) shows up without pressing r.
    def test_audit_screen_follows_an_audit_run_from_guardctl(self):
        self.start_guardd()
        tui = self.tui()
        tui.wait_for_text("connected")
        tui.send("4")
        tui.wait_until_settled("No mail server listens on this PC.", R_RUN_AUDIT)
        responder(self, "0.0.0.0", 25, "open")
        self.ctl("audit", "--run", timeout=120)
        tui.wait_for(lambda s: re.search(r"0\.0\.0\.0:25 +EXTERNAL +OPEN", s),
                     "the audit from guardctl on the Audit screen", timeout=30)

    def test_colours_are_used_when_allowed(self):
        self.start_guardd()
        self.held_program(self.client)
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        self.assertRegex(tui.capture(escapes=True), r"\x1b\[[0-9;]*(3[0-7]|38;5;\d+)[;m]")


if __name__ == "__main__":
    unittest.main(verbosity=2)
