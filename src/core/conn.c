/*
 * The connection policy: what a connection's events mean. Data in, through
 * the reassembler, into the handler; replies queued (copied, or by reference
 * into the receive buffer) and flushed once a turn; backpressure by
 * watermarks; half-close; protocol errors (answer, FIN, linger); idle,
 * frame-deadline and linger timeouts; close and release. The loop driver
 * (loop.c) adopts connections and runs the turns; backends report through
 * the rw__conn_on_* callbacks below (backend.h).
 */
#include "conn_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <ringwire/frame.h>
#include <ringwire/handler.h>

#include "rw_assert.h"
#include "backend.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

/* ---- connection lifecycle ---- */

static uint64_t conn_deadline(const struct rw_loop *loop, const struct rw_conn *c)
{
    const struct rw_config *cfg = loop->cfg;
    uint64_t deadline = UINT64_MAX;
    if (cfg->idle_timeout_ms)
        deadline = c->last_active_ms + cfg->idle_timeout_ms;
    if (cfg->frame_timeout_ms && rw__reasm_pending(&c->reasm) && !(c->flags & READ_PAUSE_FLAGS)) {
        uint64_t frame_deadline = c->frame_started_ms + cfg->frame_timeout_ms;
        deadline = frame_deadline < deadline ? frame_deadline : deadline;
    }
    /* --proxy-protocol: the header, awaited since accept, is held to --frame-timeout too. */
    if (cfg->frame_timeout_ms && (c->flags & RW_CONN_PROXY_WAIT) &&
        c->frame_started_ms + cfg->frame_timeout_ms < deadline)
        deadline = c->frame_started_ms + cfg->frame_timeout_ms;
    /* The linger for the peer's FIN starts after our FIN: while replies drain, only the
     * ordinary timeouts apply, however slowly the peer reads. */
    if ((c->flags & RW_CONN_PROTO_ERROR) && (c->flags & RW_CONN_WR_SHUT) &&
        c->linger_until_ms < deadline)
        deadline = c->linger_until_ms;
    return deadline;
}

/* Arm the timer if the deadline moved earlier; later deadlines are found lazily on expiry. */
void rw__conn_timer_update(struct rw_conn *c)
{
    uint64_t deadline = conn_deadline(c->loop, c);
    if (deadline == UINT64_MAX)
        return;
    if (!rw__timer_armed(&c->timer) || deadline < c->timer.deadline_ms)
        rw__wheel_arm(&c->loop->wheel, &c->timer, deadline);
}

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

