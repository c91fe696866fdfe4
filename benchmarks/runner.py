#!/usr/bin/env python3
"""benchmarks/runner.py: the measuring half of benchmarks/run (standard library only).

Starts the servers (ringwire --backend uring and --backend epoll, each --threads 1;
every --peer; or the --target servers already running elsewhere), then runs every
cell of the chosen workload families in interleaved rounds: round r runs each
server once, in the given order for even r and reversed for odd r (uring, epoll,
epoll, uring, ...), so slow drift of the machine hits every server alike. Around
every client run it snapshots the server (counters and CPU time), and appends one
raw sample per run to TMP/samples.jsonl; report.py turns those into the report.
benchmarks/README.md explains every number.
"""
import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time

FAMILIES = ("efficiency", "pingpong", "pipeline", "stream", "churn", "idle", "latency")
LAT_LEVELS = (0.10, 0.30, 0.60, 0.90)
# Peers without TCP_NODELAY stall on Nagle + delayed ACK above about this frame size.
NAGLE_SIZE = 2048
VETH = {"srv_ns": "rwbsrv", "cli_ns": "rwbcli", "srv_if": "rwbv0", "cli_if": "rwbv1",
        "srv_ip": "10.78.0.1", "cli_ip": "10.78.0.2"}


def log(*a):
    print("benchmarks/run:", *a, flush=True)


def sh(cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check)


# ---- cells --------------------------------------------------------------------------------------


def make_cells(full, short, seconds=0.0):
    """Every cell: family, id, title, ringwire-bench arguments, kind, rounds factor. seconds > 0:
    every closed- and open-loop run lasts that long (longer runs, less noise per sample)."""
    d_closed = "2s" if full else "1s"
    d_open = "3s" if full else "2s"
    if short:
        d_closed, d_open = "0.2s", "0.3s"
    if seconds > 0:
        d_closed = d_open = f"{seconds:g}s"
    cells = []

    def add(family, cid, title, args, kind, **kw):
        size = 64
        if "--size" in args:
            v = str(args[args.index("--size") + 1])
            size = int(v[:-1]) << 20 if v.endswith("M") else int(v)
        elif family == "stream":
            size = 256 * 1024
        kw.setdefault("size", size)
        cells.append(dict(family=family, id=cid, title=title, args=args, kind=kind, **kw))

    # Efficiency: server CPU per frame at fixed offered loads (open loop: the client cannot
    # cap it). The headline.
    eff = [(64, 64, 20000), (512, 64, 60000)]
    if full:
        eff += [(64, 1000, 20000), (2000, 64, 60000)]
    for conns, size, rate in eff:
        add("efficiency", f"eff_c{conns}_s{size}_r{rate}",
            f"open loop {rate:,}/s, {conns} conns, {size} B",
            ["--conns", conns, "--size", size, "--rate", rate, "--duration", d_open], "open")
    sizes = [64, 1024, 16384, 262144]
    for size in sizes:
        add("pingpong", f"pp_c64_s{size}", f"ping-pong {fmt_size(size)}, 64 conns",
            ["--mode", "pingpong", "--conns", 64, "--size", size, "--duration", d_closed],
            "closed")
    add("pingpong", "pp_c512_s64", "ping-pong 64 B, 512 conns",
        ["--mode", "pingpong", "--conns", 512, "--size", 64, "--duration", d_closed], "closed")
    if full:
        add("pingpong", "pp_c1_s64", "ping-pong 64 B, 1 conn",
            ["--mode", "pingpong", "--conns", 1, "--size", 64, "--duration", d_closed], "closed")
        add("pingpong", "pp_c2000_s64", "ping-pong 64 B, 2000 conns",
            ["--mode", "pingpong", "--conns", 2000, "--size", 64, "--duration", d_closed],
            "closed")
    for depth in (16, 64):
        add("pipeline", f"pl_c64_d{depth}", f"pipelined depth {depth}, 64 conns, 64 B",
            ["--mode", "pipeline", "--conns", 64, "--depth", depth, "--size", 64, "--duration",
             d_closed], "closed")
    add("stream", "stream_c4_s256k_d8", "streaming 256 KiB frames, 4 conns, depth 8",
        ["--mode", "stream", "--duration", d_closed], "stream")
    if full:
        add("stream", "stream_c16_s1m_d4", "streaming 1 MiB frames, 16 conns, depth 4",
            ["--mode", "stream", "--conns", 16, "--size", "1M", "--depth", 4, "--duration",
             d_closed], "stream")
    for close in ("fin", "rst"):
        add("churn", f"churn_k10_{close}", f"churn: connect, 10 frames, close ({close.upper()}), "
            "64 at a time", ["--churn", 10, "--close", close, "--conns", 64, "--duration",
                             d_closed], "churn")
    idle_n = 20000 if full else (500 if short else 1000)
    add("idle", f"idle_n{idle_n}", f"{idle_n:,} idle connections", ["--hold", idle_n], "idle",
        conns=idle_n, rounds_max=3)
    add("latency", "lat_c64_s64", "latency sweep, 64 conns, 64 B", ["--conns", 64, "--size", 64,
        "--duration", "0.5s" if short else ("5s" if full else "1s")], "latency",
        sat_cell="pp_c64_s64", sat_args=["--mode", "pingpong", "--conns", 64, "--size", 64,
                                         "--duration", d_closed])
    return cells


