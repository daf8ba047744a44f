"""The relay audit from the LAN against a real postfix (Debian's package unpacked,
postfix_fixture.py) whose smtpd listens on this PC's address of a "LAN" (a veth,
198.18.4.1/24; a LAN host's namespace is 198.18.4.2). With `mynetworks = 127.0.0.0/8
198.18.4.0/24` postfix relays for every device of that LAN: the audit must report it open
for the LAN and closed for strangers, and nmap's smtp-open-relay from the LAN host and
from a stranger's namespace (a point-to-point /32, no LAN of the PC) must say the same.
With the default mynetworks (mynetworks_style = host since compatibility level 2) it
relays for nobody else: closed for both. guardd runs on a private bus, each test in a
fresh network namespace. Needs install/deps.sh --test (postfix's package, its user and
group; nmap)."""
import os
import subprocess
import sys
import unittest

import mgtest
from mgtest import wait_for
from busfixture import GuarddOnBus
from postfix_fixture import Postfix
from test_audit_lan import (HOST, LAN, LAN_HOST, NMAP, STRANGER, STRANGER_HOST, Namespace,
                            by_port, kinds, listening)

mgtest.require_private_netns()

# postfix delivers nothing here (the audit and nmap stop after RCPT): its relayhost is an
# address nobody has.
NOWHERE = "198.18.0.2"


@unittest.skipUnless(NMAP, "nmap is not installed (install/deps.sh --test)")
class PostfixLanAudit(unittest.TestCase):
    def setUp(self):
        self.lan = Namespace(self, "lan", HOST, LAN_HOST, 24, "mgalan0")
        self.stranger = Namespace(self, "str", STRANGER_HOST, STRANGER, 32, "mgastr0")

    def start_postfix(self, *main_cf):
        """postfix with smtpd on HOST:25 (a master.cf entry of its own) and these main.cf
        settings on top of the fixture's."""
        pf = Postfix(self, NOWHERE)
        # smtpd_error_sleep_time: postfix pauses a second per refused command after the
        # tenth (smtpd_soft_error_limit), which nmap's 16 relay attempts reach; it decides
        # nothing about relaying and only makes each refused nmap run some 20 s longer.
        pf.postconf(f"inet_interfaces = {HOST}", "smtpd_error_sleep_time = 0s", *main_cf)
        # The fixture's master.cf has no smtpd; postconf -M adds one on HOST:25.
        subprocess.run([os.path.join(pf.sbin, "postconf"), "-c", pf.config, "-M", "-e",
                        f"{HOST}:25/inet = {HOST}:25 inet n - n - - smtpd"], check=True)
        pf.start()
        wait_for(lambda: listening(HOST, 25), 10, f"postfix's smtpd on {HOST}:25")
        return pf

    def audit_of_port_25(self):
        d = GuarddOnBus(self).start()
        entry = by_port(d.json("audit", "--run"))[25]
        self.assertIn("postfix", entry["path"], entry)
        self.assertEqual(entry["address"], HOST)
        return entry

    def test_postfix_relaying_for_its_lan_is_open_for_the_lan_as_nmap_finds(self):
        pf = self.start_postfix(f"mynetworks = 127.0.0.0/8 {LAN}")
        # The LAN host has talked to the PC: the neighbour table knows it, so the audit
        # must not borrow its address.
        hello = f"import socket; socket.create_connection(({HOST!r}, 25), 3).close()"
        self.assertEqual(self.lan.run([sys.executable, "-c", hello]).returncode, 0)
        entry = self.audit_of_port_25()
        self.assertEqual(entry["relay"], "closed", f"a stranger may not relay: {entry}")
        self.assertEqual(entry["accepted"], [])
        self.assertEqual(len(entry["relay_lan"]), 1, entry["relay_lan"])
        lan = entry["relay_lan"][0]
        self.assertEqual((lan["subnet"], lan["relay"], lan["probed_address"]), (LAN, "open", HOST),
                         lan)
        self.assertIn("plain", lan["accepted"])
        self.assertNotIn(lan["probe_address"], (HOST, LAN_HOST))
        # postfix's own word for the two vantages, as its log has them.
        self.assertIn("Relay access denied", "\n".join(entry["replies"]))
        self.assertFalse([r for r in entry["replies"] if not r.startswith(("> ", "< "))],
                         "the stranger's dialogue only, no LAN summary lines")
        self.assertTrue(any(r.startswith("< 250") and "Ok" in r for r in lan["replies"]),
                        lan["replies"])
        self.assertEqual(kinds(entry), ["open-relay-lan", "exposed"], entry["findings"])
        finding = entry["findings"][0]
        self.assertEqual(finding["severity"], "critical")
        self.assertIn(f"relays mail for anyone on your LAN {LAN}", finding["title"])
        self.assertIn("mynetworks", finding["fix"])
        # nmap agrees: open from the LAN host, not from the stranger.
        self.assertIn("Server is an open relay", self.lan.nmap_relay(HOST, 25))
        self.assertIn("doesn't seem to be an open relay", self.stranger.nmap_relay(HOST, 25))
        self.assertIsNotNone(pf.master)
        self.assertIsNone(pf.master.poll(), "postfix's master is still running")

    def test_postfix_with_the_default_mynetworks_is_closed_for_the_lan_and_strangers(self):
        pf = self.start_postfix()
        mynetworks = subprocess.run([os.path.join(pf.sbin, "postconf"), "-c", pf.config, "-h",
                                     "mynetworks"], capture_output=True, text=True, check=True)
        self.assertNotIn("198.18.4.0", mynetworks.stdout, "the premise: host-only mynetworks")
        entry = self.audit_of_port_25()
        self.assertEqual(entry["relay"], "closed", entry)
        self.assertEqual([(l["subnet"], l["relay"], l["accepted"]) for l in entry["relay_lan"]],
                         [(LAN, "closed", [])])
        self.assertNotIn("open-relay-lan", kinds(entry))
        self.assertNotIn("open-relay-stranger", kinds(entry))
        self.assertIn("doesn't seem to be an open relay", self.lan.nmap_relay(HOST, 25))
        self.assertIn("doesn't seem to be an open relay", self.stranger.nmap_relay(HOST, 25))


if __name__ == "__main__":
    mgtest.main()
