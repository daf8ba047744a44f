"""A real polkitd on a test's private system bus, without changing the machine.

Everything happens in the test's own mount namespace (ctest starts the test under
`unshare -n -m --propagation private`; `/` is made rprivate again here): bind mounts put
install/'s polkit action and rule next to the machine's own, test users with passwords
into copies of /etc/passwd, /etc/shadow and /etc/group, and a tmpfs over /run/dbus
whose system_bus_socket leads to the private bus. The last is needed because
polkit-agent-helper-1, the setuid helper that checks a password with PAM and tells
polkitd the outcome, clears its environment and so always connects to the default system
bus address, unix:path=/run/dbus/system_bus_socket. All of it vanishes with the namespace.

polkitd is Debian's /usr/lib/polkit-1/polkitd (package polkitd); it switches to the
user polkitd, which the included /usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf
lets own org.freedesktop.PolicyKit1. pkttyagent (package polkitd too) is the
authentication agent: it asks for the password on its controlling terminal, here the
slave of a pty the test reads and types into. Only processes started here are stopped,
by their PIDs.
"""
import fcntl
import os
import pty
import pwd
import select
import shutil
import subprocess
import termios
import time

import mgtest
from busfixture import GUARDCTL, SOURCE, GuarddOnBus
from mgtest import terminate, wait_for

POLKITD = "/usr/lib/polkit-1/polkitd"
PKTTYAGENT = "/usr/bin/pkttyagent"
POLKIT_BUS_POLICY = "/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf"
ACTIONS = "/usr/share/polkit-1/actions"
RULES = "/usr/share/polkit-1/rules.d"
ACTION_FILE = os.path.join(SOURCE, "install", "org.mailguard.policy")
RULE_FILE = os.path.join(SOURCE, "install", "50-mailguard.rules")
DEFAULT_SOCKET = "/run/dbus/system_bus_socket"
ACTION = "org.mailguard.manage"

# Test users: (name, uid, password, supplementary groups). The ids are far above what
# Debian hands out, and the names exist only in this namespace's copies.
MEMBER = ("mgpk-member", 61001, "member-secret-1", ["mailguard"])
OUTSIDER = ("mgpk-outsider", 61002, "outsider-secret-2", [])
# An administrator as Debian's polkit sees one (/usr/share/polkit-1/rules.d/50-default.rules:
# the members of group sudo).
ADMIN = ("mgpk-admin", 61003, "admin-secret-3", ["sudo"])


def require_private_mount_namespace():
    """Bind mounts in the host's mount namespace would change the machine for everyone."""
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        raise SystemExit("refusing to bind-mount over /etc and /usr/share/polkit-1 in the "
                         "host's mount namespace: run under `unshare -m --propagation private` "
                         "(as ctest does)")


def require_polkit():
    """Fails (not skips) when polkitd is missing: install/deps.sh --test installs it."""
    missing = [p for p in (POLKITD, PKTTYAGENT) if not os.path.exists(p)]
    if missing:
        raise SystemExit(f"polkit is not installed ({', '.join(missing)} missing): "
                         "sudo ./install/deps.sh --test installs Debian's polkitd")


def password_hash(password):
    """A SHA-512 crypt(3) hash, as /etc/shadow holds it (openssl ships with Debian)."""
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


