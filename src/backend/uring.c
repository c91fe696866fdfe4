/*
 * The io_uring backend. Multishot accept; multishot recv selecting buffers from one
 * ring-mapped provided-buffer ring per loop (back to the ring once the core parsed them); at
 * most one gathered send in flight per connection; every SQE of a turn reaches the kernel in
 * one io_uring_enter. A multishot that ends (no IORING_CQE_F_MORE: overflow, cancel, error)
 * is re-armed when the core still wants it; one that ran the buffer ring dry (ENOBUFS) waits
 * on the starved list until a buffer comes back (buffers and the starved list: uring_bufs.c;
 * accepts and the wake read: uring_accept.c; sends: uring_send.c; setup: uring_setup.c). A
 * connection is released only after the last CQE of every operation it had in flight. kernel-notes/
 * per feature.
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
#include "uring_impl.h"
#include "uring_valgrind.h"

static void ur_arm_recv(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    /* One multishot recv a connection at most: two would share UR_RECV_ARMED and inflight. */
    RW_ASSERT(!(cs->flags & (UR_RECV_ARMED | UR_STARVED)));
    struct io_uring_sqe *sqe = ur_sqe(ur);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    ur_sqe_file(cs, c, sqe);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BUF_GROUP;
    cs->flags &= ~UR_RECV_BUNDLE;
    if ((ur->features & RW_UF_BUNDLES) && (cs->flags & UR_BIG)) {
        sqe->ioprio |= RWC_RECVSEND_BUNDLE; /* recv flags live in ioprio */
        cs->flags |= UR_RECV_BUNDLE;
    }
    io_uring_sqe_set_data64(sqe, ud_conn(OP_RECV, c));
    cs->flags |= UR_RECV_ARMED;
    cs->inflight++;
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
        rw__ur_unstarve(ur, c);
        RW_ASSERT(c->state == RW_CONN_OPEN);
        RW_ASSERT(uc(c)->flags & UR_WANT_READ);
        ur->rearm_credit--;
        rw__stat_add(ur->stats, RW_STAT_REARM_RECV_NOBUFS, 1);
        ur_arm_recv(ur, c);
    }
}

static int ur_conn_open(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    /* A slot's state is whatever its last connection left: start afresh. */
    *uc(c) = (struct ur_conn){.flags = UR_WANT_READ};
    if (ur->features & RW_UF_FIXED_FILES)
        rw__ur_fixed_install(ur, c);
    ur_arm_recv(ur, c);
    return 0;
}

/* Cancel c's operation whose user_data is target (found by hash; its own CQE still comes). */
static void ur_cancel(struct ur_backend *ur, struct rw_conn *c, uint64_t target)
{
    struct ur_conn *cs = uc(c);
    struct io_uring_sqe *sqe = ur_sqe(ur);
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, ud_conn(OP_CANCEL, c));
    cs->inflight++;
    rw__stat_add(ur->stats, RW_STAT_CANCELS, 1);
}

/* End c's live multishot recv (once): its last CQE comes, and re-arms it if the core wants. */
static void ur_recv_end(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    if ((cs->flags & UR_RECV_ARMED) && !(cs->flags & UR_RECV_CANCEL)) {
        cs->flags |= UR_RECV_CANCEL;
        ur_cancel(ur, c, ud_conn(OP_RECV, c));
    }
}

static void ur_read_pause(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(c);
    cs->flags &= ~UR_WANT_READ;
    if (cs->flags & UR_SEND)
        rw__ur_send_urgent(ur, cs->send); /* its completion may resume reading */
    rw__ur_unstarve(ur, c);               /* read_resume arms it again */
    /* Data CQEs already posted still reach the core; the bound is a few buffers. */
    ur_recv_end(ur, c);
}

static void ur_read_resume(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(c);
    cs->flags |= UR_WANT_READ;
    if (!(cs->flags & (UR_RECV_ARMED | UR_EOF | UR_STARVED)))
        ur_arm_recv(ur, c);
}

/* The multishot recv has ended (its last CQE reaped): every byte it took reached the core. */
static bool ur_read_idle(void *be, struct rw_conn *c)
{
    (void)be;
    return !(uc(c)->flags & UR_RECV_ARMED);
}

