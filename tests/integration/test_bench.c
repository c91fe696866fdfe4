/*
 * ringwire-bench, the load generator benchmarks/run trusts, held to its own
 * promises (SPEC.md "Load generator"): against the real server it echoes a
 * fixed amount of work and reports it exactly; an open-loop --rate run holds
 * the rate and reports latency; and it exits non-zero when something is
 * wrong: a corrupted echo under --verify (a deliberately bad echo server in a
 * thread of this test flips one payload byte) and frames lost when the
 * server dies mid-run. Its workload modes do what they say: --churn opens,
 * uses and closes exactly the connections asked for (FIN or RST), --mode stream
 * moves exactly the bytes reported, every one verified. And the server reports
 * its own CPU time (cpu_us), which benchmarks/run divides by the work done.
 * RW_BENCH names the bench binary; RW_BIN/RW_BACKEND the server, as for every
 * integration program.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define OUT_BYTES (64u * 1024u)

struct bench_run {
    pid_t pid;
    char out_path[64];
};

/* Start ringwire-bench with args (after argv[0]), stdout into a temporary file. */
static void bench_start(struct bench_run *r, const char *const *args)
{
    const char *bin = getenv("RW_BENCH");
    ck_assert_msg(bin != NULL, "RW_BENCH must name the ringwire-bench binary");
    snprintf(r->out_path, sizeof(r->out_path), "/tmp/rw-bench-%d.out", (int)getpid());
    int fd = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 0);
    r->pid = fork();
    ck_assert_int_ge(r->pid, 0);
    if (r->pid == 0) {
        char *argv[32] = {strdup(bin)};
        int argc = 1;
        for (int i = 0; args[i] && argc < 31; i++)
            argv[argc++] = strdup(args[i]);
        argv[argc] = NULL;
        dup2(fd, STDOUT_FILENO);
        execv(bin, argv);
        _exit(127);
    }
    close(fd);
}

/* Wait for the bench to exit (SIGKILL after timeout_ms); its exit status, output in out. */
static int bench_wait(struct bench_run *r, int timeout_ms, char *out, size_t bytes)
{
    int status = 0, rc = -1;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        usleep(10000);
    }
    if (rc < 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, NULL, 0);
    }
    FILE *f = fopen(r->out_path, "r");
    size_t n = f ? fread(out, 1, bytes - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(r->out_path);
    ck_assert_msg(rc >= 0, "ringwire-bench did not exit within %d ms: %s", timeout_ms, out);
    return rc;
}

/* A number from the bench's one-line JSON ("key": N); -1 when missing. */
static double json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\": ", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1.0;
}

static void server_target(const struct h_server *srv, char *buf, size_t bytes)
{
    if (srv->family == AF_INET6)
        snprintf(buf, bytes, "[::1]:%d", srv->port);
    else
        snprintf(buf, bytes, "127.0.0.1:%d", srv->port);
}

START_TEST(test_bench_fixed_work_verified)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--conns", "32", "--depth", "4", "--size",
                                     "3000", "--frames", "20000", "--verify", "--json", NULL});
    int rc = bench_wait(&r, 60000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench exited %d: %s", rc, out);
    ck_assert_msg(json_num(out, "frames_received") == 20000, "frames_received: %s", out);
    ck_assert_msg(json_num(out, "frames_sent") == 20000, "frames_sent: %s", out);
    ck_assert_msg(json_num(out, "bytes_received") == 20000.0 * 3004, "bytes: %s", out);
    ck_assert_msg(json_num(out, "mismatches") == 0 && json_num(out, "lost_frames") == 0, "%s", out);
    ck_assert_msg(json_num(out, "connections") == 32, "connections: %s", out);
    /* The server saw exactly that work. */
    ck_assert_int_eq(h_stat_ok(&srv, "frames_in"), 20000);
    h_stop_ok(&srv);
}
END_TEST

