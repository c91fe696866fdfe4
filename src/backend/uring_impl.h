/*
 * Private to the uring backend (uring.c, uring_bufs.c): its state, per loop
 * and per connection, and what the two files share.
 */
#ifndef RW_URING_IMPL_H
#define RW_URING_IMPL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "rw_assert.h"
#include "backend.h"
#include "rw_limits.h"
#include "uring_compat.h"
#include "uring_features.h"

enum ur_op { OP_ACCEPT = 1, OP_WAKE, OP_RECV, OP_SEND, OP_CANCEL, OP_ACCEPT_CANCEL, OP_TIMER };

/* Per-connection bits in struct ur_conn's flags. */
enum {
    UR_WANT_READ = 1u << 0,   /* the core wants data (not paused) */
    UR_RECV_ARMED = 1u << 1,  /* a multishot recv is live */
    UR_RECV_CANCEL = 1u << 2, /* a cancel of that recv is in flight */
    UR_SEND = 1u << 3,        /* a send is in flight */
    UR_EOF = 1u << 4,         /* recv returned 0: never re-arm */
    UR_CLOSING = 1u << 5,     /* waiting for inflight to drain, then close(fd) */
    UR_STARVED = 1u << 6,     /* on the starved list: re-armed when a buffer comes back */
    /* fixed-files: the socket is also in the ring's file table at index conn->index; its SQEs
     * name that index (IOSQE_FIXED_FILE). Off for a connection whose install failed. */
    UR_FIXED = 1u << 7,
    /* bundles: a receive filled a whole buffer, so this peer's frames span buffers; its recv
     * is (re-)armed as a bundle from then on. Until then it is a plain multishot recv, whose
     * one-buffer receive costs the kernel less (kernel-notes/26). */
    UR_BIG = 1u << 8,
    /* bundles: the live recv was armed as a bundle (its CQEs may take several buffers). */
    UR_RECV_BUNDLE = 1u << 9,
};

/* The send in flight (UR_SEND) has a context (struct ur_send: iovecs, msghdr, zc and lazy
 * state) only when it needs one; a plain send of one block goes without (send == NULL), so the
 * common reply touches no memory beyond the connection's slot (kernel-notes/17). */

#define BUF_GROUP 0

struct ur_send {
    struct ur_send *next_free;
    /* send-zc: the result CQE's res, kept until the notification CQE (kernel-notes/27). */
    int32_t zc_res;
    bool zc;         /* sent zero-copy: complete only after both CQEs */
    bool zc_got_res; /* the result CQE came */
    bool zc_done;    /* the notification came, or the result said none would (no F_MORE) */
    bool lazy;       /* lazy-reap: its completion is bookkeeping; a wait may sleep past it */
    struct msghdr msg;
    struct iovec iov[RW_SEND_IOV_MAX];
};

/* The backend's own state of one connection, in its backend bytes (conn.h): in the cache line
 * the completion path reads of the connection anyway. may_alias: those bytes are the core's
 * unsigned char array, read and written only through this type. */
struct __attribute__((may_alias)) ur_conn {
    uint32_t inflight;    /* operations whose last CQE is not yet reaped */
    uint32_t flags;       /* UR_* */
    struct ur_send *send; /* iovecs of the send in flight */
    /* Links on the starved list (recv ended with ENOBUFS, waiting for a buffer to come back
     * before it is re-armed); valid while flags has UR_STARVED. */
    struct rw_conn *starved_prev, *starved_next;
};

/*
 * A provided buffer's life: in the ring; taken by the kernel for a receive
 * (with inc-bufs it stays at the ring's head while the kernel keeps filling
 * it, IORING_CQE_F_BUF_MORE, and leaves when full); parsed by the core,
 * which may lend parts of it to queued replies (zc-replies, holds); back to
 * the ring once the kernel is done with it and nothing holds it.
 */
struct ur_buf {
    uint32_t off;   /* inc-bufs: bytes the kernel has filled so far */
    uint16_t holds; /* replies queued from it, plus one while the core parses it */
    bool out;       /* left the ring (the kernel is done with it): return when holds == 0 */
};

