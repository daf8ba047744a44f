"""The household's other mail servers (guardctl audit --hosts): hosts in namespaces only.
This PC (the test's namespace) has 198.18.6.1/26 on a bridge, the "home LAN"; three
neighbours hang off it by veth pairs: one runs exim relaying for the whole LAN (an open
relay to anyone at home), one an exim that relays for nobody, one listens on nothing. A
fourth namespace, 198.18.10.5, is reached only by a route (no subnet of this PC) and
listens on port 25: the scan must never connect to it. Needs exim4-daemon-light
(install/deps.sh --test)."""
import os
import shutil
import socket
import subprocess
import textwrap
import threading
import unittest

import mgtest
from mgtest import terminate, wait_for
from busfixture import GuarddOnBus
from fwtest import ip

mgtest.require_private_netns()

EXIM = "/usr/sbin/exim4"
HOST, LAN = "198.18.6.1", "198.18.6.0/26"
OPEN, CLOSED, EMPTY = "198.18.6.2", "198.18.6.3", "198.18.6.4"
FAR, FAR_NET = "198.18.10.5", "198.18.10.0/24"


class Neighbour:
    """A named network namespace on the bridge (or, with `route`, behind a route)."""

    def __init__(self, test, tag, address, prefix, route=False):
        self.name = f"mghh-{tag}-{os.getpid()}"
        ip("netns", "add", self.name)
        test.addCleanup(ip, "netns", "del", self.name, check=False)
        host_if = f"mghh{tag}0"
        ip("link", "add", host_if, "type", "veth", "peer", "name", "peer0", "netns", self.name)
        test.addCleanup(ip, "link", "del", host_if, check=False)
        if route:
            ip("link", "set", host_if, "up")
            ip("route", "add", FAR_NET, "dev", host_if)
        else:
            ip("link", "set", host_if, "master", "mghhbr0")
            ip("link", "set", host_if, "up")
        for args in (("link", "set", "lo", "up"),
                     ("addr", "add", f"{address}/{prefix}", "dev", "peer0"),
                     ("link", "set", "peer0", "up")):
            ip("-n", self.name, *args)
        if route:
            ip("-n", self.name, "route", "add", "default", "dev", "peer0")

    def popen(self, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)


def answers(address, port):
    try:
        socket.create_connection((address, port), 1).close()
        return True
    except OSError:
        return False


def start_exim(test, ns, address, relay_from):
    directory = mgtest.make_tempdir(test)
    spool = os.path.join(directory, "spool")
    os.makedirs(spool)
    shutil.chown(spool, "Debian-exim", "Debian-exim")
    conf = os.path.join(directory, "exim.conf")
    with open(conf, "w") as f:
        f.write(textwrap.dedent(f"""\
            primary_hostname = neighbour.test
            spool_directory = {spool}
            log_file_path = {spool}/%slog
            exim_path = {EXIM}
            local_interfaces = <; {address}.25
            hostlist relay_from_hosts = {relay_from}
            domainlist local_domains = neighbour.test
            acl_smtp_rcpt = acl_check_rcpt
            begin acl
            acl_check_rcpt:
              deny    local_parts = ^[.] : ^.*[@%!/|]
              accept  hosts = +relay_from_hosts
              accept  domains = +local_domains
              deny    message = relay not permitted
            begin routers
            begin transports
            """))
    os.chmod(conf, 0o644)
    proc = ns.popen([EXIM, "-C", conf, "-bdf"], stderr=subprocess.PIPE, text=True)
    test.addCleanup(terminate, proc)
    wait_for(lambda: answers(address, 25) or proc.poll() is not None, 10,
             f"exim listening on {address}:25")
    if proc.poll() is not None:
        raise AssertionError("exim did not start: " + proc.stderr.read())
    return proc


