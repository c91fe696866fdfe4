/*
 * Integration-test harness: runs the real ringwire binary (RW_BIN) on the
 * backend named by RW_BACKEND (and RW_THREADS worker threads when set) with
 * its stderr in a temporary file, finds the ephemeral port from the
 * "listening on" line, reads counters through SIGUSR1, memory and CPU time
 * through /proc, and stops it with a signal within a bounded time. The client
 * helpers never block without a deadline: every wait is a poll() with a
 * timeout, so a broken server fails a test instead of hanging it.
 *
 * Functions named h_* return 0 or a negative errno; the few that assert (the
 * h_*_ok wrappers) are for use inside Check tests only.
 */
#ifndef RW_TEST_HARNESS_H
#define RW_TEST_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#define H_SKIP             77
#define H_FRAME_HDR        4u
#define H_START_TIMEOUT_MS 5000
#define H_STOP_TIMEOUT_MS  10000
#define H_LOG_MAX          (1u << 20)

struct h_server {
    pid_t pid;
    int port;
    int family; /* AF_INET or AF_INET6, from the listening line */
    bool reaped;
    int exit_code; /* once reaped: exit status, or 128 + signal */
    char log_path[64];
};

struct h_opts {
    const char *listen;      /* default "127.0.0.1:0" */
    const char *const *args; /* more options, NULL-terminated; may be NULL */
    rlim_t nofile;           /* RLIMIT_NOFILE for the server; 0 leaves it alone */
    rlim_t nofile_hard;      /* its hard limit when above nofile; 0: the same as nofile */
    const char *netns;       /* run the server in this network namespace (/run/netns/NAME,
                                as `ip netns exec NAME` would); NULL: the test's own */
    const char *const *env;  /* environment changes for the server, NULL-terminated:
                                "NAME=value" sets, "NAME" unsets; may be NULL */
    uint64_t cpu_mask;       /* CPU affinity for the server (bit i: CPU i), set in the child
                                before exec as taskset would; 0 leaves it alone */
    bool no_threads;         /* do not pass RW_THREADS' --threads: the server picks its default */
};

/* Process setup for every test program: ignore SIGPIPE, alarm(seconds), raise our fd limit. */
void h_init(unsigned alarm_seconds);

/* Exit H_SKIP (with the reason on stderr) when RW_BACKEND's backend cannot run here. */
void h_skip_if_unavailable(void);

/* Run the suite (CK_ENV), free it and return the process exit code. */
int h_run_suite(Suite *s);

/* Add one tcase holding one test, with a timeout in seconds. */
void h_add_case(Suite *s, const char *name, const TTest *test, double timeout_s);

/*
 * Start the server and wait until it listens. Returns 0, -ENOTSUP when the
 * backend is unavailable (exited 1 saying "io_uring unavailable"), -ECHILD
 * when it exited otherwise, -ETIMEDOUT when no listening line came in time.
 */
int h_start(struct h_server *srv, const struct h_opts *opts);
void h_start_ok(struct h_server *srv, const struct h_opts *opts);

/* Signal the server and reap it within timeout_ms (SIGKILL and -ETIMEDOUT past it). */
int h_stop(struct h_server *srv, int sig, int timeout_ms);
/* Reap it within timeout_ms without signalling it first (SIGKILL and -ETIMEDOUT past it). */
int h_wait_exit(struct h_server *srv, int timeout_ms);
/* SIGTERM, expect exit status 0; then remove the log. */
void h_stop_ok(struct h_server *srv);
/* True while the server process has not exited (reaps it if it has). */
bool h_alive(struct h_server *srv);
/* The server's log so far, NUL-terminated (truncated to bytes - 1). */
size_t h_log(const struct h_server *srv, char *buf, size_t bytes);
/* The last ~1500 bytes of the log, for failure messages (a static buffer). */
const char *h_log_tail(const struct h_server *srv);

/*
 * Run the binary (under RW_WRAPPER when set) with exactly these arguments (after argv[0]) to
 * completion, stdout and stderr captured into out. Returns the exit status (128 + signal if
 * killed), or a negative errno (-ETIMEDOUT after SIGKILL past timeout_ms).
 */
int h_run_args(const char *const *args, int timeout_ms, char *out, size_t out_bytes);

/*
 * 6 when the server runs under RW_WRAPPER (valgrind), else 1: the harness's own
 * waits for start, stop, exit and stats stretch by it; client timeouts do not.
 */
int h_time_factor(void);

/* Worker threads the server runs with: RW_THREADS, else its default (the CPUs we may use). */
int h_workers(void);
/* One counter of every worker from a --stats-json file, in worker order. Count or -errno. */
int h_json_worker_counters(const char *path, const char *key, int64_t *out, int max);

