"""The Debian package `mailguard` (packaging/, CPack DEB).

The .deb is made from the existing build with cpack (nothing is compiled that is built
already), checked with lintian (no errors; warnings are printed), installed with apt-get
inside a network namespace trial (ctest runs this under `unshare -n`; the package's
files land on this machine's filesystem, as for any package) and purged again:
  - the units, man pages (`man -w`), completion, D-Bus and polkit files are in place;
  - the maintainer scripts did not start or enable guardd through systemd (it would run
    in the host's namespace), and said so;
  - `guardd --version` runs from /usr/sbin;
  - `apt-get purge` leaves no file of ours behind (each one is checked and listed).
The machine is left as it was found even when a check fails (the purge is in a finally).
Skipped where a mailguard package is installed already or a file the package would own
exists without an owner (a former `setup.sh` install into /usr/local left
/etc/mailguard/guardd.conf, say): purging would delete what is not the test's.
"""
import glob
import grp
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import mgtest
from mgtest import BUILD

CTEST_LABEL = "package"  # how ctest labels these tests (discover_tests.py)
# It installs and purges the package on this machine (its group, its polkit rule):
# never beside test_polkit, which copies those files (discover_tests.py).
CTEST_RESOURCE_LOCK = "system-files"
mgtest.require_private_netns()

PACKAGE = "mailguard"
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
# Another apt or dpkg on the machine (a build installing packages) holds the lock a while.
APT = ["apt-get", "-y", "-o", "DPkg::Lock::Timeout=120", "--no-install-recommends"]


def run(argv, timeout=180, check=True, env=None):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def package_installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], capture_output=True,
                       text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def sanitized_build():
    """The debug preset's ASan build: a package is made from the release build only."""
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return any(line.strip() == "MAILGUARD_SANITIZE:BOOL=ON" for line in f)
    except FileNotFoundError:
        return False


if os.geteuid() == 0 and package_installed():
    print("SKIP: a mailguard package is installed on this machine; the test would replace and "
          "purge it")
    sys.exit(mgtest.SKIP)
if sanitized_build():
    print("SKIP: the package is made from the release build (this is the sanitizer build)")
    sys.exit(mgtest.SKIP)


