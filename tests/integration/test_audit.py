"""Mail-server inventory and relay self-audit through the real path: guardd on
a private bus, `guardctl --json audit --run`, each test in a fresh network namespace;
test SMTP servers are smtp_responder.py."""
import os
import shutil
import stat
import unittest

import mgtest
from mgtest import wait_for
from busfixture import GuarddOnBus
from fwtest import ip, responder

mgtest.require_private_netns()

ALL_VARIANTS = ["plain", "null-sender", "own-domain-sender", "percent-hack", "bang-path",
                "quoted-recipient", "source-routed", "ip-literal"]
DESIGN_KEYS = {"address", "port", "path", "exposure", "relay", "accepted"}


def by_port(items):
    return {i["port"]: i for i in items}


def net_namespaces_of(pid):
    """The network namespaces of every thread of `pid`."""
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            found.add(os.stat(f"/proc/{pid}/task/{task}/ns/net").st_ino)
        except FileNotFoundError:
            pass  # the thread just ended
    return found


class Audit(unittest.TestCase):
    def assert_clean(self, d):
        """No probe veth left, and no thread of guardd in another network namespace."""
        own = os.stat(f"/proc/{d.pid()}/ns/net").st_ino
        wait_for(lambda: net_namespaces_of(d.pid()) == {own}, 5,
                 "guardd's probe thread to leave its namespace")
        self.assertNotIn("mgp", ip("link", "show").stdout)

    def audit(self, d, *extra, ok=True):
        return d.json("audit", "--run", *extra, ok=ok)

    def test_inventory_finds_listeners_with_program_and_exposure(self):
        public = responder(self, "0.0.0.0", 25, "open")
        local = responder(self, "127.0.0.1", 587, "open")
        d = GuarddOnBus(self).start()
        found = by_port(self.audit(d))
        self.assertEqual(set(found), {25, 587}, found)
        for entry in found.values():
            self.assertLessEqual(DESIGN_KEYS, set(entry), "the shape DESIGN.md fixes")
        self.assertEqual((found[25]["address"], found[25]["exposure"]), ("0.0.0.0", "external"))
        self.assertEqual((found[587]["address"], found[587]["exposure"]),
                         ("127.0.0.1", "loopback"))
        self.assertEqual(found[25]["pid"], public.pid)
        self.assertEqual(found[587]["pid"], local.pid)
        for p, port in ((public, 25), (local, 587)):
            self.assertEqual(found[port]["path"], os.path.realpath(f"/proc/{p.pid}/exe"))
        # The result is kept: `audit` without --run shows it, also after a restart.
        self.assertEqual(by_port(d.json("audit")).keys(), found.keys())
        d.restart()
        kept = by_port(d.json("audit"))
        self.assertEqual(kept[25]["relay"], found[25]["relay"])
        self.assertEqual(kept[587]["path"], found[587]["path"])

    def test_audit_reports_open_closed_and_loopback_only_servers(self):
        responder(self, "0.0.0.0", 25, "open")
        responder(self, "0.0.0.0", 2525, "own-domain")
        responder(self, "127.0.0.1", 587, "open")
        responder(self, "::", 465, "own-domain")
        d = GuarddOnBus(self).start()
        audit = by_port(self.audit(d))
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
        self.assertIn("open relay", d.guardd.log().lower(), "findings are logged")
        text = d.ctl("audit").stdout
        self.assertIn("OPEN RELAY", text)
        self.assertIn("fix:", text)
        self.assert_clean(d)

    def test_audit_says_when_the_host_firewall_blocks_a_listener(self):
        responder(self, "0.0.0.0", 25, "open")
        d = GuarddOnBus(self).start()
        d.ctl("firewall", "enable", "--yes")
        entry = by_port(self.audit(d))[25]
        self.assertEqual(entry["relay"], "unreachable")
        self.assertTrue(entry["blocked_by_firewall"], entry)
        self.assertIn("firewall", entry["reason"])
        d.ctl("firewall", "allow", "smtp")
        entry = by_port(self.audit(d))[25]
        self.assertEqual(entry["relay"], "open", entry)
        self.assertTrue(any(f["block_command"] == "guardctl firewall remove smtp"
                            for f in entry["findings"]), entry["findings"])
        self.assert_clean(d)

    def test_an_open_relay_raises_one_audit_alert_with_its_fix(self):
        relay = responder(self, "0.0.0.0", 25, "open")
        d = GuarddOnBus(self).start()
        self.assertEqual(by_port(self.audit(d))[25]["relay"], "open")
        program = os.path.realpath(f"/proc/{relay.pid}/exe")

        def audit_alerts():
            return [a for a in d.json("alerts") if a.get("kind") == "audit"]

        # Alerts reach the store off guardd's loop: wait for both (relay and exposed).
        alerts = wait_for(lambda: (lambda a: len(a) >= 2 and a)(audit_alerts()), 10,
                          "the audit's alerts in the store")
        relay_alerts = [a for a in alerts if a["tier"] == "hard"
                        and "open relay" in a["reasons"][0]]
        self.assertEqual(len(relay_alerts), 1, alerts)
        alert = relay_alerts[0]
        self.assertEqual(alert["path"], program)
        self.assertFalse(alert["acknowledged"])
        self.assertTrue(any("relay" in r.lower() and r != alert["reasons"][0]
                            for r in alert["reasons"]), "the fix text: " + repr(alert["reasons"]))
        self.assertTrue(any("guardctl firewall enable" in r for a in alerts
                            for r in a["reasons"]), "the offer to block the public listener")
        self.assertTrue(all(a["kind"] == "audit" for a in alerts))
        # A re-audit finds the same: no new alert.
        self.audit(d)
        self.assertEqual(sorted(a["id"] for a in audit_alerts()), sorted(a["id"] for a in alerts))
        # Shown as an audit finding, not a quarantine; acknowledged like any alert.
        text = d.ctl("alerts").stdout
        self.assertIn("audit: open relay", text)
        self.assertNotIn("quarantined", text.split("How to fix")[0])
        d.ctl("alerts", "ack", str(alert["id"]))
        self.assertTrue(next(a for a in d.json("alerts") if a["id"] == alert["id"])["acknowledged"])
        self.assert_clean(d)

    def test_probe_namespace_and_veth_are_gone_after_every_audit_also_a_failed_one(self):
        # guardd runs iproute2's `ip` to build the probe network; a stand-in `ip` first in
        # its PATH refuses the one command named in a file, so the audit fails at that
        # step of the real path, after the namespace (and then the veth) exist.
        shim_dir = mgtest.make_tempdir(self)
        fail_file = os.path.join(shim_dir, "fail")
        real_ip = shutil.which("ip")
        shim = os.path.join(shim_dir, "ip")
        with open(shim, "w") as f:
            f.write("#!/bin/sh\n"
                    f"pattern=$(cat {fail_file} 2>/dev/null)\n"
                    'case " $* " in *"$pattern"*) [ -n "$pattern" ] && '
                    '{ echo "mailguard test: refusing ip $*" >&2; exit 2; } ;; esac\n'
                    f'exec {real_ip} "$@"\n')
        os.chmod(shim, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        # A listener on a specific address makes the audit add a route while probing.
        # (The test's namespace is its own: the address goes with it.)
        ip("addr", "add", "10.98.0.1/32", "dev", "lo")
        responder(self, "0.0.0.0", 25, "open")
        responder(self, "10.98.0.1", 587, "open")
        d = GuarddOnBus(self, env={"PATH": shim_dir + ":" + os.environ.get("PATH", "")}).start()

        audit = by_port(self.audit(d))
        self.assertEqual(audit[25]["relay"], "open")
        self.assertEqual(audit[587]["relay"], "open")
        self.assert_clean(d)
        for step, pattern in (("creating the veth", " link add mgph"),
                              ("addressing the host end", " addr add 198.51.100.77/32"),
                              ("configuring the probe side", " link set lo up "),
                              ("routing to a listener", " route replace 10.98.0.1/32")):
            with self.subTest(step=step):
                with open(fail_file, "w") as f:
                    f.write(pattern.strip())
                r = d.ctl("--json", "audit", "--run", ok=False)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("audit failed", r.stderr)
                self.assertIn("refusing ip", r.stderr)
                self.assert_clean(d)
        os.remove(fail_file)
        self.assertEqual(by_port(self.audit(d))[25]["relay"], "open", "works again")
        self.assert_clean(d)


if __name__ == "__main__":
    mgtest.main()
