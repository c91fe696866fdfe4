#!/usr/bin/env python3
"""benchmarks/report.py: turns the raw data benchmarks/run leaves in
benchmarks/results/tmp/ (hyperfine exports, ringwire-bench --json outputs,
server counter snapshots) into benchmarks/results/*.md, *.json and the plot.
Standard library only. Subcommands:
  cell-line TMP CELL                   one summary line for a finished matrix cell
  matrix TMP OUT [options]             latest.md, latest.json, latest.png
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


# ---- matrix -------------------------------------------------------------------------------------


def cell_result(tmp, cell, backend):
    frames_path = os.path.join(tmp, "cells", cell + ".frames")
    if not os.path.exists(frames_path):
        return None
    frames = int(open(frames_path).read())
    hf = load(os.path.join(tmp, "cells", f"{cell}-{backend}.json"))
    r = {"frames_per_run": frames}
    if hf:
        h = hf["results"][0]
        r.update(
            mean_s=h["mean"], stddev_s=h["stddev"] or 0.0, min_s=h["min"], runs=len(h["times"]),
            frames_per_s=frames / h["mean"], frames_per_s_best=frames / h["min"],
            rel_stddev=(h["stddev"] or 0.0) / h["mean"],
            client_cpu_us_per_frame=(h["user"] + h["system"]) * 1e6 / frames,
            client_cores=(h["user"] + h["system"]) / h["mean"])
    elif os.path.exists(os.path.join(tmp, "cells", f"{cell}-{backend}.fail")):
        r["failed"] = open(os.path.join(tmp, "cells", f"{cell}-{backend}.fail")).read()[-2000:]
    else:
        return None
    r["server"] = syscall_figures(backend, delta(tmp, f"{cell}-{backend}"))
    d = delta(tmp, f"{cell}-{backend}")
    if d and hf:
        # Busy fraction over the timed runs plus the warmup run (all between the snapshots).
        r["server"]["server_cores"] = d["cpu_s"] / ((r["runs"] + 1) * r["mean_s"])
    return r


def cells_in(tmp):
    cells = [os.path.basename(p)[:-7] for p in glob.glob(os.path.join(tmp, "cells", "*.frames"))]
    return sorted(cells, key=lambda c: (cell_parts(c)[1], cell_parts(c)[0], cell_parts(c)[2]))


def ratio(res, cell):
    u, e = res.get(cell, {}).get("uring"), res.get(cell, {}).get("epoll")
    if u and e and u.get("frames_per_s") and e.get("frames_per_s"):
        return u["frames_per_s"] / e["frames_per_s"]
    return None


def fps_text(r):
    if not r:
        return "n/a"
    if "failed" in r:
        return "FAILED"
    return f"{num(r['frames_per_s'])} ±{r['rel_stddev'] * 100:.0f}%"


def cmd_cell_line(a):
    out = [f"  {cell_name(a.cell):<32}"]
    for b in BACKENDS:
        r = cell_result(a.tmp, a.cell, b)
        out.append(f"{b} {fps_text(r):>18} f/s")
    rt = ratio({a.cell: {b: cell_result(a.tmp, a.cell, b) for b in BACKENDS}}, a.cell)
    out.append(f"uring/epoll {rt:.2f}" if rt else "")
    print("  ".join(out), flush=True)


def plot(out_dir, results, tmp):
    if not shutil.which("gnuplot"):
        return "gnuplot not found; no plot"
    series = []
    for (size, depth) in sorted({cell_parts(c)[1:] for c in results}):
        for b in BACKENDS:
            pts = []
            for cell, per in results.items():
                c, s, d = cell_parts(cell)
                r = per.get(b)
                if (s, d) == (size, depth) and r and r.get("frames_per_s"):
                    pts.append((c, r["frames_per_s"]))
            if pts:
                path = os.path.join(tmp, f"plot-{b}-s{size}-d{depth}.dat")
                with open(path, "w") as f:
                    for c, v in sorted(pts):
                        f.write(f"{c} {v:.1f}\n")
                series.append((path, f"{b} depth {depth}" + (f" size {size}" if size != 64 or
                               len({cell_parts(c)[1] for c in results}) > 1 else ""),
                               b, depth))
    if not series:
        return "nothing to plot"
    png = os.path.join(out_dir, "latest.png")
    terms = sh("gnuplot", "-e", "set terminal")
    term = "pngcairo size 960,600 font ',10'" if "pngcairo" in terms else "png size 960,600"
    plots = []
    for i, (path, title, b, depth) in enumerate(series):
        dash = 1 if b == "uring" else 2
        color = {("uring", 1): "#1f77b4", ("uring", 16): "#08306b",
                 ("epoll", 1): "#ff7f0e", ("epoll", 16): "#a63603"}.get((b, depth), "black")
        plots.append(f"'{path}' using 1:2 with linespoints lw 2 dt {dash} pt {7 if b == 'uring' else 5} "
                     f"lc rgb '{color}' title '{title}'")
    script = "\n".join([
        f"set terminal {term}", f"set output '{png}'",
        "set title 'ringwire echo: frames/s vs connections (server: 1 thread)'",
        "set xlabel 'connections'", "set ylabel 'frames/s'", "set logscale x",
        "set format y '%.1s%c'", "set grid", "set key top left", "set yrange [0:*]",
        "plot " + ", ".join(plots), ""])
    r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
    return "" if r.returncode == 0 else "gnuplot failed: " + r.stderr.strip()


# Issue 4's targets, checked against every run's numbers (none is assumed met).
RATIO_TARGET = 1.3          # uring/epoll frames/s at 512 and 2000 connections, 64 B, depth 1
FRAMES_PER_ENTER_TARGET = 20.0  # uring frames per io_uring_enter at 512 connections
IDLE_BYTES_TARGET = 1024    # server user-space bytes per idle connection, uring


def targets(results, out):
    """Rows [target, measured, status] for the markdown, and the same as dicts for the JSON."""
    rows = []
    for conns in (512, 2000):
        cell = f"c{conns}_s64_d1"
        r = ratio(results, cell)
        rows.append([f"uring/epoll frames/s ≥ {RATIO_TARGET} at {conns} conns, 64 B, depth 1",
                     f"{r:.2f}" if r else "not measured",
                     ("met" if r >= RATIO_TARGET else "missed") if r else "n/a"])
    for cell in sorted(c for c in results if cell_parts(c)[0] == 512):
        u = (results[cell]["uring"] or {}).get("server", {})
        fpe = u.get("frames_per_enter")
        rows.append([f"uring ≥ {FRAMES_PER_ENTER_TARGET:.0f} frames per io_uring_enter, "
                     f"{cell_name(cell)}", num(fpe, 1) if fpe else "not measured",
                     ("met" if fpe >= FRAMES_PER_ENTER_TARGET else "missed") if fpe else "n/a"])
    mem = load(os.path.join(out, "memory.json"))
    idle = (((mem or {}).get("memory") or {}).get("uring") or {})
    per_slot = idle.get("table_bytes_per_slot")
    per_conn = (idle.get("idle") or {}).get("bytes_per_conn")
    if per_conn is not None and per_slot is not None:
        total = per_conn + per_slot
        rows.append([f"≤ {IDLE_BYTES_TARGET} B of server user-space memory per idle connection "
                     "(uring; table slot + growth)", f"{total:.0f} B (memory.md, "
                     f"{mem['machine'].get('date', '?')[:10]})",
                     "met" if total <= IDLE_BYTES_TARGET else "missed"])
    else:
        rows.append([f"≤ {IDLE_BYTES_TARGET} B per idle connection (uring)",
                     "not measured (benchmarks/run --memory)", "n/a"])
    return rows


def cmd_matrix(a):
    tmp, out = a.tmp, a.out
    root = os.path.dirname(os.path.dirname(os.path.abspath(out)))
    cells = cells_in(tmp)
    results = {c: {b: cell_result(tmp, c, b) for b in BACKENDS} for c in cells}
    lat_conns, lat_rate, lat_dur = a.latency.split(",")
    latency = {}
    for b in BACKENDS:
        j = load(os.path.join(tmp, f"latency-{b}.json"))
        if j is not None:
            j["server"] = syscall_figures(b, delta(tmp, f"latency-{b}"))
            latency[b] = j
        elif os.path.exists(os.path.join(tmp, f"latency-{b}.err")):
            latency[b] = {"failed": open(os.path.join(tmp, f"latency-{b}.err")).read()[-2000:]}
    verify = {}
    for path in sorted(glob.glob(os.path.join(tmp, "verify-*.json"))):
        _, b, size = os.path.basename(path)[:-5].split("-")
        j = load(path)
        verify[f"{b} size={size}"] = bool(j and j.get("ok"))
    exits = {os.path.basename(p)[5:]: open(p).read().strip()
             for p in glob.glob(os.path.join(tmp, "exit-*"))}
    info = machine_info(root, tmp, {
        "mode": "full" if a.full == "1" else "quick", "runs_per_cell": int(a.runs),
        "server_pinning": a.server_pin, "client_pinning": a.client_pin,
        "client_threads": int(a.client_threads), "server_threads": 1})

    ratios = [ratio(results, c) for c in cells]
    ratios = [r for r in ratios if r]
    gmean = math.exp(sum(math.log(r) for r in ratios) / len(ratios)) if ratios else None

    tp_rows = []
    for c in cells:
        u, e = results[c]["uring"], results[c]["epoll"]
        rt = ratio(results, c)
        fr = (u or e or {}).get("frames_per_run")
        tp_rows.append([cell_name(c), num(fr), fps_text(u), fps_text(e),
                        f"{rt:.2f}" if rt else "n/a"])
    tp_header = ["cell", "frames/run", "uring frames/s", "epoll frames/s", "uring/epoll"]

    lat_header = ["backend", "achieved frames/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs",
                  "max µs", "errors", "lost", "mismatches", "client cores"]
    lat_rows = []
    for b in BACKENDS:
        j = latency.get(b)
        if not j:
            continue
        if "failed" in j:
            lat_rows.append([b, "FAILED"] + [""] * (len(lat_header) - 2))
            continue
        lu = j["latency_us"]
        lat_rows.append([b, num(j["frames_per_s"]), num(lu["p50"], 1), num(lu["p90"], 1),
                         num(lu["p99"], 1), num(lu["p999"], 1), num(lu["max"], 1), j["errors"],
                         j["lost_frames"], j["mismatches"], num(j["client_cpu"]["cores"], 2)])

    sc_header = ["cell", "uring enter/frame", "uring frames/enter", "epoll syscalls/frame",
                 "epoll frames/wait", "uring server µs/frame", "epoll server µs/frame",
                 "uring client µs/frame", "epoll client µs/frame"]
    sc_rows = []
    busy_header = ["cell", "uring server cores", "uring client cores", "epoll server cores",
                   "epoll client cores"]
    busy_rows = []

    def sc_row(name, u, e, uc, ec):
        sc_rows.append([name, num(u.get("io_uring_enter_per_frame"), 3),
                        num(u.get("frames_per_enter"), 1), num(e.get("syscalls_per_frame"), 3),
                        num(e.get("frames_per_wait"), 1), num(u.get("server_cpu_us_per_frame"), 2),
                        num(e.get("server_cpu_us_per_frame"), 2), num(uc, 2), num(ec, 2)])

    for c in cells:
        u, e = results[c]["uring"] or {}, results[c]["epoll"] or {}
        busy_rows.append([cell_name(c), num(u.get("server", {}).get("server_cores"), 2),
                          num(u.get("client_cores"), 2),
                          num(e.get("server", {}).get("server_cores"), 2),
                          num(e.get("client_cores"), 2)])

    for c in cells:
        u, e = results[c]["uring"] or {}, results[c]["epoll"] or {}
        sc_row(cell_name(c), u.get("server", {}), e.get("server", {}),
               u.get("client_cpu_us_per_frame"), e.get("client_cpu_us_per_frame"))
    lu, le = latency.get("uring", {}), latency.get("epoll", {})
    if lu or le:
        def client_us(j):
            if not j or "failed" in j or not j.get("frames_received"):
                return None
            return (j["client_cpu"]["user_s"] + j["client_cpu"]["sys_s"]) * 1e6 / j["frames_received"]
        sc_row(f"latency run ({lat_rate}/s, {lat_conns} conns)", lu.get("server", {}),
               le.get("server", {}), client_us(lu), client_us(le))

    odd = []
    for b, ok in verify.items():
        if not ok:
            odd.append(f"- --verify run FAILED on {b} (see results/tmp/verify-*.err)")
    for name, rc in exits.items():
        if rc != "0":
            odd.append(f"- {name} server exited {rc} on SIGTERM (expected 0)")
    for c in cells:
        for b in BACKENDS:
            r = results[c][b]
            if r and "failed" in r:
                odd.append(f"- {cell_name(c)} {b}: client failed: "
                           f"{r['failed'].strip().splitlines()[-1] if r['failed'].strip() else '?'}")
    for b in BACKENDS:
        for c in cells:
            d = delta(tmp, f"{c}-{b}") or {}
            bad = {k: d[k] for k in ("closed_error", "closed_protocol", "rejected_limit",
                                     "reaped_idle", "reaped_frame_timeout", "reaped_tcp_timeout", "sq_full")
                   if d.get(k)}
            if bad:
                odd.append(f"- {cell_name(c)} {b}: server counters " +
                           ", ".join(f"{k}={v}" for k, v in bad.items()))

    for b in BACKENDS:
        final = load(os.path.join(tmp, f"stats-{b}.json"))  # written at exit
        if not final:
            continue
        t = final["total"]
        bad = {k: t[k] for k in ("closed_error", "closed_protocol", "rejected_limit",
                                 "reaped_idle", "reaped_frame_timeout", "reaped_tcp_timeout", "sq_full",
                                 "accept_backoffs", "backpressure_pauses", "rearm_recv_enobufs")
               if t.get(k)}
        if bad:
            odd.append(f"- {b} server, whole run (verify and latency runs included): " +
                       ", ".join(f"{k}={v}" for k, v in bad.items()) +
                       (" (rearm_recv_enobufs: provided buffers ran out, e.g. in the 70000-byte "
                        "--verify pass; an operating condition, not an error)"
                        if "rearm_recv_enobufs" in bad else ""))
    target_header = ["target", "measured", "status"]
    target_rows = targets(results, out)
    doc = {
        "machine": info, "throughput": results, "uring_over_epoll_geomean": gmean,
        "targets": [dict(zip(target_header, r)) for r in target_rows],
        "latency": {"conns": int(lat_conns), "rate": float(lat_rate), "duration": lat_dur,
                    "results": latency},
        "verify": verify, "server_exit": exits, "notes": odd,
    }
    with open(os.path.join(out, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    plot_note = plot(out, results, tmp)

    md = [f"# ringwire benchmark: io_uring vs epoll ({info['mode']})", "",
          f"{info['date']}, commit {info['commit'][:12]}{' (dirty)' if 'dirty' in info['commit'] else ''}, "
          f"kernel {info['kernel']}, {info['cpu']} × {info['nproc']}. "
          f"Server: 1 thread ({info['server_pinning']}); client: ringwire-bench, "
          f"{info['client_threads']} thread(s) ({info['client_pinning']}).", "",
          "## Throughput (closed loop, fixed work timed by hyperfine)", "",
          f"Each cell: `ringwire-bench --frames N` run {info['runs_per_cell']} times after one "
          "warmup; frames/s = N / mean wall time (which includes process start and connecting), "
          "± = relative standard deviation. Both backends' runs are back to back with the same N.",
          "", md_table(tp_header, tp_rows), ""]
    if gmean:
        md += [f"Geometric mean of uring/epoll over {len(ratios)} cells: **{gmean:.2f}**.", ""]
    md += [f"![frames/s vs connections](latest.png)" if not plot_note else f"(plot: {plot_note})",
           "", f"## Latency (open loop: {lat_rate} frames/s over {lat_conns} connections for "
           f"{lat_dur}, --verify)", "",
           "Measured from each frame's intended send time, so a stall counts in full "
           "(no coordinated omission).", "", md_table(lat_header, lat_rows), "",
           "## Server syscalls and CPU per frame", "",
           "From the server's counters (SIGUSR1 → --stats-json) and /proc/PID/stat before and "
           "after each cell (warmup included). uring: io_uring_enter calls; epoll: epoll_wait + "
           "recv + send calls (epoll_ctl not counted). Client µs/frame from hyperfine's "
           "user+system time.", "", md_table(sc_header, sc_rows), "",
           "## Who was the bottleneck", "",
           "CPU busy during each cell's timed runs, in cores (1.00 = one CPU busy all the time). "
           "Server: /proc/PID/stat CPU time over the runs (warmup included); client: hyperfine's "
           "user+system over mean wall time. A side near its CPU count is the limit; with one "
           "server thread, a server near 1.00 means the numbers measure the server.", "",
           md_table(busy_header, busy_rows), ""]
    md += ["## Targets", "",
           "Checked against this run's numbers (memory: the latest `benchmarks/run --memory`). "
           "Why a missed target is missed, and what was tried: kernel-notes/12.", "",
           md_table(target_header, target_rows), ""]
    if odd:
        md += ["## Anomalies", ""] + odd + [""]
    else:
        md += ["## Anomalies", "", "None: every --verify run passed, no client failed, the "
               "servers exited 0 and counted no errors.", ""]
    md += [machine_md(info), ""]
    with open(os.path.join(out, "latest.md"), "w") as f:
        f.write("\n".join(md))

    print()
    print(text_table(tp_header, tp_rows))
    if gmean:
        print(f"\ngeometric mean uring/epoll: {gmean:.2f}")
    print()
    print(text_table(lat_header, lat_rows))
    print()
    print(text_table(sc_header, sc_rows))
    print()
    print(text_table(busy_header, busy_rows))
    print()
    print(text_table(target_header, target_rows))
    for line in odd:
        print(line)
    if plot_note:
        print(plot_note)
    print(f"\nwrote {os.path.join(out, 'latest.md')}, latest.json, latest.png")


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
    s = sub.add_parser("cell-line")
    s.add_argument("tmp")
    s.add_argument("cell")
    s = sub.add_parser("matrix")
    s.add_argument("tmp")
    s.add_argument("out")
    for o in ("--full", "--runs", "--server-pin", "--client-pin", "--client-threads",
              "--latency"):
        s.add_argument(o, required=True)
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
    {"cell-line": cmd_cell_line, "matrix": cmd_matrix, "memory": cmd_memory,
     "scaling": cmd_scaling}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
