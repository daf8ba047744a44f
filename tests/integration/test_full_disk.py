"""Full disk: guardd's state directory on a small tmpfs that fills up.

ctest starts these under `unshare -n -m --propagation private`: the tmpfs is mounted in
the test's own mount namespace (checked before mounting) and vanishes with it.

What guardd promises while the disk is full, and what is checked here:
- enforcement goes on: approved programs connect, unknown ones are held, denied ones
  refused, exactly as before;
- `guardctl --json status` names the store error (`store_error`, `store_errors`);
- an approval is either refused with an error that says the disk is full, or kept:
  after recovery and a restart, every approval reported done is in the database;
- attempts that cannot be written are retried for about 1.5 s, then counted in
  `attempts_dropped`: every attempt made is either in the database afterwards or
  counted there, none lost silently;
- an alert raised while the disk is full (a bot quarantined) is kept in memory and
  status says it waits; once space returns it is stored, and the quarantine with it;
- once space returns guardd recovers by itself: the next attempt is stored, the
  status error clears, approvals persist across a restart, and the database passes
  PRAGMA integrity_check.
"""
import errno
import os
import subprocess

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import Listener, connect, wait_for

# ctest runs these in a private mount namespace as well (discover_tests.py).
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]
mgtest.require_private_netns()

TMPFS_SIZE = "4m"


def require_private_mount_namespace():
    """Mounting in the host's mount namespace would leave the mount behind for everyone."""
    # The parent (ctest, or the shell that ran unshare) is in the namespace we came from.
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        raise SystemExit("refusing to mount a tmpfs in the host's mount namespace: "
                         "run under `unshare -m --propagation private` (as ctest does)")


def fill(directory):
    """Writes a filler file until the file system says ENOSPC; returns its path."""
    path = os.path.join(directory, "filler")
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
        # The last partial block as well, so that not even a page is left.
        for size in (4096, 512, 1):
            while True:
                try:
                    f.write(b"\0" * size)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    return path


