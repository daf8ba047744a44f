#!/usr/bin/env python3
"""The cost of guarding, measured. Run through tests/bench/run.sh as root.

Every figure is a ratio against a baseline measured in the same run: the baseline and
the guarded case live in separate network namespaces created here (`ip netns add
mgb<pid>-...`, removed at the end), and the load generators interleave their
connections across them, so both see the same machine noise. Traffic stays on
127.0.0.0/8 inside those namespaces; the host's namespace and firewall are never
touched. Only processes started here are stopped, by PID. Figures, not pass/fail.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
QUEUE = 4025

out_lines = []


def log(line=""):
    print(line, flush=True)
    out_lines.append(line)


def raw(name, obj):
    """Raw figures go to the results file as one JSON line each."""
    out_lines.append(f"RAW {name} {json.dumps(obj, sort_keys=True)}")


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.build = os.path.abspath(args.build)
        self.guardd = args.guardd or os.path.join(self.build, "guardd", "guardd")
        self.mgbench = os.path.join(self.build, "tests", "bench", "mg-bench")
        self.seed_tool = os.path.join(self.build, "tests", "integration", "mg-seed")
        self.guardctl = os.path.join(self.build, "tui", "guardctl")
        for p in (self.guardd, self.mgbench, self.seed_tool):
            if not os.access(p, os.X_OK):
                sys.exit(f"missing {p}: build it first (see tests/bench/README.md)")
        self.tmp = tempfile.mkdtemp(prefix="mgbench-")
        os.chmod(self.tmp, 0o755)
        self.prefix = f"mgb{os.getpid()}"
        self.namespaces = []
        self.procs = []  # every process started here, stopped by PID at the end
        self.summary = []  # (benchmark, figure, value, baseline, ratio, goal, met)
        self.facts = {}
        # Stand-in programs: copies of mg-bench, so approval is by their own path+hash.
        self.client = self.copy(self.mgbench, "mailclient")
        self.bot = self.copy(self.mgbench, "spambot")
        self.newbot = self.copy(self.mgbench, "newbot")
        # A program quarantined in the store: its every connect is queued and refused (a
        # TCP reset the client can time), on either attribution path.
        self.qclient = self.copy(self.mgbench, "quarantined")
        self.cgroup_root = None  # the cgroup2 hierarchy mounted for the kernel benchmarks
        self.cgroups = []

    # --- plumbing --------------------------------------------------------------------
    def copy(self, src, name):
        """A copy with its own content (trailing bytes, which ELF loaders ignore): a
        denial follows a program's hash, so the bot must not share the client's."""
        dst = os.path.join(self.tmp, name)
        shutil.copyfile(src, dst)
        with open(dst, "ab") as f:
            f.write(b"\0" + name.encode())
        os.chmod(dst, 0o755)
        return dst

    def netns(self, tag):
        name = f"{self.prefix}-{tag}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        self.namespaces.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    def start(self, argv, ns=None, ready=None, env=None, stdin=None, stderr=None):
        """Starts a process (inside `ns` via `ip netns exec`, which execs in place so the
        PID is the program's own); waits for a line starting with `ready` if given."""
        argv = [str(a) for a in argv]
        if ns:
            argv = ["ip", "netns", "exec", ns] + argv
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=stdin,
                             stderr=stderr if stderr is not None else subprocess.DEVNULL,
                             text=True, env=env)
        self.procs.append(p)
        if ready:
            line = p.stdout.readline()
            if not line.startswith(ready):
                raise RuntimeError(f"{argv}: expected '{ready}', got {line!r}")
            p.ready_line = line.strip()
        return p

    def stop(self, p, timeout=10):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def run_json(self, argv, timeout=600):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{argv}: exit {r.returncode}: {r.stderr}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def bench(self, cmd, *opts, exe=None, timeout=600):
        return self.run_json([exe or self.mgbench, cmd, *map(str, opts)], timeout)

    def seed(self, state, action, path):
        subprocess.run([self.seed_tool, state, action, path], check=True, capture_output=True)

    def quarantine(self, state, exe):
        with open(exe, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self.bench("quarantine", "--dir", state, "--path", os.path.realpath(exe), "--sha256",
                   digest)

    def mount_cgroups(self):
        """A cgroup2 hierarchy mounted in this process's private mount namespace (run.sh
        runs bench.py under `unshare -m --propagation private`), and two child cgroups of
        the benchmark's own: `hooked`, the only place guardd attaches its BPF programs,
        and `plain`, the same depth without them (the baselines). Only processes started
        here ever join them; both are removed at the end."""
        if self.cgroup_root:
            return True
        if not self.private_mounts():
            log("   kernel attribution not measured: bench.py is not in a private mount "
                "namespace (run it through tests/bench/run.sh)")
            return False
        root = os.path.join(self.tmp, "cgroup2")
        os.makedirs(root, exist_ok=True)
        r = subprocess.run(["mount", "-t", "cgroup2", "none", root], capture_output=True,
                           text=True)
        if r.returncode != 0:
            log(f"   kernel attribution not measured: cannot mount cgroup2: {r.stderr.strip()}")
            return False
        self.cgroup_root = root
        for tag in ("hooked", "plain"):
            d = os.path.join(root, f"{self.prefix}-{tag}")
            os.mkdir(d)
            self.cgroups.append(d)
        self.hooked, self.plain = self.cgroups
        return True

    @staticmethod
    def private_mounts():
        """True when this process runs in a mount namespace of its own: run.sh names the
        one it was started in, and then unshares (PID 1's may be unreadable here)."""
        outer = os.environ.get("MG_BENCH_OUTER_MNT")
        return bool(outer) and os.readlink("/proc/self/ns/mnt") != outer

    def unmount_cgroups(self):
        for d in self.cgroups:
            if not os.path.isdir(d):
                continue
            # Whatever is still inside was started here (nothing else joins these).
            try:
                with open(os.path.join(d, "cgroup.procs")) as f:
                    for pid in f.read().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            except OSError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.05)
        if self.cgroup_root:
            subprocess.run(["umount", self.cgroup_root], capture_output=True)
            self.cgroup_root = None

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
            self.stop(p)
        self.unmount_cgroups()
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if os.environ.get("MG_BENCH_KEEP"):  # guardd's logs and state, for a look afterwards
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- guardd ------------------------------------------------------------------------
    def settings(self, kernel_cgroup=None):
        """guardd.conf for the benchmarks: the zombie detector scores every attempt (its
        cost is part of what is measured) but never changes a verdict. The benchmarks
        repeat what no real program does (4,000 connections to one server in seconds),
        which its daily limits rightly stop: the approved client would be quarantined
        after 150 and the latency measured would be that of a refusal."""
        path = os.path.join(self.tmp, "guardd-kernel.conf" if kernel_cgroup else "guardd.conf")
        never = 1_000_000  # the largest count the settings accept
        with open(path, "w") as f:
            # No attempt scores above 0 (max_score), so no CUSUM grows; no daily limit or
            # fan-out rule is reached; delivery outcomes charge nothing.
            f.write("[detector]\nmax_score = 0.0\nattributed_failure = 0.0\n"
                    f"backstop_soft_destinations = {never}\n"
                    f"backstop_hard_destinations = {never}\n"
                    f"backstop_hard_attempts = {never}\nh3_connections = {never}\n"
                    # /proc attribution, or the BPF hooks attached only to a child
                    # cgroup of the cgroup2 hierarchy this benchmark mounted.
                    + (f'\n[kernel]\nidentity = "auto"\ncgroup = "{kernel_cgroup}"\n'
                       if kernel_cgroup else '\n[kernel]\nidentity = "off"\n'))
        return path

    def start_guardd(self, ns, state, env=None, kernel_cgroup=None):
        """Starts guardd; returns (process, seconds from exec to its 'enforcing:' line).
        Its log lines up to then are kept in p.early_log."""
        logf = open(state.rstrip("/") + ".guardd.log", "a")
        argv = ["ip", "netns", "exec", ns, self.guardd, "--state-dir", state,
                "--config", self.settings(kernel_cgroup)]
        early = []
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=env)
        self.procs.append(p)
        enforcing = None
        deadline = t0 + 60
        while time.monotonic() < deadline:
            line = p.stderr.readline()
            if not line:
                raise RuntimeError(f"guardd exited with {p.wait()}: see {logf.name}")
            logf.write(line)
            early.append(line)
            if "enforcing:" in line:
                enforcing = time.monotonic() - t0
                if "backend" in line:
                    self.facts["queue backend"] = line.rsplit("backend", 1)[1].strip()
                break
        if enforcing is None:
            raise RuntimeError("guardd did not report enforcing within 60 s")

        def drain():  # keep the pipe flowing so guardd never blocks on its log
            for l in p.stderr:
                logf.write(l)
            logf.close()
        threading.Thread(target=drain, daemon=True).start()
        p.guardd_state = state
        p.early_log = early
        return p, enforcing

    @staticmethod
    def proc_sample(pid):
        """(cpu seconds, rss kB, peak rss kB) of a process."""
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        rss = hwm = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        return cpu, rss, hwm

    def queue_counters(self, ns, queue=None):
        r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            f = line.split()
            if f and int(f[0]) == (QUEUE if queue is None else queue):
                return {"waiting": int(f[2]), "dropped": int(f[5]), "user_dropped": int(f[6]),
                        "id_sequence": int(f[7])}
        return {"waiting": 0, "dropped": 0, "user_dropped": 0, "id_sequence": 0}

    def record(self, bench, figure, value, baseline="", ratio="", goal="", met=""):
        self.summary.append((bench, figure, value, baseline, ratio, goal, met))

    # --- machine -----------------------------------------------------------------------
    def machine(self):
        model = ""
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        self.facts.update({
            "cores": os.cpu_count(),
            "cpu": model,
            "kernel": platform.release(),
            "memory": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') // 2**20} MiB",
            "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "build": self.build,
            "guardd": self.guardd,
            "mode": "quick" if self.quick else "full",
            "git": subprocess.run(["git", "-C", SOURCE, "describe", "--always", "--dirty"],
                                  capture_output=True, text=True).stdout.strip(),
        })

    # --- 1: connect() latency of an approved program --------------------------------------
    def bench_latency(self):
        log("== 1. connect() latency of an approved program to 127.0.0.1:25")
        none, floor, guard = self.netns("none"), self.netns("floor"), self.netns("guard")
        self.ns = {"none": none, "floor": floor, "guard": guard}
        for ns in (none, floor, guard):
            self.start([self.mgbench, "serve", "--port", "25"], ns=ns, ready="ready")
            self.start([self.mgbench, "serve", "--port", "8080"], ns=ns, ready="ready")
        self.start([self.mgbench, "nfq-accept", "--queue", QUEUE], ns=floor, ready="ready")
        self.state = os.path.join(self.tmp, "state")
        self.seed(self.state, "approve", self.client)
        self.seed(self.state, "deny", self.bot)
        self.quarantine(self.state, self.qclient)
        self.guardd_proc, enforcing = self.start_guardd(guard, self.state)
        count = 1500 if self.quick else 4000
        results = {}
        for label, holders in (("idle", None), ("2000x20", (2000, 20))):
            h = None
            if holders:
                t = time.monotonic()
                h = self.start([self.mgbench, "holders", "--count", holders[0], "--sockets",
                                holders[1]], ready="ready", stdin=subprocess.PIPE)
                log(f"   {h.ready_line} background processes with {holders[1]} sockets each "
                    f"({time.monotonic() - t:.1f} s to start)")
            r = self.bench("latency", "--ns", f"{none},{floor},{guard}", "--port", 25,
                           "--count", count, exe=self.client)
            raw(f"latency.{label}", r)
            if h:
                h.stdin.close()
                h.wait(60)
            res = {k.rsplit("-", 1)[1]: v for k, v in r["results"].items()}
            results[label] = res
            base = res["none"]["stats"]
            fl = res["floor"]["stats"]
            gd = res["guard"]["stats"]
            fails = {k: v["failures"] for k, v in res.items() if v["failures"]}
            added_floor = fl["median"] - base["median"]
            added_guard = gd["median"] - base["median"]
            ratio = added_guard / added_floor if added_floor > 0 else float("inf")
            log(f"   [{label}] median/p99 us: no rules {base['median']:.0f}/{base['p99']:.0f}, "
                f"do-nothing NFQUEUE {fl['median']:.0f}/{fl['p99']:.0f}, "
                f"guardd {gd['median']:.0f}/{gd['p99']:.0f}; added median: floor "
                f"{added_floor:.0f}, guardd {added_guard:.0f} (x{ratio:.2f} the floor)"
                + (f"; failures {fails}" if fails else ""))
            self.record("1 latency " + label, "guardd added median (us)", f"{added_guard:.0f}",
                        f"floor added {added_floor:.0f}", f"{ratio:.2f}", "<= 1.3", ratio <= 1.3)
            self.record("1 latency " + label, "guardd p99 (us)", f"{gd['p99']:.0f}",
                        f"no rules {base['p99']:.0f}, floor {fl['p99']:.0f}",
                        f"{gd['p99'] / base['p99']:.2f}", "< 1000", gd["p99"] < 1000)

    # --- 2: verdict throughput under a bot flood ------------------------------------------
    def flood(self, ns, exe, seconds, label, sample_pid=None, extra=()):
        """One flood with the approved client measuring latency alongside (paced)."""
        samples = []
        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                try:
                    samples.append((time.monotonic(), *self.proc_sample(sample_pid)))
                except (FileNotFoundError, ProcessLookupError):
                    return
                stop.wait(0.5)
        t = None
        if sample_pid:
            t = threading.Thread(target=sampler, daemon=True)
            t.start()
        ms = int(seconds * 1000)
        lat = subprocess.Popen([self.client, "latency", "--ns", f"{self.ns['none']},{ns}",
                                "--port", "25", "--rate", "100", "--duration-ms", str(ms),
                                "--timeout-ms", "3000"], stdout=subprocess.PIPE, text=True)
        self.procs.append(lat)
        q0 = self.queue_counters(ns)
        r = self.run_json([exe, "flood", "--ns", ns, "--duration-ms", str(ms), "--queue",
                           str(QUEUE), *map(str, extra)], timeout=seconds + 60)
        q1 = self.queue_counters(ns)
        out, _ = lat.communicate(timeout=seconds + 60)
        latency = json.loads(out.strip().splitlines()[-1])
        stop.set()
        if t:
            t.join()
        r["queue_before"], r["queue_after"] = q0, q1
        raw(f"flood.{label}", {"bot": r, "approved_latency": latency, "samples": samples})
        return r, latency, samples

    @staticmethod
    def verdicts_per_s(r):
        """Packets guardd gave a verdict: queued, less what the kernel dropped and what
        still waits."""
        q0, q1 = r["queue_before"], r["queue_after"]
        decided = (q1["id_sequence"] - q0["id_sequence"]) - (q1["dropped"] - q0["dropped"]) \
            - (q1["user_dropped"] - q0["user_dropped"]) - q1["waiting"]
        return decided / r["seconds"]

    def bench_flood(self):
        log("== 2. verdict throughput: a bot opening connections to distinct 127.x.y.z:25")
        seconds = 4 if self.quick else 10
        guard, floor = self.ns["guard"], self.ns["floor"]
        # The floor first: how fast the kernel queue and a do-nothing listener go.
        fr, flat, _ = self.flood(floor, self.bot, seconds / 2, "floor")
        # The denied bot: each attempt is decided (reject, TCP reset) and recorded.
        pid = self.guardd_proc.pid
        cpu0 = self.proc_sample(pid)[0]
        gr, glat, samples = self.flood(guard, self.bot, seconds, "guardd-denied", sample_pid=pid)
        cpu1, rss1, hwm1 = self.proc_sample(pid)
        cpu_pct = 100 * (cpu1 - cpu0) / gr["seconds"]
        floor_rate = fr["decided_per_s"]
        # Verdicts given, from the kernel's queue counters: while the queue overflows guardd
        # drops a denied bot's SYNs instead of resetting them (the tarpit), so
        # the bot's count of resets undercounts guardd's decisions.
        rate = self.verdicts_per_s(gr)
        rss_series = [s[2] for s in samples]
        log(f"   do-nothing NFQUEUE: {floor_rate:.0f} connections decided/s "
            f"(kernel queue drops {fr['queue_dropped']})")
        log(f"   guardd, denied bot: {rate:.0f} verdicts/s ({gr['decided_per_s']:.0f} resets/s "
            f"seen by the bot, per second: {gr['per_second']}), "
            f"kernel queue drops {gr['queue_dropped']}, bot gave up on {gr['timed_out']}")
        log(f"   guardd CPU {cpu_pct:.0f}% of one core; RSS over time (MB): "
            + " ".join(f"{x / 1024:.1f}" for x in rss_series[::2]) + f"; peak {hwm1 / 1024:.1f} MB")
        g = glat["results"][guard]["stats"]
        b = glat["results"][self.ns["none"]]["stats"]
        log(f"   approved program during the flood: median {g['median']:.0f} us, p99 "
            f"{g['p99']:.0f} us (no rules, same time: p99 {b['p99']:.0f} us), failures "
            f"{glat['results'][guard]['failures']}")
        self.record("2 flood", "decided/s (denied bot)", f"{rate:.0f}",
                    f"floor {floor_rate:.0f}", f"{rate / floor_rate:.2f}" if floor_rate else "",
                    ">= 20000", rate >= 20000)
        self.record("2 flood", "guardd CPU (% of a core)", f"{cpu_pct:.0f}", "", "", "", "")
        self.record("2 flood", "guardd peak RSS (MB)", f"{hwm1 / 1024:.1f}",
                    f"start {rss_series[0] / 1024:.1f}" if rss_series else "", "", "< 32, flat",
                    hwm1 < 32 * 1024)
        self.record("2 flood", "approved p99 during flood (us)", f"{g['p99']:.0f}",
                    f"no rules {b['p99']:.0f}", f"{g['p99'] / b['p99']:.2f}", "< 5000",
                    g["p99"] < 5000 and glat["results"][guard]["failures"] == 0)
        if not self.quick:
            # An unknown bot: held (dropped, recorded once per connection); it gives up
            # after 300 ms as TCP would retry after 1 s.
            hr, hlat, hs = self.flood(guard, self.newbot, seconds / 2, "guardd-unknown",
                                      sample_pid=pid)
            hrate = self.verdicts_per_s(hr)
            hg = hlat["results"][guard]["stats"]
            log(f"   guardd, unknown (held) bot: {hrate:.0f} decided/s, kernel queue drops "
                f"{hr['queue_dropped']}; approved p99 {hg['p99']:.0f} us")
            self.record("2 flood", "decided/s (unknown bot, held)", f"{hrate:.0f}",
                        f"floor {floor_rate:.0f}", f"{hrate / floor_rate:.2f}" if floor_rate else "",
                        ">= 20000", hrate >= 20000)
            self.record("2 flood", "approved p99 during held flood (us)", f"{hg['p99']:.0f}", "",
                        "", "< 5000", hg["p99"] < 5000)
        _, rss, hwm = self.proc_sample(pid)
        log(f"   guardd after the floods: RSS {rss / 1024:.1f} MB, peak {hwm / 1024:.1f} MB")

    # --- 3: traffic that is not mail ------------------------------------------------------
    def bench_other_port(self):
        log("== 3. traffic that is not mail (port 8080), with and without guardd")
        none, guard = self.ns["none"], self.ns["guard"]
        q0 = self.queue_counters(guard)
        rounds = 3 if self.quick else 6
        bulk = self.bench("bulk", "--ns", f"{none},{guard}", "--port", 8080, "--ms", 1000,
                          "--rounds", rounds)
        lat = self.bench("latency", "--ns", f"{none},{guard}", "--port", 8080, "--count",
                         1000 if self.quick else 3000)
        q1 = self.queue_counters(guard)
        raw("other_port", {"bulk": bulk, "latency": lat, "queue_before": q0, "queue_after": q1})
        bn, bg = bulk["results"][none], bulk["results"][guard]
        ln, lg = lat["results"][none]["stats"], lat["results"][guard]["stats"]
        queued = q1["id_sequence"] - q0["id_sequence"]
        log(f"   bulk transfer MB/s (median of {rounds} x 1 s): no guardd {bn['median']:.0f}, "
            f"guardd {bg['median']:.0f} (ratio {bg['median'] / bn['median']:.2f})")
        log(f"   connect median/p99 us: no guardd {ln['median']:.0f}/{ln['p99']:.0f}, guardd "
            f"{lg['median']:.0f}/{lg['p99']:.0f}; packets that reached the queue: {queued}")
        self.record("3 other port", "bulk MB/s", f"{bg['median']:.0f}", f"{bn['median']:.0f}",
                    f"{bg['median'] / bn['median']:.2f}", "no difference", "")
        self.record("3 other port", "connect median (us)", f"{lg['median']:.0f}",
                    f"{ln['median']:.0f}", f"{lg['median'] / ln['median']:.2f}", "no difference", "")
        self.record("3 other port", "packets queued to user space", str(queued), "", "", "0",
                    queued == 0)

    # --- 4: store growth -------------------------------------------------------------------
    def bench_store(self):
        n = 200_000 if self.quick else 1_000_000
        log(f"== 4. store growth over {n:,} attempts (written through guardd's AttemptWriter)")
        state = os.path.join(self.tmp, "bigstate")
        self.seed(state, "approve", self.client)
        r = self.bench("store-fill", "--dir", state, "--attempts", n, "--checkpoint", n // 10,
                       timeout=900)
        raw("store_fill", r)
        for c in r["checkpoints"]:
            log(f"   {c['written']:>9,} attempts: db {c['db_bytes'] / 2**20:6.1f} MiB "
                f"(+wal {c['wal_bytes'] / 2**20:.1f}), writer {c['writes_per_s']:>7,.0f}/s, "
                f"newest page median {c['newest_page_ms']['median']:.2f} ms, "
                f"process RSS {c['rss_kb'] / 1024:.1f} MB")
        last = r["checkpoints"][-1]
        first = r["checkpoints"][0]
        self.record("4 store", f"db size at {n:,} (MiB)", f"{last['db_bytes'] / 2**20:.0f}",
                    f"{last['db_bytes'] / last['rows']:.0f} B/attempt", "", "", "")
        self.record("4 store", "writer attempts/s (last 10%)", f"{last['writes_per_s']:.0f}",
                    f"first 10%: {first['writes_per_s']:.0f}",
                    f"{last['writes_per_s'] / first['writes_per_s']:.2f}", "", "")
        # guardd on the big store: start-up, RSS, and the newest page as a user sees it.
        ns = self.netns("store")
        env = None
        bus = None
        if os.access(self.guardctl, os.X_OK) and shutil.which("dbus-daemon"):
            bus = self.private_bus()
            env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=bus)
        g, enforcing = self.start_guardd(ns, state, env=env)
        _, rss, hwm = self.proc_sample(g.pid)
        log(f"   guardd on that store: enforcing after {enforcing * 1000:.0f} ms, RSS "
            f"{rss / 1024:.1f} MB")
        self.record("4 store", f"guardd RSS on {n:,} attempts (MB)", f"{rss / 1024:.1f}", "", "",
                    "< 32", rss < 32 * 1024)
        self.record("5 start-up", f"exec to enforcing, {n:,}-attempt store (ms)",
                    f"{enforcing * 1000:.0f}", "", "", "", "")
        lib = self.bench("newest-page", "--dir", state, "--repeats", 50)
        raw("newest_page_lib", lib)
        how = "store library (SqliteStore::attempts, 50 rows)"
        page_ms = lib["newest_page"]["median"]
        via_ctl = self.guardctl_page(env) if bus else None
        if via_ctl is not None:
            page_ms, how = via_ctl, "`guardctl attempts` wall time (process start + bus + query)"
        log(f"   newest page: store library median {lib['newest_page']['median']:.2f} ms, p99 "
            f"{lib['newest_page']['p99']:.2f} ms"
            + (f"; guardctl attempts {via_ctl:.1f} ms" if via_ctl is not None else
               "; guardctl could not reach guardd over the bus (see README)"))
        self.record("4 store", "newest page (ms)", f"{page_ms:.2f}", how, "", "< 50", page_ms < 50)
        self.stop(g)

    def private_bus(self):
        d = os.path.join(self.tmp, "bus")
        os.makedirs(d, exist_ok=True)
        sock = os.path.join(d, "system_bus_socket")
        with open(os.path.join(SOURCE, "tests", "integration", "data", "system-bus.conf")) as f:
            text = f.read().replace("@SOCKET@", sock).replace(
                "@POLICY@", os.path.join(SOURCE, "install", "org.mailguard.Guard1.conf"))
        conf = os.path.join(d, "system-bus.conf")
        with open(conf, "w") as f:
            f.write(text)
        p = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--nofork", "--nopidfile",
                              "--nosyslog"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(sock)
                return f"unix:path={sock}"
            except OSError:
                time.sleep(0.05)
            finally:
                s.close()
        return None

    def guardctl_page(self, env):
        """Median wall time of `guardctl attempts` (50 rows), or None when it cannot work."""
        times = []
        deadline = time.monotonic() + 5
        while True:
            r = subprocess.run([self.guardctl, "--json", "attempts"], capture_output=True,
                               text=True, env=env, timeout=30)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                log(f"   guardctl attempts failed: {r.stderr.strip()[:200]}")
                return None
            time.sleep(0.2)
        for _ in range(20):
            t = time.monotonic()
            r = subprocess.run([self.guardctl, "--json", "attempts"], capture_output=True,
                               text=True, env=env, timeout=30)
            times.append((time.monotonic() - t) * 1000)
        times.sort()
        raw("newest_page_guardctl", {"ms": times, "rows": len(json.loads(r.stdout))})
        return times[len(times) // 2]

    # --- 5: start-up ---------------------------------------------------------------------
    def bench_startup(self):
        log("== 5. start-up: exec to enforcing, and re-applying the ruleset")
        ns = self.netns("start")
        first, again = [], []
        for i in range(3):
            state = os.path.join(self.tmp, f"start{i}")
            subprocess.run(["ip", "netns", "exec", ns, self.guardd, "--remove-rules"],
                           capture_output=True)
            g, t = self.start_guardd(ns, state)  # empty store, no table yet
            first.append(t * 1000)
            self.stop(g)  # the table stays (fail-closed)
            g, t = self.start_guardd(ns, state)  # restart: the table is replaced
            again.append(t * 1000)
            self.stop(g)
        apply = self.bench("apply-time", "--ns", ns, "--rounds", 20 if self.quick else 100)
        raw("startup", {"first_ms": first, "restart_ms": again, "apply": apply})
        first.sort()
        again.sort()
        log(f"   exec to enforcing, empty store: {first[1]:.0f} ms (runs {first}); restart over "
            f"its own table: {again[1]:.0f} ms")
        log(f"   re-applying the table in one batch (RulesetManager::apply): median "
            f"{apply['apply']['median'] / 1000:.2f} ms, p99 {apply['apply']['p99'] / 1000:.2f} ms; "
            f"open + backend probe {apply['open_and_probe'] / 1000:.2f} ms")
        self.record("5 start-up", "exec to enforcing, empty store (ms)", f"{first[1]:.0f}", "", "",
                    "", "")
        self.record("5 start-up", "restart to enforcing (ms)", f"{again[1]:.0f}", "", "", "", "")
        self.record("5 start-up", "re-apply table (ms)", f"{apply['apply']['median'] / 1000:.2f}",
                    f"p99 {apply['apply']['p99'] / 1000:.2f}", "", "", "")

    # --- 6: identity the kernel vouches for ------------------------------------------------
    def queued_in(self, ns):
        return self.queue_counters(ns)["id_sequence"]

    def latency(self, exe, pairs, port=25, **opts):
        """Interleaved latency, one worker per (namespace, cgroup) pair."""
        argv = ["latency", "--ns", ",".join(n for n, _ in pairs),
                "--cgroups", ",".join(c or "-" for _, c in pairs), "--port", port]
        for k, v in opts.items():
            argv += [f"--{k.replace('_', '-')}", v]
        r = self.bench(*argv, exe=exe)
        return {k.rsplit("-", 1)[1]: v for k, v in r["results"].items()}, r

    def bpf_maps(self, pid):
        """guardd's BPF maps as the kernel accounts them: every fd of guardd that is a map
        (anon_inode:bpf-map), its fdinfo (memlock, max_entries) and, through bpftool, its
        name and, for the counters map, the ring-buffer losses."""
        maps = []
        fd_dir = f"/proc/{pid}/fd"
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) != "anon_inode:bpf-map":
                    continue
                info = {}
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    for line in f:
                        k, _, v = line.partition(":")
                        info[k.strip()] = v.strip()
                maps.append({"id": int(info.get("map_id", 0)),
                             "type": int(info.get("map_type", 0)),
                             "max_entries": int(info.get("max_entries", 0)),
                             "memlock": int(info.get("memlock", 0))})
            except (OSError, ValueError):
                continue
        lost = None
        if shutil.which("bpftool"):
            for m in maps:
                r = subprocess.run(["bpftool", "-j", "map", "show", "id", str(m["id"])],
                                   capture_output=True, text=True)
                if r.returncode == 0:
                    m["name"] = json.loads(r.stdout).get("name", "")
                if m.get("name") == "counters":
                    d = subprocess.run(["bpftool", "-j", "map", "lookup", "id", str(m["id"]),
                                        "key", "0", "0", "0", "0"], capture_output=True, text=True)
                    if d.returncode == 0:
                        try:
                            v = json.loads(d.stdout)
                            lost = sum(int(c["value"]) for c in v.get("formatted", {})
                                       .get("values", []))
                        except (ValueError, KeyError, TypeError):
                            lost = None
        return maps, lost

    @staticmethod
    def resident_by_mapping(pid, top=8):
        """What is resident, by mapping: /proc/PID/smaps summed per name (the file, or
        [heap], [stack], [anon], ...), largest first, as (name, rss kB, anonymous kB)."""
        sums = {}
        name = None
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head = line.split()
                if not head:
                    continue
                if "-" in head[0] and not head[0].endswith(":"):
                    name = head[5] if len(head) > 5 else "[anon]"
                    if name.startswith("/"):
                        name = os.path.basename(name)
                    sums.setdefault(name, [0, 0])
                elif head[0] == "Rss:":
                    sums[name][0] += int(head[1])
                elif head[0] == "Anonymous:":
                    sums[name][1] += int(head[1])
        return sorted(((n, r, a) for n, (r, a) in sums.items()), key=lambda x: -x[1])[:top]

    def bench_kernel(self):
        log("== 6. identity the kernel vouches for: BPF connect hooks (guardd [kernel] "
            "identity = \"auto\")")
        if not self.mount_cgroups():
            self.record("6 kernel", "not measured", "see the log", "", "", "", "")
            return
        none, floor = self.ns["none"], self.ns["floor"]
        kguard, rfloor = self.netns("kguard"), self.netns("rfloor")
        self.ns.update({"kguard": kguard, "rfloor": rfloor})
        for ns in (kguard, rfloor):
            self.start([self.mgbench, "serve", "--port", "25"], ns=ns, ready="ready")
        self.start([self.mgbench, "serve", "--port", "8080"], ns=kguard, ready="ready")
        # The conntrack floor: `ctonly` has one table, an output chain with only `ct state
        # established,related accept` (which turns conntrack on for the namespace), and
        # nothing else. Any host firewall needs conntrack; what guardd's table, hook and
        # wake-ups add is measured against it as well as against no rules.
        ctonly = self.netns("ctonly")
        self.ns["ctonly"] = ctonly
        for port in ("25", "8080"):
            self.start([self.mgbench, "serve", "--port", port], ns=ctonly, ready="ready")
        subprocess.run(["ip", "netns", "exec", ctonly, "nft", "-f", "-"], check=True, text=True,
                       input="table inet ctfloor {\n chain out {\n  type filter hook output "
                             "priority filter; policy accept;\n  ct state established,related "
                             "accept\n }\n}\n")
        self.start([self.mgbench, "nfq-accept", "--queue", QUEUE, "--verdict", "reject"],
                   ns=rfloor, ready="ready")
        state = os.path.join(self.tmp, "kstate")
        self.seed(state, "approve", self.client)
        self.seed(state, "deny", self.bot)
        self.quarantine(state, self.qclient)
        g, enforcing = self.start_guardd(kguard, state, kernel_cgroup=self.hooked)
        self.kguardd = g
        how = [l.strip() for l in g.early_log if "attribution:" in l]
        log(f"   guardd: {how[-1] if how else 'did not say how it attributes'}")
        self.facts["kernel attribution"] = how[-1].split("attribution:", 1)[1].strip() if how \
            else "unknown"
        if not how or "attribution: kernel" not in how[-1]:
            log("   kernel attribution not in force: nothing to measure (guardd fell back)")
            self.record("6 kernel", "not measured", "guardd fell back to /proc", "", "", "", "")
            self.stop(g)
            return
        hooked, plain = self.hooked, self.plain
        # The approval reaches the kernel's map once guardd has hashed the client.
        deadline = time.monotonic() + 20
        while True:
            before = self.queued_in(kguard)
            res, _ = self.latency(self.client, [(kguard, hooked)], count=3, warmup=0,
                                  timeout_ms=1000)
            if res["kguard"]["failures"] == 0 and self.queued_in(kguard) == before:
                break
            if time.monotonic() > deadline:
                log("   the approved client never took the fast path: "
                    f"{res['kguard']}")
                break

        # 6a. approved connect: never leaves the kernel.
        count = 1500 if self.quick else 4000
        q0 = self.queued_in(kguard)
        # `ctonly` (conntrack on, no other rule: see below) in the same batch, so that what
        # guardd adds over the conntrack floor shares the batch's noise.
        res, r = self.latency(self.client, [(none, plain), (floor, plain), (ctonly, plain),
                                            (kguard, hooked)], count=count)
        queued = self.queued_in(kguard) - q0
        raw("kernel.approved", {"latency": r, "queued_in_kguard": queued})
        base, fl, kg = res["none"]["stats"], res["floor"]["stats"], res["kguard"]["stats"]
        added = kg["median"] - base["median"]
        ct_floor = res["ctonly"]["stats"]["median"] - base["median"]
        log(f"   approved, median/p99 us: no rules {base['median']:.1f}/{base['p99']:.0f}, "
            f"do-nothing NFQUEUE {fl['median']:.1f}/{fl['p99']:.0f}, guardd kernel path "
            f"{kg['median']:.1f}/{kg['p99']:.0f}; added median {added:+.1f} us; packets that "
            f"reached guardd's queue: {queued}; failures "
            f"{ {k: v['failures'] for k, v in res.items()} }")
        self.record("6 kernel approved", "guardd added median (us)", f"{added:.1f}",
                    f"no rules {base['median']:.1f}, floor added "
                    f"{fl['median'] - base['median']:.0f}", "", "<= 2", added <= 2)
        # The hook alone: guardd stopped (SIGSTOP, it is ours), so nothing wakes in user
        # space on the ring buffer; the hook still decides (it never waits for guardd) and
        # counts the events it could not report once the buffer is full.
        os.kill(g.pid, signal.SIGSTOP)
        try:
            alone, ra = self.latency(self.client, [(none, plain), (kguard, hooked)],
                                     count=count // 2)
        finally:
            os.kill(g.pid, signal.SIGCONT)
        raw("kernel.approved.guardd_stopped", ra)
        hook_only = alone["kguard"]["stats"]["median"] - alone["none"]["stats"]["median"]
        log(f"   same, guardd stopped (no user-space wake-up per connect): added median "
            f"{hook_only:+.1f} us")
        self.record("6 kernel approved", "added median, guardd stopped (us)", f"{hook_only:.1f}",
                    f"no rules {alone['none']['stats']['median']:.1f}", "", "", "")
        # What the namespace's table costs a connect that is not mail (conntrack, the
        # table's chains; port 8080 is no mail port, the hook returns at its first test):
        # the rest of the added time is the hook, the mark rule and guardd's wake-up.
        # The conntrack floor again, on port 8080 (next to kguard's own 8080 figure).
        other, ro = self.latency(self.client, [(none, plain), (ctonly, plain), (kguard, hooked)],
                                 port=8080, count=count // 2)
        raw("kernel.approved.port8080", ro)
        table_cost = other["kguard"]["stats"]["median"] - other["none"]["stats"]["median"]
        ct_floor_8080 = other["ctonly"]["stats"]["median"] - other["none"]["stats"]["median"]
        log(f"   conntrack alone (a table with only `ct state established,related accept`): "
            f"added median {ct_floor:+.1f} us (port 25, batch of 6a), {ct_floor_8080:+.1f} us "
            f"(port 8080)")
        self.record("6 kernel approved", "conntrack floor, added median (us)", f"{ct_floor:.1f}",
                    f"port 8080 batch: {ct_floor_8080:.1f}", "", "", "")
        self.record("6 kernel approved", "guardd added median over the conntrack floor (us)",
                    f"{added - ct_floor:.1f}", "same batch", "", "<= 2", added - ct_floor <= 2)
        log(f"   same client, port 8080 (no mail port) in the same namespaces: added median "
            f"{table_cost:+.1f} us (the table and conntrack); so the hook and the mark rule "
            f"add {added - table_cost:+.1f} us")
        self.record("6 kernel approved", "added median less the table's own (us)",
                    f"{added - table_cost:.1f}", f"port 8080 added {table_cost:.1f}", "",
                    "<= 2", added - table_cost <= 2)
        self.record("6 kernel approved", "guardd p99 (us)", f"{kg['p99']:.0f}",
                    f"no rules {base['p99']:.0f}", f"{kg['p99'] / base['p99']:.2f}", "", "")
        self.record("6 kernel approved", "packets queued to user space", str(queued), "", "",
                    "0", queued == 0)

        # 6b. a program the kernel cannot decide: queued, attributed by its stamp. The
        # client has to see the verdict to time it, and an unknown program's verdict is a
        # drop (hold); a quarantined program takes the same queued path (stamp, describe,
        # detector, decision) and is refused with a reset, so the floor here refuses too.
        count_q = 1000 if self.quick else 3000
        # Port 465: a mail port with no listener, so with no rules the kernel itself
        # answers with a reset, the same answer the refusing floor and guardd give.
        res, r = self.latency(self.qclient, [(none, plain), (rfloor, plain),
                                             (self.ns["guard"], plain), (kguard, hooked)],
                              port=465, count=count_q, refused_ok=1)
        raw("kernel.queued", r)
        base, fl = res["none"]["stats"], res["rfloor"]["stats"]
        pg, kg = res["guard"]["stats"], res["kguard"]["stats"]
        fadd = fl["median"] - base["median"]
        padd = pg["median"] - base["median"]
        kadd = kg["median"] - base["median"]
        fails = {k: (v["failures"], v.get("errors")) for k, v in res.items() if v["failures"]}
        log(f"   queued (quarantined program, refused, port 465), median/p99 us: no rules "
            f"{base['median']:.0f}/{base['p99']:.0f}, do-nothing NFQUEUE refusing "
            f"{fl['median']:.0f}/{fl['p99']:.0f}, guardd /proc {pg['median']:.0f}/{pg['p99']:.0f}, "
            f"guardd kernel stamps {kg['median']:.0f}/{kg['p99']:.0f}; added median: floor "
            f"{fadd:.0f}, /proc {padd:.0f} (x{padd / fadd:.2f}), kernel {kadd:.0f} "
            f"(x{kadd / fadd:.2f})" + (f"; failures {fails}" if fails else ""))
        self.record("6 kernel queued", "guardd added median, stamp (us)", f"{kadd:.0f}",
                    f"floor added {fadd:.0f}", f"{kadd / fadd:.2f}", "<= 1.3", kadd / fadd <= 1.3)
        self.record("6 kernel queued", "guardd added median, /proc (us)", f"{padd:.0f}",
                    f"floor added {fadd:.0f}", f"{padd / fadd:.2f}", "<= 1.3", padd / fadd <= 1.3)

        # The same refusing floor with the client in the hooked cgroup: what the connect hook
        # (its stamp and its event) adds to a queued connect, with no guardd in the path.
        res_h, r_h = self.latency(self.qclient, [(none, plain), (rfloor, hooked)], port=465,
                                  count=count_q, refused_ok=1)
        raw("kernel.queued.hooked_floor", r_h)
        hfl = res_h["rfloor"]["stats"]
        hadd = hfl["median"] - res_h["none"]["stats"]["median"]
        log(f"   same, the floor's client in the hooked cgroup (no guardd in the path): no rules "
            f"{res_h['none']['stats']['median']:.0f} us, refusing floor "
            f"{hfl['median']:.0f} us: added median {hadd:.0f} (the hook's part of a queued "
            f"connect: {hadd - fadd:+.0f} us; guardd's own: {kadd - hadd:.0f} us, "
            f"x{kadd / hadd:.2f} the hooked floor)")
        self.record("6 kernel queued", "guardd added median over the hooked floor (us)",
                    f"{kadd:.0f}", f"hooked floor added {hadd:.0f}", f"{kadd / hadd:.2f}", "", "")

        # 6c. the approved program's p99 during a 20,000 SYN/s bot flood, against its p99
        # without the flood (paced the same, measured just before).
        seconds = 4 if self.quick else 8
        ms = int(seconds * 1000)
        pairs = [(none, plain), (kguard, hooked)]
        quiet, rq = self.latency(self.client, pairs, rate=100, duration_ms=ms, timeout_ms=3000)
        raw("kernel.flood.quiet", rq)
        qp99 = quiet["kguard"]["stats"]["p99"]
        log(f"   approved, paced 100/s, no flood: p99 {qp99:.0f} us (no rules {quiet['none']['stats']['p99']:.0f})")
        for label, exe, what in (("denied", self.bot, "denied bot (refused in the kernel)"),
                                 ("unknown", self.newbot, "unknown bot (queued, held)")):
            lat = subprocess.Popen([self.client, "latency", "--ns", f"{none},{kguard}",
                                    "--cgroups", f"{plain},{hooked}", "--port", "25", "--rate",
                                    "100", "--duration-ms", str(ms), "--timeout-ms", "3000"],
                                   stdout=subprocess.PIPE, text=True)
            self.procs.append(lat)
            q0 = self.queue_counters(kguard)
            cpu0 = self.proc_sample(g.pid)[0]
            t0 = time.monotonic()
            # 20,000/s with a 300 ms give-up needs 6,000 sockets in flight when held.
            fr = self.run_json([exe, "flood", "--ns", kguard, "--cgroup", hooked, "--rate", "20000",
                                "--inflight", "8192", "--duration-ms", str(ms), "--queue",
                                str(QUEUE)], timeout=seconds + 60)
            cpu = 100 * (self.proc_sample(g.pid)[0] - cpu0) / (time.monotonic() - t0)
            q1 = self.queue_counters(kguard)
            out, _ = lat.communicate(timeout=seconds + 60)
            during = {k.rsplit("-", 1)[1]: v for k, v in
                      json.loads(out.strip().splitlines()[-1])["results"].items()}
            raw(f"kernel.flood.{label}", {"bot": fr, "approved": during, "queue_before": q0,
                                          "queue_after": q1, "guardd_cpu_pct": cpu})
            dp99 = during["kguard"]["stats"]["p99"]
            offered = fr["started"] / fr["seconds"]
            log(f"   {what} at {offered:.0f} connects/s (EPERM {fr['refused_at_connect_per_s']:.0f}/s, "
                f"queued {q1['id_sequence'] - q0['id_sequence']}, kernel queue drops "
                f"{q1['dropped'] - q0['dropped']}), guardd CPU {cpu:.0f}%: approved p99 "
                f"{dp99:.0f} us (x{dp99 / qp99:.2f} its p99 without the flood), failures "
                f"{during['kguard']['failures']}")
            self.record("6 kernel flood", f"approved p99 during a {offered / 1000:.0f}k/s {label} "
                        "bot flood (us)", f"{dp99:.0f}", f"no flood {qp99:.0f}",
                        f"{dp99 / qp99:.2f}", "<= 1.5x", dp99 <= 1.5 * qp99
                        and during["kguard"]["failures"] == 0)

        # 6d. the denied bot as fast as it goes: connect() fails in the hook, no SYN leaves.
        # Baseline: the same bot with no hook and no rules (the kernel answers each SYN to
        # a closed port with a reset).
        seconds = 3 if self.quick else 6
        ms = int(seconds * 1000)
        nb = self.run_json([self.bot, "flood", "--ns", none, "--cgroup", plain, "--duration-ms",
                            str(ms), "--queue", str(QUEUE)], timeout=seconds + 60)
        cpu0 = self.proc_sample(g.pid)[0]
        t0 = time.monotonic()
        db = self.run_json([self.bot, "flood", "--ns", kguard, "--cgroup", hooked,
                            "--duration-ms", str(ms), "--queue", str(QUEUE)], timeout=seconds + 60)
        cpu = 100 * (self.proc_sample(g.pid)[0] - cpu0) / (time.monotonic() - t0)
        maps, lost = self.bpf_maps(g.pid)
        raw("kernel.denied_rate", {"no_rules": nb, "kernel": db, "guardd_cpu_pct": cpu,
                                   "events_lost_total": lost})
        rate = db["refused_at_connect_per_s"]
        log(f"   denied bot, unpaced: {rate:.0f} refused connects/s (EPERM; other outcomes "
            f"{db['started'] - db['refused_at_connect']}), guardd CPU {cpu:.1f}% of a core; "
            f"same bot, no hook, no rules: {nb['decided_per_s']:.0f} connects refused by "
            f"the kernel/s; ring-buffer events lost so far: {lost}")
        self.record("6 kernel denied", "refused connects/s (EPERM)", f"{rate:.0f}",
                    f"no hook, reset by the kernel {nb['decided_per_s']:.0f}/s",
                    f"{rate / nb['decided_per_s']:.2f}" if nb["decided_per_s"] else "",
                    ">= 100000", rate >= 100000)
        self.record("6 kernel denied", "guardd CPU meanwhile (% of a core)", f"{cpu:.1f}", "",
                    "", "< 5", cpu < 5)
        self.record("6 kernel denied", "ring-buffer events lost (whole run)",
                    "unknown" if lost is None else str(lost), "", "", "counted", "")

        # 6e. memory.
        _, rss, hwm = self.proc_sample(g.pid)
        total = sum(m["memlock"] for m in maps)
        resident = self.resident_by_mapping(g.pid)
        raw("kernel.memory", {"rss_kb": rss, "hwm_kb": hwm, "maps": maps,
                              "resident_by_mapping": resident})
        log("   resident, largest mappings (kB, of it anonymous): " + ", ".join(
            f"{n} {r} ({a})" for n, r, a in resident))
        log(f"   guardd RSS {rss / 1024:.1f} MB (peak {hwm / 1024:.1f}); BPF maps "
            f"{total / 2**20:.2f} MiB memlock: " + ", ".join(
                f"{m.get('name', m['id'])} {m['memlock'] / 1024:.0f} KiB" for m in
                sorted(maps, key=lambda m: -m["memlock"])))
        self.record("6 kernel memory", "guardd RSS, kernel path (MB)", f"{rss / 1024:.1f}",
                    f"peak {hwm / 1024:.1f}", "", "< 32", hwm < 32 * 1024)
        self.record("6 kernel memory", "BPF map memory (MiB, memlock)", f"{total / 2**20:.2f}",
                    f"{len(maps)} maps", "", "reported", "")
        self.stop(g)

    # --- OpenSnitch ---------------------------------------------------------------------------
    OPENSNITCH_DEBS = ("opensnitch", "iptables", "libxtables12", "libip4tc2", "libip6tc2")

    def bench_opensnitch(self):
        """OpenSnitch 1.5.8 (Debian 12's) side by side, confined: its .deb and iptables'
        (its "iptables" firewall runs the iptables command, absent here) fetched with
        `apt-get download` and unpacked with `dpkg -x` into the bench's folder (nothing is
        installed, no service started); opensnitchd run by hand in its own network
        namespace (its NFQUEUE rules go there) and its own mount namespace, where an overlay
        over /etc adds /etc/opensnitchd (1.5.8 reads its config from there, it has no
        option for another path) with ProcMonitorMethod "proc" (the default "ebpf" would
        load kprobes that see every process of the host), default action allow, no UI
        (nothing listens on its UI socket, in the bench's folder). Its DNS eBPF module is
        not in the package (it looks for /usr/lib/opensnitchd/ebpf, which does not exist):
        nothing is attached outside the namespaces. Measured: the approved client's
        connects, which opensnitchd queues, looks up in /proc and allows."""
        log("== OpenSnitch side by side (opensnitchd 1.5.8, /proc monitor, default allow)")
        d = os.path.join(self.tmp, "opensnitch")
        os.makedirs(d)
        r = subprocess.run(["apt-get", "download", *self.OPENSNITCH_DEBS], cwd=d,
                           capture_output=True, text=True)
        if r.returncode != 0:
            why = "apt-get download failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
            log(f"   not run: {why}")
            self.record("OpenSnitch", "added median (us)", "not run", why, "", "", "")
            return
        root = os.path.join(d, "root")
        for deb in sorted(os.listdir(d)):
            if deb.endswith(".deb"):
                subprocess.run(["dpkg", "-x", os.path.join(d, deb), root], check=True)
        libdir = os.path.join(root, "usr", "lib", "x86_64-linux-gnu")
        bindir = os.path.join(d, "bin")
        os.makedirs(bindir)
        for name in ("iptables", "ip6tables"):
            os.symlink(os.path.join(root, "usr", "sbin", "xtables-nft-multi"),
                       os.path.join(bindir, name))
        etc = os.path.join(d, "etc")
        conf_dir = os.path.join(etc, "opensnitchd")
        shutil.copytree(os.path.join(root, "etc", "opensnitchd"), conf_dir)
        conf_path = os.path.join(conf_dir, "default-config.json")
        with open(conf_path) as f:
            conf = json.load(f)
        ui = "unix://" + os.path.join(d, "osui.sock")
        conf.update({"DefaultAction": "allow", "ProcMonitorMethod": "proc",
                     "Firewall": "iptables", "LogLevel": 2})
        conf["Server"] = {"Address": ui, "LogFile": os.path.join(d, "opensnitchd.log")}
        with open(conf_path, "w") as f:
            json.dump(conf, f)
        rules = os.path.join(d, "rules")
        os.makedirs(rules)
        ns = self.netns("osnitch")
        self.ns["osnitch"] = ns
        self.start([self.mgbench, "serve", "--port", "25"], ns=ns, ready="ready")
        script = (f"mount -t overlay overlay -o lowerdir={etc}:/etc /etc || exit 1; "
                  f"export PATH={bindir}:$PATH LD_LIBRARY_PATH={libdir} "
                  f"XTABLES_LIBDIR={libdir}/xtables; exec "
                  f"{os.path.join(root, 'usr', 'bin', 'opensnitchd')} -rules-path {rules} "
                  f"-ui-socket {ui} -process-monitor-method proc -log-file "
                  f"{os.path.join(d, 'opensnitchd.log')}")
        p = self.start(["unshare", "-m", "--propagation", "private", "sh", "-c", script], ns=ns)
        iptables = ["ip", "netns", "exec", ns, os.path.join(bindir, "iptables"), "-t", "mangle",
                    "-S", "OUTPUT"]
        env = dict(os.environ, LD_LIBRARY_PATH=libdir, XTABLES_LIBDIR=f"{libdir}/xtables")
        deadline = time.monotonic() + 20
        while "NFQUEUE" not in subprocess.run(iptables, capture_output=True, text=True,
                                              env=env).stdout:
            if p.poll() is not None or time.monotonic() > deadline:
                why = "opensnitchd did not install its NFQUEUE rule (see its log)"
                log(f"   not run: {why}")
                self.record("OpenSnitch", "added median (us)", "not run", why, "", "", "")
                return
            time.sleep(0.1)
        q0 = self.queue_counters(ns, queue=0)["id_sequence"]  # opensnitchd's queue: 0
        count = 1000 if self.quick else 3000
        pairs = [(self.ns["none"], None), (self.ns["floor"], None), (self.ns["guard"], None),
                 (ns, None)]
        # (guardd's kernel path is measured in 6a: its guardd is stopped by now, and its
        # table, left to fail closed, would refuse the client.)
        res, r = self.latency(self.client, pairs, count=count)
        queued = self.queue_counters(ns, queue=0)["id_sequence"] - q0
        _, rss, _ = self.proc_sample(p.pid)
        raw("opensnitch", {"latency": r, "queued": queued, "rss_kb": rss})
        base = res["none"]["stats"]["median"]
        added = {k: v["stats"]["median"] - base for k, v in res.items()}
        log(f"   approved client, added median us: floor {added['floor']:.0f}, guardd /proc "
            f"{added['guard']:.0f}, opensnitchd {added['osnitch']:.0f} (p99 "
            f"{res['osnitch']['stats']['p99']:.0f}); packets opensnitchd's queue saw: {queued}; "
            f"its RSS {rss / 1024:.1f} MB; failures "
            f"{ {k: v['failures'] for k, v in res.items()} }")
        self.record("OpenSnitch", "opensnitchd added median (us)", f"{added['osnitch']:.0f}",
                    f"guardd /proc {added['guard']:.0f}, floor {added['floor']:.0f}",
                    f"{added['osnitch'] / added['guard']:.2f}", "", "")

    # --- report ----------------------------------------------------------------------------
    def report(self):
        log("")
        log("== machine")
        for k, v in self.facts.items():
            log(f"   {k}: {v}")
        log("")
        log("| benchmark | figure | mailguard | baseline (same run) | ratio | goal | met |")
        log("|---|---|---|---|---|---|---|")
        for b, f, v, base, ratio, goal, met in self.summary:
            m = "yes" if met is True else ("**no**" if met is False else "")
            log(f"| {b} | {f} | {v} | {base} | {ratio} | {goal} | {m} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (about 2 minutes)")
    ap.add_argument("--build", default=os.path.join(SOURCE, "build", "bench"))
    ap.add_argument("--results", default=os.path.join(HERE, "results"))
    ap.add_argument("--only", default="1,2,3,4,5,6", help="which benchmarks, e.g. 1,6")
    ap.add_argument("--guardd", help="another guardd binary (e.g. a patched build) to measure")
    ap.add_argument("--tag", default="", help="added to the results file name")
    ap.add_argument("--with-opensnitch", action="store_true",
                    help="OpenSnitch 1.5.8 side by side (apt-get download + dpkg -x, run "
                    "confined to its own network and mount namespaces)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tests/bench/run.sh needs root: it creates network namespaces and nftables tables")
    b = Bench(args)
    started = time.monotonic()
    only = set(args.only.split(","))
    try:
        b.machine()
        log(f"mailguard benchmarks, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
            f"UTC, {'quick' if args.quick else 'full'} run")
        b.bench_latency()  # sets up the namespaces and guardd the others use
        if "2" in only:
            b.bench_flood()
        if "3" in only:
            b.bench_other_port()
        if "4" in only:
            b.bench_store()
        if "5" in only:
            b.bench_startup()
        if "6" in only:
            b.bench_kernel()
        if args.with_opensnitch:
            b.bench_opensnitch()
        b.facts["run time"] = f"{time.monotonic() - started:.0f} s"
        b.report()
    finally:
        b.cleanup()
    os.makedirs(args.results, exist_ok=True)
    short = b.facts.get("git", "local") or "local"
    path = os.path.join(args.results, f"{datetime.date.today():%Y-%m-%d}-{short}"
                        + ("-quick" if args.quick else "") + (f"-{args.tag}" if args.tag else "")
                        + ".txt")
    with open(path, "w") as f:
        f.write("\n".join(out_lines) + "\n")
    print(f"raw output and summary: {path}")


if __name__ == "__main__":
    main()
