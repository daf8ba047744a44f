"""Mail handed to postfix without TCP is gated like a connection.

A real postfix (Debian's package unpacked, postfix_fixture.py) delivers over SMTP to a sink
in a second network namespace (veth, 198.18.0.0/15 addresses). guardd watches its maildrop
(fanotify) and answers its cleanup's milter; guard-mta-agent (root) releases or deletes
held messages with postsuper on the owner's decision. Scripts are real python3 programs.
Run as root; needs install/deps.sh --test (postfix's package, its user and group)."""
import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
import unittest

import mgtest
from mgtest import BUILD, Guardd, terminate, wait_for
from postfix_fixture import Postfix

mgtest.require_private_netns()

AGENT = os.path.join(BUILD, "guardd", "mta", "guard-mta-agent")
SINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mta_sink.py")
HERE, THERE = "198.18.0.1", "198.18.0.2"
PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not a wrapper of it
MESSAGES = 20


def queue_file(sender, recipient, body="hello", time=True):
    """A message in postfix's queue-file record format, as postdrop writes it into the
    maildrop (type byte, length in 7-bit groups low first, data; rec_type.h). postdrop's
    input is the same without the time record, which postdrop writes itself."""
    def rec(kind, data):
        data = data.encode()
        n, length = len(data), b""
        while True:
            byte = n & 0x7f
            n >>= 7
            length += bytes([byte | (0x80 if n else 0)])
            if not n:
                break
        return kind.encode() + length + data
    return ((rec("T", "1700000000 0") if time else b"") + rec("A", "rewrite_context=local") + rec("S", sender)
            + rec("M", "") + rec("N", f"To: {recipient}") + rec("N", "") + rec("N", body)
            + rec("X", "") + rec("R", recipient) + rec("E", ""))


