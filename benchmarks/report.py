#!/usr/bin/env python3
"""benchmarks/report.py: turns the raw data benchmarks/run leaves in
benchmarks/results/tmp/ (hyperfine exports, ringwire-bench --json outputs,
server counter snapshots) into benchmarks/results/*.md, *.json and the plot.
Standard library only. Subcommands:
  bench TMP OUT                        latest.md, latest.json, latest-*.png from runner.py's
                                       TMP/run.json and TMP/samples.jsonl
  compare A.json B.json                two latest.json files, cell by cell (markdown on stdout)
  memory TMP OUT --conns N             memory.md, memory.json
  scaling TMP OUT --max-threads N      scaling.md, scaling.json
"""
import argparse
import datetime
import glob
import json
import math
import os
import re
import shutil
import subprocess
import sys

BACKENDS = ("uring", "epoll")


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


# ---- server counter snapshots ---------------------------------------------------------------


def delta(tmp, label):
    """Server-side change between snapshots LABEL-before and LABEL-after."""
    a = load(os.path.join(tmp, "snap", label + "-before.json"))
    b = load(os.path.join(tmp, "snap", label + "-after.json"))
    if not a or not b:
        return None
    ta, tb = a["stats"]["total"], b["stats"]["total"]
    d = {k: tb[k] - ta[k] for k in tb if isinstance(tb[k], int) and k in ta}
    d["cpu_s"] = (b["cpu_ticks"] - a["cpu_ticks"]) / b["clk_tck"]
    d["wall_s"] = b["time"] - a["time"]
    return d


def syscall_figures(backend, d):
    """Syscalls per frame from counter deltas; frames = frames the server received."""
    if not d or not d.get("frames_in"):
        return {}
    f = d["frames_in"]
    out = {
        "frames": f,
        "server_cpu_us_per_frame": d["cpu_s"] * 1e6 / f,
        "server_cores": d["cpu_s"] / d["wall_s"] if d["wall_s"] > 0 else None,
    }
    if backend == "uring":
        enters = d.get("io_uring_enter", 0)
        out["syscalls_per_frame"] = enters / f
        out["io_uring_enter_per_frame"] = enters / f
        out["frames_per_enter"] = f / enters if enters else None
        out["cqes_per_enter"] = d.get("cqes", 0) / enters if enters else None
    else:
        waits = d.get("wait_calls", 0)
        calls = waits + d.get("recv_calls", 0) + d.get("send_calls", 0)
        out["syscalls_per_frame"] = calls / f
        out["epoll_wait_per_frame"] = waits / f
        out["frames_per_wait"] = f / waits if waits else None
    return out


# ---- formatting ---------------------------------------------------------------------------------


def num(v, digits=0):
    if v is None:
        return "n/a"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def cell_parts(cell):
    m = re.match(r"c(\d+)_s(\d+)_d(\d+)$", cell)
    return tuple(int(x) for x in m.groups())


def cell_name(cell):
    c, s, d = cell_parts(cell)
    return f"conns={c} size={s} depth={d}"


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(out)


def text_table(header, rows):
    cols = [header] + [[str(x) for x in r] for r in rows]
    w = [max(len(r[i]) for r in cols) for i in range(len(header))]
    fmt = lambda r: "  ".join(x.rjust(w[i]) if i else x.ljust(w[i]) for i, x in enumerate(r))
    return "\n".join([fmt(header), fmt(["-" * x for x in w])] + [fmt(r) for r in cols[1:]])


def machine_info(root, tmp, extra):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = sh("git", "-C", root, "rev-parse", "HEAD")
    dirty = sh("git", "-C", root, "status", "--porcelain", "--untracked-files=no")
    build = os.path.join(root, "build-bench")
    flags = {}
    opts = sh("meson", "introspect", build, "--buildoptions")
    if opts:
        for o in json.loads(opts):
            if o["name"] in ("buildtype", "optimization", "debug", "b_ndebug", "b_lto", "c_std",
                             "c_args", "b_sanitize"):
                flags[o["name"]] = o["value"]
    compiler = ""
    cmds = load(os.path.join(build, "compile_commands.json")) or []
    if cmds:
        compiler = sh(cmds[0]["command"].split()[0], "--version").splitlines()[0:1]
        compiler = compiler[0] if compiler else ""
    info = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": os.uname().release,
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "commit": commit + (" (dirty)" if dirty else ""),
        "build": flags,
        "compiler": compiler,
        "liburing": sh("pkg-config", "--modversion", "liburing"),
        "hyperfine": sh("hyperfine", "--version"),
        "server": " / ".join(sh(os.path.join(build, "ringwire"), "-V").splitlines()),
    }
    info.update(extra)
    return info


def machine_md(info):
    lines = ["## Machine", ""]
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a}={b}" for a, b in v.items())
        lines.append(f"- {k}: {v}")
    return "\n".join(lines)


# ---- the benchmark report (runner.py's samples) -------------------------------------------------

BOOT_N = 5000
BOOT_SEED = 12
CI_LEVEL = 0.95
METHOD = (f"bootstrap, percentile, {BOOT_N} resamples, paired by round, {CI_LEVEL:.0%} interval "
          f"(seed {BOOT_SEED})")


