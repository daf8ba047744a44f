"""What becomes of mail handed to exim is charged to the program that submitted it.

The same real exim, guardd and sink as test_mta_exim.py; here the sink answers
"550 5.1.1 user unknown" to every recipient whose local part starts with "gone" (a
harvested list's dead addresses). guardd follows exim's main log ([mta] exim_log) and
links each delivery line to its submission by queue id. Run as root; needs
exim4-daemon-light (install/deps.sh --test)."""
import json
import os
import subprocess
import textwrap
import unittest

import mgtest
from mgtest import wait_for
from test_mta_exim import EXIM, PYTHON, EximFixture

mgtest.require_private_netns()

RECIPIENTS = 20
DEAD = 18  # of RECIPIENTS, unknown at the sink
MAX_SUBMISSIONS = 20


class MtaOutcomes(EximFixture):
    SINK_ARGS = ["gone"]

    def mailer(self, name, dead):
        """A python3 script that hands one message to RECIPIENTS recipients in as many
        domains to sendmail; `dead` of them are unknown at the sink."""
        return self.write_file(name, textwrap.dedent(f"""\
            import subprocess, sys
            n = sys.argv[1]
            rcpt = [f"{{'gone' if i < {dead} else 'user'}}{{n}}@d{{i}}.example"
                    for i in range({RECIPIENTS})]
            msg = f"From: x@pc.test\\nTo: {{', '.join(rcpt)}}\\nSubject: hi {{n}}\\n\\nhello\\n"
            r = subprocess.run([{self.sendmail!r}, "-t"], input=msg.encode())
            sys.exit(r.returncode)
            """))

    def outcomes(self, script):
        return [a for a in self.mta_attempts(script) if a["reason"].startswith("outcome of")]

    def submissions(self, script):
        return [a for a in self.mta_attempts(script) if a["reason"].startswith("mail handed")]

    def submit(self, script, n):
        subprocess.run([PYTHON, script, str(n)], timeout=60)
        # The attempt of this submission is recorded before exim gets its answer.
        return wait_for(lambda: len(self.submissions(script)) > n and self.submissions(script)[0],
                        10, f"submission {n} of {script}")

    def test_bounce_storm_quarantines_the_submitter_and_spares_a_good_mailer(self):
        bot = self.mailer("cms.py", DEAD)
        good = self.mailer("newsletter.py", 0)
        # A compromised but approved program (M8): its mail flows until the detector
        # sees what becomes of it.
        mgtest.seed(self.state, "approve", PYTHON, bot)
        mgtest.seed_running(self.state, "approve", PYTHON, good)

        refused_at = None
        for n in range(MAX_SUBMISSIONS):
            attempt = self.submit(bot, n)
            if attempt["verdict"] == "reject":
                refused_at = n
                break
            self.assertEqual(attempt["verdict"], "allow", attempt)
            # Wait for this message's outcome before the next submission: the count of
            # submissions before the quarantine must not depend on how fast exim is.
            wait_for(lambda: len(self.outcomes(bot)) > n, 30, f"the outcome of message {n}")
        self.assertIsNotNone(refused_at, "the bounce storm never quarantined its submitter")
        self.assertLessEqual(refused_at, 10, "quarantined only after more than 10 submissions")
        self.assertIn("quarantine", self.submissions(bot)[0]["reason"])

        # The attempts show each message's outcome, with the server's reply.
        outcome = self.outcomes(bot)[-1]
        self.assertEqual(outcome["path"], PYTHON)
        self.assertIn(f"2 delivered, {DEAD} bounced as unknown users", outcome["reason"])
        self.assertIn("550 5.1.1 user unknown", outcome["reason"])
        self.assertIn("d19.example", outcome["dst"])
        with mgtest.db(self.state) as conn:
            alerts = [dict(r) for r in conn.execute(
                "SELECT * FROM alerts WHERE tier = 'hard' AND script_path = ?", (bot,))]
        self.assertTrue(alerts, "no hard alert names the script")
        self.assertIn("mta-user-unknown", alerts[0]["reasons"] + alerts[0]["summary"])
        self.assertEqual([a for a in alerts if a["path"] != PYTHON], [])

        # Only the live recipients of the messages let through reached the sink.
        bot_rcpt = [r for m in self.delivered() for r in m["rcpt"] if r.startswith("gone")]
        self.assertEqual(bot_rcpt, [])

        # The approved mailer whose mail is delivered is not affected.
        for n in range(10):
            attempt = self.submit(good, n)
            self.assertEqual(attempt["verdict"], "allow", attempt)
        wait_for(lambda: len(self.outcomes(good)) == 10, 30, "the good mailer's outcomes")
        self.assertTrue(all(f"{RECIPIENTS} delivered" in a["reason"] for a in self.outcomes(good)),
                        self.outcomes(good))
        delivered = [r for m in self.delivered() for r in m["rcpt"] if r.startswith("user")
                     and r.split("@")[0][4:].isdigit()]
        self.assertGreaterEqual(len(delivered), 10 * RECIPIENTS)
        with mgtest.db(self.state) as conn:
            spared = [dict(r) for r in conn.execute(
                "SELECT tier, summary, path, script_path FROM alerts WHERE script_path != ?", (bot,))]
        self.assertEqual(spared, [])
        # Keep real exim log lines for the parser's unit test.
        if os.environ.get("MG_KEEP_EXIM_LOG"):
            with open(os.path.join(self.spool, "mainlog")) as f, \
                    open(os.environ["MG_KEEP_EXIM_LOG"], "w") as out:
                out.write(f.read())


if __name__ == "__main__":
    unittest.main()
