"""The manual pages (man/*.scd, built into BUILD/man) say what the programs really do:
every option and command that `guardctl --help` and each command's --help list is in
guardctl(8), guardd's and guard-tui's options are in their pages, and every table and key
that guardd.conf accepts (rules/src/settings.cpp, rules/src/detector_settings.cpp) is in
guardd.conf(5). So a new option cannot ship undocumented.

No root needed; ctest still runs it under `unshare -n` like every module here."""
import os
import re
import subprocess
import unittest

from busfixture import GUARDCTL, SOURCE
from mgtest import BUILD, GUARDD

CTEST_LABEL = "docs"  # how ctest labels these tests (discover_tests.py)

MAN = os.path.join(BUILD, "man")
GUARD_TUI = os.path.join(BUILD, "tui", "guard-tui")


def rendered(page):
    """The page as man(1) shows it, in plain text, hyphens as typed."""
    path = os.path.join(MAN, page)
    if not os.path.exists(path):
        raise AssertionError(f"{path} was not built (is scdoc installed? see install/deps.sh)")
    r = subprocess.run(["man", "-l", path], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "MANWIDTH": "200", "MAN_KEEP_FORMATTING": "",
                            "LC_ALL": "C.UTF-8", "MANPAGER": "cat", "PAGER": "cat"})
    if r.returncode != 0:
        raise AssertionError(f"man -l {path}: {r.stderr}")
    # groff may print a minus or hyphen as U+2010/U+2212; words broken across lines are
    # not (MANWIDTH is wide and hyphenation of options would be a bug in the source).
    return r.stdout.replace("\u2010", "-").replace("\u2212", "-")


def help_sections(argv):
    """(options, subcommands) of a CLI11 --help: the option names of the "Options:"
    lines (like --limit, -y) and the names of the "Subcommands:" lines."""
    r = subprocess.run([*argv, "--help"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} --help failed: {r.stderr}")
    options, subcommands, section = [], [], None
    for line in r.stdout.splitlines():
        if re.match(r"^\S.*:$", line):
            section = line[:-1]
            continue
        m = re.match(r"^  (\S+)", line)
        if not m:
            continue
        if section == "Options" and m.group(1).startswith("-"):
            options += m.group(1).split(",")
        elif section == "Subcommands":
            subcommands.append(m.group(1))
    return options, subcommands


class ManPages(unittest.TestCase):
    def assert_documented(self, text, word, where):
        # A whole word: --limit must not be found inside --limits, nor -y inside --yes.
        if not re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text):
            self.fail(f"{word} ({where}) is not in the manual page")

    def test_every_guardctl_command_and_option_is_in_guardctl_8(self):
        text = rendered("guardctl.8")
        checked = 0
        pending = [[]]
        while pending:
            path = pending.pop()
            options, subcommands = help_sections([GUARDCTL, *path])
            where = "guardctl " + " ".join(path) + " --help" if path else "guardctl --help"
            for option in options:
                self.assert_documented(text, option, where)
                checked += 1
            for sub in subcommands:
                # Each command is documented under its full name, as typed.
                self.assert_documented(text, " ".join([*path, sub]), where)
                pending.append([*path, sub])
                checked += 1
        # The walk really happened: guardctl has a dozen commands with options.
        self.assertGreater(checked, 40)

    def test_guardd_and_guard_tui_options_are_in_their_pages(self):
        for program, page in ((GUARDD, "guardd.8"), (GUARD_TUI, "guard-tui.1")):
            text = rendered(page)
            options, _ = help_sections([program])
            self.assertIn("--version", options)
            for option in options:
                self.assert_documented(text, option, f"{os.path.basename(program)} --help")

    def test_pages_render_without_warnings(self):
        # What lintian's groff-message check runs on a package's manual pages.
        pages = sorted(p for p in os.listdir(MAN) if re.search(r"\.[158]$", p))
        self.assertEqual(pages, ["guard-notify.1", "guard-tui.1", "guardctl.8", "guardd.8",
                                 "guardd.conf.5"])
        for page in pages:
            r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                                os.path.join(MAN, page)], capture_output=True, text=True,
                               timeout=60, env={**os.environ, "LC_ALL": "C.UTF-8",
                                                "MANROFFSEQ": "", "MANWIDTH": "80"})
            self.assertEqual((r.returncode, r.stderr), (0, ""), page)

    def test_every_settings_table_and_key_is_in_guardd_conf_5(self):
        text = rendered("guardd.conf.5")
        with open(os.path.join(SOURCE, "rules", "src", "settings.cpp")) as f:
            settings = f.read()
        with open(os.path.join(SOURCE, "rules", "src", "detector_settings.cpp")) as f:
            detector = f.read()
        tables = re.findall(r'\{"(\w+)", read\w+\}', settings)
        keys = re.findall(r'key == "(\w+)"', settings)
        detector_keys = re.findall(r'^\s*\{"(\w+)", ', detector, re.M)
        # What the reader accepts today; fewer would mean the patterns above went stale.
        self.assertGreaterEqual(len(tables), 7)
        self.assertGreaterEqual(len(keys), 13)
        self.assertGreaterEqual(len(detector_keys), 31)
        for table in tables:
            self.assertIn(f"[{table}]", text, f"table [{table}] of settings.cpp")
        for key in keys + detector_keys:
            self.assert_documented(text, key, "a guardd.conf key")


if __name__ == "__main__":
    unittest.main(verbosity=2)