def median(v):
    v = sorted(v)
    n = len(v)
    if not n:
        return None
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def server_cpu_s(rec, a="before", b="after"):
    """Server CPU over one sample: the process CPU clock (runner.proc_cpu_s: every thread of a
    local server or peer, io_uring's own kernel threads included: sqpoll's SQ thread, io-wq
    workers), else its own stats (cpu_us of its workers; a --target). cpu_us alone would leave
    sqpoll's SQ thread out and make it look 60-70% cheaper than it is."""
    x, y = rec.get(a) or {}, rec.get(b) or {}
    if x.get("proc_cpu_s") is not None and y.get("proc_cpu_s") is not None:
        return y["proc_cpu_s"] - x["proc_cpu_s"]
    sx, sy = x.get("stats") or {}, y.get("stats") or {}
    if "cpu_us" in sx and "cpu_us" in sy:
        return (sy["cpu_us"] - sx["cpu_us"]) / 1e6
    return None


def stat_delta(rec, key):
    sx, sy = (rec.get("before") or {}).get("stats"), (rec.get("after") or {}).get("stats")
    if not sx or not sy or key not in sx or key not in sy:
        return None
    return sy[key] - sx[key]


def _div(a, b, scale=1.0):
    return a * scale / b if a is not None and b else None


# metric name -> (label, unit, better, function of one sample)
METRICS = {
    "frames_per_s": ("frames/s", "", "higher", lambda r: r["bench"]["frames_per_s"]),
    "server_us_per_frame": ("server CPU per frame", "µs", "lower",
                            lambda r: _div(server_cpu_s(r), r["bench"]["frames_received"], 1e6)),
    "frames_per_wait": ("frames per wait call", "", "higher",
                        lambda r: _div(stat_delta(r, "frames_in"), stat_delta(r, "wait_calls"))),
    "server_cores": ("server CPU busy", "cores", "lower",
                     lambda r: _div(server_cpu_s(r), r["after"]["time"] - r["before"]["time"])),
    "client_cores": ("client CPU busy", "cores", "lower", lambda r: r["bench"]["client_cpu"]["cores"]),
    "p50_us": ("p50 latency", "µs", "lower", lambda r: r["bench"]["latency_us"]["p50"]),
    "p99_us": ("p99 latency", "µs", "lower", lambda r: r["bench"]["latency_us"]["p99"]),
    "p999_us": ("p99.9 latency", "µs", "lower", lambda r: r["bench"]["latency_us"]["p999"]),
    "max_us": ("max latency", "µs", "lower", lambda r: r["bench"]["latency_us"]["max"]),
    "achieved_per_s": ("achieved frames/s", "", "higher",
                       lambda r: r["bench"]["frames_sent"] / r["bench"]["elapsed_s"]
                       if r["bench"]["elapsed_s"] else None),
    "gb_s_out": ("client → server", "GB/s", "higher", lambda r: r["bench"]["gb_per_s_out"]),
    "gb_s_in": ("server → client", "GB/s", "higher", lambda r: r["bench"]["gb_per_s_in"]),
    "server_ms_per_gb": ("server CPU per GB echoed", "ms", "lower",
                         lambda r: _div(server_cpu_s(r), r["bench"]["bytes_received"], 1e12)),
    "mb_s_each_way": ("throughput each way", "MB/s", "higher", lambda r: r["bench"]["gb_per_s_in"] * 1e3),
    "conns_per_s": ("connections/s", "", "higher", lambda r: r["bench"]["conns_per_s"]),
    "server_us_per_conn": ("server CPU per connection", "µs", "lower",
                           lambda r: _div(server_cpu_s(r), r["bench"]["connections_completed"],
                                          1e6)),
    "bytes_per_idle_conn": ("server RSS per idle connection", "B", "lower",
                            lambda r: _div(((r.get("held") or {}).get("rss_kb") or 0) -
                                           ((r.get("before") or {}).get("rss_kb") or 0),
                                           r["conns"], 1024)
                            if (r.get("held") or {}).get("rss_kb") is not None else None),
}

# What each kind of cell reports; the first is the one its ratio plot shows.
KIND_METRICS = {
    "open": ["server_us_per_frame", "p50_us", "p99_us", "p999_us", "achieved_per_s",
             "frames_per_wait"],
    "closed": ["frames_per_s", "server_us_per_frame", "mb_s_each_way", "frames_per_wait",
               "server_cores", "client_cores"],
    "stream": ["gb_s_out", "gb_s_in", "server_ms_per_gb", "server_cores", "client_cores"],
    "churn": ["conns_per_s", "server_us_per_conn", "server_cores", "client_cores"],
    "idle": ["bytes_per_idle_conn"],
    "latency": ["achieved_per_s", "p50_us", "p99_us", "p999_us", "max_us", "server_us_per_frame",
                "client_cores"],
}


def metric_value(m, rec):
    if rec.get("rc") not in (0, None):
        return None
    if m != "bytes_per_idle_conn" and not rec.get("bench"):
        return None
    try:
        v = METRICS[m][3](rec)
    except (KeyError, TypeError, ZeroDivisionError):
        return None
    return v


