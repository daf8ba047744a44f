"""Script identity: an approval of `python3 /srv/news.py` applies only to a process that
runs that file. Each test tries one way for another script to pass as the approved one,
with the real python3 in a fresh network namespace, and checks that the plain approved
script still connects. Run as root."""
import os
import subprocess
import unittest

import mgtest
from mgtest import Guardd, Listener, attempts, seed, wait_for

mgtest.require_private_netns()

PYTHON = os.path.realpath("/usr/bin/python3")

# Connects to the test's listener, after `before` (Python statements) has run.
CONNECT = ("import socket\n"
           "s = socket.socket(); s.settimeout(1.5)\n"
           "try:\n    s.connect(('127.0.0.1', 25)); print('connected')\n"
           "except OSError as e:\n    print('failed', e)\n")


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


class ScriptIdentity(unittest.TestCase):
    def setUp(self):
        self.dir = mgtest.make_tempdir(self)
        self.state = os.path.join(self.dir, "state")
        self.srv = os.path.join(self.dir, "srv")
        self.bot_dir = os.path.join(self.dir, "bot")
        os.mkdir(self.srv, 0o755)
        os.mkdir(self.bot_dir, 0o755)
        self.approved = os.path.join(self.srv, "news.py")
        write(self.approved, "# the newsletter\n" + CONNECT)
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "approve", PYTHON, self.approved)
        Guardd(self, self.state).start()

    def run_python(self, argv, cwd=None, prefix=()):
        r = subprocess.run(list(prefix) + [PYTHON] + argv, capture_output=True, text=True,
                           cwd=cwd, timeout=30)
        return r.stdout.strip() + r.stderr.strip()

    def held_row(self, script_path):
        row = wait_for(lambda: attempts(self.state, script_path=script_path), 5,
                       f"an attempt of {script_path}")[0]
        self.assertEqual(row["verdict"], "hold", row)
        self.assertEqual(row["path"], PYTHON)
        return row

    def assert_approved_still_connects(self):
        self.assertEqual(self.run_python([self.approved]), "connected")

    def test_approved_script_by_its_full_path_connects(self):
        self.assertEqual(self.run_python([self.approved], cwd="/"), "connected")
        row = wait_for(lambda: attempts(self.state, verdict="allow"), 5, "the allowed attempt")[0]
        self.assertEqual(row["script_path"], self.approved)

    def test_look_alike_that_changes_to_the_approved_folder_is_held(self):
        # The bot's own news.py, run from its folder by a relative name, moves to the
        # approved script's folder before connecting: its command line then reads as
        # /srv/news.py resolved against the current directory.
        write(os.path.join(self.bot_dir, "news.py"),
              f"import os\nos.chdir({self.srv!r})\n" + CONNECT)
        self.assertTrue(self.run_python(["news.py"], cwd=self.bot_dir).startswith("failed"))
        row = self.held_row(self.approved)
        self.assertIn("relative path (news.py)", row["reason"])
        self.assert_approved_still_connects()

    def test_script_seen_through_another_mount_namespace_is_held(self):
        # In a mount namespace of its own, the bot binds its file over the approved path:
        # there, /srv/news.py is the bot. guardd reads the file as the process sees it.
        bot = os.path.join(self.bot_dir, "payload.py")
        write(bot, "# not the newsletter\n" + CONNECT)
        out = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             f'mount --bind "$1" "$2" && exec "$3" "$2"', "sh", bot, self.approved, PYTHON],
            capture_output=True, text=True, timeout=30)
        self.assertTrue(out.stdout.startswith("failed"), out.stdout + out.stderr)
        row = self.held_row(self.approved)
        self.assertIn("another mount namespace", row["reason"])
        self.assert_approved_still_connects()

    def test_script_whose_folder_becomes_a_link_to_the_approved_one_is_held(self):
        # The bot runs its own news.py by a full path in its folder, then swaps the folder
        # for a link to the approved script's folder: the path now resolves to /srv/news.py.
        folder = os.path.join(self.bot_dir, "x")
        os.mkdir(folder, 0o755)
        write(os.path.join(folder, "news.py"),
              "import os, time\n"
              "time.sleep(2.5)\n"
              f"os.rename({folder!r}, {folder + '.old'!r})\n"
              f"os.symlink({self.srv!r}, {folder!r})\n" + CONNECT)
        self.assertTrue(self.run_python([os.path.join(folder, "news.py")]).startswith("failed"))
        row = self.held_row(self.approved)
        self.assertIn("a link on its script's path", row["reason"])
        self.assert_approved_still_connects()

    def test_script_that_restores_the_approved_text_after_starting_is_held(self):
        # A script the owner's user can write ran bot code, then put the approved text back
        # before connecting: hashed now, it reads as approved.
        tricky = os.path.join(self.dir, "own.py")
        approved_text = "# mine\n" + CONNECT
        write(tricky, approved_text)
        seed(self.state, "approve", PYTHON, tricky)
        write(tricky, "import time\n"
                      "code = open(__file__).read()\n"
                      "time.sleep(2.5)\n"
                      f"with open(__file__, 'r+') as f: f.write({approved_text!r}); f.truncate()\n"
                      + CONNECT)
        self.assertTrue(self.run_python([tricky]).startswith("failed"))
        row = self.held_row(tricky)
        self.assertIn("changed after the program started", row["reason"])
        # Run afresh, the (now approved) text connects.
        self.assertEqual(self.run_python([tricky]), "connected")


if __name__ == "__main__":
    mgtest.main()
