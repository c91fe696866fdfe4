/*
 * Integration tests of the server's limits and of peers that misbehave: idle
 * and slow-frame peers are reaped while active ones are not; --max-conns
 * closes the surplus at once and frees its slot; thousands of simultaneous
 * connections are all served; a peer that never reads is paused at
 * --write-buffer with bounded memory while others are served; running out of
 * descriptors does not turn into a busy loop and accepting resumes after; a
 * burst after a stall does not take an output block per ready connection;
 * clients queued at start cannot starve a sibling worker's setup of
 * descriptors; the soft RLIMIT_NOFILE is raised to fit --max-conns, or a
 * warning says why not; a limit too small for the workers says so.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MANY_CONNS       2000
#define FLOOD_CLIENTS    150
#define PUSH_FRAME_BYTES 65536u /* header + payload of each frame pushed at a non-reader */
#define PUSH_LIMIT_BYTES (128u << 20)
#define PUSH_BOUND_BYTES (64u << 20)
#define RSS_GROWTH_KIB   (32l << 10)

/* Non-blocking: has the peer closed (EOF or RST) already? */
static bool closed_now(int fd)
{
    return h_expect_close(fd, 0) == 0;
}

START_TEST(test_limits_idle_reap)
{
    struct h_server srv;
    const char *args[] = {"--idle-timeout", "300ms", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int idle = h_connect_ok(&srv);
    int active = h_connect_ok(&srv);
    int64_t t0 = h_now_ms(), idle_closed_ms = -1;
    uint8_t payload[32];
    for (int i = 0; i < 15; i++) {
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(active, payload, sizeof(payload), 1000);
        if (idle_closed_ms < 0 && closed_now(idle))
            idle_closed_ms = h_now_ms() - t0;
        int64_t next = t0 + (i + 1) * 100;
        if (next > h_now_ms())
            h_sleep_ms((int)(next - h_now_ms()));
    }
    /* The active connection survived 1.5 s of 100 ms gaps with a 300 ms idle timeout. */
    h_echo_ok(active, payload, sizeof(payload), 1000);
    ck_assert_msg(idle_closed_ms >= 0 || h_expect_close(idle, 500) == 0,
                  "an idle connection was not reaped within 2 s (--idle-timeout 300ms)");
    if (idle_closed_ms >= 0)
        ck_assert_msg(idle_closed_ms >= 250, "idle connection closed after only %lld ms",
                      (long long)idle_closed_ms);
    ck_assert_int_eq(h_stat_ok(&srv, "reaped_idle"), 1);
    close(idle);
    close(active);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_limits_frame_timeout)
{
    struct h_server srv;
    const char *args[] = {"--frame-timeout", "500ms", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});

    /* A frame completed well within the limit, one byte per 30 ms, is answered. */
    int slow = h_connect_ok(&srv);
    uint8_t frame[H_FRAME_HDR + 10];
    uint8_t payload[10];
    h_fill(payload, sizeof(payload), 8);
    h_build_frame(frame, payload, sizeof(payload));
    for (size_t i = 0; i < sizeof(frame); i++) {
        ck_assert_int_eq(h_send_all(slow, frame + i, 1, 1000), 0);
        h_sleep_ms(30);
    }
    uint8_t reply[sizeof(frame)];
    ck_assert_int_eq(h_recv_exact(slow, reply, sizeof(reply), 2000), 0);
    ck_assert_mem_eq(reply, frame, sizeof(frame));

    /* A 1000-byte frame dribbled at one byte per 100 ms is cut off (not idle: bytes keep coming).
     */
    int drip = h_connect_ok(&srv);
    uint8_t hdr[H_FRAME_HDR];
    h_put_header(hdr, 1000);
    int64_t t0 = h_now_ms(), closed_ms = -1;
    ck_assert_int_eq(h_send_all(drip, hdr, sizeof(hdr), 1000), 0);
    for (int i = 0; i < 40 && closed_ms < 0; i++) {
        h_sleep_ms(100);
        uint8_t b = (uint8_t)i;
        if (closed_now(drip) || send(drip, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            closed_ms = h_now_ms() - t0;
    }
    ck_assert_msg(closed_ms >= 0,
                  "a frame dribbled for 4 s was not cut off (--frame-timeout 500ms)");
    ck_assert_msg(closed_ms >= 400 && closed_ms <= 2500,
                  "dribbling peer closed after %lld ms (--frame-timeout 500ms)",
                  (long long)closed_ms);
    /* The slow-but-complete peer is still served. */
    h_echo_ok(slow, payload, sizeof(payload), 1000);
    close(drip);
    close(slow);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_limits_max_conns)
{
    struct h_server srv;
    const char *args[] = {"--max-conns", "5", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fds[5];
    uint8_t payload[64];
    h_fill(payload, sizeof(payload), 1);
    for (int i = 0; i < 5; i++) {
        fds[i] = h_connect_ok(&srv);
        h_echo_ok(fds[i], payload, sizeof(payload), 2000);
    }
    int sixth = h_connect_ok(&srv);
    int rc = h_expect_close(sixth, 1000);
    ck_assert_msg(rc == 0, "the 6th connection with --max-conns 5 was not closed at once: %s",
                  rc == -EPROTO ? "it got data" : strerror(-rc));
    close(sixth);
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "rejected_limit") == 1, "rejected_limit: %s", line);
    ck_assert_msg(h_stat_get(line, "conns_open") == 5, "conns_open: %s", line);

    close(fds[0]);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 4, 3000), 4);
    fds[0] = h_connect_ok(&srv);
    h_echo_ok(fds[0], payload, sizeof(payload), 2000);
    for (int i = 1; i < 5; i++)
        h_echo_ok(fds[i], payload, sizeof(payload), 2000);
    ck_assert_int_eq(h_stat_ok(&srv, "rejected_limit"), 1);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    h_stop_ok(&srv);
}
END_TEST

