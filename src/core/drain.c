/*
 * The SIGTERM drain (kernel-notes/10): accepting stops, each connection is
 * closed once it is quiet (every reply handed to the kernel, nothing unread),
 * and whatever is left at --drain-timeout is closed with replies pending
 * (closing with bytes unread would make the kernel send RST and drop replies
 * still in the send buffer; a peer that keeps sending meets the timeout). The
 * loop driver (loop.c) runs a step a turn until no connection is left.
 */
#include "conn_policy.h"

#include <sys/ioctl.h>
#include <linux/sockios.h>

#include "backend.h"
#include "log.h"

void rw__loop_begin_drain(struct rw_loop *loop)
{
    loop->draining = true;
    loop->drain_deadline_ms = loop->now_ms + loop->cfg->drain_timeout_ms;
    if (loop->accepting) {
        loop->ops->accept_stop(loop->be);
        loop->accepting = false;
    }
    RW_DEBUG("draining %u connections", loop->open_count);
}

/*
 * The drain closes a connection once it is quiet: nothing queued, no partial frame, no byte
 * unread in the socket, and no receive left that could still deliver one. SIOCINQ alone is
 * not proof where the kernel completes receives on its own time (sqpoll's SQ thread, a ring
 * without DEFER_TASKRUN): bytes can have left the socket while their completion is not yet
 * reaped, and closing then drops the replies to them. So a quiet connection first stops
 * reading (RW_CONN_DRAIN_PAUSED); it is closed once the backend says its receive has ended
 * (ops->read_idle) and it is still quiet. Bytes that arrive meanwhile resume reading.
 */
static void drain_quiet_conns(struct rw_loop *loop)
{
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state != RW_CONN_OPEN || (c->flags & RW_CONN_PROTO_ERROR))
            continue;
        bool busy = !rw__outq_empty(&c->outq) || rw__reasm_pending(&c->reasm);
        if (busy && !(c->flags & RW_CONN_DRAIN_PAUSED))
            continue; /* still reading and answering: no need to ask the socket */
        int unread = 0;
        bool unanswered =
            rw__reasm_pending(&c->reasm) || ioctl(c->fd, SIOCINQ, &unread) != 0 || unread != 0;
        if (unanswered) {
            rw__conn_resume(c, RW_CONN_DRAIN_PAUSED); /* the rest must be read */
            continue;
        }
        if (!rw__outq_empty(&c->outq))
            continue; /* replies still going out */
        if (!(c->flags & RW_CONN_DRAIN_PAUSED)) {
            rw__conn_pause(c, RW_CONN_DRAIN_PAUSED);
            continue;
        }
        if (!loop->ops->read_idle(loop->be, c))
            continue; /* its receive's last completion is still to come */
        if (c->why == RW_CLOSE_PEER)
            c->why = RW_CLOSE_SHUTDOWN;
        rw__conn_close(c, NO_REASON);
    }
}

static void force_close_all(struct rw_loop *loop)
{
    loop->force_closed = true;
    uint32_t forced = 0;
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state == RW_CONN_OPEN) {
            if (c->why == RW_CLOSE_PEER)
                c->why = RW_CLOSE_SHUTDOWN;
            rw__conn_close(c, NO_REASON);
            forced++;
        }
    }
    if (forced)
        RW_WARN("drain timeout: closed %u connections with replies pending", forced);
}

bool rw__loop_drain_step(struct rw_loop *loop, uint64_t now)
{
    if (!loop->force_closed)
        drain_quiet_conns(loop);
    if (loop->open_count == 0)
        return false;
    if (!loop->force_closed && now >= loop->drain_deadline_ms)
        force_close_all(loop);
    return true;
}
