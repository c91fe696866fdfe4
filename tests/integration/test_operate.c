/*
 * Integration tests of the options an operator turns: --drain-timeout closes
 * by force what cannot drain (a peer that never reads) and still exits 0;
 * --stats-interval prints the counters by itself; a --backlog above
 * net.core.somaxconn warns with the sysctl to raise; --log-level debug says
 * why a connection closed and --log-level warn stays quiet at info;
 * --cpu-affinity pins each worker thread to its own CPU; started under a
 * restricted affinity mask (as `taskset -c N` would), the default --threads
 * is the mask's CPU count and --cpu-affinity pins within the mask.
 */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static int count_substr(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Push frames at the server without reading until it stops taking them (backpressure). */
static size_t push_until_paused(int fd)
{
    static uint8_t frame[H_FRAME_HDR + 65532];
    h_put_header(frame, sizeof(frame) - H_FRAME_HDR);
    h_fill(frame + H_FRAME_HDR, sizeof(frame) - H_FRAME_HDR, 7);
    size_t sent = 0;
    int64_t give_up = h_now_ms() + 20000;
    while (h_now_ms() < give_up) {
        size_t off = sent % sizeof(frame);
        ssize_t n = send(fd, frame + off, sizeof(frame) - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        ck_assert_msg(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
        usleep(300 * 1000); /* still full after 300 ms: the server stopped reading */
        n = send(fd, frame, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EAGAIN)
            return sent;
        ck_assert_int_eq(n, 1);
        sent += 1;
    }
    ck_abort_msg("the server kept reading from a peer that never reads");
    return sent;
}

START_TEST(test_operate_drain_timeout_forces_close)
{
    struct h_server srv;
    const char *args[] = {"--drain-timeout", "500ms", "--write-buffer", "64K", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int stuck = h_connect_ok(&srv);
    int small = 32 * 1024;
    setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    push_until_paused(stuck);
    /* A well-behaved connection next to it drains normally. */
    int good = h_connect_ok(&srv);
    uint8_t payload[64];
    h_fill(payload, sizeof(payload), 3);
    h_echo_ok(good, payload, sizeof(payload), 2000);

    int64_t t0 = h_now_ms();
    ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
    ck_assert_int_eq(h_expect_close(good, 3000), 0);
    int code = h_wait_exit(&srv, 5000);
    int64_t took = h_now_ms() - t0;
    ck_assert_msg(code == 0, "exit status %d after a forced drain; log:\n%s", code,
                  h_log_tail(&srv));
    /* It waited for the timeout (the stuck peer could never drain), then no longer. */
    ck_assert_msg(took >= 400 && took < 4000, "drain took %lld ms with --drain-timeout 500ms",
                  (long long)took);
    char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "drain timeout: closed 1 connections") != NULL,
                  "no forced-close line: %s", h_log_tail(&srv));
    close(good);
    close(stuck);
    unlink(srv.log_path);
}
END_TEST

START_TEST(test_operate_stats_interval_prints_by_itself)
{
    struct h_server srv;
    const char *args[] = {"--stats-interval", "200ms", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    uint8_t payload[10];
    h_fill(payload, sizeof(payload), 1);
    h_echo_ok(fd, payload, sizeof(payload), 2000);
    usleep(1100 * 1000);
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    int lines = count_substr(log, "stats conns_open=");
    ck_assert_msg(lines >= 3 && lines <= 8, "%d stats lines in 1.1 s at 200 ms: %s", lines,
                  h_log_tail(&srv));
    ck_assert_msg(strstr(log, "frames_in=1 ") != NULL, "the echo is not counted: %s",
                  h_log_tail(&srv));
    /* One line per interval: the per-worker lines are SIGUSR1's alone. */
    ck_assert_msg(strstr(log, "stats worker=") == NULL, "per-worker lines on the interval: %s",
                  h_log_tail(&srv));
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_operate_backlog_above_somaxconn_warns)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    long somaxconn = 0;
    ck_assert_msg(f && fscanf(f, "%ld", &somaxconn) == 1, "cannot read net.core.somaxconn");
    fclose(f);
    char backlog[32];
    snprintf(backlog, sizeof(backlog), "%ld", somaxconn + 1);
    struct h_server srv;
    const char *args[] = {"--backlog", backlog, NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "warn: --backlog") && strstr(log, "net.core.somaxconn"),
                  "no warning naming the sysctl: %s", log);
    int fd = h_connect_ok(&srv);
    uint8_t payload[10];
    h_fill(payload, sizeof(payload), 2);
    h_echo_ok(fd, payload, sizeof(payload), 2000);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_operate_log_level_debug_says_why)
{
    struct h_server srv;
    const char *args[] = {"--log-level", "debug", "--max-frame", "100", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    uint8_t header[H_FRAME_HDR];
    h_put_header(header, 101);
    ck_assert_int_eq(h_send_all(fd, header, sizeof(header), 2000), 0);
    ck_assert_int_eq(h_expect_close(fd, 5000), 0);
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "debug: conn") && strstr(log, "protocol error"),
                  "no debug line for the protocol error: %s", h_log_tail(&srv));
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_operate_log_level_warn_is_quiet)
{
    /* No listening line to wait for at warn: run it for a while, kill it, read what it said. */
    char out[8192];
    const char *info[] = {"--listen", "127.0.0.1:0", "--backend", h_backend(), NULL};
    int rc = h_run_args(info, 700, out, sizeof(out));
    ck_assert_msg(rc == -ETIMEDOUT, "the server exited (%d) by itself: %s", rc, out);
    ck_assert_msg(strstr(out, "info: listening on") != NULL, "info is silent at info: %s", out);
    const char *warn[] = {"--listen",    "127.0.0.1:0", "--backend", h_backend(),
                          "--log-level", "warn",        NULL};
    rc = h_run_args(warn, 700, out, sizeof(out));
    ck_assert_msg(rc == -ETIMEDOUT, "the server exited (%d) by itself: %s", rc, out);
    ck_assert_msg(strstr(out, "info:") == NULL, "info lines at --log-level warn: %s", out);
}
END_TEST

