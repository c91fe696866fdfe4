/*
 * A connection's deadlines (part of the connection policy, conn.c): the idle timeout, the
 * frame deadline (a partial frame, a PROXY header awaited), the linger after a protocol error's
 * FIN. One wheel timer per connection, armed when the deadline moves earlier and re-armed
 * lazily on expiry when activity moved it later.
 */
#include "conn_policy.h"

#include "rw_assert.h"
#include "log.h"
#include "peer.h"

static uint64_t conn_deadline(const struct rw_loop *loop, const struct rw_conn *c)
{
    const struct rw_options *cfg = loop->cfg;
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
    if (!rw__timer_armed(&c->timer) || deadline < c->timer.deadline_ms) {
        rw__wheel_arm(&c->loop->wheel, &c->timer, deadline);
        c->loop->quiet_until_ms = 0; /* maybe earlier than the loop's wait (loop_quiet) */
    }
}

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
