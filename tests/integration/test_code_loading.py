"""Code loaded into an approved script through its environment or its interpreter's
options: the approved script run plainly connects; the same script run with PYTHONPATH (a
sitecustomize.py), PYTHONINSPECT, PERL5OPT, PERL5LIB, perl -M, BASH_ENV or LD_PRELOAD of
a user's copy of a library is held, and `guardctl attempts` says why; approved with
--allow-env naming it, it connects again.

Real interpreters (python3, perl, bash from Debian's base system), a real guardd in its
own network namespace on a private bus. Run as root."""
import glob
import json
import os
import shutil
import subprocess

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import Listener, wait_for

CTEST_LABEL = "dbus"
mgtest.require_private_netns()

HOST = "127.0.0.1"
PORT = 587
HELD_TIMEOUT = 1.5   # a held SYN is dropped: the client gives up after this
ALLOWED_TIMEOUT = 10  # an allowed one gets through at once or at a SYN retry

PYTHON_CLIENT = """import json, os, socket, sys
s = socket.socket()
s.settimeout(float(sys.argv[1]))
try:
    s.connect(("127.0.0.1", 587))
    ok = True
except OSError:
    ok = False
print(json.dumps({"pid": os.getpid(), "connected": ok}), flush=True)
"""

PERL_CLIENT = """use IO::Socket::INET;
my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => 587, Proto => 'tcp',
                              Timeout => $ARGV[0]);
print '{"pid": ' . $$ . ', "connected": ' . ($s ? 'true' : 'false') . "}\\n";
"""

# bash's /dev/tcp has no timeout of its own: the script reports its pid first and
# `timeout` ends a held attempt.
BASH_CLIENT = """echo "{\\"pid\\": $$}"
exec 3<>/dev/tcp/127.0.0.1/587 && echo connected
"""


