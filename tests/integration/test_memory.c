/*
 * Integration tests of the server's memory: one process-wide budget
 * (--max-memory) holds against hundreds of connections stalled short of large
 * frames, with the largest closed and fresh clients still served; memory freed
 * after a burst of non-readers goes back to the kernel; idle memory does not
 * grow with --threads x --max-conns; a configuration that cannot fit the
 * machine is refused with the numbers.
 *
 * RSS bounds are checked only where RSS means the server's own memory: not
 * under valgrind (h_rss_meaningful) and not under AddressSanitizer, whose
 * quarantine keeps freed memory resident by design; the budget's own gauge
 * (mem_bytes) and the counters are checked everywhere.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif
#ifndef ASAN_BUILD
#define ASAN_BUILD 0
#endif

#define STALLED_CONNS 200
#define STALLED_FRAME (1u << 20) /* payload announced; one byte of it is never sent */
#define BUDGET_MIB    64l
#define NON_READERS   40
#define PUSH_CHUNK    65536u

static bool rss_checked(void)
{
    return h_rss_meaningful() && !ASAN_BUILD;
}

static void warm_up(struct h_server *srv)
{
    /* Touch the receive buffers (every provided buffer of the ring, or epoll's scratch) and the
     * first output blocks, so the baseline RSS is not taken before their first use. */
    uint8_t *payload = malloc(60000);
    ck_assert_ptr_nonnull(payload);
    h_fill(payload, 60000, 5);
    for (int w = 0; w < 2 * h_workers(); w++) {
        int fd = h_connect_ok(srv);
        for (int i = 0; i < 40; i++)
            h_echo_ok(fd, payload, 60000, 5000);
        close(fd);
    }
    free(payload);
}

/*
 * Send up to PUSH_CHUNK bytes of want[i] to each connection in turn, without blocking, until
 * every one is done, closed by the server, or none takes a byte for idle_ms. Returns the bytes
 * sent; closed[i] is set for connections the server closed.
 */
