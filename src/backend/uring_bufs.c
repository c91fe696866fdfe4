/*
 * The uring backend's provided-buffer ring: buffers registered with the
 * kernel, taken by multishot recvs, parsed by the core, lent to queued
 * replies (zc-replies) and put back once nothing holds them; and the starved
 * list of recvs that found the ring empty, re-armed against buffers that come
 * back (kernel-notes/04). See struct ur_buf for a buffer's life.
 */
#include <errno.h>
#include <string.h>

#include "rw_assert.h"
#include "log.h"
#include "stats.h"
#include "uring_impl.h"

/*
 * Register the provided-buffer ring (incremental consumption when inc-bufs is
 * wanted and the kernel takes it, else plain) and put every buffer in it.
 * 0 or -errno.
 */
int rw__ur_bufs_setup(struct ur_backend *ur, int worker_id)
{
    int rc = 0;
    ur->br = NULL;
    if (ur->features & RW_UF_INC_BUFS) {
        ur->br = rwc_setup_buf_ring(&ur->ring, ur->buf_count, BUF_GROUP, RWC_PBUF_RING_INC, &rc);
        if (!ur->br) {
            ur->features &= ~RW_UF_INC_BUFS;
            if (worker_id == 0)
                RW_INFO("uring feature inc-bufs: refused by the kernel (needs 6.12): %s; off",
                        strerror(-rc));
        }
    }
    if (!ur->br)
        ur->br = rwc_setup_buf_ring(&ur->ring, ur->buf_count, BUF_GROUP, 0, &rc);
    if (!ur->br)
        return rc;
    for (uint32_t bid = 0; bid < ur->buf_count; bid++)
        rw__ur_buf_add(ur, bid);
    rw__ur_buf_publish(ur);
    return 0;
}

void rw__ur_buf_add(struct ur_backend *ur, uint32_t bid)
{
    io_uring_buf_ring_add(ur->br, ur->bufs + (size_t)bid * ur->buf_size, ur->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(ur->buf_count),
                          (int)ur->bufs_to_advance);
    ur->bufs_to_advance++;
}

static void ur_buf_return(struct ur_backend *ur, uint32_t bid)
{
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->out && b->holds == 0);
    b->out = false;
    b->off = 0;
    RW_ASSERT(ur->bufs_out > 0);
    ur->bufs_out--;
    rw__ur_buf_add(ur, bid);
    if (ur->rearm_credit < ur->buf_count)
        ur->rearm_credit++;
}

/* zc-replies: lend buffer bid to a queued reply, unless the ring runs low (then: copy). */
bool rw__ur_buf_hold(void *owner, uint32_t bid)
{
    struct ur_backend *ur = owner;
    if (ur->buf_count - ur->bufs_out < ur->buf_count / RW_ZC_RING_LOW_DIV)
        return false;
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->holds > 0 && b->holds < UINT16_MAX);
    b->holds++;
    return true;
}

void rw__ur_buf_release(void *owner, uint32_t bid)
{
    struct ur_backend *ur = owner;
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->holds > 0);
    if (--b->holds == 0 && b->out)
        ur_buf_return(ur, bid);
}

void rw__ur_buf_publish(struct ur_backend *ur)
{
    if (ur->bufs_to_advance) {
        io_uring_buf_ring_advance(ur->br, (int)ur->bufs_to_advance);
        ur->bufs_to_advance = 0;
    }
}

/*
 * A recv CQE came with buffer bid (cqe_flags, res as in the CQE): where its
 * data starts. The buffer leaves the ring unless inc-bufs keeps filling it,
 * and is held once for the core while it parses (rw__ur_buf_release after).
 */
uint8_t *rw__ur_buf_taken(struct ur_backend *ur, uint32_t bid, uint32_t cqe_flags, int res)
{
    RW_ASSERT(bid < ur->buf_count);
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(!b->out);
    uint8_t *buf = ur->bufs + (size_t)bid * ur->buf_size + b->off;
    if ((ur->features & RW_UF_INC_BUFS) && (cqe_flags & RWC_CQE_F_BUF_MORE)) {
        b->off += res > 0 ? (uint32_t)res : 0; /* still the ring's head: filled on */
        /* The ring still has room: a re-arm credit, as a returned buffer would give, or a
         * recv starved before this buffer came back could wait for a return that only
         * comes once the buffer is full. */
        if (res > 0 && ur->rearm_credit < ur->buf_count)
            ur->rearm_credit++;
    } else {
        b->out = true;
        ur->bufs_out++;
    }
    b->holds++; /* ours, while the core parses it */
    return buf;
}

/* c's recv ended with ENOBUFS: queue it (FIFO) until a buffer comes back for it. */
void rw__ur_starve(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(ur, c);
    RW_ASSERT(!(cs->flags & (UR_STARVED | UR_RECV_ARMED)));
    cs->flags |= UR_STARVED;
    cs->starved_next = NULL;
    cs->starved_prev = ur->starved_tail;
    if (ur->starved_tail)
        uc(ur, ur->starved_tail)->starved_next = c;
    else
        ur->starved_head = c;
    ur->starved_tail = c;
}

/* Take c off the starved list (pause, close, re-arm). A slot is never freed while on it. */
void rw__ur_unstarve(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(ur, c);
    if (!(cs->flags & UR_STARVED))
        return;
    cs->flags &= ~UR_STARVED;
    if (cs->starved_prev)
        uc(ur, cs->starved_prev)->starved_next = cs->starved_next;
    else
        ur->starved_head = cs->starved_next;
    if (cs->starved_next)
        uc(ur, cs->starved_next)->starved_prev = cs->starved_prev;
    else
        ur->starved_tail = cs->starved_prev;
    cs->starved_prev = cs->starved_next = NULL;
}
