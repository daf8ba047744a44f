"""Backscatter where postfix logs only to the systemd journal (Debian 12 without rsyslog):
guardd reads the bounces from postfix's own records there, a flood raises the alert, and
the alert tells the owner to look in the journal. [backscatter] flood_per_hour = 5 makes
five forged bounces a flood (the default, 20, would not).

The same real postfix, guardd, agent and sink as test_backscatter.py, but postfix has no
maillog_file: its daemons log through syslog(3) to /dev/log. The test process has a mount
namespace of its own (CTEST_UNSHARE): a tmpfs over /run/systemd, /run/log and
/var/log/journal, a systemd-journald of its own there, and a /dev of its own (bind mounts
of the few devices a test needs) whose /dev/log is that journald's socket. The machine's
journal, /run and /dev are never touched. Run as root; needs install/deps.sh --test."""
import json
import os
import subprocess
import unittest

import mgtest
from journal_fixture import private_journald
from mgtest import wait_for
from test_backscatter import BackscatterFixture

CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]

mgtest.require_private_netns()

FLOOD_PER_HOUR = 5
# Where the alert tells the owner to look (MtaGate::kJournalPlace).
JOURNAL_PLACE = "the systemd journal: journalctl SYSLOG_FACILITY=2"


class BackscatterFromTheJournal(BackscatterFixture):
    SYSLOG = True
    GUARDD_SETTINGS = f"[backscatter]\nflood_per_hour = {FLOOD_PER_HOUR}\n"

    def setUp(self):
        reason = private_journald(self)
        if reason:
            self.skipTest(reason)
        super().setUp()

    def forge_in_the_journal_as_nobody(self, n):
        """What any local user can write: records tagged as postfix's, in the mail facility,
        of bounces that never arrived. journald records the writer's uid; guardd skips them."""
        for i in range(n):
            qid = f"F0F0F0F{i:03d}"
            for tag, text in (("postfix/qmgr", f"{qid}: from=<>, size=900, nrcpt=1 (queue active)"),
                              ("postfix/local", f"{qid}: to=<nobody@pc.test>, relay=local, "
                               "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent "
                               "(delivered to mailbox)")):
                subprocess.run(mgtest.as_user("nobody") + ["logger", "-p", "mail.info", "-t", tag,
                                                           text], check=True, timeout=10)

    def test_a_flood_read_from_the_journal_raises_the_alert_at_the_configured_threshold(self):
        self.assertFalse(os.path.exists(self.pf.maillog))
        wait_for(lambda: "following postfix's records in the journal" in self.guardd.log(), 10,
                 "guardd to follow the journal")
        wait_for(lambda: self.ctl_json("backscatter")["watching"], 10, "guardd to watch bounces")
        self.assertEqual(self.ctl_json("backscatter")["flood_per_hour"], FLOOD_PER_HOUR)

        # Forged by nobody: in the journal under postfix's tags, never counted.
        self.forge_in_the_journal_as_nobody(FLOOD_PER_HOUR + 1)
        wait_for(lambda: self.pf.log().count("F0F0F0F") >= 2 * (FLOOD_PER_HOUR + 1), 10,
                 "the forged records in the journal")

        # One short of the threshold: counted, no flood.
        self.forge_bounces(FLOOD_PER_HOUR - 1)
        wait_for(lambda: self.local_deliveries() >= FLOOD_PER_HOUR - 1 + FLOOD_PER_HOUR + 1, 30,
                 "postfix to deliver the first bounces")
        wait_for(lambda: self.ctl_json("backscatter")["unmatched_last_hour"] ==
                 FLOOD_PER_HOUR - 1, 15, "guardd to count the bounces postfix logged")
        figures = self.ctl_json("backscatter")
        self.assertEqual(figures["last_hour"], FLOOD_PER_HOUR - 1, figures)
        self.assertFalse(figures["flooding"], figures)
        self.assertEqual(self.backscatter_alerts(), [])

        # The fifth: a flood at flood_per_hour = 5.
        self.forge_bounces(1, first=FLOOD_PER_HOUR - 1)
        alerts = wait_for(self.backscatter_alerts, 30, "the backscatter alert in the store")
        self.assertEqual(len(alerts), 1, alerts)
        alert = alerts[0]
        evidence = json.loads(alert["evidence"])
        self.assertEqual(evidence["unmatched_last_hour"], FLOOD_PER_HOUR, evidence)
        self.assertEqual(evidence["flood_per_hour"], FLOOD_PER_HOUR, evidence)
        self.assertEqual(evidence["recipients"], ["nobody@pc.test"])
        # Where the owner can look: the journal, not a log file.
        self.assertEqual(evidence["log"], JOURNAL_PLACE, evidence)
        self.assertEqual(alert["path"], JOURNAL_PLACE)
        self.assertIn(f"(flood: {FLOOD_PER_HOUR} an hour)", alert["reasons"])
        self.assertTrue(self.ctl_json("backscatter")["flooding"])


if __name__ == "__main__":
    unittest.main()