static bool ur_close(void *be, struct rw_conn *c)
{
    struct ur_backend *ur = be;
    struct ur_conn *cs = uc(c);
    cs->flags |= UR_CLOSING;
    cs->flags &= ~UR_WANT_READ;
    rw__ur_unstarve(ur, c);
    if (cs->inflight == 0) {
        rw__ur_close_fd(ur, c);
        return true;
    }
    if ((cs->flags & UR_SEND) && cs->send && cs->send->zc) {
        /*
         * send-zc: the notification comes only once the socket lets go of our pages, and a
         * peer that does not read (or a dead one, after TCP_USER_TIMEOUT) never makes it, so the
         * slot would wait for ever (and a drain with it). A disconnect (connect AF_UNSPEC:
         * tcp_disconnect) drops the queued data and resets the peer, as close would after
         * SO_LINGER 0; the fd stays ours until the last CQE. Only closes that give up on
         * unsent replies get here: a graceful one waits for every send to complete.
         */
        struct sockaddr sa = {.sa_family = AF_UNSPEC};
        (void)connect(c->fd, &sa, sizeof(sa));
    }
    /*
     * Cancel what is still live, each by its user_data, which the kernel finds by hash; the
     * slot is released after the last CQE (kernel-notes/06). Not one cancel by fd: that walks
     * the ring's whole poll table, every connection's recv, for each close (a drain or an idle
     * reap of N connections: N^2). A close from the last CQE of its only operation (the
     * peer's FIN or RST, the send that completed the replies) has nothing live: no cancel.
     */
    ur_recv_end(ur, c);
    if (cs->flags & UR_SEND)
        ur_cancel(ur, c, ud_conn(OP_SEND, c));
    return false;
}

/* After an operation of c ended: close and release once nothing is in flight. */
void rw__ur_op_done(struct ur_backend *ur, struct rw_conn *c)
{
    struct ur_conn *cs = uc(c);
    RW_ASSERT(cs->inflight > 0);
    cs->inflight--;
    if ((cs->flags & UR_CLOSING) && cs->inflight == 0) {
        rw__ur_close_fd(ur, c);
        rw__conn_on_released(c);
    }
}

/* Hand res bytes of buffer bid at buf to the core (unless the connection is no longer open). */
static void ur_feed(struct ur_backend *ur, struct rw_conn *c, uint8_t *buf, int res, uint32_t bid)
{
    if (res <= 0 || c->state != RW_CONN_OPEN)
        return;
    rw__vg_defined(buf, (size_t)res); /* the kernel wrote it: valgrind cannot see that */
    if (ur->features & RW_UF_ZC_REPLIES) {
        struct rw_rxbuf rx = {.base = buf,
                              .len = (size_t)res,
                              .owner = ur,
                              .id = bid,
                              .hold = rw__ur_buf_hold,
                              .release = rw__ur_buf_release};
        rw__conn_on_data_buf(c, buf, (size_t)res, &rx);
    } else {
        rw__conn_on_data(c, buf, (size_t)res);
    }
}

/*
 * bundles: a plain recv's CQE took buffer bid, res > 0 bytes. A recv that filled its buffer
 * says this peer's frames span buffers: its recv ends (its last CQE re-arms it, as a bundle;
 * data CQEs already posted still come first, in order) and is a bundle for the connection's
 * life. The buffer's slot is handled before the core parses it, so the buffer goes straight
 * back to the ring when released, not through the full ring's deferred list.
 */
static void ur_on_plain_recv(struct ur_backend *ur, struct rw_conn *c, uint32_t bid, int res)
{
    struct ur_conn *cs = uc(c);
    if (!(cs->flags & UR_BIG) && (uint32_t)res >= ur->buf_size) {
        cs->flags |= UR_BIG;
        rw__stat_add(ur->stats, RW_STAT_RECV_BUNDLE_SWITCHES, 1);
        ur_recv_end(ur, c);
    }
    uint8_t *buf = rw__ur_buf_taken_one(ur, bid);
    ur_feed(ur, c, buf, res, bid);
    rw__ur_buf_release(ur, bid);
}