class PolkitSystem:
    """The mount-namespace set-up: users, polkit's action and rules, /run/dbus."""

    def __init__(self, test, directory, users=(MEMBER, OUTSIDER, ADMIN)):
        require_private_mount_namespace()
        self.test = test
        self.dir = directory
        self.users = {name: password for name, _, password, _ in users}
        self.mounts = []
        test.addCleanup(self.unmount)
        # unshare -m makes / private unless told --propagation unchanged; systemd makes
        # it shared on the host: nothing mounted here may propagate back.
        mount("--make-rprivate", "/")
        self._users(users)
        self._polkit_files()
        run_dbus = os.path.join(directory, "run-dbus")
        os.makedirs(run_dbus)
        self._bind(run_dbus, os.path.dirname(DEFAULT_SOCKET))

    def _bind(self, source, target):
        mount("--bind", source, target)
        self.mounts.append(target)

    def unmount(self):
        for target in reversed(self.mounts):
            subprocess.run(["umount", "-l", target], capture_output=True)
        self.mounts = []

    def _users(self, users):
        copies = {}
        for name in ("passwd", "shadow", "group"):
            with open(f"/etc/{name}") as f:
                copies[name] = f.read().splitlines()
        group_lines = copies["group"]
        # The administrators are exactly the test's: polkit lists every member of sudo as
        # an identity to authenticate as, and the prompts the tests read must not depend
        # on the machine's own users.
        for i, line in enumerate(group_lines):
            fields = line.split(":")
            if fields[0] == "sudo":
                group_lines[i] = ":".join(fields[:3] + [""])
        created = []
        for name, uid, password, groups in users:
            copies["passwd"].append(f"{name}:x:{uid}:{uid}:mailguard polkit test:/nonexistent:/bin/sh")
            copies["shadow"].append(f"{name}:{password_hash(password)}:19000:0:99999:7:::")
            group_lines.append(f"{name}:x:{uid}:")
            for g in groups:
                for i, line in enumerate(group_lines):
                    fields = line.split(":")
                    if fields[0] == g:
                        members = [m for m in fields[3].split(",") if m] + [name]
                        group_lines[i] = ":".join(fields[:3] + [",".join(members)])
                        break
                else:  # e.g. mailguard, before install/setup.sh created it
                    created.append(g)
                    group_lines.append(f"{g}:x:{61100 + len(created)}:{name}")
        for name, lines in copies.items():
            path = os.path.join(self.dir, f"etc-{name}")
            with open(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            os.chmod(path, 0o640 if name == "shadow" else 0o644)
            self._bind(path, f"/etc/{name}")

    def _polkit_files(self):
        # The machine's own actions and rules stay (50-default.rules names the admins:
        # group sudo), with ours beside them, as the package installs them.
        for source_dir, ours, name in ((ACTIONS, ACTION_FILE, "actions"),
                                       (RULES, RULE_FILE, "rules.d")):
            copy = os.path.join(self.dir, f"polkit-{name}")
            os.makedirs(copy)
            if os.path.isdir(source_dir):
                for entry in os.listdir(source_dir):
                    shutil.copy(os.path.join(source_dir, entry), copy)
            shutil.copy(ours, copy)
            os.chmod(copy, 0o755)
            self._bind(copy, source_dir)


class Polkitd:
    """polkitd serving the private bus `bus` (a busfixture.PrivateBus)."""

    def __init__(self, test, bus):
        self.bus = bus
        self.log_path = os.path.join(bus.dir, "polkitd.log")
        self.proc = None
        test.addCleanup(self.stop)

    def start(self):
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen([POLKITD], stdout=log, stderr=log, env=self.bus.env())

        def owned():
            if self.proc.poll() is not None:
                raise AssertionError(f"polkitd exited with {self.proc.returncode}: {self.log()}")
            r = self.bus.busctl("call", "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameHasOwner", "s",
                                "org.freedesktop.PolicyKit1")
            return r.returncode == 0 and r.stdout.strip() == "b true"
        wait_for(owned, 20, "polkitd to own org.freedesktop.PolicyKit1")
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc:
            terminate(self.proc)


class Subject:
    """A process of `user` that waits for a line on its stdin, then execs `argv`.

    polkit's agents are registered for a process (pid and start time), and exec keeps
    both: an agent registered for this process before the go() also serves the client
    it becomes."""

    def __init__(self, test, user, argv, env, log=None):
        """Its output is read by wait(), or goes to the file `log`."""
        script = 'read -r _ && exec "$@"'
        out = open(log, "w") if log else subprocess.PIPE
        try:
            self.proc = subprocess.Popen(
                mgtest.as_user(user) + ["sh", "-c", script, "sh", *argv],
                stdin=subprocess.PIPE, stdout=out, stderr=out, text=True, env=env)
        finally:
            if log:
                out.close()
        self.pid = self.proc.pid
        test.addCleanup(terminate, self.proc)
        # Popen returns once setpriv runs, still as root: an agent registered for the
        # process before setpriv drops to `user` is refused ("User of caller and user of
        # subject differs"), which a slow machine showed.
        uid = pwd.getpwnam(user).pw_uid
        wait_for(lambda: self.uids() in ({uid}, None), 10, f"the subject to run as {user}")

    def uids(self):
        """The set of the process's real, effective, saved and fs uids (None: it ended)."""
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        return {int(u) for u in line.split()[1:]}
        except FileNotFoundError:
            return None
        return None

    def go(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        self.proc.stdin = None  # communicate() would flush it

    def wait(self, timeout=120):
        out, err = self.proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)


class TtyAgent:
    """pkttyagent of `user` for the process `pid`, on a pty the test reads and types on."""

    def __init__(self, test, user, pid, env):
        self.master, slave = pty.openpty()
        notify_read, notify_write = os.pipe()

        def controlling_tty():
            # setsid() happened (start_new_session); stdin is the pty's slave: make it the
            # controlling terminal, which pkttyagent opens as /dev/tty to ask.
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            as_user_with_groups(user) +
            [PKTTYAGENT, "--process", str(pid), "--notify-fd", str(notify_write)],
            stdin=slave, stdout=slave, stderr=slave, pass_fds=(notify_write,), env=env,
            start_new_session=True, preexec_fn=controlling_tty)
        os.close(slave)
        os.close(notify_write)
        test.addCleanup(self.close)
        self.seen = ""
        # pkttyagent closes the notify fd once polkitd registered it: EOF on the pipe.
        try:
            ready, _, _ = select.select([notify_read], [], [], 20)
            if not ready or os.read(notify_read, 64) != b"":
                raise AssertionError(f"pkttyagent did not register: {self.read_available()}")
        finally:
            os.close(notify_read)
        if self.proc.poll() is not None:
            raise AssertionError(f"pkttyagent exited with {self.proc.returncode}: "
                                 f"{self.read_available()}")

    def read_available(self, timeout=0.0):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.seen += os.read(self.master, 4096).decode(errors="replace")
            except OSError:  # EIO: the agent closed the terminal
                pass
        return self.seen

    def expect(self, text, timeout=30):
        """What the agent wrote once `text` appears in it."""
        return self.expect_any(text, timeout=timeout)

    def expect_any(self, *texts, timeout=30):
        """What the agent wrote once one of `texts` appears in it."""
        text = " or ".join(texts)
        deadline = time.monotonic() + timeout
        while not any(t in self.seen for t in texts):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {text!r} from "
                                     f"pkttyagent; it wrote: {self.seen!r}")
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                raise AssertionError(f"pkttyagent exited ({self.proc.returncode}) before "
                                     f"{text!r}; it wrote: {self.seen!r}")
            self.read_available(min(left, 0.2))
        return self.seen

    def type_password(self, password, timeout=10):
        """Types `password` once the agent asks for it with echo off (it prints the prompt
        first, then turns echo off: typed earlier, the password would show)."""
        self.expect("Password:", timeout)
        wait_for(lambda: not termios.tcgetattr(self.master)[3] & termios.ECHO, timeout,
                 "pkttyagent to turn off echo for the password")
        os.write(self.master, password.encode() + b"\n")

    def close(self):
        terminate(self.proc)
        try:
            os.close(self.master)
        except OSError:
            pass


