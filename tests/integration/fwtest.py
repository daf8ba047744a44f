"""Helpers of the firewall and audit tests: a peer network namespace joined by a veth
pair, the test SMTP responder, and the mg-fw tool (only for forcing the kernel to refuse
a table). guardd on a private bus is busfixture.GuarddOnBus."""
import os
import subprocess
import sys

import mgtest
from mgtest import BUILD

MGFW = os.path.join(BUILD, "tests", "integration", "mg-fw")
RESPONDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smtp_responder.py")

HOST4, PEER4 = "198.18.99.1", "198.18.99.2"
HOST6, PEER6 = "fd99::1", "fd99::2"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Peer:
    """A named network namespace (`ip netns add`) joined to the test's namespace by a
    veth pair: 198.18.99.1/24 + fd99::1/64 here, .2 there (test veths carry only
    169.254/16 or 198.18/15 addresses). Removed by the test."""

    def __init__(self, test):
        self.name = f"mgtest-peer-{os.getpid()}"
        ip("netns", "add", self.name)
        test.addCleanup(self.remove)
        ip("link", "add", "mgtv0", "type", "veth", "peer", "name", "mgtv1", "netns", self.name)
        ip("addr", "add", f"{HOST4}/24", "dev", "mgtv0")
        ip("-6", "addr", "add", f"{HOST6}/64", "dev", "mgtv0", "nodad")
        ip("link", "set", "mgtv0", "up")
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{PEER4}/24", "dev", "mgtv1"),
                     ("-6", "addr", "add", f"{PEER6}/64", "dev", "mgtv1", "nodad"),
                     ("link", "set", "mgtv1", "up")):
            ip("-n", self.name, *args)

    def remove(self):
        ip("link", "del", "mgtv0", check=False)
        ip("netns", "del", self.name, check=False)

    def run(self, argv, **kw):
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, **kw)

    def popen(self, argv, **kw):
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kw)

    def connect(self, host, port, timeout=1.5):
        """True when a TCP connection from the peer to host:port is accepted."""
        code = ("import socket,sys\n"
                "try:\n"
                f"  socket.create_connection(({host!r}, {port}), timeout={timeout}).close()\n"
                "  print('connected')\n"
                "except OSError as e:\n"
                "  print('failed', e)\n")
        out = self.run([sys.executable, "-c", code], timeout=30).stdout
        return out.startswith("connected")


def mgfw(*args, check=True):
    r = subprocess.run([MGFW, *args], capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"mg-fw {' '.join(args)} failed: {r.stderr}")
    return r


def responder(test, host, port, mode, domain="example.org"):
    """Starts the test SMTP responder; returns its Popen once it listens."""
    p = subprocess.Popen([sys.executable, RESPONDER, host, str(port), mode, domain],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    test.addCleanup(mgtest.terminate, p)
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise AssertionError(f"responder on {host}:{port} did not start: {p.stderr.read()}")
    return p