/*
 * bundles: res bytes of a bundle recv's CQE, in the buffers the kernel took in ring order from
 * bid0's slot, each full but the last (the first may be shorter: kernel-notes/26); each goes
 * to the core in order, as one receive of its own (so zc-replies lends and releases per buffer),
 * and back to the ring unless held.
 */
static void ur_on_bundle(struct ur_backend *ur, struct rw_conn *c, uint32_t bid0, uint32_t res)
{
    uint32_t first_pos;
    uint32_t n = rw__ur_bundle_take(ur, bid0, res, &first_pos);
    if (n == 1) {
        /* The common case, one buffer: its slot is handled before the core parses it (its
         * length is res, nothing more is read from the ring entry), so the buffer goes
         * straight back to the ring when released, not through the full ring's deferred list. */
        rw__ur_bundle_done(ur, first_pos, 1);
        ur_feed(ur, c, ur->bufs + (size_t)bid0 * ur->buf_size, (int)res, bid0);
        rw__ur_buf_release(ur, bid0);
        return;
    }
    rw__stat_add(ur->stats, RW_STAT_RECV_BUNDLES, 1);
    rw__stat_add(ur->stats, RW_STAT_RECV_BUNDLE_BUFS, n);
    uint32_t left = res;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len;
        uint32_t bid = rw__ur_bundle_buf(ur, first_pos + i, left, &len);
        ur_feed(ur, c, ur->bufs + (size_t)bid * ur->buf_size, (int)len, bid);
        rw__ur_buf_release(ur, bid);
        left -= len;
    }
    RW_ASSERT(left == 0);
    rw__ur_bundle_done(ur, first_pos, n);
}

