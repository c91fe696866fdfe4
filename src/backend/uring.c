/*
 * The io_uring backend. Multishot accept; multishot recv selecting buffers
 * from one ring-mapped provided-buffer ring per loop (buffers go back to the
 * ring as soon as the core has parsed them); at most one gathered send in
 * flight per connection; every SQE of a loop turn reaches the kernel in one
 * io_uring_submit_and_wait_timeout. A multishot that ends (CQE without
 * IORING_CQE_F_MORE: overflow, cancel, error) is re-armed here when the core
 * still wants it; one that ended because the buffer ring ran dry (ENOBUFS)
 * waits on the starved list until a buffer comes back for it. A connection
 * is released only after the last CQE of every operation it had in flight.
 * See kernel-notes/ for each feature.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rw_assert.h"
#include "lazymem.h"
#include "backend.h"
#include "backends.h"
#include "rw_limits.h"
#include "log.h"
#include "stats.h"
#include "uring_compat.h"
#include "uring_features.h"
#include "uring_valgrind.h"

enum ur_op { OP_ACCEPT = 1, OP_WAKE, OP_RECV, OP_SEND, OP_CANCEL, OP_ACCEPT_CANCEL };

/* Per-connection bits in struct ur_conn's flags. */
enum {
    UR_WANT_READ = 1u << 0,   /* the core wants data (not paused) */
    UR_RECV_ARMED = 1u << 1,  /* a multishot recv is live */
    UR_RECV_CANCEL = 1u << 2, /* a cancel of that recv is in flight */
    UR_SEND = 1u << 3,        /* a send is in flight */
    UR_EOF = 1u << 4,         /* recv returned 0: never re-arm */
    UR_CLOSING = 1u << 5,     /* waiting for inflight to drain, then close(fd) */
    UR_STARVED = 1u << 6,     /* on the starved list: re-armed when a buffer comes back */
};

#define BUF_GROUP 0

struct ur_send {
    struct ur_send *next_free;
    struct msghdr msg;
    struct iovec iov[RW_SEND_IOV_MAX];
};

/* The backend's own state of one connection: conn_state[conn->index]. */
struct ur_conn {
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
    uint32_t bufs_out;        /* buffers out of the ring (taken, not yet returned) */
    uint32_t features;        /* active: enum rw_uring_feature */
    uint32_t ring_features;   /* IORING_FEAT_* of the ring */
    uint32_t sends_queued;    /* sends prepared this turn (min-wait: completions to wait past) */
    uint32_t bufs_to_advance; /* returned to the ring, not yet published */
    /*
     * Re-arm credit for starved recvs: one per buffer given back to the ring,
     * at most buf_count, spent one per re-arm (kernel-notes/04). A recv that
     * ran out of buffers is re-armed only against a buffer that came back, so
     * an empty ring costs one ENOBUFS per buffer used, not one per connection
     * per buffer, and a ring that stays empty costs nothing.
     */
    uint32_t rearm_credit;
    struct rw_conn *starved_head, *starved_tail; /* FIFO of UR_STARVED connections */
    uint32_t accept_live; /* bit i: listener i's multishot accept SQE has not ended */
    bool accept_want;
    bool wake_live;
    bool wait_in_poll; /* under valgrind: see uring_valgrind.h */
    uint64_t wake_value;
    /* Per-connection state, sized for the table and touched as slots are used (lazymem.h). */
    struct ur_conn *conn_state;
    /* Send contexts: touched only when used (bump index), recycled through a free list. */
    struct ur_send *sends;
    uint32_t sends_used;
    struct ur_send *sends_free;
};

_Static_assert(RW_CONNS_MAX <= (1u << 24), "conn index fits user_data");
_Static_assert(RW_LISTEN_MAX <= 32u, "a bit of accept_live per listener");

static struct ur_conn *uc(struct ur_backend *ur, const struct rw_conn *c)
{
    return &ur->conn_state[c->index];
}

static uint64_t ud_conn(enum ur_op op, const struct rw_conn *c)
{
    return ((uint64_t)op << 56) | ((uint64_t)c->generation << 24) | c->index;
}

