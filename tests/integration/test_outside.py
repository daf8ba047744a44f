"""The outside check through the real path: dnsmasq (Debian's dnsmasq-base) in the test's
network namespace serves test blocklist zones for a test public address (198.18.0.7, from
the benchmarking range 198.18.0.0/15) and SPF/DMARC records of *.test domains; guardd on a
private bus is pointed at it ([outside] nameserver), and `guardctl --json outside --run`
reads the result. Nothing outside the namespace is ever asked."""
import os
import unittest

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import CONNECT, DNSMASQ, connect, copy_program, start_test_dns, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()

PORT = 5353
ADDRESS = "198.18.0.7"
NAME = "7.0.18.198"
REASON = "Listed for spam: https://bl.test/lookup?ip=198.18.0.7"

RECORDS = [
    f"--host-record={NAME}.zen.test-bl.test,127.0.0.2",
    f"--txt-record={NAME}.zen.test-bl.test,{REASON}",
    f"--host-record={NAME}.refuse.test-bl.test,127.255.255.254",
    "--txt-record=good.test,v=spf1 mx -all",
    "--txt-record=_dmarc.good.test,v=DMARC1; p=reject",
    "--txt-record=soft.test,v=spf1 ~all",
    "--txt-record=_dmarc.soft.test,v=DMARC1; p=quarantine",
    "--txt-record=plusall.test,v=spf1 +all",
    "--txt-record=_dmarc.plusall.test,v=DMARC1; p=reject",
    "--txt-record=nodmarc.test,v=spf1 -all",
    "--txt-record=pnone.test,v=spf1 -all",
    "--txt-record=_dmarc.pnone.test,v=DMARC1; p=none; rua=mailto:d@pnone.test",
]


