#!/usr/bin/env python3
"""install_examples: libringwire as a user gets it.

`meson install --destdir` into a temporary directory, then, from that
install only: the layout (shared library with soname libringwire.so.0 and
its links, static archive, headers, ringwire.pc, the programs, every file
meson says it installs), the shared library's dynamic symbols (only rw_
names the public headers declare RW_API, never an rw__ internal, and every
one they declare), ringwire.pc (version, Requires.private liburing,
Libs.private -lpthread), then examples/echo.c and examples/kv.c compiled
and linked with `pkg-config --cflags --libs ringwire` alone (examples/Makefile
too, when make is there), echo also against libringwire.a (pkg-config
--static), and each started on port 0 and talked to over real sockets until
SIGTERM, which must end it with status 0.

Exit 77 (skip) only when a tool the check cannot do without is missing (a C
compiler, pkg-config, nm, readelf); anything else that goes wrong fails.

Usage (meson.build passes these): install_examples.py BUILD_DIR SOURCE_DIR MESON
VERSION [SANITIZE]
"""
import os
import re
import select
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

START_TIMEOUT_S = 60  # a loaded 2-core machine: generous, and polled
IO_TIMEOUT_S = 30
EXIT_TIMEOUT_S = 60


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def ok(msg):
    print("ok: " + msg, flush=True)


def run(cmd, env=None, what=None):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        fail("%s (exit %d): %s\n%s" % (what or "command failed", r.returncode,
                                      " ".join(shlex.quote(c) for c in cmd), r.stdout))
    return r.stdout


def build_options(build_dir, meson):
    import json
    out = run(meson + ["introspect", "--buildoptions", build_dir], what="meson introspect")
    return {o["name"]: o["value"] for o in json.loads(out)}


def installed_files(build_dir, meson):
    import json
    out = run(meson + ["introspect", "--installed", build_dir], what="meson introspect")
    return sorted(set(json.loads(out).values()))


def under(destdir, path):
    return os.path.join(destdir, os.path.relpath(path, "/"))


def check_layout(destdir, opts, meson_files):
    prefix = opts["prefix"]
    libdir = os.path.join(prefix, opts["libdir"])
    incdir = os.path.join(prefix, opts["includedir"])
    bindir = os.path.join(prefix, opts["bindir"])
    for f in meson_files:  # everything meson says it installs is there
        if not os.path.lexists(under(destdir, f)):
            fail("meson lists %s as installed; not in the destdir" % f)
    ok("%d files meson installs are in the destdir" % len(meson_files))
    paths = {
        "so": os.path.join(libdir, "libringwire.so.%s" % VERSION),
        "so_soname": os.path.join(libdir, "libringwire.so.0"),
        "so_dev": os.path.join(libdir, "libringwire.so"),
        "a": os.path.join(libdir, "libringwire.a"),
        "pc": os.path.join(libdir, "pkgconfig", "ringwire.pc"),
        "ringwire.h": os.path.join(incdir, "ringwire", "ringwire.h"),
        "frame.h": os.path.join(incdir, "ringwire", "frame.h"),
        "export.h": os.path.join(incdir, "ringwire", "export.h"),
        "ringwire": os.path.join(bindir, "ringwire"),
        "ringwire-bench": os.path.join(bindir, "ringwire-bench"),
    }
    for name, p in paths.items():
        if not os.path.lexists(under(destdir, p)):
            fail("%s not installed at %s" % (name, p))
    for link in ("so_soname", "so_dev"):
        if not os.path.islink(under(destdir, paths[link])):
            fail("%s is not a symlink" % paths[link])
        if os.path.realpath(under(destdir, paths[link])) != os.path.realpath(
                under(destdir, paths["so"])):
            fail("%s does not lead to %s" % (paths[link], paths["so"]))
    if not any(f.endswith("/ringwire.service") for f in meson_files):
        fail("ringwire.service is not among the installed files")
    ok("layout: %s (+ .so.0, .so links), libringwire.a, headers, ringwire.pc, programs, units"
       % paths["so"])
    return {k: under(destdir, v) for k, v in paths.items()}, under(destdir, prefix)


def dynamic_symbols(so):
    out = run(["nm", "-D", "--defined-only", so], what="nm")
    names = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            names.append(fields[2].split("@")[0])
    return sorted(set(names))


def declared_api(include_dir):
    names = set()
    for h in sorted(f for f in os.listdir(include_dir) if f.endswith(".h")):
        text = open(os.path.join(include_dir, h)).read()
        # A function declared at file scope without the mark would be hidden: say so.
        for m in re.finditer(r"^(?!RW_API\b|typedef\b|static\b|#)[A-Za-z][^;(]*?\b(rw_\w+)\s*\(", text,
                             re.M):
            fail("%s: %s declared without RW_API (hidden from the shared library)"
                 % (h, m.group(1)))
        for m in re.finditer(r"\bRW_API\b([^;{]*?)\b(rw_\w+)\s*(\(|;|\[)", text):
            names.add(m.group(2))
    return sorted(names)


