/*
 * The loop driver: one per worker thread. Setup and teardown, the turns
 * (wait on the backend, timers, upkeep, the dirty flush), accept with the
 * --max-conns limit and the backoff after accept failures, the wake eventfd,
 * and the SIGTERM drain's turns (which connections it closes: drain.c). What a
 * connection's events mean is the connection policy's (conn.c); memory and
 * liveness upkeep is upkeep.c's.
 */
#include "conn_policy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rw_assert.h"
#include "lazymem.h"
#include "backend.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

uint64_t (*rw__now_ms_hook)(void);

/*
 * CLOCK_MONOTONIC_COARSE: the vDSO returns the time of the last tick without
 * reading the TSC, which cost ~80 ns a read in this project's VM and was 1.3%
 * of the server's samples in open loop at one or two reads a loop turn
 * (kernel-notes/17). Every deadline here is in ms and at least a wheel tick
 * away, so a clock up to one tick behind only makes a deadline fire up to a
 * tick late; rw__clock_lag_ms says by how much, for a backend that hands an
 * absolute deadline to the kernel's own (fine) clock.
 */
uint64_t rw__now_ms(void)
{
    if (rw__now_ms_hook)
        return rw__now_ms_hook();
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t rw__clock_lag_ms(void)
{
    struct timespec res;
    if (rw__now_ms_hook || clock_getres(CLOCK_MONOTONIC_COARSE, &res) != 0)
        return 0;
    /* Rounded up, plus the ms that the truncation to whole ms in rw__now_ms loses. */
    return (uint32_t)(res.tv_sec * 1000 + (res.tv_nsec + 999999) / 1000000) + 1;
}

/* ---- the dirty list: one flush per connection per turn ---- */

void rw__loop_flush_dirty(struct rw_loop *loop)
{
    struct rw_conn *list = loop->dirty_head;
    loop->dirty_head = NULL;
    loop->dirty_count = 0;
    while (list) {
        struct rw_conn *c = list;
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= (uint16_t)~RW_CONN_DIRTY;
        if (c->state == RW_CONN_OPEN)
            rw__conn_flush(c);
    }
}

/* ---- accept and wake: callbacks from backends (backend.h) ---- */

static int set_tcp_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

/*
 * Per-connection socket policy, set on every accepted socket. Vanished peers
 * (no FIN, no RST ever comes) are the kernel's to detect: TCP_USER_TIMEOUT
 * bounds how long sent data may stay unacknowledged, keepalive probes an idle
 * peer; either makes the next recv/send fail (ETIMEDOUT) and the connection is
 * closed and counted as reaped_tcp_timeout (kernel-notes/11). Options left at
 * 0 are not touched, so the kernel's defaults (or sysctls) apply. Values were
 * validated by the options (cli.c), so a failure means a kernel without the option:
 * logged once per worker, the connection is served anyway.
 */
static void conn_set_sockopts(struct rw_loop *loop, int fd)
{
    const struct rw_options *cfg = loop->cfg;
    /* Replies are batched per loop turn by us; Nagle would only add delay. */
    (void)set_tcp_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    int rc = 0;
    const char *what = NULL;
    if (cfg->tcp_user_timeout_ms) {
        what = "TCP_USER_TIMEOUT";
        rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)cfg->tcp_user_timeout_ms);
    }
    if (rc == 0 && cfg->keepalive_idle_s) {
        what = "SO_KEEPALIVE";
        /* Schedule first, then switch it on, so the first probe follows the new idle time. */
        uint32_t intvl_s = 0, probes = 0;
        rw__keepalive_schedule(cfg->keepalive_idle_s, &intvl_s, &probes);
        rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)cfg->keepalive_idle_s);
        if (rc == 0)
            rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)intvl_s);
        if (rc == 0)
            rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)probes);
        if (rc == 0)
            rc = set_tcp_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    }
    if (rc < 0 && !loop->sockopt_warned) {
        loop->sockopt_warned = true;
        RW_WARN("setsockopt %s on an accepted socket: %s; vanished peers are left to "
                "--idle-timeout",
                what, strerror(-rc));
    }
}

