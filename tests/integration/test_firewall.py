"""Issue #6: the host firewall (chain host_in of `inet mailguard`), driven by mg-fw,
each test in a fresh network namespace with a peer namespace joined by veth."""
import json
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

import mgtest
from mgtest import Listener, nft, wait_for
from fwtest import HOST4, HOST6, PEER4, MGFW, Peer, ip, mgfw

mgtest.require_private_netns()


class Firewall(unittest.TestCase):
    def test_inbound_refused_until_allowed_while_outbound_and_neighbour_discovery_work(self):
        peer = Peer(self)
        Listener(self, "::", 8080)  # dual-stack: IPv4 and IPv6
        self.assertTrue(peer.connect(HOST4, 8080), "no firewall yet: reachable")
        mgfw("apply", "--enable")
        self.assertFalse(peer.connect(HOST4, 8080), "not allowed: must fail")
        self.assertFalse(peer.connect(HOST6, 8080), "not allowed over IPv6 either")

        mgfw("apply", "--enable", "--allow", "8080/tcp")
        self.assertTrue(peer.connect(HOST4, 8080))
        # Forget the neighbours on both sides: the IPv6 connection needs neighbour
        # solicitations and adverts through host_in again.
        ip("-6", "neigh", "flush", "dev", "mgtv0")
        ip("-n", peer.name, "-6", "neigh", "flush", "dev", "mgtv1")
        self.assertTrue(peer.connect(HOST6, 8080), "IPv6 (and with it ND) must keep working")
        neigh = ip("-6", "neigh", "show", "dev", "mgtv0").stdout
        self.assertIn("fd99::2", neigh)

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

        mgfw("apply", "--enable", "--allow-local", "8080/tcp", "--local", "10.99.0.0/24")
        self.assertTrue(peer.connect(HOST4, 8080), "the peer is in the local subnet")
        mgfw("apply", "--enable", "--allow-local", "8080/tcp", "--local", "192.168.0.0/16")
        self.assertFalse(peer.connect(HOST4, 8080), "the peer is not in the local subnet")
        mgfw("apply")  # disabled: no host_in at all
        self.assertTrue(peer.connect(HOST4, 8080))
        self.assertNotIn("host_in", nft("list", "table", "inet", "mailguard").stdout)

    def test_enable_disable_leave_foreign_tables_and_a_failed_update_keeps_the_old_table(self):
        subprocess.run(["nft", "add table inet other; "
                        "add chain inet other c { type filter hook input priority 10; policy accept; }; "
                        "add rule inet other c tcp dport 1234 counter accept"], check=True)
        foreign = nft("list", "table", "inet", "other").stdout

        mgfw("apply", "--enable", "--allow", "ssh")
        enabled = nft("-s", "list", "table", "inet", "mailguard").stdout
        self.assertIn("chain host_in", enabled)
        self.assertIn("policy drop", enabled)
        # rules::toNftText renders the same table as nft lists it (apart from the
        # xt-compat queue action nft 1.0.6 cannot print).
        printed = mgfw("apply", "--enable", "--allow", "ssh", "--print").stdout
        host_in = lambda text: text[text.index("chain host_in"):]
        self.assertEqual(host_in(printed), host_in(enabled))

        failed = mgfw("apply", "--enable", "--allow", "ssh", "--allow", "8080/tcp",
                      "--force-kernel-failure", check=False)
        self.assertEqual(failed.returncode, 1)
        self.assertIn("Failed to apply table 'inet mailguard'", failed.stderr)
        self.assertEqual(nft("-s", "list", "table", "inet", "mailguard").stdout, enabled,
                         "a refused batch must leave the old table in place")

        mgfw("apply")  # disable
        disabled = nft("-s", "list", "table", "inet", "mailguard").stdout
        self.assertNotIn("host_in", disabled)
        failed = mgfw("apply", "--enable", "--force-kernel-failure", check=False)
        self.assertEqual(failed.returncode, 1)
        self.assertEqual(nft("-s", "list", "table", "inet", "mailguard").stdout, disabled)
        self.assertEqual(nft("list", "table", "inet", "other").stdout, foreign)
        mgfw("remove")
        self.assertEqual(nft("list", "table", "inet", "other").stdout, foreign)
        self.assertEqual(re.findall(r"table inet (\S+)", nft("list", "tables").stdout), ["other"])

    def test_port_scan_of_1000_ports_gives_bounded_probe_records(self):
        peer = Peer(self)
        mgfw("apply", "--enable")
        watcher = subprocess.Popen([MGFW, "watch-probes", "8"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: watcher.poll() is None and watcher.kill())
        self.assertEqual(watcher.stdout.readline().strip(), "ready", watcher.stderr)
        # 1,000 ports, then 1,000 more SYNs at port 25: non-blocking connects, so the
        # SYNs leave at once and are dropped by the policy.
        scan = ("import socket,time\n"
                "socks=[]\n"
                "targets=list(range(1,1001))+[25]*1000\n"
                "for port in targets:\n"
                "  s=socket.socket(); s.setblocking(False)\n"
                f"  s.connect_ex(({HOST4!r}, port)); socks.append(s)\n"
                "  if len(socks)>=200:\n"
                "    [x.close() for x in socks]; socks=[]\n"
                "time.sleep(0.5)\n"
                "print('done')\n")
        self.assertIn("done", peer.run([sys.executable, "-c", scan], timeout=60).stdout)
        out, err = watcher.communicate(timeout=30)
        self.assertEqual(watcher.returncode, 0, err)
        result = json.loads(out)
        records = result["records"]
        ports = {r["port"] for r in records}
        self.assertTrue(records, "the scan of mail ports must be recorded")
        self.assertLessEqual(ports, {25, 465, 587}, "only mail ports are probes")
        self.assertEqual({r["source"] for r in records}, {PEER4})
        self.assertLessEqual(len(records), 3, "one record per (source, port)")
        # The kernel's limit (10/second, burst 20) bounds the events no matter how many
        # SYNs arrived: at most 20 + 10 per second of the run, far below the 1,003.
        self.assertLessEqual(result["events"], 20 + 10 * 12, result)
        listed = nft("list", "chain", "inet", "mailguard", "host_in").stdout
        self.assertRegex(listed, r"log prefix \"mailguard-probe \" group 4025")


if __name__ == "__main__":
    mgtest.main()
