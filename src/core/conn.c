/*
 * The connection policy: what a connection's events mean. Data in, through
 * the reassembler, into the handler; replies queued (copied, or by reference
 * into the receive buffer) and flushed once a turn; backpressure by
 * watermarks; half-close; protocol errors (answer, FIN, linger); close and
 * release (its deadlines: conn_timer.c). The loop driver
 * (loop.c) adopts connections and runs the turns; backends report through
 * the rw__conn_on_* callbacks below (backend.h).
 */
#include "conn_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ringwire/ringwire.h>

#include "rw_assert.h"
#include "backend.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

/* ---- connection lifecycle ---- */

/* Charge (or refund) the budget for how the reassembly buffer changed since it was cap_before. */
static void conn_reasm_account(struct rw_conn *c, uint32_t cap_before)
{
    uint32_t cap = c->reasm.cap;
    if (cap > cap_before)
        rw__mem_charge(&c->loop->mem, cap - cap_before);
    else if (cap < cap_before)
        rw__mem_uncharge(&c->loop->mem, cap_before - cap);
}

static void conn_reasm_reset(struct rw_conn *c)
{
    uint32_t cap_before = c->reasm.cap;
    rw__reasm_reset(&c->reasm);
    conn_reasm_account(c, cap_before);
}

/* Stop reading for reason `why` (one of READ_PAUSE_FLAGS); the backend hears of the first. */
void rw__conn_pause(struct rw_conn *c, uint16_t why)
{
    struct rw_loop *loop = c->loop;
    bool reading = !(c->flags & READ_PAUSE_FLAGS);
    if (c->flags & why)
        return;
    c->flags |= why;
    if (why & RW_CONN_MEM_PAUSED)
        loop->mem_paused++;
    if (reading)
        loop->ops->read_pause(loop->be, c);
}

/* Drop the reasons in `why`; reading resumes once no reason is left. */
void rw__conn_resume(struct rw_conn *c, uint16_t why)
{
    struct rw_loop *loop = c->loop;
    uint16_t had = c->flags & why;
    if (!had)
        return;
    c->flags &= (uint16_t)~had;
    if (had & RW_CONN_MEM_PAUSED) {
        RW_ASSERT(loop->mem_paused > 0);
        loop->mem_paused--;
    }
    if (!(c->flags & READ_PAUSE_FLAGS))
        loop->ops->read_resume(loop->be, c);
}

static void conn_release(struct rw_conn *c)
{
    struct rw_loop *loop = c->loop;
    RW_ASSERT(c->state == RW_CONN_CLOSING);
    rw__outq_clear(&c->outq, &loop->pool);
    conn_reasm_reset(c);
    free(c->proxy_buf); /* a PROXY header cut short */
    c->proxy_buf = NULL;
    c->proxy_len = 0;
    c->fd = -1;
    c->state = RW_CONN_FREE;
    /* A slot still on the dirty list keeps its DIRTY bit so it is never linked twice. */
    c->flags &= RW_CONN_DIRTY;
    RW_ASSERT(loop->free_count < loop->conn_cap);
    loop->free_slots[loop->free_count++] = c->index;
    RW_ASSERT(loop->open_count > 0);
    loop->open_count--;
    atomic_fetch_sub_explicit(&loop->shared->conns_open, 1, memory_order_relaxed);
    rw__stat_add(&loop->stats, RW_STAT_CLOSED, 1);
}

/* What the application is told (on_close) for a close counted as reason (NO_REASON: c->why). */
static enum rw_close_reason close_reason(const struct rw_conn *c, enum rw_stat reason)
{
    /* A close decided earlier (after replies, drain) keeps its reason whatever ends it. */
    if (c->why != RW_CLOSE_PEER)
        return (enum rw_close_reason)c->why;
    switch (reason) {
    case RW_STAT_REAPED_IDLE:
        return RW_CLOSE_IDLE;
    case RW_STAT_REAPED_FRAME_TIMEOUT:
        return RW_CLOSE_FRAME_TIMEOUT;
    case RW_STAT_REAPED_TCP_TIMEOUT:
        return RW_CLOSE_TCP_TIMEOUT;
    case RW_STAT_REAPED_DEAD:
        return RW_CLOSE_DEAD;
    case RW_STAT_CLOSED_PROTOCOL:
        return RW_CLOSE_PROTOCOL;
    case RW_STAT_CLOSED_MEMORY:
        return RW_CLOSE_MEMORY;
    case RW_STAT_CLOSED_PROXY:
        return RW_CLOSE_PROXY;
    case RW_STAT_CLOSED_ERROR:
        return RW_CLOSE_ERROR;
    default:
        return RW_CLOSE_PEER;
    }
}