/* Wait until every socket in fds is connected (writable, no error); returns how many are. */
static int wait_connected(int *fds, int count, int timeout_ms)
{
    struct pollfd *p = calloc((size_t)count, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    int done = 0;
    for (int i = 0; i < count; i++)
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
    int64_t deadline = h_now_ms() + timeout_ms;
    while (done < count && h_now_ms() < deadline) {
        int n = poll(p, (nfds_t)count, 100);
        for (int i = 0; n > 0 && i < count; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
            ck_assert_msg(err == 0, "connection %d failed: %s", i, strerror(err));
            p[i].fd = -1;
            done++;
        }
    }
    free(p);
    return done;
}

/*
 * MANY_CONNS clients connect at once, each sends one frame naming itself, and
 * every one must get its own echo back: nobody starves, whatever the server's
 * buffer configuration (args).
 */
static void check_many_conns_all_served(const char *const *args)
{
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    int count = MANY_CONNS;
    if (rl.rlim_cur < (rlim_t)MANY_CONNS + 100) {
        count = (int)rl.rlim_cur - 100;
        fprintf(stderr, "test_limits_thousands_of_conns: RLIMIT_NOFILE %lu, using %d conns\n",
                (unsigned long)rl.rlim_cur, count);
    }
    ck_assert_int_ge(count, 500);
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int *fds = calloc((size_t)count, sizeof(int));
    size_t *got = calloc((size_t)count, sizeof(size_t));
    struct pollfd *p = calloc((size_t)count, sizeof(*p));
    ck_assert(fds && got && p);
    for (int i = 0; i < count; i++) {
        fds[i] = h_connect_start(&srv);
        ck_assert_msg(fds[i] >= 0, "socket/connect %d: %s", i, strerror(-fds[i]));
    }
    ck_assert_int_eq(wait_connected(fds, count, 10000), count);

    /* Each sends one 16-byte frame naming itself; every echo must come back to its sender. */
    enum { PAYLOAD = 16, FRAME = H_FRAME_HDR + PAYLOAD };
    uint8_t(*replies)[FRAME] = calloc((size_t)count, FRAME);
    ck_assert_ptr_nonnull(replies);
    for (int i = 0; i < count; i++) {
        uint8_t frame[FRAME], payload[PAYLOAD];
        h_fill(payload, PAYLOAD, (uint32_t)i + 1000u);
        memcpy(payload, &i, sizeof(i));
        h_build_frame(frame, payload, PAYLOAD);
        ck_assert_int_eq(send(fds[i], frame, FRAME, MSG_NOSIGNAL), FRAME);
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    }
    int done = 0;
    int64_t deadline = h_now_ms() + 20000;
    while (done < count && h_now_ms() < deadline) {
        int n = poll(p, (nfds_t)count, 100);
        for (int i = 0; n > 0 && i < count; i++) {
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            ssize_t r = recv(fds[i], replies[i] + got[i], FRAME - got[i], MSG_DONTWAIT);
            if (r < 0 && errno == EAGAIN)
                continue;
            ck_assert_msg(r > 0, "connection %d of %d closed or failed (%zd) before its echo", i,
                          count, r);
            got[i] += (size_t)r;
            if (got[i] == FRAME) {
                p[i].fd = -1;
                done++;
            }
        }
    }
    ck_assert_msg(done == count, "only %d of %d simultaneous connections got their echo", done,
                  count);
    for (int i = 0; i < count; i++) {
        uint8_t frame[FRAME], payload[PAYLOAD];
        h_fill(payload, PAYLOAD, (uint32_t)i + 1000u);
        memcpy(payload, &i, sizeof(i));
        h_build_frame(frame, payload, PAYLOAD);
        ck_assert_msg(memcmp(replies[i], frame, FRAME) == 0, "connection %d got a wrong echo", i);
    }
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "conns_open") == count, "conns_open: %s", line);
    /* Not asserted (timing decides whether the ring ran dry), but worth seeing in the log. */
    fprintf(stderr, "%s: %d conns served; rearm_recv_enobufs=%lld\n", h_backend(), count,
            (long long)h_stat_get(line, "rearm_recv_enobufs"));
    for (int i = 0; i < count; i++)
        close(fds[i]);
    int64_t open = h_wait_stat_eq(&srv, "conns_open", 0, 5000);
    ck_assert_msg(open == 0, "conns_open stays %lld after %d clients closed", (long long)open,
                  count);
    free(replies);
    free(p);
    free(got);
    free(fds);
    h_stop_ok(&srv);
}

