"""Privilege: guardd keeps four capabilities in every thread (and gives
its children one), and every D-Bus method that changes anything refuses callers other
than root; checked against the real kernel, a real dbus-daemon with install/'s policy
and guardd's real introspection (run as root under `unshare -n`)."""
import os
import pwd
import re
import shutil
import subprocess
import unittest
import xml.etree.ElementTree as ET

import mgtest
from busfixture import BUS_NAME, IFACE, OBJECT, SOURCE, GuarddOnBusTest
from fwtest import responder
from mgtest import CONNECT, Listener, connect, copy_program, nft, wait_for

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

# linux/capability.h
CAP_NUMBERS = {"CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2,
               "CAP_FOWNER": 3, "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6,
               "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
               "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12,
               "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
               "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
               "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21,
               "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23, "CAP_SYS_RESOURCE": 24,
               "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
               "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
               "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34,
               "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37,
               "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40}
CAP_NAMES = {n: name for name, n in CAP_NUMBERS.items()}

# What guardd keeps (guardd/service/src/privileges.cpp), and what a program it runs gets.
RUNTIME = {"CAP_NET_ADMIN", "CAP_SYS_PTRACE", "CAP_DAC_READ_SEARCH", "CAP_SYS_ADMIN"}
CHILD = {"CAP_NET_ADMIN"}

NOT_AUTHORIZED = "org.mailguard.Error.NotAuthorized"
NOT_FOUND = "org.mailguard.Error.NotFound"
XML = os.path.join(SOURCE, "dbus", "org.mailguard.Guard1.xml")


def cap_names(hex_mask):
    """The capability names of a /proc status mask like 0000000000281004."""
    mask = int(hex_mask, 16)
    return {CAP_NAMES.get(bit, f"cap_{bit}") for bit in range(64) if mask >> bit & 1}


def privileges(status_text):
    """Cap* as sets of names, NoNewPrivs and Uid from a /proc/.../status text."""
    fields = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
    out = {key: cap_names(fields[key].strip())
           for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}
    out["NoNewPrivs"] = int(fields["NoNewPrivs"])
    out["Uid"] = fields["Uid"].split()
    return out


def expected(effective, ambient):
    return {"CapPrm": effective, "CapEff": effective, "CapBnd": RUNTIME, "CapInh": ambient,
            "CapAmb": ambient, "NoNewPrivs": 1}


def thread_privileges(pid):
    """{tid: privileges} of every thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                out[tid] = privileges(f.read())
        except FileNotFoundError:
            pass  # the thread just ended
    return out


def interface_members(xml_text):
    """Methods {name: ((in types), (out types))}, signals {name: (types)} and properties
    {name: (type, access)} of org.mailguard.Guard1 in introspection XML."""
    root = ET.fromstring(xml_text)
    iface = next(i for i in root.iter("interface") if i.get("name") == IFACE)
    methods = {}
    for m in iface.findall("method"):
        args = m.findall("arg")
        methods[m.get("name")] = (
            tuple(a.get("type") for a in args if a.get("direction", "in") == "in"),
            tuple(a.get("type") for a in args if a.get("direction") == "out"))
    signals = {s.get("name"): tuple(a.get("type") for a in s.findall("arg"))
               for s in iface.findall("signal")}
    properties = {p.get("name"): (p.get("type"), p.get("access"))
                  for p in iface.findall("property")}
    return methods, signals, properties


class Privilege(GuarddOnBusTest):
    # (a) The capabilities of every thread, of `ip`, and that everything still works.
    def test_guardd_keeps_four_capabilities_in_every_thread_and_everything_still_works(self):
        # An `ip` first in guardd's PATH that writes down what it was given, then runs
        # the real one: the audit's veth pair needs it (a listener on 0.0.0.0 is probed).
        real_ip = shutil.which("ip")
        self.assertIsNotNone(real_ip, "iproute2's ip")
        wrapper_dir = os.path.join(self.dir, "bin")
        os.makedirs(wrapper_dir)
        ip_log = os.path.join(self.dir, "ip-privileges.log")
        with open(os.path.join(wrapper_dir, "ip"), "w") as f:
            f.write(f"#!/bin/sh\ncat /proc/$$/status >> {ip_log}\necho '%%' >> {ip_log}\n"
                    f"exec {real_ip} \"$@\"\n")
        os.chmod(os.path.join(wrapper_dir, "ip"), 0o755)
        env = {"PATH": wrapper_dir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}
        responder(self, "0.0.0.0", 25, "open")
        self.start_guardd(env)
        self.assertIn("privileges: capabilities", self.guardd.log())
        self.assert_threads("after start-up")

        # The audit still works: its probe namespace (CAP_SYS_ADMIN) and veth pair (`ip`
        # with CAP_NET_ADMIN only) carry the probe that finds the open relay.
        audit = {a["port"]: a for a in self.ctl_json("audit", "--run")}
        self.assertEqual(audit[25]["relay"], "open", audit[25])
        with open(ip_log) as f:
            runs = [privileges(text) for text in f.read().split("%%\n") if text.strip()]
        self.assertGreaterEqual(len(runs), 5, "the audit runs ip for each step of the veth pair")
        for got in runs:
            self.assertEqual(got.pop("Uid")[0], "0", "ip runs as uid 0 ...")
            # ... and exec as uid 0 gave it nothing but the ambient CAP_NET_ADMIN.
            self.assertEqual(got, expected(CHILD, CHILD), "what `ip` was given")
        self.assert_threads("after the audit")  # its threads came and went

        # The host firewall still replaces the table.
        self.ctl("firewall", "enable", "--yes")
        self.assertTrue(self.ctl_json("firewall", "status")["enabled"])
        self.assertIn("chain host_in", nft("list", "table", "inet", "mailguard").stdout)
        self.ctl("firewall", "disable")

        # Attribution of another user's process (CAP_SYS_PTRACE) whose program lives in a
        # folder only that user may enter (CAP_DAC_READ_SEARCH), and an approval that
        # survives a restart.
        Listener(self, "127.0.0.1", 587)
        private = os.path.join(self.dir, "nobody-home")
        os.makedirs(private)
        client = copy_program(CONNECT, os.path.join(private, "mailer"))
        nobody = pwd.getpwnam("nobody")
        for path in (private, client):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        os.chmod(private, 0o700)
        r = connect("127.0.0.1", 587, timeout_ms=800, exe=client, user="nobody")
        self.assertFalse(r["connected"], "an unknown program is held")
        held = wait_for(lambda: [a for a in self.ctl_json("attempts") if a["path"] == client],
                        5, "the held attempt of nobody's program")[0]
        self.assertEqual((held["uid"], held["verdict"]), (nobody.pw_uid, "hold"), held)
        self.assertEqual(self.ctl_json("approve", client)["state"], "approved")
        self.guardd.stop()
        self.start_guardd(env)
        self.assert_threads("after a restart")
        program = self.program(client)
        self.assertEqual(program["state"], "approved", program)
        r = connect("127.0.0.1", 587, timeout_ms=5000, exe=client, user="nobody")
        self.assertTrue(r["connected"], f"the approved program after a restart: {r}")

    def assert_threads(self, when):
        threads = thread_privileges(self.guardd.proc.pid)
        self.assertGreaterEqual(len(threads), 2, "guardd runs its store writer in a thread")
        for tid, got in threads.items():
            got.pop("Uid")
            self.assertEqual(got, expected(RUNTIME, CHILD), f"thread {tid} of guardd {when}")

    # (b) Every method of the interface, classified; nobody may read but change nothing.
    # Each entry: method, "read" or "change", valid arguments (gdbus syntax), and the
    # error a root call gets from the state this test sets up (None: success).
    METHODS = [
        ("Status", "read", [], None),
        ("Programs", "read", [], None),
        ("ProgramVersions", "read", ["{client}", ""], None),
        ("ProgramVersionCounts", "read", [], None),
        ("Attempts", "read", ["0", "0", "0", "", "0", "0"], None),
        ("Alerts", "read", ["0"], None),
        ("FirewallStatus", "read", [], None),
        ("Probes", "read", ["0"], None),
        ("Audit", "read", [], None),
        ("Backscatter", "read", [], None),
        ("Household", "read", [], None),
        ("Rules", "read", [], None),
        # Documented as open to every local user: it only looks at this host's servers.
        ("RunAudit", "read", [], None),
        ("Outside", "read", [], None),
        ("Approve", "change", ["{client}", ""], None),
        ("ApproveWithOptions", "change",
         ["{client}", "", "{{'allow_env': <['PYTHONPATH']>, 'only_to': <['127.0.0.2:25']>}}"], None),
        ("Deny", "change", ["{client}", ""], None),
        ("Forget", "change", ["{client}", ""], None),
        ("DenyWithOptions", "change", ["{client}", "", "{{}}"], None),
        ("ForgetWithOptions", "change", ["{client}", "", "{{}}"], None),
        ("Release", "change", ["{client}", ""], NOT_FOUND),  # not quarantined: nothing to release
        ("Bulk", "change", ["{client}", "", "100", "4"], None),
        ("AckAlert", "change", ["1"], NOT_FOUND),  # no alert was raised
        ("FirewallAllow", "change", ["ssh", "false"], None),
        ("FirewallRemove", "change", ["ssh"], None),
        ("FirewallSetLocalSubnets", "change", ["['192.168.1.0/24']"], None),
        ("FirewallEnable", "change", ["true"], None),
        ("FirewallDisable", "change", [], None),
        # It talks to the other computers of the owner's subnets: the owner's call only.
        ("ScanHousehold", "change", [], None),
        # It sends queries to the configured blocklists (none answer in the namespace).
        ("RunOutsideCheck", "change", [], None),
    ]

    def call(self, method, args, user=None):
        return self.bus.gdbus_call(method, *[a.format(client=self.client) for a in args],
                                   user=user)

    def observable_state(self):
        """Everything a change could touch: the answers of the reading methods (as root),
        every row of guardd's database and its nftables table (without counters)."""
        state = {}
        for method, kind, args, _ in self.METHODS:
            if kind == "read" and method != "RunAudit":
                r = self.call(method, args)
                self.assertEqual(r.returncode, 0, f"{method}: {r.stderr}")
                state[method] = r.stdout
        conn = mgtest.db(self.state)
        try:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "ORDER BY name").fetchall():
                state[f"db:{table}"] = [tuple(r) for r in
                                        conn.execute(f'SELECT * FROM "{table}"').fetchall()]
        finally:
            conn.close()
        table = nft("list", "table", "inet", "mailguard").stdout
        state["nft"] = re.sub(r"packets \d+ bytes \d+", "", table)
        return state

    def test_every_changing_method_refuses_nobody_and_changes_nothing_while_reads_work(self):
        self.start_guardd()
        with open(XML) as f:
            methods, signals, properties = interface_members(f.read())
        live = subprocess.run(["gdbus", "introspect", "--address", self.bus.address, "--dest",
                               BUS_NAME, "--object-path", OBJECT, "--xml"],
                              capture_output=True, text=True, timeout=60)
        self.assertEqual(live.returncode, 0, live.stderr)
        self.assertEqual(interface_members(live.stdout), (methods, signals, properties),
                         "guardd serves exactly the interface of " + XML)
        table = {m: kind for m, kind, _, _ in self.METHODS}
        self.assertEqual(len(table), len(self.METHODS), "a method listed twice")
        self.assertEqual(set(methods) - set(table), set(),
                         "methods nobody classified as read or change: add them to METHODS")
        self.assertEqual(set(table) - set(methods), set(), "METHODS lists methods that are gone")
        for name, (_, access) in properties.items():
            self.assertEqual(access, "read", f"property {name} must not be writable")

        # A pending program for the program methods to act on.
        self.held_program(self.client)

        def settled():
            first = self.observable_state()
            return first if first == self.observable_state() else None
        before = wait_for(settled, 10, "guardd's state to settle after the attempt")
        changing = [(m, args) for m, kind, args, _ in self.METHODS if kind == "change"]
        for method, args in changing:
            r = self.call(method, args, user="nobody")
            self.assertNotEqual(r.returncode, 0, f"{method} as nobody succeeded: {r.stdout}")
            self.assertIn(NOT_AUTHORIZED, r.stderr, f"{method} as nobody")
        self.assertEqual(self.observable_state(), before, "a refused call changed something")
        self.assertEqual(self.guardd.log().count("Refused policy change by uid 65534"),
                         len(changing), "each refusal is logged with the caller")

        for method, kind, args, _ in self.METHODS:
            if kind == "read":
                r = self.call(method, args, user="nobody")
                self.assertEqual(r.returncode, 0, f"{method} as nobody: {r.stderr}")
        prop = self.bus.busctl("get-property", BUS_NAME, OBJECT, IFACE, "Enforcing", user="nobody")
        self.assertEqual(prop.stdout.strip(), "b true", prop.stderr)

        # Root: every method is carried out, or fails for a reason other than authorization.
        for method, kind, args, root_error in self.METHODS:
            r = self.call(method, args)
            if root_error is None:
                self.assertEqual(r.returncode, 0, f"{method} as root: {r.stderr}")
            else:
                self.assertIn(root_error, r.stderr, f"{method} as root")
            self.assertNotIn(NOT_AUTHORIZED, r.stderr, f"{method} as root")
        self.assertNotEqual(self.observable_state(), before, "root's calls changed nothing")
        self.assertIn("Policy change by uid 0", self.guardd.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
