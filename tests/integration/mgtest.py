"""Shared fixtures for mailguard's integration tests.

Every test process runs inside a network namespace of its own (ctest starts it under
`unshare -n`); `require_private_netns()` refuses to go on in the host's namespace,
where a queue rule or a policy drop would cut the machine off. Traffic stays on
loopback. Only processes started here are stopped, by PID.
"""
import glob
import json
import os
import select
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD = os.environ.get("MG_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/release"))
GUARDD = os.path.join(BUILD, "guardd", "guardd")
CONNECT = os.path.join(BUILD, "tests", "integration", "mg-connect")
ATTACK = os.path.join(BUILD, "tests", "integration", "mg-attack")
SEED = os.path.join(BUILD, "tests", "integration", "mg-seed")
SKIP = 77  # ctest SKIP_RETURN_CODE


def require_private_netns():
    """Exit with the skip code when not root; refuse the host namespace outright."""
    if os.geteuid() != 0:
        print("SKIP: needs root to create a network namespace and install nftables rules")
        sys.exit(SKIP)
    # A namespace fresh from `unshare -n` has only `lo`; the host's has more.
    with open("/proc/self/net/dev") as f:
        interfaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    if interfaces != {"lo"}:
        print(f"refusing to run outside a fresh network namespace (interfaces: {sorted(interfaces)}): "
              "run under `unshare -n`")
        sys.exit(1)
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