static void ur_on_recv(struct ur_backend *ur, struct rw_conn *c, struct io_uring_cqe *cqe)
{
    struct ur_conn *cs = uc(c);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    int res = cqe->res;
    bool took = false; /* the CQE took a buffer out of the ring */
    bool bundle = cs->flags & UR_RECV_BUNDLE;
    if (!more)
        cs->flags &= ~(UR_RECV_ARMED | UR_RECV_CANCEL | UR_RECV_BUNDLE);
    if ((cqe->flags & IORING_CQE_F_BUFFER) && (ur->features & RW_UF_BUNDLES)) {
        /* A bundle that received nothing took no buffer, whatever the flags say
         * (io_bundle_nbufs). */
        took = res > 0;
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        if (took && bundle)
            ur_on_bundle(ur, c, bid, (uint32_t)res);
        else if (took)
            ur_on_plain_recv(ur, c, bid, res);
    } else if (cqe->flags & IORING_CQE_F_BUFFER) {
        took = true;
        uint32_t bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *buf = rw__ur_buf_taken(ur, bid, cqe->flags, res);
        ur_feed(ur, c, buf, res, bid);
        /* Parsed (or copied, or lent to replies) already: back to the ring unless held. */
        rw__ur_buf_release(ur, bid);
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
    if (!more && !took && res != -ENOBUFS && ur->rearm_credit < ur->buf_count)
        ur->rearm_credit++;
    /* Re-arm unless the core did while this last CQE's data was fed (its bytes paused reading,
     * then a bad frame's close resumed it: kernel-notes/26). */
    if (!more && c->state == RW_CONN_OPEN && (cs->flags & UR_WANT_READ) &&
        !(cs->flags & (UR_EOF | UR_CLOSING | UR_RECV_ARMED))) {
        if (res == -ENOBUFS) {
            rw__ur_starve(ur, c);
        } else {
            rw__stat_add(ur->stats, RW_STAT_REARM_RECV_OTHER, 1);
            ur_arm_recv(ur, c);
        }
    }
    if (!more)
        rw__ur_op_done(ur, c);
}

/* The connection a CQE of op is for. A slot is never reused while it has a CQE to come, so
 * this is always the owner. */
static inline struct rw_conn *ur_cqe_conn(struct ur_backend *ur, uint64_t ud)
{
    struct rw_conn *c = &ur->conns[ud & 0xffffffu];
    RW_ASSERT(c->generation == (uint32_t)(ud >> 24));
    RW_ASSERT(c->state != RW_CONN_FREE);
    return c;
}

static void ur_dispatch(struct ur_backend *ur, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    /* One switch, a connection's operations first: every frame's two CQEs take one branch. */
    switch ((enum ur_op)(ud >> 56)) {
    case OP_RECV:
        ur_on_recv(ur, ur_cqe_conn(ur, ud), cqe);
        return;
    case OP_SEND:
        rw__ur_on_send(ur, ur_cqe_conn(ur, ud), cqe);
        return;
    case OP_CANCEL:
        rw__ur_op_done(ur, ur_cqe_conn(ur, ud));
        return;
    case OP_ACCEPT:
        rw__ur_on_accept(ur, cqe);
        return;
    case OP_ACCEPT_CANCEL:
        return;
    case OP_TIMER:
        /* Fired (-ETIME) or gone: the loop's turn after this wait looks at its deadlines. */
        ur->timers_inflight--;
        if ((uint32_t)ud == ur->timer_seq)
            ur->timer_deadline_ms = 0;
        return;
    case OP_WAKE:
        ur->wake_live = false;
        rw__loop_on_wake(ur->loop);
        rw__ur_arm_wake(ur);
        return;
    }
    RW_ASSERT(!"unknown user_data op");
}

/* The CQE at ring position pos (the ring is never set up with IORING_SETUP_CQE32). */
static inline struct io_uring_cqe *ur_cqe_at(struct ur_backend *ur, unsigned pos)
{
    return &ur->ring.cq.cqes[pos & ur->ring.cq.ring_mask];
}

/*
 * Start loading the slots the ready CQEs name before the first is handled, so their misses
 * overlap instead of stalling the loop once per CQE (the generation check below was 60% of the
 * backend's samples at ping-pong 64 B x 512 conns; kernel-notes/17). Only connection ops name
 * a slot.
 */
static void ur_prefetch_conns(struct ur_backend *ur, unsigned head, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t ud = io_uring_cqe_get_data64(ur_cqe_at(ur, head + i));
        enum ur_op op = (enum ur_op)(ud >> 56);
        if (op == OP_RECV || op == OP_SEND || op == OP_CANCEL)
            rw__conn_prefetch(ur->conns, ur->conn_cap, (uint32_t)(ud & 0xffffffu));
    }
}

/* Timeout SQEs in flight at most (ring-timer); beyond, a wait takes its timespec as before. */
#define UR_TIMERS_MAX 4u

/*
 * ring-timer: make sure a timeout SQE wakes the ring by now + timeout_ms, so io_uring_enter
 * can wait without a timespec (which arms and cancels an hrtimer every time it sleeps). The
 * newest one in flight is reused while it fires no later than needed (the loop's deadlines
 * stay put for many waits: the liveness sweep, a timer tick); one that fires early only costs
 * a turn that finds nothing due. False when none could be armed (the caller passes the
 * timespec).
 */