class PostfixFixture(unittest.TestCase):
    """postfix, guardd answering it, the release agent and the sink."""
    CHROOT_CLEANUP = False
    SINK_ARGS = []  # extra arguments of mta_sink.py
    SYSLOG = False  # postfix logs through syslog(3), not to its maillog_file (Postfix)
    GUARDD_SETTINGS = ""  # more of guardd.conf, after [mail] and [mta]

    def setUp(self):
        self.pf = Postfix(self, THERE, chroot_cleanup=self.CHROOT_CLEANUP, syslog=self.SYSLOG)
        self.dir = mgtest.make_tempdir(self)
        self.sock = os.path.join(self.dir, "mta.sock")
        self.sent = os.path.join(self.dir, "sent.jsonl")
        open(self.sent, "w").close()
        self.start_sink()
        self.state = os.path.join(self.dir, "state")
        config = os.path.join(self.dir, "guardd.conf")
        with open(config, "w") as f:
            f.write(f'[mail]\nports = [25]\n[mta]\nsocket = "{self.sock}"\n'
                    f'postfix_config_dirs = ["{self.pf.config}"]\n'
                    f'postfix_log = "{self.pf.maillog}"\n' + self.GUARDD_SETTINGS)
        # postfix's deliveries are connections like any other: the owner approved its smtp
        # client (before guardd starts, so that its first delivery finds the approval).
        mgtest.seed(self.state, "approve", os.path.join(self.pf.daemons, "smtp"))
        self.guardd = Guardd(self, self.state, config).start()
        wait_for(lambda: "mta: gating postfix" in self.guardd.log(), 10, "guardd's postfix gate")
        agent_log = open(os.path.join(self.dir, "agent.log"), "w")
        self.addCleanup(agent_log.close)
        self.agent = subprocess.Popen([AGENT, "--socket", self.sock, "--postfix-bin", self.pf.sbin,
                                       "--postfix-config", self.pf.config], stderr=agent_log)
        self.addCleanup(terminate, self.agent)
        wait_for(lambda: "release agent connected" in self.guardd.log(), 10, "the agent")
        self.pf.start()

    def tearDown(self):
        if os.environ.get("MG_DEBUG"):
            print("--- guardd log\n" + self.guardd.log()[-3000:])
            print("--- postfix log\n" + self.pf.log()[-3000:])
            print("--- agent\n" + open(os.path.join(self.dir, "agent.log")).read()[-2000:])

    def start_sink(self):
        sink_log = open(os.path.join(self.dir, "sink.log"), "w")
        self.addCleanup(sink_log.close)
        self.sink = subprocess.Popen(["unshare", "-n", sys.executable, SINK, "0.0.0.0", self.sent]
                                     + self.SINK_ARGS,
                                     stdout=subprocess.PIPE, stderr=sink_log, text=True)
        self.addCleanup(terminate, self.sink)
        self.assertEqual(self.sink.stdout.readline().strip(), "ready")
        pid = str(self.sink.pid)
        run = lambda *a: subprocess.run(list(a), check=True)
        run("ip", "link", "add", "mg-pf0", "type", "veth", "peer", "name", "mg-pf1")
        run("ip", "link", "set", "mg-pf1", "netns", pid)
        run("ip", "addr", "add", HERE + "/30", "dev", "mg-pf0")
        run("ip", "link", "set", "mg-pf0", "up")
        run("nsenter", "-t", pid, "-n", "ip", "addr", "add", THERE + "/30", "dev", "mg-pf1")
        run("nsenter", "-t", pid, "-n", "ip", "link", "set", "mg-pf1", "up")
        run("nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up")

    def write_file(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def bot(self, name, count=MESSAGES):
        """A python3 script that hands `count` messages to sendmail, one per domain."""
        return self.write_file(name, textwrap.dedent(f"""\
            import subprocess, sys
            for i in range({count}):
                msg = f"From: x@pc.test\\nTo: user@d{{i}}.example\\nSubject: hi {{i}}\\n\\nhello\\n"
                r = subprocess.run({self.pf.sendmail_argv()!r} + ["-t"], input=msg.encode())
                if r.returncode != 0:
                    sys.exit(r.returncode)
            """))

    def delivered(self):
        with open(self.sent) as f:
            return [json.loads(l) for l in f if l.strip()]

    def held_list(self):
        """(queue id, where) of each line of guardd's STATE/mta-held."""
        try:
            with open(os.path.join(self.state, "mta-held")) as f:
                return [tuple(l.split()[1:3]) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def mta_attempts(self, script):
        return [a for a in mgtest.attempts(self.state, src="postfix") if a["script_path"] == script]

    def submitted(self, script):
        return [a for a in self.mta_attempts(script) if a["reason"].startswith("mail handed")]


class PostfixGate(PostfixFixture):
    def test_unapproved_script_is_held_then_approved_and_delivered(self):
        script = self.bot("news.py")
        subprocess.run([PYTHON, script], check=True, timeout=120)
        held = wait_for(lambda: len(self.submitted(script)) == MESSAGES and self.submitted(script),
                        20, "20 attempts of the script")
        self.assertTrue(all(a["verdict"] == "hold" for a in held), held)
        self.assertEqual(held[0]["path"], PYTHON)
        self.assertEqual(held[0]["channel"], "mta")
        self.assertIn("d19.example", {a["dst"] for a in held})
        wait_for(lambda: len(self.pf.hold_ids()) == MESSAGES, 10, "20 messages in the hold queue")
        self.assertEqual(sorted(a["queue_id"] for a in held), sorted(self.pf.hold_ids()))
        # guardd's held list (what `guardctl programs` counts as HELD, and what a denial
        # would delete) names each message and the postfix instance holding it.
        listed = self.held_list()
        self.assertEqual(sorted(i for i, _ in listed), sorted(self.pf.hold_ids()))
        self.assertEqual({w for _, w in listed}, {"postfix:" + self.pf.config})
        self.assertEqual(self.delivered(), [], "nothing may reach the sink before approval")

        mgtest.seed(self.state, "approve", PYTHON, script)
        wait_for(lambda: len(self.delivered()) == MESSAGES, 60, "the 20 released messages at the sink")
        self.assertEqual(sorted(m["rcpt"][0] for m in self.delivered()),
                         sorted(f"user@d{i}.example" for i in range(MESSAGES)))
        wait_for(lambda: self.pf.queue_ids() == [], 10, "an empty queue")

        # An approved script's next submission flows at once.
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.delivered()) == 2 * MESSAGES, 60, "the approved script's mail")
        # Recorded by guardd's writer thread, which may come after the delivery.
        allowed = lambda: [a for a in self.submitted(script) if a["verdict"] == "allow"]
        wait_for(lambda: len(allowed()) >= MESSAGES, 10, "the 20 allowed submissions recorded")
        self.assertEqual(len(allowed()), MESSAGES)

    def test_denied_script_messages_are_deleted(self):
        script = self.bot("spam.py")
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.pf.hold_ids()) == MESSAGES, 20, "20 messages in the hold queue")
        mgtest.seed(self.state, "deny", PYTHON, script)
        wait_for(lambda: self.pf.hold_ids() == [], 30, "the denied script's messages deleted")
        self.assertIn(f"deleting {MESSAGES} held message(s)", self.guardd.log())
        # A denied program's next messages are discarded: no bounce to a sender it may have
        # made up, nothing held, nothing delivered.
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len([a for a in self.submitted(script) if a["verdict"] == "reject"])
                 == MESSAGES, 20, "the refused attempts")
        wait_for(lambda: self.pf.queue_ids() == [], 20, "an empty queue")
        self.assertEqual(self.delivered(), [])

    def test_a_user_cannot_write_into_the_maildrop(self):
        maildrop = os.path.join(self.pf.queue, "maildrop")
        r = subprocess.run(mgtest.as_user("nobody") + [PYTHON, "-c", textwrap.dedent(f"""\
            import sys
            try:
                open({os.path.join(maildrop, "mine")!r}, "wb").write(b"x")
            except PermissionError:
                sys.exit(3)
            """)])
        self.assertEqual(r.returncode, 3)
        self.assertEqual(self.pf.maildrop_files(), [])

    def test_a_file_root_writes_into_the_maildrop_is_its_writers_and_held(self):
        data = queue_file("x@pc.test", "user@direct.example")
        script = self.write_file("drop.py", textwrap.dedent(f"""\
            import os
            path = {os.path.join(self.pf.queue, "maildrop", "bot1")!r}
            with open(path, "wb") as f:
                f.write({data!r})
            os.chmod(path, 0o744)  # postdrop's mark of a finished file
            """))
        subprocess.run([PYTHON, script], check=True, timeout=30)
        self.pf.pickup_now()
        held = wait_for(lambda: self.submitted(script), 60, "the script's attempt")
        self.assertEqual(held[0]["verdict"], "hold", held)
        self.assertEqual(held[0]["dst"], "direct.example")
        wait_for(lambda: len(self.pf.hold_ids()) == 1, 10, "the message in the hold queue")
        self.assertEqual(self.delivered(), [])

    def test_a_program_calling_postdrop_directly_is_the_submitter(self):
        data = queue_file("x@pc.test", "user@postdrop.example", time=False)
        script = self.write_file("postdrop.py", textwrap.dedent(f"""\
            import os, subprocess
            env = dict(os.environ, MAIL_CONFIG={self.pf.config!r})
            subprocess.run([{os.path.join(self.pf.sbin, "postdrop")!r}], input={data!r},
                           env=env, stdout=subprocess.DEVNULL, check=True)
            """))
        subprocess.run([PYTHON, script], check=True, timeout=30)
        held = wait_for(lambda: self.submitted(script), 30, "the script's attempt")
        self.assertEqual(held[0]["verdict"], "hold", held)
        self.assertEqual(held[0]["dst"], "postdrop.example")
        wait_for(lambda: len(self.pf.hold_ids()) == 1, 10, "the message in the hold queue")
        self.assertEqual(self.delivered(), [])

    def test_only_postfixs_cleanup_may_talk_to_the_milter(self):
        # Anyone else could only make guardd decide the file pickup reads now under a
        # message of its own: the connection is closed unanswered.
        path = os.path.join(self.pf.queue, "mailguard", "milter.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(s.close)
        s.settimeout(10)
        s.connect(path)
        optneg = struct.pack(">IcIII", 13, b"O", 6, 0x1ff, 0x1fffff)
        try:
            s.sendall(optneg)
            answer = s.recv(100)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
        self.assertEqual(answer, b"")
        self.assertIn("refused a milter connection", self.guardd.log())

    def test_shell_between_script_and_sendmail_is_skipped(self):
        argv = " ".join(self.pf.sendmail_argv())
        script = self.write_file("popen.py", textwrap.dedent(f"""\
            import os
            os.system("printf 'To: a@one.example\\n\\nhi\\n' | {argv} -t")
            """))
        subprocess.run([PYTHON, script], check=True, timeout=60)
        held = wait_for(lambda: self.submitted(script), 20, "the script's attempt")
        self.assertEqual(held[0]["dst"], "one.example")
        self.assertEqual(held[0]["verdict"], "hold")

    def test_held_messages_survive_a_restart_of_guardd(self):
        script = self.bot("later.py")
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.pf.hold_ids()) == MESSAGES, 20, "20 messages in the hold queue")
        self.guardd.stop()
        self.assertEqual(len(self.held_list()), MESSAGES)
        mgtest.seed(self.state, "approve", PYTHON, script)
        self.guardd.start()
        wait_for(lambda: len(self.delivered()) == MESSAGES, 60, "the 20 messages after the restart")
        wait_for(lambda: self.pf.queue_ids() == [], 10, "an empty queue")
        wait_for(lambda: self.held_list() == [], 10, "an empty held list")

    def test_guardd_stopped_leaves_the_mail_in_the_maildrop(self):
        self.guardd.stop()
        script = self.bot("early.py", count=3)
        subprocess.run([PYTHON, script], check=True, timeout=60)
        # cleanup cannot reach the milter: it tempfails and pickup leaves the files.
        wait_for(lambda: self.pf.log().count("milter-reject") >= 3, 20, "cleanup's tempfails")
        self.assertEqual(len(self.pf.maildrop_files()), 3)
        self.assertEqual(self.delivered(), [])
        # guardd back: it did not see the files written, so it cannot name their program;
        # they are held, not lost and not let through. Reading them (showq, for the owner's
        # `postqueue -p`) does not make the reader their submitter.
        self.guardd.start()
        listing = self.pf.postqueue_p()
        self.assertTrue(all(i in listing for i in self.pf.maildrop_files()), listing)
        self.pf.pickup_now()
        wait_for(lambda: len(self.pf.hold_ids()) == 3, 60, "the three messages held")
        unnamed = lambda: [a for a in mgtest.attempts(self.state, src="postfix")
                           if "could not name the program" in a["reason"]]
        wait_for(lambda: len(unnamed()) == 3, 10, "three attempts of an unnamed program")
        self.assertTrue(all(a["verdict"] == "hold" for a in unnamed()))
        self.assertEqual(self.delivered(), [])

    def test_an_approved_scripts_mail_flows(self):
        script = self.bot("client.py", count=3)
        mgtest.seed_running(self.state, "approve", PYTHON, script)
        subprocess.run([PYTHON, script], check=True, timeout=60)
        wait_for(lambda: len(self.delivered()) == 3, 60, "the approved script's mail")
        self.assertTrue(all(a["verdict"] == "allow" for a in self.submitted(script)))
        self.assertEqual(self.pf.hold_ids(), [])


class ChrootedCleanup(PostfixFixture):
    """Debian's master.cf runs cleanup chrooted in the queue directory: the milter socket is
    reached there by its relative name, and guardd still knows cleanup by its executable."""
    CHROOT_CLEANUP = True

    def test_chrooted_cleanup_asks_guardd(self):
        script = self.bot("chrooted.py", count=3)
        subprocess.run([PYTHON, script], check=True, timeout=60)
        wait_for(lambda: len(self.pf.hold_ids()) == 3, 20, "three messages in the hold queue")
        held = wait_for(lambda: len(self.submitted(script)) == 3 and self.submitted(script), 10,
                        "three attempts of the script")
        self.assertTrue(all(a["verdict"] == "hold" for a in held), held)
        self.assertEqual(self.delivered(), [])
        mgtest.seed(self.state, "approve", PYTHON, script)
        wait_for(lambda: len(self.delivered()) == 3, 60, "the released messages at the sink")


if __name__ == "__main__":
    unittest.main()
