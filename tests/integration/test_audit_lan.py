"""The relay audit from the LAN: a real exim (Debian's exim4-daemon-light under a private
-C configuration, as in test_mta_exim.py) relays for `relay_from_hosts = 127.0.0.1 :
198.18.4.0/24` and listens on this PC's address of a "LAN" (a veth, 198.18.4.1/24, whose
other end is a LAN host's namespace, 198.18.4.2). The audit must report it open for the
LAN and closed for strangers, and nmap's smtp-open-relay, run from the LAN host and from
a stranger's namespace, must agree. Also: AUTH offered without TLS is a finding, and a
server restarting during an audit keeps its result. guardd runs on a private bus; each
test in a fresh network namespace. Needs exim4-daemon-light and nmap
(install/deps.sh --test)."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import unittest

import mgtest
from mgtest import terminate, wait_for
from busfixture import GUARDCTL, GuarddOnBus
from fwtest import ip

mgtest.require_private_netns()

EXIM = "/usr/sbin/exim4"
NMAP = shutil.which("nmap")
HOST, LAN_HOST, LAN = "198.18.4.1", "198.18.4.2", "198.18.4.0/24"
# The stranger's namespace: a point-to-point /32 pair, so that it is no LAN of the PC.
STRANGER_HOST, STRANGER = "198.18.9.1", "198.18.9.2"

AUTH = textwrap.dedent("""\
    begin authenticators
    plain_server:
      driver = plaintext
      public_name = PLAIN
      server_prompts = :
      server_condition = ${if eq{$auth3}{not-a-real-password}}
      server_set_id = $auth2
      ADVERTISE
    """)


def by_port(items):
    return {i["port"]: i for i in items}


def kinds(entry):
    return [f["kind"] for f in entry["findings"]]


class Namespace:
    """A named network namespace joined to the test's by a veth pair."""

    def __init__(self, test, tag, here, there, prefix, host_if):
        self.name = f"mgaudit-{tag}-{os.getpid()}"
        ip("netns", "add", self.name)
        test.addCleanup(ip, "netns", "del", self.name, check=False)
        ip("link", "add", host_if, "type", "veth", "peer", "name", "peer0", "netns", self.name)
        test.addCleanup(ip, "link", "del", host_if, check=False)
        if prefix == 32:
            ip("addr", "add", f"{here}/32", "peer", f"{there}/32", "dev", host_if)
        else:
            ip("addr", "add", f"{here}/{prefix}", "dev", host_if)
        ip("link", "set", host_if, "up")
        peer = ["peer", f"{here}/32"] if prefix == 32 else []
        for args in (("link", "set", "lo", "up"),
                     ("addr", "add", f"{there}/{prefix}", *peer, "dev", "peer0"),
                     ("link", "set", "peer0", "up")):
            ip("-n", self.name, *args)
        if prefix == 32:
            ip("-n", self.name, "route", "add", f"{HOST}/32", "dev", "peer0")

    def run(self, argv, timeout=120):
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, timeout=timeout)

    def nmap_relay(self, target, port):
        """nmap's verdict: the smtp-open-relay line. Its `domain` is the foreign one the
        relayed mail would go to (the reserved example.net, as the audit's)."""
        r = self.run([NMAP, "-n", "-Pn", "-p", str(port), "--script", "smtp-open-relay",
                      "--script-args", "smtp-open-relay.domain=example.net", target])
        line = [l for l in r.stdout.splitlines() if "smtp-open-relay" in l]
        if not line:
            raise AssertionError(f"nmap gave no smtp-open-relay verdict:\n{r.stdout}{r.stderr}")
        return line[0]


def listening(address, port):
    r = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    # ss shows a dual-stack [::] socket as "*:PORT", a v6-only one as "[::]:PORT".
    names = ("*", "[::]") if address == "::" else (address,)
    return any(f" {name}:{port} " in r.stdout for name in names)


