/*
 * Per-worker counters. Each counter is written only by its worker (a relaxed
 * load + store: a plain mov, no lock on the data path) and read by the main
 * thread with relaxed loads when it prints or writes them.
 */
#ifndef RW_STATS_H
#define RW_STATS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define RW_STATS_LIST(X)                                                                           \
    X(ACCEPTED, "accepted")                                                                        \
    X(CLOSED, "closed")                                                                            \
    X(REJECTED_LIMIT, "rejected_limit")                                                            \
    X(REAPED_IDLE, "reaped_idle")                                                                  \
    X(REAPED_FRAME_TIMEOUT, "reaped_frame_timeout")                                                \
    X(REAPED_TCP_TIMEOUT, "reaped_tcp_timeout")                                                    \
    X(REAPED_DEAD, "reaped_dead")                                                                  \
    X(CLOSED_PROTOCOL, "closed_protocol")                                                          \
    X(CLOSED_ERROR, "closed_error")                                                                \
    X(CLOSED_MEMORY, "closed_memory")                                                              \
    X(CLOSED_PROXY, "closed_proxy")                                                                \
    X(FRAMES_IN, "frames_in")                                                                      \
    X(FRAMES_OUT, "frames_out")                                                                    \
    X(BYTES_IN, "bytes_in")                                                                        \
    X(BYTES_OUT, "bytes_out")                                                                      \
    X(BACKPRESSURE_PAUSES, "backpressure_pauses")                                                  \
    X(MEMORY_PAUSES, "memory_pauses")                                                              \
    X(ACCEPT_BACKOFFS, "accept_backoffs")                                                          \
    X(LOOP_TURNS, "loop_turns")                                                                    \
    X(WAIT_CALLS, "wait_calls")                                                                    \
    X(SUBMITS, "io_uring_enter")                                                                   \
    X(CQES, "cqes")                                                                                \
    X(RECV_CALLS, "recv_calls")                                                                    \
    X(SEND_CALLS, "send_calls")                                                                    \
    X(EARLY_FLUSHES, "early_flushes")                                                              \
    X(REARM_RECV_NOBUFS, "rearm_recv_enobufs")                                                     \
    X(REARM_RECV_OTHER, "rearm_recv_other")                                                        \
    X(REARM_ACCEPT, "rearm_accept")                                                                \
    X(CANCELS, "cancels")                                                                          \
    X(SQ_FULL, "sq_full")                                                                          \
    X(OUT_BLOCKS_LIVE, "out_blocks_live")                                                          \
    X(OUT_BLOCKS_CACHED, "out_blocks_cached")                                                      \
    X(MEM_BYTES, "mem_bytes")                                                                      \
    X(MEM_TRIMS, "mem_trims")                                                                      \
    X(ZC_REPLIES, "zc_replies")                                                                    \
    X(ZC_COPIED_LOW, "zc_copied_low")                                                              \
    X(RECV_BUNDLES, "recv_bundles")                                                                \
    X(RECV_BUNDLE_BUFS, "recv_bundle_bufs")                                                        \
    X(RECV_BUNDLE_SWITCHES, "recv_bundle_switches")                                                \
    X(FIXED_FILES, "fixed_files")                                                                  \
    X(SEND_ZC_CALLS, "send_zc_calls")                                                              \
    X(SEND_ZC_COPIED, "send_zc_copied")                                                            \
    X(LAZY_WAITS, "lazy_waits")                                                                    \
    X(CPU_US, "cpu_us")                                                                            \
    X(CPU_USER_US, "cpu_user_us")                                                                  \
    X(CPU_SYS_US, "cpu_sys_us")

enum rw_stat {
#define RW_STAT_ENUM(id, name) RW_STAT_##id,
    RW_STATS_LIST(RW_STAT_ENUM)
#undef RW_STAT_ENUM
        RW_STAT_COUNT
};

struct rw_stats {
    _Atomic uint64_t v[RW_STAT_COUNT];
};

extern const char *const rw__stat_names[RW_STAT_COUNT];
/* The uring features the workers run with ("" for epoll), for the stats line and JSON; written
 * once by worker 0's backend before it serves, read by the main thread. */
extern char rw__stats_uring_features[96];

static inline void rw__stat_add(struct rw_stats *s, enum rw_stat k, uint64_t n)
{
    uint64_t old = atomic_load_explicit(&s->v[k], memory_order_relaxed);
    atomic_store_explicit(&s->v[k], old + n, memory_order_relaxed);
}

/*
 * Gauges are set, not added: the loop stores out_blocks_* and mem_bytes each turn;
 * cpu_* (the worker thread's CPU time so far) are stored by the main thread when it
 * collects the stats, and by the worker itself as it exits (rw__stats_thread_cpu).
 */
static inline void rw__stat_set(struct rw_stats *s, enum rw_stat k, uint64_t v)
{
    atomic_store_explicit(&s->v[k], v, memory_order_relaxed);
}

static inline uint64_t rw__stat_get(const struct rw_stats *s, enum rw_stat k)
{
    return atomic_load_explicit(&s->v[k], memory_order_relaxed);
}

/*
 * Store the CPU time thread has used so far into s's cpu_* gauges: cpu_us from
 * the thread's CPU clock (pthread_getcpuclockid, ns resolution, user + system),
 * cpu_user_us / cpu_sys_us from /proc/self/task/TID/stat (clock-tick resolution).
 * Costs the worker nothing: the main thread reads them at stats time, so the
 * figure also exists when the server runs on another host than its client.
 * Returns 0, or -errno when the thread is gone (the gauges then keep their values).
 */
int rw__stats_thread_cpu(struct rw_stats *s, pthread_t thread, pid_t tid);

/* out = sum of in[0..count). */
void rw__stats_sum(struct rw_stats *out, struct rw_stats *const *in, unsigned count);
/*
 * One line: "stats conns_open=N accepted=N ... frames_per_wait=F" for the
 * process total (worker < 0), "stats worker=W conns_open=N ..." for one worker.
 */
void rw__stats_format_line(const struct rw_stats *s, int worker, char *buf, size_t buf_bytes);
/*
 * Who is counting, for readers that keep counters from several servers or
 * restarts apart: the top of --stats-json and the metrics' info and uptime.
 */
struct rw_stats_meta {
    const char *version;      /* RW_VERSION */
    const char *backend;      /* the backend serving: "uring" or "epoll" */
    uint64_t started_mono_ns; /* CLOCK_MONOTONIC when the server started */
};

/* Seconds since meta->started_mono_ns. */
double rw__stats_uptime_s(const struct rw_stats_meta *meta);
/* CLOCK_MONOTONIC now, in ns. */
uint64_t rw__stats_mono_ns(void);

/*
 * A JSON object: "version", "backend", "uptime_s", "timestamp" (RFC 3339,
 * UTC, ms) and "timestamp_unix_ms" of meta, then "total" (every counter) and
 * "workers" (one such object each). Returns 0 or -errno.
 */
int rw__stats_write_json(const struct rw_stats_meta *meta, const struct rw_stats *s,
                         unsigned workers, struct rw_stats *const *per, FILE *out);

#endif
