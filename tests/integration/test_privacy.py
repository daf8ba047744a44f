"""Privacy of attempts: guardd gives a command line only to root and to the user who ran
the program, masks password-like arguments before anything is stored, logged or sent,
and masks those stored by an older guardd when it migrates the database. Real guardd, a
real dbus-daemon with install/'s policy, guardctl run as `nobody` and as root (run as root
under `unshare -n`)."""
import glob
import json
import os
import pwd
import sqlite3
import subprocess
import time

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import distinct_copy, wait_for

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

SECRET = "s3cret"
HIDDEN = "another user's"


def state_bytes(state_dir):
    """Every byte of every file in the state directory: the database, its WAL and shm."""
    out = b""
    for path in sorted(glob.glob(os.path.join(state_dir, "*"))):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                out += f.read()
    return out


class Privacy(GuarddOnBusTest):
    def run_client(self, exe, tag, user=None):
        """One held connect by `exe` (mg-connect) whose command line carries a password
        twice (an option and a URL) and `tag`; mg-connect ignores what follows its
        sixth argument."""
        argv_tail = ["--auth-password", SECRET, f"smtps://me:{SECRET}@mail.example.org",
                     "--tag", tag]
        argv = [exe, "127.0.0.1", "25", "600", "1", "", *argv_tail]
        if user:
            argv = mgtest.as_user(user) + argv
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
        self.assertTrue(lines, f"mg-connect printed nothing: {out.stderr}")
        self.assertFalse(lines[0]["connected"], "an unknown program is held")

    def test_nobody_sees_only_its_own_command_lines_and_no_password_is_stored(self):
        self.start_guardd()
        nobody = pwd.getpwnam("nobody").pw_uid
        root_client = distinct_copy(self.client, os.path.join(self.dir, "root-mailer"), "root")
        nobody_client = distinct_copy(self.client, os.path.join(self.dir, "nobody-mailer"),
                                      "nobody")
        self.run_client(root_client, "rootonly")
        self.run_client(nobody_client, "nobodyown", user="nobody")

        def both():
            rows = {a["path"]: a for a in self.ctl_json("attempts")}
            return rows if {root_client, nobody_client} <= set(rows) else None
        as_root = wait_for(both, 10, "both held attempts")

        # Root sees both command lines, masked.
        self.assertEqual(as_root[nobody_client]["uid"], nobody)
        for path, tag in ((root_client, "rootonly"), (nobody_client, "nobodyown")):
            a = as_root[path]
            self.assertIsNone(a["cmdline_hidden"], a)
            self.assertIn(f"--auth-password *** smtps://me:***@mail.example.org --tag {tag}",
                          a["cmdline"])
            self.assertNotIn(SECRET, a["cmdline"])

        # nobody sees its own, not root's: empty, and why.
        as_nobody = {a["path"]: a for a in self.ctl_json("attempts", user="nobody")}
        own = as_nobody[nobody_client]
        self.assertIn("--tag nobodyown", own["cmdline"])
        self.assertIsNone(own["cmdline_hidden"])
        other = as_nobody[root_client]
        self.assertEqual((other["cmdline"], other["cmdline_hidden"]), ("", HIDDEN), other)
        self.assertEqual(other["uid"], 0, "who ran it stays visible")
        # The table cuts command lines: their start, the program's path, tells them apart.
        table = self.ctl("attempts", user="nobody").stdout
        self.assertIn("(hidden: another user's)", table)
        self.assertIn(f"{nobody_client} 127.0.0.1 25", table)
        self.assertNotIn(f"{root_client} 127.0.0.1 25", table)
        # The same call on the bus itself, as nobody: the reply holds no trace of it.
        raw = self.bus.gdbus_call("Attempts", "0", "0", "0", "", "0", "0", user="nobody")
        self.assertNotIn("rootonly", raw.stdout)
        self.assertIn("nobodyown", raw.stdout)
        self.assertIn(HIDDEN, raw.stdout)
        # Root's table shows both.
        table = self.ctl("attempts").stdout
        self.assertIn(f"{root_client} 127.0.0.1 25", table)
        self.assertIn(f"{nobody_client} 127.0.0.1 25", table)
        self.assertNotIn("(hidden", table)

        # Nowhere in the store (database, WAL) nor in guardd's log, while it runs ...
        self.assertNotIn(SECRET.encode(), state_bytes(self.state))
        self.assertNotIn(SECRET, self.guardd.log())
        # ... and after it stopped (its WAL checkpointed into the database).
        self.guardd.stop()
        self.assertNotIn(SECRET.encode(), state_bytes(self.state))
        with mgtest.db(self.state) as conn:
            rows = conn.execute("SELECT cmdline FROM attempts").fetchall()
        self.assertEqual(len(rows), 2)
        self.assertTrue(all("--auth-password ***" in r[0] for r in rows), rows)

    def test_command_lines_stored_unmasked_by_an_older_guardd_are_masked_on_start(self):
        self.start_guardd()
        self.guardd.stop()
        # What guardd stored before it masked (schema version 5, before the attempts' channel
        # columns), the password in clear.
        path = os.path.join(self.state, "mailguard.db")
        now = int(time.time() * 1e6)  # recent: older attempts are pruned at start
        conn = sqlite3.connect(path)
        with conn:
            conn.execute("ALTER TABLE attempts DROP COLUMN channel")
            conn.execute("ALTER TABLE attempts DROP COLUMN queue_id")
            # and before the audit's LAN rows (step 9)
            conn.execute("DROP TABLE audit_lan")
            conn.execute("ALTER TABLE audit_results DROP COLUMN auth_in_clear")
            conn.execute("PRAGMA user_version = 5")
            conn.executemany(
                "INSERT INTO attempts(id, time, uid, cmdline, verdict) VALUES(?, ?, 1000, ?, ?)",
                [(1, now, f"swaks --auth-password {SECRET} --to a@b.example", "hold"),
                 (2, now, f"curl -u me:{SECRET} smtp://mail.example.org", "hold"),
                 (3, now, "swaks -p 25 --to a@b.example", "allow")])
        conn.close()
        self.assertIn(SECRET.encode(), state_bytes(self.state), "the test's premise")

        self.start_guardd()
        shown = {a["id"]: a["cmdline"] for a in self.ctl_json("attempts")}
        self.assertEqual(shown, {1: "swaks --auth-password *** --to a@b.example",
                                 2: "curl -u me:*** smtp://mail.example.org",
                                 3: "swaks -p 25 --to a@b.example"})
        self.assertNotIn(SECRET.encode(), state_bytes(self.state))
        self.guardd.stop()
        self.assertNotIn(SECRET.encode(), state_bytes(self.state))
        self.assertEqual(mgtest.integrity_check(self.state),
                         {path: "ok"})


if __name__ == "__main__":
    mgtest.main()
