"""guardd across restarts of the system bus while replies are owed: audits running
(RunAudit answers only when the audit ends, seconds later) and approvals in flight.
guardd must drop the replies it owes on a connection before that connection goes, keep
enforcing, reconnect, and answer on the new connection. Real guardd, real dbus-daemon
with the project's policy file (busfixture.PrivateBus), a fresh network namespace."""
import os
import re
import socket
import subprocess
import threading

import mgtest
from busfixture import BUS_NAME, IFACE, OBJECT, GuarddOnBusTest
from mgtest import copy_program, wait_for

mgtest.require_private_netns()

CTEST_LABEL = "dbus"

AUDIT_REPLY = re.compile(r"^\((?:int64 )?(-?\d+), (true|false),")


class SilentSmtpServer:
    """Listens on 0.0.0.0:25, accepts, and never greets: the audit's relay probe waits
    for the banner until its reply timeout (seconds), which keeps each audit running
    long enough to restart the bus under it. Counts probes that gave up (EOF)."""

    def __init__(self, test):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", 25))
        self.sock.listen(16)
        self.accepted = 0
        self.closed_by_peer = 0
        threading.Thread(target=self._accept, daemon=True).start()
        test.addCleanup(self.sock.close)

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn):
        with conn:
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
        self.closed_by_peer += 1


class BusRestart(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.server = SilentSmtpServer(self)

    def gdbus(self, method, *args):
        """Starts a call without waiting for it (its reply may never come)."""
        argv = ["gdbus", "call", "--address", self.bus.address, "--dest", BUS_NAME,
                "--object-path", OBJECT, "--method", f"{IFACE}.{method}", *args]
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.bus.env())
        self.addCleanup(mgtest.terminate, p)
        return p

    def audit_state(self):
        """(finished_us, running) from Audit(), or None while guardd does not answer."""
        r = self.bus.gdbus_call("Audit")
        m = AUDIT_REPLY.match(r.stdout.strip()) if r.returncode == 0 else None
        return (int(m.group(1)), m.group(2) == "true") if m else None

    def audit_ended(self):
        state = self.audit_state()
        return state is not None and not state[1]

    def kill_bus(self):
        self.bus.proc.kill()  # no goodbye to its clients: guardd sees a hang-up
        self.bus.proc.wait()

    def restart_bus(self):
        self.bus.start()
        self.bus.wait_for_name(timeout=10)  # guardd reconnected and owns its name again

    def assert_guardd_alive(self):
        self.assertIsNone(self.guardd.proc.poll(), f"guardd died: {self.guardd.log()[-4000:]}")

    def start_audits(self, n):
        callers = [self.gdbus("RunAudit") for _ in range(n)]
        wait_for(lambda: (self.audit_state() or (0, False))[1], 10, "an audit to be running")
        return callers

    def test_guardd_survives_bus_restarts_during_audits_and_answers_after(self):
        self.start_guardd()
        for _ in range(3):
            # The bus dies while the audit runs and comes back before it ends: the
            # audit's completion arrives on the new connection, owing nothing there.
            callers = self.start_audits(3)
            self.kill_bus()
            for c in callers:
                c.wait(30)
                self.assertNotEqual(c.returncode, 0, "no reply can come over a dead bus")
            self.restart_bus()
            self.assert_guardd_alive()
            self.assertTrue(self.audit_state()[1], "the audit outlived the bus it began on")
            wait_for(lambda: self.audit_ended(), 30, "the audit to end")

        # The bus stays away until the audit's probe gave up, so the audit ends while
        # guardd has no connection at all.
        self.start_audits(2)
        self.kill_bus()
        gave_up = self.server.closed_by_peer
        wait_for(lambda: self.server.closed_by_peer > gave_up, 30,
                 "the audit's probe to give up on the silent server")
        self.restart_bus()
        self.assert_guardd_alive()

        status = self.ctl_json("status")
        self.assertTrue(status["enforcing"], status)
        before = self.audit_state()
        self.assertIsNotNone(before)
        r = self.ctl("--json", "audit", "--run")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.audit_state()
        self.assertEqual(after[1], False)
        self.assertGreater(after[0], before[0], "a new audit ran and was reported")
        self.assert_guardd_alive()
        self.assertIn("Lost the system bus", self.guardd.log())

    def test_approvals_in_flight_when_the_bus_dies_do_not_crash_guardd(self):
        self.start_guardd()
        clients = [copy_program(self.client, os.path.join(self.dir, f"mailclient{i}"))
                   for i in range(40)]
        for round_ in range(3):
            batch = clients[round_ * 12:(round_ + 1) * 12]
            callers = [self.gdbus("Approve", path, "") for path in batch]
            callers[0].wait(30)  # one answered: the others are on their way
            self.kill_bus()
            answered = []
            for path, c in zip(batch, callers):
                c.wait(30)
                if c.returncode == 0:
                    answered.append(path)
            self.restart_bus()
            self.assert_guardd_alive()
            # What guardd reported done is durable and listed; the rest may or may not be.
            approved = {p["path"] for p in self.ctl_json("programs") if p["state"] == "approved"}
            self.assertLessEqual(set(answered), approved)
        status = self.ctl_json("status")
        self.assertTrue(status["enforcing"], status)
        r = self.ctl("--json", "approve", clients[-1])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_guardd_alive()


if __name__ == "__main__":
    mgtest.main()
