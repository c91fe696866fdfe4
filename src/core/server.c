/*
 * Process-level orchestration (see server.h). Signals are blocked in every
 * thread and taken synchronously by the main thread with sigtimedwait, so the
 * workers never run signal handlers; the main thread wakes them through each
 * loop's eventfd. Counters are read here with relaxed loads, never locked.
 */
#include "server.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rw_assert.h"
#include "backend.h"
#include "cpus.h"
#include "rw_limits.h"
#include "listener.h"
#include "framing.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "notify.h"
#include "rlimits.h"
#include "rw_build_config.h"
#include "stats.h"

struct worker {
    pthread_t thread;
    struct server *server;
    struct rw_loop loop;
    int id;
    int listen_fds[RW_LISTEN_MAX]; /* one per cfg->listen address; -1 until opened */
    int init_rc;
    int run_rc;
    bool reported;
    _Atomic pid_t tid;      /* for the main thread's reads of this worker's CPU time */
    _Atomic bool cpu_final; /* the worker stored its own CPU time as it exited */
};

struct server {
    struct rw_shared shared;
    struct worker *workers;
    unsigned count;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: start_workers saw every worker report; run_ok says whether all set up. */
    bool decided;
    bool run_ok;
    struct rw_stats_meta meta; /* version, serving backend, start time: JSON and metrics */
};

/*
 * Worker i runs on the i-th CPU of the mask it inherited from the main thread (taskset -c 4-7:
 * worker 0 on CPU 4), wrapping: pinning to CPU i outside the mask would fail with EINVAL, or
 * crowd workers onto CPUs the operator kept for something else.
 */
static void pin_to_cpu(int worker_id)
{
    cpu_set_t allowed;
    int count = rw__cpus_allowed(&allowed);
    if (count < 0)
        count = CPU_COUNT(&allowed);
    int cpu = rw__cpus_nth(&allowed, count, (unsigned)worker_id);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0)
        RW_WARN("--cpu-affinity: CPU %d: %s", cpu, strerror(rc));
}

static void report_init(struct worker *w, int rc)
{
    pthread_mutex_lock(&w->server->mu);
    w->init_rc = rc;
    w->reported = true;
    pthread_cond_broadcast(&w->server->cv);
    pthread_mutex_unlock(&w->server->mu);
}

/*
 * The start barrier: block until every worker has reported its setup. True
 * when all succeeded. A worker that accepted before its siblings finished could
 * take every descriptor RLIMIT_NOFILE allows (clients already queue on the
 * listeners) and make a sibling's eventfd/epoll/io_uring setup fail with
 * EMFILE, killing the whole server (kernel-notes/08).
 */
static bool wait_for_siblings(struct server *srv)
{
    pthread_mutex_lock(&srv->mu);
    while (!srv->decided)
        pthread_cond_wait(&srv->cv, &srv->mu);
    bool ok = srv->run_ok;
    pthread_mutex_unlock(&srv->mu);
    return ok;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rw_shared *shared = &w->server->shared;
    rw__log_set_worker(w->id);
    atomic_store(&w->tid, gettid());
    if (shared->cfg->cpu_affinity)
        pin_to_cpu(w->id);
    /* Rings are created here: SINGLE_ISSUER ties a ring to the thread that made it. */
    int rc = rw__loop_init(&w->loop, shared, w->id, w->listen_fds, shared->cfg->listen_count);
    report_init(w, rc);
    if (rc < 0)
        return NULL;
    if (!wait_for_siblings(w->server)) {
        rw__loop_destroy(&w->loop); /* a sibling failed: this one never accepts */
        return NULL;
    }
    rc = rw__loop_run(&w->loop); /* starts accepting */
    if (rc < 0) {
        RW_ERROR("%s event loop: %s", shared->ops->name, strerror(-rc));
        w->run_rc = rc;
        kill(getpid(), SIGTERM); /* the main thread drains the other workers */
    }
    rw__loop_destroy(&w->loop);
    /* After the join the thread's clock is gone: leave the final figure behind. */
    (void)rw__stats_thread_cpu(&w->loop.stats, pthread_self(), gettid());
    atomic_store(&w->cpu_final, true);
    return NULL;
}

/*
 * One SO_REUSEPORT group per address: every worker gets a listener on each (port 0: the port the
 * first worker's bind picked, so the group shares it).
 */