@unittest.skipUnless(os.path.exists(DNSMASQ), "dnsmasq is not installed (install/deps.sh --test)")
class Outside(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        start_test_dns(self, PORT, RECORDS, "good.test", 16)

    def configure(self, blocklists, domains=()):
        path = os.path.join(self.dir, "guardd.conf")
        quoted = lambda items: "[" + ", ".join(f'"{i}"' for i in items) + "]"
        with open(path, "w") as f:
            f.write(f'[outside]\npublic_address = "{ADDRESS}"\n'
                    f"blocklists = {quoted(blocklists)}\ndomains = {quoted(domains)}\n"
                    f'nameserver = "127.0.0.1:{PORT}"\ntimeout_seconds = 1\n')
        self.guardd.config = path

    def outside_alerts(self):
        return [a for a in self.ctl_json("alerts") if a["kind"] == "blocklist"]

    def test_a_listing_raises_an_alert_naming_the_list_and_the_quarantined_program(self):
        self.configure(["zen.test-bl.test", "clean.test-bl.test"])
        self.start_guardd()
        bot = copy_program(CONNECT, os.path.join(self.dir, "bot"))
        for n in range(1, 11):
            connect(f"127.1.0.{n}", 25, timeout_ms=300, exe=bot)
            p = self.program(bot)
            if p and p["state"] == "quarantined":
                break
        self.assertEqual(self.program(bot)["state"], "quarantined", "the bot must be quarantined")

        report = self.ctl_json("outside", "--run")
        self.assertEqual(report["public_address"], ADDRESS)
        self.assertEqual(report["address_source"], "settings")
        lists = {b["zone"]: b for b in report["blocklists"]}
        self.assertEqual(lists["zen.test-bl.test"]["status"], "listed")
        self.assertEqual(lists["zen.test-bl.test"]["codes"], ["127.0.0.2"])
        self.assertEqual(lists["zen.test-bl.test"]["reason"], REASON)
        self.assertEqual(lists["zen.test-bl.test"]["first_seen"], report["time"])
        self.assertEqual(lists["clean.test-bl.test"]["status"], "not-listed")

        alerts = wait_for(self.outside_alerts, 5, "the blocklist alert")
        self.assertEqual(len(alerts), 1, alerts)
        alert = alerts[0]
        self.assertIn("zen.test-bl.test", alert["summary"])
        self.assertIn(ADDRESS, alert["summary"])
        self.assertEqual(alert["evidence"]["zone"], "zen.test-bl.test")
        self.assertEqual(alert["evidence"]["first_seen"], report["time"])
        self.assertIn(bot, alert["evidence"]["cause"])
        self.assertTrue(any(bot in r for r in alert["reasons"]), alert["reasons"])

        # Listed still: no second alert, and the first sighting is kept, across a restart.
        self.daemon.restart()
        kept = self.ctl_json("outside")
        self.assertEqual(kept["time"], report["time"], "the last check survives a restart")
        again = self.ctl_json("outside", "--run")
        self.assertNotEqual(again["time"], report["time"])
        first = {b["zone"]: b for b in again["blocklists"]}["zen.test-bl.test"]["first_seen"]
        self.assertEqual(first, report["time"])
        self.assertEqual(len(self.outside_alerts()), 1, "one alert per new listing")

    def test_a_listing_without_a_local_cause_points_elsewhere(self):
        self.configure(["zen.test-bl.test"])
        self.start_guardd()
        self.ctl_json("outside", "--run")
        alert = wait_for(self.outside_alerts, 5, "the blocklist alert")[0]
        self.assertIn("another device at home", alert["evidence"]["cause"])

    def test_not_listed_and_refused_queries_raise_no_alert_and_errors_are_errors(self):
        self.configure(["clean.test-bl.test", "refuse.test-bl.test"])
        self.start_guardd()
        report = self.ctl_json("outside", "--run")
        lists = {b["zone"]: b for b in report["blocklists"]}
        self.assertEqual(lists["clean.test-bl.test"]["status"], "not-listed")
        refused = lists["refuse.test-bl.test"]
        self.assertEqual(refused["status"], "error", "a refusal code is not a listing")
        self.assertIn("127.255.255.254", refused["error"])
        self.assertEqual(self.outside_alerts(), [])
        text = self.ctl("outside").stdout
        self.assertIn("refuse.test-bl.test: error", text)
        self.assertIn("clean.test-bl.test: not listed", text)

    def test_domains_spf_and_dmarc_findings_with_fixes(self):
        self.configure([], ["good.test", "soft.test", "plusall.test", "nodmarc.test",
                            "pnone.test", "missing.test"])
        self.start_guardd()
        report = self.ctl_json("outside", "--run")
        domains = {d["domain"]: d for d in report["domains"]}
        kinds = {name: [f["kind"] for f in d["findings"]] for name, d in domains.items()}
        self.assertEqual(kinds["good.test"], [])
        self.assertEqual(kinds["soft.test"], [])
        self.assertEqual(kinds["plusall.test"], ["spf-pass-all"])
        self.assertEqual(kinds["nodmarc.test"], ["dmarc-missing"])
        self.assertEqual(kinds["pnone.test"], ["dmarc-none"])
        self.assertEqual(kinds["missing.test"], ["spf-missing", "dmarc-missing"])
        self.assertEqual(domains["good.test"]["spf"], "v=spf1 mx -all")
        self.assertEqual(domains["soft.test"]["dmarc_policy"], "quarantine")
        fix = domains["pnone.test"]["findings"][0]["fix"]
        self.assertIn("_dmarc.pnone.test", fix)
        self.assertIn("v=DMARC1; p=quarantine", fix)
        self.assertIn("-all", domains["plusall.test"]["findings"][0]["fix"])
        self.assertEqual(self.outside_alerts(), [], "domain findings are reported, not alerts")

    def test_running_the_check_needs_the_rights_of_approve(self):
        self.configure(["zen.test-bl.test"])
        self.start_guardd()
        r = self.ctl("outside", "--run", user="nobody", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIsNone(self.ctl_json("outside", user="nobody")["time"], "nothing ran")


if __name__ == "__main__":
    unittest.main()
