/*
 * The uring backend's provided-buffer ring: buffers registered with the
 * kernel, taken by multishot recvs, parsed by the core, lent to queued
 * replies (zc-replies) and put back once nothing holds them; and the starved
 * list of recvs that found the ring empty, re-armed against buffers that come
 * back (kernel-notes/04). See struct ur_buf for a buffer's life.
 */
#include <errno.h>
#include <stdlib.h>
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

/* The ring position (mod 2^16, as the kernel counts) the next rw__ur_buf_add writes. */
static uint16_t ring_tail(const struct ur_backend *ur)
{
    return (uint16_t)(ur->br->tail + ur->bufs_to_advance);
}

/* The bid we last wrote at ring position pos: the kernel reads a ring entry's bid, never
 * writes it, and we do not write the entry again until its CQE is handled. */
static uint32_t slot_bid(const struct ur_backend *ur, uint32_t pos)
{
    uint32_t slot = pos & (ur->buf_count - 1);
    return __atomic_load_n(&ur->br->bufs[slot].bid, __ATOMIC_RELAXED);
}

void rw__ur_buf_add(struct ur_backend *ur, uint32_t bid)
{
    /* bundles: where bid goes. Its slot's slot_done is 0: ring_head passed the slot's last
     * position, which clears it (ring_full keeps the tail within buf_count of ring_head). */
    if (ur->buf_pos)
        ur->buf_pos[bid] = ring_tail(ur);
    io_uring_buf_ring_add(ur->br, ur->bufs + (size_t)bid * ur->buf_size, ur->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(ur->buf_count),
                          (int)ur->bufs_to_advance);
    ur->bufs_to_advance++;
}

/*
 * bundles: every slot from ring_head up to the tail holds a buffer in the ring or one the kernel
 * took whose CQE is still to come: writing at the tail now would overwrite the oldest of those.
 */
static bool ring_full(const struct ur_backend *ur)
{
    return (ur->features & RW_UF_BUNDLES) &&
           (uint16_t)(ring_tail(ur) - ur->ring_head) == ur->buf_count;
}

static void ur_buf_return(struct ur_backend *ur, uint32_t bid)
{
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->out && b->holds == 0);
    b->out = false;
    b->off = 0;
    RW_ASSERT(ur->bufs_out > 0);
    ur->bufs_out--;
    if (ring_full(ur)) {
        /* Added (and its re-arm credit given) when the oldest pending CQE is handled. */
        RW_ASSERT(ur->deferred_count < ur->buf_count);
        ur->deferred[ur->deferred_count++] = (uint16_t)bid;
        return;
    }
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

int rw__ur_bundles_alloc(struct ur_backend *ur)
{
    ur->buf_pos = calloc(ur->buf_count, sizeof(*ur->buf_pos));
    ur->slot_done = calloc(ur->buf_count, sizeof(*ur->slot_done));
    ur->deferred = calloc(ur->buf_count, sizeof(*ur->deferred));
    ur->deferred_count = 0;
    ur->ring_head = 0; /* rw__ur_bufs_setup writes positions 0 .. buf_count - 1 */
    if (ur->buf_pos && ur->slot_done && ur->deferred)
        return 0;
    rw__ur_bundles_free(ur);
    return -ENOMEM;
}

void rw__ur_bundles_free(struct ur_backend *ur)
{
    free(ur->buf_pos);
    free(ur->slot_done);
    free(ur->deferred);
    ur->buf_pos = ur->deferred = NULL;
    ur->slot_done = NULL;
}

/*
 * The bytes the kernel put in the buffer at ring position pos, of the left still to place: its
 * ring entry's len, which is buf_size as we wrote it unless the kernel truncated a head entry to
 * the bytes it expected (a non-incremental ring, io_ring_buffers_peek) and then took nothing.
 * The kernel does not write an entry it has consumed, and we do not until its CQE is handled;
 * the CQE's acquire (io_uring_for_each_cqe) orders the kernel's write before this read.
 */
static uint32_t bundle_piece(const struct ur_backend *ur, uint32_t pos, uint32_t left)
{
    uint32_t slot = pos & (ur->buf_count - 1);
    uint32_t len = __atomic_load_n(&ur->br->bufs[slot].len, __ATOMIC_RELAXED);
    RW_ASSERT(len > 0);
    RW_ASSERT(len <= ur->buf_size);
    return len < left ? len : left;
}

