"""An interpreter's command line as the kernel saw it at exec: guardd's exec hook records
a digest of each new program's argv area, and a script approval does not apply to an
interpreter whose command line no longer is what it was given. Real python3, real BPF
hooks on a private cgroup2 hierarchy (see test_kernel_identity), fresh network and mount
namespaces.

The forgery: `python3 -c CODE` that writes "python3\\0<approved script>\\0" over its own
argv through /proc/self/mem, so /proc/PID/cmdline names the approved script."""
import os
import subprocess

import mgtest
import test_kernel_identity as kernel_identity
from busfixture import GuarddOnBusTest
from mgtest import Listener, attempts, seed, wait_for

mgtest.require_private_netns()

CTEST_LABEL = "dbus"
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]

CONNECT_CODE = (
    "import socket\n"
    "s = socket.socket(); s.settimeout(1.5)\n"
    "try:\n    s.connect(('127.0.0.1', 25)); print('connected')\n"
    "except OSError as e:\n    print('failed', e)\n")

# /proc/self/stat fields 48 and 49 are arg_start and arg_end: the argv area that
# /proc/PID/cmdline reads. Written over with the approved script's command line, padded
# with NULs to the area's end (so the kernel reads the area as it is, not setproctitle
# style), then the same connect as the script.
FORGE_CODE = (
    "import sys\n"
    "target = sys.argv[1].encode()\n"
    "fields = open('/proc/self/stat').read().rsplit(')', 1)[1].split()\n"
    "start, end = int(fields[45]), int(fields[46])\n"
    "new = b'python3\\0' + target + b'\\0'\n"
    "new += b'\\0' * (end - start - len(new))\n"
    "with open('/proc/self/mem', 'r+b', buffering=0) as mem:\n"
    "    mem.seek(start); mem.write(new)\n"
    "print('cmdline', open('/proc/self/cmdline', 'rb').read().split(b'\\0')[:2])\n"
) + CONNECT_CODE


class KernelScriptIdentity(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.cgroup = kernel_identity.PrivateCgroup(self)
        conf = os.path.join(self.dir, "guardd.conf")
        with open(conf, "w") as f:
            f.write(f'[kernel]\nidentity = "auto"\ncgroup = "{self.cgroup.path}"\n'
                    f"mark_bit = {kernel_identity.MARK_BIT:#x}\n")
        self.guardd.config = conf
        self.python = os.path.realpath("/usr/bin/python3")
        # An owner's script sits in a root-owned folder (one under /tmp would never match
        # an approval): a tmpfs on /srv in this test's own mount namespace.
        srv = "/srv"
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "mg-srv", srv], check=True)
        self.addCleanup(subprocess.run, ["umount", srv], check=False)
        self.script = os.path.join(srv, "news.py")
        with open(self.script, "w") as f:
            f.write(CONNECT_CODE)
        seed(self.state, "approve", self.python, self.script)
        Listener(self, "127.0.0.1", 25)
        self.start_guardd()
        status = self.ctl_json("status")
        if status.get("attribution") != "kernel":
            self.fail(f"guardd did not attach its BPF hooks: {self.guardd.log()[-2000:]}")

    def python3(self, *args):
        # Debian's python3 by its path (a python3 found on PATH may be a user's shim),
        # inside the test cgroup.
        r = self.cgroup.run([self.python, *args], cwd=self.dir)
        return r.stdout.strip(), r.stderr

    def test_the_approved_script_connects(self):
        out, err = self.python3(self.script)
        self.assertEqual(out, "connected", err)
        row = wait_for(lambda: attempts(self.state, script_path=self.script), 5,
                       "the script's attempt")[0]
        self.assertEqual(row["verdict"], "allow", row["reason"])

    def test_python_c_that_rewrites_its_argv_to_the_approved_script_is_held(self):
        out, err = self.python3("-c", FORGE_CODE, self.script)
        lines = out.splitlines()
        # The forgery works on /proc: its command line now names the approved script.
        self.assertTrue(lines and lines[0].startswith("cmdline"), (out, err))
        self.assertIn(repr(self.script.encode()), lines[0])
        self.assertTrue(lines[-1].startswith("failed"), f"the forgery got through: {out}")
        row = wait_for(lambda: [a for a in attempts(self.state, script_path=self.script)
                                if a["verdict"] == "hold"], 5, "the held attempt")[0]
        self.assertIn("its command line changed after it started", row["reason"])
        self.assertEqual(row["path"], self.python)
        # The approved script itself still connects afterwards.
        out, err = self.python3(self.script)
        self.assertEqual(out, "connected", err)


if __name__ == "__main__":
    mgtest.main()
