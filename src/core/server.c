/*
 * The library's server (include/ringwire/ringwire.h): rw_server_start picks
 * the backend, opens the listeners and starts one worker thread per
 * opt.threads (each its own loop, listeners, table, timers, buffers), plus,
 * with stats_interval_ms, a control thread for the periodic stats line
 * (server_stats.c) and, with metrics, the metrics thread.
 * Every thread it creates starts with every signal blocked, so the program's
 * sigwait or handlers see them; the library installs no handler and changes
 * no disposition. rw_server_stop is async-signal-safe: a flag and a write to
 * each worker's eventfd, which the server keeps open until destroy. Counters are read
 * with relaxed loads, never locked.
 * long: start, its unwinding on failure and the auto fallback read best as one sequence.
 */
#include "server_int.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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
#include "rw_build_config.h"
#include "stats.h"

/* A start failure: the first one's text is what rw_server_start returns in err. */
__attribute__((format(printf, 3, 4))) static int srv_fail(struct rw_server *srv, int err,
                                                          const char *fmt, ...)
{
    if (srv->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(srv->err, sizeof(srv->err), fmt, ap);
        va_end(ap);
    }
    return err < 0 ? err : -EIO;
}

/* strerror, or for running out of descriptors the limit with its numbers and the remedy. */
static const char *why_failed(const struct rw_server *srv, int err, char *buf, size_t bytes)
{
    if (!rw__server_is_fd_limit(err))
        return strerror(-err);
    rw__server_describe_setup_error(srv->shared.cfg, srv->shared.ops, err, buf, bytes);
    return buf;
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
static bool wait_for_siblings(struct rw_server *srv)
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
        rw__server_pin_to_cpu(w->id);
    /* Rings are created here: SINGLE_ISSUER ties a ring to the thread that made it. */
    int rc = rw__loop_init(&w->loop, shared, w->id, w->listen_fds, shared->cfg->listen_count,
                           w->wake_fd);
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
        rw_server_stop(w->server); /* the control thread drains the other workers */
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
static int open_address(struct rw_server *srv, uint32_t a)
{
    const struct rw_options *cfg = srv->shared.cfg;
    const struct rw_listen *l = &cfg->listen[a];
    char why[512];
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
            srv_fail(srv, fd, "--listen %s: %s: %s", l->text, what,
                     why_failed(srv, fd, why, sizeof(why)));
            return fd;
        }
        close(fd);
    }
    struct sockaddr_storage bound = l->addr;
    socklen_t bound_len = l->addr_len;
    for (unsigned i = 0; i < srv->count; i++) {
        int fd = rw__listener_open((const struct sockaddr *)&bound, bound_len, cfg->backlog, group,
                                   v6only, what, sizeof(what));
        if (fd < 0) {
            srv_fail(srv, fd, "--listen %s: %s: %s", l->text, what,
                     why_failed(srv, fd, why, sizeof(why)));
            return fd;
        }
        srv->workers[i].listen_fds[a] = fd;
        if (i == 0 && rw__listener_bound(fd, &bound, &bound_len) < 0)
            return srv_fail(srv, -errno, "getsockname: %s", strerror(errno));
    }
    srv->bound[a] = bound;
    srv->bound_len[a] = bound_len;
    return 0;
}