def fmt_size(n):
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024} KiB" if n < 1 << 20 else f"{n >> 20} MiB"
    return f"{n} B"


# ---- servers ------------------------------------------------------------------------------------


def proc_cpu_s(pid):
    """CPU seconds of every thread of pid, user + system. The process's CPU clock
    (clock_getcpuclockid: CPUCLOCK_SCHED, ns resolution, threads that exited included) where the
    kernel lets us read it; else utime + stime (fields 14, 15 of /proc/PID/task/*/stat), which
    count in clock ticks (10 ms: +-3% of a 2 s run at 20% CPU, as much as the differences the
    peers are compared on)."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except (OSError, OverflowError):
        pass
    tck = os.sysconf("SC_CLK_TCK")
    total = 0
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except (OSError, IndexError):
                pass
    except OSError:
        return None
    return total / tck


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One echo server under test: a local ringwire, a --peer command, or a --target."""

    def __init__(self, name, kind, ctx, backend=None, command=None, addr=None, stats_cmd=None,
                 nodelay="unknown", extra=None):
        self.name, self.kind, self.ctx = name, kind, ctx
        self.extra = list(extra or [])
        self.backend, self.command, self.addr, self.stats_cmd = backend, command, addr, stats_cmd
        self.nodelay = nodelay
        self.proc = None
        self.pid = None
        self.stats_path = os.path.join(ctx.tmp, f"stats-{name}.json")
        self.log_path = os.path.join(ctx.tmp, f"server-{name}.log")
        self.exit_code = None

    def start(self):
        if self.kind == "target":
            return
        logf = open(self.log_path, "w")
        pre = self.ctx.srv_prefix()
        if self.kind == "ringwire":
            cmd = pre + [self.ctx.server, "--backend", self.backend, "--listen",
                         f"{self.ctx.srv_ip}:0", "--threads", "1", "--max-conns", "25000",
                         "--stats-json", self.stats_path] + self.extra
        else:
            port = free_port()
            self.addr = f"{self.ctx.srv_ip}:{port}"
            cmd = pre + ["sh", "-c", "exec " + self.command.replace("{port}", str(port))]
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   f"{open(self.log_path).read()[-500:]}")
            if self.kind == "ringwire":
                text = open(self.log_path).read()
                if "listening on" in text:
                    self.addr = text.split("listening on ", 1)[1].split()[0]
                    return
            elif self.ctx.can_connect(self.addr):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start listening within 15 s")

    def stop(self):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.exit_code = self.proc.wait()
        self.proc = None

    def stats(self):
        """The server's own counters (total and per worker), or None."""
        if self.kind == "ringwire":
            try:
                os.unlink(self.stats_path)
            except OSError:
                pass
            os.kill(self.pid, signal.SIGUSR1)
            for _ in range(300):
                try:
                    with open(self.stats_path) as f:
                        return json.load(f)
                except (OSError, ValueError):
                    time.sleep(0.01)
            log(f"{self.name}: no --stats-json after SIGUSR1")
            return None
        if self.kind == "target" and self.stats_cmd:
            r = subprocess.run(["sh", "-c", self.stats_cmd], capture_output=True, text=True)
            try:
                return json.loads(r.stdout)
            except ValueError:
                log(f"{self.name}: --target-stats printed no JSON: {r.stderr.strip()[:200]}")
        return None

    def snapshot(self):
        st = self.stats()
        snap = {"time": time.time(), "stats": st["total"] if st else None,
                "workers": [w.get("cpu_us") for w in st["workers"]] if st else None}
        if self.pid:
            snap["proc_cpu_s"] = proc_cpu_s(self.pid)
            snap["rss_kb"] = proc_rss_kb(self.pid)
        return snap

    def describe(self):
        d = {"name": self.name, "kind": self.kind, "addr": self.addr,
             "tcp_nodelay": self.nodelay}
        if self.backend:
            d["backend"] = self.backend
        if self.command:
            d["command"] = self.command
        if self.stats_cmd:
            d["stats_command"] = self.stats_cmd
        d["cpu_source"] = ("the process CPU clock (clock_getcpuclockid: every thread, io_uring's "
                           "kernel threads included)" if self.pid else
                           ("server stats (cpu_us of its workers)" if self.stats_cmd else "none"))
        return d


