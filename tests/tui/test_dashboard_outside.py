"""Guard-tui's Outside screen against the real outside check: dnsmasq in the test's network
namespace serves a test blocklist listing the test public address (198.18.0.7) and the
SPF record of plusall.test, as in tests/integration/test_outside.py; guardd on a private
bus is pointed at it, and the dashboard runs in tmux as in test_dashboard.py. R on the
Outside screen runs the check; the screen then shows the listing with its likely cause and
the domain's finding with its fix. Run as root; needs dnsmasq (dnsmasq-base) and tmux."""
import json
import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
import test_outside  # noqa: E402
from busfixture import GUARDCTL, GuarddOnBusTest  # noqa: E402
from mgtest import DNSMASQ, start_test_dns  # noqa: E402
from test_dashboard import GUARD_TUI, Tmux  # noqa: E402

mgtest.require_private_netns()

CTEST_LABEL = "tui"


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (install/deps.sh --test)")
class DashboardOutside(GuarddOnBusTest):
    configure = test_outside.Outside.configure

    def setUp(self):
        if not os.path.exists(GUARD_TUI):
            self.fail(f"{GUARD_TUI} is not built")
        super().setUp()
        start_test_dns(self, test_outside.PORT, test_outside.RECORDS, "good.test", 16)

    def test_outside_screen_runs_the_check_and_shows_the_listing_and_the_finding(self):
        self.configure(["zen.test-bl.test", "clean.test-bl.test"], ["plusall.test"])
        self.start_guardd()
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
        tui = Tmux(self, self.dir, 120, 40).start([GUARD_TUI], env)
        tui.wait_for_text("1 Programs")
        tui.send("o")
        tui.wait_for_text("OUTSIDE", "R check now")
        tui.send("R")
        tui.wait_for_text("zen.test-bl.test  LISTED since", test_outside.REASON,
                          "clean.test-bl.test  not listed", "Likely cause:",
                          "plusall.test  1 finding", "Fix:")
        tui.wait_for_text(f"public address {test_outside.ADDRESS} (from settings)")
        # The report on screen is the one guardd keeps.
        report = self.ctl_json("outside")
        self.assertEqual({b["zone"]: b["status"] for b in report["blocklists"]},
                         {"zen.test-bl.test": "listed", "clean.test-bl.test": "not-listed"})

    def test_a_check_run_by_someone_else_shows_on_the_open_screen_without_a_key(self):
        self.configure(["zen.test-bl.test", "clean.test-bl.test"], ["plusall.test"])
        self.start_guardd()
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
        # guardctl watch follows the same signal: the listing's alert, then the check's end,
        # as JSON and as text.
        def start_watch(name, *options):
            out = open(os.path.join(self.dir, name), "w+")
            self.addCleanup(out.close)
            proc = subprocess.Popen([GUARDCTL, *options, "watch", "--count", "2"],
                                    env=self.daemon.env(), stdout=out, stderr=subprocess.PIPE,
                                    stdin=subprocess.DEVNULL, text=True)
            self.addCleanup(mgtest.terminate, proc)
            # Subscribed once it says so on stderr (its match rules are in place by then).
            self.assertEqual(proc.stderr.readline().strip(), "Watching guardd (Ctrl-C to stop)")
            return proc, out
        watch, watch_out = start_watch("watch.json", "--json")
        text_watch, text_out = start_watch("watch.txt")

        tui = Tmux(self, self.dir, 120, 40).start([GUARD_TUI], env)
        tui.wait_for_text("1 Programs")
        tui.send("o")
        tui.wait_for_text("OUTSIDE", "No outside check yet")
        # Another process runs the check; nothing is typed into the dashboard from here on.
        self.ctl("outside", "--run")
        tui.wait_for_text("zen.test-bl.test  LISTED since", "clean.test-bl.test  not listed",
                          "plusall.test  1 finding",
                          f"public address {test_outside.ADDRESS} (from settings)")

        self.assertEqual(watch.wait(30), 0)
        watch_out.seek(0)
        events = [json.loads(line) for line in watch_out.read().splitlines()]
        self.assertEqual([e["signal"] for e in events], ["AlertRaised", "OutsideChecked"])
        self.assertEqual(events[0]["alert"]["kind"], "blocklist")
        event = events[1]
        self.assertEqual({b["zone"]: b["status"] for b in event["report"]["blocklists"]},
                         {"zen.test-bl.test": "listed", "clean.test-bl.test": "not-listed"})
        self.assertEqual(event["report"]["public_address"], test_outside.ADDRESS)
        self.assertFalse(event["report"]["running"])
        self.assertEqual(text_watch.wait(30), 0)
        text_out.seek(0)
        lines = text_out.read().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertRegex(lines[1], rf"^outside check \S+: {test_outside.ADDRESS} LISTED on "
                                   r"zen\.test-bl\.test; 1 domain finding\(s\)$")


if __name__ == "__main__":
    mgtest.main()