START_TEST(test_limits_thousands_of_conns)
{
    check_many_conns_all_served(NULL);
}
END_TEST

/*
 * Issue 3's acceptance case: far more connections than provided buffers (2000
 * against a 64-buffer ring). Multishot recvs end with ENOBUFS while the ring is
 * empty; each must be re-armed, or its connection starves. The epoll backend
 * ignores the buffer options, so the case also holds it to the same bar.
 */
START_TEST(test_limits_thousands_of_conns_small_buffer_ring)
{
    const char *args[] = {"--buf-count", "64", "--buf-size", "4K", NULL};
    check_many_conns_all_served(args);
}
END_TEST

/*
 * A provided-buffer ring far too small for its connections (1 or 4 buffers of
 * 64 bytes, 64 connections streaming at once) still serves every echo, and
 * does not spin: a multishot recv that ran out of buffers is re-armed only
 * when a buffer came back for it, so the ENOBUFS re-arms stay within a small
 * multiple of the buffers the data used (bytes_in / buf_size, plus one per
 * frame for partly filled buffers). Re-arming at once cost one ENOBUFS per
 * waiting connection per buffer: 5-8 million in 2 s here (kernel-notes/04).
 * With every client connected but silent, the server uses no CPU. epoll
 * ignores the buffer options; the case holds it to the same bar.
 */
/* One connection of the streaming client: frames out and verified echoes in, pipelined. */
struct stream_conn {
    int fd;
    uint32_t tx_frame, rx_frame;   /* next frame to build / to verify */
    uint8_t tx[H_FRAME_HDR + 700]; /* the frame being sent */
    size_t tx_len, tx_off;
    uint8_t rx[H_FRAME_HDR + 700]; /* the echo being received */
    size_t rx_off;
    uint64_t in_flight; /* bytes sent and not yet echoed */
};

static uint32_t stream_len(int conn, uint32_t k)
{
    return ((uint32_t)conn * 7919u + k * 2654435761u) % 700u;
}

static void stream_build(int conn, uint32_t k, uint8_t *dst)
{
    uint32_t len = stream_len(conn, k);
    h_put_header(dst, len);
    h_fill(dst + H_FRAME_HDR, len, (uint32_t)conn * 100003u + k);
}

/* Read what is there; verify each complete echo against the frame sent. Returns frames done. */
static uint32_t stream_recv(struct stream_conn *sc, int conn)
{
    uint32_t done = 0;
    for (;;) {
        size_t want = H_FRAME_HDR + stream_len(conn, sc->rx_frame);
        ssize_t r = recv(sc->fd, sc->rx + sc->rx_off, want - sc->rx_off, MSG_DONTWAIT);
        if (r < 0 && errno == EAGAIN)
            return done;
        ck_assert_msg(r > 0, "conn %d: connection lost (%zd: %s)", conn, r, strerror(errno));
        sc->rx_off += (size_t)r;
        sc->in_flight -= (uint64_t)r;
        if (sc->rx_off < want)
            continue;
        uint8_t expect[H_FRAME_HDR + 700];
        stream_build(conn, sc->rx_frame, expect);
        ck_assert_msg(memcmp(sc->rx, expect, want) == 0, "conn %d frame %u: wrong echo", conn,
                      sc->rx_frame);
        sc->rx_frame++;
        sc->rx_off = 0;
        done++;
    }
}