static int open_address(struct server *srv, uint32_t a)
{
    const struct rw_config *cfg = srv->shared.cfg;
    const struct rw_listen *l = &cfg->listen[a];
    bool v6only = !cfg->ipv6_dual_stack;
    char what[160];
    bool group = srv->count > 1;
    const void *sa = &l->addr;
    in_port_t port = l->addr.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                                   : ((const struct sockaddr_in *)sa)->sin_port;
    bool ephemeral = port == 0;
    if (group && !ephemeral) {
        /* SO_REUSEPORT would let us join another process's group: bind alone first. */
        int fd = rw__listener_open((const struct sockaddr *)&l->addr, l->addr_len, 1, false, v6only,
                                   what, sizeof(what));
        if (fd < 0) {
            RW_ERROR("--listen %s: %s: %s", l->text, what, strerror(-fd));
            return -1;
        }
        close(fd);
    }
    struct sockaddr_storage bound = l->addr;
    socklen_t bound_len = l->addr_len;
    for (unsigned i = 0; i < srv->count; i++) {
        int fd = rw__listener_open((const struct sockaddr *)&bound, bound_len, cfg->backlog, group,
                                   v6only, what, sizeof(what));
        if (fd < 0) {
            RW_ERROR("--listen %s: %s: %s", l->text, what, strerror(-fd));
            return -1;
        }
        srv->workers[i].listen_fds[a] = fd;
        if (i == 0 && rw__listener_bound(fd, &bound, &bound_len) < 0) {
            RW_ERROR("getsockname: %s", strerror(errno));
            return -1;
        }
    }
    return 0;
}

static int open_listeners(struct server *srv)
{
    const struct rw_config *cfg = srv->shared.cfg;
    int somaxconn = rw__somaxconn();
    if (somaxconn > 0 && cfg->backlog > (uint32_t)somaxconn)
        RW_WARN("--backlog %u exceeds net.core.somaxconn (%d): the kernel clamps it; raise it with "
                "sysctl -w net.core.somaxconn=%u",
                cfg->backlog, somaxconn, cfg->backlog);
    for (uint32_t a = 0; a < cfg->listen_count; a++)
        if (open_address(srv, a) < 0)
            return -1;
    return 0;
}

static void close_listeners(struct server *srv)
{
    for (unsigned i = 0; i < srv->count; i++)
        for (uint32_t a = 0; a < RW_LISTEN_MAX; a++)
            if (srv->workers[i].listen_fds[a] >= 0)
                close(srv->workers[i].listen_fds[a]);
}

/* "127.0.0.1:7000 [::1]:7001": every bound address, in --listen order (port 0 resolved). */
static void format_bound(const struct server *srv, char *buf, size_t buf_bytes)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t a = 0; a < srv->shared.cfg->listen_count && used < buf_bytes; a++) {
        struct sockaddr_storage bound;
        socklen_t bound_len;
        char text[RW_ADDR_TEXT_MAX] = "?";
        if (rw__listener_bound(srv->workers[0].listen_fds[a], &bound, &bound_len) == 0)
            rw__format_addr((struct sockaddr *)&bound, text, sizeof(text));
        int n = snprintf(buf + used, buf_bytes - used, "%s%s", a ? " " : "", text);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static void stats_collect(struct server *srv, struct rw_stats *total, struct rw_stats **per)
{
    for (unsigned i = 0; i < srv->count; i++) {
        struct worker *w = &srv->workers[i];
        per[i] = &w->loop.stats;
        if (!atomic_load(&w->cpu_final))
            (void)rw__stats_thread_cpu(per[i], w->thread, atomic_load(&w->tid));
    }
    rw__stats_sum(total, per, srv->count);
}

/* The metrics thread's view (metrics.h): the same relaxed reads as a stats line. */
static unsigned metrics_collect(void *ctx, struct rw_stats *total, struct rw_stats **per)
{
    struct server *srv = ctx;
    stats_collect(srv, total, per);
    return srv->count;
}

enum stats_to_log {
    STATS_LOG_NONE,  /* --stats-json only */
    STATS_LOG_TOTAL, /* --stats-interval: one line */
    STATS_LOG_ALL,   /* SIGUSR1: a line per worker (when several), then the total */
};

static void stats_write_json(struct server *srv, const struct rw_stats *total,
                             struct rw_stats *const *per)
{
    const char *path = srv->shared.cfg->stats_json_path;
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f || rw__stats_write_json(&srv->meta, total, srv->count, per, f) < 0 || fclose(f) != 0 ||
        rename(tmp, path) < 0)
        RW_WARN("--stats-json %s: %s", path, strerror(errno));
}

