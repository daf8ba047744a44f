"""A real postfix for the integration tests, run from Debian's package unpacked (postfix
conflicts with the exim4 package installed here), with a private configuration, queue and
log, delivering everything over SMTP to a sink mail server in a second network namespace.

    from postfix_fixture import Postfix
    pf = Postfix(test, relay="198.18.0.2", extra_main_cf="...")  # unpacked, configured
    pf.start()             # master, in this process's network namespace
    pf.sendmail_argv()     # [.../usr/sbin/sendmail, "-C", CONFIG_DIR]
    pf.hold_ids(), pf.maildrop_files(), pf.queue_ids(), pf.log()

install/deps.sh --test downloads the package into /var/cache/mailguard-tests/postfix and
creates postfix's user and setgid group (mgpostfix, mgpostdrop). Run as root.

Where things are, and why:
- The package is unpacked under /var/cache/mailguard-tests (root's, 0755 up to /), not
  /tmp: guardd trusts a program's path only in a root-owned folder chain outside the
  world-writable places, and postdrop and sendmail are skipped as the MTA's own programs
  only when trusted (mailguard::mta::isMtaProgram).
- postfix's programs find their libraries through RUNPATH /usr/lib/postfix, which is not
  there. LD_LIBRARY_PATH cannot help (postdrop is setgid: the loader ignores it; and it
  would void approvals as code loading). So each ELF file's RUNPATH string is rewritten in
  place to a symlink of the same length, /run/mgpf-XXXXXX, pointing at the unpacked
  libraries (an absolute RUNPATH is honoured for setgid programs).
- The maildrop is 1730 mgpostfix:mgpostdrop and postdrop setgid mgpostdrop, as the
  package's postinst makes them; nothing runs chrooted (master.cf below)."""
import glob
import os
import random
import shutil
import string
import subprocess
import tempfile
import textwrap

from mgtest import terminate, wait_for

CACHE = "/var/cache/mailguard-tests"
USER, GROUP = "mgpostfix", "mgpostdrop"
OLD_RUNPATH = b"/usr/lib/postfix"

MASTER_CF = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       {chroot}       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def deb():
    found = sorted(glob.glob(os.path.join(CACHE, "postfix", "postfix_*.deb")))
    return found[-1] if found else None


def available():
    """None when a postfix can be run, else why not (for skipTest)."""
    if os.geteuid() != 0:
        return "needs root"
    if not deb():
        return "postfix's package is not downloaded (install/deps.sh --test)"
    for name, db in ((USER, "passwd"), (GROUP, "group")):
        if subprocess.run(["getent", db, name], capture_output=True).returncode != 0:
            return f"the {db} entry {name} is missing (install/deps.sh --test)"
    return None


def _patch_runpath(path, new):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"\x7fELF"):
        return
    # The dynamic string table holds the RUNPATH as "\0/usr/lib/postfix\0"; a string that
    # only starts so (daemon_directory's "/usr/lib/postfix/sbin") is left alone.
    patched = data.replace(b"\0" + OLD_RUNPATH + b"\0", b"\0" + new + b"\0")
    if patched != data:
        mode = os.stat(path).st_mode
        with open(path, "wb") as f:
            f.write(patched)
        os.chmod(path, mode)


