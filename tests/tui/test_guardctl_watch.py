"""`guardctl watch` prints alerts as they are raised, one line each, and `--json` one JSON
object a line: a bot quarantined by the real detector in a real guardd on a private bus
(the way test_dashboard.py's quarantine test raises its alert)."""
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
from busfixture import GUARDCTL, GuarddOnBusTest  # noqa: E402
from mgtest import CONNECT, connect, copy_program  # noqa: E402

mgtest.require_private_netns()

CTEST_LABEL = "tui"


class Watcher:
    """One `guardctl watch` in the background; its stdout lines arrive in a queue."""

    def __init__(self, test, *args):
        self.proc = subprocess.Popen([GUARDCTL, *args, "watch"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=test.daemon.env(),
                                     stdin=subprocess.DEVNULL)
        test.addCleanup(self.stop)
        self.lines = queue.Queue()
        self.errors = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.errors),
                         daemon=True).start()

    @staticmethod
    def _read(stream, lines):
        for line in stream:
            lines.put(line.rstrip("\n"))

    def wait_started(self, timeout=10):
        """guardctl says "Watching guardd" on stderr once it is subscribed and guardd
        answered."""
        try:
            line = self.errors.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("guardctl watch said nothing on stderr") from None
        if not line.startswith("Watching guardd"):
            raise AssertionError(f"guardctl watch did not start: {line}")

    def wait_for_line(self, predicate, what, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"timed out waiting for {what}; lines: {self.seen[-20:]}")

    def stop(self):
        if self.proc.poll() is None:
            mgtest.terminate(self.proc)


class GuardctlWatch(GuarddOnBusTest):
    def test_watch_prints_a_raised_alert_as_a_line_and_as_json(self):
        self.start_guardd()
        plain = Watcher(self)
        as_json = Watcher(self, "--json")
        # Both subscribed before the bot starts.
        plain.wait_started()
        as_json.wait_started()
        bot = copy_program(CONNECT, os.path.join(self.dir, "bot"))
        for n in range(1, 11):
            r = connect(f"127.1.0.{n}", 25, timeout_ms=300, exe=bot)
            self.assertFalse(r["connected"], "an unapproved bot must not get through")
            if self.program(bot)["state"] == "quarantined":
                break
        self.assertEqual(self.program(bot)["state"], "quarantined")

        line = as_json.wait_for_line(
            lambda l: l.startswith("{") and json.loads(l)["signal"] == "AlertRaised" and
            json.loads(l)["alert"]["kind"] == "detector" and json.loads(l)["alert"]["tier"] == "hard",
            "the quarantine's AlertRaised as JSON")
        alert = json.loads(line)["alert"]
        self.assertEqual(alert["path"], bot)
        self.assertTrue(alert["reasons"], alert)
        # Every line of --json output is one JSON object.
        for l in as_json.seen:
            self.assertIsInstance(json.loads(l), dict, l)

        line = plain.wait_for_line(lambda l: re.search(r"  alert \d+ \(quarantined\)  ", l),
                                   "the alert's line")
        self.assertRegex(line, rf"^\S.*  alert {alert['id']} \(quarantined\)  {re.escape(bot)}: "
                               r"\S")


if __name__ == "__main__":
    unittest.main(verbosity=2)
