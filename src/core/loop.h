/*
 * The loop driver: one per worker thread. It owns the connection table, the
 * timer wheel, the block pool and all policy (limits, backpressure, idle
 * reaping, drain); it drives a backend through struct rw_backend_ops and is
 * called back by it with completed events (backend.h). It never knows which
 * backend runs. Backends do not include this header: struct rw_loop's layout
 * is the core's alone.
 */
#ifndef RW_LOOP_H
#define RW_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "options.h"
#include "conn.h"
#include "membudget.h"
#include "outq.h"
#include "stats.h"
#include "wheel.h"

struct rw_backend_ops;
struct rw_handler;
struct rw_rxbuf;

/* State shared by all workers of one server process. */
struct rw_shared {
    const struct rw_options *cfg;
    const struct rw_handler *handler;
    void *ctx; /* rw_server_start's, for rw_conn_server_ctx */
    const struct rw_backend_ops *ops;
    _Atomic uint32_t conns_open; /* process-wide, for --max-conns */
    struct rw_mem_budget mem;    /* process-wide, for --max-memory */
    _Atomic bool stop;           /* rw_server_stop: drain */
};

struct rw_loop {
    struct rw_shared *shared;
    const struct rw_options *cfg;
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
    int wake_fd; /* eventfd (the server's, not closed here): rw_server_stop wakes us */
    bool accepting;
    uint64_t accept_resume_ms; /* 0: no backoff pending */
    bool draining;
    uint64_t drain_deadline_ms;
    bool force_closed;
    bool sockopt_warned; /* a setsockopt on an accepted socket failed: said once */
    uint64_t now_ms;
    uint64_t sweep_next_ms; /* next liveness sweep (upkeep.c) */
    uint32_t sweep_cursor;  /* slot it starts from */
    /* Zero-copy replies: the receive buffer being parsed (NULL outside rw__conn_on_data_buf or
     * when the backend lends none), and the smallest reply sent from it by reference. */
    const struct rw_rxbuf *rx_cur;
    /* The connection whose frames are being delivered (NULL outside), and the first error
     * its on_frame returned: the handler's errors are told from the reassembler's. */
    struct rw_conn *frame_conn;
    int handler_rc;
    uint32_t zc_min_bytes;
    bool clock_fresh; /* now_ms was read since the backend's wait returned */
    /* Before this, nothing of a turn's periodic work (timers, upkeep, sweep) can be due: a turn
     * skips it and waits until then (0: the next turn does it all). */
    uint64_t quiet_until_ms;

    struct rw_stats stats;
};

/*
 * Allocate the table, wheel and pool, start the backend; do not accept yet.
 * wake_fd: an eventfd the caller owns and keeps open past rw__loop_destroy.
 * 0 or -errno (logs nothing).
 */
int rw__loop_init(struct rw_loop *loop, struct rw_shared *shared, int worker_id,
                  const int *listen_fds, uint32_t listen_count, int wake_fd);
/*
 * Start accepting (unless stop is already set), then run until drained after
 * a stop request. 0 or -errno on a fatal backend failure.
 */
int rw__loop_run(struct rw_loop *loop);
void rw__loop_destroy(struct rw_loop *loop);

/* The loop's clock in ms (CLOCK_MONOTONIC_COARSE: up to rw__clock_lag_ms behind). */
uint64_t rw__now_ms(void);
uint32_t rw__clock_lag_ms(void);
/*
 * Test hook (tests/unit/test_policy.c): when set, rw__now_ms returns what it
 * returns instead of reading CLOCK_MONOTONIC, so a unit test can move the
 * loop's clock past idle, frame, linger and drain deadlines without sleeping.
 * Never set by the server (NULL: the real clock).
 */
extern uint64_t (*rw__now_ms_hook)(void);

#endif
