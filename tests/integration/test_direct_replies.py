"""A program's own plaintext SMTP session, read from the server's side by guardd's kernel
reply tap: an approved script talks to a python SMTP sink on 127.0.0.25:25 that answers
"550 5.1.1 user unknown" to some recipients and a Spamhaus rejection to one; guardd logs
the RCPT-stage counts once per session and counts the session in `guardctl status`. A
session that says STARTTLS stops being read: nothing after the go-ahead is counted. The
BPF programs attach to a cgroup this test mounts, holding only the scripts it runs."""
import os
import re
import signal
import subprocess
import sys

import mgtest
from busfixture import GuarddOnBusTest
from mgtest import seed, terminate, wait_for
from test_kernel_identity import MARK_BIT, PrivateCgroup

mgtest.require_private_netns()

CTEST_LABEL = "dbus"
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]

SINK_ADDRESS = "127.0.0.25"

# Answers each session in order; a recipient containing "unknown" gets 550 5.1.1, one
# containing "listed" a Spamhaus rejection, others 250. STARTTLS is answered 220 and the
# session goes on in plaintext (a real server would start TLS).
SINK = r'''
import os, socketserver, sys, time
class H(socketserver.StreamRequestHandler):
    def handle(self):
        w = lambda s: (self.wfile.write(s.encode()), self.wfile.flush())
        # With a second argument: the greeting waits until that file exists.
        while len(sys.argv) > 2 and not os.path.exists(sys.argv[2]):
            time.sleep(0.01)
        w("220 sink.test ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            c = line.decode(errors="replace").strip()
            u = c.upper()
            if u.startswith("EHLO"):
                w("250-sink.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
            elif u.startswith("RCPT"):
                if "unknown" in c:
                    w("550 5.1.1 <%s>: Recipient address rejected: User unknown\r\n" % c[8:].strip("<>"))
                elif "listed" in c:
                    w("554 5.7.1 Service unavailable; blocked using zen.spamhaus.org\r\n")
                else:
                    w("250 2.1.5 Ok\r\n")
            elif u == "STARTTLS":
                w("220 2.0.0 Ready to start TLS\r\n")
            elif u == "QUIT":
                w("221 2.0.0 Bye\r\n")
                return
            else:
                w("250 2.0.0 Ok\r\n")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S((sys.argv[1], 25), H).serve_forever()
'''

# An SMTP client: each command waits for its reply; then it waits for the server's close.
CLIENT = r'''
import socket, sys
s = socket.create_connection((sys.argv[1], 25), timeout=10)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline()
        assert line, "closed early"
        if line[3:4] == b" ":
            return line
reply()
for c in sys.argv[2:]:
    s.sendall(c.encode() + b"\r\n")
    reply()
while s.recv(64):
    pass
print("done")
'''

HARVEST = ["EHLO bot", "MAIL FROM:<a@bot.test>", "RCPT TO:<unknown1@victim.test>",
           "RCPT TO:<ok@victim.test>", "RCPT TO:<unknown2@victim.test>",
           "RCPT TO:<listed@victim.test>", "QUIT"]
STARTTLS = ["EHLO careful", "STARTTLS", "MAIL FROM:<a@careful.test>",
            "RCPT TO:<unknown@victim.test>", "QUIT"]