/* The CPUs each thread of pid may run on, as /proc lists them ("0", "1", "0-1"). */
static int thread_cpu_lists(pid_t pid, char lists[][32], int max)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] == '.' || atoi(e->d_name) == (int)pid)
            continue; /* the main thread is not a worker */
        char path[384], line[256];
        snprintf(path, sizeof(path), "%s/%s/status", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        /* io_uring's kernel threads (iou-sqp-*: sqpoll's SQ thread; iou-wrk-*: io-wq) are
         * the kernel's, placed by it, not workers. */
        bool io_thread = false;
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "Name:\tiou-", 10) == 0)
                io_thread = true;
            if (!io_thread && sscanf(line, "Cpus_allowed_list: %31s", lists[n]) == 1)
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

START_TEST(test_operate_cpu_affinity_pins_workers)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 2) {
        fprintf(stderr, "test_operate_cpu_affinity_pins_workers: one CPU, nothing to pin\n");
        return;
    }
    struct h_server srv;
    const char *args[] = {"--threads", "2", "--cpu-affinity", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    char lists[8][32];
    int n = thread_cpu_lists(srv.pid, lists, 8);
    ck_assert_msg(n == 2, "%d worker threads, want 2", n);
    ck_assert_msg(strcmp(lists[0], lists[1]) != 0, "both workers on CPUs %s", lists[0]);
    for (int i = 0; i < n; i++)
        ck_assert_msg(strcmp(lists[i], "0") == 0 || strcmp(lists[i], "1") == 0,
                      "worker pinned to '%s', want one CPU", lists[i]);
    h_stop_ok(&srv);
}
END_TEST

