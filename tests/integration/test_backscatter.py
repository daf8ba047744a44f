"""Backscatter: a flood of bounces for mail this PC never sent raises one alert with its
numbers, and `guardctl backscatter` prints them with a filter for the mail program;
bounces of mail this PC did send are no flood.

The same real postfix, guardd and sink as test_mta_postfix.py, guardd on a private system
bus for guardctl. postfix also receives mail here: an smtpd on 127.0.0.1:10025 and local(8)
delivering pc.test's mail to mailboxes in a private spool. The forged bounces are sent by a
real SMTP client (python's smtplib) with MAIL FROM:<>, as a remote server's DSN arrives.
Run as root; needs install/deps.sh --test."""
import json
import os
import signal
import smtplib
import socket
import subprocess
import textwrap
import unittest

import mgtest
from busfixture import GUARDCTL, PrivateBus
from mgtest import wait_for
from test_mta_postfix import PYTHON, PostfixFixture

mgtest.require_private_netns()

SMTPD_PORT = 10025
FORGED = 40        # in well under a minute
GENUINE = 5        # success DSNs of mail sent from here
FLOOD_PER_HOUR = 20  # guardd's threshold


class BackscatterFixture(PostfixFixture):
    """postfix receiving mail for pc.test, guardd on a private bus; no tests of its own
    (test_backscatter_journal.py reuses it)."""
    def setUp(self):
        self.bus = PrivateBus(self, mgtest.make_tempdir(self)).start()
        # guardd inherits the environment: this points it at the private bus.
        before = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS")
        os.environ["DBUS_SYSTEM_BUS_ADDRESS"] = self.bus.address
        self.addCleanup(lambda: os.environ.pop("DBUS_SYSTEM_BUS_ADDRESS") if before is None
                        else os.environ.__setitem__("DBUS_SYSTEM_BUS_ADDRESS", before))
        super().setUp()
        self.bus.wait_for_name()
        self.receive_mail()

    def receive_mail(self):
        """postfix, running already, also takes mail for pc.test over SMTP and delivers it
        to mailboxes (reloaded: master re-reads main.cf and master.cf on SIGHUP)."""
        self.spool = os.path.join(self.pf.root, "mail")
        os.makedirs(self.spool)
        os.chmod(self.spool, 0o1777)
        self.pf.postconf("mydestination = pc.test", f"mail_spool_directory = {self.spool}")
        subprocess.run([os.path.join(self.pf.sbin, "postconf"), "-c", self.pf.config, "-Me",
                        f"127.0.0.1:{SMTPD_PORT}/inet = 127.0.0.1:{SMTPD_PORT} inet n - n - - "
                        "smtpd"], check=True)
        os.kill(self.pf.master.pid, signal.SIGHUP)

        def listening():
            try:
                socket.create_connection(("127.0.0.1", SMTPD_PORT), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(listening, 20, "postfix's smtpd")

    def ctl(self, *args):
        env = self.bus.env()
        return subprocess.run([GUARDCTL, *args], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, timeout=120)

    def ctl_json(self, *args):
        r = self.ctl("--json", *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def mailbox(self):
        try:
            with open(os.path.join(self.spool, "nobody"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def backscatter_alerts(self):
        with mgtest.db(self.state) as conn:
            return [dict(r) for r in conn.execute(
                "SELECT * FROM alerts WHERE evidence LIKE '{\"kind\":\"backscatter\"%'")]

    def forge_bounces(self, n, first=0):
        """`n` DSNs from <> to nobody@pc.test, as remote servers send them: one SMTP
        session, one message each."""
        with smtplib.SMTP("127.0.0.1", SMTPD_PORT, timeout=30) as s:
            for i in range(first, first + n):
                msg = textwrap.dedent(f"""\
                    From: Mail Delivery System <MAILER-DAEMON@mx{i}.d{i}.example>
                    To: nobody@pc.test
                    Subject: Undelivered Mail Returned to Sender
                    Content-Type: multipart/report; report-type=delivery-status; boundary="b"

                    --b

                    Your message could not be delivered.
                    --b
                    Content-Type: text/rfc822-headers

                    From: nobody@pc.test
                    Message-ID: <{i}.cheap-pills@spammer{i}.example>
                    --b--
                    """)
                s.sendmail("", ["nobody@pc.test"], msg)

    def local_deliveries(self):
        return self.pf.log().count("relay=local")


class Backscatter(BackscatterFixture):
    def test_a_flood_of_forged_bounces_raises_one_alert_and_genuine_ones_none(self):
        # guardd follows postfix's maillog_file once postfix has created it.
        wait_for(lambda: self.ctl_json("backscatter")["watching"], 10, "guardd to follow the log")
        figures = self.ctl_json("backscatter")
        self.assertFalse(figures["flooding"], figures)
        self.assertEqual(figures["last_hour"], 0, figures)

        # Genuine DSNs first: an approved program sends mail from nobody@pc.test asking for
        # a notification of success (sendmail -N success); postfix's own DSNs come back.
        script = self.write_file("notify.py", textwrap.dedent(f"""\
            import subprocess, sys
            n = sys.argv[1]
            msg = f"From: nobody@pc.test\\nTo: user{{n}}@d{{n}}.example\\nSubject: {{n}}\\n\\nhi\\n"
            r = subprocess.run({self.pf.sendmail_argv()!r} +
                               ["-N", "success", "-f", "nobody@pc.test", "-t"], input=msg.encode())
            sys.exit(r.returncode)
            """))
        mgtest.seed(self.state, "approve", PYTHON, script)
        for n in range(GENUINE):
            subprocess.run([PYTHON, script, str(n)], check=True, timeout=60)
        wait_for(lambda: self.local_deliveries() >= GENUINE, 60,
                 "postfix's success notifications delivered to nobody's mailbox")
        self.assertEqual(self.pf.log().count("sender delivery status notification"), GENUINE)
        wait_for(lambda: self.ctl_json("backscatter")["last_hour"] == GENUINE, 10,
                 "guardd to count the genuine DSNs")
        figures = self.ctl_json("backscatter")
        self.assertEqual(figures["unmatched_last_hour"], 0, figures)
        self.assertFalse(figures["flooding"], figures)
        self.assertEqual(self.backscatter_alerts(), [])

        # A few forged ones: counted as matching nothing, still no flood.
        self.forge_bounces(FLOOD_PER_HOUR - 1)
        wait_for(lambda: self.ctl_json("backscatter")["unmatched_last_hour"] ==
                 FLOOD_PER_HOUR - 1, 30, "guardd to count the first forged DSNs")
        self.assertEqual(self.backscatter_alerts(), [])

        # The flood: FORGED in all, within a minute.
        self.forge_bounces(FORGED - (FLOOD_PER_HOUR - 1), first=FLOOD_PER_HOUR - 1)
        wait_for(lambda: self.local_deliveries() >= GENUINE + FORGED, 60,
                 "the forged DSNs delivered")
        self.assertEqual(self.mailbox().count("Subject: Undelivered Mail Returned"), FORGED)
        wait_for(lambda: self.ctl_json("backscatter")["unmatched_last_hour"] == FORGED, 30,
                 "guardd to count every forged DSN")

        # The store writer writes it off guardd's loop.
        alerts = wait_for(self.backscatter_alerts, 10, "the backscatter alert in the store")
        self.assertEqual(len(alerts), 1, alerts)
        alert = alerts[0]
        evidence = json.loads(alert["evidence"])
        # Raised by the DSN that made the flood: FLOOD_PER_HOUR unmatched, and the genuine.
        self.assertEqual(evidence["unmatched_last_hour"], FLOOD_PER_HOUR, evidence)
        self.assertEqual(evidence["dsns_last_hour"], FLOOD_PER_HOUR + GENUINE, evidence)
        self.assertEqual(evidence["recipients"], ["nobody@pc.test"])
        self.assertIn(f"{FLOOD_PER_HOUR + GENUINE} bounces within an hour", alert["summary"])
        self.assertIn(f"{FLOOD_PER_HOUR} for mail this PC did not send", alert["summary"])

        figures = self.ctl_json("backscatter")
        self.assertTrue(figures["flooding"], figures)
        self.assertEqual(figures["last_hour"], GENUINE + FORGED, figures)
        self.assertEqual(figures["unmatched_total"], FORGED, figures)
        self.assertEqual(figures["alert_id"], alert["id"], figures)
        self.assertEqual(figures["domain"], "pc.test")
        self.assertIn('"*Message-I?: <*@pc.test>*"', figures["rules"]["sieve"])
        self.assertIn(r"@pc\.test>", figures["rules"]["procmail"])
        self.assertIn("MAILER-DAEMON", figures["rules"]["thunderbird"])

        # The text form names the flood and prints the rules; --domain picks the domain.
        r = self.ctl("backscatter", "--domain", "mail.example.net")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Backscatter flood since", r.stdout)
        self.assertIn(f"{FORGED} for mail this PC did not send", r.stdout)
        self.assertIn('require ["fileinto", "body"];', r.stdout)
        self.assertIn(r"@mail\.example\.net>", r.stdout)

        # More of the same flood: no second alert.
        self.forge_bounces(5, first=FORGED)
        wait_for(lambda: self.ctl_json("backscatter")["unmatched_total"] == FORGED + 5, 30,
                 "the flood's later DSNs")
        self.assertEqual(len(self.backscatter_alerts()), 1)
        # The alert is an alert like any other: guardctl alerts lists it.
        listed = [a for a in self.ctl_json("alerts") if a["id"] == alert["id"]]
        self.assertEqual(len(listed), 1, listed)


if __name__ == "__main__":
    unittest.main()