static void stream_send(struct stream_conn *sc, int conn)
{
    while (sc->in_flight < 16384) {
        if (sc->tx_off == sc->tx_len) {
            stream_build(conn, sc->tx_frame++, sc->tx);
            sc->tx_len = H_FRAME_HDR + stream_len(conn, sc->tx_frame - 1);
            sc->tx_off = 0;
        }
        ssize_t n =
            send(sc->fd, sc->tx + sc->tx_off, sc->tx_len - sc->tx_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return;
        ck_assert_msg(n > 0, "conn %d: send: %s", conn, strerror(errno));
        sc->tx_off += (size_t)n;
        sc->in_flight += (uint64_t)n;
    }
}

static void check_tiny_ring_no_spin(const char *buf_count)
{
    enum { CONNS = 64, BUF_SIZE = 64 };
    if (strcmp(h_backend(), "uring") != 0) {
        /* --buf-count and --buf-size are the uring backend's provided-buffer ring; epoll has
         * none to run dry. Its idle CPU is checked by test_limits_out_of_fds_no_busy_loop and
         * test_listen, its concurrent streams by test_echo_concurrent_pipelined. */
        fprintf(stderr, "%s: no provided-buffer ring: nothing to test\n", h_backend());
        return;
    }
    struct h_server srv;
    const char *args[] = {"--buf-count", buf_count, "--buf-size", "64", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    static struct stream_conn sc[CONNS];
    struct pollfd p[CONNS];
    memset(sc, 0, sizeof(sc));
    for (int i = 0; i < CONNS; i++)
        sc[i].fd = h_connect_ok(&srv);
    /* Every connection keeps up to 16 KiB in flight: they all compete for the ring at once. */
    uint64_t frames = 0;
    int64_t stop_sending = h_now_ms() + 2000, give_up = stop_sending + 20000;
    for (;;) {
        bool sending = h_now_ms() < stop_sending, pending = false;
        for (int i = 0; i < CONNS; i++) {
            if (sending)
                stream_send(&sc[i], i);
            pending |= sc[i].in_flight > 0 || sc[i].tx_off < sc[i].tx_len;
            p[i] = (struct pollfd){.fd = sc[i].fd,
                                   .events = (short)(POLLIN | (sending ? POLLOUT : 0))};
        }
        if (!sending && !pending)
            break;
        ck_assert_msg(h_now_ms() < give_up, "echoes stopped coming back");
        if (!sending) {
            /* Finish the frame being sent so every echo can complete. */
            for (int i = 0; i < CONNS; i++)
                if (sc[i].tx_off < sc[i].tx_len) {
                    ck_assert_int_eq(h_send_all(sc[i].fd, sc[i].tx + sc[i].tx_off,
                                                sc[i].tx_len - sc[i].tx_off, 5000),
                                     0);
                    sc[i].in_flight += sc[i].tx_len - sc[i].tx_off;
                    sc[i].tx_off = sc[i].tx_len;
                }
        }
        poll(p, CONNS, 100);
        for (int i = 0; i < CONNS; i++)
            frames += stream_recv(&sc[i], i);
    }
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++)
        fds[i] = sc[i].fd;
    uint8_t payload[100];
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    int64_t rearms = h_stat_get(line, "rearm_recv_enobufs");
    int64_t bytes_in = h_stat_get(line, "bytes_in");
    int64_t frames_in = h_stat_get(line, "frames_in");
    ck_assert_int_eq(frames_in, (int64_t)frames);
    /* A re-arm per buffer the data can have filled (bytes_in / buf_size full ones, a partly
     * filled one per frame), twice over. Re-arming at once took 10-60 per buffer here. */
    int64_t bound = 2 * (bytes_in / BUF_SIZE + frames_in) + 1000;
    fprintf(stderr,
            "%s --buf-count %s --buf-size 64, %d conns: %llu frames, bytes_in=%lld, "
            "rearm_recv_enobufs=%lld (bound %lld)\n",
            h_backend(), buf_count, CONNS, (unsigned long long)frames, (long long)bytes_in,
            (long long)rearms, (long long)bound);

    /* Everyone connected, nobody sending: nothing to do, so (next to) no CPU. */
    h_sleep_ms(300);
    long cpu0 = h_cpu_ms(srv.pid);
    h_sleep_ms(1000);
    long cpu1 = h_cpu_ms(srv.pid);
    ck_assert_int_ge(cpu0, 0);
    fprintf(stderr, "%s: idle clients: server CPU %ld ms in 1 s\n", h_backend(), cpu1 - cpu0);
    ck_assert_msg(rearms <= bound,
                  "rearm_recv_enobufs=%lld for bytes_in=%lld, frames_in=%lld: the recvs spin on "
                  "an empty buffer ring",
                  (long long)rearms, (long long)bytes_in, (long long)frames_in);
    ck_assert_msg(cpu1 - cpu0 < 200, "server used %ld ms of CPU in 1 s with idle clients",
                  cpu1 - cpu0);
    /* And the connections still work after the idle second. */
    for (int i = 0; i < CONNS; i++) {
        h_fill(payload, 100, (uint32_t)i);
        h_echo_ok(fds[i], payload, 100, 5000);
        close(fds[i]);
    }
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    h_stop_ok(&srv);
}

START_TEST(test_limits_tiny_buffer_ring_no_spin)
{
    check_tiny_ring_no_spin("1");
}
END_TEST

START_TEST(test_limits_small_buffer_ring_no_spin)
{
    check_tiny_ring_no_spin("4");
}
END_TEST

/* Frame k of the stream pushed at the server: PUSH_FRAME_BYTES with a header. */
static void push_frame(uint8_t *buf, uint32_t k)
{
    h_put_header(buf, PUSH_FRAME_BYTES - H_FRAME_HDR);
    h_fill(buf + H_FRAME_HDR, PUSH_FRAME_BYTES - H_FRAME_HDR, k * 7919u + 3u);
}

START_TEST(test_limits_never_reads)
{
    struct h_server srv;
    const char *args[] = {"--write-buffer", "256K", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    uint8_t *frame = malloc(PUSH_FRAME_BYTES), *reply = malloc(PUSH_FRAME_BYTES);
    ck_assert(frame && reply);

    /* Warm the server's buffers up so the baseline is not its first touch. */
    int other = h_connect_ok(&srv);
    push_frame(frame, 0);
    for (int i = 0; i < 8; i++)
        h_echo_ok(other, frame + H_FRAME_HDR, PUSH_FRAME_BYTES - H_FRAME_HDR, 3000);
    long rss0 = h_rss_kib(srv.pid);
    ck_assert_int_gt(rss0, 0);

    int fd = h_connect_ok(&srv);
    int small = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    /* Push frames (numbered, to check the order below) without ever reading until the server
     * stops taking them for 500 ms. */
    size_t sent = h_push_until_paused(fd, PUSH_FRAME_BYTES, PUSH_LIMIT_BYTES, 500, push_frame);
    long rss1 = h_rss_kib(srv.pid);
    ck_assert_msg(sent < PUSH_BOUND_BYTES,
                  "the server kept reading from a peer that never reads (%zu bytes taken, "
                  "--write-buffer 256K)",
                  sent);
    if (h_rss_meaningful())
        ck_assert_msg(rss1 - rss0 < RSS_GROWTH_KIB, "server RSS grew %ld KiB (from %ld KiB)",
                      rss1 - rss0, rss0);
    else
        fprintf(stderr, "RSS bound not checked under RW_WRAPPER (grew %ld KiB, mostly its own)\n",
                rss1 - rss0);
    ck_assert_int_ge(h_stat_ok(&srv, "backpressure_pauses"), 1);

    /* Others are served promptly meanwhile, old and new connections alike. */
    int64_t t0 = h_now_ms();
    h_echo_ok(other, frame + H_FRAME_HDR, 1000, 1000);
    int fresh = h_connect_ok(&srv);
    h_echo_ok(fresh, frame + H_FRAME_HDR, 1000, 1000);
    ck_assert_int_lt(h_now_ms() - t0, 1000);

    /* Once it reads, every complete frame it pushed comes back, in order. */
    uint32_t frames = (uint32_t)(sent / PUSH_FRAME_BYTES);
    for (uint32_t i = 0; i < frames; i++) {
        int rc = h_recv_exact(fd, reply, PUSH_FRAME_BYTES, 5000);
        ck_assert_msg(rc == 0, "reply %u of %u after resuming reads: %s", i, frames, strerror(-rc));
        push_frame(frame, i);
        ck_assert_msg(memcmp(reply, frame, PUSH_FRAME_BYTES) == 0, "reply %u of %u differs", i,
                      frames);
    }
    close(fresh);
    close(fd);
    close(other);
    free(reply);
    free(frame);
    h_stop_ok(&srv);
}
END_TEST

/*
 * A stalled server wakes to hundreds of connections with a frame each. The
 * loop flushes replies once 64 connections wait (RW_DIRTY_FLUSH_MAX) instead
 * of holding one output block per ready connection until the turn ends, which
 * made resident memory creep up with the worst stall (the epoll soak's RSS
 * steps, benchmarks/results/soak.md). Every echo must still come back right;
 * on epoll the blocks ever taken (live + cached: the pool keeps every returned
 * block) stay within 64 per worker and early flushes were counted. On uring
 * the completions of a stall arrive over several turns (deferred task work)
 * and a block also waits for its send's completion, so only the echoes are
 * checked there.
 */
START_TEST(test_limits_burst_after_stall_bounded_blocks)
{
    enum { CONNS = 400, PAYLOAD = 64, PER_WORKER_BOUND = 64 };
    const char *threads = getenv("RW_THREADS");
    int workers = threads && *threads ? atoi(threads) : 1;
    ck_assert_int_ge(workers, 1);
    struct h_server srv;
    h_start_ok(&srv, NULL);
    static int fds[CONNS];
    uint8_t payload[PAYLOAD], reply[PAYLOAD];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = h_connect_ok(&srv);
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(fds[i], payload, sizeof(payload), 3000); /* established and served once */
    }
    ck_assert_int_eq(kill(srv.pid, SIGSTOP), 0);
    for (int i = 0; i < CONNS; i++) {
        h_fill(payload, sizeof(payload), 100000u + (uint32_t)i);
        ck_assert_int_eq(h_send_frame(fds[i], payload, sizeof(payload), 3000), 0);
    }
    h_sleep_ms(100); /* every frame is in the server's receive queues */
    ck_assert_int_eq(kill(srv.pid, SIGCONT), 0);
    for (int i = 0; i < CONNS; i++) {
        uint32_t len = 0;
        int rc = h_recv_frame(fds[i], reply, sizeof(reply), &len, 5000);
        ck_assert_msg(rc == 0, "connection %d: no echo after the stall: %s", i, strerror(-rc));
        h_fill(payload, sizeof(payload), 100000u + (uint32_t)i);
        ck_assert_msg(len == PAYLOAD && memcmp(reply, payload, PAYLOAD) == 0,
                      "connection %d: wrong echo after the stall", i);
    }
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    int64_t blocks = h_stat_get(line, "out_blocks_live") + h_stat_get(line, "out_blocks_cached");
    if (strcmp(h_backend(), "epoll") == 0) {
        ck_assert_msg(h_stat_get(line, "early_flushes") > 0, "no early flush: %s", line);
        ck_assert_msg(blocks <= (int64_t)PER_WORKER_BOUND * workers,
                      "%lld output blocks taken for %d one-frame connections: %s",
                      (long long)blocks, CONNS, line);
        printf("epoll: %lld output blocks for %d connections after the stall\n", (long long)blocks,
               CONNS);
    }
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_limits_out_of_fds_no_busy_loop)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.nofile = 64});
    int first = h_connect_ok(&srv);
    uint8_t payload[100];
    h_fill(payload, sizeof(payload), 4);
    h_echo_ok(first, payload, sizeof(payload), 2000);

    int fds[FLOOD_CLIENTS];
    for (int i = 0; i < FLOOD_CLIENTS; i++) {
        fds[i] = h_connect_start(&srv);
        ck_assert_msg(fds[i] >= 0, "connect %d: %s", i, strerror(-fds[i]));
    }
    /* They complete in the kernel's backlog whether or not the server can accept them. */
    wait_connected(fds, FLOOD_CLIENTS, 5000);
    h_sleep_ms(200);
    long cpu0 = h_cpu_ms_no_sqpoll(srv.pid);
    h_sleep_ms(2000);
    long cpu1 = h_cpu_ms_no_sqpoll(srv.pid);
    /* The overload was real: 64 descriptors cannot hold every client. */
    int64_t accepted = h_stat_ok(&srv, "accepted");
    ck_assert_msg(accepted < FLOOD_CLIENTS, "%lld of %d accepted under RLIMIT_NOFILE 64",
                  (long long)accepted, FLOOD_CLIENTS + 1);
    ck_assert_msg(h_alive(&srv), "server died out of descriptors: %s", h_log_tail(&srv));
    ck_assert_int_ge(cpu0, 0);
    ck_assert_msg(cpu1 - cpu0 < 500,
                  "server used %ld ms of CPU in 2 s while out of descriptors (busy loop?)",
                  cpu1 - cpu0);
    /* A connection accepted before the overload is still served during it. */
    h_echo_ok(first, payload, sizeof(payload), 1000);

    for (int i = 0; i < FLOOD_CLIENTS; i++)
        close(fds[i]);
    /* Descriptors free up as those close; accepting resumes. */
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, payload, sizeof(payload), 5000);
    close(fd);
    close(first);
    ck_assert_msg(h_alive(&srv), "server died: %s", h_log_tail(&srv));
    h_stop_ok(&srv);
}
END_TEST