def boot_ratio(xs, ys, paired, rng):
    """Percentile bootstrap CI of median(xs)/median(ys). paired: xs[i], ys[i] share round i."""
    import random  # noqa: F401 (rng is a random.Random)
    est = _div(median(xs), median(ys))
    if est is None or len(xs) < 2 or len(ys) < 2:
        return est, None, None
    stats = []
    n, m = len(xs), len(ys)
    for _ in range(BOOT_N):
        if paired:
            idx = [rng.randrange(n) for _ in range(n)]
            a, b = median([xs[i] for i in idx]), median([ys[i] for i in idx])
        else:
            a = median([xs[rng.randrange(n)] for _ in range(n)])
            b = median([ys[rng.randrange(m)] for _ in range(m)])
        if b:
            stats.append(a / b)
    stats.sort()
    lo = stats[int((1 - CI_LEVEL) / 2 * len(stats))]
    hi = stats[min(len(stats) - 1, int((1 + CI_LEVEL) / 2 * len(stats)))]
    return est, lo, hi


def verdict(est, lo, hi, better):
    """'no difference' when the CI holds 1.0; else better/worse, by how much, which way."""
    if est is None:
        return "n/a"
    if lo is None:
        return "too few samples"
    if lo <= 1.0 <= hi:
        return "no difference"
    good = est > 1 if better == "higher" else est < 1
    return f"{'better' if good else 'worse'}: {abs(est - 1) * 100:.0f}% {'higher' if est > 1 else 'lower'}"


def summarise(samples, meta):
    """Per cell, metric and server: values by round, median, min, max; ratios against the
    baseline server (epoll when it ran) with the bootstrap CI."""
    import random
    rng = random.Random(BOOT_SEED)
    servers = [s["name"] for s in meta["servers"]]
    base = "epoll" if "epoll" in servers else servers[0]
    cells = {c["id"]: c for c in meta["cells"]}
    out = {}
    for cid, cell in cells.items():
        if cell["kind"] == "latency":
            continue
        recs = [r for r in samples if r["cell"] == cid]
        if not recs:
            continue
        cs = {"title": cell["title"], "family": cell["family"], "kind": cell["kind"],
              "args": cell["args"], "baseline": base, "metrics": {}}
        for m in KIND_METRICS[cell["kind"]]:
            per = {}
            for s in servers:
                byround = {r["round"]: metric_value(m, r) for r in recs if r["server"] == s}
                byround = {k: v for k, v in byround.items() if v is not None}
                if byround:
                    vals = list(byround.values())
                    per[s] = {"by_round": byround, "median": median(vals), "min": min(vals),
                              "max": max(vals), "n": len(vals)}
            if not per:
                continue
            ratios = {}
            if base in per:
                for s in servers:
                    if s == base or s not in per:
                        continue
                    common = sorted(set(per[s]["by_round"]) & set(per[base]["by_round"]))
                    xs = [per[s]["by_round"][k] for k in common]
                    ys = [per[base]["by_round"][k] for k in common]
                    est, lo, hi = boot_ratio(xs, ys, True, rng)
                    ratios[s] = {"estimate": est, "ci_low": lo, "ci_high": hi, "rounds": len(common),
                                 "verdict": verdict(est, lo, hi, METRICS[m][2])}
            cs["metrics"][m] = {"servers": per, "ratios": ratios}
        out[cid] = cs
    return out


def summarise_latency(samples, meta):
    out = {}
    servers = [s["name"] for s in meta["servers"]]
    for cell in meta["cells"]:
        if cell["kind"] != "latency":
            continue
        recs = [r for r in samples if r["cell"] == cell["id"]]
        levels = sorted({r["level"] for r in recs})
        rows = {}
        for s in servers:
            for lv in levels:
                rr = [r for r in recs if r["server"] == s and r["level"] == lv]
                if not rr:
                    continue
                d = {"offered_per_s": rr[0]["rate"], "saturation_per_s": rr[0]["saturation"],
                     "runs": len(rr), "failed": sum(1 for r in rr if r.get("rc") != 0)}
                for m in KIND_METRICS["latency"]:
                    vals = [v for v in (metric_value(m, r) for r in rr) if v is not None]
                    d[m] = {"median": median(vals), "min": min(vals) if vals else None,
                            "max": max(vals) if vals else None}
                rows.setdefault(s, {})[f"{lv:.2f}"] = d
        out[cell["id"]] = {"title": cell["title"], "levels": [f"{x:.2f}" for x in levels],
                           "servers": rows, "saturation": meta.get("latency_saturation")}
    return out


def fmt(v, m=None):
    if v is None:
        return "n/a"
    unit = METRICS[m][1] if m else ""
    if unit in ("GB/s", "cores"):
        return f"{v:.2f}" if unit == "cores" else f"{v:.3f}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def ratio_text(r):
    if not r or r.get("estimate") is None:
        return "n/a"
    if r.get("ci_low") is None:
        return f"{r['estimate']:.2f}"
    return f"{r['estimate']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"


def cell_table(cs, servers):
    """Rows: metric; columns: each server's median (min–max), then each ratio with CI."""
    base = cs["baseline"]
    others = [s for s in servers if s != base]
    header = ["metric"] + [f"{s} median (range)" for s in servers] + \
        [f"{s}/{base} [95% CI]" for s in others] + (["verdict" if len(others) == 1 else
                                                    "verdicts"] if others else [])
    rows = []
    for m, d in cs["metrics"].items():
        label, unit = METRICS[m][0], METRICS[m][1]
        row = [f"{label}{' (' + unit + ')' if unit and unit != 'cores' else ''}"
               f"{' (cores)' if unit == 'cores' else ''}"]
        for s in servers:
            v = d["servers"].get(s)
            row.append(f"{fmt(v['median'], m)} ({fmt(v['min'], m)}–{fmt(v['max'], m)})" if v
                       else "n/a")
        for s in others:
            row.append(ratio_text(d["ratios"].get(s)))
        if others:
            row.append("; ".join(f"{s}: {d['ratios'][s]['verdict']}" if len(others) > 1 else
                                 d["ratios"][s]["verdict"] for s in others if s in d["ratios"]))
        rows.append(row)
    return md_table(header, rows)


