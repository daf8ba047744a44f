"""Regenerates tui/README-screens.md: runs a small household scene against a real guardd
on a private bus and captures each guard-tui screen with tmux. Root, in a fresh network
namespace, from a build directory:

    sudo MG_BUILD_DIR=build/release unshare -n python3 tests/tui/capture_screens.py > tui/README-screens.md
"""
import json
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
import test_dashboard  # noqa: E402  (checks for root and a private network namespace)
from mgtest import CONNECT, Listener, connect, start_connect  # noqa: E402
from fwtest import responder  # noqa: E402

SECTIONS = []
ATTEMPTS_HEADER_80 = " TIME     VERDICT PROGRAM                    PID USER     DESTINATION"
ATTEMPTS_HEADER_120 = (" TIME     VERDICT PROGRAM                            PID USER     DESTINATION"
                       "            REASON")


def program_at(base, relative):
    path = os.path.join(base, relative)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    walk = d
    while walk.startswith(base) and walk != base:
        os.chmod(walk, 0o755)
        walk = os.path.dirname(walk)
    # A different hash for each program (a deny covers copies).
    return mgtest.distinct_copy(CONNECT, path, relative)


def laid_out(tui, rows):
    """tmux resizes its own grid at once (cutting lines) but tells the program later
    (SIGWINCH); wait until guard-tui has drawn the Attempts screen for the new size (its
    header differs between 80 and 120 columns) before sending more keys."""
    header = ATTEMPTS_HEADER_120 if rows == 40 else ATTEMPTS_HEADER_80

    def done(screen):
        lines = test_dashboard.screen_lines(screen)
        return (len(lines) == rows and lines[-1] == test_dashboard.KEYS_LINE and
                lines[0].startswith(" mailguard ") and lines[2] == header)
    tui.wait_for(done, f"guard-tui laid out for {rows} rows")
    tui.wait_until_settled()


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Capture(test_dashboard.Dashboard):
    def call(self, method, *args):
        r = self.bus.gdbus_call(method, *[json.dumps(a) for a in args])
        self.assertEqual(r.returncode, 0, r.stderr)

    def shot(self, tui, title, text):
        screen = tui.wait_until_settled()
        SECTIONS.append((title, text, screen.rstrip("\n")))

    def test_capture(self):
        # An SMTP server on every address that relays for anyone: for the audit, and the
        # destination of the programs below.
        responder(self, "0.0.0.0", 25, "open")
        Listener(self, "127.0.0.1", 587)
        self.start_guardd()
        home = os.path.join(self.dir, "home", "alice")
        mail = program_at(home, "bin/mail-client")
        msmtp = program_at(home, "opt/msmtp/bin/msmtp")
        bot = program_at(home, ".cache/updater/kworker-helper")
        self.call("Approve", mail, "")
        self.call("Deny", msmtp, "")
        for _ in range(2):
            r = connect("127.0.0.1", 587, exe=mail)
            self.assertTrue(r["connected"], f"{r}\n{self.guardd.log()}")
        connect("127.0.0.1", 25, timeout_ms=2000, exe=msmtp)
        held = [start_connect(f"127.0.0.{n}", 25, 600, exe=bot) for n in (5, 6, 7)]
        for p in held:
            p.communicate(timeout=20)
        # A spam bot straight to many mail servers: the detector quarantines it.
        zombie = program_at(home, ".local/share/.x/sysupd")
        for n in range(1, 11):
            connect(f"127.1.0.{n}", 25, timeout_ms=300, exe=zombie)
            if self.program_states().get(zombie) == "quarantined":
                break
        self.assertEqual(self.program_states().get(zombie), "quarantined")

        tui = self.tui(cols=80, rows=24)
        tui.wait_for_text("kworker-helper", "mail-client", "msmtp", "QUARANTINED")
        pid = tui.tmux("display-message", "-p", "-t", "tui", "#{pane_pid}").stdout.strip()
        self.shot(tui, "Programs (80x24)",
                  "Pending programs come first and are highlighted, then programs the "
                  "spam-bot detector quarantined; the tab shows how many wait for a decision.")
        tui.send("Enter")
        tui.wait_for_text("program details (Enter closes)", "recent ")
        self.shot(tui, "Program details", "Enter opens the full path, hash, command line and "
                  "recent destinations of the selected program.\nFor an approved program it "
                  "also shows where the approval may send (`only to`: the pinned\ndestinations, "
                  "or `anywhere`) and the code-loading variables and options it allows "
                  "(`allows`).\nWhen the local MTA holds mail the program handed it, `held mail` "
                  "says how many messages (sent\non approval, deleted on denial), and `d` then "
                  "asks `Deny and DELETE its 20 held messages?`.\nOn the Attempts screen such a "
                  "message shows `mta: ` and its recipients' domains as its\ndestination; its "
                  "details name the MTA and the message's queue id.")
        tui.send("Enter", "a")
        tui.wait_for_text("[y/n]")
        self.shot(tui, "Approving asks first", "Approving widens what may send mail, so it "
                  "asks y/n.")
        tui.send("n", "2")
        tui.wait_for_text("VERDICT", "REJECT")
        self.shot(tui, "Attempts (80x24)", "Newest first; at 80 columns the reason is in the "
                  "details pane (Enter).")
        tui.resize(120, 40)
        laid_out(tui, 40)
        self.shot(tui, "Attempts (120x40)", "Wider terminals get the reason column.")
        tui.resize(80, 24)
        laid_out(tui, 24)
        tui.send("3")
        tui.wait_for_text("HARD", "TOP REASONS")
        self.shot(tui, "Alerts", "The zombie detector's alerts, newest first: soft (new "
                  "destinations throttled) or HARD (quarantined), with the heaviest reasons. "
                  "An alert raised while the dashboard runs appears at once, marked NEW and "
                  "highlighted; K acknowledges it (root only: others get a clear \"Not "
                  "allowed\"), a approves the program after all.")
        tui.send("g", "Enter")
        tui.wait_for_text("alert evidence (Enter closes)", " score ")
        self.shot(tui, "Alert evidence", "Enter shows the evidence: score against the "
                  "threshold, the last 24 hours, sample destinations and the parent chain.")
        tui.send("Enter", "4", "R")
        tui.wait_for_text("Last audit ", "EXTERNAL", timeout=90)
        self.shot(tui, "Audit", "The mail servers listening on this PC and what the relay "
                  "audit found. R audits again now; meanwhile the summary line says "
                  "\"auditing...\" and the dashboard stays usable (the call runs on its own "
                  "thread and connection).")
        tui.send("Enter")
        tui.wait_for_text("audit findings (Enter closes)", " fix ")
        self.shot(tui, "Audit findings", "Enter shows the findings of the selected server, "
                  "each with its fix.")
        tui.send("Enter")
        tui.send("1", "?")
        tui.wait_for_text("this help")
        self.shot(tui, "Help (?)", "")
        tui.send("x")
        before = cpu_ticks(pid)
        time.sleep(5)  # measuring idle CPU needs a span of time, not a condition
        idle = cpu_ticks(pid) - before
        self.guardd.kill9()
        tui.wait_for_text("DISCONNECTED")
        self.shot(tui, "guardd stopped", "The last data stays visible; the dashboard retries "
                  "every second and reloads when guardd is back.")
        print(f"guard-tui used {idle} clock ticks of CPU in 5 s idle "
              f"({os.sysconf('SC_CLK_TCK')} per second)", file=sys.stderr)


if __name__ == "__main__":
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(Capture("test_capture"))
    if not result.wasSuccessful():
        sys.exit(1)
    print("# guard-tui screens\n")
    print("Captured with `tmux capture-pane` from the real guard-tui talking to a real guardd "
          "on a private bus\n(regenerate with `tests/tui/capture_screens.py`). Colours are not "
          "shown here: pending rows and new alerts are\nyellow and bold, rejected attempts "
          "red, quarantined programs and hard alerts magenta; with\n`NO_COLOR` or on a "
          "monochrome terminal the same roles use bold, underline and "
          "reverse video. The selected row is in reverse video. The programs live in the\n"
          "test's temporary folder (hence the /tmp/mailguard-... paths) and run as root, as "
          "the test does.\n")
    for title, text, screen in SECTIONS:
        print(f"## {title}\n")
        if text:
            print(text + "\n")
        print("```text\n" + screen + "\n```\n")