void rw__loop_on_accept(struct rw_loop *loop, int fd)
{
    RW_ASSERT(fd >= 0);
    uint32_t open_before =
        atomic_fetch_add_explicit(&loop->shared->conns_open, 1, memory_order_relaxed);
    if (loop->draining || open_before >= loop->cfg->max_conns ||
        (loop->free_count == 0 && loop->conn_hw == loop->conn_cap)) {
        atomic_fetch_sub_explicit(&loop->shared->conns_open, 1, memory_order_relaxed);
        /* Counted before the close: a peer that sees the close and asks for the stats must
         * find it counted (test_limits_max_conns once read rejected_limit=0 under load). */
        if (!loop->draining)
            rw__stat_add(&loop->stats, RW_STAT_REJECTED_LIMIT, 1);
        close(fd);
        return;
    }
    struct rw_conn *c;
    if (loop->free_count > 0) {
        c = &loop->conns[loop->free_slots[--loop->free_count]];
    } else {
        /* First use of a slot: its page of the table is touched only now. */
        c = &loop->conns[loop->conn_hw];
        c->loop = loop;
        c->index = loop->conn_hw++;
        c->fd = -1;
    }
    RW_ASSERT(c->state == RW_CONN_FREE);
    c->generation++;
    c->state = RW_CONN_OPEN;
    c->flags &= RW_CONN_DIRTY;
    c->fd = fd;
    c->last_active_ms = loop_now_batch(loop);
    c->frame_started_ms = 0;
    c->linger_until_ms = 0;
    memset(&c->client, 0, sizeof(c->client));
    c->opened = false; /* the application's once rw__conn_app_open says so */
    c->user = NULL;
    c->why = RW_CLOSE_PEER;
    if (loop->cfg->proxy_protocol) {
        c->flags |= RW_CONN_PROXY_WAIT;
        c->frame_started_ms = c->last_active_ms; /* the header's deadline counts from here */
    }
    rw__timer_init(&c->timer);
    memset(&c->reasm, 0, sizeof(c->reasm));
    rw__outq_init(&c->outq);
    loop->open_count++;
    loop->quiet_until_ms = 0; /* the sweep, and its timer: the next turn is a full one */
    rw__stat_add(&loop->stats, RW_STAT_ACCEPTED, 1);

    conn_set_sockopts(loop, fd);
    rw__conn_timer_update(c);
    int rc = loop->ops->conn_open(loop->be, c);
    if (rc < 0) {
        char peer[RW_PEER_TEXT_MAX];
        RW_DEBUG("conn %u (%s): start reading: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
                 strerror(-rc));
        rw__conn_close(c, RW_STAT_CLOSED_ERROR);
        return;
    }
    if (!loop->cfg->proxy_protocol)
        (void)rw__conn_app_open(c); /* under --proxy-protocol: once its header is in */
}

void rw__loop_on_accept_error(struct rw_loop *loop, int err)
{
    RW_ASSERT(err < 0);
    if (loop->accepting) {
        loop->ops->accept_stop(loop->be);
        loop->accepting = false;
    }
    if (loop->draining)
        return;
    loop->accept_resume_ms = loop_now(loop) + RW_ACCEPT_BACKOFF_MS;
    loop->quiet_until_ms = 0; /* the resume is a deadline of its own */
    rw__stat_add(&loop->stats, RW_STAT_ACCEPT_BACKOFFS, 1);
    /* Warn on the first backoff of a burst, not on every retry. */
    if (rw__stat_get(&loop->stats, RW_STAT_ACCEPT_BACKOFFS) == 1 || err != -EMFILE)
        RW_WARN("accept: %s; pausing accepts for %u ms (raise RLIMIT_NOFILE / --max-conns)",
                strerror(-err), RW_ACCEPT_BACKOFF_MS);
}

void rw__loop_on_wake(struct rw_loop *loop)
{
    (void)loop; /* the run loop reads shared->stop */
}

static int loop_timeout_ms(struct rw_loop *loop)
{
    int64_t timeout = rw__wheel_timeout_ms(&loop->wheel, loop->now_ms);
    uint64_t until = UINT64_MAX;
    if (loop->accept_resume_ms)
        until = loop->accept_resume_ms;
    if (rw__loop_trim_pending(loop) && loop->trim_due_ms < until)
        until = loop->trim_due_ms;
    if (loop->mem_paused > 0 && loop->now_ms + RW_WHEEL_TICK_MS < until)
        until = loop->now_ms + RW_WHEEL_TICK_MS; /* memory freed elsewhere: look again soon */
    if (loop->open_count && loop->sweep_next_ms < until)
        until = loop->sweep_next_ms;
    if (loop->draining && !loop->force_closed && loop->drain_deadline_ms < until)
        until = loop->drain_deadline_ms;
    if (until != UINT64_MAX) {
        int64_t wait = until > loop->now_ms ? (int64_t)(until - loop->now_ms) : 0;
        if (timeout < 0 || wait < timeout)
            timeout = wait;
    }
    if (loop->draining)
        timeout = timeout < 0 || timeout > 10 ? 10 : timeout; /* re-check quiet connections */
    return timeout > INT32_MAX ? INT32_MAX : (int)timeout;
}