static bool ur_timer_cover(struct ur_backend *ur, int timeout_ms)
{
    uint64_t deadline = rw__loop_now_ms(ur->loop) + (uint64_t)timeout_ms;
    if (ur->timer_deadline_ms && ur->timer_deadline_ms <= deadline)
        return true;
    if (ur->timers_inflight >= UR_TIMERS_MAX)
        return false;
    struct io_uring_sqe *sqe = ur_sqe(ur);
    /* The loop's clock lags the kernel's: fire no earlier than the loop will see it due. */
    uint64_t at = deadline + ur->clock_lag_ms;
    ur->timer_ts.tv_sec = (long long)(at / 1000);
    ur->timer_ts.tv_nsec = (long long)(at % 1000) * 1000000;
    io_uring_prep_timeout(sqe, &ur->timer_ts, 0, IORING_TIMEOUT_ABS);
    io_uring_sqe_set_data64(sqe, ((uint64_t)OP_TIMER << 56) | ++ur->timer_seq);
    ur->timer_deadline_ms = deadline;
    ur->timers_inflight++;
    return true;
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
    rw__ur_buf_publish(ur);
    int rc;
    if (ur->wait_in_poll) {
        rc = ur_submit_and_poll(ur, timeout_ms);
    } else {
        /*
         * One io_uring_enter, made here rather than through liburing 2.3's
         * io_uring_submit_and_wait_timeout, whose peek-enter-peek loop and
         * PLT calls were 3.7% of the server's samples in open loop beside
         * 0.9% for the same enter in liburing's example (kernel-notes/17).
         */
        unsigned wait_nr = 1;
        unsigned min_wait_us = 0;
        bool covered = false;
        if (ur->lazy_inflight > 0 && ur->lazy_inflight == ur->sends_inflight) {
            /* lazy-reap: every send in flight is bookkeeping once done, and sends mostly
             * complete inline during this very call: sleep past all of them until one more
             * event, so they are reaped with it instead of costing a turn of their own
             * (kernel-notes/29). The timeout bounds how long they wait. Before min-wait: the
             * same wait without its timer. */
            wait_nr = ur->sends_inflight + 1;
            if (wait_nr > RW_URING_CQE_BATCH)
                wait_nr = RW_URING_CQE_BATCH;
            if (timeout_ms < 0 || timeout_ms > (int)RW_URING_LAZY_REAP_MS)
                timeout_ms = (int)RW_URING_LAZY_REAP_MS;
            rw__stat_add(stats, RW_STAT_LAZY_WAITS, 1);
        } else if ((ur->features & RW_UF_MIN_WAIT) && ur->sends_queued > 0) {
            /* Sends mostly complete inline, during this very call: wait past their CQEs for
             * one more event (the next request, typically), but never longer than
             * RW_URING_MIN_WAIT_US once something is there (kernel-notes/21). */
            wait_nr = ur->sends_queued + 1;
            if (wait_nr > RW_URING_CQE_BATCH)
                wait_nr = RW_URING_CQE_BATCH;
            min_wait_us = RW_URING_MIN_WAIT_US;
        } else if (timeout_ms > 0 && (ur->features & RW_UF_RING_TIMER)) {
            covered = ur_timer_cover(ur, timeout_ms);
        }
        rc = rwc_submit_and_wait_min(&ur->ring, wait_nr, min_wait_us, covered ? -1 : timeout_ms,
                                     (ur->features & RW_UF_REG_RING) != 0);
    }
    ur->sends_queued = 0;
    rw__stat_add(stats, RW_STAT_SUBMITS, 1);
    rw__stat_add(stats, RW_STAT_WAIT_CALLS, 1);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;
    /*
     * The ready CQEs, from one read of the tail: liburing's io_uring_for_each_cqe reloads it
     * with acquire at every step, ~30 instructions a CQE in the two loops here (callgrind,
     * kernel-notes/17). A CQE posted while these are handled (no DEFER_TASKRUN) waits for the
     * next turn, whose wait then returns at once.
     */
    unsigned head = *ur->ring.cq.khead;
    unsigned seen = io_uring_smp_load_acquire(ur->ring.cq.ktail) - head;
    if (seen > RW_URING_CQE_BATCH)
        seen = RW_URING_CQE_BATCH;
    ur_prefetch_conns(ur, head, seen);
    for (unsigned i = 0; i < seen; i++)
        ur_dispatch(ur, ur_cqe_at(ur, head + i));
    io_uring_cq_advance(&ur->ring, seen);
    rw__stat_add(stats, RW_STAT_CQES, seen);
    rw__ur_buf_publish(ur);
    ur_rearm_starved(ur);
    return 0;
}

const struct rw_backend_ops rw__uring_ops = {
    .name = "uring",
    .init = rw__ur_init,
    .destroy = rw__ur_destroy,
    .accept_start = rw__ur_accept_start,
    .accept_stop = rw__ur_accept_stop,
    .conn_open = ur_conn_open,
    .read_pause = ur_read_pause,
    .read_resume = ur_read_resume,
    .read_idle = ur_read_idle,
    .flush = rw__ur_flush,
    .close = ur_close,
    .wait = ur_wait,
};