def gnuplot(script):
    if not shutil.which("gnuplot"):
        return "gnuplot not found"
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    return "" if r.returncode == 0 else "gnuplot failed: " + r.stderr.strip()[:300]


def png_term():
    terms = sh("gnuplot", "-e", "set terminal")
    return "pngcairo size 1100,600 font ',10'" if "pngcairo" in terms else "png size 1100,600"


def plots(out, tmp, summary, lat, servers):
    """latest-ratio.png, latest-latency.png, latest-size.png; returns {name: note or ''}."""
    notes = {}
    base = next(iter(summary.values()))["baseline"] if summary else None
    others = [s for s in servers if s != base]
    # 1. Ratio per cell (its first metric) with the CI as error bars.
    rows = []
    for i, (cid, cs) in enumerate(summary.items()):
        m = KIND_METRICS[cs["kind"]][0]
        d = cs["metrics"].get(m)
        if not d:
            continue
        vals = []
        for s in others:
            r = d["ratios"].get(s) or {}
            vals += [r.get("estimate"), r.get("ci_low"), r.get("ci_high")]
        if all(v is None for v in vals):
            continue
        label = f"{cid} ({METRICS[m][0]})".replace("_", "\\\\_")
        rows.append((label, vals))
    if rows and others:
        dat = os.path.join(tmp, "plot-ratio.dat")
        with open(dat, "w") as f:
            for i, (label, vals) in enumerate(rows):
                f.write(f"{i} \"{label}\" " + " ".join("NaN" if v is None else f"{v:.5f}"
                                                      for v in vals) + "\n")
        plots_ = []
        for j, s in enumerate(others):
            off = (j - (len(others) - 1) / 2) * 0.2
            plots_.append(f"'{dat}' using ($1+{off}):{3 + 3 * j}:{4 + 3 * j}:{5 + 3 * j}"
                          f"{':xtic(2)' if j == 0 else ''} with yerrorbars pt 7 lw 2 "
                          f"title '{s}/{base}'")
        notes["latest-ratio.png"] = gnuplot("\n".join([
            f"set terminal {png_term()}", f"set output '{os.path.join(out, 'latest-ratio.png')}'",
            f"set title 'ratio to {base} per cell, median with {CI_LEVEL:.0%} bootstrap CI "
            "(frames/s, GB/s, conns/s: higher is better; CPU, latency, bytes: lower is better)'",
            "set xtics rotate by -40 font ',8'", "set grid y", "set bmargin 12",
            f"set xrange [-0.5:{len(rows) - 0.5}]", "set arrow from graph 0, first 1 to "
            "graph 1, first 1 nohead dt 2", "plot " + ", ".join(plots_), ""]))
    # 2. Latency against offered load.
    series = []
    for cid, L in lat.items():
        for s, levels in L["servers"].items():
            dat = os.path.join(tmp, f"plot-lat-{s}.dat")
            with open(dat, "w") as f:
                for lv, d in sorted(levels.items()):
                    f.write(f"{d['offered_per_s']} {d['p50_us']['median'] or 'NaN'} "
                            f"{d['p99_us']['median'] or 'NaN'} {d['p999_us']['median'] or 'NaN'}\n")
            series.append(f"'{dat}' using 1:3 with linespoints lw 2 title '{s} p99', "
                          f"'{dat}' using 1:2 with linespoints dt 2 title '{s} p50'")
    if series:
        notes["latest-latency.png"] = gnuplot("\n".join([
            f"set terminal {png_term()}",
            f"set output '{os.path.join(out, 'latest-latency.png')}'",
            "set title 'latency vs offered load (open loop; 10/30/60/90% of each server''s "
            "saturation; median over runs)'", "set xlabel 'offered frames/s'",
            "set ylabel 'latency (µs)'", "set logscale y", "set grid", "set key top left",
            "plot " + ", ".join(series), ""]))
    # 3. Throughput against frame size (ping-pong, 64 connections).
    series = []
    for s in servers:
        pts = []
        for cid, cs in summary.items():
            if cs["family"] == "pingpong" and cid.startswith("pp_c64_s"):
                v = cs["metrics"].get("mb_s_each_way", {}).get("servers", {}).get(s)
                if v:
                    pts.append((int(cid.split("_s")[1]), v["median"], v["min"], v["max"]))
        if pts:
            dat = os.path.join(tmp, f"plot-size-{s}.dat")
            with open(dat, "w") as f:
                for p in sorted(pts):
                    f.write(" ".join(str(x) for x in p) + "\n")
            series.append(f"'{dat}' using 1:2:3:4 with yerrorlines lw 2 title '{s}'")
    if series:
        notes["latest-size.png"] = gnuplot("\n".join([
            f"set terminal {png_term()}", f"set output '{os.path.join(out, 'latest-size.png')}'",
            "set title 'ping-pong throughput vs frame size (64 connections, depth 1; median, "
            "range over rounds)'", "set xlabel 'payload bytes'", "set ylabel 'MB/s each way'",
            "set logscale x 2", "set grid", "set key top left", "plot " + ", ".join(series), ""]))
    return notes


