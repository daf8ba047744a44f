"""What an approval covers: a program, a script run by an interpreter, or inline code
(`python3 -c`), and for which users. Each test is a trap a household owner fell into,
met as the owner meets it, with the real python3 and perl in a fresh network namespace,
guardd on a private bus and guardctl. Run as root."""
import json
import os
import signal
import subprocess

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import Listener, as_user, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()

PYTHON = os.path.realpath("/usr/bin/python3")
PERL = "/usr/bin/perl"
BASH = os.path.realpath("/bin/bash")

# Connects to 127.0.0.1:25 and says how it went; held connections time out.
CONNECT = ("import socket\n"
           "s = socket.socket(); s.settimeout(1.5)\n"
           "try:\n    s.connect(('127.0.0.1', 25)); print('connected')\n"
           "except OSError as e:\n    print('failed', e)\n")
# A perl mail client of our own, like swaks: a script with a "#!" line and an option.
PERL_CLIENT = ("#!/usr/bin/perl -w\n"
               "use IO::Socket::INET;\n"
               "my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 25,\n"
               "                              Timeout => 2);\n"
               "print $s ? \"connected\\n\" : \"failed $@\\n\";\n")


class ApprovalKinds(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        os.chmod(self.dir, 0o755)  # nobody runs scripts from here
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()

    def write(self, name, text, mode=0o755):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def run_as(self, argv, user=None):
        if user:
            argv = as_user(user) + argv
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (r.stdout + r.stderr).strip()

    def inline(self, user=None):
        return self.run_as([PYTHON, "-c", CONNECT], user=user)

    def row(self, kind, path=PYTHON, script=None):
        def found():
            return [p for p in self.ctl_json("programs")
                    if p["kind"] == kind and p["path"] == path and p["script_path"] == script]
        return wait_for(found, 5, f"the {kind} row of {path} {script or ''}")[0]

    def last_attempt(self, **match):
        def found():
            return [a for a in self.ctl_json("attempts", "--limit", "20")
                    if all(a.get(k) == v for k, v in match.items())]
        return wait_for(found, 5, f"an attempt with {match}")[0]

    def test_approving_python3_itself_leaves_inline_code_held(self):
        r = self.ctl("approve", "/usr/bin/python3")
        self.assertIn("itself: its scripts and inline code are not approved", r.stdout)
        self.assertEqual(self.row("program")["state"], "approved")
        self.assertIn("timed out", self.inline())
        held = self.last_attempt(kind="inline", verdict="hold")
        self.assertIn("does not cover code typed or piped into it", held["reason"])
        self.assertEqual(self.row("inline")["state"], "pending")

    def test_denying_the_inline_row_does_not_refuse_the_interpreters_scripts(self):
        self.assertIn("timed out", self.inline())
        inline_row = self.row("inline")
        self.ctl("deny", str(inline_row["id"]), "--yes")
        self.assertIn("refused", self.inline())
        b = self.write("b.py", "# b\n" + CONNECT, 0o644)
        c = self.write("c.py", "# c, never seen\n" + CONNECT, 0o644)
        for script in (b, c):
            self.assertIn("timed out", self.run_as([PYTHON, script]), script)
            attempt = self.last_attempt(script_path=script)
            self.assertEqual(attempt["verdict"], "hold", attempt)
            self.assertEqual(attempt["kind"], "script")

    def test_deny_inline_refuses_a_users_inline_code_and_not_their_scripts(self):
        r = self.ctl("deny", "--inline", "/usr/bin/python3")
        self.assertIn(f"inline code run by {PYTHON}", r.stdout)
        rules = [(r["action"], r["kind"], r["covers"]) for r in self.ctl_json("rules")]
        self.assertEqual(rules, [("deny", "inline", "all")])
        self.assertIn("refused", self.inline(user="nobody"))
        self.assertEqual(self.last_attempt(kind="inline", uid=65534)["verdict"], "reject")
        # The same user's python3 script is its own program: asked about, not refused.
        b = self.write("b.py", "# b\n" + CONNECT, 0o644)
        self.assertIn("timed out", self.run_as([PYTHON, b], user="nobody"))
        attempt = self.last_attempt(script_path=b)
        self.assertEqual((attempt["verdict"], attempt["uid"]), ("hold", 65534), attempt)
        self.assertEqual(self.row("script", script=b)["state"], "pending")

        r = self.ctl("forget", "--inline", "/usr/bin/python3")
        self.assertIn("Forgot the decision about the inline code of /usr/bin/python3", r.stdout)
        self.assertEqual(self.ctl_json("rules"), [])
        self.assertIn("timed out", self.inline(user="nobody"))
        self.assertEqual(self.row("inline")["state"], "pending")
        again = self.ctl("forget", "--inline", "/usr/bin/python3", ok=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("nothing was changed", again.stderr)

    def test_forget_inline_for_one_user_keeps_another_users_approval(self):
        self.ctl("approve", "--inline", "/usr/bin/python3", "--user", "nobody")
        self.ctl("approve", "--inline", "/usr/bin/python3", "--user", "root")
        r = self.ctl("forget", "--inline", "/usr/bin/python3", "--user", "nobody")
        self.assertIn("for nobody", r.stdout)
        self.assertEqual([(r["kind"], r["covers"]) for r in self.ctl_json("rules")],
                         [("inline", "root")])
        self.assertIn("timed out", self.inline(user="nobody"))
        self.assertEqual(self.inline(), "connected")
        again = self.ctl("forget", "--inline", "/usr/bin/python3", "--user", "nobody", ok=False)
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("nothing was changed", again.stderr)

    def test_inline_with_a_program_that_is_no_interpreter_is_a_named_error(self):
        for verb in ("deny", "forget"):
            r = self.ctl(verb, "--inline", self.client, ok=False)
            self.assertNotEqual(r.returncode, 0, verb)
            self.assertIn("is not an interpreter", r.stderr, verb)
        r = self.bus.gdbus_call("DenyWithOptions", self.client, "", "{'inline': <true>}")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("org.mailguard.Error.InvalidArgument", r.stderr)
        self.assertIn("only an interpreter runs inline code", r.stderr)
        r = self.bus.gdbus_call("DenyWithOptions", PYTHON, "", "{'user': <uint32 0>}")
        self.assertIn("org.mailguard.Error.InvalidArgument", r.stderr)
        self.assertIn("a denial is for every user", r.stderr)
        r = self.bus.gdbus_call("ForgetWithOptions", PYTHON, "", "{'colour': <'red'>}")
        self.assertIn("org.mailguard.Error.InvalidArgument", r.stderr)
        self.assertEqual(self.ctl_json("rules"), [])

    def test_denying_the_interpreter_itself_says_what_it_covers(self):
        r = self.ctl("deny", "/usr/bin/python3", "--yes")
        self.assertIn("every script and inline program run by python3", r.stdout)
        b = self.write("b.py", "# b\n" + CONNECT, 0o644)
        self.assertIn("refused", self.run_as([PYTHON, b]))
        self.assertIn("refused", self.inline())

    def watch(self):
        """`guardctl --json watch` writing to a file; stopped by PID. Returns a function
        that reads the signals so far."""
        path = os.path.join(self.dir, "watch.jsonl")
        out = open(path, "w")
        err = open(path + ".err", "w")
        proc = subprocess.Popen([os.path.join(mgtest.BUILD, "tui", "guardctl"), "--json",
                                 "watch"], stdout=out, stderr=err, env=self.bus.env())

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(10)
            out.close()
            err.close()
        self.addCleanup(stop)

        def text(name):
            with open(name) as f:
                return f.read()

        def read():
            return [json.loads(line) for line in text(path).splitlines() if line.strip()]
        wait_for(lambda: "Watching" in text(path + ".err"), 10, "guardctl watch to subscribe")
        return read

    def test_denying_the_interpreter_announces_each_program_it_changes(self):
        b = self.write("b.py", "# b\n" + CONNECT, 0o644)
        self.assertIn("timed out", self.run_as([PYTHON, b]))
        b_row = self.row("script", script=b)
        self.assertEqual(b_row["state"], "pending")
        signals = self.watch()
        self.ctl("deny", "/usr/bin/python3", "--yes")

        def b_denied():
            return [s for s in signals() if s["signal"] == "ProgramChanged"
                    and s["program"]["id"] == b_row["id"] and s["program"]["state"] == "denied"]
        wait_for(b_denied, 5, "ProgramChanged for b.py, denied with its interpreter")
        self.assertEqual(self.row("script", script=b)["state"], "denied")

    def test_approving_a_perl_script_by_its_path_approves_it_with_its_interpreter(self):
        client = self.write("swaks", PERL_CLIENT)
        r = self.ctl("approve", client)
        self.assertIn(f"approved {client}, run by {PERL}", r.stdout)
        self.assertEqual(self.run_as([client]), "connected")
        rows = [p for p in self.ctl_json("programs") if client in (p["path"], p["script_path"])]
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["kind"], "script")
        self.assertEqual(rows[0]["covers"], "all")

    def test_a_script_with_a_program_that_is_no_interpreter_is_refused(self):
        script = self.write("a.py", CONNECT, 0o644)
        r = self.ctl("approve", self.client, "--script", script, ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not an interpreter", r.stderr)

    def test_a_negative_number_is_neither_an_id_nor_a_path(self):
        r = self.ctl("approve", "--", "-1", ok=False)
        self.assertNotEqual(r.returncode, 0)
        # Said which was expected, and nothing was read as the file ./-1.
        self.assertIn("is not a program id or path", r.stderr)
        self.assertIn("program ids are 1, 2, 3", r.stderr)
        self.assertEqual(self.ctl_json("rules"), [])

    def test_an_approval_for_one_user_holds_another_users_runs(self):
        r = self.ctl("approve", self.client, "--user", "root")
        self.assertIn("for root only", r.stdout)
        row = self.row("program", path=self.client)
        self.assertEqual(row["covers"], "root")
        rule = [r for r in self.ctl_json("rules") if r["path"] == self.client]
        self.assertEqual([(r["kind"], r["covers"]) for r in rule], [("program", "root")])
        self.assertTrue(mgtest.connect("127.0.0.1", 25, exe=self.client)["connected"])
        self.assertFalse(mgtest.connect("127.0.0.1", 25, timeout_ms=800, exe=self.client,
                                        user="nobody")["connected"])
        held = self.last_attempt(path=self.client, uid=65534)
        self.assertEqual(held["verdict"], "hold")
        self.assertEqual(held["reason"], "approved for root only")
        # The row still says whom the approval covers, not who connected last.
        self.assertEqual(self.row("program", path=self.client)["covers"], "root")

    def test_inline_code_is_approved_for_one_user_with_a_warning(self):
        r = self.ctl("approve", "--inline", "/usr/bin/python3", ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--user", r.stderr)
        r = self.ctl("approve", "--inline", "/usr/bin/python3", "--user", "nobody")
        name = os.path.basename(PYTHON)
        self.assertIn(f"any code typed or piped into {name} by user nobody may send mail",
                      r.stdout)
        self.assertEqual(self.inline(user="nobody"), "connected")
        self.assertIn("timed out", self.inline())
        self.assertEqual(self.last_attempt(kind="inline", uid=0)["reason"],
                         "approved for nobody only")
        self.assertIn("approved inline code", self.guardd.log())

    def test_a_quarantined_bash_c_of_root_leaves_another_users_bash_scripts_alone(self):
        # Root's bot: `bash -c` connecting to ever new servers, as a spam bot does.
        for n in range(1, 16):
            subprocess.run(["timeout", "0.3", BASH, "-c", f"exec 3<>/dev/tcp/127.1.0.{n}/25"],
                           capture_output=True, timeout=30)
            rows = [p for p in self.ctl_json("programs")
                    if p["kind"] == "inline" and p["path"] == BASH]
            if rows and rows[0]["state"] == "quarantined":
                break
        else:
            self.fail(f"root's bash -c was not quarantined: {self.ctl_json('programs')}")
        # Another user's bash script is its own program: asked about, not refused.
        script = self.write("mailer.sh", "exec 3<>/dev/tcp/127.0.0.1/25 && echo connected\n",
                            0o644)
        self.run_as(["timeout", "1", BASH, script], user="nobody")
        attempt = self.last_attempt(script_path=script)
        self.assertEqual(attempt["verdict"], "hold", attempt)
        self.assertEqual(attempt["uid"], 65534)
        self.assertEqual(self.row("script", path=BASH, script=script)["state"], "pending")


if __name__ == "__main__":
    mgtest.main()