def wait_for(condition, timeout, what, interval=0.02):
    """Polls `condition` until it returns a true value, and returns that value; fails
    the test, naming `what`, once `timeout` seconds pass. The one wait of the test
    library: tests wait for an event or a condition through it, never with a bare sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def dns_answers(port, name, qtype):
    """True once a DNS server on 127.0.0.1:port answers a query for `name` of type
    `qtype` (1 A, 16 TXT): a test's dnsmasq is ready."""
    query = struct.pack(">HHHHHH", 0x4d47, 0x0100, 1, 0, 0, 0)
    query += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query += struct.pack(">HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(query, ("127.0.0.1", port))
            reply, _ = s.recvfrom(4096)
        except OSError:
            return False
    return reply[:2] == query[:2]


DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"


def start_test_dns(test, port, records, ready_name, ready_qtype):
    """dnsmasq (Debian's dnsmasq-base) on 127.0.0.1:port, stopped when the test ends, once it
    answers `ready_name`. It answers only `records` (its --host-record=, --txt-record=...
    options) in .test: --local=/test/ answers NXDOMAIN for the rest of .test, and with no
    upstream (--no-resolv) nothing is forwarded anywhere."""
    proc = subprocess.Popen(
        [DNSMASQ, "--keep-in-foreground", "-C", "/dev/null", "--no-resolv", "--no-hosts",
         "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={port}",
         "--local=/test/", "--pid-file=", "--user=root", *records],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    test.addCleanup(terminate, proc)
    wait_for(lambda: dns_answers(port, ready_name, ready_qtype), 10, "dnsmasq to answer")


def terminate(proc, timeout=10):
    """Stops a process this test started: SIGTERM, then SIGKILL after `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_tempdir(test):
    d = tempfile.mkdtemp(prefix="mailguard-")
    os.chmod(d, 0o755)  # readable by `nobody`, so it can run programs copied here
    test.addCleanup(shutil.rmtree, d, True)
    return d


NO_KERNEL_IDENTITY = '\n[kernel]\nidentity = "off"\n'


class Guardd:
    """One guardd process with its own state directory and log file."""

    def __init__(self, test, state_dir, config=None):
        self.test = test
        self.state_dir = state_dir
        self.config = config
        self.proc = None
        self.log_path = state_dir.rstrip("/") + ".guardd.log"  # the state dir is guardd's to create
        test.addCleanup(self.stop)

    def args(self):
        return [GUARDD, "--state-dir", self.state_dir, "--config", self.settings()]

    def settings(self):
        """The test's settings file, with guardd's kernel attribution turned off unless the
        test's own settings have a [kernel] table: BPF programs attach only to a cgroup that
        holds nothing but a test's processes, never to this machine's cgroup2 root (where
        `identity = "auto"` would attach them). Without settings of its own a test gets
        exactly that and the defaults."""
        text = ""
        if self.config:
            with open(self.config) as f:
                text = f.read()
            if "[kernel]" in text:
                return self.config
        path = self.state_dir.rstrip("/") + ".guardd.conf"
        with open(path, "w") as f:
            f.write(text + NO_KERNEL_IDENTITY)
        return path

    def start(self, env=None):
        offset = len(self.log())  # a restart appends to the same log
        with open(self.log_path, "a") as log:
            self.proc = subprocess.Popen(self.args(), stdout=subprocess.DEVNULL, stderr=log, env=env)
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"guardd exited with {self.proc.returncode}: {self.log()}")
            return "enforcing:" in self.log()[offset:]
        wait_for(ready, 20, "guardd to enforce")
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
        return self.proc.returncode if self.proc else None

    def kill9(self):
        self.proc.kill()
        self.proc.wait()


class Listener:
    """A TCP listener on loopback that accepts and counts connections (a stand-in MTA)."""

    def __init__(self, test, host, port, banner=b""):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(512)
        self.accepted = 0
        self.banner = banner
        # Held from accept() to the count, so a count read under it is the kernel's.
        self._lock = threading.Lock()
        self.sock.setblocking(False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def _run(self):
        while True:
            try:
                select.select([self.sock], [], [])
                with self._lock:
                    conn, _ = self.sock.accept()
                    self.accepted += 1
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                return
            conn.setblocking(True)
            try:
                if self.banner:
                    conn.sendall(self.banner)
            except OSError:
                pass
            conn.close()

    def accepted_once(self, n, timeout=5.0):
        """The count once it reaches n: the thread counts an accept a moment after the
        client's connect() returned, so comparing at once races it."""
        wait_for(lambda: self.accepted >= n, timeout, f"{n} connections accepted")
        return self.accepted

    def settled(self, timeout=5.0):
        """The count once every connection the kernel has completed is counted: its
        accept queue is empty and the thread is back in accept(). A count read at once
        can miss a connection whose client has already returned from connect()."""
        def counted():
            with self._lock:
                # struct tcp_info's tcpi_unacked is a listener's accept-queue length.
                info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
                return (self.accepted,) if struct.unpack_from("I", info, 24)[0] == 0 else None

        return wait_for(counted, timeout, "the listener to count every connection")[0]

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def connect(host, port, timeout_ms=3000, exe=CONNECT, user=None, count=1):
    """Runs the stand-in client (optionally as another user); returns its JSON lines."""
    argv = [exe, host, str(port), str(timeout_ms), str(count)]
    if user:
        argv = as_user(user) + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    lines = [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise AssertionError(f"mg-connect printed nothing: {out.stderr}")
    return lines[0] if count == 1 else lines


def as_user(user):
    """The setpriv prefix that runs a command as `user` (with its primary group)."""
    import pwd
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--clear-groups"]


def start_connect(host, port, timeout_ms, exe=CONNECT):
    """Starts a client in the background; returns the Popen (stdout has the JSON line)."""
    return subprocess.Popen([exe, host, str(port), str(timeout_ms)], stdout=subprocess.PIPE, text=True)


def copy_program(src, dst):
    shutil.copyfile(src, dst)
    os.chmod(dst, 0o755)
    return dst


def distinct_copy(src, dst, tag):
    """A copy of the program `src` at `dst` with a SHA-256 of its own: `tag` appended
    after a NUL (ELF loaders ignore trailing bytes, so it runs the same). Approvals and
    denials follow a program's hash to any path, so tests that need several programs
    make each one distinct."""
    with open(src, "rb") as f:
        image = f.read()
    with open(dst, "wb") as f:
        f.write(image + b"\0mailguard test program: " + tag.encode() + b"\n")
    os.chmod(dst, 0o755)
    return dst


def seed(state_dir, action, path, script=None):
    argv = [SEED, state_dir, action, path] + ([script] if script else [])
    subprocess.run(argv, check=True, capture_output=True)


# A running guardd reads rules another process wrote on its next poll of the store, every
# 100 ms (kRulesCheckEvery in guardd/service/src/guard.cpp).
RULES_POLL_S = 0.1


def seed_running(state_dir, action, path, script=None):
    """seed() for a guardd that is running, when the test acts on the rule at once: a
    program run sooner than guardd's next poll is decided without it (a flaky hold)."""
    seed(state_dir, action, path, script)
    time.sleep(5 * RULES_POLL_S)


def db(state_dir):
    conn = sqlite3.connect(f"file:{os.path.join(state_dir, 'mailguard.db')}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def attempts(state_dir, **where):
    """Attempt rows, newest first, as dicts; `where` filters on columns."""
    with db(state_dir) as conn:
        clause = " AND ".join(f"{k} = ?" for k in where) or "1"
        rows = conn.execute(f"SELECT * FROM attempts WHERE {clause} ORDER BY id DESC",
                            tuple(where.values())).fetchall()
    return [dict(r) for r in rows]


def approved_rules(state_dir):
    """{(path, sha256)} of the approvals in guardd's rules table."""
    with db(state_dir) as conn:
        return {(r["path"], r["sha256"])
                for r in conn.execute("SELECT path, sha256 FROM rules WHERE action = 'approve'")}


def integrity_check(state_dir):
    """{database file: PRAGMA integrity_check's answer} for every database of guardd.
    Read-only: a writable connection would checkpoint the WAL on close, and a restarted
    guardd would no longer have to recover it."""
    results = {}
    for path in sorted(glob.glob(os.path.join(state_dir, "*.db"))):
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            results[path] = " ".join(r[0] for r in conn.execute("PRAGMA integrity_check"))
        finally:
            conn.close()
    if not results:
        raise AssertionError(f"no database in {state_dir}")
    return results


def nft(*args, check=True):
    return subprocess.run(["nft", *args], capture_output=True, text=True, check=check)


def main():
    require_private_netns()
    unittest.main(verbosity=2)
