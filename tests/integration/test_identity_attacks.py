"""Identity attacks. A program renamed to a mail client's name, a copy
under the approved path's directory names in /tmp, an approved file replaced while it
runs, a process whose executable was deleted, a process that exits right after
connect(): none may send mail as the approved client, and each attempt is recorded with
the best attribution guardd could get, or honestly as unknown.

Each test runs a real guardd in its own network namespace (`unshare -n`) on a private
bus, a listener on loopback, and copies of mg-attack (the "mail client" and the bots),
and reads the record back through guardctl --json. Run as root."""
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import ATTACK, BUILD, CONNECT, Listener, copy_program, wait_for

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

HOST = "127.0.0.1"
PORT = 587
# connect() timeouts: a held SYN is dropped, so the client gives up after HELD; an allowed
# one gets through at once, or at a SYN retry (1 s, 3 s, 7 s) when guardd is slow.
HELD_TIMEOUT_MS = 1500
ALLOWED_TIMEOUT_MS = 10000


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def variant_of(src, dst):
    """A copy of mg-attack that behaves the same but has another SHA-256 and the same size:
    one letter of its usage text changed."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    at = data.find(b"usage: mg-attack")
    assert at >= 0, "mg-attack has no usage text to change"
    data[at] = ord("U")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(dst, "wb") as f:
        f.write(data)
    os.chmod(dst, 0o755)
    return dst


def place(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    return copy_program(src, dst)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


class Waiter:
    """`mg-attack wait`: a process that runs, then connects each time it is told to."""

    def __init__(self, test, exe, timeout_ms=ALLOWED_TIMEOUT_MS):
        self.proc = subprocess.Popen([exe, "wait", HOST, str(PORT), str(timeout_ms)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        test.addCleanup(self.close)
        ready = json.loads(self.proc.stdout.readline())
        test.assertTrue(ready.get("ready"), ready)
        self.pid = ready["pid"]

    def connect(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                mgtest.terminate(self.proc)
        self.proc.stdout.close()


class IdentityAttacks(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.listener = Listener(self, HOST, PORT)
        # The owner's mail client, installed in a home directory (not root-owned, so its
        # approval holds only for its SHA-256) under the name "client".
        self.mail_client = place(ATTACK, os.path.join(self.dir, "home/ann/bin/client"))

    # ---- helpers -------------------------------------------------------------------

    def approve(self, path):
        self.ctl("approve", path)

    def run_once(self, exe, mode_args=None):
        """Runs `exe` (an mg-attack) to its end, by default in wait mode for one connection;
        returns its last JSON line."""
        argv = [exe] + (mode_args or ["wait", HOST, str(PORT), str(HELD_TIMEOUT_MS)])
        out = subprocess.run(argv, input="\n", capture_output=True, text=True, timeout=60)
        lines = json_lines(out.stdout)
        self.assertTrue(lines, f"{exe} printed nothing: {out.stderr}")
        return lines[-1]

    def attempts(self, **match):
        rows = self.ctl_json("attempts", "--limit", "1000")
        return [r for r in rows if all(r.get(k) == v for k, v in match.items())]

    def attempt_of(self, pid, what):
        return wait_for(lambda: self.attempts(pid=pid), 10, what)[0]

    def assert_client_still_allowed(self):
        # A long timeout: an allowed SYN needs none, but guardd's first verdict for a program
        # in a root-owned folder reads dpkg's checksums (the detector), seconds under ASan.
        r = self.run_once(self.mail_client, ["wait", HOST, str(PORT), str(ALLOWED_TIMEOUT_MS)])
        self.assertTrue(r["connected"], f"the approved client itself must get through: {r} "
                        f"{self.attempts()}")
        self.assertEqual(self.attempt_of(r["pid"], "the client's attempt")["verdict"], "allow")

    def assert_held(self, result, what):
        self.assertFalse(result["connected"], f"{what} got through: {result}")
        self.assertEqual(result["errno"], errno.ETIMEDOUT, f"{what}: a held SYN is dropped")

    # ---- 1. renamed --------------------------------------------------------------------

    def test_other_program_named_like_the_client_is_held_and_recorded_as_itself(self):
        self.start_guardd()
        self.approve(self.mail_client)
        # Another program (mg-connect) as "client" in another directory, started with
        # argv[0] set to the approved client's full path; comm is "client" as well.
        fake = place(CONNECT, os.path.join(self.dir, "home/ann/.local/bin/client"))
        out = subprocess.run([self.mail_client, HOST, str(PORT), str(HELD_TIMEOUT_MS)],
                             executable=fake, capture_output=True, text=True, timeout=60)
        r = json_lines(out.stdout)[0]
        self.assert_held(r, "a program renamed to the client's name")
        row = self.attempt_of(r["pid"], "the renamed program's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], fake, "recorded under its real path, not argv[0]")
        self.assertTrue(row["cmdline"].startswith(self.mail_client), row)  # argv[0] as given
        self.assertTrue(row["reason"].startswith("not approved yet"), row)
        self.assertNotIn("same content", row["reason"])
        program = self.program(fake)
        self.assertEqual(program["sha256"], sha256(fake))
        self.assertNotEqual(program["sha256"], sha256(self.mail_client))
        self.assertEqual(program["state"], "pending")
        self.assertEqual(program["id"], row["program_id"])
        self.assertEqual(self.program(self.mail_client)["state"], "approved")
        self.assert_client_still_allowed()
        wait_for(lambda: self.listener.accepted == 1, 5, "the client's connection accepted")
        self.assertEqual(self.listener.accepted, 1, "only the approved client connected")

    # ---- 2. copy under the approved path's directory names in /tmp ---------------------

    def test_copy_of_the_client_under_its_path_in_tmp_is_held_and_marked_unsafe(self):
        # The approved client in a root-owned tree (like /opt/mail/bin/client), and the
        # same bytes at /tmp/<that path> (like /tmp/opt/mail/bin/client).
        root = tempfile.mkdtemp(prefix="mg-identity-", dir=os.path.join(BUILD, "tests"))
        os.chmod(root, 0o755)
        self.addCleanup(shutil.rmtree, root, True)
        self.mail_client = place(ATTACK, os.path.join(root, "opt/mail/bin/client"))
        copy = place(self.mail_client, self.dir + self.mail_client)
        self.assertEqual(sha256(copy), sha256(self.mail_client))
        self.start_guardd()
        self.approve(self.mail_client)
        r = self.run_once(copy)
        self.assert_held(r, "a copy of the client under /tmp")
        row = self.attempt_of(r["pid"], "the copy's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], copy)
        self.assertIn(f"same content as the approved {self.mail_client}", row["reason"])
        self.assertIn("any user can write to", row["reason"])
        program = self.program(copy)
        self.assertEqual(program["state"], "pending")
        self.assertEqual(program["sha256"], sha256(self.mail_client))
        self.assert_client_still_allowed()

    # ---- 3. the approved file replaced while the client runs ---------------------------

    def test_client_running_when_its_file_is_replaced_keeps_approval_a_new_process_is_held(self):
        self.start_guardd()
        self.approve(self.mail_client)
        running = Waiter(self, self.mail_client)
        first = running.connect()
        self.assertTrue(first["connected"], first)  # described now: cached for 2 s
        # Replace the file as package managers do: write a new file, rename it over.
        new = place(CONNECT, self.mail_client + ".new")
        os.rename(new, self.mail_client)
        self.assertTrue(os.readlink(f"/proc/{running.pid}/exe").endswith(" (deleted)"))
        # The running process still maps the approved content, and its hash is taken from
        # what is mapped: DESIGN.md "identity is the executable's real path plus its
        # SHA-256" holds, so it stays allowed; the record says its file was replaced.
        second = running.connect()
        self.assertTrue(second["connected"], second)
        rows = wait_for(lambda: len(self.attempts(pid=running.pid)) >= 2 and
                        self.attempts(pid=running.pid), 10, "both attempts of the running client")
        self.assertEqual([r["verdict"] for r in rows], ["allow", "allow"])
        self.assertEqual(rows[1]["reason"], "approved")
        self.assertEqual(rows[0]["path"], self.mail_client)
        self.assertIn("replaced or deleted since it started", rows[0]["reason"])
        # A new process of the file now at that path runs other code: held, recorded with
        # the new hash, within the 2 s identity cache of the old process.
        out = subprocess.run([self.mail_client, HOST, str(PORT), str(HELD_TIMEOUT_MS)],
                             capture_output=True, text=True, timeout=60)
        fresh = json_lines(out.stdout)[0]
        self.assert_held(fresh, "a new process of the replaced file")
        row = self.attempt_of(fresh["pid"], "the replaced file's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], self.mail_client)
        self.assertTrue(row["reason"].startswith("changed since it was approved"), row)
        recorded = [p for p in self.ctl_json("programs") if p["id"] == row["program_id"]]
        self.assertEqual([p["sha256"] for p in recorded], [sha256(self.mail_client)])
        wait_for(lambda: self.listener.accepted == 2, 5, "the running client's two connections")
        self.assertEqual(self.listener.accepted, 2)

    def test_in_place_rewrite_is_refused_while_running_and_held_once_the_client_exits(self):
        approved = sha256(self.mail_client)
        self.start_guardd()
        self.approve(self.mail_client)
        running = Waiter(self, self.mail_client)
        self.assertTrue(running.connect()["connected"])
        # While a process runs it, the kernel refuses to open the file for writing.
        with self.assertRaises(OSError) as refused:
            open(self.mail_client, "r+b")
        self.assertEqual(refused.exception.errno, errno.ETXTBSY)
        running.close()
        # Once it exited: rewrite in place (same inode, same size) and set the times back
        # with utime, as `touch -d` would. Only the ctime shows the change; guardd hashed
        # this inode before and must not reuse that hash.
        before = os.stat(self.mail_client)
        tampered = variant_of(self.mail_client, os.path.join(self.dir, "tampered"))
        with open(tampered, "rb") as src, open(self.mail_client, "r+b") as dst:
            dst.write(src.read())
        os.utime(self.mail_client, ns=(before.st_atime_ns, before.st_mtime_ns))
        after = os.stat(self.mail_client)
        self.assertEqual((after.st_ino, after.st_size, after.st_mtime_ns),
                         (before.st_ino, before.st_size, before.st_mtime_ns))
        self.assertNotEqual(sha256(self.mail_client), approved)
        r = self.run_once(self.mail_client)
        self.assert_held(r, "the client rewritten in place with its mtime set back")
        row = self.attempt_of(r["pid"], "the rewritten client's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertTrue(row["reason"].startswith("changed since it was approved"), row)

    # ---- 4. deleted executable ---------------------------------------------------------

    def test_process_that_deleted_its_executable_is_held_and_recorded_as_deleted(self):
        self.start_guardd()
        self.approve(self.mail_client)
        # (a) a byte-identical copy of the client elsewhere, which deletes itself.
        copy = place(self.mail_client, os.path.join(self.dir, "home/ann/.cache/client"))
        self_delete = ["self-delete", HOST, str(PORT), str(HELD_TIMEOUT_MS)]
        r = self.run_once(copy, mode_args=self_delete)
        self.assertEqual(r.get("deleted"), copy, r)
        self.assertFalse(os.path.exists(copy))
        self.assert_held(r, "a self-deleting copy of the client")
        row = self.attempt_of(r["pid"], "the self-deleting copy's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], copy, "recorded by its path, without ' (deleted)'")
        self.assertIn("the executable was deleted", row["reason"])
        self.assertIn(f"same content as the approved {self.mail_client}", row["reason"])
        self.assertEqual(self.program(copy)["sha256"], sha256(self.mail_client))
        # (b) another program put at the approved path, which deletes itself.
        original = sha256(self.mail_client)
        os.unlink(self.mail_client)
        variant_of(ATTACK, self.mail_client)
        bot_hash = sha256(self.mail_client)
        r = self.run_once(self.mail_client, mode_args=self_delete)
        self.assert_held(r, "a self-deleting program at the approved path")
        row = self.attempt_of(r["pid"], "the self-deleting impostor's attempt")
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], self.mail_client)
        self.assertEqual(row["reason"],
                         "changed since it was approved (the executable was deleted)")
        recorded = [p for p in self.ctl_json("programs") if p["id"] == row["program_id"]]
        self.assertEqual([p["sha256"] for p in recorded], [bot_hash])
        self.assertNotEqual(bot_hash, original)
        self.assertEqual(self.listener.accepted, 0)

    # ---- 5. exit right after connect() -------------------------------------------------

    def test_exit_right_after_connect_is_recorded_as_unknown_and_never_allowed(self):
        self.start_guardd()
        self.approve(self.mail_client)
        # Deterministic: guardd is stopped while the approved client itself sends its SYN
        # and exits, so the socket is gone when guardd looks. Unattributable means held,
        # even for a program that would have been allowed.
        os.kill(self.guardd.proc.pid, signal.SIGSTOP)
        try:
            fired = self.run_once(self.mail_client, mode_args=["fire", HOST, str(PORT)])
        finally:
            os.kill(self.guardd.proc.pid, signal.SIGCONT)
        self.assertTrue(fired["fired"], fired)
        row = wait_for(lambda: self.attempts(verdict="hold"), 10, "the unattributed attempt")[0]
        self.assertIsNone(row["pid"])
        self.assertEqual(row["path"], "")
        self.assertIsNone(row["program_id"])
        self.assertEqual(row["uid"], 0, "the uid the kernel gave with the packet")
        self.assertEqual((row["dst"], row["port"]), (HOST, PORT))
        self.assertEqual(row["reason"],
                         "could not attribute to a process: the socket was already closed")
        table = self.ctl("attempts").stdout
        self.assertIn("(unknown)", table)
        self.assertEqual(self.program(self.mail_client)["attempts"], 0)

        # The race as it comes: a bot fires and exits while guardd runs. Each attempt is
        # recorded, attributed to the bot when guardd was quicker, else unknown; none allowed.
        bot = variant_of(ATTACK, os.path.join(self.dir, "bot"))
        pids = []
        for _ in range(5):
            pids.append(self.run_once(bot, mode_args=["fire", HOST, str(PORT)])["pid"])
        rows = wait_for(lambda: len(self.attempts()) >= 6 and self.attempts(), 10,
                        "the bot's five attempts")
        self.assertEqual(len(rows), 6, rows)
        self.assertEqual(len({(r["src"], r["src_port"]) for r in rows}), 6)
        for r in rows:
            self.assertIn(r["verdict"], ("hold", "reject"), r)
            if r["pid"] is None:
                self.assertEqual(r["path"], "")
                self.assertTrue(r["reason"].startswith("could not attribute"), r)
            else:
                self.assertIn(r["pid"], pids)
                self.assertEqual(r["path"], bot)
        self.assertEqual(self.listener.accepted, 0)

    def test_child_that_connects_and_exits_is_never_allowed_nor_charged_to_its_parent(self):
        self.start_guardd()
        self.approve(self.mail_client)
        # The parent is the approved client; a forked child (same code) fires and exits
        # while guardd is stopped, so nothing holds the socket any more. The parent is
        # alive and approved, but it never held that socket: not its attempt.
        os.kill(self.guardd.proc.pid, signal.SIGSTOP)
        try:
            parent = subprocess.Popen([self.mail_client, "fork-fire", HOST, str(PORT)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.addCleanup(mgtest.terminate, parent)
            lines = [json.loads(parent.stdout.readline()) for _ in range(2)]
        finally:
            os.kill(self.guardd.proc.pid, signal.SIGCONT)
        child = next(l for l in lines if "fired" in l)
        summary = next(l for l in lines if "child" in l)
        self.assertTrue(child["fired"], child)
        self.assertEqual(summary["child"], child["pid"])
        row = wait_for(lambda: self.attempts(), 10, "the child's attempt")[0]
        self.assertEqual(row["verdict"], "hold")
        self.assertIsNone(row["pid"])
        self.assertNotEqual(row["path"], self.mail_client)
        self.assertTrue(row["reason"].startswith("could not attribute"), row)
        self.assertEqual(parent.poll(), None, "the parent was alive while guardd decided")
        parent.stdin.close()
        self.assertEqual(parent.wait(10), 0)
        parent.stdout.close()

    # ---- 5b. the socket handed to another process --------------------------------------

    def test_socket_inherited_by_the_approved_client_does_not_let_its_creator_through(self):
        self.start_guardd()
        self.approve(self.mail_client)
        # A bot creates a socket, starts the approved client holding it (inherited over
        # exec), then connects: the client is a holder of the socket, but so is the bot.
        bot = variant_of(ATTACK, os.path.join(self.dir, "bot"))
        # Its stdin stays open, so the client (waiting on it) keeps running meanwhile.
        proc = subprocess.Popen([bot, "inherit", HOST, str(PORT), str(HELD_TIMEOUT_MS),
                                 self.mail_client, "wait", HOST, "26", "100"],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(mgtest.terminate, proc)
        r = json.loads(proc.stdout.readline())
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
        self.assertFalse(r["connected"], f"the bot got through behind the approved client: {r}")
        self.assertEqual(r["errno"], errno.ETIMEDOUT, r)
        rows = wait_for(lambda: self.attempts(), 10, "the inherited socket's attempt")
        self.assertEqual(len(rows), 1, "SYN retries are one attempt")
        row = rows[0]
        # Found in the client first (the newest holder), charged to the bot that holds it too.
        self.assertEqual(row["verdict"], "hold")
        self.assertEqual(row["path"], bot)
        self.assertEqual(row["pid"], r["pid"])
        self.assertTrue(row["reason"].startswith("not approved yet"), row)
        self.assertIn(f"its socket is also held by the approved {self.mail_client} "
                      f"(pid {r['holder']})", row["reason"])
        self.assertEqual(self.program(bot)["state"], "pending")
        self.assertEqual(self.program(self.mail_client)["attempts"], 0)
        self.assertEqual(self.listener.accepted, 0)
        # The client's own close-on-exec sockets still go through.
        self.assert_client_still_allowed()


if __name__ == "__main__":
    mgtest.main()
