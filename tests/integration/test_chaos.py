#!/usr/bin/env python3
"""A hostile crowd against the real binary: meson test integ_chaos_{epoll,uring}[_t2].

About 100 connections at a time, for a few seconds per server configuration, each with a
random script (one generator with a fixed seed, drawn from as events come, so a run is not
replayed exactly: timing orders the draws):
- random frames (0 B to 300 KB; sizes at and across the 16 KiB buffer edges);
- writes cut at random (1, 3 or 7 bytes, or whole);
- pipelining;
- reads of 1 B to 1 MiB, and slow readers that pause up to 200 ms between reads;
- RST mid-stream (SO_LINGER 0);
- half-close after the last frame;
- a bad length (over --max-frame) after good frames.

What must hold, for every connection:
- every reply byte equals what was sent, in order, up to where the connection ends;
- a normal or slow connection gets all its replies;
- a half-closed one gets all its replies, then EOF;
- one that sent a bad length gets every reply before it, then the close;
- nothing is still waiting when the crowd is done.

For the server: it stays up, drains on SIGTERM and exits 0, and its log has no failed
assertion or sanitizer report (the suite also runs under ASan+UBSan).

The server runs with --max-memory 1G and no idle or frame timeout (the crowd holds ~100 MB at
most, and a slow reader under valgrind must not be reaped: those closes are not failures of
the server). Two configurations: the defaults, and a short ring with a small write buffer (--buf-count 4
--write-buffer 32K: bundles that empty the ring, backpressure pauses mid-read). The second is
where a bundle's last completion used to arm a second recv (kernel-notes/26). RW_SERVER_ARGS
goes before each configuration's own options, as in the C harness.

Environment: RW_BIN, RW_BACKEND, RW_THREADS (as the C tests), RW_WRAPPER (timeouts
stretched), RW_CHAOS_SECONDS (1.5 per configuration), RW_CHAOS_SEED (default: fixed per backend
and thread count). Exit 0 pass, 1 fail, 77 skip (no io_uring for the uring backend).
"""
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

MAX_FRAME = 300000
CONNS = 100
MODES = ["normal"] * 6 + ["rst", "halfclose", "bad", "slow"]
BAD_LOG = re.compile(r"assertion failed|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error|LeakSanitizer")