def build_deb(test):
    """cpack over the existing build, into a temporary folder; the .deb's path."""
    for tool in ("cpack", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise AssertionError(f"{tool} is missing: run install/deps.sh --test")
    out = tempfile.mkdtemp(prefix="mailguard-deb-")
    test.addCleanup(shutil.rmtree, out, True)
    r = run(["cpack", "-G", "DEB", "--config", os.path.join(BUILD, "CPackConfig.cmake"),
             "-B", out], timeout=300)
    debs = glob.glob(os.path.join(out, f"{PACKAGE}_*.deb"))
    if len(debs) != 1:
        raise AssertionError(f"cpack made {debs} in {out}:\n{r.stdout}\n{r.stderr}")
    return debs[0]


def deb_paths(deb):
    """Every path in the package ('/etc/mailguard/guardd.conf', ...), directories too."""
    listing = run(["dpkg-deb", "-c", deb]).stdout.splitlines()
    paths = []
    for line in listing:
        # drwxr-xr-x root/root 0 2026-12-07 08:00 ./usr/share/doc/mailguard/
        name = line.split(None, 5)[5].split(" -> ")[0]
        name = name[1:] if name.startswith("./") else name
        name = "/" + name.strip("/") if name.strip("/") else "/"
        if name != "/":
            paths.append(name)
    return paths


class DebianPackage(unittest.TestCase):
    def test_lintian_reports_no_errors(self):
        if shutil.which("lintian") is None:
            self.fail("lintian is missing: run install/deps.sh --test")
        deb = build_deb(self)
        r = run(["lintian", "--tag-display-limit", "0", deb], check=False,
                timeout=300)
        lines = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
        print(f"lintian {os.path.basename(deb)}:")
        for line in lines:
            print("  " + line)
        errors = [l for l in lines if l.startswith("E:")]
        self.assertEqual(errors, [], "lintian found errors")
        self.assertEqual(r.returncode, 0, f"lintian failed: {r.stderr}")

    def test_installs_in_a_namespace_trial_without_systemd_and_purges_every_file(self):
        deb = build_deb(self)
        paths = deb_paths(deb)
        unowned = [p for p in paths if os.path.lexists(p) and not os.path.isdir(p)]
        if unowned:
            self.skipTest("files the package would own exist already (not the test's to "
                          f"purge): {unowned}")
        existed = {p for p in paths if os.path.lexists(p)}
        ours = [p for p in paths if p not in existed]
        # Made by the maintainer scripts, not listed in the package: removed on purge.
        ours += ["/var/lib/mailguard", "/var/log/mailguard", "/etc/mailguard",
                 "/etc/systemd/system/multi-user.target.wants/guardd.service"]
        group_existed = self.group_exists()
        try:
            r = run(APT + ["install", os.path.abspath(deb)], env=APT_ENV, timeout=300)
            self.check_installed(r.stdout + r.stderr)
        finally:
            purged = subprocess.run(APT + ["purge", PACKAGE], env=APT_ENV, capture_output=True,
                                    text=True, timeout=300)
        self.assertEqual(purged.returncode, 0, f"apt-get purge failed:\n{purged.stdout}\n"
                                               f"{purged.stderr}")
        self.assertFalse(package_installed())
        ours = sorted(set(ours))
        left = [p for p in ours if os.path.lexists(p)]
        print(f"{len(ours)} paths of the package checked after the purge:")
        for p in ours:
            print(f"  {'LEFT ' if p in left else 'gone '} {p}")
        self.assertEqual(left, [], "apt-get purge left files of the package behind")
        if not group_existed:
            self.assertFalse(self.group_exists(), "the purge kept the group the package made")

    def check_installed(self, apt_output):
        self.assertTrue(package_installed(), apt_output)
        # Units in the places systemd reads, naming the package's binaries.
        with open("/lib/systemd/system/guardd.service") as f:
            self.assertIn("ExecStart=/usr/sbin/guardd\n", f.read())
        with open("/lib/systemd/system/mailguard-mta-agent.service") as f:
            self.assertIn("ExecStart=/usr/sbin/guard-mta-agent\n", f.read())
        with open("/usr/lib/systemd/user/guard-notify.service") as f:
            self.assertIn("ExecStart=/usr/bin/guard-notify\n", f.read())
        with open("/etc/xdg/autostart/guard-notify.desktop") as f:
            self.assertIn("Exec=/usr/bin/guard-notify\n", f.read())
        for path in ("/usr/share/dbus-1/system.d/org.mailguard.Guard1.conf",
                     "/usr/share/polkit-1/actions/org.mailguard.policy",
                     "/usr/share/polkit-1/rules.d/50-mailguard.rules",
                     "/usr/lib/sysusers.d/mailguard.conf", "/usr/lib/tmpfiles.d/mailguard.conf",
                     "/usr/share/bash-completion/completions/guardctl",
                     "/usr/share/zsh/vendor-completions/_guardctl",
                     "/usr/share/doc/mailguard/copyright",
                     "/usr/share/doc/mailguard/changelog.Debian.gz",
                     "/usr/bin/guardctl", "/usr/bin/guard-tui", "/usr/bin/guard-notify"):
            self.assertTrue(os.path.isfile(path), f"{path} is not installed")
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", PACKAGE]).stdout
        self.assertIn("/etc/mailguard/guardd.conf", conffiles)
        # `man guardctl` works: man-db finds each page in the package's manual section.
        for section, page in (("8", "guardctl"), ("8", "guardd"), ("1", "guard-tui"),
                              ("1", "guard-notify"), ("5", "guardd.conf")):
            r = run(["man", "-w", section, page], check=False)
            self.assertEqual(r.stdout.strip(), f"/usr/share/man/man{section}/{page}.{section}.gz",
                             f"man -w {section} {page}: {r.stderr}")
        version = run(["/usr/sbin/guardd", "--version"]).stdout
        self.assertRegex(version, r"^guardd \d+\.\d+\.\d+\n$")
        self.assertTrue(self.group_exists(), "postinst did not create the group mailguard")
        self.assertTrue(os.path.isdir("/var/lib/mailguard"))
        # Inside the trial the scripts leave guardd alone, and say how to start it here.
        self.assertIn("inside a network namespace trial: guardd.service is neither enabled nor "
                      "started", apt_output)
        self.assertFalse(os.path.lexists(
            "/etc/systemd/system/multi-user.target.wants/guardd.service"))
        running = [pid for pid in os.listdir("/proc") if pid.isdigit() and
                   self.exe_of(pid) == "/usr/sbin/guardd"]
        self.assertEqual(running, [], "a guardd from the package is running")
        r = mgtest.nft("list", "table", "inet", "mailguard", check=False)
        self.assertNotEqual(r.returncode, 0, "a mailguard table appeared in the trial")

    @staticmethod
    def exe_of(pid):
        try:
            return os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return None

    @staticmethod
    def group_exists():
        try:
            grp.getgrnam("mailguard")
            return True
        except KeyError:
            return False


if __name__ == "__main__":
    mgtest.main()
