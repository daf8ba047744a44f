"""Who may change policy, decided by a real polkitd: a member of group mailguard approves
a held program with their own password typed into pkttyagent (install/50-mailguard.rules:
AUTH_SELF_KEEP); a wrong password, and a user in no group (who would need an
administrator's password), are refused with org.mailguard.Error.NotAuthorized; root needs
no agent. guard-notify's Approve goes through polkit too (and, kept, asks once), and
guardctl, the dashboard and guard-notify show a refusal. Real guardd, real dbus-daemon with install/'s
policy, real polkitd with install/'s action and rule (polkit_fixture.py), run as root
under `unshare -n -m`."""
import json
import os
import re
import subprocess
import time
import unittest
import uuid

import mgtest
from mgtest import BUILD, CONNECT, connect, distinct_copy, wait_for
from polkit_fixture import ACTION, ADMIN, MEMBER, OUTSIDER, PolkitGuardd
import test_notify
from test_notify import GUARD_NOTIFY, Desktop, read, spawn

CTEST_LABEL = "dbus"
# A private mount namespace too: the fixture bind-mounts polkit's files and test users.
CTEST_UNSHARE = ["-n", "-m", "--propagation", "private"]
# Copies /etc/group and polkit's rules while test_package may be installing or purging
# them: never side by side (discover_tests.py).
CTEST_RESOURCE_LOCK = "system-files"
mgtest.require_private_netns()

NOT_AUTHORIZED = "org.mailguard.Error.NotAuthorized"
GUARD_TUI = os.path.join(BUILD, "tui", "guard-tui")
# The dashboard's refusal line: guardd's own reason.
DASHBOARD_REFUSAL = re.compile(r"^ Not authorized: \S.*$", re.M)
MEMBER_NAME = MEMBER[0]
OUTSIDER_NAME = OUTSIDER[0]
ADMIN_NAME = ADMIN[0]


def authenticating_as(agent_text):
    """The user name pkttyagent asks the password of ("Authenticating as: Full Name (user)",
    or just the user name)."""
    match = re.search(r"Authenticating as: (?:.*\((\S+)\)|(\S+))\r?\n", agent_text)
    if not match:
        raise AssertionError(f"pkttyagent named no identity: {agent_text!r}")
    return match.group(1) or match.group(2)


# test_notify's desktop runs as root; guard-notify runs here as a test user, so its session
# bus lets every user connect (dbus-daemon's session.conf lets only its own uid in).
SESSION_BUS_CONF = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <include>/usr/share/dbus-1/session.conf</include>
  <policy context="default">
    <allow user="*"/>
  </policy>
</busconfig>
"""


class SharedDesktop(Desktop):
    """test_notify's Desktop (Xvfb, dunst, dbus-monitor), its session bus open to all users."""

    def start(self):
        config = os.path.join(self.dir, "session-bus.conf")
        with open(config, "w") as f:
            f.write(SESSION_BUS_CONF)
        # Desktop.start() has no hook for its session bus's configuration: its one
        # `dbus-daemon --session` is started with this file instead, for this call only.
        real_spawn = spawn

        def spawn_shared(argv, log, **kw):
            if argv[:2] == ["dbus-daemon", "--session"]:
                argv = ["dbus-daemon", f"--config-file={config}"] + argv[2:]
            return real_spawn(argv, log, **kw)
        test_notify.spawn = spawn_shared
        try:
            super().start()
        finally:
            test_notify.spawn = real_spawn
        os.chmod(self.session_socket, 0o777)
        return self


