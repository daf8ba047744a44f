"""The host firewall (chain host_in of `inet mailguard`) through the real path:
guardd on a private bus, driven with guardctl, each test in a fresh network namespace
with a peer namespace joined by veth. mg-fw is used only to make the kernel refuse a
table, which guardd offers no way to provoke."""
import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
import unittest

import mgtest
from mgtest import GUARDD, Listener, db, nft, wait_for
from busfixture import GUARDCTL, GuarddOnBus
from fwtest import HOST4, HOST6, PEER4, Peer, ip, mgfw

mgtest.require_private_netns()

REMOTE = "203.0.113.9 50122 198.18.99.1 22"  # what sshd puts into SSH_CONNECTION


class Firewall(unittest.TestCase):
    def test_inbound_refused_until_allowed_while_outbound_and_neighbour_discovery_work(self):
        peer = Peer(self)
        Listener(self, "::", 8080)  # dual-stack: IPv4 and IPv6
        d = GuarddOnBus(self).start()
        self.assertFalse(d.json("firewall", "status")["enabled"])
        self.assertTrue(peer.connect(HOST4, 8080), "firewall off: reachable")

        self.assertTrue(d.json("firewall", "enable", "--yes")["enabled"])
        self.assertFalse(peer.connect(HOST4, 8080), "not allowed: must fail")
        self.assertFalse(peer.connect(HOST6, 8080), "not allowed over IPv6 either")

        status = d.json("firewall", "allow", "8080/tcp")
        self.assertEqual([(s["name"], s["local_only"]) for s in status["services"]],
                         [("8080/tcp", False)])
        self.assertTrue(peer.connect(HOST4, 8080))
        # Forget the neighbours on both sides: the IPv6 connection needs neighbour
        # solicitations and adverts through host_in again.
        ip("-6", "neigh", "flush", "dev", "mgtv0")
        ip("-n", peer.name, "-6", "neigh", "flush", "dev", "mgtv1")
        self.assertTrue(peer.connect(HOST6, 8080), "IPv6 (and with it ND) must keep working")
        self.assertIn("fd99::2", ip("-6", "neigh", "show", "dev", "mgtv0").stdout)

        # Outbound connections from this host: the replies are established traffic.
        server = peer.popen([sys.executable, "-c",
                             "import socket\n"
                             "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                             f"s.bind(({PEER4!r}, 9000)); s.listen(1); print('ready', flush=True)\n"
                             "c,_=s.accept(); c.sendall(b'hello'); c.close()"],
                            stdout=subprocess.PIPE, text=True)
        self.addCleanup(lambda: server.poll() is None and server.kill())
        self.assertEqual(server.stdout.readline().strip(), "ready")
        with socket.create_connection((PEER4, 9000), timeout=3) as s:
            self.assertEqual(s.recv(5), b"hello")

        # Local subnets only.
        d.ctl("firewall", "local-subnets", "198.18.99.0/24", "fd99::/64")
        d.ctl("firewall", "allow", "8080/tcp", "--local")
        self.assertTrue(peer.connect(HOST4, 8080), "the peer is in the local subnet")
        d.ctl("firewall", "local-subnets", "192.168.0.0/16")
        self.assertFalse(peer.connect(HOST4, 8080), "the peer is not in the local subnet")

        # The state survives a restart of guardd (it is stored, and re-applied).
        before = d.json("firewall", "status")
        d.restart()
        after = d.json("firewall", "status")
        for key in ("enabled", "services", "local_subnets"):
            self.assertEqual(after[key], before[key], key)
        self.assertFalse(peer.connect(HOST4, 8080), "still refused after the restart")

        d.ctl("firewall", "remove", "8080/tcp")
        removed = d.ctl("firewall", "remove", "8080/tcp", ok=False)
        self.assertEqual(removed.returncode, 1)
        self.assertIn("not found", removed.stderr)
        d.ctl("firewall", "disable")  # no host_in at all
        self.assertTrue(peer.connect(HOST4, 8080))
        self.assertNotIn("host_in", nft("list", "table", "inet", "mailguard").stdout)

    def test_enable_disable_leave_foreign_tables_and_a_failed_update_keeps_the_old_table(self):
        subprocess.run(["nft", "add table inet other; "
                        "add chain inet other c { type filter hook input priority 10; policy accept; }; "
                        "add rule inet other c tcp dport 1234 counter accept"], check=True)
        foreign = nft("list", "table", "inet", "other").stdout
        d = GuarddOnBus(self).start()
        base = nft("-s", "list", "table", "inet", "mailguard").stdout
        self.assertNotIn("host_in", base, "off until the owner enables it")

        d.ctl("firewall", "allow", "ssh")
        d.ctl("firewall", "enable", "--yes")
        enabled = nft("-s", "list", "table", "inet", "mailguard").stdout
        self.assertIn("chain host_in", enabled)
        self.assertIn("policy drop", enabled)
        self.assertIn("chain mail_out", enabled, "one table: the mail guard stays in place")
        self.assertEqual(nft("list", "table", "inet", "other").stdout, foreign)

        # Refused by guardd before the kernel: nothing changes.
        bad = d.ctl("firewall", "allow", "no-such-service", ok=False)
        self.assertEqual(bad.returncode, 1)
        self.assertIn("invalid argument", bad.stderr)
        bad = d.ctl("firewall", "local-subnets", "10.0.0.0/33", ok=False)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(nft("-s", "list", "table", "inet", "mailguard").stdout, enabled)

        # Refused by the kernel: guardd has no way to provoke that, so mg-fw sends the
        # same kind of whole-table batch with a chain name the kernel rejects. The table
        # guardd installed stays in force.
        failed = mgfw("apply", "--enable", "--allow", "ssh", "--allow", "8080/tcp",
                      "--force-kernel-failure", check=False)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("Failed to apply table 'inet mailguard'", failed.stderr)
        self.assertEqual(nft("-s", "list", "table", "inet", "mailguard").stdout, enabled,
                         "a refused batch must leave the old table in place")

        d.ctl("firewall", "disable")
        disabled = nft("-s", "list", "table", "inet", "mailguard").stdout
        self.assertNotIn("host_in", disabled)
        self.assertEqual(disabled, base)
        self.assertEqual(nft("list", "table", "inet", "other").stdout, foreign)
        d.guardd.stop()
        subprocess.run([GUARDD, "--remove-rules"], check=True, capture_output=True)
        self.assertEqual(nft("list", "table", "inet", "other").stdout, foreign)
        self.assertEqual(re.findall(r"table inet (\S+)", nft("list", "tables").stdout), ["other"])

    def test_port_scan_of_1000_ports_gives_bounded_probe_records(self):
        peer = Peer(self)
        d = GuarddOnBus(self).start()
        d.ctl("firewall", "enable", "--yes")
        self.assertTrue(d.json("firewall", "status")["probes"]["recording"])
        # 1,000 ports, then 1,000 more SYNs at port 25: non-blocking connects, so the
        # SYNs leave at once and are dropped by the policy.
        scan = ("import socket\n"
                "socks=[]\n"
                "targets=list(range(1,1001))+[25]*1000\n"
                "for port in targets:\n"
                "  s=socket.socket(); s.setblocking(False)\n"
                f"  s.connect_ex(({HOST4!r}, port)); socks.append(s)\n"
                "  if len(socks)>=200:\n"
                "    [x.close() for x in socks]; socks=[]\n"
                "print('done')\n")
        started = time.monotonic()
        self.assertIn("done", peer.run([sys.executable, "-c", scan], timeout=60).stdout)
        records = wait_for(lambda: d.json("firewall", "probes"), 10, "probe records")
        elapsed = time.monotonic() - started
        self.assertLessEqual({r["port"] for r in records}, {25, 465, 587},
                             "only mail ports are probes")
        self.assertIn(25, {r["port"] for r in records})
        self.assertEqual({r["source"] for r in records}, {PEER4})
        self.assertLessEqual(len(records), 3, "one record per (source, port)")
        # The kernel's limit (10/second, burst 20) bounds the events no matter how many
        # SYNs arrived: at most 20 + 10 per second of the run, far below the 1,003.
        total = sum(r["count"] for r in records)
        self.assertLessEqual(total, 20 + 10 * (elapsed + 3), records)
        status = d.json("firewall", "status")
        self.assertLessEqual(status["probes"]["events"], 20 + 10 * (elapsed + 3), status)
        with db(d.state) as conn:
            rows = conn.execute("SELECT source, port, count FROM probes").fetchall()
        self.assertEqual(len(rows), len(records))
        self.assertEqual(sum(r["count"] for r in rows), total)
        listed = nft("list", "chain", "inet", "mailguard", "host_in").stdout
        self.assertRegex(listed, r"log prefix \"mailguard-probe \" group 4025")
        text = d.ctl("firewall", "probes").stdout
        self.assertIn(PEER4, text)

    def test_enabling_from_an_ssh_session_without_ssh_allowed_asks_first(self):
        d = GuarddOnBus(self).start()
        remote = d.env(SSH_CONNECTION=REMOTE)
        # No terminal to ask on: refused without --yes, and nothing changes.
        r = d.ctl("firewall", "enable", ok=False, env=remote)
        self.assertEqual(r.returncode, 1)
        self.assertIn("SSH", r.stderr)
        self.assertIn("--yes", r.stderr)
        self.assertFalse(d.json("firewall", "status")["enabled"])
        self.assertNotIn("host_in", nft("list", "table", "inet", "mailguard").stdout)

        # On a terminal: the warning and a question; "n" keeps it off, "y" goes ahead.
        for answer, enabled in (("n", False), ("y", True)):
            code, output = self.run_on_terminal(d, ["firewall", "enable"], remote, answer)
            self.assertIn("not an allowed service", output)
            self.assertIn("[y/N]", output)
            self.assertEqual(code, 0 if enabled else 1, output)
            self.assertEqual(d.json("firewall", "status")["enabled"], enabled)
        d.ctl("firewall", "disable")

        # --yes goes ahead, with the warning still printed.
        r = d.ctl("firewall", "enable", "--yes", env=remote)
        self.assertIn("Warning", r.stderr)
        self.assertTrue(d.json("firewall", "status")["enabled"])
        d.ctl("firewall", "disable")

        # With SSH allowed there is nothing to warn about.
        d.ctl("firewall", "allow", "ssh")
        r = d.ctl("firewall", "enable", env=remote)
        self.assertNotIn("Warning", r.stderr)
        self.assertTrue(d.json("firewall", "status")["enabled"])

        # An SSH server on another port: SSH_CONNECTION says which one.
        d.ctl("firewall", "disable")
        r = d.ctl("firewall", "enable", ok=False, env=d.env(SSH_CONNECTION="203.0.113.9 5 198.18.99.1 2222"))
        self.assertIn("port 2222", r.stderr)

    def test_firewall_changes_need_authorization_but_status_is_open(self):
        d = GuarddOnBus(self).start()
        self.assertFalse(d.json("firewall", "status", user="nobody")["enabled"])
        for args in (["firewall", "enable", "--yes"], ["firewall", "allow", "ssh"],
                     ["firewall", "disable"], ["firewall", "local-subnets", "10.0.0.0/8"]):
            r = d.ctl(*args, ok=False, user="nobody")
            self.assertEqual(r.returncode, 1, args)
            self.assertIn("guardctl: Not authorized: ", r.stderr, args)
        status = d.json("firewall", "status")
        self.assertEqual((status["enabled"], status["services"], status["local_subnets"]),
                         (False, [], []))
        self.assertIn("Refused policy change", d.guardd.log())

    def run_on_terminal(self, d, args, env, answer):
        """Runs guardctl with a pseudo-terminal as stdin and stderr; answers the question."""
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(GUARDCTL, [GUARDCTL, *args], env)
        output = b""
        answered = False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            if not answered and b"[y/N]" in output:
                os.write(fd, answer.encode() + b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


if __name__ == "__main__":
    mgtest.main()