def as_user_with_groups(user):
    """setpriv as `user` with the groups /etc/group gives it (polkit looks groups up
    itself; this only makes the agent's process look like the user's login)."""
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups"]


class PolkitGuardd:
    """guardd on a private system bus with a real polkitd, in a prepared mount namespace.

    Attributes: system (PolkitSystem), daemon (busfixture.GuarddOnBus, guardd started),
    polkitd (Polkitd)."""

    def __init__(self, test):
        require_polkit()
        self.test = test
        directory = mgtest.make_tempdir(test)
        self.system = PolkitSystem(test, directory)
        self.daemon = GuarddOnBus(test, bus_includes=[POLKIT_BUS_POLICY])
        os.symlink(self.daemon.bus.socket, DEFAULT_SOCKET)
        self.polkitd = Polkitd(test, self.daemon.bus).start()
        self.daemon.start()

    def env(self):
        return self.daemon.env(HOME="/", LANG="C.UTF-8")

    def subject(self, user, *guardctl_args):
        return Subject(self.test, user, [GUARDCTL, *guardctl_args], self.env())

    def program_subject(self, user, argv, env, log):
        return Subject(self.test, user, argv, env, log)

    def agent(self, user, subject):
        return TtyAgent(self.test, user, subject.pid, self.env())

    def password(self, user):
        return self.system.users[user]

    def logs(self):
        return (f"guardd log:\n{self.daemon.guardd.log()[-3000:]}\n"
                f"polkitd log:\n{self.polkitd.log()[-2000:]}")

