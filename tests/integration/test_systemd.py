#!/usr/bin/env python3
"""The installed systemd units (dist/systemd) are what they claim to be.

1. `meson install --destdir` puts ringwire.service and ringwire@.service in the
   unit directory meson chose, with ExecStart naming the installed binary.
2. `systemd-analyze verify` says nothing about either (also an instance,
   ringwire@7001.service). The prefix is not installed on this host, so the
   copies verified point ExecStart at the DESTDIR binary; nothing else differs.
3. The directives the issue asks for are there, and SystemCallFilter= allows
   io_uring_setup, io_uring_enter and io_uring_register.
4. Every system call ringwire makes (strace, both backends, 2 workers, an echo,
   a scrape, SIGUSR1, SIGTERM) is in that filter (skipped in sanitizer builds,
   whose runtime makes calls of its own, and without strace).
5. As root: LimitMEMLOCK is enough for its share: 8 uring workers start as an
   unprivileged user without CAP_IPC_LOCK under LimitMEMLOCK x 8 / 256
   (RW_THREADS_MAX), with no new privileges, as the unit runs them.

Exit 77 (skip) with the reason when systemd-analyze is missing and cannot be
installed. Environment (set by meson): RW_BIN, RW_BUILD_ROOT, RW_UNITDIR,
RW_BINDIR, RW_SANITIZED, MESON.
"""
import glob
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

RW_THREADS_MAX = 256
failures = []


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg)