static struct io_uring_sqe *ur_sqe(struct ur_backend *ur)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ur->ring);
    if (sqe)
        return sqe;
    /* SQ full: hand what we have to the kernel now, then there is room. */
    rw__stat_add(ur->stats, RW_STAT_SQ_FULL, 1);
    rw__stat_add(ur->stats, RW_STAT_SUBMITS, 1);
    (void)io_uring_submit(&ur->ring);
    sqe = io_uring_get_sqe(&ur->ring);
    RW_ASSERT(sqe != NULL);
    return sqe;
}

static int ur_setup_ring(struct ur_backend *ur)
{
    /* Most capable first; older kernels reject unknown flags with EINVAL (kernel-notes/02). */
    static const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
        0,
    };
    /* With DEFER_TASKRUN completions wait for the task's next io_uring_enter, so
     * poll() on the ring fd (the valgrind wait) would never wake: skip it there. */
    size_t first = ur->wait_in_poll ? 1 : 0;
    int rc = -EINVAL;
    for (size_t i = first; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = RW_URING_SQ_ENTRIES * 8;
        rc = io_uring_queue_init_params(RW_URING_SQ_ENTRIES, &ur->ring, &p);
        if (rc != -EINVAL) {
            ur->ring_features = p.features;
            return rc;
        }
    }
    return rc;
}

static void ur_buf_add(struct ur_backend *ur, uint32_t bid)
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
    ur_buf_add(ur, bid);
    if (ur->rearm_credit < ur->buf_count)
        ur->rearm_credit++;
}

/* zc-replies: lend buffer bid to a queued reply, unless the ring runs low (then: copy). */
static bool ur_buf_hold(void *owner, uint32_t bid)
{
    struct ur_backend *ur = owner;
    if (ur->buf_count - ur->bufs_out < ur->buf_count / RW_ZC_RING_LOW_DIV)
        return false;
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->holds > 0 && b->holds < UINT16_MAX);
    b->holds++;
    return true;
}

static void ur_buf_release(void *owner, uint32_t bid)
{
    struct ur_backend *ur = owner;
    struct ur_buf *b = &ur->buf_state[bid];
    RW_ASSERT(b->holds > 0);
    if (--b->holds == 0 && b->out)
        ur_buf_return(ur, bid);
}

static void ur_buf_publish(struct ur_backend *ur)
{
    if (ur->bufs_to_advance) {
        io_uring_buf_ring_advance(ur->br, (int)ur->bufs_to_advance);
        ur->bufs_to_advance = 0;
    }
}

static void ur_arm_wake(struct ur_backend *ur)
{
    struct io_uring_sqe *sqe = ur_sqe(ur);
    io_uring_prep_read(sqe, ur->wake_fd, &ur->wake_value, sizeof(ur->wake_value), 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)OP_WAKE << 56);
    ur->wake_live = true;
}