uint32_t rw__ur_bundle_take(struct ur_backend *ur, uint32_t bid0, uint32_t res,
                            uint32_t *first_pos_out)
{
    RW_ASSERT(res > 0);
    RW_ASSERT(bid0 < ur->buf_count);
    uint32_t first_pos = ur->buf_pos[bid0];
    RW_ASSERT(slot_bid(ur, first_pos) == bid0);
    *first_pos_out = first_pos;
    uint32_t n = 0;
    for (uint32_t left = res; left > 0; n++) {
        RW_ASSERT(n < ur->buf_count);
        uint32_t pos = (uint16_t)(first_pos + n);
        uint32_t slot = pos & (ur->buf_count - 1);
        uint32_t bid = slot_bid(ur, pos);
        struct ur_buf *b = &ur->buf_state[bid];
        /* Taken in ring order from a slot whose CQE was not handled yet, holding the buffer we
         * last wrote there: the mirror agrees with the ring. */
        RW_ASSERT(!ur->slot_done[slot]);
        RW_ASSERT(ur->buf_pos[bid] == pos);
        RW_ASSERT(!b->out);
        b->out = true;
        ur->bufs_out++;
        b->holds++; /* ours, while the core parses it */
        left -= bundle_piece(ur, pos, left);
    }
    return n;
}

uint32_t rw__ur_bundle_buf(struct ur_backend *ur, uint32_t pos, uint32_t left, uint32_t *len)
{
    *len = bundle_piece(ur, pos, left);
    return slot_bid(ur, pos);
}

/* The ring head past every handled slot, up to the first one whose CQE is still to come; then
 * what waited for room (deferred) goes in. */
static void ring_settle(struct ur_backend *ur)
{
    uint32_t mask = ur->buf_count - 1;
    while (ur->slot_done[ur->ring_head & mask] && ur->ring_head != ring_tail(ur)) {
        ur->slot_done[ur->ring_head & mask] = 0;
        ur->ring_head++;
    }
    while (ur->deferred_count > 0 && !ring_full(ur)) {
        rw__ur_buf_add(ur, ur->deferred[--ur->deferred_count]);
        if (ur->rearm_credit < ur->buf_count)
            ur->rearm_credit++;
    }
}

void rw__ur_bundle_done(struct ur_backend *ur, uint32_t first_pos, uint32_t n)
{
    uint32_t mask = ur->buf_count - 1;
    if ((uint16_t)first_pos == ur->ring_head) {
        /* In ring order, as CQEs mostly come: past these slots at once, never marked. */
        ur->ring_head = (uint16_t)(ur->ring_head + n);
    } else {
        for (uint32_t i = 0; i < n; i++)
            ur->slot_done[(first_pos + i) & mask] = 1;
    }
    /* The slot at the tail is never marked (ring_head passed its last position), so in ring
     * order with nothing deferred this is one load of slot_done. */
    if (ur->slot_done[ur->ring_head & mask] || ur->deferred_count > 0)
        ring_settle(ur);
}

uint8_t *rw__ur_buf_taken_one(struct ur_backend *ur, uint32_t bid)
{
    RW_ASSERT(bid < ur->buf_count);
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(!b->out);
    uint16_t pos = ur->buf_pos[bid];
    RW_ASSERT(slot_bid(ur, pos) == bid);
    b->out = true;
    ur->bufs_out++;
    b->holds++; /* ours, while the core parses it */
    rw__ur_bundle_done(ur, pos, 1);
    return ur->bufs + (size_t)bid * ur->buf_size;
}

/* c's recv ended with ENOBUFS: queue it (FIFO) until a buffer comes back for it. */
void rw__ur_starve(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    RW_ASSERT(!(cs->flags & (UR_STARVED | UR_RECV_ARMED)));
    cs->flags |= UR_STARVED;
    cs->starved_next = NULL;
    cs->starved_prev = ur->starved_tail;
    if (ur->starved_tail)
        uc(ur->starved_tail)->starved_next = c;
    else
        ur->starved_head = c;
    ur->starved_tail = c;
}

/* Take c off the starved list (pause, close, re-arm). A slot is never freed while on it. */
void rw__ur_unstarve(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    if (!(cs->flags & UR_STARVED))
        return;
    cs->flags &= ~UR_STARVED;
    if (cs->starved_prev)
        uc(cs->starved_prev)->starved_next = cs->starved_next;
    else
        ur->starved_head = cs->starved_next;
    if (cs->starved_next)
        uc(cs->starved_next)->starved_prev = cs->starved_prev;
    else
        ur->starved_tail = cs->starved_prev;
    cs->starved_prev = cs->starved_next = NULL;
}
