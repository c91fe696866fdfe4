/*
 * The backend interface: the one small seam between the core and an I/O
 * backend, and the only core header a backend includes (besides the short
 * list in tests/layers). Completion-shaped: the core asks for work through
 * struct rw_backend_ops; results come back through the rw__loop_on_* /
 * rw__conn_on_* callbacks, which backends call only from inside wait().
 * Backends own mechanics only: no policy, no allocation on the data path, no
 * logging per event. struct rw_loop stays opaque here: a backend reads what
 * it needs through the accessors below once, at init, and caches it.
 */
#ifndef RW_BACKEND_H
#define RW_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options.h"
#include "conn.h"
#include "stats.h"

struct rw_loop;

struct rw_backend_ops {
    const char *name;
    /* Create the backend for loop (its listen fds and wake fd are set). 0 or -errno. */
    int (*init)(struct rw_loop *loop, void **out_be);
    void (*destroy)(void *be);
    /* Start/stop accepting on every listen fd. stop is idempotent. */
    int (*accept_start)(void *be);
    void (*accept_stop)(void *be);
    /* A new connection: start reading. 0 or -errno (the core then closes it). */
    int (*conn_open)(void *be, struct rw_conn *conn);
    /* Backpressure: stop / restart reading. Idempotent. */
    void (*read_pause)(void *be, struct rw_conn *conn);
    void (*read_resume)(void *be, struct rw_conn *conn);
    /*
     * After read_pause: true once no receive the backend started for conn can still deliver
     * bytes, i.e. every byte it took from the socket has reached the core (the drain's proof
     * that SIOCINQ 0 means nothing is left unanswered). A backend that reads only inside its
     * wait's dispatch returns true.
     */
    bool (*read_idle)(void *be, struct rw_conn *conn);
    /*
     * Send from conn->outq without consuming it. Returns bytes sent now (> 0,
     * the core consumes them), 0 when the send is in flight or the socket is
     * full (the result comes later via on_sent / on_writable), or -errno.
     */
    int (*flush)(void *be, struct rw_conn *conn);
    /* Tear down: stop every operation, close the fd, then rw__conn_on_released
     * (possibly later). Returns true if released already (inside this call). */
    bool (*close)(void *be, struct rw_conn *conn);
    /* Submit pending work, wait up to timeout_ms (-1 forever), dispatch events. 0 or -errno. */
    int (*wait)(void *be, int timeout_ms);
};

/* ---- the registry (src/backend/registry.c): the only place both backends are named ---- */

/*
 * Pick the backend for kind. auto: uring when the probe passes, else epoll
 * (reason says why). uring: NULL when the probe fails (reason says why).
 */
const struct rw_backend_ops *rw__backend_select(enum rw_backend_kind kind, char *reason,
                                                size_t reason_bytes);
/*
 * failed (chosen for kind) could not set up every worker: the backend to
 * start again on, with why in reason, or NULL when kind promised no other.
 */
const struct rw_backend_ops *rw__backend_fallback(enum rw_backend_kind kind,
                                                  const struct rw_backend_ops *failed, char *reason,
                                                  size_t reason_bytes);
/* Does ops's setup lock memory (RLIMIT_MEMLOCK), so that its ENOMEM may mean that limit? */
bool rw__backend_locks_memory(const struct rw_backend_ops *ops);
/* --probe: what the kernel offers each backend, feature by feature. */
void rw__backend_probe_print(FILE *out);

/* ---- the loop, as a backend sees it: read once at init and cached ---- */

const struct rw_options *rw__loop_config(const struct rw_loop *loop);
int rw__loop_worker_id(const struct rw_loop *loop);
/* The listen fds (one per --listen address), *count of them; fixed for the loop's life. */
const int *rw__loop_listen_fds(const struct rw_loop *loop, uint32_t *count);
/* The eventfd the main thread writes to wake the loop (stop). */
int rw__loop_wake_fd(const struct rw_loop *loop);
/* The connection table: conn_cap slots at a fixed address for the loop's life. */
struct rw_conn *rw__loop_conns(struct rw_loop *loop);
uint32_t rw__loop_conn_cap(const struct rw_loop *loop);
/* This worker's counters (relaxed atomics; stats.h). */
struct rw_stats *rw__loop_stats(struct rw_loop *loop);
/* CLOCK_MONOTONIC ms the timeout given to ops->wait counts from (read this turn). The
 * loop's clock is coarse: it may be up to rw__loop_clock_lag_ms behind CLOCK_MONOTONIC, so
 * an absolute deadline handed to the kernel must add that much or fire before it is due. */
uint64_t rw__loop_now_ms(const struct rw_loop *loop);
uint32_t rw__loop_clock_lag_ms(const struct rw_loop *loop);
/* Zero-copy replies: replies of at least bytes may be sent from a lent rxbuf (0: never). */
void rw__loop_set_zc_min_bytes(struct rw_loop *loop, uint32_t bytes);

/*
 * Is (index, generation) still the live connection of the table conns[0..cap)?
 * Stale events are dropped. A slot never used is zeroed (FREE), so checking
 * against cap is as exact as against the table's high-water mark.
 */
static inline struct rw_conn *rw__conn_lookup(struct rw_conn *conns, uint32_t cap, uint32_t index,
                                              uint32_t generation)
{
    if (index >= cap)
        return 0;
    struct rw_conn *c = &conns[index];
    return (c->generation == generation && c->state != RW_CONN_FREE) ? c : 0;
}

/*
 * Start loading the two cache lines of conns[index] a frame touches (conn.h), ahead of its
 * event: with hundreds of connections a slot is cold by its next event (the kernel's work for
 * the others evicts it), and its first read stalls for a miss (kernel-notes/17). A prefetch
 * never faults; index is checked against cap all the same. The empty volatile asm keeps the
 * prefetches: GCC 12 at -O2 deletes a loop whose only effect is __builtin_prefetch (the uring
 * backend's loop over a wait's CQEs, which is nothing else), so they were silently gone there.
 */
static inline void rw__conn_prefetch(const struct rw_conn *conns, uint32_t cap, uint32_t index)
{
    if (index < cap) {
        const char *slot = (const char *)&conns[index];
        __builtin_prefetch(slot, 1);
        __builtin_prefetch(slot + 64, 1);
        __asm__ volatile("" : : "r"(slot));
    }
}

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
/*
 * Whether the core must hear at once of the completion of a send that takes all of conn's
 * queued output, asked as the send is prepared. False when that completion would only be
 * bookkeeping (the bytes freed and counted): the connection reads, nothing waits on its
 * output draining (no half-close, no close after replies, no drain, no lent buffers), so a
 * backend may reap the completion with the next event instead of waking for it. Anything
 * the core asks of the connection later (a flush, a pause) makes the send urgent again.
 */
bool rw__conn_send_urgent(const struct rw_conn *conn);
/* recv failed (negative errno other than EAGAIN/ENOBUFS). */
void rw__conn_on_error(struct rw_conn *conn, int err);
/* The socket can take more output (readiness backends). */
void rw__conn_on_writable(struct rw_conn *conn);
/* The backend has closed the fd and holds no operation of this connection. */
void rw__conn_on_released(struct rw_conn *conn);

#endif