static int open_listeners(struct rw_server *srv)
{
    const struct rw_options *cfg = srv->shared.cfg;
    int somaxconn = rw__somaxconn();
    if (somaxconn > 0 && cfg->backlog > (uint32_t)somaxconn)
        RW_WARN("--backlog %u exceeds net.core.somaxconn (%d): the kernel clamps it; raise it with "
                "sysctl -w net.core.somaxconn=%u",
                cfg->backlog, somaxconn, cfg->backlog);
    for (uint32_t a = 0; a < cfg->listen_count; a++) {
        int rc = open_address(srv, a);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void close_listeners(struct rw_server *srv)
{
    for (unsigned i = 0; i < srv->count; i++)
        for (uint32_t a = 0; a < RW_LISTEN_MAX; a++)
            if (srv->workers[i].listen_fds[a] >= 0)
                close(srv->workers[i].listen_fds[a]);
}

/* "127.0.0.1:7000 [::1]:7001": every bound address, in listen order (port 0 resolved). */
static void format_bound(const struct rw_server *srv, char *buf, size_t buf_bytes)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned a = 0; a < srv->address_count && used < buf_bytes; a++) {
        char text[RW_ADDR_TEXT_MAX];
        rw__format_addr((const struct sockaddr *)&srv->bound[a], text, sizeof(text));
        int n = snprintf(buf + used, buf_bytes - used, "%s%s", a ? " " : "", text);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/*
 * Start every worker and wait until each has set up its loop; only then let
 * them run (and accept). 0, or the first -errno, and then no worker accepts.
 * quiet: a failure may still be rescued by the epoll fallback, so warn.
 */
static int start_workers(struct rw_server *srv, bool quiet)
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
            srv_fail(srv, -rc, "pthread_create: %s", strerror(rc));
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
            rw__server_describe_setup_error(srv->shared.cfg, srv->shared.ops, failed, why,
                                            sizeof(why));
            if (quiet && !rw__server_is_fd_limit(failed))
                RW_WARN("worker %u: %s setup: %s", i, srv->shared.ops->name, why);
            else
                srv_fail(srv, failed, "worker %u: %s setup: %s", i, srv->shared.ops->name, why);
        }
    }
    srv->decided = true;
    srv->run_ok = failed == 0;
    pthread_cond_broadcast(&srv->cv);
    pthread_mutex_unlock(&srv->mu);
    srv->count = started; /* only these are joined */
    return failed;
}

static void wake_workers(struct rw_server *srv)
{
    for (unsigned i = 0; i < srv->count; i++) {
        uint64_t one = 1;
        (void)!write(srv->workers[i].wake_fd, &one, sizeof(one));
    }
}

/* Tell every worker to stop (they have not accepted yet) and join them. */
static void stop_workers(struct rw_server *srv)
{
    atomic_store_explicit(&srv->shared.stop, true, memory_order_release);
    wake_workers(srv);
    for (unsigned i = 0; i < srv->count; i++)
        pthread_join(srv->workers[i].thread, NULL);
}

RW_API const char *rw_version(void)
{
    return RW_VERSION;
}

/* The options as the server runs them: the defaults rw_options_init leaves implicit. */
static int resolve_options(struct rw_server *srv, const struct rw_options *opt)
{
    srv->opt = *opt;
    if (srv->opt.listen_count == 0) {
        struct rw_listen *l = &srv->opt.listen[0];
        memset(l, 0, sizeof(*l));
        snprintf(l->text, sizeof(l->text), "%s", "127.0.0.1:7000");
        int rc = rw__parse_listen(l->text, &l->addr, &l->addr_len);
        RW_ASSERT(rc == 0);
        srv->opt.listen_count = 1;
    }
    if (srv->opt.threads == 0)
        srv->opt.threads = rw__options_default_threads();
    if (opt->stats_json_path) {
        srv->stats_json = strdup(opt->stats_json_path);
        if (!srv->stats_json)
            return srv_fail(srv, -ENOMEM, "--stats-json: %s", strerror(ENOMEM));
    }
    srv->opt.stats_json_path = srv->stats_json;
    return rw_options_check(&srv->opt, srv->err, sizeof(srv->err));
}

/* Open the listeners and start the workers (falling back to epoll where auto allows). */
static int start_serving(struct rw_server *srv)
{
    const struct rw_options *cfg = &srv->opt;
    int rc = open_listeners(srv);
    if (rc < 0)
        return rc;
    char fallback_why[128];
    const struct rw_backend_ops *fallback =
        rw__backend_fallback(cfg->backend, srv->shared.ops, fallback_why, sizeof(fallback_why));
    bool may_fall_back = fallback != NULL;
    rc = start_workers(srv, may_fall_back);
    if (rc == 0)
        return 0;
    stop_workers(srv);
    /* Out of descriptors is not io_uring's fault: epoll would need them just the same. */
    if (!may_fall_back || rw__server_is_fd_limit(rc))
        return srv_fail(srv, rc, "%s setup failed: %s", srv->shared.ops->name, strerror(-rc));
    /* auto promised a working server (registry.c): start again over the same listeners. */
    RW_WARN("backend %s", fallback_why);
    srv->shared.ops = fallback;
    srv->count = cfg->threads;
    atomic_store_explicit(&srv->shared.stop, false, memory_order_relaxed);
    rc = start_workers(srv, false);
    if (rc < 0)
        stop_workers(srv);
    return rc;
}

