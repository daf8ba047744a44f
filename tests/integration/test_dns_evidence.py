"""The DNS evidence of an attempt (research 2.2 N1-N3) from guardd's kernel DNS tap,
against the real kernel and a real name server: dnsmasq answers for *.test on an address
outside 127/8 in this test's network namespace (a 127/8 nameserver is taken for a local
caching resolver, in whose name programs' lookups go out), and a
private /etc/resolv.conf (bind-mounted in this test's mount namespace) names it. The BPF
programs attach to a cgroup this test mounts, holding only the scripts it runs.

A script that looks up the MX of its target domain and connects to the answer's address
shows "MX asked yes, destination resolved yes"; one that connects to a hard-coded address
is seen asking nothing: "destination resolved no"."""
import os
import re
import subprocess
import tempfile

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import Listener, terminate, wait_for
from test_kernel_identity import MARK_BIT, PrivateCgroup

mgtest.require_private_netns()

CTEST_LABEL = "dbus"
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]

DNSMASQ = "/usr/sbin/dnsmasq"
NAMESERVER = "198.18.53.1"  # test addresses only (RFC 2544 range), on lo
MX_ADDRESS = "127.1.0.25"
HARD_CODED = "127.1.0.26"

# Asks glibc's resolver (resolv.conf) for the MX of victim.test, then for the A record of
# the host it names, and connects to that address on port 25. ctypes: the standard
# library has no MX lookup. The A answer's address is its last four bytes (one record).
LOOKUP_THEN_CONNECT = r'''
import ctypes, socket, sys
try:
    query = ctypes.CDLL("libc.so.6").res_query  # glibc 2.34 and later
except AttributeError:
    query = getattr(ctypes.CDLL("libresolv.so.2"), "__res_query")
buf = ctypes.create_string_buffer(1024)
n = query(b"victim.test", 1, 15, buf, 1024)
assert n > 0, "MX lookup failed"
n = query(b"mx.victim.test", 1, 1, buf, 1024)
assert n > 0, "A lookup failed"
address = socket.inet_ntoa(buf.raw[n - 4:n])
s = socket.create_connection((address, 25), timeout=5)
print("connected", address)
'''

HARD_CODED_CONNECT = r'''
import socket
s = socket.create_connection(("%s", 25), timeout=5)
print("connected")
''' % HARD_CODED


class DnsEvidence(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        if not os.access(DNSMASQ, os.X_OK):
            self.skipTest("dnsmasq is not installed (install/deps.sh --test installs dnsmasq-base)")
        self.cgroup = PrivateCgroup(self)
        # Not a 127/8 address, though on `lo` (no dummy or veth driver needed).
        subprocess.run(["ip", "addr", "add", f"{NAMESERVER}/32", "dev", "lo"], check=True)
        resolv = os.path.join(self.dir, "resolv.conf")
        with open(resolv, "w") as f:
            f.write(f"nameserver {NAMESERVER}\noptions attempts:1 timeout:2\n")
        subprocess.run(["mount", "--bind", resolv, "/etc/resolv.conf"], check=True)
        self.addCleanup(subprocess.run, ["umount", "/etc/resolv.conf"], check=False)
        self.dnsmasq = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
             "--bind-interfaces", f"--listen-address={NAMESERVER}", "--port=53", "--user=root",
             "--pid-file=", "--log-facility=/dev/null",
             "--mx-host=victim.test,mx.victim.test,10",
             f"--host-record=mx.victim.test,{MX_ADDRESS}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(terminate, self.dnsmasq)
        conf = os.path.join(self.dir, "guardd.conf")
        with open(conf, "w") as f:
            # Each attempt's evidence is a debug line.
            f.write(f'[log]\nlevel = "debug"\n[kernel]\nidentity = "auto"\n'
                    f'cgroup = "{self.cgroup.path}"\nmark_bit = {MARK_BIT:#x}\n')
        self.guardd.config = conf
        self.listeners = [Listener(self, MX_ADDRESS, 25), Listener(self, HARD_CODED, 25)]

    def start(self):
        self.start_guardd()
        status = self.ctl_json("status")
        if status.get("attribution") != "kernel":
            self.fail(f"guardd did not attach its BPF hooks: {self.guardd.log()[-2000:]}")
        self.assertEqual(status["dns"]["source"], "kernel", self.guardd.log()[-2000:])

    def script(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        return path

    def evidence_line(self, proc, dst):
        pid = proc.pid
        pattern = re.compile(rf"dns: pid {pid} \(.*\) to {re.escape(dst)}: (.*)")
        def found():
            if proc.poll() not in (None, 0):
                raise AssertionError(f"the script failed before connecting: {proc.returncode}")
            m = pattern.search(self.guardd.log())
            return m.group(1) if m else None
        return wait_for(found, 20, f"the DNS evidence of pid {pid}'s attempt to {dst}")

    def test_mx_lookup_then_connect_and_a_hard_coded_address(self):
        self.start()
        # The unknown program's SYN is held while guardd asks; the attempt is assessed at once.
        bot = self.cgroup.popen(["/usr/bin/python3", self.script("lookup.py", LOOKUP_THEN_CONNECT)])
        self.addCleanup(terminate, bot)
        line = self.evidence_line(bot, MX_ADDRESS)
        self.assertIn("MX asked yes", line)
        self.assertIn("destination resolved yes", line)
        self.assertRegex(self.guardd.log(), rf"dns: pid {bot.pid} \(.*\) asked MX for .?victim\.test")

        direct = self.cgroup.popen(["/usr/bin/python3", self.script("direct.py", HARD_CODED_CONNECT)])
        self.addCleanup(terminate, direct)
        line = self.evidence_line(direct, HARD_CODED)
        self.assertIn("MX asked no", line)
        self.assertIn("destination resolved no", line)

        status = self.ctl_json("status")
        self.assertGreaterEqual(status["dns"]["queries"], 2, status)
        self.assertEqual(status["dns"]["lost"], 0, status)


if __name__ == "__main__":
    mgtest.main()
