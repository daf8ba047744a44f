"""Approvals pinned to destinations (`guardctl approve PATH --only-to HOST[:PORT]`).

A real client (Python's smtplib, run by the real python3 interpreter as an approved
script) is approved only to 127.0.0.2:25: it reaches the stand-in MTA there, while its
connection to 127.0.0.3:25 is held as a new decision with the reason naming both, until
the owner adds that destination. Runs a real guardd in its own network namespace on a
private bus. Run as root."""
import os
import sys

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import Listener, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()

PYTHON = "/usr/bin/python3"
SENDER = '''
import json, smtplib, sys
try:
    s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=float(sys.argv[3]))
    print(json.dumps({"connected": True}))
except (OSError, smtplib.SMTPException) as e:
    print(json.dumps({"connected": False, "error": repr(e)}))
'''
BANNER = b"220 sink.test ESMTP\r\n"


class OnlyToTest(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.script = os.path.join(self.dir, "sender.py")
        with open(self.script, "w") as f:
            f.write(SENDER)
        self.allowed_sink = Listener(self, "127.0.0.2", 25, banner=BANNER)
        self.other_sink = Listener(self, "127.0.0.3", 25, banner=BANNER)
        self.start_guardd()

    def send(self, host, timeout_s):
        import json
        import subprocess
        out = subprocess.run([PYTHON, self.script, host, "25", str(timeout_s)],
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def held_attempts_to(self, host):
        return [a for a in self.ctl_json("attempts", "--verdict", "hold")
                if a["dst"] == host and a.get("path", "").startswith("/usr/bin/python3")]

    def test_pinned_client_reaches_its_server_and_is_held_elsewhere_until_added(self):
        self.ctl("approve", PYTHON, "--script", self.script, "--only-to", "127.0.0.2:25")
        rules = self.ctl_json("rules")
        self.assertEqual([r["only_to"] for r in rules if r["script_path"] == self.script],
                         [["127.0.0.2:25"]])

        self.assertTrue(self.send("127.0.0.2", 10)["connected"])
        self.allowed_sink.accepted_once(1)

        r = self.send("127.0.0.3", 1.5)
        self.assertFalse(r["connected"], r)
        held = wait_for(lambda: self.held_attempts_to("127.0.0.3"), 5,
                        "the held attempt to 127.0.0.3 in guardctl attempts")
        self.assertEqual(held[0]["reason"],
                         "approved only to 127.0.0.2:25; asked for 127.0.0.3:25")
        self.assertEqual(self.other_sink.accepted, 0)
        # Held, not denied: the program itself is still approved.
        self.assertEqual(self.program(os.path.realpath(PYTHON))["state"], "approved")

        # The owner approves the new destination: added to the pins, not replacing them.
        self.ctl("approve", PYTHON, "--script", self.script, "--only-to", "127.0.0.3")
        rules = self.ctl_json("rules")
        self.assertEqual([r["only_to"] for r in rules if r["script_path"] == self.script],
                         [["127.0.0.2:25", "127.0.0.3"]])
        # Three destinations within seconds is what the detector's soft tier throttles (one
        # new destination per 60 s); the owner says this is meant, as a real owner would.
        self.ctl("bulk", PYTHON, "--script", self.script, "--recipients", "10", "--hours", "1")
        r = self.send("127.0.0.3", 10)
        self.assertTrue(r["connected"], (r, self.ctl_json("attempts", "--limit", "3")))
        self.other_sink.accepted_once(1)
        self.assertTrue(self.send("127.0.0.2", 10)["connected"])

    def test_pins_survive_a_restart(self):
        self.ctl("approve", PYTHON, "--script", self.script, "--only-to", "127.0.0.2:25")
        self.daemon.restart()
        self.assertFalse(self.send("127.0.0.3", 1.5)["connected"])
        self.assertTrue(self.send("127.0.0.2", 10)["connected"])

    def test_bad_only_to_is_refused_with_exit_2_and_changes_nothing(self):
        for bad, why in (("smtp.example.org:587", "host names are not accepted"),
                         ("127.0.0.2:0", "invalid port"),
                         ("[::1", "no closing ']'"),
                         ("127.0.0.999", "not an IPv4 or IPv6 address")):
            r = self.ctl("approve", PYTHON, "--script", self.script, "--only-to", bad, ok=False)
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertIn(why, r.stderr, bad)
            self.assertIn("--only-to", r.stderr, bad)
        self.assertEqual(self.ctl_json("rules"), [])


if __name__ == "__main__":
    mgtest.main()
