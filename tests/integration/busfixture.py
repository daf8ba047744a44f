"""A private system-style D-Bus for the D-Bus tests (issue #3).

The bus runs dbus-daemon with tests/integration/data/system-bus.conf, which includes
install/'s real policy file, so the tests check the policy that ships. Clients reach
it through DBUS_SYSTEM_BUS_ADDRESS, as guardd, guardctl, gdbus and busctl all honour
it (busctl and gdbus also get an explicit --address). Only the daemon started here is
stopped, by its PID.
"""
import json
import os
import socket
import subprocess
import unittest

import mgtest
from mgtest import BUILD, CONNECT, Guardd, copy_program, terminate, wait_for
from mgtest import as_user as mgtest_as_user

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
TEMPLATE = os.path.join(HERE, "data", "system-bus.conf")
POLICY = os.path.join(SOURCE, "install", "org.mailguard.Guard1.conf")
GUARDCTL = os.path.join(BUILD, "tui", "guardctl")
BUS_NAME = "org.mailguard.Guard1"
OBJECT = "/org/mailguard/Guard1"
IFACE = "org.mailguard.Guard1"


class PrivateBus:
    def __init__(self, test, directory):
        self.dir = directory
        self.socket = os.path.join(directory, "system_bus_socket")
        self.address = f"unix:path={self.socket}"
        self.config = os.path.join(directory, "system-bus.conf")
        with open(TEMPLATE) as f:
            text = f.read().replace("@SOCKET@", self.socket).replace("@POLICY@", POLICY)
        with open(self.config, "w") as f:
            f.write(text)
        self.log_path = os.path.join(directory, "dbus-daemon.log")
        self.proc = None
        test.addCleanup(self.stop)

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(
                ["dbus-daemon", f"--config-file={self.config}", "--nofork", "--nopidfile",
                 "--nosyslog"],
                stdout=subprocess.DEVNULL, stderr=log)

        def accepting():
            if self.proc.poll() is not None:
                raise AssertionError(f"dbus-daemon exited with {self.proc.returncode}: "
                                     f"{open(self.log_path).read()}")
            if not os.path.exists(self.socket):
                return False
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.socket)
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_for(accepting, 10, "the private bus to accept connections")
        os.chmod(self.socket, 0o777)  # as on the real system bus: every user may connect
        return self

    def stop(self):
        if self.proc:
            terminate(self.proc)

    def env(self):
        e = dict(os.environ)
        e["DBUS_SYSTEM_BUS_ADDRESS"] = self.address
        return e

    def as_user(self, argv, user):
        return mgtest_as_user(user) + argv if user else argv

    def guardctl(self, *args, user=None, timeout=60):
        argv = self.as_user([GUARDCTL, *args], user)
        return subprocess.run(argv, capture_output=True, text=True, env=self.env(),
                              timeout=timeout)

    def gdbus_call(self, method, *args, user=None):
        """Calls a Guard1 method with gdbus (GVariant text arguments); gdbus reports the
        D-Bus error name, e.g. GDBus.Error:org.mailguard.Error.NotAuthorized."""
        argv = ["gdbus", "call", "--address", self.address, "--dest", BUS_NAME,
                "--object-path", OBJECT, "--method", f"{IFACE}.{method}", *args]
        return subprocess.run(self.as_user(argv, user), capture_output=True, text=True,
                              env=self.env(), timeout=60)

    def busctl(self, *args, user=None):
        argv = ["busctl", f"--address={self.address}", *args]
        return subprocess.run(self.as_user(argv, user), capture_output=True, text=True,
                              env=self.env(), timeout=60)

    def wait_for_name(self, timeout=10):
        def owned():
            r = self.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                            "org.freedesktop.DBus", "NameHasOwner", "s", BUS_NAME)
            return r.returncode == 0 and r.stdout.strip() == "b true"
        wait_for(owned, timeout, f"{BUS_NAME} on the private bus")


class GuarddOnBusTest(unittest.TestCase):
    """Set-up shared by the tests that drive guardd over a private bus: a temporary
    directory with guardd's state directory, a copy of mg-connect as the mail client,
    the bus (started) and guardd (not started), plus guardctl helpers."""

    def setUp(self):
        self.dir = mgtest.make_tempdir(self)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state)
        self.client = copy_program(CONNECT, os.path.join(self.dir, "mailclient"))
        self.bus = PrivateBus(self, self.dir).start()
        self.guardd = Guardd(self, self.state)

    def start_guardd(self):
        self.guardd.start(env=self.bus.env())
        self.bus.wait_for_name()
        return self.guardd

    def ctl(self, *args, user=None, ok=True):
        r = self.bus.guardctl(*args, user=user)
        if ok:
            self.assertEqual(r.returncode, 0, f"guardctl {' '.join(args)}: {r.stderr}")
        return r

    def ctl_json(self, *args, user=None):
        return json.loads(self.ctl("--json", *args, user=user).stdout)