class Exim:
    """exim4 -bdf under a private configuration in a folder of its own."""

    def __init__(self, test, listen, auth=None):
        self.test = test
        self.dir = mgtest.make_tempdir(test)
        spool = os.path.join(self.dir, "spool")
        os.makedirs(spool)
        shutil.chown(spool, "Debian-exim", "Debian-exim")
        self.listen = listen  # [(address, port)]
        interfaces = "<; " + " ; ".join(f"{a}.{p}" for a, p in listen)
        # Debian's default rcpt ACL in short: odd local parts are refused, the relay
        # networks may send anywhere, everyone else only to the local domain.
        text = textwrap.dedent(f"""\
            primary_hostname = pc.test
            spool_directory = {spool}
            log_file_path = {spool}/%slog
            exim_path = {EXIM}
            local_interfaces = {interfaces}
            hostlist relay_from_hosts = 127.0.0.1 : {LAN}
            domainlist local_domains = pc.test
            acl_smtp_rcpt = acl_check_rcpt
            # nmap's address tricks are syntax errors to exim, which hangs up after three
            # by default, and its 16 RSETs are more than the 10 "non-mail" commands exim
            # allows; nmap then gives no verdict at all.
            smtp_max_synprot_errors = 1000
            smtp_accept_max_nonmail_hosts =
            begin acl
            acl_check_rcpt:
              deny    local_parts = ^[.] : ^.*[@%!/|]
              accept  hosts = +relay_from_hosts
              accept  domains = +local_domains
              deny    message = relay not permitted
            begin routers
            begin transports
            """)
        if auth is not None:
            text += AUTH.replace("ADVERTISE", auth)
        self.conf = os.path.join(self.dir, "exim.conf")
        with open(self.conf, "w") as f:
            f.write(text)
        os.chmod(self.conf, 0o644)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([EXIM, "-C", self.conf, "-bdf"], stderr=subprocess.PIPE,
                                     text=True)
        self.test.addCleanup(terminate, self.proc)
        for address, port in self.listen:
            wait_for(lambda: listening(address, port) or self.proc.poll() is not None, 10,
                     f"exim listening on {address}:{port}")
            if self.proc.poll() is not None:
                raise AssertionError("exim did not start: " + self.proc.stderr.read())
        return self

    def stop(self):
        terminate(self.proc)
        for address, port in self.listen:
            wait_for(lambda: not listening(address, port), 10, f"{address}:{port} closed")