/*
 * --connect localhost:PORT with the server on only the last address localhost resolves to here
 * (127.0.0.1 after ::1 on a typical /etc/hosts): the bench tries each in turn and runs on the one
 * that connects. With a single address this is the plain case.
 */
START_TEST(test_bench_connect_name_tries_every_address)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo("localhost", NULL, &hints, &res), 0);
    const struct addrinfo *last = res;
    while (last->ai_next != NULL)
        last = last->ai_next;
    char host[INET6_ADDRSTRLEN], listen[INET6_ADDRSTRLEN + 8];
    const void *a = last->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)last->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)last->ai_addr)->sin_addr;
    ck_assert_ptr_nonnull(inet_ntop(last->ai_family, a, host, sizeof(host)));
    snprintf(listen, sizeof(listen), last->ai_family == AF_INET6 ? "[%s]:0" : "%s:0", host);
    freeaddrinfo(res);
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = listen});
    char target[64], out[OUT_BYTES];
    snprintf(target, sizeof(target), "localhost:%d", srv.port);
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--conns", "4", "--frames", "2000",
                                     "--verify", "--json", NULL});
    int rc = bench_wait(&r, 60000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench --connect %s (server on %s) exited %d: %s", target, listen, rc,
                  out);
    ck_assert_msg(json_num(out, "frames_received") == 2000, "frames_received: %s", out);
    ck_assert_int_eq(h_stat_ok(&srv, "frames_in"), 2000);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_bench_open_loop_rate)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--conns", "8", "--rate", "2000",
                                     "--duration", "1s", "--verify", "--json", NULL});
    int rc = bench_wait(&r, 30000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench exited %d: %s", rc, out);
    /* 2000 frames/s for 1 s: the schedule, give or take the last in flight. */
    double got = json_num(out, "frames_received");
    ck_assert_msg(got >= 1900 && got <= 2100, "an open-loop 2000/s for 1 s echoed %.0f: %s", got,
                  out);
    double p50 = json_num(out, "p50"), p99 = json_num(out, "p99"), max = json_num(out, "max");
    ck_assert_msg(p50 > 0 && p50 <= p99 && p99 <= max, "latency percentiles out of order: %s", out);
    h_stop_ok(&srv);
}
END_TEST

/* ---- a deliberately bad echo server: answers each frame with one payload byte flipped ---- */

struct bad_echo {
    int listen_fd;
    int port;
    pthread_t thread;
    _Atomic bool stop;
};

