/*
 * Integration tests of the echo contract over real sockets: every frame comes
 * back identical and in order whatever its size (0 to --max-frame), however
 * the bytes are split (one byte per segment, thousands of frames per write),
 * over many pipelined connections at once, over IPv6, and the frame counters
 * agree with what was sent.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define MANY_FRAMES      2000
#define CONCURRENT_CONNS 16
#define FRAMES_PER_CONN  300

/* Build count frames with payload sizes size_of(i) and distinct contents into one buffer. */
static uint8_t *build_stream(unsigned count, uint32_t seed, uint32_t max_payload, size_t *len)
{
    size_t total = 0;
    for (unsigned i = 0; i < count; i++)
        total += H_FRAME_HDR + (seed * 7u + i * 37u) % (max_payload + 1);
    uint8_t *buf = malloc(total ? total : 1);
    ck_assert_ptr_nonnull(buf);
    size_t at = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t n = (seed * 7u + i * 37u) % (max_payload + 1);
        h_put_header(buf + at, n);
        h_fill(buf + at + H_FRAME_HDR, n, seed * 100003u + i);
        at += H_FRAME_HDR + n;
    }
    *len = total;
    return buf;
}

/* First differing offset, for messages. */
static size_t first_diff(const uint8_t *a, const uint8_t *b, size_t len)
{
    size_t i = 0;
    while (i < len && a[i] == b[i])
        i++;
    return i;
}

START_TEST(test_echo_sizes)
{
    struct h_server srv;
    const char *args[] = {"--max-frame", "1M", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    static const uint32_t sizes[] = {0, 1, 100, 4096, 65536, 512 * 1024, 1024 * 1024};
    uint8_t *payload = malloc(1024 * 1024);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        h_fill(payload, sizes[i], (uint32_t)i + 1);
        h_echo_ok(fd, payload, sizes[i], 10000);
    }
    free(payload);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_echo_one_byte_per_segment)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = h_connect_ok(&srv);
    int one = 1;
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    /* A 300-byte frame, an empty frame and a 1-byte frame, every header split too. */
    size_t len;
    uint8_t stream[H_FRAME_HDR * 3 + 301];
    uint8_t payload[300];
    h_fill(payload, sizeof(payload), 42);
    len = h_build_frame(stream, payload, sizeof(payload));
    len += h_build_frame(stream + len, NULL, 0);
    len += h_build_frame(stream + len, "x", 1);
    for (size_t i = 0; i < len; i++) {
        ck_assert_int_eq(h_send_all(fd, stream + i, 1, 2000), 0);
        if (i % 4 == 0)
            nanosleep(&(struct timespec){.tv_nsec = 500000}, NULL);
    }
    uint8_t reply[sizeof(stream)];
    int rc = h_recv_exact(fd, reply, len, 5000);
    ck_assert_msg(rc == 0, "replies to a byte-at-a-time stream: %s", strerror(-rc));
    ck_assert_msg(memcmp(reply, stream, len) == 0, "reply differs at byte %zu",
                  first_diff(reply, stream, len));
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_echo_many_frames_one_write)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = h_connect_ok(&srv);
    size_t len;
    uint8_t *stream = build_stream(MANY_FRAMES, 9, 200, &len);
    uint8_t *reply = malloc(len);
    ck_assert_ptr_nonnull(reply);
    /* One send call for all of it (it fits the socket buffer on loopback), then read back. */
    ssize_t n = send(fd, stream, len, MSG_NOSIGNAL);
    ck_assert_int_gt(n, 0);
    int rc = h_exchange(fd, stream + n, len - (size_t)n, reply, len, 10000);
    ck_assert_msg(rc == 0, "echo of %d frames in one write: %s", MANY_FRAMES, strerror(-rc));
    ck_assert_msg(memcmp(reply, stream, len) == 0, "replies differ at byte %zu of %zu",
                  first_diff(reply, stream, len), len);
    free(reply);
    free(stream);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

struct conn_job {
    const struct h_server *srv;
    uint32_t seed;
    char error[256];
};