/* Start closing; the slot is freed when the backend releases it. Do not touch c after. */
void rw__conn_close(struct rw_conn *c, enum rw_stat reason)
{
    struct rw_loop *loop = c->loop;
    RW_ASSERT(c->state == RW_CONN_OPEN);
    c->state = RW_CONN_CLOSING;
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
 * A bad frame: stop parsing, answer what came before (the ordinary timeouts apply while they
 * drain), then FIN and wait briefly for the peer's (conn_shut_wr).
 */
static void conn_protocol_error(struct rw_conn *c, int err)
{
    struct rw_loop *loop = c->loop;
    char peer[RW_PEER_TEXT_MAX];
    RW_DEBUG("conn %u (%s): protocol error: %s; closing after %llu queued bytes", c->index,
             rw__conn_peer(c, peer, sizeof(peer)), strerror(-err),
             (unsigned long long)rw__outq_bytes(&c->outq));
    c->flags |= RW_CONN_PROTO_ERROR;
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

/*
 * What deliver_frame needs, and the handler's error kept apart from the
 * reassembler's own: rw__reasm_feed returns either, and a handler's -ENOMEM
 * is, by handler.h's contract, a reason to close after the replies queued
 * before it (like any handler error), not an out-of-memory close at once.
 */
struct deliver_ctx {
    struct rw_conn *c;
    int handler_rc;
};

static int deliver_frame(void *ctx, const struct rw_frame *frame)
{
    struct deliver_ctx *d = ctx;
    rw__stat_add(&d->c->loop->stats, RW_STAT_FRAMES_IN, 1);
    d->handler_rc = d->c->loop->shared->handler->on_frame(d->c, frame);
    return d->handler_rc;
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
    }

    uint64_t frames_before = rw__stat_get(&loop->stats, RW_STAT_FRAMES_IN);
    uint32_t pending_before = rw__reasm_pending(&c->reasm);
    uint32_t cap_before = c->reasm.cap;
    struct deliver_ctx d = {.c = c, .handler_rc = 0};
    loop->rx_cur = buf;
    int rc = rw__reasm_feed(&c->reasm, &loop->cfg->framing, data, len, loop->cfg->max_frame_bytes,
                            deliver_frame, &d);
    loop->rx_cur = NULL;
    conn_reasm_account(c, cap_before);
    if (rc == -ENOMEM && d.handler_rc == 0) {
        char peer[RW_PEER_TEXT_MAX];
        RW_WARN("conn %u (%s): out of memory reassembling a frame; closing", c->index,
                rw__conn_peer(c, peer, sizeof(peer)));
        rw__conn_close(c, RW_STAT_CLOSED_ERROR);
        return;
    }
    if (rc < 0) {
        conn_protocol_error(c, rc);
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

/*
 * Zero-copy reply: body lies in the receive buffer being parsed, so send it from there (the
 * buffer is held until the bytes are sent) instead of copying it. header (header_len bytes,
 * may be 0) goes before it: when the same bytes lie right before body (an echo's, the
 * request's own header), header and body go as one reference, and pipelined replies from
 * one buffer merge into one entry; else header is copied. The caller decided the reply is
 * large enough to be worth it (RW_ZC_MIN_BYTES of payload). Returns 1 when queued by
 * reference, 0 to copy instead, -ENOMEM when a copied header was queued and its body
 * could not be.
 */
static int send_by_ref(struct rw_conn *c, const uint8_t *header, uint32_t header_len,
                       const uint8_t *body, size_t len)
{
    struct rw_loop *loop = c->loop;
    const struct rw_rxbuf *rx = loop->rx_cur;
    if (!rx || len == 0 || body < rx->base || body + len > rx->base + rx->len)
        return 0;
    const uint8_t *start = body;
    if (header_len > 0 && body >= rx->base + header_len &&
        memcmp(body - header_len, header, header_len) == 0)
        start = body - header_len;
    bool copy_header = start == body && header_len > 0;
    bool merges = copy_header ? false : rw__outq_ext_continues(&c->outq, start, rx->owner, rx->id);
    if (!merges) {
        if (c->outq.ext_count >= RW_ZC_HOLDS_PER_CONN)
            return 0;
        if (!rx->hold(rx->owner, rx->id)) {
            rw__stat_add(&loop->stats, RW_STAT_ZC_COPIED_LOW, 1);
            return 0;
        }
        if (copy_header && rw__outq_append(&c->outq, &loop->pool, header, header_len) < 0) {
            rx->release(rx->owner, rx->id);
            return 0;
        }
    }
    size_t bytes = (size_t)(body + len - start);
    int rc =
        rw__outq_append_ext(&c->outq, &loop->pool, start, bytes, rx->release, rx->owner, rx->id);
    if (rc < 0) {
        rx->release(rx->owner, rx->id);
        /* A header copied above stays queued: the body must follow it, copied. */
        return copy_header ? (rw__outq_append(&c->outq, &loop->pool, body, len) < 0 ? -ENOMEM : 1)
                           : 0;
    }
    if (rc == 1 && !merges)
        rx->release(rx->owner, rx->id); /* it merged after all: one hold is enough */
    rw__stat_add(&loop->stats, RW_STAT_ZC_REPLIES, 1);
    return 1;
}

/* Queue header + body by reference when send_by_ref takes them, else copied. */
static int conn_send(struct rw_conn *c, const uint8_t *header, uint32_t header_len,
                     const uint8_t *body, size_t len, bool zc_worth_it)
{
    int rc = zc_worth_it ? send_by_ref(c, header, header_len, body, len) : 0;
    if (rc == 0)
        rc = rw__outq_append2(&c->outq, &c->loop->pool, header, header_len, body, len);
    if (rc < 0)
        return rc;
    rw__stat_add(&c->loop->stats, RW_STAT_FRAMES_OUT, 1);
    return 0;
}

int rw_conn_send_frame(struct rw_conn *c, const void *payload, uint32_t len)
{
    RW_ASSERT(c->state == RW_CONN_OPEN);
    uint8_t header[RW_FRAMING_HEADER_MAX];
    int hl = rw_framing_put_header(&c->loop->cfg->framing, header, len);
    if (hl < 0)
        return hl;
    return conn_send(c, header, (uint32_t)hl, payload, len, len >= c->loop->zc_min_bytes);
}

int rw_conn_send_raw(struct rw_conn *c, const void *bytes, size_t len)
{
    RW_ASSERT(c->state == RW_CONN_OPEN);
    /* The threshold is on payload bytes: raw bytes count as one frame's header + payload. */
    uint32_t hl = rw_framing_header_bytes(&c->loop->cfg->framing);
    return conn_send(c, NULL, 0, bytes, len, len >= (size_t)c->loop->zc_min_bytes + hl);
}

/* ---- idle, frame-deadline and linger timeouts ---- */

void rw__conn_on_timer(void *ctx, struct rw_timer *t)
{
    struct rw_loop *loop = ctx;
    struct rw_conn *c = RW_CONTAINER_OF(t, struct rw_conn, timer);
    if (c->state != RW_CONN_OPEN)
        return;
    uint64_t deadline = conn_deadline(loop, c);
    if (deadline == UINT64_MAX)
        return;
    if (deadline > loop->now_ms) {
        rw__wheel_arm(&loop->wheel, t, deadline); /* lazy re-arm: activity moved it */
        return;
    }
    enum rw_stat reason = RW_STAT_REAPED_IDLE;
    if (c->flags & RW_CONN_PROTO_ERROR)
        reason = NO_REASON; /* already counted as a protocol error */
    else if (c->flags & RW_CONN_PROXY_WAIT)
        reason = RW_STAT_CLOSED_PROXY; /* no PROXY header in time */
    else if (loop->cfg->frame_timeout_ms && rw__reasm_pending(&c->reasm) &&
             c->frame_started_ms + loop->cfg->frame_timeout_ms <= loop->now_ms)
        reason = RW_STAT_REAPED_FRAME_TIMEOUT;
    char peer[RW_PEER_TEXT_MAX];
    RW_DEBUG("conn %u (%s): %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
             reason == RW_STAT_CLOSED_PROXY  ? "no PROXY header in time"
             : reason == RW_STAT_REAPED_IDLE ? "idle timeout"
                                             : "deadline passed");
    rw__conn_close(c, reason);
}
