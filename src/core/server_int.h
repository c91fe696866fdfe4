/*
 * Internal to the library's server (server.c: start, stop, wait, destroy;
 * server_stats.c: counters, stats lines, --stats-json, the control thread).
 * struct rw_server is opaque to the application (include/ringwire/ringwire.h).
 */
#ifndef RW_SERVER_INT_H
#define RW_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include <ringwire/ringwire.h>

#include "loop.h"
#include "stats.h"

struct rw_backend_ops;
struct rw_metrics;

struct worker {
    pthread_t thread;
    struct rw_server *server;
    struct rw_loop loop;
    int id;
    int listen_fds[RW_LISTEN_MAX]; /* one per listen address; -1 until opened */
    int init_rc;
    int run_rc;
    bool reported;
    int wake_fd;            /* eventfd its loop watches; the server's until destroy */
    _Atomic pid_t tid;      /* for the other threads' reads of this worker's CPU time */
    _Atomic bool cpu_final; /* the worker stored its own CPU time as it exited */
};

struct rw_server {
    struct rw_options opt; /* the caller's, copied (stats_json_path too: stats_json) */
    char *stats_json;
    struct rw_shared shared;
    struct worker *workers;
    unsigned count;       /* workers started (joined) */
    unsigned alloc_count; /* workers allocated (their wake_fd closed at destroy) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: start_workers saw every worker report; run_ok says whether all set up. */
    bool decided;
    bool run_ok;
    struct rw_stats_meta meta; /* version, serving backend, start time: JSON and metrics */
    struct sockaddr_storage bound[RW_LISTEN_MAX]; /* as bound: port 0 resolved */
    socklen_t bound_len[RW_LISTEN_MAX];
    unsigned address_count;
    struct rw_metrics *metrics;
    /* rw_server_stop: the flag, and the eventfd that wakes the control thread (open until
     * destroy, so a late stop from a signal handler writes to it safely). */
    _Atomic bool stop_requested;
    int stop_fd;
    pthread_t ctl_thread;
    bool ctl_started;
    bool waited;
    char err[512]; /* the first start failure (srv_fail) */
};

/* ---- server_setup.c ---- */

/* --cpu-affinity: worker worker_id on the worker_id-th CPU of the inherited mask. */
void rw__server_pin_to_cpu(int worker_id);
/* Out of descriptors: the process's limit (EMFILE) or the system's (ENFILE). */
bool rw__server_is_fd_limit(int err);
/* Why a worker's loop setup failed (err), with the remedy where one is known. */
void rw__server_describe_setup_error(const struct rw_options *cfg, const struct rw_backend_ops *ops,
                                     int err, char *buf, size_t bytes);
/* Raise the soft RLIMIT_NOFILE towards what cfg needs (logged). */
void rw__server_fit_nofile(const struct rw_options *cfg);

/* ---- server_stats.c ---- */

enum stats_to_log {
    STATS_LOG_NONE,  /* --stats-json only */
    STATS_LOG_TOTAL, /* stats_interval_ms: one line */
    STATS_LOG_ALL,   /* rw_server_log_stats(per_worker): a line per worker, then the total */
};
/* Write --stats-json (if set) and log the stats line(s). */
void rw__server_stats_report(struct rw_server *srv, enum stats_to_log to_log);
/* The metrics thread's collector (metrics.h). */
unsigned rw__server_metrics_collect(void *ctx, struct rw_stats *total, struct rw_stats **per);
/*
 * The control thread (only with stats_interval_ms): every interval a stats line, until
 * rw_server_stop.
 */
void *rw__server_ctl_main(void *arg);

#endif
