"""Shell completion of guardctl (install/completion/) against the real guardctl and, for
program ids and paths, a real guardd on the test's private bus (run as root under
`unshare -n`).

bash: the completion file is sourced into a non-interactive bash, which then sets
COMP_WORDS/COMP_CWORD as readline would for the line typed and calls the function that
`complete -p guardctl` names, printing COMPREPLY. zsh: a real interactive zsh (compinit,
the file in $fpath) in a private tmux server, typed into with send-keys."""
import os
import re
import shlex
import shutil
import subprocess
import time
import unittest

import mgtest
from busfixture import GUARDCTL, SOURCE, GuarddOnBusTest
from mgtest import wait_for
from test_manpages import help_sections

CTEST_LABEL = "dbus"  # how ctest labels these tests (discover_tests.py)
mgtest.require_private_netns()

BASH_COMPLETION = os.path.join(SOURCE, "install", "completion", "guardctl.bash")
ZSH_COMPLETION_DIR = os.path.join(SOURCE, "install", "completion")


def bash_complete(words, env, cwd=None):
    """COMPREPLY for the command line `words` (the last one is the word being completed,
    "" after a space), with guardctl from the build first in PATH."""
    script = f"""
source {shlex.quote(BASH_COMPLETION)}
spec=$(complete -p guardctl) || exit 3
func=${{spec#*-F }}; func=${{func%% *}}
COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE="${{COMP_WORDS[*]}}"
COMP_POINT=${{#COMP_LINE}}
"$func" guardctl "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    e = dict(env)
    e["PATH"] = os.path.dirname(GUARDCTL) + ":" + e.get("PATH", "/usr/bin:/bin")
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, env=e, cwd=cwd, timeout=30)
    if r.returncode != 0:
        raise AssertionError(f"completion of {words} failed ({r.returncode}): {r.stderr}")
    return r, [line for line in r.stdout.splitlines() if line]


class BashCompletion(GuarddOnBusTest):
    def test_completes_the_command_from_its_prefix(self):
        _, got = bash_complete(["guardctl", "ap"], self.daemon.env())
        self.assertEqual(got, ["approve"])
        _, got = bash_complete(["guardctl", "a"], self.daemon.env())
        self.assertEqual(sorted(got), ["alerts", "approve", "attempts", "audit"])
        _, got = bash_complete(["guardctl", "firewall", "l"], self.daemon.env())
        self.assertEqual(got, ["local-subnets"])
        _, got = bash_complete(["guardctl", "attempts", "--verdict", "h"], self.daemon.env())
        self.assertEqual(got, ["hold"])

    def test_approve_offers_the_ids_and_paths_of_programs_guardd_knows(self):
        self.start_guardd()
        held = self.held_program(self.client)
        other = self.held_program(mgtest.copy_program(mgtest.CONNECT,
                                                      os.path.join(self.dir, "other client")))
        _, got = bash_complete(["guardctl", "approve", ""], self.daemon.env())
        for p in (held, other):
            self.assertIn(str(p["id"]), got)
            # A path with a space is one candidate, quoted as the shell needs it.
            self.assertIn(p["path"].replace(" ", "\\ "), got)
        # The prefix typed narrows them down, and --json before the command changes nothing.
        _, got = bash_complete(["guardctl", "--json", "approve", self.dir + "/m"],
                               self.daemon.env())
        self.assertEqual(got, [held["path"]])
        _, got = bash_complete(["guardctl", "attempts", "--program", ""], self.daemon.env())
        self.assertEqual(sorted(got), sorted([str(held["id"]), str(other["id"])]))
        # After the program, approve takes no second one.
        _, got = bash_complete(["guardctl", "approve", str(held["id"]), ""], self.daemon.env())
        self.assertEqual(got, [])

    def test_is_quiet_and_quick_when_guardd_is_not_running(self):
        # The bus is there, guardd is not: guardctl is told at once that nobody owns the name.
        start = time.monotonic()
        r, got = bash_complete(["guardctl", "approve", ""], self.daemon.env())
        self.assertLess(time.monotonic() - start, 2.0)
        self.assertEqual((got, r.stderr), ([], ""))
        # No bus at all.
        env = self.daemon.env(DBUS_SYSTEM_BUS_ADDRESS=f"unix:path={self.dir}/no-bus")
        r, got = bash_complete(["guardctl", "deny", ""], env)
        self.assertEqual((got, r.stderr), ([], ""))

    def test_offers_exactly_the_commands_and_options_of_guardctl_help(self):
        env = self.daemon.env()
        pending = [[]]
        walked = 0
        while pending:
            path = pending.pop()
            options, subcommands = help_sections([GUARDCTL, *path])
            _, got = bash_complete(["guardctl", *path, "-"], env)
            expected = set(options) - {"-h"}  # not offered: --help says the same
            self.assertEqual(set(got), expected, f"options of guardctl {' '.join(path)}")
            if subcommands:
                _, got = bash_complete(["guardctl", *path, ""], env)
                self.assertEqual(set(got), set(subcommands),
                                 f"commands of guardctl {' '.join(path)}")
            pending += [[*path, s] for s in subcommands]
            walked += 1
        self.assertGreater(walked, 15)


class ShellInTmux(GuarddOnBusTest):
    """An interactive shell in a tmux server of this test's own (its socket in the test's
    directory), with guardctl from the build first in PATH and the completion loaded by
    the shell's start-up file. A subclass names the shell in `argv(directory)`."""
    PROMPT = "sh>"

    def setUp(self):
        super().setUp()
        self.tmux_socket = os.path.join(self.dir, "tmux.sock")
        home = os.path.join(self.dir, "home")
        os.makedirs(home)
        argv, extra = self.shell(home)
        env = self.daemon.env(TERM="xterm", HOME=home, **extra)
        env["PATH"] = os.path.dirname(GUARDCTL) + ":" + env.get("PATH", "/usr/bin:/bin")
        env.pop("TMUX", None)
        subprocess.run(["tmux", "-S", self.tmux_socket, "-f", "/dev/null", "new-session", "-d",
                        "-x", "200", "-y", "50", *argv], env=env, check=True, timeout=30)
        # Only this test's tmux server, through its own socket.
        self.addCleanup(subprocess.run, ["tmux", "-S", self.tmux_socket, "kill-server"],
                        capture_output=True, timeout=30)
        # The start-up file's prompt (capture-pane drops trailing blanks): it ran.
        wait_for(lambda: re.search(rf"(?m)^{self.PROMPT}", self.screen()), 20, "the prompt")

    def screen(self):
        return subprocess.run(["tmux", "-S", self.tmux_socket, "capture-pane", "-p"],
                              capture_output=True, text=True, timeout=30).stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.tmux_socket, "send-keys", *keys], check=True,
                       timeout=30)

    def completes_command_then_programs(self, list_keys, listed):
        """`guardctl ap<TAB>` becomes `guardctl approve `; then, with a program held by a
        running guardd, `list_keys` list the candidates; `listed(program)` is the regex
        that must then be on the screen."""
        self.keys("guardctl ap", "Tab")
        wait_for(lambda: f"{self.PROMPT} guardctl approve" in self.screen(), 20,
                 "guardctl approve")
        self.start_guardd()
        held = self.held_program(self.client)
        self.keys(*list_keys)
        pattern = re.compile(listed(held), re.M)
        wait_for(lambda: pattern.search(self.screen()), 20,
                 f"program {held['id']} offered:\n{self.screen()}")
        return held