class FullDisk(GuarddOnBusTest):
    def setUp(self):
        require_private_mount_namespace()
        super().setUp()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0750",
                        "mailguard-test", self.state], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", self.state], check=False)
        # Each its own content: a denial follows a program's hash to any path.
        self.unknown = self.new_program("unknown")
        self.denied = self.new_program("denied")
        self.made = 0  # connection attempts made, each one attempt record for guardd

    def new_program(self, name):
        return mgtest.distinct_copy(mgtest.CONNECT, os.path.join(self.dir, name), name)

    # Submission (587) to one relay, as a mail client does: a burst of direct port-25
    # attempts would (rightly) get the detector's throttle, which is not under test here.
    def attempt(self, exe, port=587, timeout_ms=3000):
        self.made += 1
        return connect("127.0.0.1", port, timeout_ms, exe=exe)

    def enforcement_works(self, listener):
        before = listener.settled()
        ok = self.attempt(self.client)
        self.assertTrue(ok["connected"], ok)
        held = self.attempt(self.unknown, timeout_ms=1200)
        self.assertFalse(held["connected"], held)
        self.assertEqual(held["errno"], errno.ETIMEDOUT, held)
        refused = self.attempt(self.denied)
        self.assertFalse(refused["connected"], refused)
        self.assertEqual(refused["errno"], errno.ECONNREFUSED, refused)
        self.assertLess(refused["ms"], 1000, refused)
        self.assertEqual(listener.settled(), before + 1)

    def status(self):
        return self.ctl_json("status")

    def state_of(self, path):
        program = self.program(path)
        return program and program["state"]

    def stored_attempts(self):
        with mgtest.db(self.state) as conn:
            return conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0]

    def integrity(self):
        return set(mgtest.integrity_check(self.state).values())

    def start(self):
        self.start_guardd()
        self.ctl("approve", self.client)
        self.ctl("deny", self.denied)
        return Listener(self, "127.0.0.1", 587)

    def test_guardd_enforces_reports_and_recovers_on_a_full_state_disk(self):
        listener = self.start()
        self.enforcement_works(listener)
        wait_for(lambda: self.stored_attempts() == self.made, 10, "the first attempts stored")
        self.assertIsNone(self.status()["store_error"])

        filler = fill(self.state)
        # Enforcement does not depend on the disk.
        for _ in range(3):
            self.enforcement_works(listener)
        # More attempts than the WAL's spare pages hold, so writes really fail.
        for _ in range(40):
            r = self.attempt(self.client)
            self.assertTrue(r["connected"], r)
        status = wait_for(lambda: (s := self.status())["store_error"] and s, 15,
                          "the store error in guardctl status")
        self.assertIn("full", status["store_error"], status)
        self.assertGreater(status["counters"]["store_errors"], 0, status)
        self.assertTrue(status["enforcing"], status)
        human = self.ctl("status").stdout
        self.assertIn("full", human)
        # Attempts not written are counted once guardd gives up retrying them.
        wait_for(lambda: self.status()["counters"]["attempts_dropped"] > 0, 15,
                 "attempts_dropped to count what could not be written")

        os.unlink(filler)
        # Recovery: the next attempt is written and the error clears by itself.
        self.enforcement_works(listener)
        wait_for(lambda: self.status()["store_error"] is None, 15,
                 "the store error to clear once space returned")
        dropped = self.status()["counters"]["attempts_dropped"]
        wait_for(lambda: self.stored_attempts() + dropped == self.made, 10,
                 f"every one of {self.made} attempts stored or counted as dropped "
                 f"({dropped} dropped)")
        newest = mgtest.attempts(self.state)[0]
        self.assertEqual(newest["path"], self.denied)  # the last one made after recovery
        self.assertEqual(self.integrity(), {"ok"})

        # Restart: the approvals are still there and still work.
        self.guardd.stop()
        self.assertEqual(self.integrity(), {"ok"})
        self.start_guardd()
        self.enforcement_works(listener)

    def test_approval_on_a_full_disk_is_refused_or_kept_never_lost(self):
        listener = self.start()
        self.enforcement_works(listener)
        filler = fill(self.state)
        # Many new programs, so that the approvals outgrow whatever the WAL has spare.
        programs = [self.new_program(f"new{i}") for i in range(12)]
        done, refused = [], []
        for path in programs:
            r = self.ctl("--json", "approve", path, ok=False)
            if r.returncode == 0:
                done.append(path)
            else:
                refused.append((path, r.stderr))
        for path, err in refused:
            self.assertIn("full", err, f"approving {path} failed without saying why: {err}")
        self.assertGreater(len(refused), 0, "no approval failed: the disk was not full")
        print(f"approvals while full: {len(done)} kept, {len(refused)} refused "
              f"({refused[0][1].strip()})", flush=True)
        # Enforcement follows what was reported: kept approvals connect, refused ones are held.
        for path in done:
            self.assertTrue(self.attempt(path)["connected"], path)
        for path, _ in refused:
            self.assertFalse(self.attempt(path, timeout_ms=1200)["connected"], path)

        os.unlink(filler)
        self.guardd.stop()
        self.assertEqual(self.integrity(), {"ok"})
        rules = {path for path, _ in mgtest.approved_rules(self.state)}
        for path in done:
            self.assertIn(path, rules, "an approval reported done was lost")
        for path, _ in refused:
            self.assertNotIn(path, rules, "an approval reported failed was kept")
        self.start_guardd()
        for path in done:
            self.assertTrue(self.attempt(path)["connected"], path)
        # Once space is back, approving works again.
        self.ctl("approve", refused[0][0])
        self.assertTrue(self.attempt(refused[0][0])["connected"])


    def test_alerts_raised_on_a_full_disk_are_stored_once_space_returns(self):
        listener = self.start()
        self.enforcement_works(listener)
        bot = self.new_program("bot")
        filler = fill(self.state)
        for _ in range(40):  # past the WAL's spare pages, as above
            self.assertTrue(self.attempt(self.client)["connected"])
        wait_for(lambda: self.status()["store_error"], 15, "the store error")

        # A bot sends direct to distinct mail servers until it is quarantined.
        for n in range(1, 11):
            r = connect(f"127.1.0.{n}", 25, timeout_ms=300, exe=bot)
            self.assertFalse(r["connected"], "an unapproved bot must not get through")
            if self.state_of(bot) == "quarantined":
                break
        self.assertEqual(self.state_of(bot), "quarantined")
        status = wait_for(lambda: (s := self.status())["store_error"] and
                          "to be stored" in s["store_error"] and s, 15,
                          "status to say that alerts wait to be stored")
        self.assertIn("full", status["store_error"], status)
        # Listed all the same (guardd adds what it has yet to write): the owner learns of
        # the quarantine while the disk is full. Only a restart now would lose it.
        self.assertIn(bot, [a["path"] for a in self.ctl_json("alerts") if a["tier"] == "hard"])

        os.unlink(filler)
        wait_for(lambda: self.status()["store_error"] is None, 15,
                 "the store error to clear once space returned")
        hard = [a for a in self.ctl_json("alerts") if a["path"] == bot and a["tier"] == "hard"]
        self.assertEqual(len(hard), 1, self.ctl_json("alerts"))
        self.assertGreater(hard[0]["id"], 0)
        self.assertIn("quarantined", hard[0]["summary"])
        # Stored, so it outlives guardd: after a restart the alert and the quarantine remain.
        self.guardd.stop()
        self.assertEqual(self.integrity(), {"ok"})
        self.start_guardd()
        self.assertEqual([a["id"] for a in self.ctl_json("alerts") if a["path"] == bot
                          and a["tier"] == "hard"], [hard[0]["id"]])
        self.assertEqual(self.state_of(bot), "quarantined")


if __name__ == "__main__":
    mgtest.main()