class Conn:
    def __init__(self, crowd):
        self.crowd = crowd
        rng = crowd.rng
        self.s = socket.create_connection(("127.0.0.1", crowd.port), timeout=10)
        self.s.setblocking(False)
        self.out = bytearray()  # still to send
        self.expect = bytearray()  # every reply due, in order
        self.got = 0
        self.mode = rng.choice(MODES)
        self.frames_left = rng.randint(1, 20)
        self.bad_sent = False
        self.shut = False
        self.slow_until = 0.0
        self.closed = False
        crowd.sel.register(self.s, selectors.EVENT_READ | selectors.EVENT_WRITE, self)

    def frame(self):
        rng = self.crowd.rng
        r = rng.random()
        if r < 0.5:
            n = rng.randint(0, 200)
        elif r < 0.8:
            n = rng.choice([16443, 16444, 16445, 16448, 32888, 4092, 4096])
        else:
            n = rng.randint(0, MAX_FRAME)
        chunk = rng.randbytes(64)
        return struct.pack(">I", n) + (chunk * (n // 64 + 1))[:n]

    def queue(self):
        if self.frames_left > 0:
            f = self.frame()
            self.out += f
            self.expect += f
            self.frames_left -= 1
        elif self.mode == "bad" and not self.bad_sent:
            rng = self.crowd.rng
            self.out += struct.pack(">I", MAX_FRAME + 1 + rng.randint(0, 1000))
            self.out += b"x" * rng.randint(0, 10)
            self.bad_sent = True

    def fail(self, why):
        self.crowd.failures.append(f"{self.mode} connection: {why} (replies {self.got} of {len(self.expect)} B)")
        self.close()

    def close(self, rst=False):
        if self.closed:
            return
        self.closed = True
        self.crowd.sel.unregister(self.s)
        if rst:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.s.close()

    def all_replied(self):
        return self.frames_left == 0 and self.got == len(self.expect)

    def on_event(self, ev):
        rng = self.crowd.rng
        if ev & selectors.EVENT_WRITE and not self.closed:
            if not self.out:
                self.queue()
            if self.out:
                try:
                    n = self.s.send(self.out[: rng.choice([1, 3, 7, len(self.out), 100000])])
                    del self.out[:n]
                except BlockingIOError:
                    pass
                except OSError as e:
                    # The server ends a connection only after a bad frame (then a reset of our
                    # unread junk is fair); anything else is a failure.
                    if not self.bad_sent:
                        self.fail(f"send: {e}")
                    else:
                        self.close()
                    return
            elif self.frames_left == 0 and not self.shut:
                self.shut = True
                if self.mode == "halfclose":
                    self.s.shutdown(socket.SHUT_WR)
                self.crowd.sel.modify(self.s, selectors.EVENT_READ, self)
        if self.mode == "rst" and self.got > 0 and rng.random() < 0.05:
            self.close(rst=True)
            return
        if ev & selectors.EVENT_READ and not self.closed:
            now = time.monotonic()
            if self.mode == "slow" and not self.crowd.finishing:
                if now < self.slow_until:
                    return
                self.slow_until = now + rng.random() * 0.2
            try:
                d = self.s.recv(rng.choice([1, 100, 65536, 1 << 20]))
            except BlockingIOError:
                return
            except ConnectionResetError:
                d = b""
            if d:
                if self.expect[self.got : self.got + len(d)] != d:
                    self.fail(f"reply differs at byte {self.got}")
                    return
                self.got += len(d)
                if self.all_replied() and self.mode in ("normal", "slow", "rst"):
                    self.close()
            elif self.all_replied() and self.mode in ("halfclose", "bad"):
                self.close()  # the close that was due
            else:
                self.fail("closed by the server early")


class Crowd:
    def __init__(self, port, seed):
        self.port = port
        self.rng = random.Random(seed)
        self.sel = selectors.DefaultSelector()
        self.failures = []
        self.conns = []
        self.finishing = False  # the crowd stopped: slow readers read at full speed

    def pump(self):
        for key, ev in self.sel.select(timeout=0.05):
            key.data.on_event(ev)

    def run(self, seconds, drain_seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            live = sum(1 for c in self.conns if not c.closed)
            for _ in range(CONNS - live):
                self.conns.append(Conn(self))
            self.pump()
        self.finishing = True
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline and any(not c.closed for c in self.conns):
            self.pump()
        for c in self.conns:
            if not c.closed:
                c.fail(f"still waiting {drain_seconds:g} s after the crowd stopped "
                       f"({len(c.out)} B unsent, {c.frames_left} frames to go)")
        return len(self.conns)


def run_config(name, extra, seed, seconds, factor):
    argv = os.environ.get("RW_WRAPPER", "").split() + [os.environ["RW_BIN"]]
    argv += ["--backend", os.environ.get("RW_BACKEND", "uring"), "--threads", os.environ.get("RW_THREADS", "1"),
             "--listen", "127.0.0.1:0", "--max-frame", str(MAX_FRAME), "--drain-timeout", "10s",
             "--max-memory", "1G", "--idle-timeout", "0", "--frame-timeout", "0"]
    argv += os.environ.get("RW_SERVER_ARGS", "").split() + extra
    log = tempfile.NamedTemporaryFile(mode="w", prefix="ringwire-chaos-", suffix=".log")

    def log_text():
        with open(log.name, errors="replace") as f:  # its own offset: the server's stays put
            return f.read()

    srv = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        port = None
        deadline = time.monotonic() + 10 * factor
        while port is None and time.monotonic() < deadline and srv.poll() is None:
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log_text())
            if m:
                port = int(m.group(1))
            else:
                time.sleep(0.02)
        if port is None:
            text = log_text()
            if srv.poll() == 1 and "io_uring unavailable" in text:  # as harness.c skips
                print(f"{name}: skip: {text.strip()[-300:]}")
                return 77
            print(f"{name}: the server did not start:\n{text[-2000:]}")
            return 1
        crowd = Crowd(port, seed)
        try:
            opened = crowd.run(seconds, 20 * factor)
        except OSError as e:  # connect or shutdown failing: the server's log says why
            crowd.failures.append(f"the crowd stopped: {e!r}")
            opened = len(crowd.conns)
        problems = crowd.failures[:10]
        if srv.poll() is not None:
            problems.append(f"the server exited ({srv.returncode}) under the crowd")
        else:
            srv.send_signal(signal.SIGTERM)
            try:
                rc = srv.wait(timeout=20 * factor)
                if rc != 0:
                    problems.append(f"the server exited {rc} after SIGTERM")
            except subprocess.TimeoutExpired:
                problems.append("the server did not exit within 20 s of SIGTERM")
        text = log_text()
        for line in text.splitlines():
            if BAD_LOG.search(line):
                problems.append(f"server log: {line.strip()}")
        print(f"{name}: {opened} connections, seed {seed}, {len(crowd.failures)} failed")
        for p in problems:
            print(f"  FAIL {p}")
        if problems:
            print(text[-3000:])
        return 1 if problems else 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
        log.close()


def main():
    factor = 6 if os.environ.get("RW_WRAPPER") else 1
    seconds = float(os.environ.get("RW_CHAOS_SECONDS", "1.5"))
    backend = os.environ.get("RW_BACKEND", "uring")
    threads = os.environ.get("RW_THREADS", "1")
    seed = int(os.environ.get("RW_CHAOS_SEED", str(1000 * (backend == "uring") + int(threads))))
    rc = 0
    for i, (name, extra) in enumerate([("defaults", []),
                                       ("short ring", ["--buf-count", "4", "--write-buffer", "32K"])]):
        r = run_config(f"{backend} t{threads} {name}", extra, seed + i, seconds, factor)
        if r == 77:
            return 77
        rc |= r
    return rc


if __name__ == "__main__":
    sys.exit(main())