/* ---- the startup race under RLIMIT_NOFILE (issue 10) ---- */

#define RACE_STARTS  10  /* each start loses the race about half the time without the fix */
#define RACE_HELD    300 /* client connections each connector opens and keeps open */
#define RACE_THREADS 3   /* connectors: they also crowd the CPUs, as a busy host would */
#define RACE_NOFILE  64

/* A free loopback port, chosen before the server starts (bind to :0, read it, close). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

struct connector {
    int port;
    atomic_bool *stop;
    atomic_long *connected; /* connects that reached a listener, all connectors */
    int held[RACE_HELD];
};

/*
 * Connect to the port over and over from before the server exists, and keep
 * every connection open (up to RACE_HELD) until told to stop, so that each
 * one the server accepts holds a descriptor. The sockets come from
 * 127.0.0.2: a client on 127.0.0.1 connecting to a port nobody listens on can
 * be given that same port as its source and connect to itself (TCP
 * simultaneous open), and the server's bind would then fail.
 * IP_BIND_ADDRESS_NO_PORT leaves the source port to connect(): bind() picking
 * one itself costs about a millisecond a call here, too slow to race anything.
 */
static void *connector_main(void *arg)
{
    struct connector *c = arg;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000002)};
    struct sockaddr_in dst = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)c->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int held = 0;
    while (!atomic_load(c->stop)) {
        if (held == RACE_HELD) {
            h_sleep_ms(1);
            continue;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            h_sleep_ms(1);
            continue;
        }
        /* A full backlog drops SYNs: connect() would wait through retransmissions for minutes. */
        struct timeval connect_timeout = {.tv_sec = 0, .tv_usec = 200000};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &connect_timeout, sizeof(connect_timeout));
        int one = 1;
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0 ||
            connect(fd, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
            close(fd); /* ECONNREFUSED until the listener exists */
            continue;
        }
        atomic_fetch_add(c->connected, 1);
        c->held[held++] = fd;
    }
    for (int i = 0; i < held; i++)
        close(c->held[i]);
    return NULL;
}

