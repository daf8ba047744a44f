"""Issue #6: mail-server inventory and relay self-audit, driven by mg-audit, each test
in a fresh network namespace; test SMTP servers are smtp_responder.py."""
import os
import unittest

import mgtest
from mgtest import nft
from fwtest import ip, mgaudit, mgfw, responder

mgtest.require_private_netns()

ALL_VARIANTS = ["plain", "null-sender", "own-domain-sender", "percent-hack", "bang-path",
                "quoted-recipient", "source-routed", "ip-literal"]


def by_port(items):
    return {i["port"]: i for i in items}


class Audit(unittest.TestCase):
    def assert_clean(self, result):
        cleanup = result["cleanup"]
        self.assertEqual(cleanup["interfaces_left"], [], result)
        self.assertFalse(cleanup["namespace_held"], result)
        self.assertNotIn("mgp", ip("link", "show").stdout)

    def test_inventory_finds_listeners_with_program_and_exposure(self):
        public = responder(self, "0.0.0.0", 25, "open")
        local = responder(self, "127.0.0.1", 587, "open")
        code, listeners, err = mgaudit("inventory")
        self.assertEqual(code, 0, err)
        found = by_port(listeners)
        self.assertEqual(set(found), {25, 587}, listeners)
        self.assertEqual((found[25]["address"], found[25]["exposure"]), ("0.0.0.0", "external"))
        self.assertEqual((found[587]["address"], found[587]["exposure"]), ("127.0.0.1", "loopback"))
        self.assertEqual(found[25]["pid"], public.pid)
        self.assertEqual(found[587]["pid"], local.pid)
        for p in (public, local):
            self.assertEqual(by_port(listeners)[25 if p is public else 587]["path"],
                             os.path.realpath(f"/proc/{p.pid}/exe"))

    def test_audit_reports_open_closed_and_loopback_only_servers(self):
        responder(self, "0.0.0.0", 25, "open")
        responder(self, "0.0.0.0", 2525, "own-domain")
        responder(self, "127.0.0.1", 587, "open")
        responder(self, "::", 465, "own-domain")
        code, result, err = mgaudit("audit")
        self.assertEqual(code, 0, err)
        audit = by_port(result["audit"])
        self.assertEqual(audit[25]["relay"], "open")
        self.assertEqual(audit[25]["accepted"], ALL_VARIANTS)
        self.assertEqual(audit[2525]["relay"], "closed")
        self.assertEqual(audit[2525]["accepted"], [])
        self.assertEqual(audit[465]["relay"], "closed", "probed over IPv6 too")
        self.assertEqual(audit[587]["relay"], "unreachable")
        self.assertIn("loopback", audit[587]["reason"])
        # The probe came from a stranger's address, never loopback or the host's own.
        self.assertEqual(audit[25]["probed_address"], "198.51.100.77")
        replies = audit[25]["replies"]
        self.assertIn("< 220 example.org ESMTP mailguard-test", replies)
        self.assertIn("> RCPT TO:<relay-test%example.net@example.org>", replies)
        self.assertFalse(any(r.startswith("> DATA") for r in replies), "never a message body")
        self.assertEqual(replies[-2:], ["> QUIT", "< 221 2.0.0 Bye"])
        self.assertTrue(any("554 5.7.1 Relay access denied" in r for r in audit[2525]["replies"]))
        # Findings: a plain-language fix, and the offer to block the public listener.
        severities = [f["severity"] for f in audit[25]["findings"]]
        self.assertIn("critical", severities)
        self.assertTrue(any(f["offer_block"] and f["block_command"] == "guardctl firewall enable"
                            for f in audit[25]["findings"]))
        self.assert_clean(result)

    def test_audit_says_when_the_host_firewall_blocks_a_listener(self):
        responder(self, "0.0.0.0", 25, "open")
        mgfw("apply", "--enable")
        code, result, err = mgaudit("audit", "--firewall-enabled")
        self.assertEqual(code, 0, err)
        entry = by_port(result["audit"])[25]
        self.assertEqual(entry["relay"], "unreachable")
        self.assertTrue(entry["blocked_by_firewall"], entry)
        self.assertIn("firewall", entry["reason"])
        mgfw("apply", "--enable", "--allow", "smtp")
        code, result, err = mgaudit("audit", "--firewall-enabled", "--allow", "smtp")
        entry = by_port(result["audit"])[25]
        self.assertEqual(entry["relay"], "open", entry)
        self.assertTrue(any(f["block_command"] == "guardctl firewall remove smtp"
                            for f in entry["findings"]), entry["findings"])
        self.assert_clean(result)

    def test_probe_namespace_and_veth_are_gone_after_every_audit_also_a_failed_one(self):
        responder(self, "0.0.0.0", 25, "open")
        code, result, err = mgaudit("audit")
        self.assertEqual(code, 0, err)
        self.assertTrue(result["cleanup"]["probe_interface"].startswith("mgph"))
        self.assertNotEqual(result["cleanup"]["probe_namespace_inode"], 0)
        self.assert_clean(result)
        for stage in ("namespace", "veth", "configured", "probing"):
            with self.subTest(stage=stage):
                code, result, err = mgaudit("audit", "--fail-at", stage)
                self.assertEqual(code, 1, result)
                self.assertIn(f"injected failure at stage '{stage}'", result["error"])
                self.assert_clean(result)


if __name__ == "__main__":
    mgtest.main()