/* The backend under test (RW_BACKEND, "epoll" when unset). */
const char *h_backend(void);

/* Fresh counters: send SIGUSR1, wait for the next stats line, copy it out. */
int h_stats(struct h_server *srv, char *line, size_t bytes);
/* One counter from a stats line; -1 when missing. */
int64_t h_stat_get(const char *line, const char *key);
/* Fetch one counter now; asserts it is there. */
int64_t h_stat_ok(struct h_server *srv, const char *key);
/* Poll the counter until it equals want or timeout_ms passes; returns the last value. */
int64_t h_wait_stat_eq(struct h_server *srv, const char *key, int64_t want, int timeout_ms);

/*
 * False when the server runs under RW_WRAPPER (valgrind): then RSS is mostly
 * valgrind's own (its free quarantine, shadow memory, translated code) and an
 * RSS bound says nothing about the server; memcheck's leak check stands in.
 */
bool h_rss_meaningful(void);
/* /proc: resident set size in KiB, and user+system CPU time in ms. Negative errno on failure. */
long h_rss_kib(pid_t pid);
long h_cpu_ms(pid_t pid);
/* h_cpu_ms less the CPU of pid's io_uring SQ threads (iou-sqp-*: --uring-features sqpoll polls
 * by design), for tests that check the server's own loop does not spin; -errno. */
long h_cpu_ms_no_sqpoll(pid_t pid);

/* Sleep ms milliseconds (resumed after signals). */
void h_sleep_ms(int ms);

/* Start a non-blocking IPv4 loopback connect to the server; fd (connecting) or -errno. */
int h_connect_start(const struct h_server *srv);

/* Monotonic milliseconds. */
int64_t h_now_ms(void);

/* Connect to the server (its address family, loopback) within timeout_ms; fd or -errno. */
int h_connect(const struct h_server *srv, int timeout_ms);
int h_connect_ok(const struct h_server *srv);
/* Connect to an explicit address (IPv4 "127.0.0.1" or IPv6 "::1"). */
int h_connect_addr(int family, const char *host, int port, int timeout_ms);

/* Send all of buf; -ETIMEDOUT if the peer stops taking it for timeout_ms in total. */
int h_send_all(int fd, const void *buf, size_t len, int timeout_ms);
/* Receive exactly len bytes; -ENODATA on EOF first, -ETIMEDOUT, or -errno. */
int h_recv_exact(int fd, void *buf, size_t len, int timeout_ms);
/*
 * Send out_len bytes while receiving in_len bytes (both directions at once, so
 * a large pipeline cannot deadlock on full socket buffers).
 */
int h_exchange(int fd, const void *out, size_t out_len, void *in, size_t in_len, int timeout_ms);

/* Frames: 4-byte big-endian payload length, then the payload. */
void h_put_header(uint8_t *dst, uint32_t payload_len);
uint32_t h_get_header(const uint8_t *src);
/* Write a frame (header + payload) into dst; returns its total length. */
size_t h_build_frame(uint8_t *dst, const void *payload, uint32_t payload_len);
int h_send_frame(int fd, const void *payload, uint32_t payload_len, int timeout_ms);
/* Receive one frame into buf (cap bytes); -EMSGSIZE if it does not fit. */
int h_recv_frame(int fd, void *buf, size_t cap, uint32_t *payload_len, int timeout_ms);
/* Send a frame and assert its echo comes back identical. */
void h_echo_ok(int fd, const void *payload, uint32_t payload_len, int timeout_ms);

/* Deterministic payload bytes: a different sequence for each seed. */
void h_fill(void *buf, size_t len, uint32_t seed);

/*
 * Wait for the peer to end the connection: 0 on EOF or ECONNRESET,
 * -ETIMEDOUT if it stays open, -EPROTO if data arrives instead.
 */
int h_expect_close(int fd, int timeout_ms);
/* Reset the connection (SO_LINGER 0) and close the fd. */
void h_close_rst(int fd);
/*
 * Push frames of frame_bytes (header included) at the server without reading until it stops
 * taking them for quiet_ms: its replies fill our receive window and its send buffer, and it
 * pauses reading from us. Asserts it stopped (before limit bytes and within 20 s); returns the
 * bytes pushed. fill(frame, k) writes frame k whole, header included (NULL: every frame the
 * same, a header and h_fill's bytes of seed 99).
 */
size_t h_push_until_paused(int fd, uint32_t frame_bytes, size_t limit, int quiet_ms,
                           void (*fill)(uint8_t *frame, uint32_t k));

#endif