struct ur_backend {
    struct rw_loop *loop; /* opaque: only passed back to the rw__loop_on_* callbacks */
    /* Read from the loop once at init (backend.h): the data path calls no accessor. */
    struct rw_stats *stats;
    struct rw_conn *conns;
    uint32_t conn_cap;
    const int *listen_fds;
    uint32_t listen_count;
    int wake_fd;
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    uint8_t *bufs;
    struct ur_buf *buf_state;
    uint32_t buf_count;
    uint32_t buf_size;
    uint32_t bufs_out;       /* buffers out of the ring (taken, not yet returned) */
    uint32_t features;       /* active: enum rw_uring_feature */
    uint32_t ring_features;  /* IORING_FEAT_* of the ring */
    uint32_t sends_queued;   /* sends prepared this turn (min-wait: completions to wait past) */
    uint32_t sends_inflight; /* sends whose last CQE is not yet reaped */
    uint32_t lazy_inflight;  /* of those, the lazy ones (lazy-reap) */
    bool zc_report;          /* send-zc: the kernel takes IORING_SEND_ZC_REPORT_USAGE (6.2) */
    /* ring-timer: the newest timeout SQE in flight wakes the loop at timer_deadline_ms (0: none
     * armed); older ones still in flight (timers_inflight) only wake it early. */
    uint64_t timer_deadline_ms;
    uint32_t timer_seq;
    uint32_t clock_lag_ms; /* the loop's clock may be this far behind CLOCK_MONOTONIC */
    uint32_t timers_inflight;
    struct __kernel_timespec timer_ts; /* the newest one's, read by the kernel at submit */
    uint32_t bufs_to_advance;          /* returned to the ring, not yet published */
    /*
     * Re-arm credit for starved recvs: one per buffer given back to the ring,
     * at most buf_count, spent one per re-arm (kernel-notes/04). A recv that
     * ran out of buffers is re-armed only against a buffer that came back, so
     * an empty ring costs one ENOBUFS per buffer used, not one per connection
     * per buffer, and a ring that stays empty costs nothing.
     */
    uint32_t rearm_credit;
    struct rw_conn *starved_head, *starved_tail; /* FIFO of UR_STARVED connections */
    /*
     * bundles (kernel-notes/26): a bundle CQE names only its first buffer; the others are the
     * ring's next entries in ring order, which are not bid + 1 since buffers come back in any
     * order. So: buf_pos[bid] is the ring position (mod 2^16, as the kernel counts) bid was last
     * written at (the ring entry there names the bid), and slot_done[slot] says the kernel took
     * it and its CQE was handled out of ring order (a CQE at ring_head moves it on unmarked).
     * ring_head is the oldest position whose CQE was not handled yet: a slot is written again only
     * below ring_head + buf_count, so an entry the kernel took but whose CQE is still to come (CQEs
     * need not arrive in ring order) is never overwritten; a buffer returned while the ring is full
     * that way waits in deferred. NULL unless bundles are on.
     */
    uint16_t *buf_pos;
    uint8_t *slot_done;
    uint16_t *deferred;
    uint32_t deferred_count;
    uint16_t ring_head;
    uint32_t accept_live; /* bit i: listener i's multishot accept SQE has not ended */
    bool accept_want;
    bool wake_live;
    bool wait_in_poll; /* under valgrind: see uring_valgrind.h */
    bool fixed_warned; /* fixed-files: a table update failed once (logged once) */
    /* Send contexts: touched only when used (bump index), recycled through a free list. */
    struct ur_send *sends;
    uint32_t sends_used;
    struct ur_send *sends_free;
};

_Static_assert(RW_CONNS_MAX <= (1u << 24), "conn index fits user_data");
_Static_assert(sizeof(struct ur_conn) <= RW_BACKEND_CONN_BYTES, "fits the slot's backend bytes");
_Static_assert(RW_LISTEN_MAX <= 32u, "a bit of accept_live per listener");

static inline struct ur_conn *uc(struct rw_conn *c)
{
    return (struct ur_conn *)(void *)c->backend;
}

static inline uint64_t ud_conn(enum ur_op op, const struct rw_conn *c)
{
    return ((uint64_t)op << 56) | ((uint64_t)c->generation << 24) | c->index;
}

/* Point sqe (prepared with c->fd) at c's fixed-file slot when it has one (kernel-notes/25). */
static inline void ur_sqe_file(const struct ur_conn *cs, const struct rw_conn *c,
                               struct io_uring_sqe *sqe)
{
    if (cs->flags & UR_FIXED) {
        sqe->fd = (int)c->index;
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

/* A free SQE; when the SQ is full, what is queued goes to the kernel first. */
static inline struct io_uring_sqe *ur_sqe(struct ur_backend *ur)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ur->ring);
    if (sqe)
        return sqe;
    /* SQ full: hand what we have to the kernel now, then there is room. */
    rw__stat_add(ur->stats, RW_STAT_SQ_FULL, 1);
    rw__stat_add(ur->stats, RW_STAT_SUBMITS, 1);
    (void)io_uring_submit(&ur->ring);
    sqe = io_uring_get_sqe(&ur->ring);
    if (!sqe) {
        /* sqpoll: the submit only published the tail (and woke the SQ thread); wait until the
         * thread has taken some (IORING_ENTER_SQ_WAIT, kernel-notes/28). */
        (void)io_uring_sqring_wait(&ur->ring);
        sqe = io_uring_get_sqe(&ur->ring);
    }
    RW_ASSERT(sqe != NULL);
    return sqe;
}