/* Start closing; the slot is freed when the backend releases it. Do not touch c after. */
void rw__conn_close(struct rw_conn *c, enum rw_stat reason)
{
    struct rw_loop *loop = c->loop;
    RW_ASSERT(c->state == RW_CONN_OPEN);
    c->state = RW_CONN_CLOSING;
    if (c->opened) {
        /* Exactly once: a connection closes once (OPEN -> CLOSING). Its queued replies (and
         * rw_conn_send_ref's releases) are cleared after, at release. */
        c->opened = false;
        const struct rw_handler *h = loop->shared->handler;
        if (h->on_close)
            h->on_close(c, close_reason(c, reason));
    }
    rw__wheel_cancel(&loop->wheel, &c->timer);
    if (c->flags & RW_CONN_MEM_PAUSED) {
        c->flags &= (uint16_t)~RW_CONN_MEM_PAUSED;
        RW_ASSERT(loop->mem_paused > 0);
        loop->mem_paused--;
    }
    if (reason != NO_REASON)
        rw__stat_add(&loop->stats, reason, 1);
    if (loop->ops->close(loop->be, c))
        conn_release(c);
}

void rw__conn_on_released(struct rw_conn *c)
{
    conn_release(c);
}

bool rw__conn_app_open(struct rw_conn *c)
{
    const struct rw_handler *h = c->loop->shared->handler;
    c->user = NULL;
    c->why = RW_CLOSE_PEER;
    if (h->on_open) {
        int rc = h->on_open(c);
        if (rc < 0) {
            char peer[RW_PEER_TEXT_MAX];
            RW_DEBUG("conn %u (%s): refused by on_open: %s", c->index,
                     rw__conn_peer(c, peer, sizeof(peer)), strerror(-rc));
            rw__conn_close(c, NO_REASON); /* not opened: no on_close */
            return false;
        }
    }
    c->opened = true;
    if (c->flags & RW_CONN_CLOSE_REQ) {
        rw__conn_close_after_replies(c, RW_CLOSE_APP, 0);
        return false;
    }
    if (!rw__outq_empty(&c->outq))
        rw__loop_mark_dirty(c); /* a greeting from on_open */
    return true;
}

/* Every reply is out: FIN, then (after a protocol error) linger briefly for the peer's FIN. */
static void conn_shut_wr(struct rw_conn *c)
{
    c->flags |= RW_CONN_WR_SHUT;
    if (shutdown(c->fd, SHUT_WR) < 0 || (c->flags & RW_CONN_READ_EOF)) {
        rw__conn_close(c, NO_REASON);
        return;
    }
    c->linger_until_ms = c->loop->now_ms + RW_LINGER_MS;
    rw__conn_timer_update(c);
}

/*
 * A bad frame, an error from on_frame or rw_conn_close (why): stop parsing, answer what came
 * before (the ordinary timeouts apply while they drain), then FIN and wait briefly for the
 * peer's (conn_shut_wr). Bad frames and handler errors count as closed_protocol; an
 * application's close counts as an ordinary one.
 */
void rw__conn_close_after_replies(struct rw_conn *c, enum rw_close_reason why, int err)
{
    struct rw_loop *loop = c->loop;
    RW_ASSERT(c->state == RW_CONN_OPEN);
    if (c->flags & RW_CONN_PROTO_ERROR)
        return; /* already closing after its replies */
    char peer[RW_PEER_TEXT_MAX];
    RW_DEBUG("conn %u (%s): %s%s; closing after %llu queued bytes", c->index,
             rw__conn_peer(c, peer, sizeof(peer)),
             why == RW_CLOSE_PROTOCOL  ? "protocol error: "
             : why == RW_CLOSE_HANDLER ? "handler error: "
                                       : "closed by the application",
             err ? strerror(-err) : "", (unsigned long long)rw__outq_bytes(&c->outq));
    c->flags |= RW_CONN_PROTO_ERROR;
    c->flags &= (uint16_t)~RW_CONN_CLOSE_REQ;
    if (c->why == RW_CLOSE_PEER)
        c->why = (uint8_t)why;
    if (why != RW_CLOSE_APP)
        rw__stat_add(&loop->stats, RW_STAT_CLOSED_PROTOCOL, 1);
    conn_reasm_reset(c);
    rw__conn_resume(c, READ_PAUSE_FLAGS); /* read on, to discard: a full receive queue stalls FIN */
    if (rw__outq_empty(&c->outq))
        conn_shut_wr(c);
}