class Polkit(unittest.TestCase):
    def setUp(self):
        self.pk = PolkitGuardd(self)
        self.daemon = self.pk.daemon
        self.dir = self.daemon.dir

    def held(self, tag):
        """A program of its own (its own hash) that guardd holds: its path."""
        exe = distinct_copy(CONNECT, os.path.join(self.dir, f"mailer-{tag}"), tag)
        r = connect("127.0.0.1", 25, timeout_ms=800, exe=exe)
        self.assertFalse(r["connected"], r)
        program = wait_for(lambda: self.daemon.program(exe), 5, f"{exe} in guardctl programs")
        self.assertEqual(program["state"], "pending", program)
        return exe

    def state(self, exe):
        return self.daemon.program(exe)["state"]

    def approve_with_agent(self, user, exe, password):
        """`guardctl --json approve exe` as `user`, with pkttyagent of `user` for it;
        types `password` when the agent asks. Returns (guardctl's result, agent text)."""
        subject = self.pk.subject(user, "--json", "approve", exe)
        agent = self.pk.agent(user, subject)
        subject.go()
        agent.type_password(password)
        r = subject.wait()
        # The agent prints the outcome after it told polkitd, so perhaps after guardctl ended.
        return r, agent.expect_any("AUTHENTICATION COMPLETE", "AUTHENTICATION FAILED")

    def test_member_of_group_mailguard_approves_with_their_own_password(self):
        exe = self.held("member")
        r, said = self.approve_with_agent(MEMBER_NAME, exe, self.pk.password(MEMBER_NAME))
        self.assertEqual(r.returncode, 0, f"{r.stderr}\n{said}\n{self.pk.logs()}")
        self.assertEqual(json.loads(r.stdout)["state"], "approved", r.stdout)
        # polkit asked the member for their own password (AUTH_SELF), for our action.
        self.assertIn(ACTION, said)
        self.assertEqual(authenticating_as(said), MEMBER_NAME, said)
        self.assertIn("AUTHENTICATION COMPLETE", said)
        self.assertEqual(self.state(exe), "approved")
        self.assertIn(f"Policy change by uid {MEMBER[1]}", self.daemon.guardd.log())
        # And the approval is real: the program's next connection goes through.
        listener = mgtest.Listener(self, "127.0.0.1", 25)
        self.assertTrue(connect("127.0.0.1", 25, timeout_ms=5000, exe=exe)["connected"])
        listener.accepted_once(1)

    def assert_refused(self, r, exe, what):
        """guardctl --json refused with NotAuthorized, said so, and changed nothing;
        returns the message."""
        self.assertEqual(r.returncode, 1, f"{what}: {r.stdout}{r.stderr}\n{self.pk.logs()}")
        error = json.loads(r.stdout)["error"]
        self.assertEqual((error["name"], error["kind"]), (NOT_AUTHORIZED, "not_authorized"), error)
        self.assertTrue(error["message"].startswith("Not authorized: "), error)
        self.assertIn(f"guardctl: {error['message']}", r.stderr)
        self.assertEqual(self.state(exe), "pending", f"{what} changed the program")
        return error["message"]

    def test_member_of_group_sudo_approves_as_administrator_with_their_own_password(self):
        exe = self.held("admin")
        r, said = self.approve_with_agent(ADMIN_NAME, exe, self.pk.password(ADMIN_NAME))
        self.assertEqual(r.returncode, 0, f"{r.stderr}\n{said}\n{self.pk.logs()}")
        self.assertEqual(json.loads(r.stdout)["state"], "approved", r.stdout)
        self.assertEqual(authenticating_as(said), ADMIN_NAME, said)
        self.assertIn(f"Policy change by uid {ADMIN[1]}", self.daemon.guardd.log())

    def test_wrong_password_is_refused_and_changes_nothing(self):
        exe = self.held("wrong")
        r, said = self.approve_with_agent(MEMBER_NAME, exe, "not-the-password")
        self.assertEqual(authenticating_as(said), MEMBER_NAME, said)
        self.assertIn("AUTHENTICATION FAILED", said)
        message = self.assert_refused(r, exe, "a wrong password")
        self.assertIn("members of group 'mailguard' use their own password", message)
        self.assertIn(f"Refused policy change by uid {MEMBER[1]}", self.daemon.guardd.log())

    def test_user_in_no_group_is_asked_for_an_administrators_password_and_refused(self):
        exe = self.held("outsider")
        # polkit does not ask the outsider for their own password: for an administrator's
        # (a member of sudo). Typing their own is refused.
        r, said = self.approve_with_agent(OUTSIDER_NAME, exe, self.pk.password(OUTSIDER_NAME))
        self.assertEqual(authenticating_as(said), ADMIN_NAME, said)
        self.assertIn("AUTHENTICATION FAILED", said)
        message = self.assert_refused(r, exe, "the outsider's own password")
        self.assertIn("try again with sudo", message)
        # Without an agent every policy command is refused at once, saying why.
        for command in (["approve", exe], ["deny", exe], ["forget", exe]):
            r = self.daemon.ctl("--json", *command, user=OUTSIDER_NAME, ok=False, timeout=30)
            message = self.assert_refused(r, exe, f"{command[0]} by the outsider without agent")
            self.assertIn("no polkit agent answered", message)
        r = self.daemon.ctl("approve", exe, user=OUTSIDER_NAME, ok=False, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stdout, "", "without --json the refusal goes to stderr only")
        self.assertRegex(r.stderr, r"^guardctl: Not authorized: authentication is required")
        self.assertEqual(self.daemon.guardd.log().count(f"Refused policy change by uid {OUTSIDER[1]}"),
                         5, self.daemon.guardd.log())

    def test_a_call_that_allows_no_question_is_refused_at_once_though_an_agent_waits(self):
        """polkit may ask only when the call carries ALLOW_INTERACTIVE_AUTHORIZATION: a
        script's busctl call without it is refused at once, and the member's agent, ready to
        ask, is never asked. guardctl sets the flag (the tests above)."""
        exe = self.held("noask")
        busctl = ["busctl", "--system", "--allow-interactive-authorization=no", "call",
                  "org.mailguard.Guard1", "/org/mailguard/Guard1", "org.mailguard.Guard1",
                  "Approve", "ss", exe, ""]
        subject = self.pk.program_subject(MEMBER_NAME, busctl, self.pk.env(), None)
        agent = self.pk.agent(MEMBER_NAME, subject)
        started = time.monotonic()
        subject.go()
        r = subject.wait(timeout=60)
        self.assertLess(time.monotonic() - started, 20, "refused at once, not after a timeout")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertIn("did not allow interactive authorization", r.stderr)
        self.assertNotIn("Password:", agent.read_available(0.5), "the agent was asked")
        self.assertEqual(self.state(exe), "pending")
        self.assertIn(f"Refused policy change by uid {MEMBER[1]}", self.daemon.guardd.log())

    def test_root_needs_no_agent_and_polkit_is_not_asked(self):
        exe = self.held("root")
        self.assertEqual(self.daemon.json("approve", exe)["state"], "approved")
        self.assertIn("Policy change by uid 0", self.daemon.guardd.log())
        self.assertIn(" (root): approve", self.daemon.guardd.log())
        self.assertNotIn("authenticated", self.pk.polkitd.log())


    def notify_agent(self, user, with_polkit_agent):
        """A desktop, and guard-notify of `user` on it (with pkttyagent for it when
        `with_polkit_agent`); returns (desktop, pkttyagent or None, log path)."""
        desktop = SharedDesktop(self, self.dir).start()
        log = os.path.join(self.dir, "guard-notify.log")
        env = desktop.env(self.pk.env())
        subject = self.pk.program_subject(user, [GUARD_NOTIFY, "--verbose"], env, log)
        agent = self.pk.agent(user, subject) if with_polkit_agent else None
        subject.go()
        wait_for(lambda: "ready" in read(log) or subject.proc.poll() is not None, 10,
                 "guard-notify to start")
        self.assertIsNone(subject.proc.poll(), f"guard-notify exited: {read(log)}")
        return desktop, agent, log

    def press_approve(self, desktop, exe):
        """Waits for guard-notify's notification of `exe`, then picks Approve in dunst's
        context menu, as a user does."""
        wait_for(lambda: [c for c in desktop.calls()
                          if c["app"] == "mailguard" and os.path.basename(exe) in c["summary"]],
                 10, "guard-notify's notification of the held program")
        wait_for(lambda: desktop.displayed() >= 1, 10, "dunst to show it")
        r = desktop.dunstctl("action", "0")
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_guard_notify_approve_by_a_member_goes_through_polkit(self):
        desktop, agent, log = self.notify_agent(MEMBER_NAME, with_polkit_agent=True)
        exe = self.held("notify-member")
        self.press_approve(desktop, exe)
        agent.type_password(self.pk.password(MEMBER_NAME))
        wait_for(lambda: self.state(exe) == "approved", 30,
                 f"the member's Approve to approve it ({read(log)}\n{self.pk.logs()})")
        self.assertEqual(authenticating_as(agent.expect("AUTHENTICATION COMPLETE")), MEMBER_NAME)
        wait_for(lambda: [c for c in desktop.calls() if c["summary"].startswith("Approved: ")],
                 10, "the notification to say it was approved")
        self.assertIn(f"Policy change by uid {MEMBER[1]}", self.daemon.guardd.log())
        # AUTH_SELF_KEEP: polkit keeps the authorization for this process a while, so the
        # next Approve from the same guard-notify asks no password again.
        # (The "Approved" notification goes first, so that the next click is on the new one.)
        self.assertEqual(desktop.dunstctl("close-all").returncode, 0)
        wait_for(lambda: desktop.displayed() == 0, 10, "dunst to close the notifications")
        exe2 = self.held("notify-member-again")
        asked = agent.read_available().count("Password:")
        self.press_approve(desktop, exe2)
        wait_for(lambda: self.state(exe2) == "approved", 30,
                 f"the second Approve ({read(log)}\n{self.pk.logs()}\nagent: {agent.read_available(1)!r})")
        self.assertEqual(agent.read_available(0.2).count("Password:"), asked,
                         "polkit asked again within the kept authorization")

    def test_guard_notify_shows_the_refusal_of_an_outsiders_approve(self):
        desktop, _, log = self.notify_agent(OUTSIDER_NAME, with_polkit_agent=False)
        exe = self.held("notify-outsider")
        self.press_approve(desktop, exe)
        refused = wait_for(lambda: [c for c in desktop.calls()
                                    if c["summary"].startswith("Not authorized: ")], 30,
                           f"a notification of the refusal ({read(log)})")[-1]
        self.assertIn(os.path.basename(exe), refused["summary"])
        self.assertIn("is still held", refused["summary"])
        self.assertIn("Not authorized to approve it: authentication is required but no polkit "
                      "agent answered", refused["body"])
        program_id = self.daemon.program(exe)["id"]
        self.assertIn(f"in a terminal: sudo guardctl approve {program_id}", refused["body"])
        self.assertEqual(refused["actions"][:4], ["approve", "Approve", "deny", "Deny"],
                         "the user may try again")
        self.assertEqual(self.state(exe), "pending")
        print("screenshot:", desktop.screenshot("polkit-refused"))


    def test_dashboard_shows_the_refusal_of_an_outsiders_approve(self):
        exe = self.held("tui-outsider")
        session = f"mgpk-{os.getpid()}-{uuid.uuid4().hex[:8]}"

        def tmux(*args):
            return subprocess.run(["tmux", "-L", session, *args], capture_output=True, text=True,
                                  timeout=20)
        self.addCleanup(tmux, "kill-server")
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.daemon.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
        argv = mgtest.as_user(OUTSIDER_NAME) + [GUARD_TUI]
        r = tmux("new-session", "-d", "-s", "tui", "-x", "160", "-y", "40", "--", "env", "-i",
                 *[f"{k}={v}" for k, v in env.items()], *argv)
        self.assertEqual(r.returncode, 0, r.stderr)
        screen = lambda: tmux("capture-pane", "-p", "-t", "tui").stdout  # noqa: E731
        name = os.path.basename(exe)
        wait_for(lambda: re.search(rf"PENDING +\S*/{name}", screen()), 20,
                 "the held program in the dashboard")
        tmux("send-keys", "-t", "tui", "a")
        wait_for(lambda: "[y/n]" in screen(), 10, "the dashboard to ask")
        tmux("send-keys", "-t", "tui", "y")
        try:
            line = wait_for(lambda: DASHBOARD_REFUSAL.search(screen()), 30, "the refusal line")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- screen ---\n{screen()}--- end ---") from None
        print("refusal line:", line.group(0).strip())
        self.assertIn("connected", screen(), "the dashboard stays connected after a refusal")
        self.assertEqual(self.state(exe), "pending")
        self.assertIn(f"Refused policy change by uid {OUTSIDER[1]}", self.daemon.guardd.log())


if __name__ == "__main__":
    mgtest.main()
