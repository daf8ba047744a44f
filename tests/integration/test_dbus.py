"""The org.mailguard.Guard1 API, guardctl and authorization, against a real
dbus-daemon running install/'s policy file (run as root under `unshare -n`)."""
import datetime
import errno
import json
import os
import re
import subprocess
import unittest

import mgtest
from busfixture import BUS_NAME, IFACE, OBJECT, SOURCE, GuarddOnBusTest
from mgtest import Listener, attempts, connect, wait_for

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

NOT_AUTHORIZED = "org.mailguard.Error.NotAuthorized"
INVALID = "org.mailguard.Error.InvalidArgument"
NOT_FOUND = "org.mailguard.Error.NotFound"


def micros(rfc3339):
    if rfc3339 is None:
        return 0
    t = datetime.datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ")
    t = t.replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 1_000_000 + t.microsecond


class DBus(GuarddOnBusTest):
    def ctl_in(self, directory, *args):
        """guardctl run from `directory` (relative paths are taken from there)."""
        return subprocess.run([os.path.join(mgtest.BUILD, "tui", "guardctl"), *args],
                              cwd=directory, capture_output=True, text=True, env=self.daemon.env(),
                              stdin=subprocess.DEVNULL, timeout=60)

    def rules_rows(self):
        with mgtest.db(self.state) as conn:
            return [tuple(r) for r in conn.execute("SELECT * FROM rules ORDER BY id")]

    # 1: private bus, guardd on it, guardctl through DBUS_SYSTEM_BUS_ADDRESS.
    def test_guardctl_reads_status_and_the_object_is_introspectable(self):
        self.start_guardd()
        status = self.ctl_json("status")
        self.assertTrue(status["enforcing"], status)
        self.assertIn(status["backend"], ("nft-queue", "xt-compat"))
        self.assertTrue(status["version"])
        for key in ("allowed", "held", "rejected", "queue_dropped", "attempts_dropped",
                    "store_errors"):
            self.assertIsInstance(status["counters"][key], int)
        self.assertIn("enforcing", self.ctl("status").stdout)
        intro = self.bus.busctl("introspect", BUS_NAME, OBJECT, IFACE)
        self.assertEqual(intro.returncode, 0, intro.stderr)
        for member in ("Status", "Programs", "Approve", "Deny", "Forget", "Attempts",
                       "AttemptRecorded", "ProgramChanged", "Version", "Enforcing", "Backend"):
            self.assertIn(member, intro.stdout)
        prop = self.bus.busctl("get-property", BUS_NAME, OBJECT, IFACE, "Enforcing", user="nobody")
        self.assertEqual(prop.stdout.strip(), "b true", prop.stderr)

    def test_guardctl_says_clearly_when_guardd_is_not_running(self):
        r = self.ctl("status", ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("guardd is not running", r.stderr)
        # The advice fits this machine: systemctl only where systemd runs (sd_booted(3)).
        if os.path.isdir("/run/systemd/system"):
            self.assertIn("systemctl start guardd", r.stderr)
        else:
            self.assertNotIn("systemctl", r.stderr)
            self.assertIn("install/setup.sh", r.stderr)
        r = self.ctl("no-such-command", ok=False)
        self.assertEqual(r.returncode, 2)
        self.assertEqual(self.ctl("approve", "--help").returncode, 0)

    # 2: hold, then approve while the client is still retrying its SYN.
    def test_held_program_connects_once_approved_with_guardctl(self):
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        pending = mgtest.start_connect("127.0.0.1", 25, 15000, exe=self.client)
        held = wait_for(lambda: self.ctl_json("attempts", "--verdict", "hold"), 5, "held attempt")
        self.assertEqual(held[0]["path"], self.client)
        program = self.ctl_json("approve", self.client)
        self.assertEqual(program["state"], "approved")
        self.assertEqual(program["path"], self.client)
        out, _ = pending.communicate(timeout=20)
        self.assertTrue(json.loads(out)["connected"], out)
        wait_for(lambda: self.ctl_json("attempts", "--verdict", "allow"), 5, "allowed attempt")

    # 3: deny a program that is running; its next attempt fails at once.
    def test_deny_makes_the_next_attempt_fail_fast(self):
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        program = self.held_program(self.client)
        denied = self.ctl_json("deny", str(program["id"]))
        self.assertEqual(denied["state"], "denied")
        r = connect("127.0.0.1", 25, timeout_ms=5000, exe=self.client)
        self.assertFalse(r["connected"])
        self.assertIn(r["errno"], (errno.ECONNREFUSED, errno.ECONNRESET), r)
        self.assertLess(r["ms"], 500, "a denied program must fail at once")
        self.assertTrue(self.ctl_json("forget", str(program["id"]))["removed"])
        self.assertEqual(self.ctl_json("programs")[0]["state"], "pending")
        # Nothing left to forget: said so, exit 1, over D-Bus a NotFound.
        r = self.ctl("forget", str(program["id"]), ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("there is no decision about", r.stderr)
        self.assertIn("nothing was changed", r.stderr)
        self.assertIn(NOT_FOUND, self.bus.gdbus_call("Forget", self.client, "").stderr)

    # Ids and paths told apart strictly; release, forget and --script say when there is
    # nothing to do or the request cannot mean anything.
    def test_mistyped_ids_and_pointless_requests_are_refused_with_the_reason(self):
        self.start_guardd()
        program = self.held_program(self.client)
        # A file named "-1" here must not be what "approve -1" means.
        with open(os.path.join(self.dir, "-1"), "w") as f:
            f.write("not a program\n")
        for verb in ("approve", "deny", "forget", "release"):
            for typed in ("-1", "0", "-7x", "no-such-file"):
                r = self.ctl_in(self.dir, verb, typed)
                self.assertEqual(r.returncode, 2, f"{verb} {typed}: {r.stderr}")
                self.assertIn("guardctl: ", r.stderr)
        r = self.ctl_in(self.dir, "bulk", "-1", "--recipients", "5", "--hours", "1")
        self.assertEqual(r.returncode, 2, r.stderr)
        r = self.ctl_in(self.dir, "approve", "-1")
        self.assertIn("'-1' is not a program id or path", r.stderr)
        self.assertIn("./-1", r.stderr)
        self.assertIn("program ids start at 1", self.ctl("deny", "0", ok=False).stderr)
        self.assertEqual(self.ctl_json("programs")[0]["state"], "pending", "nothing changed")

        # release on a program that is not quarantined: nothing to release, exit 1.
        r = self.ctl("release", str(program["id"]), ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is not quarantined (it is pending): nothing to release", r.stderr)
        self.assertNotIn("Released", r.stdout)
        self.assertIn(NOT_FOUND, self.bus.gdbus_call("Release", self.client, "").stderr)

        # --script with a program that is no interpreter: refused with the reason, for
        # guardctl and for any D-Bus caller; nothing stored.
        script = os.path.join(self.dir, "a.py")
        with open(script, "w") as f:
            f.write("print('hello')\n")
        rules_before = self.rules_rows()
        r = self.ctl("approve", self.client, "--script", script, ok=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("is not an interpreter", r.stderr)
        self.assertIn("without --script", r.stderr)
        self.assertIn(INVALID, self.bus.gdbus_call("Approve", self.client, script).stderr)
        self.assertEqual(self.rules_rows(), rules_before)
        # An interpreter with its script is what --script is for.
        python = os.path.realpath("/usr/bin/python3")
        approved = self.ctl_json("approve", "/usr/bin/python3", "--script", script)
        self.assertEqual((approved["path"], approved["script_path"]),
                         (python, os.path.realpath(script)))

    # 4: an unprivileged user reads, but cannot change policy.
    def test_nobody_reads_but_is_refused_policy_changes_and_nothing_changes(self):
        self.start_guardd()
        program = self.held_program(self.client, user="nobody")
        rules_before = self.rules_rows()
        as_root = self.ctl_json("programs")
        as_nobody = self.ctl_json("programs", user="nobody")
        self.assertEqual(as_nobody, as_root)
        self.ctl("attempts", user="nobody")
        for verb in ("approve", "deny", "forget"):
            r = self.ctl(verb, self.client, user="nobody", ok=False)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("guardctl: Not authorized: ", r.stderr)
            r = self.bus.gdbus_call(verb.capitalize(), self.client, "", user="nobody")
            self.assertIn(NOT_AUTHORIZED, r.stderr)
        self.assertEqual(self.rules_rows(), rules_before, "a refused call changed the store")
        self.assertEqual(self.ctl_json("programs")[0]["state"], program["state"])
        self.assertIn("Refused policy change by uid 65534", self.guardd.log())

    # 5: every bad argument gets its named error, and guardd keeps serving.
    def test_bad_arguments_get_named_errors_and_guardd_keeps_serving(self):
        self.start_guardd()
        program = self.held_program(self.client)
        big = "/" + "a" * 120_000  # argv caps one argument at 128 KiB
        cases = [
            ("Approve", ["relative/path", ""], INVALID),
            ("Approve", ["", ""], INVALID),
            ("Approve", ["0", ""], INVALID),
            ("Approve", ["-3", ""], INVALID),
            ("Approve", ["99999999999999999999999", ""], INVALID),
            ("Approve", [big, ""], INVALID),
            ("Approve", ["/usr/bin/env", "not/absolute.py"], INVALID),
            ("Approve", ["/usr/bin/env", big], INVALID),
            ("Approve", [str(program["id"]), "/etc/hostname"], INVALID),
            ("Approve", ["/tmp", ""], INVALID),
            ("Approve", ["/no/such/program", ""], NOT_FOUND),
            ("Approve", ["424242", ""], NOT_FOUND),
            ("Deny", ["bad\x01name", ""], INVALID),
            ("Deny", ["/no/such/program", ""], NOT_FOUND),
            ("Forget", ["nope", ""], INVALID),
            ("Forget", ["424242", ""], NOT_FOUND),
        ]
        for method, args, error in cases:
            r = self.bus.gdbus_call(method, *[json.dumps(a) for a in args])
            self.assertIn(error, r.stderr, f"{method}{tuple(a[:40] for a in args)}: {r.stderr}")
            self.assertLess(len(r.stderr), 2000, "an error must not echo a huge argument")
        attempt_cases = [
            ["uint32 1001", "int64 0", "int64 0", "''", "int64 0", "int64 0"],
            ["uint32 10", "int64 -1", "int64 0", "''", "int64 0", "int64 0"],
            ["uint32 10", "int64 0", "int64 -5", "''", "int64 0", "int64 0"],
            ["uint32 10", "int64 0", "int64 0", "'maybe'", "int64 0", "int64 0"],
            ["uint32 10", "int64 0", "int64 0", "''", "int64 -1", "int64 0"],
            ["uint32 10", "int64 0", "int64 0", "''", "int64 20", "int64 10"],
        ]
        for args in attempt_cases:
            r = self.bus.gdbus_call("Attempts", *args)
            self.assertIn(INVALID, r.stderr, f"Attempts{tuple(args)}: {r.stderr}")
        self.assertIsNone(self.guardd.proc.poll(), "guardd died")
        self.assertTrue(self.ctl_json("status")["enforcing"])
        self.assertEqual(self.ctl_json("programs")[0]["state"], "pending")

    # 6: one signal per attempt, in order, for a burst of 1,000.
    def test_burst_of_1000_attempts_gives_1000_signals_in_order(self):
        self.start_guardd()
        self.ctl("deny", self.client)  # rejected at once: the burst takes seconds, not hours
        watch = subprocess.Popen([mgtest.os.path.join(mgtest.BUILD, "tui", "guardctl"), "--json",
                                  "watch"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=self.bus.env())
        self.addCleanup(lambda: watch.poll() is None and watch.kill())
        self.assertIn("Watching", watch.stderr.readline())
        results = connect("127.0.0.1", 25, timeout_ms=2000, exe=self.client, count=1000)
        self.assertEqual(len(results), 1000)
        stored = wait_for(lambda: len(attempts(self.state, path=self.client)) >= 1000 and
                          attempts(self.state, path=self.client), 20, "1000 stored attempts")
        signals = []
        while len(signals) < 1000:
            line = watch.stdout.readline()
            self.assertTrue(line, "guardctl watch ended early")
            event = json.loads(line)
            if event["signal"] == "AttemptRecorded":
                signals.append(event["attempt"])
        watch.terminate()
        watch.wait(10)
        self.assertEqual(len(signals), 1000)
        self.assertTrue(all(s["verdict"] == "reject" for s in signals))
        self.assertEqual([s["src_port"] for s in signals],
                         [r["src_port"] for r in reversed(stored)],
                         "signals must come in the order guardd decided the attempts")

    # 7: --json parses and matches what the bus says.
    def test_json_output_matches_the_dbus_data(self):
        self.start_guardd()
        self.held_program(self.client)
        programs = self.ctl_json("programs")
        raw = json.loads(self.bus.busctl("--json=short", "call", BUS_NAME, OBJECT, IFACE,
                                         "Programs").stdout)["data"][0]
        self.assertEqual(len(programs), len(raw))
        for p, w in zip(programs, raw):
            self.assertEqual(set(p) >= {"id", "path", "sha256", "uid", "state", "attempts",
                                        "last_attempt"}, True, p)
            self.assertEqual((p["id"], p["path"], p["sha256"], p["uid"], p["state"],
                              p["attempts"], micros(p["last_attempt"])),
                             (w[0], w[1], w[2], w[5], w[6], w[7], w[8]))
            self.assertRegex(p["sha256"], r"^[0-9a-f]{64}$")
        attempts_json = self.ctl_json("attempts", "--limit", "10")
        raw = json.loads(self.bus.busctl("--json=short", "call", BUS_NAME, OBJECT, IFACE,
                                         "Attempts", "uxxsxx", "10", "0", "0", "", "0",
                                         "0").stdout)["data"][0]
        self.assertEqual(len(attempts_json), len(raw))
        for a, w in zip(attempts_json, raw):
            self.assertEqual(set(a) >= {"id", "time", "pid", "path", "uid", "dst", "port",
                                        "verdict", "reason"}, True, a)
            self.assertEqual((a["id"], micros(a["time"]), a["pid"], a["uid"], a["path"],
                              a["dst"], a["port"], a["verdict"], a["reason"]),
                             (w[0], w[1], w[2], w[3], w[4], w[9], w[10], w[11], w[12]))
            self.assertRegex(a["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
        self.assertEqual(self.ctl_json("attempts", "--verdict", "allow"), [])
        status = self.ctl_json("status")
        self.assertEqual(status["counters"]["held"], 1)

    # DESIGN.md "Independence of the parts": no bus, a lost bus, a bus that comes back.
    def test_guardd_enforces_without_the_bus_and_reconnects_when_it_returns(self):
        Listener(self, "127.0.0.1", 25)
        self.bus.stop()
        self.guardd.start(env=self.bus.env())  # enforcing although the bus is missing
        self.ctl("deny", self.client, ok=False)
        mgtest.seed(self.state, "deny", self.client)
        # A rule written by another process is read on guardd's next rules check (every
        # 100 ms): until then the client is held, after it refused at once.
        r = wait_for(lambda: (lambda c: c if c["ms"] < 250 else None)(
            connect("127.0.0.1", 25, timeout_ms=300, exe=self.client)), 5,
            "guardd to refuse the client denied while the bus was down")
        self.assertFalse(r["connected"])
        self.bus.start()
        self.bus.wait_for_name(timeout=5)
        self.bus.stop()
        r = connect("127.0.0.1", 25, timeout_ms=3000, exe=self.client)
        self.assertLess(r["ms"], 500, "verdicts must go on while the bus is gone")
        self.bus.start()
        self.bus.wait_for_name(timeout=5)
        self.assertEqual(self.ctl_json("programs")[0]["state"], "denied")
        self.assertIsNone(self.guardd.proc.poll())

    # 8: the unit's sandbox, as systemd scores it.
    def test_service_unit_exposure_is_printed(self):
        unit = os.path.join(self.dir, "guardd.service")
        with open(os.path.join(SOURCE, "install", "guardd.service")) as f:
            text = f.read().replace("@SBINDIR@", "/usr/local/sbin")
        with open(unit, "w") as f:
            f.write(text)
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit],
                           capture_output=True, text=True)
        m = re.search(r"Overall exposure level for guardd\.service: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        print(f"\nsystemd-analyze security: guardd.service exposure {m.group(1)} "
              "(0 = fully sandboxed, 10 = not at all)")
        # 2.4 for the mail guard alone; the mail-server audit adds 0.5:
        # CAP_SYS_ADMIN for its probe namespace (0.3), RestrictNamespaces=net (0.1) and
        # CAP_NET_ADMIN as an ambient capability for `ip` (0.1); bpf(2) allowed back from
        # @privileged for the kernel identity path adds 0.1.
        self.assertLessEqual(float(m.group(1)), 3.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