def check_symbols(paths):
    so = paths["so"]
    dyn = run(["readelf", "-d", so], what="readelf")
    m = re.search(r"Library soname: \[([^\]]+)\]", dyn)
    if not m or m.group(1) != "libringwire.so.0":
        fail("soname: %s, want libringwire.so.0" % (m.group(1) if m else "none"))
    ok("soname libringwire.so.0")
    exported = dynamic_symbols(so)
    declared = declared_api(os.path.dirname(paths["ringwire.h"]))
    internal = [s for s in exported if s.startswith("rw__")]
    if internal:
        fail("internals exported: " + " ".join(internal))
    foreign = [s for s in exported if not s.startswith("rw_")]
    if foreign:
        fail("non-rw_ symbols exported: " + " ".join(foreign))
    undeclared = [s for s in exported if s not in declared]
    if undeclared:
        fail("exported but not RW_API in the installed headers: " + " ".join(undeclared))
    ok("nm -D: %d symbols exported, every one rw_ and RW_API in the headers, no rw__"
       % len(exported))
    return exported, declared


def check_pc(pkg_config):
    got = run(pkg_config + ["--modversion", "ringwire"], what="pkg-config").strip()
    if got != VERSION:
        fail("ringwire.pc version %s, want %s" % (got, VERSION))
    req = run(pkg_config + ["--print-requires-private", "ringwire"], what="pkg-config")
    if "liburing" not in req:
        fail("ringwire.pc Requires.private lacks liburing: %r" % req)
    libs = run(pkg_config + ["--libs", "ringwire"], what="pkg-config").split()
    static_libs = run(pkg_config + ["--static", "--libs", "ringwire"], what="pkg-config").split()
    if "-lringwire" not in libs or "-luring" in libs:
        fail("pkg-config --libs ringwire: %s" % " ".join(libs))
    if "-lpthread" not in static_libs or "-luring" not in static_libs:
        fail("pkg-config --static --libs ringwire: %s" % " ".join(static_libs))
    ok("ringwire.pc: version %s; --libs %s; --static --libs %s" %
       (got, " ".join(libs), " ".join(static_libs)))


# ---- talking to the examples ----

