"""A systemd-journald of the test's own, as the default (system) journal of a private mount
namespace, for tests of what guardd reads from the journal.

    CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]   # in the test module
    reason = private_journald(test)   # None when it runs; else why not (skipTest)

In a mount namespace the test process makes its own (unshare(2), no propagation): tmpfs over
/run/systemd, /run/log and /var/log/journal, so journald's sockets and files are new and
the machine's journal is never read or written; a /dev of its own (a tmpfs with bind mounts
of the devices a test needs) whose /dev/log, the socket syslog(3) writes to, is this
journald's. journald is stopped, by its PID, when the test ends; the mounts end with the
namespace."""
import ctypes
import os
import subprocess
import tempfile
import time

from mgtest import make_tempdir, terminate, wait_for

JOURNALD = "/lib/systemd/systemd-journald"
CLONE_NEWNS = 0x00020000  # <sched.h>
DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty", "ptmx")
DEV_TREES = ("pts", "shm")
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "log": "/run/systemd/journal/dev-log"}


def _mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True)


def private_journald(test):
    if os.geteuid() != 0:
        return "needs root: mounts and runs a journald of its own"
    if not os.path.exists(JOURNALD):
        return f"{JOURNALD} is not installed"
    # journald names its files by the machine id and refuses to run without one.
    if not os.path.exists("/etc/machine-id"):
        return "no /etc/machine-id"
    # A mount namespace of this process's own, whatever started it (ctest's `unshare -m`
    # already gives one), with no mount propagating back: nothing below is seen outside.
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise AssertionError("unshare(CLONE_NEWNS): " + os.strerror(ctypes.get_errno()))
    _mount("--make-rprivate", "/")
    for folder in ("/run/systemd", "/run/log", "/var/log/journal"):
        if os.path.isdir(folder):
            _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", folder)
    # Built aside, then moved over /dev in one step; the folder left behind is empty.
    dev = tempfile.mkdtemp(prefix="mgdev-")
    _mount("-t", "tmpfs", "-o", "mode=0755", "tmpfs", dev)
    for name in DEV_NODES:
        open(os.path.join(dev, name), "w").close()
        _mount("--bind", "/dev/" + name, os.path.join(dev, name))
    for name in DEV_TREES:
        os.mkdir(os.path.join(dev, name))
        _mount("--rbind", "/dev/" + name, os.path.join(dev, name))
    for name, target in DEV_LINKS.items():
        os.symlink(target, os.path.join(dev, name))
    _mount("--move", dev, "/dev")
    os.rmdir(dev)

    log = open(os.path.join(make_tempdir(test), "journald.log"), "w")
    test.addCleanup(log.close)
    journald = subprocess.Popen([JOURNALD], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    test.addCleanup(terminate, journald)
    wait_for(lambda: os.path.exists("/run/systemd/journal/dev-log") and
             os.path.exists("/run/systemd/journal/socket"), 20, "journald's sockets")
    # Ready when a record written through /dev/log can be read back.
    marker = f"mailguard-test-journal-{os.getpid()}-{time.monotonic_ns()}"
    subprocess.run(["logger", "-p", "mail.info", "-t", "mgtest", marker], check=True, timeout=10)
    wait_for(lambda: marker in subprocess.run(
        ["journalctl", "--no-pager", "-q", "-o", "cat", "-t", "mgtest"], capture_output=True,
        text=True).stdout, 20, "journald to store a record")
    return None