@unittest.skipUnless(shutil.which("tmux"), "needs tmux")
class BashCompletionInTerminal(ShellInTmux):
    PROMPT = "bash>"

    def shell(self, home):
        rc = os.path.join(home, ".bashrc")
        with open(rc, "w") as f:
            f.write(f"source {shlex.quote(BASH_COMPLETION)}\nPS1='bash> '\n")
        return ["bash", "--noprofile", "--rcfile", rc, "-i"], {}

    def test_bash_in_a_terminal_completes_approve_and_program_ids(self):
        # The second Tab lists the ambiguous candidates: the id and the path.
        held = self.completes_command_then_programs(
            ["Tab", "Tab"], lambda p: rf"^{p['id']} +{re.escape(p['path'])}\s*$|"
                                      rf"^{re.escape(p['path'])} +{p['id']}\s*$")
        self.assertIn(held["path"], self.screen())


@unittest.skipUnless(shutil.which("zsh") and shutil.which("tmux"), "needs zsh and tmux")
class ZshCompletion(ShellInTmux):
    PROMPT = "zsh>"

    def shell(self, home):
        with open(os.path.join(home, ".zshrc"), "w") as f:
            f.write(f"fpath=({shlex.quote(ZSH_COMPLETION_DIR)} $fpath)\n"
                    "autoload -Uz compinit && compinit -u -d $ZDOTDIR/.zcompdump\n"
                    "PS1='zsh> '\n")
        return ["zsh"], {"ZDOTDIR": home}

    def test_zsh_completes_approve_and_program_ids(self):
        # zsh lists the ids with their path and state, and the paths.
        held = self.completes_command_then_programs(
            ["Tab"], lambda p: rf"^{p['id']} +-- {re.escape(p['path'])} \(pending\)")
        # ... and the paths, as candidates of their own.
        self.assertRegex(self.screen(), rf"program paths\n{re.escape(held['path'])}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