/* One pipelined connection: send every frame while reading, compare byte for byte. */
static void *conn_worker(void *arg)
{
    struct conn_job *job = arg;
    size_t len;
    uint8_t *stream = NULL, *reply = NULL;
    int fd = h_connect(job->srv, 3000);
    if (fd < 0) {
        snprintf(job->error, sizeof(job->error), "connect: %s", strerror(-fd));
        return NULL;
    }
    /* build_stream asserts only on malloc failure, which Check reports from any thread. */
    stream = build_stream(FRAMES_PER_CONN, job->seed, 3000, &len);
    reply = malloc(len);
    if (!reply) {
        snprintf(job->error, sizeof(job->error), "out of memory");
        goto out;
    }
    int rc = h_exchange(fd, stream, len, reply, len, 20000);
    if (rc < 0)
        snprintf(job->error, sizeof(job->error), "exchange: %s", strerror(-rc));
    else if (memcmp(reply, stream, len) != 0)
        snprintf(job->error, sizeof(job->error), "reply differs at byte %zu of %zu",
                 first_diff(reply, stream, len), len);
out:
    free(reply);
    free(stream);
    close(fd);
    return NULL;
}

START_TEST(test_echo_concurrent_pipelined)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    pthread_t threads[CONCURRENT_CONNS];
    struct conn_job jobs[CONCURRENT_CONNS];
    for (int i = 0; i < CONCURRENT_CONNS; i++) {
        jobs[i] = (struct conn_job){.srv = &srv, .seed = (uint32_t)i * 1000u + 17u};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, conn_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < CONCURRENT_CONNS; i++)
        pthread_join(threads[i], NULL);
    for (int i = 0; i < CONCURRENT_CONNS; i++)
        ck_assert_msg(jobs[i].error[0] == '\0', "connection %d: %s", i, jobs[i].error);
    ck_assert_int_eq(h_stat_ok(&srv, "frames_out"), CONCURRENT_CONNS * FRAMES_PER_CONN);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_echo_ipv6)
{
    /* Skip the case (not the program) where this machine has no ::1. */
    int probe = h_connect_addr(AF_INET6, "::1", 9, 1000);
    if (probe == -EADDRNOTAVAIL || probe == -EAFNOSUPPORT || probe == -ENETUNREACH) {
        fprintf(stderr, "test_echo_ipv6: ::1 unavailable (%s), case skipped\n", strerror(-probe));
        return;
    }
    if (probe >= 0)
        close(probe);
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = "[::1]:0"});
    ck_assert_int_eq(srv.family, AF_INET6);
    int fd = h_connect_ok(&srv);
    uint8_t payload[1000];
    h_fill(payload, sizeof(payload), 6);
    h_echo_ok(fd, payload, sizeof(payload), 5000);
    h_echo_ok(fd, payload, 0, 5000);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

/*
 * An IPv6 scope id in --listen: "[::1%lo]:0" parses (the kernel ignores the
 * scope of an address that is not link-local) and serves. Link-local
 * addresses with their scope are covered by tests/unit/test_config.c.
 */
START_TEST(test_echo_ipv6_scope_id)
{
    int probe = h_connect_addr(AF_INET6, "::1", 9, 1000);
    if (probe == -EADDRNOTAVAIL || probe == -EAFNOSUPPORT || probe == -ENETUNREACH) {
        fprintf(stderr, "test_echo_ipv6_scope_id: ::1 unavailable (%s), case skipped\n",
                strerror(-probe));
        return;
    }
    if (probe >= 0)
        close(probe);
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = "[::1%lo]:0"});
    ck_assert_int_eq(srv.family, AF_INET6);
    int fd = h_connect_ok(&srv);
    uint8_t payload[500];
    h_fill(payload, sizeof(payload), 7);
    h_echo_ok(fd, payload, sizeof(payload), 5000);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_echo_counts_frames)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = h_connect_ok(&srv);
    uint8_t payload[100];
    for (int i = 0; i < 10; i++) {
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(fd, payload, sizeof(payload), 5000);
    }
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "frames_in") == 10, "frames_in: %s", line);
    ck_assert_msg(h_stat_get(line, "frames_out") == 10, "frames_out: %s", line);
    ck_assert_msg(h_stat_get(line, "conns_open") == 1, "conns_open: %s", line);
    ck_assert_msg(h_stat_get(line, "accepted") == 1, "accepted: %s", line);
    /* Payload bytes, or payload plus headers, whichever the server counts. */
    int64_t in = h_stat_get(line, "bytes_in"), out = h_stat_get(line, "bytes_out");
    ck_assert_msg(in == 1000 || in == 1040, "bytes_in: %s", line);
    /* bytes_out counts at the send's completion, which the server may reap just after the
     * client read the echo (sqpoll: the SQ thread submits and completes on its own time). */
    if (out != in)
        out = h_wait_stat_eq(&srv, "bytes_out", in, 3000);
    ck_assert_msg(out == in, "bytes_out %lld != bytes_in: %s", (long long)out, line);
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 3000), 0);
    h_stop_ok(&srv);
}
END_TEST

