/*
 * The uring backend's sends: at most one gathered send in flight per connection (ops->flush),
 * by IORING_OP_SEND for one block, SENDMSG for several, their _ZC forms for send-zc
 * (kernel-notes/27); lazy-reap's lazy sends (kernel-notes/29); and the send's completion,
 * handed to the core once every CQE of it is in.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "rw_assert.h"
#include "backend.h"
#include "rw_limits.h"
#include "stats.h"
#include "uring_compat.h"
#include "uring_features.h"
#include "uring_impl.h"

void rw__ur_send_urgent(struct ur_backend *ur, struct ur_send *s)
{
    if (s && s->lazy) {
        s->lazy = false;
        ur->lazy_inflight--;
    }
}

static size_t iov_bytes(const struct iovec *iov, size_t count)
{
    size_t bytes = 0;
    for (size_t i = 0; i < count; i++)
        bytes += iov[i].iov_len;
    return bytes;
}

/* A send that needs a context (several blocks, send-zc, lazy-reap): take one, keep its iovecs
 * (and msghdr) there for the kernel, and prepare sqe from it. */
static struct ur_send *ur_send_prep(struct ur_backend *ur, struct rw_conn *c,
                                    struct io_uring_sqe *sqe, const struct iovec *iov, size_t count,
                                    bool zc, bool lazy)
{
    struct ur_send *s = ur->sends_free;
    if (s)
        ur->sends_free = s->next_free;
    else
        s = &ur->sends[ur->sends_used++];
    RW_ASSERT(ur->sends_used <= ur->conn_cap);
    memcpy(s->iov, iov, count * sizeof(iov[0]));
    s->zc = zc;
    s->zc_got_res = false;
    s->zc_done = false;
    s->lazy = lazy;
    int msg_flags = MSG_NOSIGNAL | (lazy ? MSG_WAITALL : 0);
    unsigned zc_flags = ur->zc_report ? RWC_SEND_ZC_REPORT_USAGE : 0;
    if (count == 1 && zc) {
        io_uring_prep_send_zc(sqe, c->fd, s->iov[0].iov_base, s->iov[0].iov_len, MSG_NOSIGNAL,
                              zc_flags);
    } else if (count == 1) {
        io_uring_prep_send(sqe, c->fd, s->iov[0].iov_base, s->iov[0].iov_len, msg_flags);
    } else {
        memset(&s->msg, 0, sizeof(s->msg));
        s->msg.msg_iov = s->iov;
        s->msg.msg_iovlen = count;
        if (zc) {
            io_uring_prep_sendmsg_zc(sqe, c->fd, &s->msg, MSG_NOSIGNAL);
            sqe->ioprio |= (__u16)zc_flags; /* liburing 2.3's helper takes no zc_flags */
        } else {
            io_uring_prep_sendmsg(sqe, c->fd, &s->msg, msg_flags);
        }
    }
    if (zc)
        rw__stat_add(ur->stats, RW_STAT_SEND_ZC_CALLS, 1);
    ur->lazy_inflight += lazy;
    return s;
}

int rw__ur_flush(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(c);
    if (cs->flags & UR_SEND) {
        /* One send in flight per connection keeps the order; the next goes at its completion,
         * so that completion is no longer bookkeeping. */
        rw__ur_send_urgent(ur, cs->send);
        return 0;
    }
    struct iovec iov[RW_SEND_IOV_MAX];
    size_t count = rw__outq_gather(&c->outq, iov, RW_SEND_IOV_MAX);
    RW_ASSERT(count > 0);
    /* Summed once, and only for a feature that asks. */
    size_t bytes = (ur->features & (RW_UF_SEND_ZC | RW_UF_LAZY_REAP)) ? iov_bytes(iov, count) : 0;
    /* send-zc: large sends go out from our pages, which stay ours only after the kernel's
     * notification (ur_on_send; kernel-notes/27). */
    bool zc = (ur->features & RW_UF_SEND_ZC) && bytes >= RW_SEND_ZC_MIN_BYTES;
    /* lazy-reap: a send of all that is queued, whose completion the core does not act on. With
     * MSG_WAITALL the kernel finishes a short send itself (io_net_retry, 5.18), so its one CQE
     * means every byte went, or an error. */
    bool lazy = (ur->features & RW_UF_LAZY_REAP) && !zc && !rw__conn_send_urgent(c) &&
                bytes == rw__outq_bytes(&c->outq);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    struct ur_send *s = NULL;
    if (count == 1 && !zc && !lazy) {
        /* The common reply: one block, a plain send, no context (uring_impl.h). */
        io_uring_prep_send(sqe, c->fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        s = ur_send_prep(ur, c, sqe, iov, count, zc, lazy);
    }
    ur_sqe_file(cs, c, sqe);
    io_uring_sqe_set_data64(sqe, ud_conn(OP_SEND, c));
    cs->send = s;
    cs->flags |= UR_SEND;
    ur->sends_queued++;
    ur->sends_inflight++;
    cs->inflight++;
    rw__stat_add(ur->stats, RW_STAT_SEND_CALLS, 1);
    return 0;
}

/*
 * A send's context at a CQE of it: false while a zero-copy send waits for its other CQE;
 * else true, with *res its result, and the context back on the free list.
 */
static bool ur_send_ctx_done(struct ur_backend *ur, struct ur_send *s,
                             const struct io_uring_cqe *cqe, int *res)
{
    if (s->zc) {
        /* A zero-copy send posts its result, then (when the result has F_MORE) a notification
         * once the kernel no longer reads our pages; the bytes (output blocks, lent receive
         * buffers) are released only after both, so only then has it completed for the core,
         * and the slot stays in flight until then (kernel-notes/27). Either order is taken. */
        if (cqe->flags & IORING_CQE_F_NOTIF) {
            s->zc_done = true;
            if ((uint32_t)cqe->res & RWC_NOTIF_USAGE_ZC_COPIED)
                rw__stat_add(ur->stats, RW_STAT_SEND_ZC_COPIED, 1);
        } else {
            RW_ASSERT(!s->zc_got_res);
            s->zc_got_res = true;
            s->zc_res = cqe->res;
            if (!(cqe->flags & IORING_CQE_F_MORE))
                s->zc_done = true; /* failed before any page was taken: no notification */
        }
        if (!s->zc_got_res || !s->zc_done)
            return false;
        *res = s->zc_res;
    }
    RW_ASSERT(ur->lazy_inflight >= s->lazy);
    ur->lazy_inflight -= s->lazy;
    s->next_free = ur->sends_free;
    ur->sends_free = s;
    return true;
}

void rw__ur_on_send(struct ur_backend *ur, struct rw_conn *c, const struct io_uring_cqe *cqe)
{
    struct ur_conn *cs = uc(c);
    int res = cqe->res;
    /* A plain send of one block has no context (uring_impl.h). */
    if (cs->send && !ur_send_ctx_done(ur, cs->send, cqe, &res))
        return;
    RW_ASSERT(ur->sends_inflight > 0);
    ur->sends_inflight--;
    cs->send = NULL;
    cs->flags &= ~UR_SEND;
    if (c->state == RW_CONN_OPEN)
        rw__conn_on_sent(c, res == 0 ? -EPIPE : res);
    rw__ur_op_done(ur, c);
}