class CodeLoading(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.listener = Listener(self, HOST, PORT)
        self.home = os.path.join(self.dir, "home/ann")
        os.makedirs(self.home)
        self.py = self.write("news.py", PYTHON_CLIENT)
        self.pl = self.write("news.pl", PERL_CLIENT)
        self.sh = self.write("news.sh", BASH_CLIENT)
        self.python = os.path.realpath("/usr/bin/python3")
        self.perl = os.path.realpath("/usr/bin/perl")
        self.bash = os.path.realpath("/bin/bash")
        self.start_guardd()

    def write(self, name, text):
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def clean_env(self, **extra):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home}
        env.update(extra)
        return env

    def run_script(self, argv, timeout, env=None, stdin=""):
        out = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                             env=env or self.clean_env())
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        self.assertTrue(lines, f"{argv} printed nothing: {out.stdout!r} {out.stderr!r}")
        r = json.loads(lines[-1])
        if "connected" not in r:  # the bash client
            r["connected"] = "connected" in out.stdout
        return r

    def python_run(self, timeout, env=None, options=(), stdin=""):
        return self.run_script([self.python, *options, self.py, str(timeout)], timeout, env,
                               stdin)

    def perl_run(self, timeout, env=None, options=()):
        return self.run_script([self.perl, *options, self.pl, str(timeout)], timeout, env)

    def bash_run(self, timeout, env=None):
        return self.run_script(["timeout", str(timeout), self.bash, self.sh], timeout, env)

    def attempt_of(self, pid, what):
        def found():
            rows = self.ctl_json("attempts", "--limit", "1000")
            return [r for r in rows if r.get("pid") == pid]
        return wait_for(found, 10, what)[0]

    def assert_allowed(self, r, what):
        a = self.attempt_of(r["pid"], what)
        self.assertTrue(r["connected"], f"{what} must connect: {r} {a}")
        self.assertEqual(a["verdict"], "allow", a)

    def assert_held_for(self, r, what, *names):
        self.assertFalse(r["connected"], f"{what} got through: {r}")
        a = self.attempt_of(r["pid"], what)
        self.assertEqual(a["verdict"], "hold", a)
        self.assertTrue(a["reason"].startswith("approval void: "), a)
        for name in names:
            self.assertIn(name, a["reason"], a)
        self.assertIn("--allow-env", a["reason"], a)

    def test_python_script_with_path_inspect_or_preload_is_held_and_allow_env_lets_it(self):
        self.ctl("approve", self.python, "--script", self.py)
        self.assert_allowed(self.python_run(ALLOWED_TIMEOUT), "the approved script")

        lib = os.path.join(self.home, "lib")
        os.makedirs(lib)
        with open(os.path.join(lib, "sitecustomize.py"), "w") as f:
            f.write("BOT = True\n")
        r = self.python_run(HELD_TIMEOUT, self.clean_env(PYTHONPATH=lib))
        self.assert_held_for(r, "PYTHONPATH with a sitecustomize.py", "PYTHONPATH set")

        r = self.python_run(HELD_TIMEOUT, self.clean_env(PYTHONINSPECT="1"),
                            stdin="print('bot code')\n")
        self.assert_held_for(r, "PYTHONINSPECT=1 with code on stdin", "PYTHONINSPECT set")

        r = self.python_run(HELD_TIMEOUT, options=["-i"])
        self.assert_held_for(r, "python -i", "option -i")

        # A user's copy of a library (any will do: what matters is that it is preloaded).
        libs = sorted(glob.glob("/usr/lib/*/libz.so.1") + glob.glob("/lib/*/libz.so.1"))
        self.assertTrue(libs, "no libz.so.1 to copy")
        preload = os.path.join(self.home, "libbot.so")
        shutil.copyfile(libs[0], preload)
        r = self.python_run(HELD_TIMEOUT, self.clean_env(LD_PRELOAD=preload))
        self.assert_held_for(r, "LD_PRELOAD of a user's library", "LD_PRELOAD set")

        # An empty variable loads nothing.
        self.assert_allowed(self.python_run(ALLOWED_TIMEOUT, self.clean_env(PYTHONPATH="")),
                            "an empty PYTHONPATH")

        # Approved with PYTHONPATH allowed: that passes, the others are still held.
        out = self.ctl("approve", self.python, "--script", self.py, "--allow-env", "PYTHONPATH")
        self.assertIn("allowed to run with: PYTHONPATH", out.stdout)
        self.assert_allowed(self.python_run(ALLOWED_TIMEOUT, self.clean_env(PYTHONPATH=lib)),
                            "PYTHONPATH once allowed")
        r = self.python_run(HELD_TIMEOUT, self.clean_env(PYTHONPATH=lib, PYTHONINSPECT="1"))
        self.assert_held_for(r, "PYTHONINSPECT beside an allowed PYTHONPATH", "PYTHONINSPECT")

    def test_perl_script_with_perl5opt_perl5lib_or_minus_m_is_held_and_allow_env_lets_it(self):
        self.ctl("approve", self.perl, "--script", self.pl)
        self.assert_allowed(self.perl_run(ALLOWED_TIMEOUT), "the approved perl script")

        r = self.perl_run(HELD_TIMEOUT, self.clean_env(PERL5OPT="-MIO::Handle"))
        self.assert_held_for(r, "PERL5OPT=-M...", "PERL5OPT set")
        r = self.perl_run(HELD_TIMEOUT, self.clean_env(PERL5LIB=self.home))
        self.assert_held_for(r, "PERL5LIB", "PERL5LIB set")
        r = self.perl_run(HELD_TIMEOUT, options=["-MIO::Handle"])
        self.assert_held_for(r, "perl -M", "option -M")

        self.ctl("approve", self.perl, "--script", self.pl, "--allow-env=-M,PERL5LIB")
        self.assert_allowed(self.perl_run(ALLOWED_TIMEOUT, options=["-MIO::Handle"]),
                            "perl -M once allowed")
        self.assert_allowed(self.perl_run(ALLOWED_TIMEOUT, self.clean_env(PERL5LIB=self.home)),
                            "PERL5LIB once allowed")
        r = self.perl_run(HELD_TIMEOUT, self.clean_env(PERL5OPT="-MIO::Handle"))
        self.assert_held_for(r, "PERL5OPT, not allowed", "PERL5OPT set")

    def test_bash_script_with_bash_env_is_held_and_allow_env_lets_it(self):
        self.ctl("approve", self.bash, "--script", self.sh)
        self.assert_allowed(self.bash_run(ALLOWED_TIMEOUT), "the approved bash script")
        rc = self.write("rc", "true\n")
        r = self.bash_run(HELD_TIMEOUT, self.clean_env(BASH_ENV=rc))
        self.assert_held_for(r, "BASH_ENV", "BASH_ENV set")
        self.ctl("approve", self.bash, "--script", self.sh, "--allow-env", "BASH_ENV")
        self.assert_allowed(self.bash_run(ALLOWED_TIMEOUT, self.clean_env(BASH_ENV=rc)),
                            "BASH_ENV once allowed")

    def test_allow_env_refuses_a_name_it_does_not_know(self):
        r = self.ctl("approve", self.python, "--script", self.py, "--allow-env", "PATH", ok=False)
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("not a code-loading variable or option", r.stderr)
        r = self.bus.gdbus_call("ApproveWithOptions", self.python, self.py,
                                "{'allow_env': <['NOPE']>}")
        self.assertIn("org.mailguard.Error.InvalidArgument", r.stderr)
        r = self.bus.gdbus_call("ApproveWithOptions", self.python, self.py,
                                "{'only_to': <['x']>}")
        self.assertIn("org.mailguard.Error.InvalidArgument", r.stderr)


if __name__ == "__main__":
    mgtest.main()