/* The CPUs this test may run on, lowest first, into cpus; returns how many (at most max). */
static int allowed_cpus(int *cpus, int max)
{
    cpu_set_t set;
    ck_assert_int_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    int n = 0;
    for (int cpu = 0; cpu < 64 && n < max; cpu++)
        if (CPU_ISSET(cpu, &set))
            cpus[n++] = cpu;
    ck_assert_int_ge(n, 1);
    return n;
}

START_TEST(test_operate_default_threads_follow_affinity)
{
    int cpus[64];
    int n = allowed_cpus(cpus, 64);
    if (n < 2)
        fprintf(stderr, "test_operate_default_threads_follow_affinity: one CPU here, so one "
                        "worker either way; the test cannot tell mask from online count\n");
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.cpu_mask = 1ull << cpus[0], .no_threads = true});
    char log[8192];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, " threads=1 ") != NULL, "want threads=1 under a one-CPU mask: %s",
                  log);
    char lists[8][32];
    ck_assert_int_eq(thread_cpu_lists(srv.pid, lists, 8), 1);
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "one", 3, 5000);
    close(fd);
    h_stop_ok(&srv);
    /* Without a mask of its own it takes the test's: one worker per CPU we may use. */
    h_start_ok(&srv, &(struct h_opts){.no_threads = true});
    h_log(&srv, log, sizeof(log));
    char want[32];
    snprintf(want, sizeof(want), " threads=%d ", n > 256 ? 256 : n);
    ck_assert_msg(strstr(log, want) != NULL, "want%s: %s", want, log);
    h_stop_ok(&srv);
}
END_TEST

/* Under mask {X}, --cpu-affinity pins both workers to X (the mask's i-th CPU, wrapping). */
static void check_pinned_within(int cpu)
{
    struct h_server srv;
    const char *args[] = {"--threads", "2", "--cpu-affinity", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args, .cpu_mask = 1ull << cpu, .no_threads = true});
    char lists[8][32];
    int n = thread_cpu_lists(srv.pid, lists, 8);
    ck_assert_msg(n == 2, "%d worker threads, want 2", n);
    char want[16];
    snprintf(want, sizeof(want), "%d", cpu);
    for (int i = 0; i < n; i++)
        ck_assert_msg(strcmp(lists[i], want) == 0, "worker %d on CPUs '%s', want '%s'", i, lists[i],
                      want);
    char log[8192];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "--cpu-affinity:") == NULL, "pinning failed: %s", log);
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "pinned", 6, 5000);
    close(fd);
    h_stop_ok(&srv);
}

START_TEST(test_operate_cpu_affinity_within_mask)
{
    int cpus[64];
    int n = allowed_cpus(cpus, 64);
    check_pinned_within(cpus[0]);
    if (n < 2) {
        fprintf(stderr, "test_operate_cpu_affinity_within_mask: one CPU here; the mask of "
                        "another CPU cannot be tried\n");
        return;
    }
    check_pinned_within(cpus[n - 1]); /* worker 0 on it, not on CPU 0 */
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("operate");
    h_add_case(s, "test_operate_drain_timeout_forces_close",
               test_operate_drain_timeout_forces_close, 40);
    h_add_case(s, "test_operate_stats_interval_prints_by_itself",
               test_operate_stats_interval_prints_by_itself, 20);
    h_add_case(s, "test_operate_backlog_above_somaxconn_warns",
               test_operate_backlog_above_somaxconn_warns, 20);
    h_add_case(s, "test_operate_log_level_debug_says_why", test_operate_log_level_debug_says_why,
               20);
    h_add_case(s, "test_operate_log_level_warn_is_quiet", test_operate_log_level_warn_is_quiet, 20);
    h_add_case(s, "test_operate_cpu_affinity_pins_workers", test_operate_cpu_affinity_pins_workers,
               20);
    h_add_case(s, "test_operate_default_threads_follow_affinity",
               test_operate_default_threads_follow_affinity, 30);
    h_add_case(s, "test_operate_cpu_affinity_within_mask", test_operate_cpu_affinity_within_mask,
               30);
    return h_run_suite(s);
}
