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

    def cleanup(self):
        for p in reversed(self.procs):
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
            self.stop(p)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        if os.environ.get("MG_BENCH_KEEP"):  # guardd's logs and state, for a look afterwards
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # --- guardd ------------------------------------------------------------------------
    def settings(self):
        """guardd.conf for the benchmarks: the zombie detector scores every attempt (its
        cost is part of what is measured) but never changes a verdict. The benchmarks
        repeat what no real program does (4,000 connections to one server in seconds),
        which its daily limits rightly stop: the approved client would be quarantined
        after 150 and the latency measured would be that of a refusal."""
        path = os.path.join(self.tmp, "guardd.conf")
        never = 1_000_000  # the largest count the settings accept
        with open(path, "w") as f:
            # No attempt scores above 0 (max_score), so no CUSUM grows; no daily limit or
            # fan-out rule is reached; delivery outcomes charge nothing.
            f.write("[detector]\nmax_score = 0.0\nattributed_failure = 0.0\n"
                    f"backstop_soft_destinations = {never}\n"
                    f"backstop_hard_destinations = {never}\n"
                    f"backstop_hard_attempts = {never}\nh3_connections = {never}\n"
                    # Attribution through /proc here; BPF programs attach only to a
                    # cgroup of the benchmark's own (see its kernel-attribution runs).
                    "\n[kernel]\nidentity = \"off\"\n")
        return path

    def start_guardd(self, ns, state, env=None):
        """Starts guardd; returns (process, seconds from exec to its 'enforcing:' line)."""
        logf = open(state.rstrip("/") + ".guardd.log", "a")
        argv = ["ip", "netns", "exec", ns, self.guardd, "--state-dir", state,
                "--config", self.settings()]
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

    def queue_counters(self, ns):
        r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/netfilter/nfnetlink_queue"],
                           capture_output=True, text=True)
        for line in r.stdout.splitlines():
            f = line.split()
            if f and int(f[0]) == QUEUE:
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
    ap.add_argument("--only", default="1,2,3,4,5", help="which benchmarks, e.g. 1,3")
    ap.add_argument("--guardd", help="another guardd binary (e.g. a patched build) to measure")
    ap.add_argument("--tag", default="", help="added to the results file name")
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