static void server_free(struct rw_server *srv)
{
    close_listeners(srv);
    if (srv->stop_fd >= 0)
        close(srv->stop_fd);
    for (unsigned i = 0; srv->workers && i < srv->alloc_count; i++)
        if (srv->workers[i].wake_fd >= 0)
            close(srv->workers[i].wake_fd);
    pthread_mutex_destroy(&srv->mu);
    pthread_cond_destroy(&srv->cv);
    free(srv->workers);
    free(srv->stats_json);
    free(srv);
}

RW_API int rw_server_start(const struct rw_options *opt, const struct rw_handler *handler,
                           void *ctx, struct rw_server **out, char *err, size_t err_bytes)
{
    RW_ASSERT(opt != NULL && handler != NULL && handler->on_frame != NULL && out != NULL);
    *out = NULL;
    if (err && err_bytes)
        err[0] = '\0';
    struct rw_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        if (err && err_bytes)
            snprintf(err, err_bytes, "allocating the server: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    srv->stop_fd = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_cond_init(&srv->cv, NULL);
    /* Every thread made here inherits this mask; the caller's comes back before we return. */
    sigset_t all, caller;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &caller);
    int rc = resolve_options(srv, opt);
    const struct rw_options *cfg = &srv->opt;
    if (rc < 0)
        goto fail;
    rw__log_set_level(cfg->log_level);
    rw__log_set_format(cfg->log_format, cfg->log_timestamps);
    rw__server_fit_nofile(cfg); /* before anything opens a descriptor that would count against it */
    char reason[512];
    const struct rw_backend_ops *ops = rw__backend_select(cfg->backend, reason, sizeof(reason));
    if (!ops) {
        rc = srv_fail(srv, -ENOSYS, "io_uring unavailable: %s", reason);
        goto fail;
    }
    RW_INFO("backend %s: %s", ops->name, reason);
    srv->count = cfg->threads;
    srv->address_count = cfg->listen_count;
    srv->meta = (struct rw_stats_meta){RW_VERSION, ops->name, rw__stats_mono_ns()};
    srv->shared.cfg = cfg;
    srv->shared.handler = handler;
    srv->shared.ctx = ctx;
    srv->shared.ops = ops;
    rw__mem_budget_init(&srv->shared.mem, cfg->max_memory_bytes);
    srv->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    srv->workers = calloc(srv->count, sizeof(*srv->workers));
    if (srv->stop_fd < 0 || !srv->workers) {
        rc = srv_fail(srv, srv->stop_fd < 0 ? -errno : -ENOMEM, "server setup: %s",
                      strerror(srv->stop_fd < 0 ? errno : ENOMEM));
        goto fail;
    }
    srv->alloc_count = srv->count;
    for (unsigned i = 0; i < srv->count; i++) {
        srv->workers[i].server = srv;
        srv->workers[i].id = (int)i;
        srv->workers[i].wake_fd = -1;
        for (uint32_t a = 0; a < RW_LISTEN_MAX; a++)
            srv->workers[i].listen_fds[a] = -1;
    }
    for (unsigned i = 0; i < srv->count; i++) {
        srv->workers[i].wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (srv->workers[i].wake_fd < 0) {
            char why[512];
            int e = -errno;
            rc = srv_fail(srv, e, "eventfd: %s", why_failed(srv, e, why, sizeof(why)));
            goto fail;
        }
    }
    rc = start_serving(srv);
    if (rc < 0)
        goto fail;
    char addr_text[RW_LISTEN_MAX * (RW_ADDR_TEXT_MAX + 1)];
    format_bound(srv, addr_text, sizeof(addr_text));
    srv->meta.backend = srv->shared.ops->name; /* auto may have fallen back to epoll */
    struct rw_metrics_source msrc = {rw__server_metrics_collect, srv, &srv->meta};
    if (cfg->metrics &&
        (rc = rw__metrics_start(&srv->metrics, (const struct sockaddr *)&cfg->metrics_addr,
                                cfg->metrics_addr_len, &msrc)) < 0) {
        srv_fail(srv, rc, "--metrics: %s", strerror(-rc));
        stop_workers(srv);
        goto fail;
    }
    /* The periodic stats line runs on a thread of its own, only when asked for. */
    rc = cfg->stats_interval_ms ? pthread_create(&srv->ctl_thread, NULL, rw__server_ctl_main, srv)
                                : 0;
    if (rc != 0) {
        rc = srv_fail(srv, -rc, "pthread_create: %s", strerror(rc));
        rw__metrics_stop(srv->metrics);
        stop_workers(srv);
        goto fail;
    }
    srv->ctl_started = cfg->stats_interval_ms != 0;
    pthread_sigmask(SIG_SETMASK, &caller, NULL);
    char framing[112];
    RW_INFO("listening on %s backend=%s threads=%u max-conns=%u max-frame=%u %s", addr_text,
            srv->shared.ops->name, srv->count, cfg->max_conns, cfg->max_frame_bytes,
            rw__framing_describe(&cfg->framing, framing, sizeof(framing)));
    *out = srv;
    return 0;

fail:
    pthread_sigmask(SIG_SETMASK, &caller, NULL);
    if (err && err_bytes)
        snprintf(err, err_bytes, "%s", srv->err[0] ? srv->err : strerror(-rc));
    server_free(srv);
    return rc < 0 ? rc : -EIO;
}