# ---- the run ------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, a):
        self.a = a
        self.tmp = a.tmp
        self.server = a.server
        self.bench = a.bench
        self.veth = a.wire == "veth"
        self.srv_ip = VETH["srv_ip"] if self.veth else "127.0.0.1"
        ncpu = os.cpu_count() or 1
        self.pin = ncpu >= 2 and shutil_which("taskset")
        self.cthreads = a.client_threads or (min(ncpu - 1, 4) if self.pin else 1)
        self.cli_cpus = f"1-{self.cthreads}" if self.cthreads > 1 else "1"

    def srv_prefix(self):
        p = ["ip", "netns", "exec", VETH["srv_ns"]] if self.veth else []
        return p + (["taskset", "-c", "0"] if self.pin else [])

    def cli_prefix(self):
        p = ["ip", "netns", "exec", VETH["cli_ns"]] if self.veth else []
        return p + (["taskset", "-c", self.cli_cpus] if self.pin else [])

    def can_connect(self, addr):
        host, port = addr.rsplit(":", 1)
        cmd = self.cli_prefix()[:4] if self.veth else []
        if cmd:  # probe from the client namespace
            r = subprocess.run(cmd + ["python3", "-c", "import socket,sys; socket.create_connection("
                                      "(sys.argv[1], int(sys.argv[2])), 1).close()", host, port],
                               capture_output=True)
            return r.returncode == 0
        try:
            socket.create_connection((host.strip("[]"), int(port)), 1).close()
            return True
        except OSError:
            return False


def shutil_which(name):
    import shutil
    return shutil.which(name) is not None


def veth_up():
    v = VETH
    veth_down()
    cmds = [["ip", "netns", "add", v["srv_ns"]], ["ip", "netns", "add", v["cli_ns"]],
            ["ip", "link", "add", v["srv_if"], "type", "veth", "peer", "name", v["cli_if"]],
            ["ip", "link", "set", v["srv_if"], "netns", v["srv_ns"]],
            ["ip", "link", "set", v["cli_if"], "netns", v["cli_ns"]],
            ["ip", "-n", v["srv_ns"], "addr", "add", v["srv_ip"] + "/24", "dev", v["srv_if"]],
            ["ip", "-n", v["cli_ns"], "addr", "add", v["cli_ip"] + "/24", "dev", v["cli_if"]],
            ["ip", "-n", v["srv_ns"], "link", "set", v["srv_if"], "up"],
            ["ip", "-n", v["cli_ns"], "link", "set", v["cli_if"], "up"],
            ["ip", "-n", v["srv_ns"], "link", "set", "lo", "up"],
            ["ip", "-n", v["cli_ns"], "link", "set", "lo", "up"]]
    for c in cmds:
        sh(c)
    ncpu = os.cpu_count() or 1
    # RPS: each side's receive processing on its own CPU (server CPU 0, client CPU 1).
    srv_mask, cli_mask = "1", ("2" if ncpu >= 2 else "1")
    for ns, dev, mask in ((v["srv_ns"], v["srv_if"], srv_mask), (v["cli_ns"], v["cli_if"],
                                                                   cli_mask)):
        sh(["ip", "netns", "exec", ns, "sh", "-c",
            f"echo {mask} > /sys/class/net/{dev}/queues/rx-0/rps_cpus"])
    # Permanent neighbour entries both ways: otherwise an entry going stale between runs sends
    # whichever server runs then through neigh_resolve_output (~80 ns a frame here, measured
    # with perf), a cost of the wire's timing, not of the server.
    macs = {}
    for ns, dev in ((v["srv_ns"], v["srv_if"]), (v["cli_ns"], v["cli_if"])):
        macs[dev] = json.loads(sh(["ip", "-n", ns, "-j", "link", "show", dev]).stdout)[0]["address"]
    sh(["ip", "-n", v["srv_ns"], "neigh", "replace", v["cli_ip"], "lladdr", macs[v["cli_if"]],
        "dev", v["srv_if"], "nud", "permanent"])
    sh(["ip", "-n", v["cli_ns"], "neigh", "replace", v["srv_ip"], "lladdr", macs[v["srv_if"]],
        "dev", v["cli_if"], "nud", "permanent"])
    return {"srv_rps_cpus": srv_mask, "cli_rps_cpus": cli_mask, "neigh": "permanent", **v}