static int ur_init(struct rw_loop *loop, void **out_be)
{
    const struct rw_options *cfg = rw__loop_config(loop);
    int worker_id = rw__loop_worker_id(loop);
    struct ur_backend *ur = calloc(1, sizeof(*ur));
    if (!ur)
        return -ENOMEM;
    int rc;
    ur->loop = loop;
    ur->stats = rw__loop_stats(loop);
    ur->conns = rw__loop_conns(loop);
    ur->conn_cap = rw__loop_conn_cap(loop);
    ur->listen_fds = rw__loop_listen_fds(loop, &ur->listen_count);
    ur->wake_fd = rw__loop_wake_fd(loop);
    ur->wait_in_poll = rw__under_valgrind();
    ur->buf_count = cfg->buf_count;
    ur->buf_size = cfg->buf_size_bytes;
    /* Touched only when used (bump index): sized for --max-conns, costing the pages used. */
    ur->sends = rw__lazy_calloc(ur->conn_cap, sizeof(*ur->sends));
    ur->conn_state = rw__lazy_calloc(ur->conn_cap, sizeof(*ur->conn_state));
    /* The kernel writes each buffer when it first picks it: untouched until then (lazymem.h). */
    ur->bufs = rw__lazy_calloc(ur->buf_count, ur->buf_size);
    ur->buf_state = calloc(ur->buf_count, sizeof(*ur->buf_state)); /* 8 bytes a buffer */
    ur->features = cfg->uring_features;
    if (!ur->sends || !ur->conn_state || !ur->bufs || !ur->buf_state) {
        rc = -ENOMEM;
        goto err_free;
    }
    rc = ur_setup_ring(ur);
    if (rc < 0)
        goto err_free;
    if (ur->features & RW_UF_REG_RING) {
        /* io_uring_enter then finds the ring without an fd table lookup (kernel-notes/20). */
        if (io_uring_register_ring_fd(&ur->ring) != 1) {
            ur->features &= ~RW_UF_REG_RING;
            if (worker_id == 0)
                RW_INFO("uring feature reg-ring: refused by the kernel (needs 5.18); off");
        }
    }
    if ((ur->features & RW_UF_MIN_WAIT) &&
        (!(ur->ring_features & RWC_FEAT_MIN_TIMEOUT) || ur->wait_in_poll)) {
        ur->features &= ~RW_UF_MIN_WAIT;
        if (worker_id == 0 && !ur->wait_in_poll)
            RW_INFO("uring feature min-wait: the kernel lacks IORING_FEAT_MIN_TIMEOUT (6.12); off");
    }
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
        goto err_ring;
    for (uint32_t bid = 0; bid < ur->buf_count; bid++)
        ur_buf_add(ur, bid);
    ur_buf_publish(ur);
    rw__loop_set_zc_min_bytes(loop, RW_ZC_MIN_BYTES);
    if (worker_id == 0)
        rw__uring_features_format(ur->features, rw__stats_uring_features,
                                  sizeof(rw__stats_uring_features));
    ur_arm_wake(ur);
    *out_be = ur;
    return 0;

err_ring:
    io_uring_queue_exit(&ur->ring);
err_free:
    rw__lazy_free(ur->bufs, ur->buf_count, ur->buf_size);
    rw__lazy_free(ur->sends, ur->conn_cap, sizeof(*ur->sends));
    rw__lazy_free(ur->conn_state, ur->conn_cap, sizeof(*ur->conn_state));
    free(ur->buf_state);
    free(ur);
    return rc;
}

static void ur_destroy(void *be)
{
    struct ur_backend *ur = be;
    rwc_free_buf_ring(&ur->ring, ur->br, ur->buf_count, BUF_GROUP);
    io_uring_queue_exit(&ur->ring); /* cancels whatever is still in flight */
    rw__lazy_free(ur->bufs, ur->buf_count, ur->buf_size);
    rw__lazy_free(ur->sends, ur->conn_cap, sizeof(*ur->sends));
    rw__lazy_free(ur->conn_state, ur->conn_cap, sizeof(*ur->conn_state));
    free(ur->buf_state);
    free(ur);
}

/* One multishot accept per listener; user_data carries the listener's index. */
static uint64_t ud_accept(enum ur_op op, uint32_t listener)
{
    return ((uint64_t)op << 56) | listener;
}

static void ur_arm_accept(struct ur_backend *ur, uint32_t listener)
{
    RW_ASSERT(listener < ur->listen_count);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    /* Blocking sockets: io_uring waits by itself; CLOEXEC so children never inherit them. */
    io_uring_prep_multishot_accept(sqe, ur->listen_fds[listener], NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, ud_accept(OP_ACCEPT, listener));
    ur->accept_live |= 1u << listener;
}

static int ur_accept_start(void *be)
{
    struct ur_backend *ur = be;
    ur->accept_want = true;
    for (uint32_t i = 0; i < ur->listen_count; i++)
        if (!(ur->accept_live & (1u << i)))
            ur_arm_accept(ur, i); /* else: an ending one is re-armed when its last CQE comes */
    return 0;
}

static void ur_accept_stop(void *be)
{
    struct ur_backend *ur = be;
    if (!ur->accept_want)
        return;
    ur->accept_want = false;
    for (uint32_t i = 0; i < ur->listen_count; i++) {
        if (!(ur->accept_live & (1u << i)))
            continue;
        struct io_uring_sqe *sqe = ur_sqe(ur);
        io_uring_prep_cancel64(sqe, ud_accept(OP_ACCEPT, i), 0);
        io_uring_sqe_set_data64(sqe, ud_accept(OP_ACCEPT_CANCEL, i));
    }
}

static void ur_arm_recv(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(ur, c);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    io_uring_sqe_set_data64(sqe, ud_conn(OP_RECV, c));
    cs->flags |= UR_RECV_ARMED;
    cs->inflight++;
}