static size_t push_round_robin(int *fds, size_t count, const uint8_t *data, const size_t *want,
                               size_t *sent, bool *closed, int idle_ms)
{
    size_t total = 0;
    int64_t last_progress = h_now_ms();
    for (;;) {
        bool progress = false, pending = false;
        for (size_t i = 0; i < count; i++) {
            if (closed[i] || sent[i] == want[i])
                continue;
            pending = true;
            size_t n = want[i] - sent[i] < PUSH_CHUNK ? want[i] - sent[i] : PUSH_CHUNK;
            ssize_t k = send(fds[i], data + sent[i], n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (k > 0) {
                sent[i] += (size_t)k;
                total += (size_t)k;
                progress = true;
            } else if (k < 0 && errno != EAGAIN) {
                closed[i] = true; /* EPIPE / ECONNRESET: the server closed it */
            }
        }
        if (!pending)
            return total;
        if (progress)
            last_progress = h_now_ms();
        else if (h_now_ms() - last_progress > idle_ms)
            return total;
        else
            h_sleep_ms(5);
    }
}

START_TEST(test_memory_budget_holds_stalled_frames)
{
    struct h_server srv;
    char budget[32];
    snprintf(budget, sizeof(budget), "%ldM", BUDGET_MIB);
    /* A smaller provided-buffer ring keeps the fixed (unbudgeted) part of RSS small on uring. */
    const char *args[] = {"--max-memory",    budget, "--buf-count", "256", "--idle-timeout", "0",
                          "--frame-timeout", "0",    NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    warm_up(&srv);
    long rss0 = h_rss_kib(srv.pid);
    ck_assert_int_gt(rss0, 0);

    /* Every connection announces a 1 MiB frame and sends all of it but the last byte. */
    size_t frame_len = H_FRAME_HDR + STALLED_FRAME - 1;
    uint8_t *frame = malloc(frame_len);
    ck_assert_ptr_nonnull(frame);
    h_put_header(frame, STALLED_FRAME);
    h_fill(frame + H_FRAME_HDR, STALLED_FRAME - 1, 77);
    static int fds[STALLED_CONNS];
    static size_t want[STALLED_CONNS], sent[STALLED_CONNS];
    static bool closed[STALLED_CONNS];
    for (int i = 0; i < STALLED_CONNS; i++) {
        fds[i] = h_connect_ok(&srv);
        int small = 64 * 1024;
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        want[i] = frame_len;
        sent[i] = 0;
        closed[i] = false;
    }
    push_round_robin(fds, STALLED_CONNS, frame, want, sent, closed, 1500);

    /* The budget held: the server's gauge, and (where meaningful) its resident memory. */
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    int64_t mem = h_stat_get(line, "mem_bytes");
    int64_t closed_memory = h_stat_get(line, "closed_memory");
    long rss1 = h_rss_kib(srv.pid);
    fprintf(stderr,
            "%s t%d: %d stalled 1 MiB frames, --max-memory %s: mem_bytes %lld KiB, RSS %ld -> "
            "%ld KiB, closed_memory %lld, memory_pauses %lld\n",
            h_backend(), h_workers(), STALLED_CONNS, budget, (long long)(mem >> 10), rss0, rss1,
            (long long)closed_memory, (long long)h_stat_get(line, "memory_pauses"));
    /* Slack: each worker may hold two budget chunks beyond its use, and a frame that crossed the
     * budget in the last turn before its connection was paused. */
    int64_t slack = (int64_t)h_workers() * (2 * 256 * 1024 + 2 * STALLED_FRAME);
    ck_assert_msg(mem <= (BUDGET_MIB << 20) + slack, "mem_bytes %lld over --max-memory %s",
                  (long long)mem, budget);
    ck_assert_msg(closed_memory >= 1, "200 MiB of stalled frames under a 64 MiB budget, yet "
                                      "nothing was closed for memory");
    if (rss_checked())
        ck_assert_msg(rss1 - rss0 <= (BUDGET_MIB + 16) << 10,
                      "server RSS grew %ld KiB (from %ld KiB) under --max-memory %s", rss1 - rss0,
                      rss0, budget);

    /* New connections and small frames are still served, and so is a large one. */
    int fresh = h_connect_ok(&srv);
    uint8_t small_payload[100];
    h_fill(small_payload, sizeof(small_payload), 9);
    h_echo_ok(fresh, small_payload, sizeof(small_payload), 5000);
    close(fresh);
    ck_assert(h_alive(&srv));
    /*
     * Paused for memory, they do not read; yet a peer's RST is noticed (TCP_INFO) and frees its
     * connection. (A FIN would wait behind the unread bytes in a closed window, as TCP wants, until
     * the peer's kernel gives up on its orphan and resets it.)
     */
    for (int i = 0; i < STALLED_CONNS; i++)
        h_close_rst(fds[i]);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 10000), 0);
    /* Everything is given back to the budget but the cached blocks (at most 64 a worker). */
    int64_t floor_bytes = (int64_t)h_workers() * 64 * (16384 + 64), left = -1;
    for (int64_t t0 = h_now_ms(); h_now_ms() - t0 < 10000; h_sleep_ms(100))
        if ((left = h_stat_ok(&srv, "mem_bytes")) <= floor_bytes)
            break;
    ck_assert_msg(left <= floor_bytes, "mem_bytes %lld after every connection closed",
                  (long long)left);
    free(frame);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_memory_given_back_after_burst)
{
    struct h_server srv;
    const char *args[] = {"--buf-count", "256", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    warm_up(&srv);
    long rss0 = h_rss_kib(srv.pid);
    ck_assert_int_gt(rss0, 0);

    /* Non-readers: each pushes 64 KiB frames until the server stops reading (4M queued). */
    /* More than the kernel's buffers on both sides take, so every one reaches --write-buffer. */
    size_t per_conn = 16u << 20;
    uint8_t *frames = malloc(per_conn);
    ck_assert_ptr_nonnull(frames);
    for (size_t at = 0; at < per_conn; at += PUSH_CHUNK) {
        h_put_header(frames + at, PUSH_CHUNK - H_FRAME_HDR);
        h_fill(frames + at + H_FRAME_HDR, PUSH_CHUNK - H_FRAME_HDR, (uint32_t)at);
    }
    static int fds[NON_READERS];
    static size_t want[NON_READERS], sent[NON_READERS];
    static bool closed[NON_READERS];
    for (int i = 0; i < NON_READERS; i++) {
        fds[i] = h_connect_ok(&srv);
        int small = 64 * 1024;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        want[i] = per_conn;
        sent[i] = 0;
        closed[i] = false;
    }
    push_round_robin(fds, NON_READERS, frames, want, sent, closed, 1000);
    long rss_peak = h_rss_kib(srv.pid);
    int64_t blocks = h_stat_ok(&srv, "out_blocks_live");
    ck_assert_msg(blocks >= NON_READERS * 64, "the non-readers hold only %lld output blocks",
                  (long long)blocks);

    /* All of them reset: their replies are dropped, and the memory must go back. */
    for (int i = 0; i < NON_READERS; i++)
        h_close_rst(fds[i]);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 10000), 0);
    /* Within a few seconds: the block cache trimmed to its floor and the pages given back. */
    long rss1 = rss_peak;
    int64_t cached = -1, t0 = h_now_ms();
    char line[4096];
    while (h_now_ms() - t0 < 8000) {
        ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
        cached = h_stat_get(line, "out_blocks_cached");
        rss1 = h_rss_kib(srv.pid);
        if (cached <= 64 * h_workers() && (!rss_checked() || rss1 - rss0 < 24 << 10))
            break;
        h_sleep_ms(200);
    }
    fprintf(stderr,
            "%s t%d: %d non-readers: RSS %ld -> %ld KiB at the peak (%lld blocks live) -> %ld "
            "KiB %lld ms after the resets; out_blocks_cached %lld, mem_trims %lld\n",
            h_backend(), h_workers(), NON_READERS, rss0, rss_peak, (long long)blocks, rss1,
            (long long)(h_now_ms() - t0), (long long)cached,
            (long long)h_stat_get(line, "mem_trims"));
    ck_assert_int_ge(h_stat_get(line, "mem_trims"), 1);
    ck_assert_msg(cached <= 64 * h_workers(), "%lld output blocks still cached 8 s after the burst",
                  (long long)cached);
    if (rss_checked())
        ck_assert_msg(rss1 - rss0 < 24 << 10,
                      "server RSS still %ld KiB above its baseline (%ld KiB; peak %ld KiB) 8 s "
                      "after every non-reader was reset",
                      rss1 - rss0, rss0, rss_peak);

    /* Still serving. */
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, frames + H_FRAME_HDR, 1000, 3000);
    close(fd);
    free(frames);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_memory_idle_rss_independent_of_threads)
{
    /* Four times the workers of this run, each allowed a million connections. */
    char workers[16];
    snprintf(workers, sizeof(workers), "%d", 4 * h_workers());
    struct h_server srv;
    const char *args[] = {"--threads", workers, "--max-conns", "1000000", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fds[200];
    for (int i = 0; i < 200; i++)
        fds[i] = h_connect_ok(&srv);
    uint8_t payload[64];
    h_fill(payload, sizeof(payload), 1);
    h_echo_ok(fds[0], payload, sizeof(payload), 3000);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 200, 5000), 200);
    long rss = h_rss_kib(srv.pid);
    fprintf(stderr, "%s: --threads %s --max-conns 1000000 with 200 idle connections: RSS %ld KiB\n",
            h_backend(), workers, rss);
    /* Every worker used to touch its whole table: about 137 MB a worker. */
    if (rss_checked())
        ck_assert_msg(rss < 48 << 10, "idle RSS %ld KiB with --threads %s --max-conns 1000000", rss,
                      workers);
    for (int i = 0; i < 200; i++)
        close(fds[i]);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_memory_refuses_what_cannot_fit)
{
    /* Checked when the options are parsed, for uring's provided buffers (auto may pick uring). */
    static char out[8192];
    const char *args[] = {"--backend",  "auto", "--threads", "256",         "--buf-count", "32768",
                          "--buf-size", "1M",   "--listen",  "127.0.0.1:0", NULL};
    int rc = h_run_args(args, 10000 * h_time_factor(), out, sizeof(out));
    ck_assert_msg(rc == 2, "exit %d for 8 TiB of receive buffers: %s", rc, out);
    ck_assert_msg(strstr(out, "8388608 MiB") && strstr(out, "exceeds this machine's"),
                  "the refusal does not give the numbers: %s", out);
}
END_TEST

int main(void)
{
    h_init(200);
    h_skip_if_unavailable();
    Suite *s = suite_create("memory");
    h_add_case(s, "test_memory_budget_holds_stalled_frames",
               test_memory_budget_holds_stalled_frames, 90);
    h_add_case(s, "test_memory_given_back_after_burst", test_memory_given_back_after_burst, 60);
    h_add_case(s, "test_memory_idle_rss_independent_of_threads",
               test_memory_idle_rss_independent_of_threads, 30);
    h_add_case(s, "test_memory_refuses_what_cannot_fit", test_memory_refuses_what_cannot_fit, 30);
    return h_run_suite(s);
}