def veth_down():
    for ns in (VETH["srv_ns"], VETH["cli_ns"]):
        sh(["ip", "netns", "del", ns], check=False)


def run_bench(ctx, server, args, timeout=120):
    cmd = ctx.cli_prefix() + [ctx.bench, "--connect", server.addr, "--threads",
                              str(ctx.cthreads), "--json"] + [str(x) for x in args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, 124, (e.stderr or b"")[-500:] if isinstance(e.stderr, bytes) else "timeout"
    out = None
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except ValueError:
                pass
    return out, r.returncode, r.stderr[-1000:]


def loadavg():
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return None


class Runner:
    def __init__(self, ctx, servers):
        self.ctx, self.servers = ctx, servers
        self.samples = open(os.path.join(ctx.tmp, "samples.jsonl"), "a")
        self.seq = 0
        self.failures = []

    def record(self, rec):
        rec["seq"] = self.seq
        rec["loadavg"] = loadavg()
        self.seq += 1
        self.samples.write(json.dumps(rec) + "\n")
        self.samples.flush()

    def order(self, r, cell=None):
        """Round r's order; without a cell's size limit: a peer that does not set TCP_NODELAY
        (--peer-nodelay NAME=no) sits out cells with frames over NAGLE_SIZE."""
        s = self.servers if r % 2 == 0 else list(reversed(self.servers))
        if cell is not None:
            s = [x for x in s if not (x.nodelay == "no" and cell.get("size", 0) > NAGLE_SIZE)]
        return s

    def sample(self, cell, server, rnd, args, extra=None):
        before = server.snapshot()
        out, rc, err = run_bench(self.ctx, server, args)
        after = server.snapshot()
        rec = {"cell": cell["id"], "server": server.name, "round": rnd, "args": args,
               "rc": rc, "bench": out, "before": before, "after": after}
        if extra:
            rec.update(extra)
        if rc != 0 or out is None:
            rec["stderr"] = err
            self.failures.append(f"{cell['id']} {server.name} round {rnd}: rc {rc}: "
                                 f"{err.strip().splitlines()[-1] if err.strip() else '?'}")
        self.record(rec)
        return out

    def idle_sample(self, cell, server, rnd):
        n = cell["conns"]
        before = server.snapshot()
        cmd = self.ctx.cli_prefix() + [self.ctx.bench, "--connect", server.addr, "--hold", str(n),
                                       "--hold-seconds", "120"]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()  # "holding N connections", or EOF on failure
        held = None
        if line.startswith("holding"):
            for _ in range(100):  # until the server counts them all (ringwire), else a moment
                held = server.snapshot()
                st = held.get("stats")
                if not st or st.get("conns_open", 0) >= n:
                    break
                time.sleep(0.1)
            if not held.get("stats"):
                time.sleep(0.3)
                held = server.snapshot()
        p.send_signal(signal.SIGTERM)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            _, err = p.communicate()
        time.sleep(0.5)
        after = server.snapshot()
        rec = {"cell": cell["id"], "server": server.name, "round": rnd, "args": cell["args"],
               "rc": p.returncode, "conns": n, "before": before, "held": held, "after": after}
        if p.returncode != 0 or not held:
            rec["stderr"] = err[-1000:]
            self.failures.append(f"{cell['id']} {server.name}: --hold {n} failed: {err.strip()[-200:]}")
        self.record(rec)

    def run_cell(self, cell, rounds):
        t0 = time.time()
        if cell["kind"] == "idle":
            for r in range(min(rounds, cell.get("rounds_max", rounds))):
                for s in self.order(r, cell):
                    self.idle_sample(cell, s, r)
        elif cell["kind"] == "latency":
            self.run_latency(cell, rounds)
        else:
            for r in range(rounds):
                for s in self.order(r, cell):
                    self.sample(cell, s, r, cell["args"])
        log(f"  {cell['id']}: {time.time() - t0:.0f} s")

    def saturation(self, cell, rounds, done):
        """Each server's saturation: the median closed-loop frames/s of sat_cell (run now if
        that cell is not part of this run)."""
        sat = {}
        if cell["sat_cell"] not in done:
            probe = dict(cell, id=cell["sat_cell"] + "_sat", kind="closed")
            for r in range(min(rounds, 3)):
                for s in self.order(r, cell):
                    self.sample(probe, s, r, cell["sat_args"])
            name = probe["id"]
        else:
            name = cell["sat_cell"]
        with open(os.path.join(self.ctx.tmp, "samples.jsonl")) as f:
            recs = [json.loads(l) for l in f if l.strip()]
        for s in self.servers:
            v = sorted(r["bench"]["frames_per_s"] for r in recs
                       if r["cell"] == name and r["server"] == s.name and r.get("bench"))
            sat[s.name] = v[len(v) // 2] if v else None
        return name, sat

    def run_latency(self, cell, rounds):
        name, sat = self.saturation(cell, rounds, self.done)
        self.latency_saturation = {"cell": name, "frames_per_s": sat}
        for level in LAT_LEVELS:
            for r in range(rounds):
                for s in self.order(r, cell):
                    if not sat.get(s.name):
                        continue
                    rate = max(1, int(sat[s.name] * level))
                    self.sample(cell, s, r, cell["args"] + ["--rate", rate],
                                {"level": level, "rate": rate, "saturation": sat[s.name]})

    def verify(self):
        for s in self.servers:
            for size in (64, 70000):
                if s.nodelay == "no" and size > NAGLE_SIZE:
                    continue
                out, rc, err = run_bench(self.ctx, s, ["--conns", 64, "--depth", 8, "--size", size,
                                                       "--frames", 20000, "--verify"])
                ok = rc == 0 and out is not None and out.get("ok")
                self.record({"cell": f"verify_s{size}", "server": s.name, "round": 0, "rc": rc,
                             "bench": out, "verify": True, "ok": bool(ok),
                             "stderr": None if ok else err})
                if not ok:
                    self.failures.append(f"--verify {s.name} size {size} FAILED: {err.strip()[-200:]}")


def uring_features(server):
    """[(name, kernel_ok, default_on)] from `ringwire --probe` (the uring features section)."""
    out = sh([server, "--probe"], check=False).stdout
    feats, on = [], False
    for line in out.splitlines():
        if line.startswith("uring features"):
            on = True
            continue
        if on and line.startswith("  ") and " kernel " in line and "default:" in line:
            w = line.split()
            feats.append((w[0], line.split(":", 1)[1].split()[0] == "yes",
                          line.split("default:", 1)[1].split()[0] == "on"))
    return feats


def ablation_servers(ctx, server):
    """The default uring server, then one per feature with only that feature flipped."""
    servers = [Server("uring", "ringwire", ctx, backend="uring", nodelay="yes")]
    for name, kernel_ok, default_on in uring_features(server):
        if not kernel_ok:
            log(f"ablation: {name}: the kernel lacks it; left out")
            continue
        flip = ("-" if default_on else "+") + name
        servers.append(Server(f"uring{flip}", "ringwire", ctx, backend="uring", nodelay="yes",
                              extra=["--uring-features", flip]))
    return servers


def parse_kv(items, what):
    out = {}
    for it in items or []:
        if "=" not in it:
            sys.exit(f"benchmarks/run: {what} '{it}': want NAME=VALUE")
        k, v = it.split("=", 1)
        if not k or not k.replace("-", "").replace("_", "").isalnum():
            sys.exit(f"benchmarks/run: {what} '{it}': NAME must be letters, digits, - or _")
        out[k] = v
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--full", action="store_true")
    p.add_argument("--short", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--cells", default="")
    p.add_argument("--rounds", type=int, default=0)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--peer", action="append")
    p.add_argument("--peer-nodelay", action="append")
    p.add_argument("--target", action="append")
    p.add_argument("--target-stats", action="append")
    p.add_argument("--wire", default="loopback", choices=("loopback", "veth"))
    p.add_argument("--client-threads", type=int, default=0)
    p.add_argument("--argv", default="")
    p.add_argument("--ablation", action="store_true")
    a = p.parse_args()
    if a.ablation and not a.only:
        a.only = "efficiency,pingpong"  # CPU per frame at fixed loads, and 64 B .. 256 KiB
    rounds = a.rounds or (10 if a.full else 5)
    only = [f for f in a.only.split(",") if f]
    for f in only:
        if f not in FAMILIES:
            sys.exit(f"benchmarks/run: --only {f}: not one of {', '.join(FAMILIES)}")
    cells = [c for c in make_cells(a.full, a.short, a.seconds) if not only or c["family"] in only]
    if a.cells:
        # Single cells by id (pp_c512_s64, eff_r60000_c512, ...): a focused A/B in many rounds.
        want = [c for c in a.cells.split(",") if c]
        ids = [c["id"] for c in cells]
        for w in want:
            if w not in ids:
                sys.exit(f"benchmarks/run: --cells {w}: no such cell (cells: {', '.join(ids)})")
        cells = [c for c in cells if c["id"] in want]
    if a.wire == "veth" and os.geteuid() != 0:
        sys.exit("benchmarks/run: --wire veth needs root (ip netns, veth, RPS)")
    if a.wire == "veth" and a.target:
        sys.exit("benchmarks/run: --wire veth and --target: pick one")
    os.makedirs(a.tmp, exist_ok=True)
    ctx = Ctx(a)
    peers = parse_kv(a.peer, "--peer")
    nodelay = parse_kv(a.peer_nodelay, "--peer-nodelay")
    targets = parse_kv(a.target, "--target")
    tstats = parse_kv(a.target_stats, "--target-stats")
    for name, cmd in peers.items():
        if "{port}" not in cmd:
            sys.exit(f"benchmarks/run: --peer {name}: COMMAND must contain {{port}}")
    servers = []
    if targets:
        for name, addr in targets.items():
            servers.append(Server(name, "target", ctx, addr=addr, stats_cmd=tstats.get(name),
                                  nodelay="yes" if name in ("uring", "epoll") else
                                  nodelay.get(name, "unknown")))
    elif a.ablation:
        # Each optional io_uring feature flipped against the default: ratios are to "uring".
        servers = ablation_servers(ctx, a.server)
    else:
        for b in ("uring", "epoll"):
            servers.append(Server(b, "ringwire", ctx, backend=b, nodelay="yes"))
    for name, cmd in peers.items():
        if any(s.name == name for s in servers):
            sys.exit(f"benchmarks/run: --peer {name}: name already taken")
        servers.append(Server(name, "peer", ctx, command=cmd, nodelay=nodelay.get(name, "unknown")))

    wire = {"wire": a.wire}
    started = []
    try:
        if a.wire == "veth":
            wire.update(veth_up())
        for s in servers:
            try:
                s.start()
                started.append(s)
                log(f"  {s.name}: {s.addr}" + (f" (pid {s.pid})" if s.pid else ""))
            except RuntimeError as e:
                log(f"{s.name} did not start: {e}")
        if not started:
            sys.exit("benchmarks/run: no server started")
        run = Runner(ctx, started)
        run.done = set()
        meta = {"argv": a.argv, "rounds": rounds, "full": a.full, "short": a.short,
                "only": only, "cells": cells, "servers": [s.describe() for s in started],
                "client_threads": ctx.cthreads,
                "server_pinning": "taskset -c 0" if ctx.pin else "none",
                "client_pinning": f"taskset -c {ctx.cli_cpus}" if ctx.pin else "none",
                "server_threads": 1, "wire": wire, "loadavg_start": loadavg(),
                "started": time.time()}
        log(f"servers {', '.join(s.name for s in started)}; {len(cells)} cells x {rounds} "
            f"rounds; client {ctx.cthreads} thread(s) {meta['client_pinning']}")
        run.verify()
        for c in cells:
            run.run_cell(c, rounds)
            run.done.add(c["id"])
        meta["latency_saturation"] = getattr(run, "latency_saturation", None)
        meta["loadavg_end"] = loadavg()
        meta["finished"] = time.time()
        meta["failures"] = run.failures
    finally:
        for s in started:
            s.stop()
        if a.wire == "veth":
            veth_down()
    meta["server_exit"] = {s.name: s.exit_code for s in started if s.kind != "target"}
    with open(os.path.join(a.tmp, "run.json"), "w") as f:
        json.dump(meta, f, indent=1)
    for line in run.failures:
        log("FAILED: " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