/*
 * The listeners exist before the workers. A worker that started accepting at
 * the end of its own setup could take every descriptor RLIMIT_NOFILE allows
 * before a sibling had made its eventfd or epoll/io_uring instance; that
 * sibling then failed with EMFILE and the whole process exited 1. Now every
 * worker finishes setup before any accepts, and running out of descriptors
 * afterwards only pauses accepting. Clients connect from before each start.
 * The race needs sibling workers, so this case runs --threads 2 even when
 * RW_THREADS is 1 (a later --threads overrides the harness's).
 */
START_TEST(test_limits_startup_race_out_of_fds)
{
    const char *threads = getenv("RW_THREADS");
    if (!threads || atoi(threads) < 2)
        threads = "2";
    /* Under valgrind a start takes seconds; three still check the path for memory errors. */
    int starts = h_time_factor() > 1 ? 3 : RACE_STARTS;
    for (int start = 0; start < starts; start++) {
        int port = free_port();
        atomic_bool stop = false;
        atomic_long connected = 0;
        struct connector c[RACE_THREADS];
        pthread_t thread[RACE_THREADS];
        for (int i = 0; i < RACE_THREADS; i++) {
            c[i] = (struct connector){.port = port, .stop = &stop, .connected = &connected};
            ck_assert_int_eq(pthread_create(&thread[i], NULL, connector_main, &c[i]), 0);
        }
        char listen_at[32];
        snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", port);
        const char *args[] = {"--threads", threads, "--max-conns", "100000", NULL};
        struct h_server srv;
        /*
         * The server on one CPU (it inherits this thread's mask): its workers
         * then take turns, and one that finished setup accepts while another
         * has not, as on any host with fewer CPUs than busy threads.
         */
        cpu_set_t all, one;
        ck_assert_int_eq(sched_getaffinity(0, sizeof(all), &all), 0);
        CPU_ZERO(&one);
        for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
            if (CPU_ISSET(cpu, &all)) {
                CPU_SET(cpu, &one);
                break;
            }
        }
        ck_assert_int_eq(sched_setaffinity(0, sizeof(one), &one), 0);
        int rc = h_start(
            &srv, &(struct h_opts){.listen = listen_at, .args = args, .nofile = RACE_NOFILE});
        ck_assert_int_eq(sched_setaffinity(0, sizeof(all), &all), 0);
        /* Let the clients keep coming a little after the server said it listens. */
        if (rc == 0)
            h_sleep_ms(100);
        atomic_store(&stop, true);
        for (int i = 0; i < RACE_THREADS; i++)
            pthread_join(thread[i], NULL);
        ck_assert_msg(rc == 0,
                      "start %d: server did not start (%s, exit %d) with clients "
                      "connecting; log:\n%s",
                      start, strerror(-rc), srv.exit_code, h_log_tail(&srv));
        ck_assert_msg(atomic_load(&connected) > 0, "start %d: no client ever connected", start);
        ck_assert_msg(h_alive(&srv), "start %d: server died (exit %d); log:\n%s", start,
                      srv.exit_code, h_log_tail(&srv));
        /* The clients are gone; their descriptors free up and accepting resumes. */
        int fd = h_connect_ok(&srv);
        uint8_t payload[64];
        h_fill(payload, sizeof(payload), (uint32_t)start);
        h_echo_ok(fd, payload, sizeof(payload), 10000);
        close(fd);
        h_stop_ok(&srv);
    }
}
END_TEST

