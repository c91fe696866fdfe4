/*
 * Internal to the core's event loop: what its parts share. The loop driver
 * (loop.c), the connection policy (conn.c, conn_proxy.c) and the upkeep
 * (upkeep.c) all work on struct rw_loop (loop.h) and struct rw_conn
 * (conn.h); nothing outside src/core/{loop,drain,conn,conn_api,conn_proxy,conn_timer,upkeep}.c
 * includes this.
 */
#ifndef RW_CONN_POLICY_H
#define RW_CONN_POLICY_H

#include <stdint.h>
#include <sys/types.h>

#include <ringwire/ringwire.h>

#include "conn.h"
#include "loop.h"
#include "rw_limits.h"
#include "stats.h"

#define NO_REASON RW_STAT_COUNT
/* Either reason to stop reading; reading resumes once neither holds. */
#define READ_PAUSE_FLAGS (RW_CONN_READ_PAUSED | RW_CONN_MEM_PAUSED | RW_CONN_DRAIN_PAUSED)

static inline uint64_t loop_now(struct rw_loop *loop)
{
    loop->now_ms = rw__now_ms();
    return loop->now_ms;
}

/*
 * The clock for events a backend reports from one wait: read once, at the
 * first event after the wait returned, not once per event (two reads a frame
 * were ~1.5% of the server's samples at 512 connections; kernel-notes/17).
 * One batch of completions is handled within microseconds.
 */
static inline uint64_t loop_now_batch(struct rw_loop *loop)
{
    if (!loop->clock_fresh) {
        loop->clock_fresh = true;
        return loop_now(loop);
    }
    return loop->now_ms;
}

/* ---- the connection policy (conn.c) ---- */

/* Arm the timer if the deadline moved earlier; later deadlines are found lazily on expiry. */
void rw__conn_timer_update(struct rw_conn *c);
/* Start closing (reason counted unless NO_REASON); the slot is freed when the backend
 * releases it. Do not touch c after. */
void rw__conn_close(struct rw_conn *c, enum rw_stat reason);
/* Stop reading for reason `why` (one of READ_PAUSE_FLAGS); the backend hears of the first. */
void rw__conn_pause(struct rw_conn *c, uint16_t why);
/* Drop the reasons in `why`; reading resumes once no reason is left. */
void rw__conn_resume(struct rw_conn *c, uint16_t why);
/*
 * Close c once its queued replies went out (FIN, linger, close), ignoring further input;
 * on_close gets why (a protocol or handler error counts as closed_protocol). err: the cause,
 * for the debug log (0: rw_conn_close). Must not run inside c's frame delivery.
 */
void rw__conn_close_after_replies(struct rw_conn *c, enum rw_close_reason why, int err);
/*
 * c is the application's now (accepted, its PROXY header read): on_open. False when on_open
 * refused it (closed, no on_close owed) or called rw_conn_close; c may be gone then.
 */
bool rw__conn_app_open(struct rw_conn *c);
/* Hand c's queued replies to the backend until it takes no more; may close c. */
void rw__conn_flush(struct rw_conn *c);
/* The wheel's callback for a connection's timer (ctx: the loop). */
void rw__conn_on_timer(void *ctx, struct rw_timer *t);
/* --proxy-protocol (conn_proxy.c): bytes of data the header took, or -1 after closing c. */
ssize_t rw__conn_proxy_header(struct rw_conn *c, const uint8_t *data, size_t len);

/* ---- the loop driver (loop.c) ---- */

/* Flush every connection on the dirty list (end of the turn, or early: rw__loop_mark_dirty). */
void rw__loop_flush_dirty(struct rw_loop *loop);

/*
 * c has replies to send: flush it with the others at the end of the turn, so
 * a connection's replies from several reads leave in one send. A busy turn
 * (hundreds of ready connections after a stall) would otherwise hold one
 * output block per connection until the turn ends, and the pool's high-water
 * mark -- resident memory -- would creep up with the worst stall seen; so
 * once RW_DIRTY_FLUSH_MAX connections wait, they are flushed now. Callers do
 * not touch c after this (the flush may close it). Nothing a flush calls
 * marks a connection dirty, so this does not recurse.
 */
static inline void rw__loop_mark_dirty(struct rw_conn *c)
{
    struct rw_loop *loop = c->loop;
    if (c->flags & RW_CONN_DIRTY)
        return;
    c->flags |= RW_CONN_DIRTY;
    c->dirty_next = loop->dirty_head;
    loop->dirty_head = c;
    if (++loop->dirty_count >= RW_DIRTY_FLUSH_MAX) {
        rw__stat_add(&loop->stats, RW_STAT_EARLY_FLUSHES, 1);
        rw__loop_flush_dirty(loop);
    }
}

/* ---- the drain (drain.c) ---- */

/* SIGTERM: stop accepting, start the --drain-timeout clock. */
void rw__loop_begin_drain(struct rw_loop *loop);
/* A draining turn: close quiet connections, or all at the deadline. False once none is left. */
bool rw__loop_drain_step(struct rw_loop *loop, uint64_t now);

/* ---- upkeep (upkeep.c) ---- */

/* Once a full turn (loop_quiet): the memory budget and giving memory back. */
void rw__loop_upkeep(struct rw_loop *loop);
/* Once a full turn: the liveness sweep (at most once per RW_SWEEP_INTERVAL_MS). */
void rw__loop_sweep_dead(struct rw_loop *loop);
/* Is there memory a trim could give back (so an idle loop should wake for it)? */
bool rw__loop_trim_pending(const struct rw_loop *loop);
/* The kernel's TCP state of c's socket (TCP_INFO: TCP_ESTABLISHED, TCP_CLOSE...), or -1. */
int rw__conn_tcp_state(const struct rw_conn *c);

#endif
