"""Crash safety: guardd killed with SIGKILL at random points.

While guardctl approves one program after another over the private bus and two
clients keep making mail attempts (one approved, one unknown and held), guardd is
killed with SIGKILL 50 times; every fifth kill lands during start-up. After every kill
each database in the state directory passes PRAGMA integrity_check, and every approval
guardctl reported as done is in the rules table with the hash of the file it approved.
At the end the restarted guardd lets the last program approved before each kill connect.

What is counted does not depend on the machine's speed: in each cycle the kill window
opens only once that cycle's first approval has been answered, so 40 cycles give at
least 40 approvals reported done. The kill then lands at a random point of the next
approval in flight: after a random share of the time the first approval took (on a
slow, sanitized or busy machine the window widens with it).

MG_CRASH_CYCLES and MG_CRASH_SEED override the number of kills and the random seed
(printed, so a failure can be replayed).
"""
import hashlib
import json
import os
import random
import subprocess
import threading
import time

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import CONNECT, Listener, wait_for

mgtest.require_private_netns()

CYCLES = int(os.environ.get("MG_CRASH_CYCLES", "50"))
STARTUP_KILL_EVERY = 5
# The first approval of a cycle may take long under ASan on a busy machine; it is waited
# for, never raced.
FIRST_APPROVAL_TIMEOUT = 60


class Approver(threading.Thread):
    """Approves fresh programs with guardctl, one after another, until stopped; keeps
    those reported done and how long each call took."""

    def __init__(self, daemon, make_program):
        super().__init__(daemon=True)
        self.guardd_on_bus = daemon
        self.make_program = make_program
        self.stop = threading.Event()
        self.calls = 0      # guardctl approve calls started
        self.done = []      # (path, sha256) that guardctl reported approved
        self.seconds = []   # how long each of those calls took
        self.failed = 0     # calls cut off by the kill (or made while guardd was down)
        self.error = None   # a reply that says something else than approved

    def run(self):
        while not self.stop.is_set():
            path = self.make_program()
            self.calls += 1
            started = time.monotonic()
            r = self.guardd_on_bus.ctl("--json", "approve", path, ok=False, timeout=30)
            if r.returncode != 0:
                self.failed += 1
                continue
            program = json.loads(r.stdout)
            if program["state"] != "approved" or program["path"] != path:
                self.error = f"guardctl approve {path}: {r.stdout}"
                return
            self.seconds.append(time.monotonic() - started)
            self.done.append((path, program["sha256"]))