def ensure_systemd_analyze():
    if shutil.which("systemd-analyze"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "systemd-analyze not found (apt-get install systemd) and not root to install it"
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "systemd"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    return None if shutil.which("systemd-analyze") else "systemd-analyze missing; apt-get failed"


def unit_values(text, key):
    return [m.group(1) for m in re.finditer(r"^%s=(.*)$" % re.escape(key), text, re.M)]


def syscall_groups():
    """{'@aio': ['io_cancel', ...], ...} from systemd-analyze syscall-filter."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True,
                         text=True).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = line.strip()
            groups[cur] = []
        elif cur and line.strip() and not line.strip().startswith("#"):
            groups[cur].append(line.strip())
    return groups


def expand(names, groups, seen=None):
    seen = set() if seen is None else seen
    out = set()
    for n in names:
        if n.startswith("@"):
            if n in seen:
                continue
            seen.add(n)
            out |= expand(groups.get(n, []), groups, seen)
        else:
            out.add(n)
    return out


def wait_log(path, needle, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = open(path, errors="replace").read()
        m = re.search(needle, text)
        if m:
            return m, text
        time.sleep(0.02)
    return None, open(path, errors="replace").read()


def echo_once(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">I", 5) + b"hello")
        got = b""
        while len(got) < 9:
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        return got == struct.pack(">I", 5) + b"hello"


def scrape(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data.startswith(b"HTTP/1.1 200")


def syscalls_used(binary, backend, tmp):
    """The set of system calls ringwire makes serving; None when the backend is unavailable."""
    trace = os.path.join(tmp, "strace-%s" % backend)
    log = os.path.join(tmp, "log-%s" % backend)
    with open(log, "w") as logf:
        p = subprocess.Popen(["strace", "-f", "-qq", "-o", trace, binary, "--backend", backend,
                              "--threads", "2", "--listen", "127.0.0.1:0", "--metrics",
                              "127.0.0.1:0", "--stats-json", os.path.join(tmp, "s.json"),
                              "--stats-interval", "100ms", "--log-timestamps"],
                             stdout=logf, stderr=logf)
    m, text = wait_log(log, r"listening on 127\.0\.0\.1:(\d+) ", 30)
    if not m:
        p.kill()
        p.wait()
        if "io_uring unavailable" in text:
            return None
        fail("%s under strace did not start: %s" % (backend, text[-2000:]))
        return set()
    port = int(m.group(1))
    mport = int(re.search(r"metrics: serving http://127\.0\.0\.1:(\d+)/", text).group(1))
    if not echo_once(port):
        fail("%s under strace: no echo" % backend)
    if not scrape(mport):
        fail("%s under strace: no metrics" % backend)
    # Signal ringwire itself, strace's child (strace would die of SIGUSR1).
    child = int(open("/proc/%d/task/%d/children" % (p.pid, p.pid)).read().split()[0])
    os.kill(child, signal.SIGUSR1)
    time.sleep(0.3)
    os.kill(child, signal.SIGTERM)
    if p.wait(timeout=30) != 0:
        fail("%s under strace: exit %d" % (backend, p.returncode))
    names = set()
    for line in open(trace, errors="replace"):
        m = re.match(r"^\d+\s+([a-z0-9_]+)\(", line)
        if m:
            names.add(m.group(1))
    return names


def memlock_share_check(binary, memlock_bytes):
    workers = 8
    share = memlock_bytes * workers // RW_THREADS_MAX

    def limits():
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (share, share))

    with tempfile.NamedTemporaryFile("w+", prefix="rw-memlock-") as logf:
        os.chmod(logf.name, 0o666)
        p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", binary,
                              "--backend", "uring", "--threads", str(workers), "--listen",
                              "127.0.0.1:0"],
                             stdout=logf, stderr=logf, preexec_fn=limits)
        m, text = wait_log(logf.name, r"listening on 127\.0\.0\.1:(\d+) backend=uring", 30)
        if not m:
            p.kill()
            p.wait()
            if "io_uring unavailable" in text and "RLIMIT_MEMLOCK" not in text:
                print("SKIP part 5: io_uring unavailable here: " + text.strip())
                return
            fail("%d uring workers do not start under RLIMIT_MEMLOCK %d KiB (LimitMEMLOCK x %d / "
                 "%d) as an unprivileged user: %s" % (workers, share // 1024, workers,
                                                     RW_THREADS_MAX, text[-1500:]))
            return
        ok = echo_once(int(m.group(1)))
        p.send_signal(signal.SIGTERM)
        code = p.wait(timeout=30)
        if not ok or code != 0:
            fail("unprivileged uring server: echo %s, exit %d" % (ok, code))
        else:
            print("ok: %d uring workers serve under RLIMIT_MEMLOCK %d KiB, uid 65534, no caps, "
                  "no new privileges" % (workers, share // 1024))


def main():
    why = ensure_systemd_analyze()
    if why:
        print("SKIP: " + why)
        return 77
    binary = os.environ["RW_BIN"]
    unitdir = os.environ["RW_UNITDIR"]
    bindir = os.environ["RW_BINDIR"]
    meson = os.environ.get("MESON") or shutil.which("meson")
    tmp = tempfile.mkdtemp(prefix="rw-systemd-")
    dest = os.path.join(tmp, "dest")
    r = subprocess.run([meson, "install", "-C", os.environ["RW_BUILD_ROOT"], "--destdir", dest,
                        "--no-rebuild", "--quiet"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("meson install: %s %s" % (r.stdout, r.stderr))
        return 1
    installed_bin = dest + os.path.join(bindir, "ringwire")
    if not os.access(installed_bin, os.X_OK):
        fail("no installed binary at " + installed_bin)
    units = {}
    for name in ["ringwire.service", "ringwire@.service"]:
        path = dest + os.path.join(unitdir, name)
        if not os.path.isfile(path):
            fail("%s not installed at %s (found: %s)" % (name, path,
                 glob.glob(dest + "/**/*.service", recursive=True)))
            continue
        units[name] = open(path).read()
    if failures:
        return 1

    groups = syscall_groups()
    vdir = os.path.join(tmp, "verify")
    os.mkdir(vdir)
    for name, text in units.items():
        want = "ExecStart=%s $RINGWIRE_OPTS" % os.path.join(bindir, "ringwire")
        if unit_values(text, "ExecStart") != [want.split("=", 1)[1]]:
            fail("%s: ExecStart is %s, want %s" % (name, unit_values(text, "ExecStart"), want))
        for key, value in [("Type", "notify"), ("DynamicUser", "yes"),
                           ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                           ("ProtectHome", "yes"), ("PrivateTmp", "yes")]:
            if value not in unit_values(text, key):
                fail("%s: no %s=%s" % (name, key, value))
        for key in ["LimitNOFILE", "LimitMEMLOCK", "TimeoutStopSec"]:
            if not unit_values(text, key):
                fail("%s: no %s=" % (name, key))
        fams = " ".join(unit_values(text, "RestrictAddressFamilies")).split()
        if sorted(fams) != ["AF_INET", "AF_INET6", "AF_UNIX"]:
            fail("%s: RestrictAddressFamilies=%s" % (name, fams))
        filt = " ".join(unit_values(text, "SystemCallFilter")).split()
        if any(f.startswith("~") for f in filt):
            fail("%s: a deny-list SystemCallFilter (check io_uring by hand): %s" % (name, filt))
        allowed = expand(filt, groups) if filt else None
        if allowed is not None:
            missing = {"io_uring_setup", "io_uring_enter", "io_uring_register"} - allowed
            if missing:
                fail("%s: SystemCallFilter=%s blocks %s" % (name, filt, sorted(missing)))
        units[name] = (text, allowed)
        copy = name.replace("@.", "@7001.")
        with open(os.path.join(vdir, copy), "w") as f:
            f.write(text.replace("ExecStart=" + os.path.join(bindir, "ringwire"),
                                 "ExecStart=" + installed_bin))
    r = subprocess.run(["systemd-analyze", "verify"] +
                       [os.path.join(vdir, n) for n in sorted(os.listdir(vdir))],
                       capture_output=True, text=True, cwd=vdir)
    noise = [l for l in (r.stdout + r.stderr).splitlines() if l.strip()]
    if r.returncode != 0 or noise:
        fail("systemd-analyze verify (exit %d):\n%s" % (r.returncode, "\n".join(noise)))
    else:
        print("ok: systemd-analyze verify is silent on ringwire.service, ringwire@7001.service")

    text, allowed = units["ringwire.service"]
    if os.environ.get("RW_SANITIZED", "none") != "none":
        print("SKIP part 4: sanitizer build (its runtime makes system calls of its own)")
    elif not shutil.which("strace"):
        print("SKIP part 4: strace not installed")
    elif allowed is not None:
        for backend in ["epoll", "uring"]:
            used = syscalls_used(binary, backend, tmp)
            if used is None:
                print("SKIP part 4 (%s): io_uring unavailable" % backend)
                continue
            blocked = sorted(used - allowed)
            if blocked:
                fail("%s backend makes system calls SystemCallFilter= denies: %s" %
                     (backend, blocked))
            else:
                print("ok: %s backend: all %d system calls used are allowed" %
                      (backend, len(used)))

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP part 5: needs root and setpriv")
    else:
        value = unit_values(text, "LimitMEMLOCK")[0]
        m = re.fullmatch(r"(\d+)([KMG]?)", value)
        mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[m.group(2)]
        memlock_share_check(binary, int(m.group(1)) * mult)
    shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
