/*
 * The loop driver: one per worker thread. It owns the connection table, the
 * timer wheel, the block pool and all policy (limits, backpressure, idle
 * reaping, drain); it drives a backend through struct rw_backend_ops and is
 * called back by it with completed events. It never knows which backend runs.
 */
#ifndef RW_LOOP_H
#define RW_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "membudget.h"
#include "outq.h"
#include "stats.h"
#include "wheel.h"

struct rw_backend_ops;
struct rw_handler;

/* State shared by all workers of one server process. */
struct rw_shared {
    const struct rw_config *cfg;
    const struct rw_handler *handler;
    const struct rw_backend_ops *ops;
    _Atomic uint32_t conns_open; /* process-wide, for --max-conns */
    struct rw_mem_budget mem;    /* process-wide, for --max-memory */
    _Atomic bool stop;           /* SIGTERM/SIGINT seen: drain */
};

struct rw_loop {
    struct rw_shared *shared;
    const struct rw_config *cfg;
    const struct rw_backend_ops *ops;
    void *be; /* backend state */
    int worker_id;

    /* Table of conn_cap slots, allocated at start but touched on demand: slots below conn_hw
     * have been used (and are initialised); idle memory follows the connections seen, not
     * --max-conns x --threads. */
    struct rw_conn *conns;
    uint32_t conn_cap;
    uint32_t conn_hw;
    uint32_t *free_slots; /* stack of freed slot indexes (below conn_hw) */
    uint32_t free_count;
    uint32_t open_count; /* slots not FREE (open or closing) */

    struct rw_mem_account mem; /* this worker's share of --max-memory */
    uint32_t mem_paused;       /* connections with RW_CONN_MEM_PAUSED */
    bool mem_warned;           /* the budget was hit in this episode: said once */
    uint64_t mem_check_due_ms; /* next look at whether paused connections' peers left */
    uint64_t trim_due_ms;      /* next time unused memory is given back */

    struct rw_wheel wheel;
    struct rw_block_pool pool;
    struct rw_conn *dirty_head;
    uint32_t dirty_count; /* connections on the dirty list */

    int listen_fds[RW_LISTEN_MAX]; /* one per --listen address, all in SO_REUSEPORT groups */
    uint32_t listen_count;
    int wake_fd; /* eventfd: the main thread wakes us for stop */
    bool accepting;
    uint64_t accept_resume_ms; /* 0: no backoff pending */
    bool draining;
    uint64_t drain_deadline_ms;
    bool force_closed;
    bool sockopt_warned; /* a setsockopt on an accepted socket failed: said once */
    uint64_t now_ms;
    uint64_t sweep_next_ms; /* next liveness sweep (sweep_dead_conns) */
    uint32_t sweep_cursor;  /* slot it starts from */
    /* Zero-copy replies: the receive buffer being parsed (NULL outside rw__conn_on_data_buf or
     * when the backend lends none), and the smallest reply sent from it by reference. */
    const struct rw_rxbuf *rx_cur;
    uint32_t zc_min_bytes;
    bool clock_fresh; /* now_ms was read since the backend's wait returned */

    struct rw_stats stats;
};

/*
 * Allocate the table, wheel and pool, start the backend; do not accept yet.
 * 0 or -errno (logs nothing).
 */
int rw__loop_init(struct rw_loop *loop, struct rw_shared *shared, int worker_id,
                  const int *listen_fds, uint32_t listen_count);
/*
 * Start accepting (unless stop is already set), then run until drained after
 * a stop request. 0 or -errno on a fatal backend failure.
 */
int rw__loop_run(struct rw_loop *loop);
void rw__loop_destroy(struct rw_loop *loop);

uint64_t rw__now_ms(void);

/* ---- called by backends, from inside ops->wait() only ---- */

/* A new connection (fd non-blocking, CLOEXEC); the core adopts or closes it. */
void rw__loop_on_accept(struct rw_loop *loop, int fd);
/* Accepting failed with err (negative errno); accepting is stopped, core backs off. */
void rw__loop_on_accept_error(struct rw_loop *loop, int err);
/* The wake eventfd fired. */
void rw__loop_on_wake(struct rw_loop *loop);

/* Bytes received; data valid only during the call. */
void rw__conn_on_data(struct rw_conn *conn, const uint8_t *data, size_t len);

/*
 * A receive buffer a backend can lend to replies (zero-copy replies): bytes
 * [base, base + len) stay unchanged while held. hold(owner, id) asks for one
 * more hold and may refuse (the backend runs low on buffers: the reply is
 * copied); release(owner, id) drops one. The backend keeps its own reference
 * for the duration of rw__conn_on_data_buf.
 */
struct rw_rxbuf {
    const uint8_t *base;
    size_t len;
    void *owner;
    uint32_t id;
    bool (*hold)(void *owner, uint32_t id);
    void (*release)(void *owner, uint32_t id);
};
/* As rw__conn_on_data, with the buffer data lies in (may be NULL: no lending). */
void rw__conn_on_data_buf(struct rw_conn *conn, const uint8_t *data, size_t len,
                          const struct rw_rxbuf *buf);
/* recv returned 0. */
void rw__conn_on_eof(struct rw_conn *conn);
/* An asynchronous send completed: res > 0 bytes, or negative errno. */
void rw__conn_on_sent(struct rw_conn *conn, int res);
/* recv failed (negative errno other than EAGAIN/ENOBUFS). */
void rw__conn_on_error(struct rw_conn *conn, int err);
/* The socket can take more output (readiness backends). */
void rw__conn_on_writable(struct rw_conn *conn);
/* The backend has closed the fd and holds no operation of this connection. */
void rw__conn_on_released(struct rw_conn *conn);

/* Is this (index, generation) still the live connection? Stale events are dropped. */
static inline struct rw_conn *rw__loop_conn_lookup(struct rw_loop *loop, uint32_t index,
                                                   uint32_t generation)
{
    if (index >= loop->conn_hw)
        return 0;
    struct rw_conn *c = &loop->conns[index];
    return (c->generation == generation && c->state != RW_CONN_FREE) ? c : 0;
}

#endif