/* ---- RLIMIT_NOFILE matched to --max-conns (issue 10) ---- */

#define NOFILE_SOFT      256
#define NOFILE_HARD      4096
#define NOFILE_MAX_CONNS "1000"
#define NOFILE_CLIENTS   900 /* well beyond the 256 the server started with */

/*
 * Under valgrind (RW_WRAPPER) RLIMIT_NOFILE is emulated: valgrind keeps
 * descriptors of its own above the limit and handles setrlimit itself, so
 * what the server sees and /proc shows are not the limits the test set.
 */
static bool valgrind_fakes_nofile(const char *test_name)
{
    if (h_time_factor() == 1)
        return false;
    fprintf(stderr, "%s: valgrind emulates RLIMIT_NOFILE, case skipped\n", test_name);
    return true;
}

/* The soft and hard "Max open files" of pid from /proc/PID/limits; false if not found. */
static bool proc_nofile(pid_t pid, long long *soft, long long *hard)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/limits", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *line = strstr(buf, "Max open files");
    return line && sscanf(line + strlen("Max open files"), "%lld %lld", soft, hard) == 2;
}

/*
 * Started with the soft limit at 256 and the hard at 4096, --max-conns 1000:
 * the server raises the soft limit for itself (once the usual 1024 left
 * clients beyond about a thousand queued and unserved, silently), and all 900
 * clients, far beyond the old limit, get their echo.
 */
START_TEST(test_limits_nofile_raised_for_max_conns)
{
    if (valgrind_fakes_nofile("test_limits_nofile_raised_for_max_conns"))
        return;
    const char *args[] = {"--max-conns", NOFILE_MAX_CONNS, NULL};
    struct h_server srv;
    h_start_ok(&srv,
               &(struct h_opts){.args = args, .nofile = NOFILE_SOFT, .nofile_hard = NOFILE_HARD});
    long long soft = 0, hard = 0;
    ck_assert_msg(proc_nofile(srv.pid, &soft, &hard), "no Max open files in /proc/%d/limits",
                  (int)srv.pid);
    ck_assert_int_eq(hard, NOFILE_HARD);
    /* --max-conns plus each worker's descriptors and slack, within the hard limit. */
    ck_assert_msg(soft > 1000 + 64 && soft <= NOFILE_HARD, "soft limit %lld for --max-conns 1000",
                  soft);
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "raised from 256 to") != NULL, "no word of the raise:\n%s", log);
    ck_assert_msg(strstr(log, "hard limit") == NULL, "a warning although it fits:\n%s", log);

    static int fds[NOFILE_CLIENTS];
    for (int i = 0; i < NOFILE_CLIENTS; i++) {
        fds[i] = h_connect_start(&srv);
        ck_assert_msg(fds[i] >= 0, "connect %d: %s", i, strerror(-fds[i]));
    }
    ck_assert_int_eq(wait_connected(fds, NOFILE_CLIENTS, 10000), NOFILE_CLIENTS);
    for (int i = 0; i < NOFILE_CLIENTS; i++) {
        uint32_t id = (uint32_t)i;
        int rc = h_send_frame(fds[i], &id, sizeof(id), 5000);
        ck_assert_msg(rc == 0, "client %d: send: %s", i, strerror(-rc));
    }
    for (int i = 0; i < NOFILE_CLIENTS; i++) {
        uint32_t id = 0, len = 0;
        int rc = h_recv_frame(fds[i], &id, sizeof(id), &len, 10000);
        ck_assert_msg(rc == 0, "client %d of %d unserved: %s; log:\n%s", i, NOFILE_CLIENTS,
                      strerror(-rc), h_log_tail(&srv));
        ck_assert_uint_eq(len, sizeof(id));
        ck_assert_uint_eq(id, (uint32_t)i);
    }
    for (int i = 0; i < NOFILE_CLIENTS; i++)
        close(fds[i]);
    h_stop_ok(&srv);
}
END_TEST

