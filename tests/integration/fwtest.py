"""Helpers of the firewall and audit tests (issue #6): guardd on a private bus driven
with guardctl, a peer network namespace joined by a veth pair, the test SMTP responder,
and the mg-fw tool (only for forcing the kernel to refuse a table)."""
import json
import os
import subprocess
import sys

import mgtest
from busfixture import PrivateBus
from mgtest import BUILD, Guardd, wait_for

MGFW = os.path.join(BUILD, "tests", "integration", "mg-fw")
RESPONDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smtp_responder.py")

HOST4, PEER4 = "10.99.0.1", "10.99.0.2"
HOST6, PEER6 = "fd99::1", "fd99::2"


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Peer:
    """A named network namespace (`ip netns add`) joined to the test's namespace by a
    veth pair: 10.99.0.1/24 + fd99::1/64 here, .2 there. Removed by the test."""

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
    test.addCleanup(stop, p)
    line = p.stdout.readline()
    if line.strip() != "ready":
        raise AssertionError(f"responder on {host}:{port} did not start: {p.stderr.read()}")
    return p


def stop(p):
    if p.poll() is None:
        p.terminate()
        p.wait(10)


class Daemon:
    """guardd with its own state directory, serving a private bus; guardctl talks to it.
    The environment of guardctl is the test's minus SSH_CONNECTION/SSH_CLIENT, so that
    only the tests about remote sessions look remote (those still pass --yes where the
    test runs from an SSH login, where sshd is an ancestor)."""

    def __init__(self, test, env=None):
        self.test = test
        self.dir = mgtest.make_tempdir(test)
        self.state = os.path.join(self.dir, "state")
        self.bus = PrivateBus(test, self.dir).start()
        self.guardd = Guardd(test, self.state)
        self.extra_env = env or {}

    def start(self):
        env = self.bus.env()
        env.update(self.extra_env)
        self.guardd.start(env=env)
        self.bus.wait_for_name()
        return self

    def restart(self):
        self.guardd.stop()
        return self.start()

    def env(self, **extra):
        e = self.bus.env()
        for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
            e.pop(k, None)
        e.update(extra)
        return e

    def ctl(self, *args, ok=True, env=None, user=None, timeout=120):
        argv = self.bus.as_user([os.path.join(BUILD, "tui", "guardctl"), *args], user)
        r = subprocess.run(argv, capture_output=True, text=True, env=env or self.env(),
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"guardctl {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stderr}\nguardd log:\n{self.guardd.log()[-3000:]}")
        return r

    def json(self, *args, **kw):
        return json.loads(self.ctl("--json", *args, **kw).stdout)

    def pid(self):
        return self.guardd.proc.pid
