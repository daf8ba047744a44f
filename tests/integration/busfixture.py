"""A private system-style D-Bus for the D-Bus tests.

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
from mgtest import BUILD, CONNECT, Guardd, connect, copy_program, terminate, wait_for
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
    def __init__(self, test, directory, includes=()):
        """`includes`: more bus configuration files (absolute paths) to include, e.g.
        polkitd's own policy for a test with a real polkitd (polkit_fixture)."""
        self.dir = directory
        self.socket = os.path.join(directory, "system_bus_socket")
        self.address = f"unix:path={self.socket}"
        self.config = os.path.join(directory, "system-bus.conf")
        with open(TEMPLATE) as f:
            text = f.read().replace("@SOCKET@", self.socket).replace("@POLICY@", POLICY)
        extra = "".join(f"  <include>{path}</include>\n" for path in includes)
        text = text.replace("</busconfig>", extra + "</busconfig>")
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


class GuarddOnBus:
    """guardd with its own state directory (in a fresh temporary directory) serving a
    private bus (started), and guardctl talking to it; guardd is not started yet.

    guardctl runs with the test's environment minus SSH_CONNECTION/SSH_CLIENT/SSH_TTY, so
    that only the tests about remote sessions look remote (those still pass --yes where
    the test runs from an SSH login, where sshd is an ancestor), and with no terminal to
    ask questions on."""

    def __init__(self, test, env=None, bus_includes=()):
        self.test = test
        self.dir = mgtest.make_tempdir(test)
        self.state = os.path.join(self.dir, "state")
        os.makedirs(self.state)
        self.bus = PrivateBus(test, self.dir, bus_includes).start()
        self.guardd = Guardd(test, self.state)
        self.extra_env = env or {}

    def start(self, env=None):
        """Starts guardd (with `env` added to the bus's environment) and waits until it
        enforces and owns its name on the bus."""
        e = self.bus.env()
        e.update(self.extra_env)
        e.update(env or {})
        self.guardd.start(env=e)
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
        """Runs guardctl; with ok=True a non-zero exit fails the test, with guardd's log."""
        argv = self.bus.as_user([GUARDCTL, *args], user)
        r = subprocess.run(argv, capture_output=True, text=True, env=env or self.env(),
                           stdin=subprocess.DEVNULL, timeout=timeout)
        if ok and r.returncode != 0:
            raise AssertionError(f"guardctl {' '.join(args)} failed ({r.returncode}): "
                                 f"{r.stderr}\nguardd log:\n{self.guardd.log()[-3000:]}")
        return r

    def json(self, *args, **kw):
        return json.loads(self.ctl("--json", *args, **kw).stdout)

    def program(self, path):
        """The program guardd lists for `path` (`guardctl --json programs`), or None."""
        found = [p for p in self.json("programs") if p["path"] == path]
        return found[0] if found else None

    def pid(self):
        return self.guardd.proc.pid


class GuarddOnBusTest(unittest.TestCase):
    """Set-up shared by the tests that drive guardd over a private bus: a GuarddOnBus
    (its directory, state directory, bus and guardd as self.dir, self.state, self.bus and
    self.guardd) and a copy of mg-connect as the mail client (self.client)."""

    def setUp(self):
        self.daemon = GuarddOnBus(self)
        self.dir = self.daemon.dir
        self.state = self.daemon.state
        self.bus = self.daemon.bus
        self.guardd = self.daemon.guardd
        self.client = copy_program(CONNECT, os.path.join(self.dir, "mailclient"))

    def start_guardd(self, env=None):
        self.daemon.start(env)
        return self.guardd

    def ctl(self, *args, user=None, ok=True, timeout=120):
        return self.daemon.ctl(*args, user=user, ok=ok, timeout=timeout)

    def ctl_json(self, *args, user=None):
        return self.daemon.json(*args, user=user)

    def program(self, path):
        return self.daemon.program(path)

    def held_program(self, exe, host="127.0.0.1", port=25, timeout_ms=800, user=None):
        """One connect by `exe` that guardd holds (drops) until the client gives up;
        returns the program as guardctl lists it once it shows up there."""
        r = connect(host, port, timeout_ms=timeout_ms, exe=exe, user=user)
        self.assertFalse(r["connected"], r)
        return wait_for(lambda: self.program(exe), 5, f"{exe} in guardctl programs")