/* When the hard limit is too low for --max-conns, one warning gives both numbers and the remedy. */
START_TEST(test_limits_nofile_hard_limit_warns)
{
    if (valgrind_fakes_nofile("test_limits_nofile_hard_limit_warns"))
        return;
    const char *args[] = {"--max-conns", NOFILE_MAX_CONNS, NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args, .nofile = NOFILE_SOFT});
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    const char *warn = strstr(log, "RLIMIT_NOFILE: --max-conns 1000 needs about ");
    ck_assert_msg(warn != NULL, "no RLIMIT_NOFILE warning:\n%s", log);
    const char *eol = strchr(warn, '\n');
    ck_assert_ptr_nonnull(eol);
    char line[512];
    snprintf(line, sizeof(line), "%.*s", (int)(eol - warn), warn);
    ck_assert_msg(strstr(line, "hard limit is 256") && strstr(line, "ulimit -n") &&
                      strstr(line, "LimitNOFILE=") && strstr(line, "lower --max-conns"),
                  "warning lacks a number or the remedy: %s", line);
    const char *again = strstr(eol, "RLIMIT_NOFILE: --max-conns");
    ck_assert_msg(again == NULL, "warned more than once:\n%s", log);
    /* It still serves what the limit allows. */
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "x", 1, 5000);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

/*
 * Too few descriptors for the workers' own setup (4 listeners and 4 x an
 * eventfd and an epoll/io_uring descriptor do not fit in 10): exit 1 saying
 * it is the descriptor limit, with the numbers and the remedy. Under
 * --backend auto that is no io_uring failure: no fallback to epoll, which
 * would need the same descriptors.
 */
START_TEST(test_limits_setup_out_of_fds_says_nofile)
{
    if (valgrind_fakes_nofile("test_limits_setup_out_of_fds_says_nofile"))
        return;
    bool uring = strcmp(h_backend(), "uring") == 0;
    const char *auto_args[] = {"--threads", "4", "--backend", "auto", NULL};
    const char *plain_args[] = {"--threads", "4", NULL};
    struct h_server srv;
    int rc = h_start(&srv, &(struct h_opts){.args = uring ? auto_args : plain_args, .nofile = 10});
    ck_assert_msg(rc == -ECHILD && srv.exit_code == 1, "start: %s, exit %d; log:\n%s",
                  strerror(-rc), srv.exit_code, h_log_tail(&srv));
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "Too many open files: the descriptor limit") &&
                      strstr(log, "RLIMIT_NOFILE is 10") && strstr(log, "ulimit -n"),
                  "the failure does not name the descriptor limit:\n%s", log);
    ck_assert_msg(strstr(log, "falling back") == NULL, "EMFILE taken for an io_uring failure:\n%s",
                  log);
    unlink(srv.log_path);
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("limits");
    h_add_case(s, "test_limits_idle_reap", test_limits_idle_reap, 30);
    h_add_case(s, "test_limits_frame_timeout", test_limits_frame_timeout, 30);
    h_add_case(s, "test_limits_max_conns", test_limits_max_conns, 30);
    h_add_case(s, "test_limits_thousands_of_conns", test_limits_thousands_of_conns, 60);
    h_add_case(s, "test_limits_thousands_of_conns_small_buffer_ring",
               test_limits_thousands_of_conns_small_buffer_ring, 60);
    h_add_case(s, "test_limits_tiny_buffer_ring_no_spin", test_limits_tiny_buffer_ring_no_spin, 60);
    h_add_case(s, "test_limits_small_buffer_ring_no_spin", test_limits_small_buffer_ring_no_spin,
               60);
    h_add_case(s, "test_limits_never_reads", test_limits_never_reads, 60);
    h_add_case(s, "test_limits_out_of_fds_no_busy_loop", test_limits_out_of_fds_no_busy_loop, 30);
    h_add_case(s, "test_limits_burst_after_stall_bounded_blocks",
               test_limits_burst_after_stall_bounded_blocks, 60);
    h_add_case(s, "test_limits_startup_race_out_of_fds", test_limits_startup_race_out_of_fds, 90);
    h_add_case(s, "test_limits_nofile_raised_for_max_conns",
               test_limits_nofile_raised_for_max_conns, 60);
    h_add_case(s, "test_limits_nofile_hard_limit_warns", test_limits_nofile_hard_limit_warns, 30);
    h_add_case(s, "test_limits_setup_out_of_fds_says_nofile",
               test_limits_setup_out_of_fds_says_nofile, 30);
    return h_run_suite(s);
}