/* n bytes of the output queue reached the kernel. */
static void conn_sent(struct rw_conn *c, size_t n)
{
    struct rw_loop *loop = c->loop;
    rw__outq_consume(&c->outq, &loop->pool, n);
    rw__stat_add(&loop->stats, RW_STAT_BYTES_OUT, n);
    c->last_active_ms = loop->now_ms;
    if (rw__outq_empty(&c->outq)) {
        if (c->flags & RW_CONN_READ_EOF) {
            rw__conn_close(c, NO_REASON);
            return;
        }
        if ((c->flags & RW_CONN_PROTO_ERROR) && !(c->flags & RW_CONN_WR_SHUT)) {
            conn_shut_wr(c);
            return;
        }
    }
    if ((c->flags & RW_CONN_READ_PAUSED) &&
        rw__outq_below_low(&c->outq, loop->cfg->write_buffer_bytes)) {
        c->frame_started_ms = loop->now_ms; /* the peer was not the one holding the frame up */
        rw__conn_resume(c, RW_CONN_READ_PAUSED);
    }
}

/*
 * Which counter a failed socket goes to. The kernel gave up on the peer
 * (TCP_USER_TIMEOUT, keepalive or the retransmission limit) with ETIMEDOUT,
 * or with the soft error it saw last when an ICMP unreachable came in first
 * (tcp_write_err: sk_err = sk_err_soft ?: ETIMEDOUT); on an established socket
 * those errors only come that way. Everything else (ECONNRESET, EPIPE...) is
 * closed_error.
 */
static enum rw_stat error_reason(int err)
{
    switch (err) {
    case -ETIMEDOUT:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -EHOSTDOWN:
        return RW_STAT_REAPED_TCP_TIMEOUT;
    default:
        return RW_STAT_CLOSED_ERROR;
    }
}

void rw__conn_flush(struct rw_conn *c)
{
    struct rw_loop *loop = c->loop;
    while (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq)) {
        int rc = loop->ops->flush(loop->be, c);
        if (rc < 0) {
            char peer[RW_PEER_TEXT_MAX];
            RW_DEBUG("conn %u (%s): send: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
                     strerror(-rc));
            rw__conn_close(c, error_reason(rc));
            return;
        }
        if (rc == 0)
            return;
        conn_sent(c, (size_t)rc);
    }
}

/* ---- data, EOF, sends and errors: callbacks from backends (backend.h) ---- */

/* The reassembler's callback: one frame to the handler, unless the conn is closing already. */
static int deliver_frame(void *ctx, const struct rw_frame *frame)
{
    struct rw_conn *c = ctx;
    struct rw_loop *loop = c->loop;
    if (c->flags & RW_CONN_CLOSE_REQ)
        return -ECANCELED; /* rw_conn_close: input after it is ignored */
    rw__stat_add(&loop->stats, RW_STAT_FRAMES_IN, 1);
    /* The handler's error kept apart from the reassembler's own (rw__reasm_feed returns
     * either): a handler's -ENOMEM closes after its earlier replies, not at once. */
    int rc = loop->shared->handler->on_frame(c, frame);
    if (rc < 0)
        loop->handler_rc = rc;
    return rc;
}

void rw__conn_on_data(struct rw_conn *c, const uint8_t *data, size_t len)
{
    rw__conn_on_data_buf(c, data, len, NULL);
}