/*
 * A quiet turn skips the periodic work: the timers, the upkeep and the liveness sweep, and the
 * timeout's computation. The last full turn computed when the next of them falls due
 * (quiet_until_ms, at most RW_LOOP_QUIET_MAX_MS ahead); whatever could bring one earlier (a
 * timer armed, an accept, an accept failure) resets it, and memory at or near the budget, or
 * the drain, makes every turn a full one. A loaded open-loop server does about one turn a
 * frame, so this is most of the loop's own work per frame (kernel-notes/17).
 */
static bool loop_quiet(const struct rw_loop *loop, uint64_t now)
{
    return now < loop->quiet_until_ms && !loop->draining && loop->mem_paused == 0 &&
           !loop->mem_warned && rw__mem_excess(&loop->mem) == 0;
}

/* The periodic work of a full turn. False when the loop is done (drained). */
static bool loop_periodic(struct rw_loop *loop, uint64_t now)
{
    loop->quiet_until_ms = 0;
    if (loop->draining && !rw__loop_drain_step(loop, now))
        return false;
    if (!loop->accepting && !loop->draining && loop->accept_resume_ms &&
        now >= loop->accept_resume_ms) {
        loop->accept_resume_ms = 0;
        int rc = loop->ops->accept_start(loop->be);
        if (rc < 0)
            rw__loop_on_accept_error(loop, rc);
        else
            loop->accepting = true;
    }
    rw__wheel_advance(&loop->wheel, now, rw__conn_on_timer, loop);
    rw__loop_upkeep(loop);
    rw__loop_sweep_dead(loop);
    return true;
}

int rw__loop_run(struct rw_loop *loop)
{
    /*
     * Accepting starts here, not at the end of rw__loop_init: server.c runs a
     * loop only after every worker finished setup, so connections already
     * queued on the listeners cannot use up RLIMIT_NOFILE while a sibling
     * still needs descriptors for its eventfd and epoll/io_uring instance
     * (kernel-notes/08). A failure here is an accept failure: back off, retry.
     */
    if (!atomic_load_explicit(&loop->shared->stop, memory_order_acquire)) {
        int rc = loop->ops->accept_start(loop->be);
        if (rc < 0)
            rw__loop_on_accept_error(loop, rc);
        else
            loop->accepting = true;
    }
    for (;;) {
        /* The clock the completions of the last wait read (a turn's events and its periodic
         * work are microseconds apart), else a read of its own: one read a turn. */
        uint64_t now = loop_now_batch(loop);
        if (!loop->draining && atomic_load_explicit(&loop->shared->stop, memory_order_acquire))
            rw__loop_begin_drain(loop);
        if (!loop_quiet(loop, now) && !loop_periodic(loop, now))
            return 0;
        rw__loop_flush_dirty(loop);
        /* Memory held as the loop goes to sleep (gauges: a sleeping loop's stay true). */
        rw__stat_set(&loop->stats, RW_STAT_OUT_BLOCKS_LIVE, loop->pool.blocks_live);
        rw__stat_set(&loop->stats, RW_STAT_OUT_BLOCKS_CACHED, loop->pool.free_count);
        rw__stat_set(&loop->stats, RW_STAT_MEM_BYTES, loop->mem.used_bytes);
        int timeout_ms;
        if (loop->quiet_until_ms > now) {
            timeout_ms = (int)(loop->quiet_until_ms - now);
        } else {
            timeout_ms = loop_timeout_ms(loop);
            if (timeout_ms > 0)
                loop->quiet_until_ms =
                    now + (timeout_ms < (int)RW_LOOP_QUIET_MAX_MS ? (uint64_t)timeout_ms
                                                                  : RW_LOOP_QUIET_MAX_MS);
        }
        loop->clock_fresh = false;
        int rc = loop->ops->wait(loop->be, timeout_ms);
        if (rc < 0)
            return rc;
        rw__stat_add(&loop->stats, RW_STAT_LOOP_TURNS, 1);
    }
}

/* ---- the loop as a backend sees it (backend.h) ---- */

