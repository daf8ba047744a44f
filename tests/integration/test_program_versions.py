"""One row per program with its versions as history. A household owner approves a
program kept in a folder users can write to (like a ~/bin or a /usr/local/bin that is
not root's alone), and the file is rewritten twice: the programs list keeps one row
for it, with three versions, pending because the approval of the first content does not
carry over; approving the new content keeps that one row; forgetting the row forgets
the path's decisions and says so, and forgetting again says there is nothing to forget.
What the owner decided for an older version is still shown after guardd restarts.
Real files and the real stand-in client in a fresh network namespace, guardd on a
private bus, guardctl. Run as root."""
import os
import re

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import CONNECT, Listener, connect, distinct_copy, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()


class ProgramVersions(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        # Under /tmp (writable by everyone): a changed file is not trusted by its path.
        os.chmod(self.dir, 0o755)
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        self.exe = os.path.join(self.dir, "x")

    def write_version(self, n):
        distinct_copy(CONNECT, self.exe, f"version {n}")

    def rows(self):
        return [p for p in self.ctl_json("programs") if p["path"] == self.exe]

    def row_with(self, versions, state):
        def found():
            rows = self.rows()
            if len(rows) == 1 and len(rows[0]["versions"]) == versions and \
                    rows[0]["state"] == state:
                return rows[0]
            return None
        return wait_for(found, 5, f"one row of {self.exe} with {versions} versions, {state}")

    def test_a_rewritten_file_is_one_row_with_its_versions_as_history(self):
        self.write_version(1)
        self.ctl("approve", self.exe)
        self.assertTrue(connect("127.0.0.1", 25, exe=self.exe)["connected"])
        v1 = self.row_with(1, "approved")

        for n in (2, 3):
            self.write_version(n)
            r = connect("127.0.0.1", 25, timeout_ms=800, exe=self.exe)
            self.assertFalse(r["connected"], f"version {n} of a file in /tmp must be held")
            row = self.row_with(n, "pending")

        # The row is the newest version; the history has every version, newest first.
        versions = row["versions"]
        self.assertEqual(row["id"], versions[0]["id"])
        self.assertEqual(versions[-1]["id"], v1["id"])
        self.assertEqual(len({v["id"] for v in versions}), 3)
        for v in versions:
            self.assertEqual(set(v), {"id", "sha256", "first_seen", "state"})
            self.assertRegex(v["sha256"], r"^[0-9a-f]{64}$")
        self.assertEqual(len({v["sha256"] for v in versions}), 3)
        firsts = [v["first_seen"] for v in versions]
        self.assertEqual(firsts, sorted(firsts, reverse=True))
        self.assertEqual(versions[0]["state"], "pending: changed since approved")
        self.assertEqual(versions[1]["state"], "not decided, replaced by a newer version")
        self.assertTrue(versions[2]["state"].startswith("approved"), versions[2])

        # The counts of every row in one call (what the dashboard shows as "(3 versions)").
        r = self.bus.gdbus_call("ProgramVersionCounts")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"(int64 )?{row['id']}: (uint32 )?3\b", r.stdout)
        self.assertNotRegex(r.stdout, rf"(int64 )?{v1['id']}:", "only the row's current id")

        text = self.ctl("programs").stdout
        line = [l for l in text.splitlines() if self.exe in l]
        self.assertEqual(len(line), 1, text)
        self.assertIn("(3 versions)", line[0])
        self.assertIn("pending: changed since approved", line[0])
        listed = self.ctl("programs", "--versions").stdout
        for v in versions:
            self.assertRegex(listed, rf"(?m)^\s+{v['id']}\s", listed)

        # Approving the new content keeps the one row; the first version keeps what the
        # owner decided for it instead of turning pending.
        self.ctl("approve", str(row["id"]))
        row = self.row_with(3, "approved")
        self.assertEqual(row["id"], versions[0]["id"])
        self.assertEqual(row["versions"][0]["state"], "approved")
        self.assertTrue(row["versions"][2]["state"].startswith("approved"), row["versions"])
        self.assertNotIn("pending", row["versions"][2]["state"])
        self.assertTrue(connect("127.0.0.1", 25, exe=self.exe)["connected"])

        # Forgetting the row forgets the path's decisions, and says so.
        r = self.ctl("forget", str(row["id"]))
        self.assertIn(f"Forgot the decisions about {self.exe} (all 3 versions)", r.stdout)
        row = self.row_with(3, "pending")
        self.assertNotIn("approved", " ".join(v["state"] for v in row["versions"]))
        again = self.ctl("forget", str(row["id"]), ok=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("nothing was changed", again.stderr)

    def test_what_the_owner_decided_for_an_older_version_outlives_a_restart(self):
        self.write_version(1)
        self.ctl("approve", self.exe)
        v1 = self.row_with(1, "approved")
        self.write_version(2)
        self.assertFalse(connect("127.0.0.1", 25, timeout_ms=800, exe=self.exe)["connected"])
        row = self.row_with(2, "pending")
        self.ctl("approve", str(row["id"]))
        row = self.row_with(2, "approved")
        self.assertEqual(row["versions"][1]["id"], v1["id"])
        self.assertEqual(row["versions"][1]["state"], "approved, replaced by a newer version")

        self.daemon.restart()
        row = self.row_with(2, "approved")
        self.assertEqual([v["id"] for v in row["versions"]], [row["id"], v1["id"]])
        self.assertEqual(row["versions"][1]["state"], "approved, replaced by a newer version")
        listed = self.ctl("programs", "--versions").stdout
        self.assertIn("approved, replaced by a newer version", listed)

        # Forgetting forgets it on disk too: after another restart nothing is decided.
        self.ctl("forget", str(row["id"]))
        self.daemon.restart()
        row = self.row_with(2, "pending")
        self.assertEqual(row["versions"][1]["state"], "not decided, replaced by a newer version")

    def test_versions_of_an_unknown_program_are_not_found(self):
        r = self.bus.gdbus_call("ProgramVersions", "4242", "")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("org.mailguard.Error.NotFound", r.stderr)
        self.assertIn("no program with id 4242", r.stderr)
        r = self.ctl("forget", "4242", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertTrue(re.search(r"no program with id 4242", r.stderr), r.stderr)

    def test_the_versions_of_a_program_seen_once_are_itself(self):
        self.write_version(1)
        self.assertFalse(connect("127.0.0.1", 25, timeout_ms=800, exe=self.exe)["connected"])
        row = self.row_with(1, "pending")
        self.assertEqual([v["id"] for v in row["versions"]], [row["id"]])
        self.assertEqual(row["versions"][0]["state"], "pending")
        r = self.bus.gdbus_call("ProgramVersions", self.exe, "")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"(int64 {row['id']}, '{row['versions'][0]['sha256']}'", r.stdout)
        self.assertNotIn("versions)", self.ctl("programs").stdout)


if __name__ == "__main__":
    import unittest
    unittest.main()