/* ---- setup and teardown (uring_setup.c): ops->init, ops->destroy ---- */

int rw__ur_init(struct rw_loop *loop, void **out_be);
void rw__ur_destroy(void *be);

/* ---- accept and wake (uring_accept.c) ---- */

/* Arm the read of the wake eventfd (again after each wake). */
void rw__ur_arm_wake(struct ur_backend *ur);
/* ops->accept_start / accept_stop. */
int rw__ur_accept_start(void *be);
void rw__ur_accept_stop(void *be);
/* A CQE of a listener's multishot accept. */
void rw__ur_on_accept(struct ur_backend *ur, struct io_uring_cqe *cqe);

/* ---- fixed-files (uring_files.c) ---- */

/* ur_init with fixed-files on: the table (feature off, logged by worker 0, when refused). */
void rw__ur_fixed_setup(struct ur_backend *ur, int worker_id);
/* Put c's socket in the fixed table at c->index (UR_FIXED on success; else c keeps its fd). */
void rw__ur_fixed_install(struct ur_backend *ur, struct rw_conn *c);
/* close(c->fd), first emptying its fixed slot; only with nothing of c in flight. */
void rw__ur_close_fd(struct ur_backend *ur, struct rw_conn *c);

/* ---- the provided-buffer ring (uring_bufs.c) ---- */

int rw__ur_bufs_setup(struct ur_backend *ur, int worker_id);
/* Put buffer bid back in the ring (published by rw__ur_buf_publish). */
void rw__ur_buf_add(struct ur_backend *ur, uint32_t bid);
uint8_t *rw__ur_buf_taken(struct ur_backend *ur, uint32_t bid, uint32_t cqe_flags, int res);
/* bundles: a plain recv's CQE took buffer bid (one, in the ring mirror): where its data starts;
 * its slot is handled, and the buffer held once for the core while it parses. */
uint8_t *rw__ur_buf_taken_one(struct ur_backend *ur, uint32_t bid);
/* struct rw_rxbuf's hold and release (owner: the backend). */
bool rw__ur_buf_hold(void *owner, uint32_t bid);
void rw__ur_buf_release(void *owner, uint32_t bid);
/* bundles: allocate the ring mirror (before rw__ur_bufs_setup) / free it. 0 or -ENOMEM. */
int rw__ur_bundles_alloc(struct ur_backend *ur);
void rw__ur_bundles_free(struct ur_backend *ur);
/* bundles: the res > 0 bytes of a CQE whose first buffer is bid0: take the buffers they fill,
 * in ring order from bid0's position (*first_pos), out of the ring and each held once for the
 * core while it parses; how many. */
uint32_t rw__ur_bundle_take(struct ur_backend *ur, uint32_t bid0, uint32_t res,
                            uint32_t *first_pos);
/* bundles: the buffer at ring position pos of that CQE, and *len: its share of the left bytes
 * still to feed. */
uint32_t rw__ur_bundle_buf(struct ur_backend *ur, uint32_t pos, uint32_t left, uint32_t *len);
/* bundles: that CQE's n buffers are handled: their ring slots may be written again. */
void rw__ur_bundle_done(struct ur_backend *ur, uint32_t first_pos, uint32_t n);
/* Make the buffers returned since the last call visible to the kernel. */
void rw__ur_buf_publish(struct ur_backend *ur);
/* c's recv ended with ENOBUFS: queue it (FIFO) until a buffer comes back for it. */
void rw__ur_starve(struct ur_backend *ur, struct rw_conn *c);
/* Take c off the starved list (pause, close, re-arm). */
void rw__ur_unstarve(struct ur_backend *ur, struct rw_conn *c);

/* ---- sends (uring_send.c) and the end of an operation (uring.c) ---- */

/* ops->flush: queue one gathered send of c's output unless one is in flight; 0 or -errno. */
int rw__ur_flush(void *be, struct rw_conn *c);
/* A CQE of c's send (both of a zero-copy one): the core hears once the send is complete. */
void rw__ur_on_send(struct ur_backend *ur, struct rw_conn *c, const struct io_uring_cqe *cqe);
/* lazy-reap: the core now acts on s's completion (a flush waits on it, reading may resume). */
void rw__ur_send_urgent(struct ur_backend *ur, struct ur_send *s);
/* After an operation of c ended: close and release once nothing is in flight. */
void rw__ur_op_done(struct ur_backend *ur, struct rw_conn *c);

#endif
