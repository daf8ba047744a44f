"""A same-user copy of the owner's approved mail client, run from /tmp and behaving like
a spam bot, is the detector's own principal: it is quarantined as itself, the alert
names the copy, and the owner's client keeps connecting (also after a restart).

The owner's client is mg-connect installed root-owned in /usr/local/bin, a path guardd
trusts (root-owned file and folders). So that nothing is left in this machine's
/usr/local/bin, ctest runs this module in a private mount namespace as well, and the test
mounts a tmpfs (root, 0755) there: it vanishes with the namespace. The copy has the same
bytes (same SHA-256) and runs as the same user (root here)."""
import errno
import json
import os
import subprocess

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import CONNECT, Listener, attempts, connect, copy_program, wait_for

CTEST_LABEL = "dbus"
# ctest runs these in a private mount namespace as well (discover_tests.py).
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]
mgtest.require_private_netns()

INSTALLED = "/usr/local/bin/mailguard-test-client"


def require_private_mount_namespace():
    """Mounting in the host's mount namespace would leave the mount behind for everyone."""
    # The parent (ctest, or the shell that ran unshare) is in the namespace we came from.
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        raise SystemExit("refusing to mount over /usr/local/bin in the host's mount namespace: "
                         "run under `unshare -n -m --propagation private` (as ctest does)")


class CopyOfTheApprovedClient(GuarddOnBusTest):
    def setUp(self):
        require_private_mount_namespace()
        super().setUp()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "mailguard-test",
                        os.path.dirname(INSTALLED)], check=True)
        self.addCleanup(subprocess.run, ["umount", "-l", os.path.dirname(INSTALLED)], check=False)
        self.owner = copy_program(CONNECT, INSTALLED)
        # The same bytes in the user's own space (the test's folder under /tmp).
        self.copy = copy_program(CONNECT, os.path.join(self.dir, "mailguard-test-client"))

    def alerts_for(self, path):
        return [a for a in self.ctl_json("alerts") if a["path"] == path]

    def test_a_bot_like_copy_is_quarantined_as_itself_and_the_owners_client_keeps_working(self):
        relay = Listener(self, "127.0.0.1", 587)
        self.start_guardd()
        self.held_program(self.owner, "127.0.0.1", 587, timeout_ms=300)
        self.assertEqual(self.ctl_json("approve", self.owner)["state"], "approved")
        for _ in range(3):
            self.assertTrue(connect("127.0.0.1", 587, timeout_ms=3000, exe=self.owner)["connected"])

        # The copy tries one mail server after another (each a distinct 127.3.0.N:25).
        taken = None
        for n in range(1, 11):
            r = connect(f"127.3.0.{n}", 25, timeout_ms=300, exe=self.copy)
            self.assertFalse(r["connected"], "an unapproved copy must not get through")
            p = self.program(self.copy)
            if p and p["state"] == "quarantined":
                taken = n
                break
        self.assertIsNotNone(taken, f"the copy was not quarantined within 10 attempts: "
                             f"{self.ctl_json('programs')} {self.ctl_json('alerts')}")
        owner, copy = self.program(self.owner), self.program(self.copy)
        self.assertEqual(owner["sha256"], copy["sha256"], "the copy has the client's bytes")
        self.assertEqual(owner["uid"], copy["uid"])
        self.assertEqual(owner["state"], "approved", self.ctl_json("programs"))

        # The alerts name the copy, never the owner's client.
        alerts = self.ctl_json("alerts")
        self.assertTrue(alerts)
        self.assertEqual({a["path"] for a in alerts}, {self.copy}, alerts)
        hard = [a for a in alerts if a["tier"] == "hard"]
        self.assertEqual(len(hard), 1, alerts)
        self.assertEqual(hard[0]["evidence"]["principal"]["path"], self.copy, hard[0])
        self.assertEqual(hard[0]["evidence"]["program"], self.copy, hard[0])
        self.assertTrue(set(hard[0]["evidence"]["sample_destinations"]) <=
                        {f"127.3.0.{n}" for n in range(1, taken + 1)}, hard[0])

        # The owner's client connects; the copy is refused at once.
        results = connect("127.0.0.1", 587, timeout_ms=3000, exe=self.owner, count=5)
        self.assertTrue(all(r["connected"] for r in results), results)
        wait_for(lambda: relay.accepted >= 8, 5, "the relay to accept the client's connections")
        r = connect("127.0.0.1", 587, timeout_ms=5000, exe=self.copy)
        self.assertFalse(r["connected"])
        self.assertIn(r["errno"], (errno.ECONNREFUSED, errno.ECONNRESET), r)
        self.assertLess(r["ms"], 500, "a quarantined copy must fail at once")
        rows = wait_for(lambda: attempts(self.state, path=self.copy, dst="127.0.0.1"), 5,
                        "the copy's refused attempt in the database")
        self.assertEqual(rows[0]["verdict"], "reject")
        self.assertIn("quarantined", rows[0]["reason"])
        self.assertFalse(attempts(self.state, path=self.owner, verdict="reject"))
        self.assertFalse(attempts(self.state, path=self.owner, verdict="hold")[:-1],
                         "only the owner's first attempt, before approval, was held")

        # Saved as two principals: the copy's quarantined, the client's not.
        self.guardd.stop()
        with mgtest.db(self.state) as conn:
            snapshots = {json.loads(r["snapshot"])["principal"]["path"]: json.loads(r["snapshot"])
                         for r in conn.execute("SELECT snapshot FROM detector_state "
                                               "WHERE principal NOT LIKE '#%'")}
        self.assertEqual(set(snapshots), {self.owner, self.copy})
        self.assertTrue(snapshots[self.copy]["quarantined"])
        self.assertFalse(snapshots[self.owner]["quarantined"])

        # And so after a restart.
        self.start_guardd()
        self.assertEqual(self.program(self.owner)["state"], "approved")
        self.assertEqual(self.program(self.copy)["state"], "quarantined")
        self.assertTrue(connect("127.0.0.1", 587, timeout_ms=3000, exe=self.owner)["connected"])
        self.assertEqual(self.ctl("release", self.owner, ok=False).returncode, 1,
                         "the owner's client was never quarantined: nothing to release")


if __name__ == "__main__":
    mgtest.main()