@unittest.skipUnless(os.path.exists(EXIM), "exim4 is not installed (install/deps.sh --test)")
class LanAudit(unittest.TestCase):
    def setUp(self):
        self.lan = Namespace(self, "lan", HOST, LAN_HOST, 24, "mgalan0")

    def audit(self, d):
        return by_port(d.json("audit", "--run"))

    def assert_clean(self):
        """The audit's routes and borrowed addresses are gone with its veth."""
        self.assertNotIn("mgp", ip("link", "show").stdout)
        self.assertEqual([l for l in ip("route", "show").stdout.splitlines() if "198.18.4.3" in l],
                         [])

    def test_exim_relaying_for_its_lan_is_open_for_the_lan_closed_for_strangers(self):
        exim = Exim(self, [(HOST, 25), ("0.0.0.0", 2525)]).start()
        # The LAN host has talked to the PC: the neighbour table knows it, so the audit
        # must not borrow its address.
        hello = f"import socket; socket.create_connection(({HOST!r}, 25), 3).close()"
        self.assertEqual(self.lan.run([sys.executable, "-c", hello]).returncode, 0)
        self.assertIn(LAN_HOST, ip("neigh", "show").stdout)
        d = GuarddOnBus(self).start()
        found = self.audit(d)
        self.assertEqual(set(found), {25, 2525}, found)
        for port, target in ((25, HOST), (2525, HOST)):
            entry = found[port]
            self.assertEqual(entry["pid"], exim.proc.pid)
            self.assertEqual(entry["relay"], "closed", f"a stranger may not relay: {entry}")
            self.assertEqual(len(entry["relay_lan"]), 1, entry["relay_lan"])
            lan = entry["relay_lan"][0]
            self.assertEqual(lan["subnet"], LAN)
            self.assertEqual(lan["relay"], "open", lan)
            self.assertIn("plain", lan["accepted"])
            self.assertNotIn("percent-hack", lan["accepted"], "exim refuses odd local parts")
            self.assertEqual(lan["probed_address"], target)
            # Each vantage has its own dialogue: the LAN host's RCPT was taken.
            self.assertIn("> RCPT TO:<relay-test@example.net>", lan["replies"])
            self.assertFalse([r for r in entry["replies"] if not r.startswith(("> ", "< "))])
            probe = lan["probe_address"]
            self.assertTrue(probe.startswith("198.18.4.") and probe not in (HOST, LAN_HOST),
                            f"a free LAN address, not the PC's or the LAN host's: {probe}")
            self.assertEqual(kinds(entry), ["open-relay-lan", "exposed"], entry["findings"])
            finding = entry["findings"][0]
            self.assertEqual(finding["severity"], "critical")
            self.assertIn(f"relays mail for anyone on your LAN {LAN}: any infected device at "
                          "home can send spam through it", finding["title"])
            self.assertIn("relay_from_hosts", finding["fix"])
        # exim saw both vantages: the stranger's plain relay attempt refused, the LAN
        # host's not.
        rejected = open(os.path.join(exim.dir, "spool", "rejectlog")).read()
        plain = "F=<mailguard-audit@example.com> rejected RCPT <relay-test@example.net>"
        self.assertIn(f"[198.51.100.78] {plain}", rejected)
        self.assertNotIn(f"[{found[25]['relay_lan'][0]['probe_address']}] {plain}", rejected)
        text = d.ctl("audit").stdout
        self.assertIn(f"relay for your LAN {LAN}", text)
        self.assertIn("OPEN RELAY: it accepted mail for anyone there", text)
        self.assertIn("closed: it refused to relay for a stranger", text)
        # One alert per LAN finding, named as such.
        def lan_alerts():
            return [a for a in d.json("alerts")
                    if a.get("kind") == "audit" and "your LAN" in a["reasons"][0]]

        wait_for(lambda: len(lan_alerts()) >= 2, 10, "the two LAN relay alerts")
        alerts = lan_alerts()
        self.assertEqual(len(alerts), 2, alerts)
        for a in alerts:
            self.assertEqual(a["tier"], "hard")
            self.assertEqual(a["evidence"]["finding"], "open-relay-lan")
            self.assertEqual(a["evidence"]["subnet"], LAN)
            self.assertIn("plain", a["evidence"]["accepted"])
        self.assertIn("audit: LAN relay", "\n".join(
            l for l in d.ctl("alerts").stdout.splitlines() if "your LAN" in l))
        self.assert_clean()
        # Kept across a restart of guardd.
        d.restart()
        kept = by_port(d.json("audit"))
        self.assertEqual(kept[25]["relay_lan"][0]["relay"], "open")
        self.assertEqual(kinds(kept[25]), ["open-relay-lan", "exposed"])

    def test_a_dual_stack_socket_on_ipv6_any_is_probed_from_the_ipv4_lan_too(self):
        # exim's only socket is [::]:2525 with IPV6_V6ONLY off: IPv4 LAN hosts reach it.
        Exim(self, [("::", 2525)]).start()
        d = GuarddOnBus(self).start()
        entry = self.audit(d)[2525]
        self.assertEqual((entry["address"], entry["family"]), ("::", 6))
        self.assertEqual(entry["relay"], "closed", "the IPv6 stranger")
        self.assertEqual([(l["subnet"], l["relay"], l["probed_address"]) for l in entry["relay_lan"]],
                         [(LAN, "open", HOST)])
        self.assertEqual(kinds(entry), ["open-relay-lan", "exposed"])
        self.assert_clean()

    @unittest.skipUnless(NMAP, "nmap is not installed (install/deps.sh --test)")
    def test_nmap_from_the_lan_and_from_a_stranger_agrees_with_the_audit(self):
        Exim(self, [(HOST, 25)]).start()
        stranger = Namespace(self, "str", STRANGER_HOST, STRANGER, 32, "mgastr0")
        d = GuarddOnBus(self).start()
        entry = self.audit(d)[25]
        self.assertEqual(entry["relay_lan"][0]["relay"], "open")
        self.assertEqual(entry["relay"], "closed")
        self.assertNotIn(STRANGER_HOST, [l["subnet"].split("/")[0] for l in entry["relay_lan"]],
                         "a /32 link is no LAN")
        self.assertIn("Server is an open relay", self.lan.nmap_relay(HOST, 25))
        self.assertIn("doesn't seem to be an open relay", stranger.nmap_relay(HOST, 25))
        self.assert_clean()

    def test_auth_offered_without_tls_is_a_finding_and_auth_after_tls_is_not(self):
        clear = Exim(self, [(HOST, 25)], auth="").start()
        # The same authenticator offered only on TLS connections: exim offers STARTTLS
        # (with a self-signed certificate) and lists AUTH only after it, which the audit
        # never says.
        Exim(self, [(HOST, 587)], auth="server_advertise_condition = ${if def:tls_in_cipher}").start()
        d = GuarddOnBus(self).start()
        found = self.audit(d)
        self.assertEqual(found[25]["auth_in_clear"], ["PLAIN"])
        self.assertIn("auth-without-tls", kinds(found[25]))
        finding = next(f for f in found[25]["findings"] if f["kind"] == "auth-without-tls")
        self.assertEqual(finding["severity"], "warning")
        self.assertIn("passwords would cross the network in clear", finding["title"])
        self.assertIn("server_advertise_condition", finding["fix"])
        self.assertEqual(found[587]["auth_in_clear"], [])
        self.assertNotIn("auth-without-tls", kinds(found[587]))
        self.assertIn("AUTH in clear: PLAIN offered without TLS", d.ctl("audit").stdout)
        self.assertTrue(any("250-AUTH PLAIN" in r for r in found[25]["replies"]))
        self.assertEqual(clear.proc.poll(), None)

    def test_a_server_restarting_as_the_audit_starts_is_audited_not_lost(self):
        exim = Exim(self, [(HOST, 25)]).start()
        d = GuarddOnBus(self).start()
        first = self.audit(d)[25]
        self.assertEqual(first["relay_lan"][0]["relay"], "open")
        exim.stop()
        run = subprocess.Popen(d.bus.as_user([GUARDCTL, "--json", "audit", "--run"],
                                             None),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=d.env())
        self.addCleanup(terminate, run)

        def running():
            r = d.bus.gdbus_call("Audit")
            return re.match(r"\(int64 -?\d+, true,", r.stdout)

        wait_for(running, 10, "the audit to start")
        exim.start()  # the new exim comes up while the audit looks for the old one
        out, err = run.communicate(timeout=120)
        self.assertEqual(run.returncode, 0, err)
        entry = by_port(json.loads(out))[25]
        self.assertEqual(entry["pid"], exim.proc.pid, "the restarted server was audited")
        self.assertEqual(entry["relay_lan"][0]["relay"], "open", entry)
        self.assertEqual(entry["relay"], "closed")

    def test_a_server_that_drops_every_connection_mid_restart_keeps_its_last_result(self):
        exim = Exim(self, [(HOST, 25)]).start()
        d = GuarddOnBus(self).start()
        self.assertEqual(self.audit(d)[25]["relay_lan"][0]["relay"], "open")
        exim.stop()
        # What a server between its old and new process looks like: the port listens, but
        # each connection is closed before a banner.
        closer = socket.socket()
        closer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        closer.bind((HOST, 25))
        closer.listen(16)
        accepted = []

        def serve():
            while True:
                try:
                    conn, peer = closer.accept()
                except OSError:
                    return
                accepted.append(peer[0])
                conn.close()

        threading.Thread(target=serve, daemon=True).start()
        self.addCleanup(closer.close)
        entry = self.audit(d)[25]
        self.assertGreaterEqual(accepted.count("198.51.100.78"), 2, "the stranger retried")
        self.assertEqual(entry["relay"], "closed", entry)
        self.assertEqual(entry["relay_lan"][0]["relay"], "open", entry)
        self.assertTrue(entry["reason"].startswith("kept from the audit before"), entry["reason"])
        self.assertIn("closed the connection", entry["reason"])
        self.assertIn("open-relay-lan", kinds(entry))
        self.assertIn("its last result is kept", d.guardd.log())


    def test_a_lan_probe_the_server_hangs_up_on_keeps_that_lans_last_result(self):
        exim = Exim(self, [(HOST, 25)]).start()
        d = GuarddOnBus(self).start()
        self.assertEqual(self.audit(d)[25]["relay_lan"][0]["relay"], "open")
        exim.stop()
        # The stranger meets a server that refuses to relay; by the time the LAN probe
        # comes, every connection is closed before a banner (the server going down).
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((HOST, 25))
        server.listen(16)
        self.addCleanup(server.close)
        hung_up = []

        def serve():
            while True:
                try:
                    conn, peer = server.accept()
                except OSError:
                    return
                with conn:
                    if peer[0] != "198.51.100.78":
                        hung_up.append(peer[0])
                        continue
                    f = conn.makefile("rwb")
                    f.write(b"220 pc.test ESMTP\r\n")
                    f.flush()
                    for line in f:
                        word = line[:4].upper()
                        reply = {b"EHLO": b"250 pc.test", b"RCPT": b"554 relay not permitted",
                                 b"QUIT": b"221 bye"}.get(word, b"250 ok")
                        f.write(reply + b"\r\n")
                        f.flush()
                        if word == b"QUIT":
                            break

        threading.Thread(target=serve, daemon=True).start()
        entry = self.audit(d)[25]
        self.assertTrue(hung_up, "the LAN probe came and was hung up on")
        self.assertEqual(entry["relay"], "closed")
        self.assertFalse(entry["reason"].startswith("kept"), "the stranger's result is new")
        lan = entry["relay_lan"][0]
        self.assertEqual(lan["relay"], "open", lan)
        self.assertTrue(lan["reason"].startswith("kept ("), lan["reason"])
        self.assertIn("open-relay-lan", kinds(entry))

if __name__ == "__main__":
    mgtest.main()
