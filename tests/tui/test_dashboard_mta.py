"""Guard-tui with mail held by the local MTA: the program's details say how many messages
exim holds for it, the Attempts screen shows them as handed to the MTA with their queue ids,
and the deny confirmation names the count before anything is deleted; guardctl deny on a
terminal asks the same question.

The setting is tests/integration/test_mta_ui.py's (a real exim under a private
configuration, guard-mta-agent, a sink in a second network namespace, guardd on a private
bus); the dashboard runs in tmux as in test_dashboard.py. Run as root; needs
exim4-daemon-light (install/deps.sh --test) and tmux."""
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mgtest  # noqa: E402
import test_mta_ui  # noqa: E402
from mgtest import wait_for  # noqa: E402
from busfixture import GUARDCTL  # noqa: E402
from test_dashboard import GUARD_TUI, Tmux  # noqa: E402

mgtest.require_private_netns()

CTEST_LABEL = "tui"
MESSAGES = test_mta_ui.MESSAGES
PYTHON = test_mta_ui.PYTHON


class DashboardMta(unittest.TestCase):
    # The fixture of test_mta_ui.MtaUi, borrowed (subclassing would run its tests here).
    SINK_ARGS = test_mta_ui.MtaUi.SINK_ARGS
    write_file = test_mta_ui.MtaUi.write_file
    write_exim_conf = test_mta_ui.MtaUi.write_exim_conf
    start_sink = test_mta_ui.MtaUi.start_sink
    bot = test_mta_ui.MtaUi.bot
    delivered = test_mta_ui.MtaUi.delivered
    queue = test_mta_ui.MtaUi.queue
    frozen = test_mta_ui.MtaUi.frozen
    mta_attempts = test_mta_ui.MtaUi.mta_attempts
    ctl = test_mta_ui.MtaUi.ctl
    ctl_json = test_mta_ui.MtaUi.ctl_json
    held_script = test_mta_ui.MtaUi.held_script
    program_of = test_mta_ui.MtaUi.program_of
    tearDown = test_mta_ui.MtaUi.tearDown

    def setUp(self):
        if not os.path.exists(GUARD_TUI):
            self.fail(f"{GUARD_TUI} is not built")
        test_mta_ui.MtaUi.setUp(self)

    def tui(self, cols=120, rows=40):
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TZ": "UTC"}
        return Tmux(self, self.dir, cols, rows).start([GUARD_TUI], env)

    def test_deny_confirmation_names_the_held_messages_it_will_delete(self):
        script = self.held_script("spam.py")
        name = os.path.basename(script)
        tui = self.tui()
        tui.wait_for(lambda s: re.search(rf"PENDING +.*{re.escape(name)}", s),
                     "the script's program as PENDING")
        # Only this program is pending; exim (approved) sorts below it: row 0.
        tui.send("Enter")
        tui.wait_for_text(f"held mail  {MESSAGES} held by the local MTA")
        tui.send("Enter")

        tui.send("2")
        queue_id = self.mta_attempts(script)[0]["queue_id"]
        tui.wait_for_text("mta: d", "HOLD")
        tui.send("Enter")  # the newest attempt's details
        tui.wait_for(lambda s: re.search(r"channel +mail handed to the local MTA \(exim\) +queue id "
                                         r"[0-9A-Za-z-]+", s), "the attempt's channel and queue id")
        self.assertTrue(queue_id, "the store has the queue id too")
        tui.send("Enter")

        tui.send("1")
        tui.send("d")
        # The question keeps the count and [y/n]; the program's name may be shortened.
        tui.wait_for_text(f"Deny and DELETE its {MESSAGES} held messages?", "[y/n]")
        tui.send("n")
        tui.wait_for_text("Cancelled: nothing was changed")
        self.assertEqual(self.frozen(), MESSAGES, "answering no deletes nothing")
        self.assertEqual(self.program_of(script)["state"], "pending")

        tui.send("d")
        tui.wait_for_text(f"Deny and DELETE its {MESSAGES} held messages?")
        tui.send("y")
        tui.wait_for(lambda s: re.search(rf"Denied: \S*/{re.escape(name)} ", s),
                     "the denial confirmed")
        wait_for(lambda: self.queue() == 0, 30, "the denied script's messages deleted")
        self.assertEqual(self.delivered(), [])

    def test_guardctl_deny_on_a_terminal_asks_and_no_keeps_the_messages(self):
        script = self.held_script("bulk.py")
        program = self.program_of(script)
        env = {"DBUS_SYSTEM_BUS_ADDRESS": self.bus.address, "TERM": "xterm-256color",
               "LANG": "C.UTF-8", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        argv = ["sh", "-c", f"'{GUARDCTL}' deny {program['id']}; echo EXITED-$?; exec sleep 60"]
        tty = Tmux(self, self.dir, 200, 20).start(argv, env)
        tty.wait_for_text(f"{MESSAGES} held messages of {PYTHON} {script} will be deleted.",
                          "Deny it and delete them? [y/N]")
        tty.send("n", "Enter")
        tty.wait_for_text("Not denied.", "EXITED-1")
        self.assertEqual(self.program_of(script)["state"], "pending")
        self.assertEqual(self.frozen(), MESSAGES, "answering no deletes nothing")

        argv = ["sh", "-c", f"'{GUARDCTL}' deny {program['id']}; echo EXITED-$?; exec sleep 60"]
        tty = Tmux(self, self.dir, 200, 20).start(argv, env)
        tty.wait_for_text("Deny it and delete them? [y/N]")
        tty.send("y", "Enter")
        tty.wait_for_text("is denied", "EXITED-0")
        wait_for(lambda: self.queue() == 0, 30, "the denied script's messages deleted")


if __name__ == "__main__":
    mgtest.main()