uint64_t rw__loop_now_ms(const struct rw_loop *loop)
{
    return loop->now_ms;
}

uint32_t rw__loop_clock_lag_ms(const struct rw_loop *loop)
{
    (void)loop;
    return rw__clock_lag_ms();
}

const struct rw_options *rw__loop_config(const struct rw_loop *loop)
{
    return loop->cfg;
}

int rw__loop_worker_id(const struct rw_loop *loop)
{
    return loop->worker_id;
}

const int *rw__loop_listen_fds(const struct rw_loop *loop, uint32_t *count)
{
    *count = loop->listen_count;
    return loop->listen_fds;
}

int rw__loop_wake_fd(const struct rw_loop *loop)
{
    return loop->wake_fd;
}

struct rw_conn *rw__loop_conns(struct rw_loop *loop)
{
    return loop->conns;
}

uint32_t rw__loop_conn_cap(const struct rw_loop *loop)
{
    return loop->conn_cap;
}

struct rw_stats *rw__loop_stats(struct rw_loop *loop)
{
    return &loop->stats;
}

void rw__loop_set_zc_min_bytes(struct rw_loop *loop, uint32_t bytes)
{
    loop->zc_min_bytes = bytes;
}

/* ---- setup ---- */

int rw__loop_init(struct rw_loop *loop, struct rw_shared *shared, int worker_id,
                  const int *listen_fds, uint32_t listen_count, int wake_fd)
{
    RW_ASSERT(listen_count >= 1);
    RW_ASSERT(listen_count <= RW_LISTEN_MAX);
    memset(loop, 0, sizeof(*loop));
    loop->shared = shared;
    loop->cfg = shared->cfg;
    loop->ops = shared->ops;
    loop->worker_id = worker_id;
    memcpy(loop->listen_fds, listen_fds, listen_count * sizeof(*listen_fds));
    loop->listen_count = listen_count;
    loop->wake_fd = -1;
    loop->conn_cap = shared->cfg->max_conns;
    RW_ASSERT(loop->conn_cap > 0 && loop->conn_cap <= RW_CONNS_MAX);

    int rc = -ENOMEM;
    /*
     * Every worker may hold all --max-conns connections, so each gets a table that large, mapped
     * zeroed and untouched (lazymem.h; a zeroed slot is FREE), and slots are initialised on first
     * use, so resident memory follows the connections seen, not --max-conns x --threads.
     */
    loop->conns = rw__lazy_calloc(loop->conn_cap, sizeof(*loop->conns));
    loop->free_slots = rw__lazy_calloc(loop->conn_cap, sizeof(*loop->free_slots));
    if (!loop->conns || !loop->free_slots)
        goto err_free_table;
    loop->conn_hw = 0;
    loop->free_count = 0;
    rw__mem_account_init(&loop->mem, &shared->mem);
    rc = rw__wheel_init(&loop->wheel, RW_WHEEL_SLOTS, RW_WHEEL_TICK_MS, loop_now(loop));
    if (rc < 0)
        goto err_free_table;
    rw__block_pool_init(&loop->pool, RW_BLOCK_POOL_CACHE_MAX);
    loop->pool.acct = &loop->mem;
    loop->trim_due_ms = loop->now_ms + RW_TRIM_INTERVAL_MS;
    loop->wake_fd = wake_fd; /* the server's: open until rw_server_destroy (signal-safe stop) */
    rc = loop->ops->init(loop, &loop->be);
    if (rc < 0)
        goto err_wheel;
    return 0; /* not accepting yet: rw__loop_run starts it */

err_wheel:
    rw__block_pool_destroy(&loop->pool);
    rw__wheel_destroy(&loop->wheel);
    rw__mem_account_destroy(&loop->mem);
err_free_table:
    rw__lazy_free(loop->conns, loop->conn_cap, sizeof(*loop->conns));
    rw__lazy_free(loop->free_slots, loop->conn_cap, sizeof(*loop->free_slots));
    return rc;
}

void rw__loop_destroy(struct rw_loop *loop)
{
    RW_ASSERT(loop->open_count == 0);
    loop->ops->destroy(loop->be);
    rw__block_pool_destroy(&loop->pool);
    rw__wheel_destroy(&loop->wheel);
    rw__mem_account_destroy(&loop->mem);
    rw__lazy_free(loop->conns, loop->conn_cap, sizeof(*loop->conns));
    rw__lazy_free(loop->free_slots, loop->conn_cap, sizeof(*loop->free_slots));
}