def mitigations():
    d = "/sys/devices/system/cpu/vulnerabilities"
    out = {}
    try:
        for n in sorted(os.listdir(d)):
            out[n] = open(os.path.join(d, n)).read().strip()
    except OSError:
        pass
    return out


def targets_new(summary, idle_key="idle"):
    rows = []
    for cid in ("pp_c512_s64", "pp_c2000_s64"):
        d = summary.get(cid, {}).get("metrics", {}).get("frames_per_s", {})
        r = d.get("ratios", {}).get("uring") if d else None
        rows.append([f"uring/epoll frames/s ≥ {RATIO_TARGET} ({cid})", ratio_text(r),
                     ("met" if r["ci_low"] is not None and r["ci_low"] >= RATIO_TARGET else
                      "missed") if r and r.get("estimate") else "not measured"])
    d = summary.get("pp_c512_s64", {}).get("metrics", {}).get("frames_per_wait", {})
    v = d.get("servers", {}).get("uring") if d else None
    rows.append([f"uring ≥ {FRAMES_PER_ENTER_TARGET:.0f} frames per io_uring_enter (pp_c512_s64)",
                 fmt(v["median"]) if v else "not measured",
                 ("met" if v["median"] >= FRAMES_PER_ENTER_TARGET else "missed") if v else "n/a"])
    for cid, cs in summary.items():
        if cs["kind"] == "idle":
            v = cs["metrics"].get("bytes_per_idle_conn", {}).get("servers", {}).get("uring")
            rows.append([f"≤ {IDLE_BYTES_TARGET} B server RSS per idle connection (uring, {cid}; "
                         "the preallocated table slot not included)", fmt(v["median"]) + " B" if v
                         else "not measured", ("met" if v["median"] <= IDLE_BYTES_TARGET else
                                               "missed") if v else "n/a"])
    return rows


RATIO_TARGET = 1.3
FRAMES_PER_ENTER_TARGET = 20.0
IDLE_BYTES_TARGET = 1024