RW_API unsigned rw_server_address_count(const struct rw_server *srv)
{
    return srv->address_count;
}

RW_API int rw_server_address(const struct rw_server *srv, unsigned i, struct sockaddr_storage *addr,
                             socklen_t *len)
{
    if (i >= srv->address_count)
        return -ERANGE;
    *addr = srv->bound[i];
    *len = srv->bound_len[i];
    return 0;
}

RW_API uint16_t rw_server_port(const struct rw_server *srv, unsigned i)
{
    if (i >= srv->address_count)
        return 0;
    const void *sa = &srv->bound[i];
    return ntohs(srv->bound[i].ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)sa)->sin6_port
                                                     : ((const struct sockaddr_in *)sa)->sin_port);
}

RW_API const char *rw_server_backend(const struct rw_server *srv)
{
    return srv->shared.ops->name;
}

RW_API unsigned rw_server_threads(const struct rw_server *srv)
{
    return srv->count;
}

/* Async-signal-safe: atomic stores and write(2)s to eventfds open until destroy. */
RW_API void rw_server_stop(struct rw_server *srv)
{
    int saved = errno; /* a signal handler's caller must not see it change */
    atomic_store(&srv->stop_requested, true);
    atomic_store_explicit(&srv->shared.stop, true, memory_order_release);
    wake_workers(srv);
    uint64_t one = 1;
    (void)!write(srv->stop_fd, &one, sizeof(one));
    errno = saved;
}

RW_API int rw_server_wait(struct rw_server *srv)
{
    RW_ASSERT(!srv->waited);
    srv->waited = true;
    /* Until rw_server_stop (or a worker's failure, which calls it). */
    while (!atomic_load(&srv->stop_requested)) {
        struct pollfd p = {.fd = srv->stop_fd, .events = POLLIN};
        (void)poll(&p, 1, -1);
    }
    if (srv->ctl_started)
        pthread_join(srv->ctl_thread, NULL);
    rw__metrics_stop(srv->metrics); /* before the join: it reads the workers' CPU clocks */
    srv->metrics = NULL;
    atomic_store_explicit(&srv->shared.stop, true, memory_order_release);
    for (unsigned i = 0; i < srv->count; i++)
        pthread_join(srv->workers[i].thread, NULL);
    int rc = 0;
    for (unsigned i = 0; i < srv->count; i++)
        if (srv->workers[i].run_rc < 0)
            rc = -EIO;
    rw__server_stats_report(srv, rw__log_enabled(RW_LOG_DEBUG) ? STATS_LOG_ALL : STATS_LOG_NONE);
    RW_INFO("stopped");
    return rc;
}

RW_API void rw_server_destroy(struct rw_server *srv)
{
    if (!srv)
        return;
    RW_ASSERT(srv->waited);
    server_free(srv);
}
