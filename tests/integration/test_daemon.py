"""Guardd's command line, start-up errors and shutdown."""
import os
import re
import subprocess
import unittest

import mgtest
from mgtest import GUARDD, Guardd, nft

mgtest.require_private_netns()


class Daemon(unittest.TestCase):
    def setUp(self):
        self.dir = mgtest.make_tempdir(self)
        self.state = os.path.join(self.dir, "state")

    def run_guardd(self, *args, user=None):
        argv = [GUARDD, "--state-dir", self.state, *args]
        if user:
            argv = mgtest.as_user(user) + argv
        return subprocess.run(argv, capture_output=True, text=True, timeout=30)

    def test_malformed_settings_name_file_and_line(self):
        conf = os.path.join(self.dir, "guardd.conf")
        with open(conf, "w") as f:
            f.write("[mail]\nports = [25, 587]\n\n[enforcement]\nqueue = \"four\"\n")
        r = self.run_guardd("--config", conf)
        self.assertEqual(r.returncode, 1)
        self.assertIn(f"{conf}:5:", r.stderr)
        self.assertNotEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0,
                            "a bad settings file must not install anything")

    def test_missing_explicit_settings_file_is_an_error(self):
        r = self.run_guardd("--config", os.path.join(self.dir, "nope.conf"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.conf", r.stderr)

    def test_refuses_to_run_unprivileged(self):
        r = self.run_guardd(user="nobody")
        self.assertEqual(r.returncode, 1)
        self.assertIn("must run as root", r.stderr)

    def test_reports_refused_netlink(self):
        # Root without CAP_NET_ADMIN: the kernel refuses the nftables batch.
        argv = ["setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", GUARDD,
                "--state-dir", self.state]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertRegex(r.stderr, r"(?i)(not permitted|CAP_NET_ADMIN)")
        self.assertNotEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0)

    def test_usage_error_exits_2(self):
        self.assertEqual(self.run_guardd("--no-such-flag").returncode, 2)

    def test_sigterm_leaves_table_unless_settings_ask_for_clean_up(self):
        g = Guardd(self, self.state).start()
        self.assertEqual(g.stop(), 0)
        self.assertEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0)
        conf = os.path.join(self.dir, "guardd.conf")
        with open(conf, "w") as f:
            f.write("[enforcement]\nremove_rules_on_exit = true\n")
        g = Guardd(self, self.state, conf).start()
        self.assertEqual(g.stop(), 0)
        self.assertNotEqual(nft("list", "table", "inet", "mailguard", check=False).returncode, 0)

    def test_restart_replaces_table_atomically_with_the_same_rules(self):
        g = Guardd(self, self.state).start()
        first = nft("list", "table", "inet", "mailguard").stdout
        g.kill9()
        Guardd(self, self.state).start()
        second = nft("list", "table", "inet", "mailguard").stdout
        norm = lambda t: re.sub(r"packets \d+ bytes \d+", "", t)
        self.assertEqual(norm(first), norm(second))
        self.assertEqual(nft("list", "tables").stdout.count("mailguard"), 1)


if __name__ == "__main__":
    mgtest.main()