def cmd_bench(a):
    tmp, out = a.tmp, a.out
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta = load(os.path.join(tmp, "run.json"))
    if not meta:
        sys.exit(f"report.py: no {tmp}/run.json (did the run finish?)")
    samples = []
    with open(os.path.join(tmp, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f if line.strip()]
    servers = [s["name"] for s in meta["servers"]]
    summary = summarise(samples, meta)
    lat = summarise_latency(samples, meta)
    info = machine_info(root, tmp, {
        "mode": "full" if meta["full"] else ("short (machinery check)" if meta["short"] else
                                            "default"),
        "rounds": meta["rounds"], "wire": meta["wire"]["wire"],
        "server_pinning": meta["server_pinning"], "client_pinning": meta["client_pinning"],
        "client_threads": meta["client_threads"], "server_threads": 1,
        "loadavg_start": " ".join(meta.get("loadavg_start") or []),
        "loadavg_end": " ".join(meta.get("loadavg_end") or []),
        "duration_s": round(meta["finished"] - meta["started"]), "argv": meta["argv"]})
    info["cpu_cores"] = os.cpu_count()
    info["mitigations"] = mitigations()
    info.pop("hyperfine", None)
    notes = plots(out, tmp, summary, lat, servers)
    anomalies = list(meta.get("failures") or [])
    kinds = {s["name"]: s["kind"] for s in meta["servers"]}
    for name, rc in (meta.get("server_exit") or {}).items():
        if rc not in (0, None) and kinds.get(name) == "ringwire":
            anomalies.append(f"{name} server exited {rc} on SIGTERM (expected 0)")
    for r in samples:
        for k in ("closed_error", "closed_protocol", "rejected_limit", "reaped_idle",
                  "reaped_frame_timeout", "sq_full"):
            v = stat_delta(r, k) if r.get("before") else None
            if v and not (k == "closed_error" and "rst" in r["cell"]):
                anomalies.append(f"{r['cell']} {r['server']} round {r['round']}: {k} +{v}")
    doc = {"machine": info, "method": METHOD, "run": meta, "summary": summary, "latency": lat,
           "samples": samples, "anomalies": anomalies}
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    base = "epoll" if "epoll" in servers else servers[0]
    md = [f"# ringwire benchmark ({info['mode']}, {info['wire']})", "",
          f"{info['date']}, commit {info['commit'][:12]}{' (dirty)' if 'dirty' in info['commit'] else ''}, "
          f"kernel {info['kernel']}, {info['cpu']} × {info['cpu_cores']}; "
          f"servers {', '.join(servers)} (1 worker thread, {info['server_pinning']}); client "
          f"ringwire-bench, {info['client_threads']} thread(s) ({info['client_pinning']}); "
          f"{info['rounds']} interleaved rounds per cell; {info['duration_s']} s in all.", "",
          f"Every cell ran each server once per round, in the order {', '.join(servers)} on even "
          "rounds and reversed on odd ones. A value is the median over rounds (range: min–max). "
          f"Ratios are to **{base}**: median / median, with a 95% confidence interval by "
          f"{METHOD}; a cell is **no difference** when the interval contains 1.0. Server CPU "
          "comes from each server's process CPU clock (clock_getcpuclockid, ns: every thread, "
          "io_uring's kernel threads such as sqpoll's SQ thread included; /proc/PID/task/*/stat "
          "where that clock cannot be read), or for a --target from its stats (`cpu_us`).", ""]
    # Headline: efficiency, beside closed-loop throughput.
    head = []
    for cid, cs in summary.items():
        # Closed loop: throughput, and the server CPU per frame it cost (issue 11's target).
        ms = {"open": ["server_us_per_frame"],
              "closed": ["frames_per_s", "server_us_per_frame"]}.get(cs["kind"])
        if not ms or cs["family"] not in ("efficiency", "pingpong") or \
                (cs["family"] == "pingpong" and cid not in ("pp_c64_s64", "pp_c512_s64")):
            continue
        for m in ms:
            d = cs["metrics"].get(m)
            if not d:
                continue
            row = [cs["title"], METRICS[m][0] + (f" ({METRICS[m][1]})" if METRICS[m][1] else "")]
            row += [fmt((d["servers"].get(s) or {}).get("median"), m) for s in servers]
            row += [ratio_text(d["ratios"].get(s)) + f" — {d['ratios'][s]['verdict']}"
                    if s in d["ratios"] else "n/a" for s in servers if s != base]
            head.append(row)
    if head:
        md += ["## Headline: server CPU per frame at fixed offered load, beside closed-loop "
               "throughput", "",
               "Open loop (`--rate`): the client offers the same frames/s to every server, so "
               "the server's CPU per frame is its cost, whoever was the bottleneck. Closed loop: "
               "frames/s, which on a 2-core machine the client caps for every server alike.", "",
               md_table(["cell", "metric"] + servers + [f"{s}/{base} [95% CI]" for s in servers
                                                        if s != base], head), ""]
    titles = {"efficiency": "Efficiency (open loop, fixed rate)", "pingpong": "Ping-pong "
              "(closed loop, depth 1)", "pipeline": "Pipelined (closed loop)",
              "stream": "Streaming throughput", "churn": "Connection churn",
              "idle": "Idle connections (memory)"}
    for fam in ("efficiency", "pingpong", "pipeline", "stream", "churn", "idle"):
        cs_list = [(cid, cs) for cid, cs in summary.items() if cs["family"] == fam]
        if not cs_list:
            continue
        md += [f"## {titles[fam]}", ""]
        for cid, cs in cs_list:
            md += [f"### {cs['title']} (`{cid}`)", "",
                   "`ringwire-bench " + " ".join(str(x) for x in cs["args"]) + "`", "",
                   cell_table(cs, servers), ""]
    for cid, L in lat.items():
        md += [f"## Latency sweep: {L['title']}", "",
               "Open loop at 10, 30, 60 and 90% of each server's own saturation (the median "
               f"closed-loop frames/s of `{(L.get('saturation') or {}).get('cell')}`), "
               f"{meta['rounds']} runs per level; latency from each frame's intended send time. "
               "Median over runs (range).", ""]
        rows = []
        for s, levels in L["servers"].items():
            for lv, d in sorted(levels.items()):
                rng_ = lambda k: (f"{fmt(d[k]['median'])} ({fmt(d[k]['min'])}–{fmt(d[k]['max'])})"
                                  if d[k]["median"] is not None else "n/a")
                rows.append([s, f"{float(lv) * 100:.0f}%", fmt(d["offered_per_s"]),
                             rng_("achieved_per_s"), rng_("p50_us"), rng_("p99_us"),
                             rng_("p999_us"), rng_("max_us"), rng_("server_us_per_frame"),
                             rng_("client_cores"), d["failed"]])
        md += [md_table(["server", "load", "offered/s", "achieved/s", "p50 µs", "p99 µs",
                         "p99.9 µs", "max µs", "server µs/frame", "client cores",
                         "failed runs"], rows), ""]
    md += ["## Servers", "", md_table(
        ["name", "kind", "address", "command", "TCP_NODELAY", "server CPU from"],
        [[s["name"], s["kind"], s.get("addr"), f"`{s.get('command')}`" if s.get("command") else
          f"ringwire --backend {s.get('backend')}" if s.get("backend") else "", s["tcp_nodelay"],
          s["cpu_source"]] for s in meta["servers"]]), "",
          "A peer without TCP_NODELAY stalls on Nagle + delayed ACK once a reply is sent in more "
          "than one piece (above ~2 KiB for several C peers): a peer marked `no` "
          "(`--peer-nodelay NAME=no`) sits out every cell with frames over 2 KiB.", ""]
    md += ["## Targets", "", md_table(["target", "measured", "status"], targets_new(summary)), ""]
    pics = [("latest-ratio.png", "ratio per cell with 95% CI"),
            ("latest-latency.png", "latency vs offered load"),
            ("latest-size.png", "throughput vs frame size")]
    md += ["## Plots", ""]
    for name, alt in pics:
        if name in notes:
            md += [f"![{alt}]({name})" if not notes[name] else f"({name}: {notes[name]})", ""]
    md += ["## Anomalies", ""] + ([f"- {x}" for x in anomalies] or
                                  ["None: every --verify pass and client run succeeded, the "
                                   "servers exited 0 and counted no errors."]) + [""]
    md += [machine_md({k: v for k, v in info.items() if k != "mitigations"}),
           "- mitigations: " + "; ".join(f"{k}: {v}" for k, v in info["mitigations"].items()), ""]
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(md))
    if not meta["short"] and os.path.abspath(out) == os.path.join(root, "benchmarks", "results"):
        write_readme_results(root, info, servers, base, head, summary)
    # Console: the headline and every verdict.
    print()
    for cid, cs in summary.items():
        for m, d in cs["metrics"].items():
            for s, r in d["ratios"].items():
                if m == KIND_METRICS[cs["kind"]][0] or m == "server_us_per_frame" or \
                        m == "server_us_per_conn":
                    print(f"  {cid:<22} {METRICS[m][0]:<28} {s}/{base} {ratio_text(r):<20} "
                          f"{r['verdict']}")
    for x in anomalies:
        print("  anomaly:", x)
    print(f"\nwrote {os.path.join(out, 'latest.md')}, latest.json, latest-*.png")