/* c's recv ended with ENOBUFS: queue it (FIFO) until a buffer comes back for it. */
static void ur_starve(struct ur_backend *ur, struct rw_conn *c)
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
static void ur_unstarve(struct ur_backend *ur, struct rw_conn *c)
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

/*
 * End of a turn, buffers published: re-arm starved recvs, oldest first, one
 * per credit. Every credit stands for a buffer back in the ring, so each
 * re-arm either takes a buffer (a data CQE: progress, and the buffer earns
 * the credit back) or finds the ring emptied again by others, whose data
 * CQEs bring credit in turn. Nothing is re-armed while no buffer comes back.
 */
static void ur_rearm_starved(struct ur_backend *ur)
{
    while (ur->starved_head && ur->rearm_credit > 0) {
        struct rw_conn *c = ur->starved_head;
        ur_unstarve(ur, c);
        RW_ASSERT(c->state == RW_CONN_OPEN);
        RW_ASSERT(uc(ur, c)->flags & UR_WANT_READ);
        ur->rearm_credit--;
        rw__stat_add(ur->stats, RW_STAT_REARM_RECV_NOBUFS, 1);
        ur_arm_recv(ur, c);
    }
}

static int ur_conn_open(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    /* A slot's state is whatever its last connection left: start afresh. */
    *uc(ur, c) = (struct ur_conn){.flags = UR_WANT_READ};
    ur_arm_recv(ur, c);
    return 0;
}

static void ur_cancel(struct ur_backend *ur, struct rw_conn *c, uint64_t target, unsigned flags)
{
    struct ur_conn *cs = uc(ur, c);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    if (flags & IORING_ASYNC_CANCEL_FD)
        io_uring_prep_cancel_fd(sqe, c->fd, flags);
    else
        io_uring_prep_cancel64(sqe, target, flags);
    io_uring_sqe_set_data64(sqe, ud_conn(OP_CANCEL, c));
    cs->inflight++;
}

static void ur_read_pause(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(ur, c);
    cs->flags &= ~UR_WANT_READ;
    ur_unstarve(ur, c); /* read_resume arms it again */
    if ((cs->flags & UR_RECV_ARMED) && !(cs->flags & UR_RECV_CANCEL)) {
        /* Data CQEs already posted still reach the core; the bound is a few buffers. */
        cs->flags |= UR_RECV_CANCEL;
        ur_cancel(ur, c, ud_conn(OP_RECV, c), 0);
    }
}

static void ur_read_resume(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(ur, c);
    cs->flags |= UR_WANT_READ;
    if (!(cs->flags & (UR_RECV_ARMED | UR_EOF | UR_STARVED)))
        ur_arm_recv(ur, c);
}