class Postfix:
    def __init__(self, test, relay, extra_main_cf="", chroot_cleanup=False, syslog=False):
        """chroot_cleanup: cleanup runs chrooted in the queue directory, as Debian's
        master.cf has it (the milter is then reached relative to it). syslog: no
        maillog_file, so postfix logs through syslog(3) to /dev/log (a test's own journald:
        log() then reads the journal's mail records)."""
        self.syslog = syslog
        reason = available()
        if reason:
            test.skipTest("postfix: " + reason)
        self.test = test
        os.makedirs(CACHE, exist_ok=True)
        self.root = tempfile.mkdtemp(prefix="postfix-", dir=CACHE)
        os.chmod(self.root, 0o755)
        test.addCleanup(shutil.rmtree, self.root, True)
        subprocess.run(["dpkg", "-x", deb(), self.root], check=True)
        self.libs = os.path.join(self.root, "usr/lib/postfix")
        suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(6))
        self.link = "/run/mgpf-" + suffix
        assert len(self.link) == len(OLD_RUNPATH)
        os.symlink(self.libs, self.link)
        test.addCleanup(os.unlink, self.link)
        for folder in ("usr/sbin", "usr/lib/postfix/sbin", "usr/lib/postfix"):
            for path in glob.glob(os.path.join(self.root, folder, "*")):
                if os.path.isfile(path) and not os.path.islink(path):
                    _patch_runpath(path, self.link.encode())
        self.sbin = os.path.join(self.root, "usr/sbin")
        self.daemons = os.path.join(self.libs, "sbin")
        for name in ("postdrop", "postqueue"):
            path = os.path.join(self.sbin, name)
            shutil.chown(path, "root", GROUP)
            os.chmod(path, 0o2555)
        self.config = os.path.join(self.root, "etc/postfix")
        self.queue = os.path.join(self.root, "spool")
        self.data = os.path.join(self.root, "data")
        self.maillog = os.path.join(self.root, "maillog")
        self._make_queue()
        self._write_config(relay, extra_main_cf, chroot_cleanup)
        self.master = None

    def _make_queue(self):
        os.makedirs(self.data)
        shutil.chown(self.data, USER, USER)
        os.makedirs(self.queue)
        os.chmod(self.queue, 0o755)
        for name in ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold",
                     "incoming", "private", "saved", "trace"):
            path = os.path.join(self.queue, name)
            os.makedirs(path)
            os.chmod(path, 0o700)
            shutil.chown(path, USER, "root")
        os.makedirs(os.path.join(self.queue, "pid"))
        maildrop = os.path.join(self.queue, "maildrop")
        os.makedirs(maildrop)
        shutil.chown(maildrop, USER, GROUP)
        os.chmod(maildrop, 0o1730)
        public = os.path.join(self.queue, "public")
        os.makedirs(public)
        shutil.chown(public, USER, GROUP)
        os.chmod(public, 0o2710)
        # guardd's milter socket lives here (install/setup.sh makes the folder on a PC).
        os.makedirs(os.path.join(self.queue, "mailguard"))

    def _write_config(self, relay, extra, chroot_cleanup):
        os.makedirs(self.config, exist_ok=True)
        main = textwrap.dedent(f"""\
            compatibility_level = 3.6
            queue_directory = {self.queue}
            data_directory = {self.data}
            command_directory = {self.sbin}
            daemon_directory = {self.daemons}
            meta_directory = {self.config}
            shlib_directory = {self.link}
            sendmail_path = {self.sbin}/sendmail
            mailq_path = {self.sbin}/mailq
            newaliases_path = {self.sbin}/newaliases
            mail_owner = {USER}
            setgid_group = {GROUP}
            myhostname = pc.test
            mydomain = test
            myorigin = pc.test
            mydestination =
            inet_interfaces = loopback-only
            inet_protocols = ipv4
            alias_maps =
            alias_database =
            relayhost = [{relay}]:25
            smtp_dns_support_level = disabled
            disable_dns_lookups = yes
            maillog_file = {"" if self.syslog else self.maillog}
            queue_run_delay = 300s
            non_smtpd_milters = {{ unix:mailguard/milter.sock, default_action=tempfail }}
            milter_connect_timeout = 5s
            """) + extra
        with open(os.path.join(self.config, "main.cf"), "w") as f:
            f.write(main)
        with open(os.path.join(self.config, "master.cf"), "w") as f:
            f.write(MASTER_CF.replace("{chroot}", "y" if chroot_cleanup else "n"))
        shutil.copy(os.path.join(self.root, "usr/share/postfix/dynamicmaps.cf"), self.config)

    def postconf(self, *settings):
        subprocess.run([os.path.join(self.sbin, "postconf"), "-c", self.config, "-e", *settings],
                       check=True)

    def start(self):
        log = open(os.path.join(self.root, "master.out"), "a")
        self.test.addCleanup(log.close)
        self.master = subprocess.Popen([os.path.join(self.daemons, "master"), "-c", self.config],
                                       stdout=log, stderr=log)
        self.test.addCleanup(self.stop)
        wait_for(lambda: os.path.exists(os.path.join(self.queue, "public", "pickup"))
                 and "daemon started" in self.log(), 20, "postfix's master")
        return self

    def stop(self):
        if self.master:
            terminate(self.master)
            self.master = None

    def sendmail_argv(self):
        return [os.path.join(self.sbin, "sendmail"), "-C", self.config]

    def postqueue_p(self):
        """`postqueue -p`: the queue listing; showq reads every message file for it."""
        return subprocess.run([os.path.join(self.sbin, "postqueue"), "-c", self.config, "-p"],
                              capture_output=True, text=True).stdout

    def pickup_now(self):
        """Tells pickup to look at the maildrop now rather than at its next poll."""
        subprocess.run([os.path.join(self.sbin, "postkick"), "-c", self.config, "public",
                        "pickup", "W"], check=False)

    def _ids(self, folder):
        out = []
        for dirpath, _, files in os.walk(os.path.join(self.queue, folder)):
            out += files
        return out

    def hold_ids(self):
        return self._ids("hold")

    def maildrop_files(self):
        return self._ids("maildrop")

    def queue_ids(self):
        """Every message postfix still has, whatever its queue."""
        return sum((self._ids(q) for q in ("maildrop", "incoming", "active", "deferred", "hold")), [])

    def log(self):
        if self.syslog:
            return subprocess.run(["journalctl", "--no-pager", "-q", "-o", "short",
                                   "SYSLOG_FACILITY=2"], capture_output=True, text=True,
                                  errors="replace").stdout
        try:
            with open(self.maillog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""