README_BEGIN = "<!-- results:begin (written by benchmarks/report.py; do not edit by hand) -->"
README_END = "<!-- results:end -->"


def write_readme_results(root, info, servers, base, head, summary):
    """The README's Results: the headline and the targets of this run, between the markers."""
    path = os.path.join(root, "README.md")
    try:
        text = open(path).read()
    except OSError:
        return
    if README_BEGIN not in text or README_END not in text:
        print("report.py: README.md has no results markers; not updated")
        return
    body = [README_BEGIN, "",
            f"From `benchmarks/run` ({info['mode']}, {info['wire']}) on {info['date']}, commit "
            f"{info['commit'][:12]}: kernel {info['kernel']}, {info['cpu']} × {info['cpu_cores']};"
            f" server 1 worker ({info['server_pinning']}), client {info['client_pinning']}; "
            f"{info['rounds']} interleaved rounds per cell, medians, ratios to {base} with 95% "
            "bootstrap confidence intervals; **no difference** where the interval contains 1.0. "
            "Every cell, the latency sweep, syscalls and the machine: "
            "[benchmarks/results/latest.md](benchmarks/results/latest.md).", ""]
    if head:
        body += [md_table(["cell", "metric"] + servers +
                          [f"{s}/{base} [95% CI]" for s in servers if s != base], head), ""]
    body += ["![ratio per cell with 95% CI](benchmarks/results/latest-ratio.png)", "",
             md_table(["target", "measured", "status"], targets_new(summary)), "", README_END]
    start = text.index(README_BEGIN)
    end = text.index(README_END) + len(README_END)
    with open(path, "w") as f:
        f.write(text[:start] + "\n".join(body) + text[end:])
    print("report.py: README.md Results updated")


def cmd_compare(a):
    """Cell by cell, metric by metric, server by server: B/A with an unpaired bootstrap CI."""
    import random
    rng = random.Random(BOOT_SEED)
    A, B = load(a.a), load(a.b)
    if not A or not B or "summary" not in A or "summary" not in B:
        sys.exit("report.py compare: both files must be latest.json from benchmarks/run")
    ca = A["machine"].get("commit", "?")[:12]
    cb = B["machine"].get("commit", "?")[:12]
    print(f"# {a.b} ({cb}) against {a.a} ({ca})\n")
    print(f"B/A = median(B) / median(A); 95% CI: bootstrap, percentile, {BOOT_N} resamples of "
          "each run's rounds independently (the runs are not paired).\n")
    rows = []
    for cid, cs in B["summary"].items():
        if cid not in A["summary"]:
            continue
        for m, d in cs["metrics"].items():
            da = A["summary"][cid]["metrics"].get(m)
            if not da:
                continue
            for s, v in d["servers"].items():
                va = da["servers"].get(s)
                if not va:
                    continue
                xs, ys = list(v["by_round"].values()), list(va["by_round"].values())
                est, lo, hi = boot_ratio(xs, ys, False, rng)
                r = {"estimate": est, "ci_low": lo, "ci_high": hi}
                rows.append([cid, METRICS[m][0], s, fmt(va["median"], m), fmt(v["median"], m),
                             ratio_text(r), verdict(est, lo, hi, METRICS[m][2])])
            for s, r in d["ratios"].items():
                ra = da["ratios"].get(s)
                if ra and ra.get("estimate") and r.get("estimate"):
                    rows.append([cid, METRICS[m][0], f"{s}/{cs['baseline']}", ratio_text(ra),
                                 ratio_text(r), "", "(the ratio within each run)"])
    print(md_table(["cell", "metric", "server", "A median", "B median", "B/A [95% CI]",
                    "verdict"], rows))


# ---- memory -------------------------------------------------------------------------------------