@unittest.skipUnless(os.path.exists(EXIM), "exim4 is not installed (install/deps.sh --test)")
class Household(unittest.TestCase):
    def setUp(self):
        ip("link", "add", "mghhbr0", "type", "bridge")
        self.addCleanup(ip, "link", "del", "mghhbr0", check=False)
        ip("addr", "add", f"{HOST}/26", "dev", "mghhbr0")
        ip("link", "set", "mghhbr0", "up")

    def test_the_scan_finds_the_lans_mail_servers_audits_each_and_stays_in_the_subnet(self):
        start_exim(self, Neighbour(self, "o", OPEN, 26), OPEN, LAN)
        start_exim(self, Neighbour(self, "c", CLOSED, 26), CLOSED, "127.0.0.1")
        Neighbour(self, "e", EMPTY, 26)
        far = Neighbour(self, "f", FAR, 24, route=True)
        # The far host's listeners print who connects to them: port 25, which the scan
        # must leave alone, and 8025, to show that this PC reaches it (guardd holds an
        # unapproved program's connects to port 25, this test's own included).
        counter = far.popen(["python3", "-c", textwrap.dedent(f"""\
            import socket, threading
            def serve(port):
                s = socket.socket(); s.bind(({FAR!r}, port)); s.listen(64)
                return s
            def loop(s, port):
                while True:
                    c, peer = s.accept(); print(port, peer[0], flush=True); c.close()
            listeners = [(serve(p), p) for p in (25, 8025)]
            print("ready", flush=True)
            for s, p in listeners[1:]:
                threading.Thread(target=loop, args=(s, p), daemon=True).start()
            loop(*listeners[0])
            """)], stdout=subprocess.PIPE, text=True)
        self.addCleanup(terminate, counter)
        self.assertEqual(counter.stdout.readline().strip(), "ready")
        far_peers = []
        threading.Thread(target=lambda: far_peers.extend(l.strip() for l in counter.stdout),
                         daemon=True).start()

        d = GuarddOnBus(self).start()
        # Never on its own: no scan before the owner asks for one.
        self.assertNotIn("Other mail servers", d.ctl("audit").stdout)
        scan = d.json("audit", "--hosts", timeout=300)
        self.assertEqual(scan["error"], "")
        self.assertEqual([s["cidr"] for s in scan["subnets"]], [LAN], scan["subnets"])
        hosts = {(h["address"], h["port"]): h for h in scan["hosts"]}
        self.assertEqual(set(hosts), {(OPEN, 25), (CLOSED, 25)}, scan["hosts"])
        # 61 addresses of the /26 but this PC's, three ports each: nothing more.
        self.assertEqual(scan["connects"], 61 * 3)

        open_host = hosts[(OPEN, 25)]
        self.assertEqual(open_host["relay"], "open", open_host)
        self.assertEqual(open_host["subnet"], LAN)
        self.assertIn("plain", open_host["accepted"])
        self.assertIn("Exim", open_host["banner"])
        finding = next(f for f in open_host["findings"] if f["kind"] == "open-relay-lan")
        self.assertEqual(finding["severity"], "critical")
        self.assertIn(f"the mail server at {OPEN}:25 relays mail for anyone on your LAN {LAN}",
                      finding["title"])
        self.assertIn("relay_from_hosts", finding["fix"])

        closed_host = hosts[(CLOSED, 25)]
        self.assertEqual(closed_host["relay"], "closed", closed_host)
        self.assertEqual(closed_host["accepted"], [])
        self.assertEqual(closed_host["findings"], [])

        # Never outside the subnet, though the far host is reachable from here.
        self.assertEqual(far_peers, [])
        self.assertTrue(answers(FAR, 8025), "the far host is reachable: its absence means something")
        wait_for(lambda: far_peers, 10, "the far host to see this test's own connect")
        self.assertEqual(far_peers, [f"8025 {HOST}"], "only this test's connect, to 8025")

        # One alert for the open relay, none for the closed one.
        def household_alerts():
            return [a for a in d.json("alerts") if a.get("kind") == "household-relay"]

        wait_for(household_alerts, 10, "the household relay alert")
        alerts = household_alerts()
        self.assertEqual(len(alerts), 1, alerts)
        self.assertEqual(alerts[0]["evidence"]["host"], OPEN)
        self.assertEqual(alerts[0]["tier"], "hard")

        self.assertIn("relay on your LAN", d.ctl("alerts").stdout)
        text = d.ctl("audit").stdout
        self.assertIn(f"{OPEN}:25  OPEN RELAY for anyone on your LAN", text)
        self.assertIn(f"{CLOSED}:25  not a relay", text)
        # A second scan finds the same open relay: no second alert.
        again = d.json("audit", "--hosts", timeout=300)
        self.assertEqual({(h["address"], h["relay"]) for h in again["hosts"]},
                         {(OPEN, "open"), (CLOSED, "closed")})
        self.assertEqual(len(household_alerts()), 1)
        # Kept across a restart of guardd.
        d.restart()
        self.assertIn(f"{OPEN}:25  OPEN RELAY", d.ctl("audit").stdout)

    def test_household_settings_bound_and_pace_the_scan(self):
        # Nobody at home: every connect waits for its timeout (no ARP answer).
        d = GuarddOnBus(self)
        config = os.path.join(d.dir, "guardd.conf")
        with open(config, "w") as f:
            f.write("[household]\nmin_prefix = 28\nconnect_timeout_ms = 200\n"
                    "probes_per_second = 1000\n")
        d.guardd.config = config
        d.start()
        scan = d.json("audit", "--hosts", timeout=60)
        self.assertEqual(scan["error"], "")
        # Only the /28 block around this PC of its /26 (by default all of the /26).
        self.assertEqual([(s["cidr"], s["configured"]) for s in scan["subnets"]],
                         [("198.18.6.0/28", LAN)])
        self.assertEqual(scan["hosts"], [])
        # 14 addresses (the /26's network address and this PC's are not scanned), 3 ports.
        self.assertEqual(scan["connects"], 14 * 3)
        # Two rounds of at most 32 connects, 200 ms each; with the default timeout (1.5 s)
        # the same scan takes 3 s.
        self.assertLess(scan["took_ms"], 1500, scan)

    def test_nobody_may_scan(self):
        d = GuarddOnBus(self).start()
        r = d.ctl("audit", "--hosts", ok=False, user="nobody")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Not authorized", r.stderr + r.stdout)
        self.assertNotIn("Other mail servers", d.ctl("audit").stdout)


if __name__ == "__main__":
    unittest.main()
