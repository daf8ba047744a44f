"""What guardctl shows of mail handed to exim without TCP, and what it says before a denial
deletes held mail. A program's row counts the held mail of all its versions, and its
approval releases all of it.

The setting is test_mta_exim.py's (a real exim under a private configuration, its ACL asking
guardd, guard-mta-agent releasing and deleting, a sink in a second network namespace), with
guardd on a private system bus so that guardctl can ask it. Run as root; needs
exim4-daemon-light (install/deps.sh --test)."""
import os
import re
import subprocess
import textwrap
import unittest

import mgtest
import test_mta_exim as exim
from busfixture import GUARDCTL, PrivateBus
from mgtest import wait_for

mgtest.require_private_netns()

CTEST_LABEL = "dbus"
PYTHON = exim.PYTHON
MESSAGES = exim.MESSAGES


class MtaUi(unittest.TestCase):
    # test_mta_exim's fixture, borrowed method by method: subclassing it would run its
    # tests here a second time.
    SINK_ARGS = exim.EximGate.SINK_ARGS
    write_file = exim.EximGate.write_file
    write_exim_conf = exim.EximGate.write_exim_conf
    start_sink = exim.EximGate.start_sink
    bot = exim.EximGate.bot
    delivered = exim.EximGate.delivered
    queue = exim.EximGate.queue
    frozen = exim.EximGate.frozen
    mta_attempts = exim.EximGate.mta_attempts
    tearDown = exim.EximGate.tearDown

    def setUp(self):
        if not os.path.exists(exim.EXIM):
            self.skipTest("exim4 is not installed (install/deps.sh --test installs it)")
        self.bus = PrivateBus(self, mgtest.make_tempdir(self)).start()
        # guardd inherits the environment: this points it at the private bus.
        before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.addCleanup(lambda: os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS") if before is None
                        else os.environ.__setitem__("DBUS_SYSTEM_BUS_ADDRESS", before))
        exim.EximGate.setUp(self)
        self.bus.wait_for_name()

    def ctl(self, *args):
        """guardctl with no terminal to ask on (stdin is /dev/null), as a script runs it."""
        env = self.bus.env()
        for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
            env.pop(k, None)
        return subprocess.run([GUARDCTL, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=120)

    def ctl_json(self, *args):
        r = self.ctl("--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        import json
        return json.loads(r.stdout)

    def held_script(self, name):
        """Runs a fresh script that hands MESSAGES messages to sendmail; returns its path
        once guardd recorded them all as held."""
        script = self.bot(name, [self.sendmail])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.mta_attempts(script)) == MESSAGES, 10, "the held attempts")
        self.assertEqual(self.frozen(), MESSAGES)
        return script

    def program_of(self, script):
        found = [p for p in self.ctl_json("programs") if p["script_path"] == script]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def queue_ids(self):
        out = subprocess.run([exim.EXIM, "-C", self.conf, "-bp"], capture_output=True,
                             text=True).stdout
        return set(re.findall(r"\b[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}\b", out))

    def test_held_submission_shows_channel_mta_and_its_queue_id(self):
        script = self.held_script("news.py")
        rows = [a for a in self.ctl_json("attempts", "--verdict", "hold")
                if a["script_path"] == script]
        self.assertEqual(len(rows), MESSAGES, rows[:2])
        self.assertTrue(all(a["channel"] == "mta" for a in rows), rows[:2])
        ids = {a["queue_id"] for a in rows}
        self.assertEqual(ids, self.queue_ids(), "each attempt names its frozen message")
        self.assertTrue(all(a["queue_id"] not in a["reason"] for a in rows), rows[:2])
        self.assertTrue(all(a["src"] == "exim" and a["port"] == 0 for a in rows), rows[:2])
        self.assertIn("d7.example", {a["dst"] for a in rows})
        # The store keeps them in columns of their own.
        stored = {a["queue_id"] for a in self.mta_attempts(script) if a["channel"] == "mta"}
        self.assertEqual(stored, ids)
        # The table shows both too.
        table = self.ctl("attempts", "--verdict", "hold").stdout
        self.assertIn("CHANNEL", table)
        self.assertIn(sorted(ids)[0], table)
        # And the program list counts its held messages.
        self.assertEqual(self.program_of(script)["held_messages"], MESSAGES)

    def test_deny_names_the_held_count_and_needs_yes_without_a_terminal(self):
        script = self.held_script("spam.py")
        program = self.program_of(script)
        notice = f"{MESSAGES} held messages of {PYTHON} {script} will be deleted"

        refused = self.ctl("deny", str(program["id"]))
        self.assertEqual(refused.returncode, 1, refused.stderr)
        self.assertIn(notice, refused.stderr)
        self.assertIn("--yes", refused.stderr)
        self.assertEqual(self.program_of(script)["state"], "pending", "nothing was denied")
        self.assertEqual(self.frozen(), MESSAGES, "nothing was deleted")

        # By path the same count is named.
        by_path = self.ctl("deny", PYTHON, "--script", script)
        self.assertEqual(by_path.returncode, 1, by_path.stderr)
        self.assertIn(notice, by_path.stderr)

        done = self.ctl("deny", "--yes", str(program["id"]))
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(notice, done.stderr)
        self.assertIn("is denied", done.stdout)
        wait_for(lambda: self.queue() == 0, 30, "the denied script's messages deleted")
        self.assertEqual(self.delivered(), [])
        wait_for(lambda: self.program_of(script)["held_messages"] == 0, 10, "no held count")

    def versions_bot(self, name, version, count):
        """A python3 script (its content tagged with `version`) that hands `count` messages
        to sendmail."""
        return self.write_file(name, textwrap.dedent(f"""\
            # version {version}
            import subprocess
            for i in range({count}):
                msg = f"From: x@pc.test\\nTo: user@v{version}-{{i}}.example\\nSubject: hi\\n\\nhi\\n"
                r = subprocess.run([{self.sendmail!r}, "-t"], input=msg.encode())
                if r.returncode not in (0, 1):  # as bot() allows
                    raise SystemExit(r.returncode)
            """))

    def test_a_row_counts_and_releases_the_held_mail_of_all_its_versions(self):
        # Rewritten between runs: a new version of the same script, on the same row.
        script = self.versions_bot("digest.py", 1, 2)
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: self.frozen() == 2, 10, "the first version's 2 messages held")
        first = self.program_of(script)
        self.versions_bot("digest.py", 2, 1)
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: self.frozen() == 3, 10, "the second version's message held too")
        row = wait_for(lambda: (lambda p: p if p["id"] != first["id"] else None)(
            self.program_of(script)), 10, "the row's current version to be the new content")
        self.assertEqual(len(row["versions"]), 2, row)
        self.assertEqual(row["held_messages"], 3, "the row counts every version's held mail")
        self.assertEqual(self.delivered(), [])

        approved = self.ctl("approve", str(row["id"]))
        self.assertEqual(approved.returncode, 0, approved.stderr)
        wait_for(lambda: len(self.delivered()) == 3, 60, "all 3 held messages delivered")
        self.assertEqual(sorted(m["rcpt"][0] for m in self.delivered()),
                         ["user@v1-0.example", "user@v1-1.example", "user@v2-0.example"])
        wait_for(lambda: self.queue() == 0, 10, "an empty queue")
        wait_for(lambda: self.program_of(script)["held_messages"] == 0, 10, "no held count")

    def test_deny_of_a_program_without_held_mail_asks_nothing(self):
        client = mgtest.copy_program(mgtest.CONNECT, os.path.join(self.dir, "mailclient"))
        mgtest.connect("127.0.0.1", 25, 300, exe=client)
        wait_for(lambda: any(p["path"] == client for p in self.ctl_json("programs")), 10,
                 "the client's program")
        r = self.ctl("deny", client)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("held message", r.stderr)


if __name__ == "__main__":
    mgtest.main()