def cmd_memory(a):
    tmp, out = a.tmp, a.out
    root = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    rows, doc = [], {}
    snap = lambda label: load(os.path.join(tmp, "snap", label + ".json"))
    mib = lambda kb: num(kb / 1024, 1) if kb is not None else "n/a"
    for b in BACKENDS:
        small, before = snap(f"memory-{b}-small"), snap(f"memory-{b}-before")
        if not before:
            continue
        r = {"rss_start_max_conns_100_kb": small["rss_kb"] if small else None,
             "rss_start_max_conns_25000_kb": before["rss_kb"]}
        if small:
            r["table_bytes_per_slot"] = (before["rss_kb"] - small["rss_kb"]) * 1024 / 24900
        for kind in ("idle", "echoed"):
            held, rel = snap(f"memory-{b}-{kind}"), snap(f"memory-{b}-{kind}-released")
            if not held:
                continue
            n = held["stats"]["total"]["conns_open"]
            r[kind] = {"conns": n, "rss_held_kb": held["rss_kb"],
                       "rss_released_kb": rel["rss_kb"] if rel else None,
                       "bytes_per_conn": (held["rss_kb"] - before["rss_kb"]) * 1024 / n if n else None}
        doc[b] = r
        idle, echoed = r.get("idle", {}), r.get("echoed", {})
        rows.append([b, mib(r["rss_start_max_conns_100_kb"]), mib(before["rss_kb"]),
                     num(r.get("table_bytes_per_slot")), num(idle.get("conns")),
                     mib(idle.get("rss_held_kb")), num(idle.get("bytes_per_conn")),
                     mib(echoed.get("rss_held_kb")), num(echoed.get("bytes_per_conn")),
                     mib(echoed.get("rss_released_kb"))])
    header = ["backend", "RSS start, max-conns 100 (MiB)", "RSS start, max-conns 25000 (MiB)",
              "table bytes/slot", "conns held", "RSS idle conns (MiB)", "bytes/idle conn",
              "RSS after one echo each (MiB)", "bytes/conn after echo", "RSS after close (MiB)"]
    info = machine_info(root, tmp, {"conns_wanted": 20000, "conns_held": int(a.conns)})
    with open(os.path.join(out, "memory.json"), "w") as f:
        json.dump({"machine": info, "memory": doc}, f, indent=1)
        f.write("\n")
    md = ["# ringwire: server memory per connection", "",
          f"`ringwire-bench --hold {a.conns}` opens that many connections and keeps them (first "
          "run: they send nothing; second run, `--hold-echo`: each first echoes one 64-byte "
          "frame, then idles). The server runs `--threads 1 --max-conns 25000 --idle-timeout 0`. "
          "RSS is VmRSS from /proc/PID/status: at start (and at start with `--max-conns 100`, "
          "to show what the connection table preallocates), once the server counts every "
          "connection open, and one second after the client closed them. bytes/conn = "
          "(RSS held − RSS at start) / connections: user-space memory only; socket buffers and "
          "io_uring state are kernel memory, not in RSS.", "", md_table(header, rows), "",
          machine_md(info), ""]
    with open(os.path.join(out, "memory.md"), "w") as f:
        f.write("\n".join(md))
    print(text_table(header, rows))
    print(f"\nwrote {os.path.join(out, 'memory.md')}")


# ---- scaling ------------------------------------------------------------------------------------


def cmd_scaling(a):
    tmp, out = a.tmp, a.out
    root = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    rows, doc = [], {}
    for t in range(1, int(a.max_threads) + 1):
        per = {}
        for b in BACKENDS:
            j = load(os.path.join(tmp, f"scaling-{b}-t{t}.json"))
            if j is None:
                continue
            j["server"] = syscall_figures(b, delta(tmp, f"scaling-{b}-t{t}"))
            per[b] = j
        doc[t] = per
        u, e = per.get("uring"), per.get("epoll")
        rt = u["frames_per_s"] / e["frames_per_s"] if u and e and e["frames_per_s"] else None

        def f(j, key):
            if not j:
                return "n/a"
            if key == "fps":
                return num(j["frames_per_s"]) + ("" if j["ok"] else " (errors)")
            if key == "p99":
                return num(j["latency_us"]["p99"], 0)
            if key == "srv":
                return num(j["server"].get("server_cores"), 2)
            return num(j["client_cpu"]["cores"], 2)
        rows.append([t, f(u, "fps"), f(e, "fps"), f"{rt:.2f}" if rt else "n/a", f(u, "p99"),
                     f(e, "p99"), f(u, "srv"), f(e, "srv"), f(u, "cli"), f(e, "cli")])
    header = ["server threads", "uring frames/s", "epoll frames/s", "uring/epoll",
              "uring p99 µs", "epoll p99 µs", "uring server cores", "epoll server cores",
              "uring client cores", "epoll client cores"]
    info = machine_info(root, tmp, {"load": a.load})
    with open(os.path.join(out, "scaling.json"), "w") as f:
        json.dump({"machine": info, "scaling": doc}, f, indent=1)
        f.write("\n")
    md = ["# ringwire: scaling with server threads", "",
          f"Fixed client load ({a.load}); server `--threads N` with SO_REUSEPORT listeners, "
          "nothing pinned: server and client share the machine, so once server threads + "
          "client threads exceed the CPUs, the numbers measure contention, not scaling.", "",
          md_table(header, rows), "", machine_md(info), ""]
    with open(os.path.join(out, "scaling.md"), "w") as f:
        f.write("\n".join(md))
    print(text_table(header, rows))
    print(f"\nwrote {os.path.join(out, 'scaling.md')}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("bench")
    s.add_argument("tmp")
    s.add_argument("out")
    s = sub.add_parser("compare")
    s.add_argument("a")
    s.add_argument("b")
    s = sub.add_parser("memory")
    s.add_argument("tmp")
    s.add_argument("out")
    s.add_argument("--conns", required=True)
    s = sub.add_parser("scaling")
    s.add_argument("tmp")
    s.add_argument("out")
    s.add_argument("--max-threads", required=True)
    s.add_argument("--load", required=True)
    a = p.parse_args()
    {"bench": cmd_bench, "compare": cmd_compare, "memory": cmd_memory,
     "scaling": cmd_scaling}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
