"""install/setup.sh's last word, run as `setup.sh --check` (what setup.sh runs before it
says "guarding"): guarding only when guardd's table is in this network namespace AND
guardd answers on the system bus. A stale bus socket (the file is there, no bus behind
it) is named as such, with what to do on this machine. Real guardd, real dbus-daemon,
real guardctl from the build; the bus is selected with DBUS_SYSTEM_BUS_ADDRESS, which
setup.sh's dbus-send and guardctl honour. ctest runs it under `unshare -n`, so this is a
namespace trial: no hint may name systemctl for guardd."""
import os
import socket
import subprocess
import unittest

import mgtest
from busfixture import GUARDCTL, SOURCE, GuarddOnBus
from mgtest import Guardd

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

SETUP = os.path.join(SOURCE, "install", "setup.sh")


def check(bus_address, seconds=3):
    env = dict(os.environ)
    env["DBUS_SYSTEM_BUS_ADDRESS"] = bus_address
    env["MAILGUARD_CHECK_SECONDS"] = str(seconds)
    env["PATH"] = os.path.dirname(GUARDCTL) + ":" + env.get("PATH", "/usr/sbin:/usr/bin:/bin")
    return subprocess.run([SETUP, "--check"], capture_output=True, text=True, env=env,
                          timeout=60)


def stale_socket(directory):
    """A unix socket file whose listener is gone: connecting to it is refused."""
    path = os.path.join(directory, "system_bus_socket")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
        raise AssertionError("the stale socket accepted a connection")
    except ConnectionRefusedError:
        pass
    finally:
        probe.close()
    return path


class FirstRunCheck(unittest.TestCase):
    def test_says_guarding_when_guardd_enforces_and_answers_on_the_bus(self):
        daemon = GuarddOnBus(self).start()
        r = check(daemon.bus.address, seconds=20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("mailguard: guarding: only approved programs", r.stdout)

    def test_a_stale_bus_socket_is_reported_with_what_to_do_not_guarding(self):
        d = mgtest.make_tempdir(self)
        sock = stale_socket(d)
        state = os.path.join(d, "state")
        os.makedirs(state)
        env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={sock}")
        Guardd(self, state).start(env=env)  # enforces; the bus it cannot reach
        r = check(f"unix:path={sock}")
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertNotIn("guarding:", out)
        self.assertIn("NOT reachable: guardd enforces", out)
        self.assertIn(f"{sock} is stale", out)
        # No systemd in a namespace trial: the bus and guardd are started by hand.
        self.assertIn(f"sudo rm -f {sock} /run/dbus/pid && sudo dbus-daemon --system --fork", out)
        self.assertIn("Then restart guardd", out)
        self.assertNotIn("sudo systemctl", out)

    def test_guardd_not_on_the_bus_is_reported_not_guarding(self):
        # A live bus, and a guardd that enforces but registered on another one.
        daemon = GuarddOnBus(self)
        elsewhere = stale_socket(mgtest.make_tempdir(self))
        daemon.guardd.start(env=dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={elsewhere}"))
        r = check(daemon.bus.address)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertNotIn("guarding:", out)
        self.assertIn("NOT reachable: guardd enforces, but does not answer on the system bus: "
                      "guardd is not running", out)
        self.assertIn("network namespace trial", out)
        self.assertNotIn("sudo systemctl", out)

    def test_without_guardd_its_missing_table_is_reported(self):
        daemon = GuarddOnBus(self)  # a bus, no guardd
        r = check(daemon.bus.address, seconds=1)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        self.assertIn("NOT guarding: guardd's table 'inet mailguard' is not in this network "
                      "namespace", out)
        self.assertIn("inside this namespace", out)
        self.assertNotIn("sudo systemctl", out)


if __name__ == "__main__":
    mgtest.main()