static void stats_report(struct server *srv, enum stats_to_log to_log)
{
    struct rw_stats total;
    struct rw_stats *per[RW_THREADS_MAX];
    stats_collect(srv, &total, per);
    /* JSON first: once a stats line is in the log, the file holds the same counters. */
    stats_write_json(srv, &total, per);
    char line[2048];
    /* The total comes last, so a reader of the log can take the last stats line as the total. */
    if (to_log == STATS_LOG_ALL && srv->count > 1) {
        for (unsigned i = 0; i < srv->count; i++) {
            rw__stats_format_line(per[i], (int)i, line, sizeof(line));
            rw__log(RW_LOG_INFO, "%s", line);
        }
    }
    if (to_log != STATS_LOG_NONE) {
        rw__stats_format_line(&total, -1, line, sizeof(line));
        rw__log(RW_LOG_INFO, "%s", line);
    }
}

/*
 * Start every worker and wait until each has set up its loop; only then let
 * them run (and accept). 0, or the first -errno, and then no worker accepts.
 * quiet: a failure may still be rescued by the epoll fallback, so warn.
 */
static int start_workers(struct server *srv, bool quiet)
{
    unsigned started = 0;
    int failed = 0;
    pthread_mutex_lock(&srv->mu);
    srv->decided = false;
    pthread_mutex_unlock(&srv->mu);
    for (; started < srv->count; started++) {
        struct worker *w = &srv->workers[started];
        w->reported = false;
        w->init_rc = 0;
        w->run_rc = 0;
        atomic_store(&w->cpu_final, false);
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            RW_ERROR("pthread_create: %s", strerror(rc));
            failed = -rc;
            break;
        }
    }
    pthread_mutex_lock(&srv->mu);
    for (unsigned i = 0; i < started; i++) {
        while (!srv->workers[i].reported)
            pthread_cond_wait(&srv->cv, &srv->mu);
        if (srv->workers[i].init_rc < 0 && !failed) {
            failed = srv->workers[i].init_rc;
            char why[512];
            rw__describe_setup_error(srv->shared.cfg, srv->shared.ops, failed, why, sizeof(why));
            if (quiet && !rw__is_fd_limit(failed))
                RW_WARN("worker %u: %s setup: %s", i, srv->shared.ops->name, why);
            else
                RW_ERROR("worker %u: %s setup: %s", i, srv->shared.ops->name, why);
        }
    }
    srv->decided = true;
    srv->run_ok = failed == 0;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    srv->count = started; /* only these are joined */
    return failed;
}