def start(exe, args):
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen([exe] + args, stdout=subprocess.PIPE, stderr=err,
                         universal_newlines=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    line = ""
    while time.monotonic() < deadline and not line.endswith("\n"):
        r, _, _ = select.select([p.stdout], [], [], 0.5)
        if r:
            c = p.stdout.readline()
            if not c:
                break  # EOF: it exited
            line += c
    m = re.match(r"listening on port (\d+)", line)
    if not m:
        p.kill()
        p.wait()
        err.seek(0)
        fail("%s %s: no 'listening on port N' within %d s (got %r); stderr:\n%s" %
             (exe, " ".join(args), START_TIMEOUT_S, line, err.read()))
    return p, int(m.group(1)), err


def stop(p, err, name):
    """SIGTERM, then the exit status must be 0. Returns the rest of stdout."""
    p.send_signal(signal.SIGTERM)
    try:
        out, _ = p.communicate(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("%s did not exit within %d s of SIGTERM" % (name, EXIT_TIMEOUT_S))
    err.seek(0)
    if p.returncode != 0:
        fail("%s exited %d after SIGTERM; stderr:\n%s" % (name, p.returncode, err.read()))
    return out


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            fail("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return bytes(buf)


def recv_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    return recv_exact(s, n)


def expect_eof(s):
    try:
        chunk = s.recv(1)
    except ConnectionResetError:
        return
    if chunk:
        fail("expected the server to close; got more bytes %r" % chunk)


def talk_echo(port):
    a, b = connect(port), connect(port)
    sizes = [0, 1, 100, 4096, 70000, 5]  # 70000: over one 16 KiB receive buffer
    burst = b"".join(frame(bytes((i * 7 + k) % 256 for k in range(n)))
                     for i, n in enumerate(sizes))
    a.sendall(burst)  # many frames in one write
    b.sendall(frame(b"other connection"))
    if recv_exact(a, len(burst)) != burst:
        fail("echo: a burst of %d frames came back different" % len(sizes))
    if recv_frame(b) != b"other connection":
        fail("echo: the second connection's frame came back different")
    split = frame(b"split across many writes") + frame(b"x" * 300)
    for cut in (1, 2, 3, 4, 5, 9, 30, len(split)):  # inside the header, at it, past it
        a.sendall(split[:cut])
        time.sleep(0.02)
        a.sendall(split[cut:])
        if recv_exact(a, len(split)) != split:
            fail("echo: frames cut at byte %d came back different" % cut)
    for byte in frame(b"one byte a write"):
        a.send(bytes([byte]))
    if recv_frame(a) != b"one byte a write":
        fail("echo: a frame sent one byte a write came back different")
    a.close()
    b.close()


def kv(s, cmd):
    s.sendall(frame(cmd))
    return recv_frame(s)


def expect(got, want, what):
    if got != want:
        fail("kv: %s: got %r, want %r" % (what, got, want))


def talk_kv(port):
    a, b = connect(port), connect(port)  # two connections open at once
    expect(kv(a, b"SET x 1"), b"OK", "a SET x")
    expect(kv(b, b"GET x"), b"NONE", "b sees nothing of a's store")
    expect(kv(b, b"SET x 2"), b"OK", "b SET x")
    expect(kv(a, b"GET x"), b"VALUE 1", "a keeps its own x")
    expect(kv(b, b"GET x"), b"VALUE 2", "b keeps its own x")
    expect(kv(a, b"SET greeting hello, world"), b"OK", "a SET with spaces")
    expect(kv(a, b"COUNT"), b"COUNT 2", "a COUNT")
    expect(kv(b, b"COUNT"), b"COUNT 1", "b COUNT")
    # Pipelined: three commands in one write, three replies in order.
    a.sendall(frame(b"DEL x") + frame(b"GET x") + frame(b"GET greeting"))
    expect(recv_frame(a), b"OK", "pipelined DEL")
    expect(recv_frame(a), b"NONE", "pipelined GET after DEL")
    expect(recv_frame(a), b"VALUE hello, world", "pipelined GET")
    expect(kv(a, b"FROB x"), b"ERR unknown command", "unknown command")
    expect(kv(a, b"COUNT"), b"COUNT 1", "a COUNT after DEL and an error")
    expect(kv(b, b"QUIT"), b"BYE", "b QUIT")
    expect_eof(b)  # rw_conn_close: the server closed after BYE
    c = connect(port)  # a new connection starts empty
    expect(kv(c, b"GET greeting"), b"NONE", "a fresh connection has a fresh store")
    expect(kv(a, b"GET greeting"), b"VALUE hello, world", "a still has its store")
    a.close()
    b.close()
    c.close()
    # a: greeting left; b: x left; c: nothing. Each on_close frees its own.
    return {"accepted": 3, "closed": 3, "keys_freed": 2}


def run_example(exe, args, talk, name):
    p, port, err = start(exe, args)
    want = talk(port)
    out = stop(p, err, name)
    if want:
        m = re.search(r"kv: accepted=(\d+) closed=(\d+) keys_freed=(\d+)", out)
        if not m:
            fail("%s: no totals line at exit; stdout: %r" % (name, out))
        got = {"accepted": int(m.group(1)), "closed": int(m.group(2)),
               "keys_freed": int(m.group(3))}
        if got != want:
            fail("%s: totals %s, want %s (on_open/on_close pairs)" % (name, got, want))
    ok("%s %s: served on port %d, exited 0 on SIGTERM" % (name, " ".join(args), port))


def main():
    global VERSION
    if len(sys.argv) < 5:
        print(__doc__)
        sys.exit(2)
    build_dir, source_dir = sys.argv[1], sys.argv[2]
    meson = shlex.split(sys.argv[3])
    VERSION = sys.argv[4]
    sanitize = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "none" else ""

    cc = shlex.split(os.environ.get("CC", "cc"))
    for tool in [cc[0], "pkg-config", "nm", "readelf"]:
        if not shutil.which(tool):
            print("SKIP: %s not found (needed to build against the install)" % tool)
            sys.exit(77)

    tmp = tempfile.mkdtemp(prefix="rw-install-")
    try:
        destdir = os.path.join(tmp, "dest")
        run(meson + ["install", "-C", build_dir, "--no-rebuild", "--quiet",
                     "--destdir", destdir], what="meson install --destdir")
        ok("meson install --destdir %s" % destdir)
        opts = build_options(build_dir, meson)
        paths, prefix = check_layout(destdir, opts, installed_files(build_dir, meson))
        exported, declared = check_symbols(paths)

        # The .pc names the configured prefix; --define-variable moves it into the destdir
        # (PKG_CONFIG_SYSROOT_DIR would too, but drops -I for a /usr prefix).
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(paths["pc"]))
        env.pop("PKG_CONFIG_LIBDIR", None)
        # meson test points LD_LIBRARY_PATH at the build's libringwire.so: the examples must
        # load the installed one (their RUNPATH), so it goes.
        env.pop("LD_LIBRARY_PATH", None)
        os.environ.pop("LD_LIBRARY_PATH", None)
        os.environ.update(env)
        pkg_config = ["pkg-config", "--define-variable=prefix=" + prefix]
        check_pc(pkg_config)
        cflags = run(pkg_config + ["--cflags", "ringwire"], what="pkg-config").split()
        libs = run(pkg_config + ["--libs", "ringwire"], what="pkg-config").split()
        static_libs = run(pkg_config + ["--static", "--libs", "ringwire"],
                          what="pkg-config").split()
        if not any(c.startswith("-I" + destdir) for c in cflags):
            fail("pkg-config --cflags does not point into the install: %s" % cflags)

        # A sanitized library needs its runtime in the program too.
        san = ["-fsanitize=" + sanitize] if sanitize else []
        warn = ["-Wall", "-Wextra", "-Werror", "-O1", "-g"]
        examples = os.path.join(source_dir, "examples")
        out = os.path.join(tmp, "bin")
        os.mkdir(out)
        for name in ("echo", "kv"):
            run(cc + warn + san + cflags + ["-c", os.path.join(examples, name + ".c"),
                                             "-o", os.path.join(out, name + ".o")],
                what="cc -c examples/%s.c" % name)
        ok("cc -c examples/echo.c examples/kv.c $(pkg-config --cflags ringwire): %s"
           % " ".join(cflags))

        missing = [s for s in declared if s not in exported]
        if missing:
            fail("declared RW_API in the headers but not in libringwire.so: " +
                 " ".join(missing))
        ok("every RW_API function of the headers is exported (%d)" % len(declared))

        rpath = ["-Wl,-rpath," + os.path.dirname(paths["so"])]
        exe = {}
        for name in ("echo", "kv"):
            exe[name] = os.path.join(out, name)
            run(cc + warn + san + cflags + ["-o", exe[name], os.path.join(examples, name + ".c")]
                + rpath + libs, what="cc examples/%s.c $(pkg-config --libs ringwire)" % name)
        exe["echo-static"] = os.path.join(out, "echo-static")
        run(cc + warn + san + cflags + ["-o", exe["echo-static"],
                                        os.path.join(examples, "echo.c"), "-Wl,-Bstatic"]
            + static_libs + ["-Wl,-Bdynamic"], what="cc examples/echo.c, static libringwire")
        needed = run(["readelf", "-d", exe["echo-static"]], what="readelf")
        if "libringwire" in needed or "liburing" in needed:
            fail("echo-static still needs a shared libringwire/liburing:\n" + needed)
        needed = run(["readelf", "-d", exe["echo"]], what="readelf")
        if "libringwire.so.0" not in needed:
            fail("echo does not need libringwire.so.0:\n" + needed)
        if shutil.which("ldd"):
            loads = run(["ldd", exe["kv"]], what="ldd")
            want = "libringwire.so.0 => " + os.path.dirname(paths["so"]) + "/"
            if want not in loads:
                fail("kv does not load the installed libringwire.so.0:\n" + loads)
        ok("built echo, kv (shared: NEEDED libringwire.so.0) and echo-static (libringwire.a)")

        # The README's Embedding program is the first one people copy: it must build too.
        readme = open(os.path.join(source_dir, "README.md")).read()
        section = readme[readme.index("\n## Embedding"):]
        m = re.search(r"```c\n(.*?)```", section, re.S)
        if not m:
            fail("README's Embedding section has no ```c program")
        prog = os.path.join(tmp, "readme_embedding.c")
        with open(prog, "w") as f:
            f.write(m.group(1))
        run(cc + warn + san + cflags + ["-o", os.path.join(out, "readme_embedding"), prog]
            + rpath + libs, what="cc README Embedding program")
        ok("README's Embedding program builds against the install")

        if shutil.which("make"):
            mk = os.path.join(tmp, "make")
            os.mkdir(mk)
            run(["make", "-s", "-C", examples, "OUT=" + mk,
                 "PKG_CONFIG=" + " ".join(pkg_config), "LDFLAGS=" + " ".join(rpath + san),
                 "CFLAGS=" + " ".join(warn + san)], what="make -C examples")
            run(["make", "-s", "-C", examples, "OUT=" + mk, "STATIC=1",
                 "PKG_CONFIG=" + " ".join(pkg_config), "LDFLAGS=" + " ".join(san),
                 "CFLAGS=" + " ".join(warn + san), mk + "/echo"], what="make STATIC=1")
            ok("examples/Makefile builds both (shared and STATIC=1)")
        else:
            print("note: make not found: examples/Makefile not tried", flush=True)

        listen = ["--listen", "127.0.0.1:0"]
        run_example(exe["echo"], listen + ["--threads", "2"], talk_echo, "echo")
        run_example(exe["echo"], listen + ["--backend", "epoll"], talk_echo, "echo")
        run_example(exe["echo-static"], listen, talk_echo, "echo-static")
        run_example(exe["kv"], listen + ["--threads", "2"], talk_kv, "kv")
        print("PASS", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


VERSION = None
if __name__ == "__main__":
    main()
