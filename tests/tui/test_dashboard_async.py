"""Guard-tui while guardd is slow or gone, and on long lists: a policy call that waits
(guardd stopped with SIGSTOP, a real delay of the real daemon) leaves the screen working;
guardd stopping is shown at once (the bus's NameOwnerChanged, no polling) and its return
reloads everything; 200 attempts page with PgUp/PgDn/Home/End and filter by text and by
verdict; `A` approves with pinned destinations. tmux and a real guardd on a private bus,
as in test_dashboard.py."""
import os
import re
import signal
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
import test_dashboard  # noqa: E402
from busfixture import GuarddOnBusTest  # noqa: E402
from mgtest import CONNECT, SEED, Listener, connect, distinct_copy, wait_for  # noqa: E402

mgtest.require_private_netns()

CTEST_LABEL = "tui"


class DashboardAsync(GuarddOnBusTest):
    # Borrowed from test_dashboard.Dashboard (subclassing would run its tests here too).
    tui = test_dashboard.Dashboard.tui
    program_states = test_dashboard.Dashboard.program_states

    def setUp(self):
        if not os.path.exists(test_dashboard.GUARD_TUI):
            self.fail(f"{test_dashboard.GUARD_TUI} is not built")
        super().setUp()

    def stop_guardd_for_a_while(self):
        """SIGSTOP guardd: it keeps its bus name, so calls to it wait for an answer. The
        cleanup continues it in any case, so that the fixture can stop it."""
        pid = self.daemon.pid()
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(lambda: self.guardd.proc.poll() is None and os.kill(pid, signal.SIGCONT))
        return pid

    def test_approving_waits_for_guardd_without_freezing_the_screen(self):
        self.start_guardd()
        self.held_program(self.client)
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        pid = self.stop_guardd_for_a_while()
        tui.send("a")
        tui.wait_for_text("Approve so it may send mail?", "mailclient [y/n]")
        tui.send("y")
        tui.wait_for(lambda s: re.search(r"Approving \S*/mailclient\.\.\. waiting for "
                                         r"authorization", s), "the waiting line")
        # The screen takes keys meanwhile: another screen, and back.
        tui.send("2")
        tui.wait_for(lambda s: re.search(r"HOLD +\S*/mailclient", s) and
                     re.search(r"approving \S*/mailclient\.\.\. waiting for authorization", s),
                     "the Attempts screen while the approval waits", timeout=5)
        tui.send("1")
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s) and "STATE" in s,
                     "the Programs screen again", timeout=5)
        # The same row is busy: no second call.
        tui.send("d")
        tui.wait_for(lambda s: re.search(r"Busy: still approving \S*/mailclient", s),
                     "the row to say busy", timeout=5)
        self.assertNotIn("[y/n]", tui.last)
        os.kill(pid, signal.SIGCONT)
        tui.wait_for(lambda s: re.search(r"Approved: \S*/mailclient may send mail", s),
                     "guardd's answer to replace the waiting line")
        self.assertNotIn("waiting for authorization", tui.last)
        self.assertEqual(self.program_states(), {self.client: "approved"})

    def test_guardd_stopping_shows_at_once_and_its_return_reloads_everything(self):
        self.start_guardd()
        self.held_program(self.client)
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")
        self.guardd.stop()
        stopped = time.monotonic()
        tui.wait_for_text("Lost guardd: guardd is not running", timeout=5)
        self.assertLess(time.monotonic() - stopped, 1.0,
                        "NameOwnerChanged must show guardd gone at once, not at a poll")
        self.assertIn("DISCONNECTED", tui.last)
        # Approved while guardd was away (straight into its store): the reload shows it.
        r = subprocess.run([SEED, self.state, "approve", self.client], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.start_guardd()
        tui.wait_for(lambda s: re.search(r"approved +\S*/mailclient", s) and
                     "Reconnected to guardd" in s and "DISCONNECTED" not in s,
                     "everything reloaded when guardd is back", timeout=5)

    def test_an_idle_dashboard_calls_nothing_on_guardd(self):
        """The old dashboard asked for Status every 2 s; now only bus signals wake it. A
        monitor on the private bus (root may, per the test bus's policy) sees every call
        to guardd: a guardctl call shows it works, then 5 s with the dashboard idle (two
        and a half of the old polls) must add none."""
        self.start_guardd()
        tui = self.tui()
        tui.wait_until_settled("connected", "No program has tried to send mail yet.")
        mon = subprocess.Popen(["dbus-monitor", "--address", self.bus.address, "--monitor",
                                "type='method_call',interface='org.mailguard.Guard1'"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(lambda: mon.poll() is None and mgtest.terminate(mon))
        lines = []
        threading.Thread(target=lambda: [lines.append(l) for l in mon.stdout],
                         daemon=True).start()
        # dbus-monitor is a monitor once the bus told it it lost its name.
        wait_for(lambda: any("member=NameLost" in l for l in lines), 10, "the monitor")
        self.ctl("status")
        wait_for(lambda: any("member=Status" in l for l in lines), 10,
                 "guardctl's Status call in the monitor")
        calls = sum(1 for l in lines if l.startswith("method call"))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = [l for l in lines if l.startswith("method call")]
            self.assertEqual(len(now), calls, f"the idle dashboard called guardd: {now[calls:]}")
            time.sleep(0.1)

    def test_two_hundred_attempts_page_and_filter_by_text_and_verdict(self):
        held = distinct_copy(CONNECT, os.path.join(self.dir, "heldclient"), "held")
        refused = distinct_copy(CONNECT, os.path.join(self.dir, "refusedclient"), "refused")
        r = subprocess.run([SEED, self.state, "deny", refused], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.start_guardd()
        connect("127.0.0.1", 25, timeout_ms=300, exe=refused, count=170)
        connect("127.0.0.1", 25, timeout_ms=100, exe=held, count=30)

        def recorded():
            rows = self.ctl_json("attempts", "--limit", "1000")
            return rows if len(rows) >= 200 else None
        rows = wait_for(recorded, 30, "200 attempts in guardd")
        total = len(rows)
        n_held = sum(1 for a in rows if a["verdict"] == "hold")
        n_refused = sum(1 for a in rows if a["verdict"] == "reject")
        n_heldclient = sum(1 for a in rows if a["path"].endswith("/heldclient"))
        self.assertGreaterEqual(n_held, 30)
        self.assertGreaterEqual(n_refused, 100)

        tui = self.tui(cols=100, rows=30)
        tui.wait_for_text("connected")
        tui.send("2")
        tui.wait_for_text(f"rows 1-25 of {total}")
        tui.send("PPage")  # at the top already: nothing moves
        tui.send("NPage")
        tui.wait_for_text(f"rows 26-50 of {total}")
        tui.send("NPage", "PPage")
        tui.wait_until_settled(f"rows 26-50 of {total}")
        tui.send("End")
        tui.wait_for_text(f"rows {total - 24}-{total} of {total}")
        tui.send("Home")
        tui.wait_for_text(f"rows 1-25 of {total}")
        tui.send("v")
        tui.wait_for_text(f"rows 1-25 of {n_held}, held only")
        lines = test_dashboard.screen_lines(tui.last)
        self.assertFalse([l for l in lines[3:28] if "REJECT" in l], tui.last)
        tui.send("v")
        tui.wait_for_text(f"rows 1-25 of {n_refused}, refused only")
        self.assertFalse([l for l in test_dashboard.screen_lines(tui.last)[3:28] if "HOLD" in l])
        tui.send("v")
        tui.wait_for_text(f"rows 1-25 of {total}")
        tui.send("/")
        tui.send("-l", "heldclient")
        tui.send("Enter")
        expected = min(25, n_heldclient)
        tui.wait_for_text(f"rows 1-{expected} of {n_heldclient}")
        self.assertFalse([l for l in test_dashboard.screen_lines(tui.last)[3:28]
                          if "refusedclient" in l], tui.last)

    def test_paging_past_the_newest_thousand_loads_older_attempts_from_guardd(self):
        refused = distinct_copy(CONNECT, os.path.join(self.dir, "refusedclient"), "refused")
        r = subprocess.run([SEED, self.state, "deny", refused], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.start_guardd()
        connect("127.0.0.1", 25, timeout_ms=300, exe=refused, count=1050)

        def recorded():
            newest = self.ctl_json("attempts", "--limit", "1000")
            if len(newest) < 1000:
                return None
            older = self.ctl_json("attempts", "--limit", "1000", "--before",
                                  str(newest[-1]["id"]))
            return len(newest) + len(older) if len(newest) + len(older) >= 1050 else None
        total = wait_for(recorded, 60, "1,050 attempts in guardd")

        tui = self.tui(cols=100, rows=30)
        tui.wait_for_text("connected")
        tui.send("2")
        tui.wait_for_text("rows 1-25 of 1,000+")
        tui.send("End")
        total_text = f"{total:,}"
        # The page before the oldest in memory comes from guardd; End again reaches it.
        tui.wait_for(lambda s: re.search(rf"rows 976-1,000 of {total_text}$", s, re.M),
                     "the older page loaded")
        tui.send("End")
        tui.wait_for(lambda s: re.search(rf"rows {total - 24:,}-{total_text} of {total_text}$",
                                         s, re.M), "the oldest attempt")

    def test_shift_a_pins_an_approval_to_a_server_and_guardd_refuses_a_host_name(self):
        Listener(self, "127.0.0.2", 25)
        other = Listener(self, "127.0.0.3", 25)
        self.start_guardd()
        self.held_program(self.client, host="127.0.0.2")
        tui = self.tui()
        tui.wait_for(lambda s: re.search(r"PENDING +\S*/mailclient", s), "the pending program")

        # A host name is guardd's to refuse: its error shows, nothing changes.
        tui.send("A")
        tui.wait_for_text("Approve with options:", "only to (host[:port], comma separated):")
        tui.send("-l", "smtp.example.org")
        tui.wait_for_text("smtp.example.org_")
        self.assertEqual(self.program_states(), {self.client: "pending"},
                         "nothing is sent before Enter")
        tui.send("Enter")
        tui.wait_for(lambda s: re.search(r"Could not approve: invalid argument: .*host names", s),
                     "guardd's refusal of a host name")
        self.assertEqual(self.ctl_json("rules"), [])

        tui.send("A")
        tui.wait_for_text("only to (host[:port], comma separated):")
        tui.send("-l", "127.0.0.2:25")
        tui.send("Enter")
        tui.wait_for(lambda s: re.search(r"Approved: \S*/mailclient may send mail", s),
                     "the pinned approval")
        rules = self.ctl_json("rules")
        self.assertEqual([r["only_to"] for r in rules], [["127.0.0.2:25"]], rules)
        self.assertTrue(connect("127.0.0.2", 25, timeout_ms=5000, exe=self.client)["connected"])
        r = connect("127.0.0.3", 25, timeout_ms=1000, exe=self.client)
        self.assertFalse(r["connected"], r)
        self.assertEqual(other.accepted, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