void rw__conn_on_data_buf(struct rw_conn *c, const uint8_t *data, size_t len,
                          const struct rw_rxbuf *buf)
{
    struct rw_loop *loop = c->loop;
    RW_ASSERT(c->state != RW_CONN_FREE);
    RW_ASSERT(len > 0);
    if (c->state != RW_CONN_OPEN)
        return;
    rw__stat_add(&loop->stats, RW_STAT_BYTES_IN, len);
    c->last_active_ms = loop_now_batch(loop);
    if (c->flags & RW_CONN_PROTO_ERROR)
        return; /* lingering for the peer's FIN: discard */
    if (c->flags & RW_CONN_PROXY_WAIT) {
        /* --proxy-protocol: the header first; what follows it in this chunk is frames. */
        ssize_t took = rw__conn_proxy_header(c, data, len);
        if (took < 0 || (size_t)took == len)
            return;
        data += took;
        len -= (size_t)took;
        if (c->state != RW_CONN_OPEN || (c->flags & RW_CONN_PROTO_ERROR))
            return; /* on_open refused or closed it */
    }

    uint64_t frames_before = rw__stat_get(&loop->stats, RW_STAT_FRAMES_IN);
    uint32_t pending_before = rw__reasm_pending(&c->reasm);
    uint32_t cap_before = c->reasm.cap;
    loop->rx_cur = buf;
    loop->frame_conn = c;
    loop->handler_rc = 0;
    int rc = rw__reasm_feed(&c->reasm, &loop->cfg->framing, data, len, loop->cfg->max_frame_bytes,
                            deliver_frame, c);
    int handler_rc = loop->handler_rc;
    loop->frame_conn = NULL;
    loop->rx_cur = NULL;
    conn_reasm_account(c, cap_before);
    if (c->state != RW_CONN_OPEN)
        return;
    if (c->flags & RW_CONN_CLOSE_REQ) {
        rw__conn_close_after_replies(c, RW_CLOSE_APP, 0);
    } else if (handler_rc < 0) {
        /* The handler's error, -ENOMEM too: its earlier replies go out, then FIN. */
        rw__conn_close_after_replies(c, RW_CLOSE_HANDLER, handler_rc);
    } else if (rc == -ENOMEM) {
        char peer[RW_PEER_TEXT_MAX];
        RW_WARN("conn %u (%s): out of memory reassembling a frame; closing", c->index,
                rw__conn_peer(c, peer, sizeof(peer)));
        rw__conn_close(c, RW_STAT_CLOSED_ERROR);
        return;
    } else if (rc < 0) {
        rw__conn_close_after_replies(c, RW_CLOSE_PROTOCOL, rc);
    } else if (rw__reasm_pending(&c->reasm) &&
               (pending_before == 0 ||
                rw__stat_get(&loop->stats, RW_STAT_FRAMES_IN) != frames_before)) {
        c->frame_started_ms = loop->now_ms; /* a new partial frame began in this chunk */
        rw__conn_timer_update(c);
    }
    if (c->state != RW_CONN_OPEN)
        return;
    if (!(c->flags & (RW_CONN_READ_PAUSED | RW_CONN_PROTO_ERROR)) &&
        rw__outq_above_high(&c->outq, loop->cfg->write_buffer_bytes)) {
        rw__stat_add(&loop->stats, RW_STAT_BACKPRESSURE_PAUSES, 1);
        rw__conn_pause(c, RW_CONN_READ_PAUSED);
    }
    /* At the memory budget a connection whose buffers grow stops being read (the largest are
     * closed at the end of the turn, mem_reclaim); small ones keep being served. */
    if (!(c->flags & (RW_CONN_MEM_PAUSED | RW_CONN_PROTO_ERROR | RW_CONN_PEER_DONE)) &&
        (c->reasm.cap > RW_REASM_KEEP_BYTES || rw__outq_bytes(&c->outq) > RW_OUTQ_BLOCK_BYTES) &&
        rw__mem_excess(&loop->mem) > 0) {
        rw__stat_add(&loop->stats, RW_STAT_MEMORY_PAUSES, 1);
        rw__conn_pause(c, RW_CONN_MEM_PAUSED);
    }
    if (!rw__outq_empty(&c->outq))
        rw__loop_mark_dirty(c); /* last: it may flush and close c */
}

void rw__conn_on_eof(struct rw_conn *c)
{
    RW_ASSERT(c->state != RW_CONN_FREE);
    if (c->state != RW_CONN_OPEN)
        return;
    c->flags |= RW_CONN_READ_EOF;
    conn_reasm_reset(c); /* a truncated last frame is dropped */
    if (rw__outq_empty(&c->outq))
        rw__conn_close(c, NO_REASON);
    else
        rw__loop_mark_dirty(c);
}

void rw__conn_on_sent(struct rw_conn *c, int res)
{
    RW_ASSERT(c->state != RW_CONN_FREE);
    if (c->state != RW_CONN_OPEN)
        return;
    loop_now_batch(c->loop);
    if (res < 0) {
        char peer[RW_PEER_TEXT_MAX];
        RW_DEBUG("conn %u (%s): send: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
                 strerror(-res));
        rw__conn_close(c, error_reason(res));
        return;
    }
    conn_sent(c, (size_t)res);
    if (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq))
        rw__loop_mark_dirty(c);
}

bool rw__conn_send_urgent(const struct rw_conn *c)
{
    const uint16_t acts_on_drained = READ_PAUSE_FLAGS | RW_CONN_READ_EOF | RW_CONN_PROTO_ERROR |
                                     RW_CONN_CLOSE_REQ | RW_CONN_PEER_DONE | RW_CONN_PROXY_WAIT;
    /* Lent bytes (zc-replies, rw_conn_send_ref) go back to their owner at completion. */
    return c->state != RW_CONN_OPEN || (c->flags & acts_on_drained) || c->outq.ext_count > 0 ||
           c->loop->draining;
}

void rw__conn_on_error(struct rw_conn *c, int err)
{
    RW_ASSERT(c->state != RW_CONN_FREE);
    RW_ASSERT(err < 0);
    if (c->state != RW_CONN_OPEN)
        return;
    char peer[RW_PEER_TEXT_MAX];
    RW_DEBUG("conn %u (%s): recv: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
             strerror(-err));
    rw__conn_close(c, error_reason(err));
}

void rw__conn_on_writable(struct rw_conn *c)
{
    if (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq))
        rw__loop_mark_dirty(c);
}
