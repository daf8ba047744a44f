"""What becomes of mail handed to postfix is charged to the program that submitted it.

The same real postfix, guardd and sink as test_mta_postfix.py; here the sink answers
"550 5.1.1 user unknown" to every recipient whose local part starts with "gone" (a
harvested list's dead addresses). guardd follows postfix's log ([mta] postfix_log, here
postfix's own maillog_file) and links each delivery line to the submission by the queue
id its milter learnt. Run as root; needs install/deps.sh --test."""
import subprocess
import textwrap
import unittest

import mgtest
from mgtest import wait_for
from test_mta_postfix import PYTHON, PostfixFixture

mgtest.require_private_netns()

RECIPIENTS = 20
DEAD = 18  # of RECIPIENTS, unknown at the sink
MAX_SUBMISSIONS = 20


class PostfixOutcomes(PostfixFixture):
    # Recipients "gone..." are unknown at the sink (550), "later..." deferred (451).
    SINK_ARGS = ["gone", "later"]

    def mailer(self, name, dead):
        """A python3 script that hands one message for RECIPIENTS recipients in as many
        domains to postfix's sendmail; `dead` of them are unknown at the sink."""
        return self.write_file(name, textwrap.dedent(f"""\
            import subprocess, sys
            n = sys.argv[1]
            rcpt = [f"{{'gone' if i < {dead} else 'user'}}{{n}}@d{{i}}.example"
                    for i in range({RECIPIENTS})]
            msg = f"From: x@pc.test\\nTo: {{', '.join(rcpt)}}\\nSubject: hi {{n}}\\n\\nhello\\n"
            r = subprocess.run({self.pf.sendmail_argv()!r} + ["-t"], input=msg.encode())
            sys.exit(r.returncode)
            """))

    def outcomes(self, script):
        return [a for a in self.mta_attempts(script) if a["reason"].startswith("outcome of")]

    def submit(self, script, n):
        subprocess.run([PYTHON, script, str(n)], timeout=60, check=True)
        # postfix's pickup hands the message to cleanup, whose milter asks guardd.
        return wait_for(lambda: len(self.submitted(script)) > n and self.submitted(script)[0],
                        20, f"submission {n} of {script}")

    def test_bounce_storm_quarantines_the_submitter_and_its_mail_stays_held(self):
        bot = self.mailer("cms.py", DEAD)
        # A compromised but approved program (the detector's M8 case): its mail flows until
        # the detector sees what becomes of it.
        mgtest.seed_running(self.state, "approve", PYTHON, bot)

        stopped_at = None
        for n in range(MAX_SUBMISSIONS):
            attempt = self.submit(bot, n)
            if attempt["verdict"] != "allow":
                stopped_at = n
                break
            wait_for(lambda: len(self.outcomes(bot)) > n, 30, f"the outcome of message {n}")
        self.assertIsNotNone(stopped_at, "the bounce storm never quarantined its submitter")
        self.assertLessEqual(stopped_at, 10, "quarantined only after more than 10 submissions")
        last = self.submitted(bot)[0]
        self.assertIn("quarantine", last["reason"])
        # Refused to flow, and kept: in postfix's hold queue, not deleted.
        self.assertEqual(last["verdict"], "reject", last)
        self.assertIn("held in the MTA's queue", last["reason"])

        # The attempts show each message's outcome with the server's reply, charged to the
        # script (python3 running it), not to postfix.
        outcome = self.outcomes(bot)[-1]
        self.assertEqual(outcome["path"], PYTHON)
        self.assertIn(f"2 delivered, {DEAD} bounced as unknown users", outcome["reason"])
        self.assertIn("550 5.1.1", outcome["reason"])
        with mgtest.db(self.state) as conn:
            alerts = [dict(r) for r in conn.execute(
                "SELECT * FROM alerts WHERE tier = 'hard' AND script_path = ?", (bot,))]
        self.assertTrue(alerts, "no hard alert names the script")
        self.assertIn("mta-user-unknown", alerts[0]["reasons"] + alerts[0]["summary"])

        # The message submitted after the quarantine stays in postfix's hold queue, listed
        # by guardd; nothing of it reached the sink.
        wait_for(lambda: len(self.pf.hold_ids()) == 1, 20, "the last message in the hold queue")
        self.assertEqual([q for q, _ in self.held_list()], self.pf.hold_ids())
        late = f"user{stopped_at}@"
        self.assertEqual([r for m in self.delivered() for r in m["rcpt"] if r.startswith(late)], [])
        self.assertEqual([r for m in self.delivered() for r in m["rcpt"] if r.startswith("gone")],
                         [])

    def test_quarantine_holds_the_programs_messages_still_queued(self):
        script = self.write_file("cms.py", textwrap.dedent(f"""\
            import subprocess, sys
            local, n = sys.argv[1], sys.argv[2]
            rcpt = [f"{{local}}{{n}}x{{i}}@d{{i}}.example" for i in range(20)]
            if local == "gone":
                rcpt[-2:] = [f"user{{n}}@d18.example", f"user{{n}}@d19.example"]
            msg = f"From: x@pc.test\\nTo: {{', '.join(rcpt)}}\\nSubject: {{n}}\\n\\nhi\\n"
            r = subprocess.run({self.pf.sendmail_argv()!r} + ["-t"], input=msg.encode())
            sys.exit(r.returncode)
            """))
        mgtest.seed_running(self.state, "approve", PYTHON, script)
        # Approved: three messages flow to the sink, which defers every recipient: they
        # stay in postfix's deferred queue.
        for n in range(3):
            subprocess.run([PYTHON, script, "later", str(n)], check=True, timeout=60)
        wait_for(lambda: len(self.submitted(script)) == 3, 20, "three accepted submissions")
        self.assertTrue(all(a["verdict"] == "allow" for a in self.submitted(script)))
        queued = {a["queue_id"] for a in self.submitted(script)}

        def deferred():
            return {line.split(": ")[1] for line in self.pf.log().splitlines()
                    if "status=deferred" in line and ": " in line} & queued

        wait_for(lambda: deferred() == queued, 30, "the sink's deferrals in postfix's log")
        self.assertEqual(set(self.pf.hold_ids()) & queued, set())

        # Then a bounce storm of the same program quarantines it.
        for n in range(20):
            subprocess.run([PYTHON, script, "gone", str(n)], timeout=60)
            latest = wait_for(lambda: len(self.submitted(script)) > 3 + n and
                              self.submitted(script)[0], 20, f"submission {n}")
            if latest["verdict"] != "allow":
                break
            # Done: delivered and bounced, or put on hold with the others still queued when
            # the outcome of an earlier one quarantined the program meanwhile.
            wait_for(lambda: f"{latest['queue_id']}: removed" in self.pf.log() or
                     latest["queue_id"] in self.pf.hold_ids(), 30,
                     f"message {n} removed from the queue or held")
        else:
            self.fail("the bounce storm never quarantined the program")

        # Its messages still queued are put on hold (postsuper -h) and listed as held for it,
        # with the submission the quarantine stopped.
        wait_for(lambda: set(self.pf.hold_ids()) >= queued, 30, "the queued messages on hold")
        self.assertIn("queued message(s) of quarantined", self.guardd.log())
        listed = {q for q, _ in self.held_list()}
        self.assertTrue(listed >= queued, (listed, queued))
        self.assertIn(latest["queue_id"], listed)
        self.assertEqual([r for m in self.delivered() for r in m["rcpt"] if r.startswith("later")],
                         [])


if __name__ == "__main__":
    unittest.main()