static int ur_flush(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(ur, c);
    if (cs->flags & UR_SEND)
        return 0; /* one send in flight per connection keeps the order */
    struct ur_send *s = ur->sends_free;
    if (s)
        ur->sends_free = s->next_free;
    else
        s = &ur->sends[ur->sends_used++];
    RW_ASSERT(ur->sends_used <= ur->conn_cap);
    size_t count = rw__outq_gather(&c->outq, s->iov, RW_SEND_IOV_MAX);
    RW_ASSERT(count > 0);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    if (count == 1) {
        io_uring_prep_send(sqe, c->fd, s->iov[0].iov_base, s->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        memset(&s->msg, 0, sizeof(s->msg));
        s->msg.msg_iov = s->iov;
        s->msg.msg_iovlen = count;
        io_uring_prep_sendmsg(sqe, c->fd, &s->msg, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data64(sqe, ud_conn(OP_SEND, c));
    cs->send = s;
    cs->flags |= UR_SEND;
    ur->sends_queued++;
    cs->inflight++;
    rw__stat_add(ur->stats, RW_STAT_SEND_CALLS, 1);
    return 0;
}

static bool ur_close(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(ur, c);
    cs->flags |= UR_CLOSING;
    cs->flags &= ~UR_WANT_READ;
    ur_unstarve(ur, c);
    if (cs->inflight == 0) {
        close(c->fd);
        return true;
    }
    /* Cancel everything on the fd; the slot is released after the last CQE (kernel-notes/06). */
    ur_cancel(ur, c, 0, IORING_ASYNC_CANCEL_FD | IORING_ASYNC_CANCEL_ALL);
    return false;
}

/* After an operation of c ended: close and release once nothing is in flight. */
static void ur_op_done(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(ur, c);
    RW_ASSERT(cs->inflight > 0);
    cs->inflight--;
    if ((cs->flags & UR_CLOSING) && cs->inflight == 0) {
        close(c->fd);
        rw__conn_on_released(c);
    }
}

static void ur_on_recv(struct ur_backend *ur, struct rw_conn *c, struct io_uring_cqe *cqe)
{
    struct ur_conn *cs = uc(ur, c);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;
    if (!more)
        cs->flags &= ~(UR_RECV_ARMED | UR_RECV_CANCEL);
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        RW_ASSERT(bid < ur->buf_count);
        struct ur_buf *b = &ur->buf_state[bid];
        RW_ASSERT(!b->out);
        uint8_t *buf = ur->bufs + (size_t)bid * ur->buf_size + b->off;
        if ((ur->features & RW_UF_INC_BUFS) && (cqe->flags & RWC_CQE_F_BUF_MORE)) {
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
        if (res > 0 && c->state == RW_CONN_OPEN) {
            rw__vg_defined(buf, (size_t)res); /* the kernel wrote it: valgrind cannot see that */
            if (ur->features & RW_UF_ZC_REPLIES) {
                struct rw_rxbuf rx = {.base = buf,
                                      .len = (size_t)res,
                                      .owner = ur,
                                      .id = bid,
                                      .hold = ur_buf_hold,
                                      .release = ur_buf_release};
                rw__conn_on_data_buf(c, buf, (size_t)res, &rx);
            } else {
                rw__conn_on_data(c, buf, (size_t)res);
            }
        }
        /* Parsed (or copied, or lent to replies) already: back to the ring unless held. */
        ur_buf_release(ur, bid);
    }
    if (res == 0) {
        cs->flags |= UR_EOF;
        if (c->state == RW_CONN_OPEN)
            rw__conn_on_eof(c);
    } else if (res < 0 && res != -ENOBUFS && res != -ECANCELED) {
        cs->flags |= UR_EOF; /* a failed socket: do not re-arm */
        if (c->state == RW_CONN_OPEN)
            rw__conn_on_error(c, res);
    }
    /* A credit spent on a recv that ended taking no buffer, for a reason other than an
     * empty ring (EOF, error, cancel), comes back: otherwise the starved could wait for a
     * buffer return that never comes. */
    if (!more && !(cqe->flags & IORING_CQE_F_BUFFER) && res != -ENOBUFS &&
        ur->rearm_credit < ur->buf_count)
        ur->rearm_credit++;
    if (!more && c->state == RW_CONN_OPEN && (cs->flags & UR_WANT_READ) &&
        !(cs->flags & (UR_EOF | UR_CLOSING))) {
        if (res == -ENOBUFS) {
            ur_starve(ur, c);
        } else {
            rw__stat_add(ur->stats, RW_STAT_REARM_RECV_OTHER, 1);
            ur_arm_recv(ur, c);
        }
    }
    if (!more)
        ur_op_done(ur, c);
}

static void ur_on_send(struct ur_backend *ur, struct rw_conn *c, int res)
{
    struct ur_conn *cs = uc(ur, c);
    struct ur_send *s = cs->send;
    s->next_free = ur->sends_free;
    ur->sends_free = s;
    cs->send = NULL;
    cs->flags &= ~UR_SEND;
    if (c->state == RW_CONN_OPEN)
        rw__conn_on_sent(c, res == 0 ? -EPIPE : res);
    ur_op_done(ur, c);
}

static void ur_on_accept(struct ur_backend *ur, struct io_uring_cqe *cqe)
{
    uint32_t listener = (uint32_t)(io_uring_cqe_get_data64(cqe) & 0xffffffu);
    RW_ASSERT(listener < ur->listen_count);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (!more)
        ur->accept_live &= ~(1u << listener);
    if (cqe->res >= 0) {
        rw__loop_on_accept(ur->loop, cqe->res);
    } else if (cqe->res != -ECANCELED && ur->accept_want && !more) {
        /* The core backs off (EMFILE...): its accept_stop cancels the other listeners' accepts,
         * and it asks again later. */
        rw__loop_on_accept_error(ur->loop, cqe->res);
        return;
    }
    if (!(ur->accept_live & (1u << listener)) && ur->accept_want) {
        rw__stat_add(ur->stats, RW_STAT_REARM_ACCEPT, 1);
        ur_arm_accept(ur, listener);
    }
}

static void ur_dispatch(struct ur_backend *ur, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    enum ur_op op = (enum ur_op)(ud >> 56);
    if (op == OP_ACCEPT) {
        ur_on_accept(ur, cqe);
        return;
    }
    if (op == OP_ACCEPT_CANCEL)
        return;
    if (op == OP_WAKE) {
        ur->wake_live = false;
        rw__loop_on_wake(ur->loop);
        ur_arm_wake(ur);
        return;
    }
    /* A slot is never reused while it has a CQE to come, so this is always the owner. */
    struct rw_conn *c = &ur->conns[ud & 0xffffffu];
    RW_ASSERT(c->generation == (uint32_t)(ud >> 24));
    RW_ASSERT(c->state != RW_CONN_FREE);
    switch (op) {
    case OP_RECV:
        ur_on_recv(ur, c, cqe);
        break;
    case OP_SEND:
        ur_on_send(ur, c, cqe->res);
        break;
    case OP_CANCEL:
        ur_op_done(ur, c);
        break;
    default:
        RW_ASSERT(!"unknown user_data op");
    }
}

/* Under valgrind (uring_valgrind.h): submit, sleep in poll() on the ring fd, then reap. */
static int ur_submit_and_poll(struct ur_backend *ur, int timeout_ms)
{
    int rc = io_uring_submit(&ur->ring);
    if (rc < 0)
        return rc;
    if (io_uring_cq_ready(&ur->ring) == 0) {
        struct pollfd p = {.fd = ur->ring.ring_fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
            return -errno;
    }
    rc = io_uring_get_events(&ur->ring); /* flushes pending completions; never blocks */
    return rc < 0 ? rc : 0;
}

static int ur_wait(void *be, int timeout_ms)
{
    struct ur_backend *ur = be;
    struct rw_stats *stats = ur->stats;
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
    ur_buf_publish(ur);
    int rc;
    if (ur->wait_in_poll) {
        rc = ur_submit_and_poll(ur, timeout_ms);
    } else if ((ur->features & RW_UF_MIN_WAIT) && ur->sends_queued > 0) {
        /* Sends mostly complete inline, during this very call: wait past their CQEs for one
         * more event (the next request, typically), but never longer than RW_URING_MIN_WAIT_US
         * once something is there (kernel-notes/21). */
        unsigned wait_nr = ur->sends_queued + 1;
        if (wait_nr > RW_URING_CQE_BATCH)
            wait_nr = RW_URING_CQE_BATCH;
        rc = rwc_submit_and_wait_min(&ur->ring, wait_nr, RW_URING_MIN_WAIT_US,
                                     timeout_ms >= 0 ? &ts : NULL,
                                     (ur->features & RW_UF_REG_RING) != 0);
    } else {
        rc = io_uring_submit_and_wait_timeout(&ur->ring, &cqe, 1, timeout_ms >= 0 ? &ts : NULL,
                                              NULL);
    }
    ur->sends_queued = 0;
    rw__stat_add(stats, RW_STAT_SUBMITS, 1);
    rw__stat_add(stats, RW_STAT_WAIT_CALLS, 1);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    unsigned head;
    unsigned seen = 0;
    io_uring_for_each_cqe(&ur->ring, head, cqe)
    {
        ur_dispatch(ur, cqe);
        if (++seen == RW_URING_CQE_BATCH)
            break;
    }
    io_uring_cq_advance(&ur->ring, seen);
    rw__stat_add(stats, RW_STAT_CQES, seen);
    ur_buf_publish(ur);
    ur_rearm_starved(ur);
    return 0;
}

const struct rw_backend_ops rw__uring_ops = {
    .name = "uring",
    .init = ur_init,
    .destroy = ur_destroy,
    .accept_start = ur_accept_start,
    .accept_stop = ur_accept_stop,
    .conn_open = ur_conn_open,
    .read_pause = ur_read_pause,
    .read_resume = ur_read_resume,
    .flush = ur_flush,
    .close = ur_close,
    .wait = ur_wait,
};