static int read_full(int fd, uint8_t *buf, size_t len, struct bad_echo *b)
{
    size_t got = 0;
    while (got < len && !atomic_load(&b->stop)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return got == len ? 0 : -1;
}

static void *bad_echo_main(void *arg)
{
    struct bad_echo *b = arg;
    static uint8_t buf[1 << 16];
    int fd = -1;
    while (!atomic_load(&b->stop)) {
        struct pollfd p = {.fd = b->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) > 0 && (fd = accept(b->listen_fd, NULL, NULL)) >= 0)
            break;
    }
    while (fd >= 0 && !atomic_load(&b->stop)) {
        if (read_full(fd, buf, 4, b) < 0)
            break;
        uint32_t len =
            (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
        if (len > sizeof(buf) - 4 || read_full(fd, buf + 4, len, b) < 0)
            break;
        if (len > 0)
            buf[4 + len / 2] ^= 0x5a;
        if (send(fd, buf, 4 + len, MSG_NOSIGNAL) != (ssize_t)(4 + len))
            break;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

START_TEST(test_bench_verify_catches_corruption)
{
    struct bad_echo b = {.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    ck_assert_int_ge(b.listen_fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(b.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(b.listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(b.listen_fd, (struct sockaddr *)&sa, &len), 0);
    ck_assert_int_eq(pthread_create(&b.thread, NULL, bad_echo_main, &b), 0);

    char target[64], out[OUT_BYTES];
    snprintf(target, sizeof(target), "127.0.0.1:%d", ntohs(sa.sin_port));
    struct bench_run r;
    bench_start(&r,
                (const char *[]){"--connect", target, "--conns", "1", "--size", "100", "--frames",
                                 "50", "--verify", "--json", "--timeout", "3s", NULL});
    int rc = bench_wait(&r, 30000, out, sizeof(out));
    atomic_store(&b.stop, true);
    pthread_join(b.thread, NULL);
    close(b.listen_fd);
    ck_assert_msg(rc == 1, "bench --verify exited %d on corrupted echoes (want 1): %s", rc, out);
    ck_assert_msg(json_num(out, "mismatches") > 0, "no mismatch counted: %s", out);
}
END_TEST

START_TEST(test_bench_lost_frames_fail)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--conns", "4", "--depth", "4",
                                     "--duration", "10s", "--json", "--timeout", "2s", NULL});
    /* Let it get going, then the server vanishes with frames in flight. */
    usleep(500 * 1000);
    ck_assert_int_eq(h_stop(&srv, SIGKILL, 5000), 128 + SIGKILL);
    unlink(srv.log_path);
    int rc = bench_wait(&r, 20000, out, sizeof(out));
    ck_assert_msg(rc == 1, "bench exited %d although the server died mid-run (want 1): %s", rc,
                  out);
    ck_assert_msg(json_num(out, "errors") > 0 || json_num(out, "lost_frames") > 0,
                  "no error or lost frame reported: %s", out);
}
END_TEST

/* --churn K --connections M: exactly M connections, each K frames, each closed (FIN or RST). */
static void churn_exact(const char *close_how)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--churn", "5", "--connections", "300",
                                     "--conns", "16", "--close", close_how, "--verify", "--json",
                                     NULL});
    int rc = bench_wait(&r, 60000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench --churn exited %d: %s", rc, out);
    ck_assert_msg(json_num(out, "connections") == 300, "connections opened: %s", out);
    ck_assert_msg(json_num(out, "connections_completed") == 300, "completed: %s", out);
    ck_assert_msg(json_num(out, "frames_received") == 1500, "frames: %s", out);
    ck_assert_msg(json_num(out, "bytes_received") == 1500.0 * 68, "bytes: %s", out);
    ck_assert_msg(json_num(out, "mismatches") == 0 && json_num(out, "errors") == 0, "%s", out);
    ck_assert_msg(json_num(out, "conns_per_s") > 0, "conns_per_s: %s", out);
    /* The server saw exactly those connections come and go, and their frames. */
    ck_assert_int_eq(h_wait_stat_eq(&srv, "accepted", 300, 10000), 300);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed", 300, 10000), 300);
    ck_assert_int_eq(h_stat_ok(&srv, "frames_in"), 1500);
    h_stop_ok(&srv);
}

START_TEST(test_bench_churn_fin_counts_exactly)
{
    churn_exact("fin");
}
END_TEST

START_TEST(test_bench_churn_rst_counts_exactly)
{
    churn_exact("rst");
}
END_TEST

START_TEST(test_bench_stream_bytes_verified)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    struct bench_run r;
    /* The preset: 4 connections, 256 KiB frames, 8 in flight each. */
    bench_start(&r, (const char *[]){"--connect", target, "--mode", "stream", "--frames", "200",
                                     "--verify", "--json", NULL});
    int rc = bench_wait(&r, 60000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench --mode stream exited %d: %s", rc, out);
    ck_assert_msg(json_num(out, "conns") == 4 && json_num(out, "size") == 262144 &&
                      json_num(out, "depth") == 8,
                  "stream preset: %s", out);
    double frame_bytes = 262144.0 + 4;
    ck_assert_msg(json_num(out, "frames_received") == 200, "frames: %s", out);
    ck_assert_msg(json_num(out, "bytes_sent") == 200 * frame_bytes, "bytes sent: %s", out);
    ck_assert_msg(json_num(out, "bytes_received") == 200 * frame_bytes, "bytes: %s", out);
    ck_assert_msg(json_num(out, "mismatches") == 0, "mismatches: %s", out);
    ck_assert_msg(json_num(out, "gb_per_s_in") > 0 && json_num(out, "gb_per_s_out") > 0, "%s", out);
    ck_assert_int_eq(h_stat_ok(&srv, "bytes_out"), (int64_t)(200 * frame_bytes));
    h_stop_ok(&srv);

    /* Explicit options win over the preset, wherever they stand. */
    h_start_ok(&srv, NULL);
    server_target(&srv, target, sizeof(target));
    bench_start(&r, (const char *[]){"--connect", target, "--size", "1000", "--mode", "stream",
                                     "--frames", "40", "--verify", "--json", NULL});
    rc = bench_wait(&r, 60000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench exited %d: %s", rc, out);
    ck_assert_msg(json_num(out, "size") == 1000 && json_num(out, "conns") == 4, "%s", out);
    ck_assert_msg(json_num(out, "bytes_received") == 40.0 * 1004, "bytes: %s", out);
    h_stop_ok(&srv);
}
END_TEST

/* The server's CPU time in its stats: grows with work, per worker and in total. */
START_TEST(test_bench_server_cpu_reported)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    char target[64], out[OUT_BYTES];
    server_target(&srv, target, sizeof(target));
    int64_t before = h_stat_ok(&srv, "cpu_us");
    ck_assert_int_ge(before, 0);
    struct bench_run r;
    bench_start(&r, (const char *[]){"--connect", target, "--conns", "8", "--depth", "4",
                                     "--duration", "1s", "--json", NULL});
    int rc = bench_wait(&r, 30000, out, sizeof(out));
    ck_assert_msg(rc == 0, "bench exited %d: %s", rc, out);
    char line[8192];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    int64_t after = h_stat_get(line, "cpu_us");
    int64_t ticks = h_stat_get(line, "cpu_user_us") + h_stat_get(line, "cpu_sys_us");
    /* A second of echoing costs the server well over a millisecond of CPU. */
    ck_assert_msg(after - before >= 1000, "cpu_us %lld -> %lld: %s", (long long)before,
                  (long long)after, line);
    ck_assert_msg(ticks > 0, "cpu_user_us + cpu_sys_us = %lld: %s", (long long)ticks, line);
    /* Never more than the process used in all (the main thread included). */
    long proc_ms = h_cpu_ms(srv.pid);
    ck_assert_msg(after / 1000 <= proc_ms + 20, "workers %lld ms > process %ld ms",
                  (long long)(after / 1000), proc_ms);
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(500);
    h_skip_if_unavailable();
    if (!getenv("RW_BENCH")) {
        fprintf(stderr, "RW_BENCH is not set (ringwire-bench not built)\n");
        return H_SKIP;
    }
    Suite *s = suite_create("bench");
    h_add_case(s, "test_bench_fixed_work_verified", test_bench_fixed_work_verified, 60);
    h_add_case(s, "test_bench_connect_name_tries_every_address",
               test_bench_connect_name_tries_every_address, 60);
    h_add_case(s, "test_bench_open_loop_rate", test_bench_open_loop_rate, 30);
    h_add_case(s, "test_bench_verify_catches_corruption", test_bench_verify_catches_corruption, 30);
    h_add_case(s, "test_bench_lost_frames_fail", test_bench_lost_frames_fail, 30);
    h_add_case(s, "test_bench_churn_fin_counts_exactly", test_bench_churn_fin_counts_exactly, 90);
    h_add_case(s, "test_bench_churn_rst_counts_exactly", test_bench_churn_rst_counts_exactly, 90);
    h_add_case(s, "test_bench_stream_bytes_verified", test_bench_stream_bytes_verified, 90);
    h_add_case(s, "test_bench_server_cpu_reported", test_bench_server_cpu_reported, 60);
    return h_run_suite(s);
}