class DirectReplies(GuarddOnBusTest):
    def setUp(self):
        super().setUp()
        self.cgroup = PrivateCgroup(self)
        self.smtp_client = os.path.join(self.dir, "client.py")
        with open(self.smtp_client, "w") as f:
            f.write(CLIENT)
        os.chmod(self.smtp_client, 0o755)
        # Started and checked before guardd: the test's own connects are not tapped, but
        # once guardd runs they would be held as an unknown program's.
        self.sink = subprocess.Popen([sys.executable, "-c", SINK, SINK_ADDRESS],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(terminate, self.sink)
        wait_for(self.sink_greets, 10, "the SMTP sink's greeting")
        seed(self.state, "approve", "/usr/bin/python3", self.smtp_client)
        conf = os.path.join(self.dir, "guardd.conf")
        with open(conf, "w") as f:
            f.write(f'[kernel]\nidentity = "auto"\ncgroup = "{self.cgroup.path}"\n'
                    f"mark_bit = {MARK_BIT:#x}\n")
        self.guardd.config = conf

    def sink_greets(self):
        import socket
        try:
            with socket.create_connection((SINK_ADDRESS, 25), timeout=1) as s:
                return s.recv(64).startswith(b"220")
        except OSError:
            return False

    def start(self):
        self.start_guardd()
        status = self.ctl_json("status")
        if status.get("attribution") != "kernel":
            self.fail(f"guardd did not attach its BPF hooks: {self.guardd.log()[-2000:]}")
        self.assertEqual(status["dns"]["source"], "kernel", self.guardd.log()[-2000:])
        self.assertEqual(status["replies"]["sessions"], 0, status)

    def session(self, commands):
        r = self.cgroup.run(["/usr/bin/python3", self.smtp_client, SINK_ADDRESS, *commands])
        self.assertEqual(r.returncode, 0, r.stderr + self.guardd.log()[-2000:])
        self.assertIn("done", r.stdout)

    def replies_line(self, n, server=SINK_ADDRESS):
        pattern = re.compile(rf"replies from {re.escape(server)} to pid \d+ \((.*)\): (.*)")
        return wait_for(lambda: (lambda m: m if len(m) >= n else None)(
            pattern.findall(self.guardd.log())), 10, f"{n} replies lines in guardd's log")

    def test_rcpt_replies_are_counted_once_per_session_and_starttls_stops_the_reading(self):
        self.start()
        self.session(HARVEST)
        lines = self.replies_line(1)
        program, counts = lines[0]
        self.assertIn("client.py", program)
        self.assertEqual(counts, "1 accepted, 2 user unknown, 1 blocklisted, 0 rejected, "
                                 "0 deferred")

        self.session(STARTTLS)
        lines = self.replies_line(2)
        self.assertEqual(lines[1][1], "0 accepted, 0 user unknown, 0 blocklisted, 0 rejected, "
                                      "0 deferred, then STARTTLS", self.guardd.log()[-3000:])
        status = self.ctl_json("status")
        self.assertEqual(status["replies"]["sessions"], 2, status)
        self.assertEqual(status["replies"]["lost"], 0, status)
        self.assertEqual(len(self.replies_line(2)), 2, "one line per session")

    def test_a_session_read_after_its_client_exited_is_charged_to_the_client(self):
        """guardd reads the copied replies when it next wakes, which may be after the
        session's client has gone (a bot's session is over in milliseconds): the replies are
        charged to the process that connected, as attributed when its connect was allowed,
        not lost because /proc no longer has it. guardd is stopped (SIGSTOP, our own
        process) from the connect's verdict until the client has exited."""
        go = os.path.join(self.dir, "greet")
        late = "127.0.0.26"
        sink = subprocess.Popen([sys.executable, "-c", SINK, late, go],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(terminate, sink)
        self.start()
        client = self.cgroup.popen(["/usr/bin/python3", self.smtp_client, late, *HARVEST])
        self.addCleanup(terminate, client)
        wait_for(lambda: any(a["dst"] == late and a["verdict"] == "allow"
                             for a in self.ctl_json("attempts")), 10,
                 "the client's connect to be allowed")
        guardd = self.guardd.proc.pid
        os.kill(guardd, signal.SIGSTOP)
        try:
            open(go, "w").close()
            out, _ = client.communicate(timeout=20)
            self.assertIn("done", out)
        finally:
            os.kill(guardd, signal.SIGCONT)
        lines = self.replies_line(1, late)
        program, counts = lines[0]
        self.assertIn("client.py", program, self.guardd.log()[-2000:])
        self.assertEqual(counts, "1 accepted, 2 user unknown, 1 blocklisted, 0 rejected, "
                                 "0 deferred")


if __name__ == "__main__":
    mgtest.main()
