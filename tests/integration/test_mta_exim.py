"""Mail handed to exim without TCP is gated like a connection.

A real exim (Debian's exim4-daemon-light, run with a private configuration through -C and a
spool in a temporary folder) includes install/exim4/'s ACL and delivers over SMTP to a sink
in a second network namespace (veth, 198.18.0.0/15 addresses). guardd answers exim on its
MTA socket, and guard-mta-agent (root) releases or deletes held messages on the owner's
decision. Scripts are real python3 programs. Run as root; needs exim4-daemon-light
(install/deps.sh --test)."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import unittest

import mgtest
from mgtest import BUILD, Guardd, terminate, wait_for

mgtest.require_private_netns()

EXIM = "/usr/sbin/exim4"
AGENT = os.path.join(BUILD, "guardd", "mta", "guard-mta-agent")
INSTALL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../install/exim4")
SINK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mta_sink.py")
HERE, THERE = "198.18.0.1", "198.18.0.2"
PYTHON = os.path.realpath(sys.executable)  # the interpreter itself, not a wrapper of it
MESSAGES = 20


class EximFixture(unittest.TestCase):
    """exim under a private -C configuration, guardd, the release agent and the sink."""
    SINK_ARGS = []  # extra arguments of mta_sink.py

    def setUp(self):
        if not os.path.exists(EXIM):
            self.skipTest("exim4 is not installed (install/deps.sh --test installs it)")
        # Everything exim reads with -C must belong to root and be writable by no one else,
        # and the spool to its user: a folder of our own under /var/tmp, not a home.
        self.dir = mgtest.make_tempdir(self)
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        os.makedirs(self.spool)
        shutil.chown(self.spool, "Debian-exim", "Debian-exim")
        self.sock = os.path.join(self.dir, "mta.sock")
        self.conf = self.write_exim_conf()
        self.sent = os.path.join(self.dir, "sent.jsonl")
        open(self.sent, "w").close()
        self.start_sink()
        state = os.path.join(self.dir, "state")
        config = os.path.join(self.dir, "guardd.conf")
        with open(config, "w") as f:
            f.write(f'[mail]\nports = [25]\n[mta]\nsocket = "{self.sock}"\nexim_config = "{self.conf}"\n'
                    f'exim_log = "{self.spool}/mainlog"\n')
        self.state = state
        # exim's own deliveries are connections like any other: the owner approved exim
        # (before guardd starts, so that its first delivery finds the approval in force).
        mgtest.seed(state, "approve", EXIM)
        self.guardd = Guardd(self, state, config).start()
        wait_for(lambda: "mta: answering" in self.guardd.log(), 10, "guardd's MTA socket")
        agent_log = open(os.path.join(self.dir, "agent.log"), "w")
        self.addCleanup(agent_log.close)
        self.agent = subprocess.Popen([AGENT, "--socket", self.sock, "--exim", EXIM,
                                       "--exim-config", self.conf], stderr=agent_log)
        self.addCleanup(terminate, self.agent)
        wait_for(lambda: "release agent connected" in self.guardd.log(), 10, "the agent")
        self.sendmail = self.write_file("sendmail", f'#!/bin/sh\nexec {EXIM} -C {self.conf} "$@"\n', 0o755)

    def tearDown(self):
        if os.environ.get("MG_DEBUG"):
            print("--- guardd log\n" + self.guardd.log()[-3000:])
            for name in ("mainlog", "paniclog", "rejectlog"):
                path = os.path.join(self.spool, name)
                if os.path.exists(path):
                    print(f"--- exim {name}\n" + open(path).read()[-3000:])
            print("--- attempts", mgtest.attempts(self.state)[:3])
            print("--- agent\n" + open(os.path.join(self.dir, "agent.log")).read()[-2000:])

    def write_file(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def write_exim_conf(self):
        with open(os.path.join(INSTALL, "main_50_mailguard")) as f:
            main = f.read()
        with open(os.path.join(INSTALL, "acl_50_mailguard")) as f:
            acl = f.read()
        text = textwrap.dedent(f"""\
            MAILGUARD_SOCKET = {self.sock}
            primary_hostname = pc.test
            spool_directory = {self.spool}
            log_file_path = {self.spool}/%slog
            exim_path = {EXIM}
            qualify_domain = pc.test
            """) + main + "\nbegin acl\n" + acl + textwrap.dedent(f"""
            begin routers
            sink:
              driver = manualroute
              domains = *
              route_list = * {THERE}
              transport = smtp_out
              self = send
            begin transports
            smtp_out:
              driver = smtp
              port = 25
            begin retry
            * * F,1h,1m
            """)
        return self.write_file("exim.conf", text)

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
        run("ip", "link", "add", "mg-mta0", "type", "veth", "peer", "name", "mg-mta1")
        run("ip", "link", "set", "mg-mta1", "netns", pid)
        run("ip", "addr", "add", HERE + "/30", "dev", "mg-mta0")
        run("ip", "link", "set", "mg-mta0", "up")
        run("nsenter", "-t", pid, "-n", "ip", "addr", "add", THERE + "/30", "dev", "mg-mta1")
        run("nsenter", "-t", pid, "-n", "ip", "link", "set", "mg-mta1", "up")
        run("nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up")

    def bot(self, name, command):
        """A python3 script that hands MESSAGES messages to `command` (argv list), one per
        domain."""
        return self.write_file(name, textwrap.dedent(f"""\
            import subprocess, sys
            for i in range({MESSAGES}):
                msg = f"From: x@pc.test\\nTo: user@d{{i}}.example\\nSubject: hi {{i}}\\n\\nhello\\n"
                r = subprocess.run({command!r} + ["-t"], input=msg.encode())
                if r.returncode not in (0, 1):
                    sys.exit(r.returncode)
            """))

    def delivered(self):
        with open(self.sent) as f:
            return [json.loads(l) for l in f if l.strip()]

    def queue(self):
        out = subprocess.run([EXIM, "-C", self.conf, "-bpc"], capture_output=True, text=True)
        return int(out.stdout.strip() or 0)

    def frozen(self):
        out = subprocess.run([EXIM, "-C", self.conf, "-bp"], capture_output=True, text=True)
        return out.stdout.count("*** frozen ***")

    def frozen_ids(self):
        out = subprocess.run([EXIM, "-C", self.conf, "-bp"], capture_output=True, text=True)
        return {line.split()[2] for line in out.stdout.splitlines() if "*** frozen ***" in line}

    def mainlog(self):
        path = os.path.join(self.spool, "mainlog")
        if not os.path.exists(path):
            return ""
        with open(path) as f:
            return f.read()

    def mta_attempts(self, script):
        return [a for a in mgtest.attempts(self.state, src="exim") if a["script_path"] == script]


class EximGate(EximFixture):
    def test_unapproved_script_is_held_then_approved_and_delivered(self):
        script = self.bot("news.py", [self.sendmail])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        held = wait_for(lambda: len(self.mta_attempts(script)) == MESSAGES and self.mta_attempts(script),
                        10, "20 attempts of the script")
        self.assertTrue(all(a["verdict"] == "hold" for a in held), held)
        self.assertEqual(held[0]["path"], PYTHON)
        self.assertIn("d19.example", {a["dst"] for a in held})
        self.assertEqual(self.frozen(), MESSAGES)
        self.assertEqual(self.delivered(), [], "nothing may reach the sink before approval")

        mgtest.seed(self.state, "approve", PYTHON, script)
        wait_for(lambda: len(self.delivered()) == MESSAGES, 60, "the 20 released messages at the sink")
        self.assertEqual(sorted(m["rcpt"][0] for m in self.delivered()),
                         sorted(f"user@d{i}.example" for i in range(MESSAGES)))
        wait_for(lambda: self.queue() == 0, 10, "an empty queue")

        # An approved script's next submission flows at once.
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.delivered()) == 2 * MESSAGES, 60, "the approved script's mail")
        # (Each delivered message also has an outcome row, "outcome of mail handed to exim".)
        allowed = [a for a in self.mta_attempts(script)
                   if a["verdict"] == "allow" and a["reason"].startswith("mail handed")]
        self.assertEqual(len(allowed), MESSAGES)

    def test_denied_script_messages_are_deleted(self):
        script = self.bot("spam.py", [self.sendmail])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.mta_attempts(script)) == MESSAGES, 10, "20 held attempts")
        self.assertEqual(self.frozen(), MESSAGES)
        mgtest.seed(self.state, "deny", PYTHON, script)
        wait_for(lambda: self.queue() == 0, 30, "the denied script's messages deleted")
        self.assertIn(f"deleting {MESSAGES} held message(s)", self.guardd.log())
        self.assertEqual(self.delivered(), [])
        # A denied program's next message is refused outright, not even queued.
        subprocess.run([PYTHON, script], timeout=120)
        wait_for(lambda: len([a for a in self.mta_attempts(script) if a["verdict"] == "reject"])
                 >= MESSAGES, 10, "the refused attempts")
        self.assertEqual(self.frozen(), 0)
        self.assertEqual([m for m in self.delivered() if m["rcpt"][0].endswith(".example")], [])

    def test_program_calling_exim_directly_is_gated_too(self):
        script = self.bot("direct.py", [EXIM, "-C", self.conf])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        held = wait_for(lambda: len(self.mta_attempts(script)) == MESSAGES and self.mta_attempts(script),
                        10, "20 attempts of the script")
        self.assertTrue(all(a["verdict"] == "hold" for a in held))
        self.assertEqual(self.frozen(), MESSAGES)
        self.assertEqual(self.delivered(), [])

    def test_exim_with_a_users_own_configuration_cannot_deliver_as_the_approved_mta(self):
        # Anyone may run exim with -C: it drops root and runs as that user, with a spool and
        # routers of the user's choosing and no ACL. Its connection comes from the approved
        # /usr/sbin/exim4, and must still be held.
        own = os.path.join(self.dir, "own")
        os.makedirs(os.path.join(own, "spool"))
        shutil.chown(os.path.join(own, "spool"), "nobody")
        conf = self.write_file("own/exim.conf", textwrap.dedent(f"""\
            exim_user = nobody
            exim_group = nogroup
            primary_hostname = bot.test
            spool_directory = {own}/spool
            log_file_path = {own}/spool/%slog
            begin routers
            r:
              driver = manualroute
              domains = *
              route_list = * {THERE}
              transport = t
              self = send
            begin transports
            t:
              driver = smtp
              port = 25
            """))
        # -odi: it delivers in the foreground, and waits on its held connection.
        bot = subprocess.Popen(mgtest.as_user("nobody") + [EXIM, "-C", conf, "-odi", "-t"],
                               stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(terminate, bot)
        bot.stdin.write(b"To: x@victim.example\n\nspam\n")
        bot.stdin.close()
        held = wait_for(lambda: [a for a in mgtest.attempts(self.state, path=EXIM, uid=65534)],
                        10, "the bot's exim connection")
        self.assertTrue(all(a["verdict"] == "hold" for a in held), held)
        self.assertIn("configuration of its own", held[0]["reason"])
        self.assertEqual(self.delivered(), [])

    def test_shell_between_script_and_sendmail_is_skipped(self):
        # system()/popen() put `sh -c` between the program and sendmail: the program is
        # the submitter, not the shell.
        script = self.write_file("popen.py", textwrap.dedent(f"""\
            import os
            os.system("printf 'To: a@one.example\\n\\nhi\\n' | {self.sendmail} -t")
            """))
        subprocess.run([PYTHON, script], check=True, timeout=60)
        held = wait_for(lambda: self.mta_attempts(script), 10, "the script's attempt")
        self.assertEqual(held[0]["dst"], "one.example")
        self.assertEqual(held[0]["verdict"], "hold")

    def test_held_messages_survive_a_restart_of_guardd(self):
        script = self.bot("later.py", [self.sendmail])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        wait_for(lambda: len(self.mta_attempts(script)) == MESSAGES, 10, "20 held attempts")
        self.guardd.stop()
        mgtest.seed(self.state, "approve", PYTHON, script)
        self.guardd.start()
        wait_for(lambda: len(self.delivered()) == MESSAGES, 60, "the 20 messages after the restart")
        wait_for(lambda: self.queue() == 0, 10, "an empty queue")  # exim removes it after the sink's 250

    def test_guardd_not_running_freezes(self):
        self.guardd.stop()
        script = self.bot("early.py", [self.sendmail])
        subprocess.run([PYTHON, script], check=True, timeout=120)
        self.assertEqual(self.frozen(), MESSAGES)
        self.assertEqual(self.delivered(), [])


class EximOwnMailAndQuarantine(EximFixture):
    """The sink refuses local parts starting with "gone" (550) and defers those starting
    with "later" (451: the message stays in exim's queue)."""
    SINK_ARGS = ["gone", "later"]

    def send(self, name, rcpt, n=1):
        """A python3 script that hands `n` messages to `rcpt` (a format with {i}) to
        sendmail; run once."""
        script = self.write_file(name, textwrap.dedent(f"""\
            import subprocess, sys
            for i in range({n}):
                rcpt = {rcpt!r}.format(i=i)
                msg = f"From: x@pc.test\\nTo: {{rcpt}}\\nSubject: hi {{i}}\\n\\nhello\\n"
                r = subprocess.run([{self.sendmail!r}, "-t"], input=msg.encode())
                if r.returncode not in (0, 1):
                    sys.exit(r.returncode)
            """))
        return script

    def test_exims_own_bounce_is_delivered_and_an_orphaned_sendmail_is_still_held(self):
        script = self.send("notify.py", "gone{i}@far.example")
        mgtest.seed(self.state, "approve", PYTHON, script)
        subprocess.run([PYTHON, script], check=True, timeout=60)
        # exim's bounce to the local sender (root@pc.test: the test runs as root) goes out
        # through the sink router: delivered, not frozen as mail of an unnamed program.
        bounce = wait_for(lambda: [m for m in self.delivered() if m["from"] == "<>"],
                          30, "exim's bounce at the sink")
        self.assertEqual(bounce[0]["rcpt"], ["root@pc.test"])
        own = [a for a in mgtest.attempts(self.state, src="exim")
               if "exim's own message" in a["reason"]]
        self.assertTrue(own, mgtest.attempts(self.state, src="exim")[:3])
        self.assertEqual(own[0]["verdict"], "allow")
        self.assertEqual(own[0]["path"], EXIM)
        self.assertEqual(self.frozen(), 0)

        # A bot's sendmail orphaned by a double fork (the middle process exits first), with
        # the null sender a bounce has: its parent is whoever adopted it, not exim.
        msg = self.write_file("orphan.eml", "To: x@orphan.example\nSubject: spam\n\nspam\n")
        orphan = self.write_file("orphan.py", textwrap.dedent(f"""\
            import os, time
            if os.fork() == 0:
                middle = os.getpid()
                if os.fork() == 0:
                    deadline = time.monotonic() + 10
                    while os.getppid() == middle and time.monotonic() < deadline:
                        time.sleep(0.01)  # polls for the adoption, bounded
                    fd = os.open({msg!r}, os.O_RDONLY)
                    os.dup2(fd, 0)
                    os.execv({self.sendmail!r}, [{self.sendmail!r}, "-f", "<>", "-t"])
                os._exit(0)
            os.wait()
            """))
        subprocess.run([PYTHON, orphan], check=True, timeout=60)
        held = wait_for(lambda: [a for a in mgtest.attempts(self.state, src="exim")
                                 if a["dst"] == "orphan.example"], 20, "the orphan's attempt")
        self.assertEqual(held[0]["verdict"], "hold", held[0])
        self.assertNotIn("exim's own message", held[0]["reason"])
        wait_for(lambda: self.frozen() == 1, 10, "the orphan's message frozen")
        self.assertEqual([m for m in self.delivered() if "x@orphan.example" in m["rcpt"]], [])

    def test_quarantine_holds_the_programs_messages_still_queued(self):
        script = self.write_file("cms.py", textwrap.dedent(f"""\
            import subprocess, sys
            local, n = sys.argv[1], sys.argv[2]
            rcpt = [f"{{local}}{{n}}x{{i}}@d{{i}}.example" for i in range(20)]
            if local == "gone":
                rcpt[-2:] = [f"user{{n}}@d18.example", f"user{{n}}@d19.example"]
            msg = f"From: x@pc.test\\nTo: {{', '.join(rcpt)}}\\nSubject: {{n}}\\n\\nhi\\n"
            sys.exit(subprocess.run([{self.sendmail!r}, "-t"], input=msg.encode()).returncode)
            """))
        mgtest.seed_running(self.state, "approve", PYTHON, script)
        submissions = lambda: [a for a in self.mta_attempts(script)
                               if a["reason"].startswith("mail handed")]
        # Approved: three messages are accepted and deferred by the sink, still queued.
        for n in range(3):
            subprocess.run([PYTHON, script, "later", str(n)], check=True, timeout=60)
        wait_for(lambda: len(submissions()) == 3, 10, "three accepted submissions")
        self.assertTrue(all(a["verdict"] == "allow" for a in submissions()), submissions())
        wait_for(lambda: self.mainlog().count(" == later") >= 60,
                 30, "the sink's deferrals in exim's log")
        queued = [a["queue_id"] for a in submissions()]
        self.assertEqual(self.queue(), 3)
        self.assertEqual(self.frozen(), 0)

        # Then a bounce storm of the same program quarantines it (as test_mta_outcomes).
        for n in range(20):
            subprocess.run([PYTHON, script, "gone", str(n)], timeout=60)
            latest = wait_for(lambda: len(submissions()) > 3 + n and submissions()[0], 10,
                              f"submission {n}")
            if latest["verdict"] == "reject":
                break
            wait_for(lambda: f"{latest['queue_id']} Completed" in self.mainlog(), 30,
                     f"message {n} completed")
        else:
            self.fail("the bounce storm never quarantined the program")

        # Its messages still queued are frozen and listed as held for it.
        wait_for(lambda: self.frozen_ids() >= set(queued), 20, "the queued messages frozen")
        self.assertIn("queued message(s) of quarantined", self.guardd.log())

        def listed():
            with open(os.path.join(self.state, "mta-held")) as f:
                return {line.split()[1] for line in f if line.strip()}
        # The storm's last message may have been in delivery when the quarantine came (and
        # listed with them): once exim completes it, it leaves the list.
        wait_for(lambda: listed() == set(queued), 20, "exactly the queued messages listed as held")
        # exim's bounces of the storm are delivered (not frozen): only the held ones remain.
        wait_for(lambda: self.queue() == len(queued), 20, "exim's bounces delivered")
        self.assertEqual(self.frozen_ids(), set(queued))
        self.assertEqual([r for m in self.delivered() for r in m["rcpt"] if r.startswith("later")],
                         [])


if __name__ == "__main__":
    unittest.main()
