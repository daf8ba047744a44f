"""Crash safety (issue #8 item 4): guardd killed with SIGKILL at random points.

While guardctl approves one program after another over the private bus and two
clients keep making mail attempts (one approved, one unknown and held), guardd is
killed with SIGKILL after a random delay, 50 times; some kills land during start-up.
After every kill each database in the state directory passes PRAGMA
integrity_check, and every approval guardctl reported as done is in the rules table
with the hash of the file it approved. At the end the restarted guardd lets the last
program approved before each kill connect.

MG_CRASH_CYCLES and MG_CRASH_SEED override the number of kills and the random seed
(printed, so a failure can be replayed).
"""
import glob
import hashlib
import json
import os
import random
import sqlite3
import subprocess
import threading
import time
import unittest

import mgtest
from busfixture import PrivateBus
from mgtest import CONNECT, Guardd, Listener, copy_program, wait_for

mgtest.require_private_netns()

CYCLES = int(os.environ.get("MG_CRASH_CYCLES", "50"))


class Approver(threading.Thread):
    """Approves fresh programs with guardctl until stopped; keeps those reported done."""

    def __init__(self, bus, make_program):
        super().__init__(daemon=True)
        self.bus = bus
        self.make_program = make_program
        self.stop = threading.Event()
        self.done = []      # (path, sha256) that guardctl reported approved
        self.failed = 0     # calls cut off by the kill (or made while guardd was down)

    def run(self):
        while not self.stop.is_set():
            path = self.make_program()
            r = self.bus.guardctl("--json", "approve", path, timeout=30)
            if r.returncode != 0:
                self.failed += 1
                continue
            program = json.loads(r.stdout)
            if program["state"] != "approved" or program["path"] != path:
                raise AssertionError(f"guardctl approve {path}: {r.stdout}")
            self.done.append((path, program["sha256"]))


class CrashSafety(unittest.TestCase):
    def setUp(self):
        self.dir = mgtest.make_tempdir(self)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state)
        self.programs = os.path.join(self.dir, "programs")
        os.makedirs(self.programs)
        os.chmod(self.programs, 0o755)
        with open(CONNECT, "rb") as f:
            self.connect_image = f.read()
        self.count = 0
        self.bus = PrivateBus(self, self.dir).start()
        self.guardd = Guardd(self, self.state)
        self.clients = []
        self.addCleanup(self.stop_clients)

    def make_program(self):
        """A new program: mg-connect with a distinct tail, so each has its own hash."""
        self.count += 1
        path = os.path.join(self.programs, f"client{self.count}")
        with open(path, "wb") as f:
            f.write(self.connect_image + b"\0mailguard crash test %d\n" % self.count)
        os.chmod(path, 0o755)
        return path

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

    def check_databases(self, cycle):
        files = glob.glob(os.path.join(self.state, "*.db"))
        self.assertTrue(files, "no database in the state directory")
        for path in files:
            # Read-only: a writable connection would checkpoint the WAL on close, and
            # the restarted guardd would not have to recover it.
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                result = [r[0] for r in conn.execute("PRAGMA integrity_check")]
            finally:
                conn.close()
            self.assertEqual(result, ["ok"], f"kill {cycle}: {path} is damaged")

    def approved_rules(self):
        with mgtest.db(self.state) as conn:
            return {(r["path"], r["sha256"])
                    for r in conn.execute("SELECT path, sha256 FROM rules WHERE action = 'approve'")}

    def test_approvals_reported_done_survive_50_kills_and_the_database_stays_intact(self):
        seed = int(os.environ.get("MG_CRASH_SEED", str(time.time_ns() % 1_000_000)))
        print(f"MG_CRASH_SEED={seed} MG_CRASH_CYCLES={CYCLES}")
        rng = random.Random(seed)
        Listener(self, "127.0.0.1", 25)
        sender = copy_program(CONNECT, os.path.join(self.dir, "sender"))
        stranger = copy_program(CONNECT, os.path.join(self.dir, "stranger"))
        mgtest.seed(self.state, "approve", sender)

        done = []
        cut_off = 0
        last_before_kill = []
        startup_kills = 0
        for cycle in range(1, CYCLES + 1):
            if cycle % 5 == 0:
                # A kill during start-up: opening the store, recovering the WAL,
                # replacing the table.
                with open(self.guardd.log_path, "a") as log:
                    self.guardd.proc = subprocess.Popen(
                        self.guardd.args(), stdout=subprocess.DEVNULL, stderr=log,
                        env=self.bus.env())
                time.sleep(rng.uniform(0, 0.15))
                self.guardd.kill9()
                startup_kills += 1
            else:
                self.guardd.start(env=self.bus.env())
                self.bus.wait_for_name()
                self.start_clients(sender, stranger)
                approver = Approver(self.bus, self.make_program)
                approver.start()
                time.sleep(rng.uniform(0.05, 0.6))
                self.guardd.kill9()
                approver.stop.set()
                approver.join(60)
                self.assertFalse(approver.is_alive(), "guardctl hung after the kill")
                self.stop_clients()
                done += approver.done
                cut_off += approver.failed
                if approver.done:
                    last_before_kill.append(approver.done[-1][0])

            self.check_databases(cycle)
            missing = set(done) - self.approved_rules()
            self.assertFalse(missing, f"kill {cycle}: approvals reported done are gone: "
                                      f"{sorted(missing)}")

        print(f"{CYCLES} kills ({startup_kills} during start-up), {len(done)} approvals "
              f"reported done, all present; {cut_off} approve calls cut off by a kill; "
              f"attempts recorded: {len(mgtest.attempts(self.state))}")
        self.assertGreaterEqual(len(done), CYCLES // 2, "too few approvals to say anything")
        self.assertTrue(mgtest.attempts(self.state, verdict="allow"), "no allowed attempt recorded")

        # The restarted guardd enforces what was approved: the last program approved
        # before a few of the kills connects at once.
        self.guardd.start(env=self.bus.env())
        for path in last_before_kill[-5:]:
            r = mgtest.connect("127.0.0.1", 25, timeout_ms=3000, exe=path)
            self.assertTrue(r["connected"], f"{path} was approved before a kill: {r}")
        with open(sender, "rb") as f:
            self.assertIn((sender, hashlib.sha256(f.read()).hexdigest()), self.approved_rules())


if __name__ == "__main__":
    mgtest.main()