class CrashSafety(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.programs = os.path.join(self.dir, "programs")
        os.makedirs(self.programs)
        os.chmod(self.programs, 0o755)
        self.count = 0
        self.clients = []
        self.addCleanup(self.stop_clients)

    def make_program(self):
        """A new program: mg-connect with a distinct tail, so each has its own hash."""
        self.count += 1
        return mgtest.distinct_copy(CONNECT, os.path.join(self.programs, f"client{self.count}"),
                                    f"crash test {self.count}")

    def start_clients(self, sender, stranger):
        # Attempts all through the cycle: allowed ones from the approved sender, held
        # ones (short timeout, so they repeat) from a program nobody approved.
        self.clients = [
            subprocess.Popen([sender, "127.0.0.1", "25", "300", "1000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            subprocess.Popen([stranger, "127.0.0.1", "25", "100", "1000000"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        ]

    def stop_clients(self):
        for p in self.clients:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.clients = []

    def kill_during_startup(self, rng, startup_seconds):
        """Starts guardd and kills it at a random point of its start-up (opening the
        store, recovering the WAL, replacing the table), as long as the last full
        start-up took."""
        with open(self.guardd.log_path, "a") as log:
            self.guardd.proc = subprocess.Popen(self.guardd.args(), stdout=subprocess.DEVNULL,
                                                stderr=log, env=self.bus.env())
        # The random kill point is what this tests, not a wait for something.
        time.sleep(rng.uniform(0, startup_seconds))
        self.guardd.kill9()

    def kill_during_approvals(self, rng, sender, stranger):
        """Starts guardd, the clients and the approver; once this cycle's first approval
        was answered, kills guardd at a random point of the next one. Returns the
        approver, stopped, and how long guardd took to start (to owning its name on the
        bus: an upper bound of its start-up)."""
        started = time.monotonic()
        self.start_guardd()
        startup_seconds = time.monotonic() - started
        self.start_clients(sender, stranger)
        approver = Approver(self.daemon, self.make_program)
        approver.start()
        try:
            wait_for(lambda: approver.done or approver.error, FIRST_APPROVAL_TIMEOUT,
                     "this cycle's first approval to be answered")
            self.assertIsNone(approver.error)
            wait_for(lambda: approver.calls > len(approver.done) + approver.failed or
                     approver.error, 30, "the next approval to be under way")
            # The random kill point is what this tests, not a wait for something.
            time.sleep(rng.uniform(0, approver.seconds[0]))
        finally:
            self.guardd.kill9()
            approver.stop.set()
            approver.join(60)
        self.assertFalse(approver.is_alive(), "guardctl hung after the kill")
        self.assertIsNone(approver.error)
        self.stop_clients()
        return approver, startup_seconds

    def test_approvals_reported_done_survive_50_kills_and_the_database_stays_intact(self):
        seed = int(os.environ.get("MG_CRASH_SEED", str(time.time_ns() % 1_000_000)))
        print(f"MG_CRASH_SEED={seed} MG_CRASH_CYCLES={CYCLES}")
        rng = random.Random(seed)
        Listener(self, "127.0.0.1", 25)
        sender = self.client
        stranger = mgtest.copy_program(CONNECT, os.path.join(self.dir, "stranger"))
        mgtest.seed(self.state, "approve", sender)

        done = []
        cut_off = 0
        last_before_kill = []
        startup_kills = 0
        startup_seconds = None
        for cycle in range(1, CYCLES + 1):
            if cycle % STARTUP_KILL_EVERY == 0 and startup_seconds is not None:
                self.kill_during_startup(rng, startup_seconds)
                startup_kills += 1
            else:
                approver, startup_seconds = self.kill_during_approvals(rng, sender, stranger)
                self.assertTrue(approver.done, "the kill window opened before an approval")
                done += approver.done
                cut_off += approver.failed
                last_before_kill.append(approver.done[-1][0])

            for path, result in mgtest.integrity_check(self.state).items():
                self.assertEqual(result, "ok", f"kill {cycle}: {path} is damaged")
            missing = set(done) - mgtest.approved_rules(self.state)
            self.assertFalse(missing, f"kill {cycle}: approvals reported done are gone: "
                                      f"{sorted(missing)}")

        print(f"{CYCLES} kills ({startup_kills} during start-up), {len(done)} approvals "
              f"reported done, all present; {cut_off} approve calls cut off by a kill; "
              f"attempts recorded: {len(mgtest.attempts(self.state))}")
        # Each cycle that was not a start-up kill contributed at least one approval.
        self.assertGreaterEqual(len(done), CYCLES - startup_kills)
        self.assertTrue(mgtest.attempts(self.state, verdict="allow"), "no allowed attempt recorded")

        # The restarted guardd enforces what was approved: the last program approved
        # before a few of the kills connects at once.
        self.start_guardd()
        for path in last_before_kill[-5:]:
            r = mgtest.connect("127.0.0.1", 25, timeout_ms=3000, exe=path)
            self.assertTrue(r["connected"], f"{path} was approved before a kill: {r}")
        with open(sender, "rb") as f:
            self.assertIn((sender, hashlib.sha256(f.read()).hexdigest()),
                          mgtest.approved_rules(self.state))


if __name__ == "__main__":
    mgtest.main()