/*
 * Every way a peer ends a connection that the server learns of from the last completion of
 * its only operation: FIN after the echo (the recv's EOF closes it), a frame and FIN at once
 * (the echo's send completion closes it, or the EOF after it), RST (the failed recv). None of
 * these leaves an operation to cancel, so a uring server issues no ASYNC_CANCEL for them (one
 * by fd searches the ring's whole poll table; kernel-notes/06); epoll never does. Then a
 * connection the server closes itself while its recv is armed (the idle timeout) must still be
 * cancelled, counted and released.
 */
START_TEST(test_echo_peer_closes_need_no_cancel)
{
    enum { EACH = 12 };
    struct h_server srv;
    const char *args[] = {"--idle-timeout", "600ms", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    uint8_t payload[64], back[64];
    for (int i = 0; i < EACH; i++) {
        h_fill(payload, sizeof(payload), (uint32_t)i);
        int fd = h_connect_ok(&srv); /* echo, then FIN */
        h_echo_ok(fd, payload, sizeof(payload), 3000);
        close(fd);
        fd = h_connect_ok(&srv); /* a frame and FIN together; the echo still comes */
        ck_assert_int_eq(h_send_frame(fd, payload, sizeof(payload), 3000), 0);
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        uint32_t len = 0;
        ck_assert_int_eq(h_recv_frame(fd, back, sizeof(back), &len, 3000), 0);
        ck_assert_uint_eq(len, sizeof(payload));
        ck_assert(memcmp(back, payload, sizeof(payload)) == 0);
        ck_assert_int_eq(h_expect_close(fd, 3000), 0);
        close(fd);
        fd = h_connect_ok(&srv); /* echo, then RST */
        h_echo_ok(fd, payload, sizeof(payload), 3000);
        h_close_rst(fd);
    }
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "closed") == 3 * EACH, "closed: %s", line);
    ck_assert_msg(h_stat_get(line, "cancels") == 0, "a peer's close was cancelled: %s", line);

    int fd = h_connect_ok(&srv); /* idle: reaped with its recv armed */
    h_fill(payload, sizeof(payload), 99);
    h_echo_ok(fd, payload, sizeof(payload), 3000);
    ck_assert_int_eq(h_expect_close(fd, 10000), 0);
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "reaped_idle") == 1, "reaped_idle: %s", line);
    int64_t want = strcmp(h_backend(), "uring") == 0 ? 1 : 0;
    ck_assert_msg(h_stat_get(line, "cancels") == want, "cancels (want %lld): %s", (long long)want,
                  line);
    h_stop_ok(&srv);
}
END_TEST

/*
 * The other side of the test above: a connection the server closes while a send of it is stuck
 * (a peer that never reads, its receive window full) and its recv paused for backpressure. The
 * idle timeout reaps it; the uring backend must cancel the stuck send (and whatever recv is
 * live), wait for their last CQEs and release the slot, and the worker serves others meanwhile.
 */