static void stop_workers(struct server *srv)
{
    atomic_store_explicit(&srv->shared.stop, true, memory_order_release);
    for (unsigned i = 0; i < srv->count; i++) {
        struct worker *w = &srv->workers[i];
        uint64_t one = 1;
        if (w->init_rc == 0 && srv->run_ok) /* else it never ran its loop, or is gone */
            (void)!write(w->loop.wake_fd, &one, sizeof(one));
    }
    for (unsigned i = 0; i < srv->count; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

static void wait_for_signals(struct server *srv, const sigset_t *set)
{
    uint64_t interval = srv->shared.cfg->stats_interval_ms;
    for (;;) {
        siginfo_t info;
        int sig;
        if (interval) {
            struct timespec ts = {.tv_sec = (time_t)(interval / 1000),
                                  .tv_nsec = (long)(interval % 1000) * 1000000L};
            sig = sigtimedwait(set, &info, &ts);
        } else {
            sig = sigwaitinfo(set, &info);
        }
        if (sig == SIGTERM || sig == SIGINT) {
            RW_INFO("%s: draining (up to %llu ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
                    (unsigned long long)srv->shared.cfg->drain_timeout_ms);
            return;
        }
        if (sig == SIGHUP)
            RW_INFO("SIGHUP: ignored (ringwire has no log files to reopen)");
        else if (sig == SIGUSR1)
            stats_report(srv, STATS_LOG_ALL);
        else if (sig < 0 && errno == EAGAIN)
            stats_report(srv, STATS_LOG_TOTAL);
    }
}

int rw__server_run(const struct rw_config *cfg, const struct rw_handler *handler)
{
    rw__fit_nofile(cfg); /* before anything opens a descriptor that would count against it */
    char reason[512];
    const struct rw_backend_ops *ops = rw__backend_select(cfg->backend, reason, sizeof(reason));
    if (!ops) {
        RW_ERROR("io_uring unavailable: %s", reason);
        return 1;
    }
    RW_INFO("backend %s: %s", ops->name, reason);

    signal(SIGPIPE, SIG_IGN); /* belt and braces: sends also pass MSG_NOSIGNAL */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    /* SIGHUP's default action would kill us at once, with no drain (terminal hangup, reloads). */
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by every worker */

    struct server srv = {.count = cfg->threads};
    srv.meta = (struct rw_stats_meta){RW_VERSION, ops->name, rw__stats_mono_ns()};
    srv.shared.cfg = cfg;
    srv.shared.handler = handler;
    srv.shared.ops = ops;
    rw__mem_budget_init(&srv.shared.mem, cfg->max_memory_bytes);
    pthread_mutex_init(&srv.mu, NULL);
    pthread_cond_init(&srv.cv, NULL);
    srv.workers = calloc(srv.count, sizeof(*srv.workers));
    if (!srv.workers) {
        RW_ERROR("allocating %u workers: %s", srv.count, strerror(ENOMEM));
        return 1;
    }
    int exit_code = 1;
    for (unsigned i = 0; i < srv.count; i++) {
        srv.workers[i].server = &srv;
        srv.workers[i].id = (int)i;
        for (uint32_t a = 0; a < RW_LISTEN_MAX; a++)
            srv.workers[i].listen_fds[a] = -1;
    }
    if (open_listeners(&srv) < 0)
        goto out_listeners;
    char fallback_why[128];
    const struct rw_backend_ops *fallback =
        rw__backend_fallback(cfg->backend, srv.shared.ops, fallback_why, sizeof(fallback_why));
    bool may_fall_back = fallback != NULL;
    int rc = start_workers(&srv, may_fall_back);
    if (rc < 0) {
        stop_workers(&srv);
        /* Out of descriptors is not io_uring's fault: epoll would need them just the same. */
        if (!may_fall_back || rw__is_fd_limit(rc))
            goto out_listeners;
        /* auto promised a working server (registry.c): start again over the same listeners. */
        RW_WARN("backend %s", fallback_why);
        srv.shared.ops = fallback;
        srv.count = cfg->threads;
        atomic_store_explicit(&srv.shared.stop, false, memory_order_relaxed);
        if (start_workers(&srv, false) < 0) {
            stop_workers(&srv);
            goto out_listeners;
        }
    }
    char addr_text[RW_LISTEN_MAX * (RW_ADDR_TEXT_MAX + 1)];
    format_bound(&srv, addr_text, sizeof(addr_text));
    srv.meta.backend = srv.shared.ops->name; /* auto may have fallen back to epoll */
    struct rw_metrics *metrics = NULL;
    struct rw_metrics_source msrc = {metrics_collect, &srv, &srv.meta};
    if (cfg->metrics && rw__metrics_start(&metrics, (const struct sockaddr *)&cfg->metrics_addr,
                                          cfg->metrics_addr_len, &msrc) < 0) {
        stop_workers(&srv);
        goto out_listeners;
    }
    char framing[112];
    RW_INFO("listening on %s backend=%s threads=%u max-conns=%u max-frame=%u %s", addr_text,
            srv.shared.ops->name, srv.count, cfg->max_conns, cfg->max_frame_bytes,
            rw__framing_describe(&cfg->framing, framing, sizeof(framing)));
    /* Every worker has its loop and listener set up: tell systemd (Type=notify). */
    int notified = rw__notifyf("READY=1\nSTATUS=listening on %s backend=%s threads=%u", addr_text,
                               srv.shared.ops->name, srv.count);
    if (notified < 0)
        RW_WARN("sd_notify READY=1 to $NOTIFY_SOCKET: %s", strerror(-notified));

    wait_for_signals(&srv, &set);
    (void)rw__notify("STOPPING=1\nSTATUS=draining");
    rw__metrics_stop(metrics); /* before the join: it reads the workers' CPU clocks */
    stop_workers(&srv);
    exit_code = 0;
    for (unsigned i = 0; i < srv.count; i++)
        if (srv.workers[i].run_rc < 0)
            exit_code = 1;
    stats_report(&srv, rw__log_enabled(RW_LOG_DEBUG) ? STATS_LOG_ALL : STATS_LOG_NONE);
    RW_INFO("stopped");

out_listeners:
    close_listeners(&srv);
    free(srv.workers);
    return exit_code;
}
