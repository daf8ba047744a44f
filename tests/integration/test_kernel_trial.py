"""guardd in a network namespace of its own (a namespace trial) never puts its BPF connect
hooks on the cgroup2 root: hooks there would decide the mail connects of every process on
the machine, whatever namespace each is in.

Safe to fail: guardd runs inside a cgroup namespace whose root is a child cgroup of a
cgroup2 hierarchy this test mounts, holding only guardd. What guardd takes for "the cgroup2
root" is that child, so even a guardd without the check attaches nothing beyond it."""
import os
import subprocess
import unittest

import mgtest
from mgtest import Guardd
from test_kernel_identity import PrivateCgroup

mgtest.require_private_netns()

# The cgroup2 mount stays in this test's own mount namespace.
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]


class RootedGuardd(Guardd):
    """guardd as the only process of `cgroup`, in a cgroup namespace rooted there, with
    cgroup2 mounted at /sys/fs/cgroup (and the test's own mount of the whole hierarchy
    gone) in a mount namespace of its own."""

    def __init__(self, test, state_dir, config, cgroup):
        super().__init__(test, state_dir, config)
        self.cgroup = cgroup

    def args(self):
        inner = 'umount "$1" && mount -t cgroup2 none /sys/fs/cgroup && shift && exec "$@"'
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup.path,
                "unshare", "-C", "-m", "--propagation", "private",
                "sh", "-c", inner, "sh", self.cgroup.root, *super().args()]


class KernelTrial(unittest.TestCase):
    def attached(self, cgroup):
        r = subprocess.run(["bpftool", "cgroup", "show", cgroup], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout.strip()

    def test_auto_identity_in_a_namespace_trial_uses_proc_and_attaches_nothing(self):
        cgroup = PrivateCgroup(self)
        directory = mgtest.make_tempdir(self)
        config = os.path.join(directory, "guardd.conf")
        with open(config, "w") as f:
            f.write('[mail]\nports = [25]\n[kernel]\nidentity = "auto"\n')
        guardd = RootedGuardd(self, os.path.join(directory, "state"), config, cgroup).start()
        log = guardd.log()
        self.assertIn("attribution: proc", log)
        # Either guardd saw that its namespace is not PID 1's, or it could not read PID 1's
        # (a sandbox, as on some CI machines): both mean no hooks on the root.
        self.assertRegex(log, r"network namespace of its own|PID 1's is unreadable")
        self.assertEqual(self.attached(cgroup.path), "", "hooks attached in a namespace trial")
        self.assertEqual(self.attached(cgroup.root), "")


if __name__ == "__main__":
    unittest.main()