START_TEST(test_echo_server_close_cancels_stuck_send)
{
    enum { FRAME = 64 * 1024 };
    struct h_server srv;
    uint8_t payload[1000];
    h_fill(payload, sizeof(payload), 7);
    const char *args[] = {"--idle-timeout", "1500ms", "--write-buffer", "128K", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    int small = 16 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    h_push_until_paused(fd, H_FRAME_HDR + FRAME, 64u << 20, 500, NULL);
    ck_assert_int_ge(h_stat_ok(&srv, "backpressure_pauses"), 1);
    int64_t cancels_before = h_stat_ok(&srv, "cancels"); /* the pauses' recv cancels */
    int other = h_connect_ok(&srv); /* served while the stuck one waits for its reap */
    h_echo_ok(other, payload, 100, 1000);
    close(other);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "reaped_idle", 1, 10000), 1);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    fprintf(stderr, "%s: stuck send reaped: cancels=%lld backpressure_pauses=%lld\n", h_backend(),
            (long long)h_stat_get(line, "cancels"),
            (long long)h_stat_get(line, "backpressure_pauses"));
    if (strcmp(h_backend(), "uring") == 0)
        ck_assert_msg(h_stat_get(line, "cancels") > cancels_before,
                      "the stuck send was not cancelled (%lld cancels before the reap): %s",
                      (long long)cancels_before, line);
    else
        ck_assert_msg(h_stat_get(line, "cancels") == 0, "cancels on epoll: %s", line);
    /* The worker still serves. */
    other = h_connect_ok(&srv);
    h_echo_ok(other, payload, sizeof(payload), 3000);
    close(other);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

/*
 * SO_REUSEPORT spreads connections over the workers' listeners by a hash of
 * the 4-tuple: 64 connections from distinct ports all landing on one of two
 * workers has odds of 2^-63. Each worker counts its own; SIGUSR1 writes them
 * to --stats-json. With one worker, that worker must have taken them all.
 */
START_TEST(test_echo_spreads_over_workers)
{
    int workers = h_workers();
    enum { CONNS = 64 };
    char json[64];
    snprintf(json, sizeof(json), "/tmp/rw-spread-%d.json", (int)getpid());
    const char *args[] = {"--stats-json", json, NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fds[CONNS];
    uint8_t payload[16];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = h_connect_ok(&srv);
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(fds[i], payload, sizeof(payload), 3000);
    }
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "accepted") == CONNS, "total: %s", line);
    int64_t per[64];
    int n = h_json_worker_counters(json, "accepted", per, 64);
    ck_assert_msg(n == workers, "--stats-json lists %d workers, want %d", n, workers);
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        ck_assert_msg(per[i] > 0, "worker %d accepted none of %d connections", i, CONNS);
        sum += per[i];
    }
    ck_assert_int_eq(sum, CONNS);
    /* With several workers SIGUSR1 also logs one line per worker, before the total. */
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    if (workers > 1)
        ck_assert_msg(strstr(log, "stats worker=0 ") && strstr(log, "stats worker=1 "),
                      "no per-worker stats lines: %s", h_log_tail(&srv));
    else
        ck_assert_msg(!strstr(log, "stats worker="), "per-worker line with one worker: %s",
                      h_log_tail(&srv));
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    h_stop_ok(&srv);
    unlink(json);
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("echo");
    h_add_case(s, "test_echo_sizes", test_echo_sizes, 60);
    h_add_case(s, "test_echo_one_byte_per_segment", test_echo_one_byte_per_segment, 30);
    h_add_case(s, "test_echo_many_frames_one_write", test_echo_many_frames_one_write, 30);
    h_add_case(s, "test_echo_concurrent_pipelined", test_echo_concurrent_pipelined, 60);
    h_add_case(s, "test_echo_ipv6", test_echo_ipv6, 30);
    h_add_case(s, "test_echo_ipv6_scope_id", test_echo_ipv6_scope_id, 30);
    h_add_case(s, "test_echo_counts_frames", test_echo_counts_frames, 30);
    h_add_case(s, "test_echo_peer_closes_need_no_cancel", test_echo_peer_closes_need_no_cancel, 60);
    h_add_case(s, "test_echo_server_close_cancels_stuck_send",
               test_echo_server_close_cancels_stuck_send, 60);
    h_add_case(s, "test_echo_spreads_over_workers", test_echo_spreads_over_workers, 30);
    return h_run_suite(s);
}
