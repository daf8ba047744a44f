"""Only approved programs open outbound mail connections (run as root
under `unshare -n`, each test in a fresh network namespace)."""
import errno
import os
import re
import subprocess
import threading
import unittest

import fwtest
import mgtest
from mgtest import CONNECT, Guardd, Listener, attempts, connect, copy_program, nft, seed, wait_for

mgtest.require_private_netns()


class Enforcement(unittest.TestCase):
    def setUp(self):
        self.dir = mgtest.make_tempdir(self)
        self.state = os.path.join(self.dir, "state")
        self.client = copy_program(CONNECT, os.path.join(self.dir, "mailclient"))

    def guardd(self, config=None):
        return Guardd(self, self.state, config)

    def test_approved_program_connects_over_ipv4_and_ipv6(self):
        Listener(self, "127.0.0.1", 25)
        Listener(self, "::1", 587)
        seed(self.state, "approve", self.client)
        self.guardd().start()
        for host, port in (("127.0.0.1", 25), ("::1", 587)):
            r = connect(host, port, exe=self.client)
            self.assertTrue(r["connected"], f"{host}:{port}: {r}")
        rows = wait_for(lambda: len(attempts(self.state, verdict="allow")) >= 2 and
                        attempts(self.state, verdict="allow"), 5, "allowed attempts recorded")
        self.assertEqual({(r["dst"], r["dst_port"]) for r in rows}, {("127.0.0.1", 25), ("::1", 587)})
        self.assertTrue(all(r["path"] == self.client for r in rows))

    def test_identical_copy_at_another_path_is_held_and_recorded(self):
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "approve", self.client)
        copy = copy_program(self.client, os.path.join(self.dir, "copy-of-client"))
        self.guardd().start()
        r = connect("127.0.0.1", 25, timeout_ms=1500, exe=copy, user="nobody")
        self.assertFalse(r["connected"], r)
        self.assertEqual(r["errno"], errno.ETIMEDOUT, "a held SYN is dropped, not refused")
        row = wait_for(lambda: attempts(self.state, path=copy), 5, "the held attempt")[0]
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["pid"], r["pid"])
        self.assertEqual(row["uid"], 65534)
        self.assertEqual((row["dst"], row["dst_port"]), ("127.0.0.1", 25))
        self.assertIn("not approved", row["reason"])
        self.assertEqual(len(attempts(self.state, path=copy)), 1, "SYN retries are one attempt")

    def test_held_program_gets_through_once_approved_while_retrying(self):
        Listener(self, "127.0.0.1", 25)
        self.guardd().start()
        pending = mgtest.start_connect("127.0.0.1", 25, 15000, exe=self.client)
        wait_for(lambda: attempts(self.state, path=self.client), 5, "the held attempt")
        seed(self.state, "approve", self.client)  # no restart: guardd re-reads approvals
        out, _ = pending.communicate(timeout=20)
        result = mgtest.json.loads(out)
        self.assertTrue(result["connected"], result)
        wait_for(lambda: attempts(self.state, path=self.client, verdict="allow"), 5, "allow record")

    def test_program_approved_by_hash_is_held_after_its_file_changes(self):
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "approve", self.client)
        self.guardd().start()
        self.assertTrue(connect("127.0.0.1", 25, exe=self.client)["connected"])
        with open(self.client, "ab") as f:
            f.write(b"\0tampered")  # still runs: ELF loaders ignore trailing bytes
        r = connect("127.0.0.1", 25, timeout_ms=1500, exe=self.client)
        self.assertFalse(r["connected"], r)
        row = wait_for(lambda: attempts(self.state, verdict="hold"), 5, "hold record")[0]
        self.assertIn("changed", row["reason"])

    def test_denied_program_fails_fast(self):
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "deny", self.client)
        self.guardd().start()
        r = connect("127.0.0.1", 25, timeout_ms=5000, exe=self.client)
        self.assertFalse(r["connected"])
        self.assertIn(r["errno"], (errno.ECONNREFUSED, errno.ECONNRESET), r)
        self.assertLess(r["ms"], 500, "a denied program must fail at once, not time out")
        row = wait_for(lambda: attempts(self.state, verdict="reject"), 5, "reject record")[0]
        self.assertEqual(row["path"], self.client)

    def test_local_mta_connection_is_attributed_to_submitting_program(self):
        # The "MTA" is this Python process listening on 127.0.0.1:25; the attempt must
        # name the program that connected to it, not the listener or "localhost".
        mta = Listener(self, "127.0.0.1", 25)
        self.guardd().start()
        r = connect("127.0.0.1", 25, timeout_ms=1200, exe=self.client)
        row = wait_for(lambda: attempts(self.state), 5, "an attempt")[0]
        self.assertEqual(row["path"], self.client)
        self.assertEqual(row["pid"], r["pid"])
        self.assertNotEqual(row["pid"], os.getpid())
        self.assertEqual(mta.accepted, 0)

    def test_other_ports_are_never_queued_even_after_guardd_dies(self):
        web = Listener(self, "127.0.0.1", 8080)
        g = self.guardd().start()
        queued_before = queue_rule_packets()
        for _ in range(3):
            self.assertTrue(connect("127.0.0.1", 8080, exe=self.client)["connected"])
        self.assertEqual(queue_rule_packets(), queued_before, "port 8080 reached the queue rule")
        g.kill9()
        self.assertTrue(connect("127.0.0.1", 8080, exe=self.client)["connected"])
        self.assertEqual(web.accepted_once(4), 4)
        self.assertEqual(attempts(self.state, dst_port=8080), [])

    def test_mail_fails_closed_after_kill_and_approvals_survive_restart(self):
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "approve", self.client)
        g = self.guardd().start()
        self.assertTrue(connect("127.0.0.1", 25, exe=self.client)["connected"])
        g.kill9()
        for exe in (self.client, CONNECT):  # approved or not
            r = connect("127.0.0.1", 25, timeout_ms=1200, exe=exe)
            self.assertFalse(r["connected"], f"{exe} got through with guardd dead: {r}")
        self.guardd().start()
        self.assertTrue(connect("127.0.0.1", 25, exe=self.client)["connected"])

    def test_foreign_table_is_untouched_and_remove_rules_leaves_nothing(self):
        subprocess.run(["nft", "-f", "-"], check=True, text=True, input="""
            table inet other {
              set blocked {
                type ipv4_addr
                elements = { 192.0.2.1, 192.0.2.2 }
              }
              chain c {
                type filter hook output priority 10; policy accept;
                ip daddr @blocked counter drop
                tcp dport 9999 counter accept
              }
            }
            """)
        before = nft("list", "table", "inet", "other").stdout
        g = self.guardd().start()
        self.assertEqual(nft("list", "table", "inet", "other").stdout, before)
        g.stop()
        self.assertEqual(nft("list", "table", "inet", "other").stdout, before)
        self.assertEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0,
                         "stopping guardd must leave its table in place (fail-closed)")
        out = subprocess.run([mgtest.GUARDD, "--remove-rules"], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertNotEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0)
        self.assertEqual(nft("list", "table", "inet", "other").stdout, before)
        tables = nft("list", "tables").stdout
        self.assertNotIn("mailguard", tables)

    def test_installed_ruleset_is_the_intended_one(self):
        self.guardd_log = self.guardd().start().log()
        text = nft("list", "table", "inet", "mailguard").stdout
        expected = [
            r"table inet mailguard \{",
            r"set mail_ports \{",
            r"type inet_service",
            r"elements = \{ 25, 465, 587, 2525 \}",
            r"chain mail_out \{",
            r"type filter hook output priority filter; policy accept;",
            r"ct state established,related counter packets \d+ bytes \d+ accept",
            r"meta mark 0x6d670001 meta l4proto tcp counter packets \d+ bytes \d+ reject with tcp reset",
            r"meta mark 0x6d670002 counter packets \d+ bytes \d+ accept",
            # nft leaves out `meta l4proto tcp` where `tcp dport` implies it, and
            # Debian's nft 1.0.6 cannot print the xt-compat target at all (it warns
            # "XT target NFQUEUE not found"): the action is checked below instead.
            r"ct state new tcp dport @mail_ports counter packets \d+ bytes \d+",
            # Last: what is no mail connection has its conntrack events silenced.
            r"ct state new counter packets \d+ bytes \d+ ct event set 0x0\n\s*\}",
            # So has what comes in or passes through, but loopback (local connections).
            r"chain quiet_in \{",
            r"type filter hook prerouting priority filter; policy accept;",
            r'iifname "lo" counter packets \d+ bytes \d+ accept',
            r"ct state new counter packets \d+ bytes \d+ ct event set 0x0\n\s*\}",
        ]
        position = 0
        for pattern in expected:
            m = re.compile(pattern).search(text, position)
            self.assertIsNotNone(m, f"missing, or out of order: {pattern!r}\n{text}")
            position = m.end()
        self.assertNotIn("bypass", text, "the queue rule must fail closed")
        expressions = nft("--debug=netlink", "list", "chain", "inet", "mailguard", "mail_out").stdout
        last_rule = [r for r in expressions.split("inet mailguard mail_out")
                     if "set mail_ports" in r][-1]
        if "backend xt-compat" in self.guardd_log:
            self.assertIn("[ target name NFQUEUE rev 3 ]", last_rule)
        else:
            self.assertRegex(text, r"dport @mail_ports counter packets \d+ bytes \d+ queue (num|to) 4025")
        self.assertRegex(last_rule, r"\[ lookup reg 1 set mail_ports( 0x0)? \]")
        self.assertEqual(len(re.findall(r"^\s*chain ", text, re.M)), 2, text)
        self.assertEqual(len(re.findall(r"counter packets", text)), 7, text)

    def test_inbound_connections_send_no_conntrack_events_and_mail_connections_do(self):
        # guardd follows only this host's outgoing mail connections: the events of every
        # other connection would wake it (and anyone listening) for nothing.
        peer = fwtest.Peer(self)
        Listener(self, fwtest.HOST4, 8080)
        Listener(self, "127.0.0.1", 25)
        seed(self.state, "approve", self.client)
        events = subprocess.Popen(["stdbuf", "-oL", "conntrack", "-E", "-e", "NEW"],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.addCleanup(mgtest.terminate, events)
        lines = []
        threading.Thread(target=lambda: lines.extend(events.stdout), daemon=True).start()
        inbound = lambda: [l for l in lines if f"src={fwtest.PEER4} " in l and "dport=8080 " in l]
        mail = lambda: [l for l in lines if "dport=25 " in l]

        # Without guardd, an inbound connection is reported (the test can see one), once
        # something in the namespace uses conntrack (as any host firewall does).
        nft("add", "table", "inet", "mgtest_ct")
        nft("add", "chain", "inet", "mgtest_ct", "out", "{ type filter hook output priority 0; }")
        nft("add", "rule", "inet", "mgtest_ct", "out", "ct", "state", "new", "counter")
        self.assertTrue(peer.connect(fwtest.HOST4, 8080))
        wait_for(inbound, 5, "the inbound connection's NEW event without guardd")
        self.guardd().start()
        before = len(inbound())
        self.assertTrue(peer.connect(fwtest.HOST4, 8080))
        # A later connection's event comes after the earlier one's, on the same socket.
        self.assertTrue(connect("127.0.0.1", 25, exe=self.client)["connected"])
        wait_for(mail, 5, "the mail connection's NEW event")
        self.assertEqual(len(inbound()), before, lines)

    def test_interpreter_script_approval_covers_only_that_script(self):
        Listener(self, "127.0.0.1", 25)
        python = os.path.realpath("/usr/bin/python3")
        scripts = {}
        for name in ("a.py", "b.py"):
            scripts[name] = os.path.join(self.dir, name)
            with open(scripts[name], "w") as f:
                f.write("import socket, sys\n"
                        "s = socket.socket(); s.settimeout(1.5)\n"
                        "try:\n    s.connect(('127.0.0.1', 25)); print('connected')\n"
                        "except OSError as e:\n    print('failed', e)\n")
        seed(self.state, "approve", python, scripts["a.py"])
        self.guardd().start()
        run = lambda n: subprocess.run([python, scripts[n]], capture_output=True, text=True,
                                       cwd=self.dir).stdout.strip()
        self.assertEqual(run("a.py"), "connected")
        self.assertTrue(run("b.py").startswith("failed"))
        row = wait_for(lambda: attempts(self.state, script_path=scripts["b.py"]), 5, "b.py attempt")[0]
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], python)


def queue_rule_packets():
    text = nft("list", "chain", "inet", "mailguard", "mail_out").stdout
    m = re.search(r"dport @mail_ports counter packets (\d+)", text)
    assert m, text
    return int(m.group(1))


if __name__ == "__main__":
    mgtest.main()
