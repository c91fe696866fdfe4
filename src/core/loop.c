/*
 * The loop driver and connection policy: accept and the --max-conns limit,
 * frames from the reassembler into the handler, replies into the output
 * queue and one flush per connection per loop turn (sooner once
 * RW_DIRTY_FLUSH_MAX connections wait), backpressure by
 * watermarks, idle / frame-deadline / linger timers on the wheel (lazy
 * re-arm), protocol errors, half-close and the SIGTERM drain. Backends do the
 * I/O and report back through the rw__*_on_* callbacks below.
 */
#include "loop.h"

#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringwire/frame.h>
#include <ringwire/handler.h>

#include "assert.h"
#include "lazymem.h"
#include "backend/backend.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

#define NO_REASON RW_STAT_COUNT
/* Either reason to stop reading; reading resumes once neither holds. */
#define READ_PAUSE_FLAGS (RW_CONN_READ_PAUSED | RW_CONN_MEM_PAUSED)

uint64_t rw__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t loop_now(struct rw_loop *loop)
{
    loop->now_ms = rw__now_ms();
    return loop->now_ms;
}

/*
 * The clock for events a backend reports from one wait: read once, at the
 * first event after the wait returned, not once per event (two reads a frame
 * were ~1.5% of the server's samples at 512 connections; kernel-notes/17).
 * One batch of completions is handled within microseconds.
 */
static uint64_t loop_now_batch(struct rw_loop *loop)
{
    if (!loop->clock_fresh) {
        loop->clock_fresh = true;
        return loop_now(loop);
    }
    return loop->now_ms;
}

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
static void conn_timer_update(struct rw_conn *c)
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

/* Memory this connection holds in the budget's terms: reassembly buffer and queued replies. */
static uint64_t conn_mem_bytes(const struct rw_conn *c)
{
    return c->reasm.cap + rw__outq_bytes(&c->outq);
}

/* Stop reading for reason `why` (one of READ_PAUSE_FLAGS); the backend hears of the first. */
static void conn_pause(struct rw_conn *c, uint16_t why)
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
static void conn_resume(struct rw_conn *c, uint16_t why)
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
    RW_ASSERT(c->be.inflight == 0);
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
static void conn_close(struct rw_conn *c, enum rw_stat reason)
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
        conn_close(c, NO_REASON);
        return;
    }
    c->linger_until_ms = c->loop->now_ms + RW_LINGER_MS;
    conn_timer_update(c);
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
    conn_resume(c, READ_PAUSE_FLAGS); /* read on, to discard: a full receive queue stalls FIN */
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
            conn_close(c, NO_REASON);
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
        conn_resume(c, RW_CONN_READ_PAUSED);
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

static void conn_flush(struct rw_conn *c)
{
    struct rw_loop *loop = c->loop;
    while (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq)) {
        int rc = loop->ops->flush(loop->be, c);
        if (rc < 0) {
            char peer[RW_PEER_TEXT_MAX];
            RW_DEBUG("conn %u (%s): send: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
                     strerror(-rc));
            conn_close(c, error_reason(rc));
            return;
        }
        if (rc == 0)
            return;
        conn_sent(c, (size_t)rc);
    }
}

static void flush_dirty(struct rw_loop *loop)
{
    struct rw_conn *list = loop->dirty_head;
    loop->dirty_head = NULL;
    loop->dirty_count = 0;
    while (list) {
        struct rw_conn *c = list;
        list = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= (uint16_t)~RW_CONN_DIRTY;
        if (c->state == RW_CONN_OPEN)
            conn_flush(c);
    }
}

/*
 * c has replies to send: flush it with the others at the end of the turn, so
 * a connection's replies from several reads leave in one send. A busy turn
 * (hundreds of ready connections after a stall) would otherwise hold one
 * output block per connection until the turn ends, and the pool's high-water
 * mark -- resident memory -- would creep up with the worst stall seen; so
 * once RW_DIRTY_FLUSH_MAX connections wait, they are flushed now. Callers do
 * not touch c after this (the flush may close it). Nothing a flush calls
 * marks a connection dirty, so this does not recurse.
 */
static void mark_dirty(struct rw_conn *c)
{
    struct rw_loop *loop = c->loop;
    if (c->flags & RW_CONN_DIRTY)
        return;
    c->flags |= RW_CONN_DIRTY;
    c->dirty_next = loop->dirty_head;
    loop->dirty_head = c;
    if (++loop->dirty_count >= RW_DIRTY_FLUSH_MAX) {
        rw__stat_add(&loop->stats, RW_STAT_EARLY_FLUSHES, 1);
        flush_dirty(loop);
    }
}

/* ---- callbacks from backends ---- */

static int set_tcp_opt(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

/*
 * Per-connection socket policy, set on every accepted socket. Vanished peers
 * (no FIN, no RST ever comes) are the kernel's to detect: TCP_USER_TIMEOUT
 * bounds how long sent data may stay unacknowledged, keepalive probes an idle
 * peer; either makes the next recv/send fail (ETIMEDOUT) and the connection is
 * closed and counted as reaped_tcp_timeout (kernel-notes/11). Options left at
 * 0 are not touched, so the kernel's defaults (or sysctls) apply. Values were
 * validated by config.c, so a failure means a kernel without the option:
 * logged once per worker, the connection is served anyway.
 */
static void conn_set_sockopts(struct rw_loop *loop, int fd)
{
    const struct rw_config *cfg = loop->cfg;
    /* Replies are batched per loop turn by us; Nagle would only add delay. */
    (void)set_tcp_opt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    int rc = 0;
    const char *what = NULL;
    if (cfg->tcp_user_timeout_ms) {
        what = "TCP_USER_TIMEOUT";
        rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)cfg->tcp_user_timeout_ms);
    }
    if (rc == 0 && cfg->keepalive_idle_s) {
        what = "SO_KEEPALIVE";
        /* Schedule first, then switch it on, so the first probe follows the new idle time. */
        rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (int)cfg->keepalive_idle_s);
        if (rc == 0)
            rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPINTVL, (int)cfg->keepalive_intvl_s);
        if (rc == 0)
            rc = set_tcp_opt(fd, IPPROTO_TCP, TCP_KEEPCNT, (int)cfg->keepalive_probes);
        if (rc == 0)
            rc = set_tcp_opt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    }
    if (rc < 0 && !loop->sockopt_warned) {
        loop->sockopt_warned = true;
        RW_WARN("setsockopt %s on an accepted socket: %s; vanished peers are left to "
                "--idle-timeout",
                what, strerror(-rc));
    }
}

void rw__loop_on_accept(struct rw_loop *loop, int fd)
{
    RW_ASSERT(fd >= 0);
    uint32_t open_before =
        atomic_fetch_add_explicit(&loop->shared->conns_open, 1, memory_order_relaxed);
    if (loop->draining || open_before >= loop->cfg->max_conns ||
        (loop->free_count == 0 && loop->conn_hw == loop->conn_cap)) {
        atomic_fetch_sub_explicit(&loop->shared->conns_open, 1, memory_order_relaxed);
        close(fd);
        if (!loop->draining)
            rw__stat_add(&loop->stats, RW_STAT_REJECTED_LIMIT, 1);
        return;
    }
    struct rw_conn *c;
    if (loop->free_count > 0) {
        c = &loop->conns[loop->free_slots[--loop->free_count]];
    } else {
        /* First use of a slot: its page of the table is touched only now. */
        c = &loop->conns[loop->conn_hw];
        c->loop = loop;
        c->index = loop->conn_hw++;
        c->fd = -1;
    }
    RW_ASSERT(c->state == RW_CONN_FREE);
    c->generation++;
    c->state = RW_CONN_OPEN;
    c->flags &= RW_CONN_DIRTY;
    c->fd = fd;
    c->last_active_ms = loop_now_batch(loop);
    c->frame_started_ms = 0;
    c->linger_until_ms = 0;
    memset(&c->client, 0, sizeof(c->client));
    if (loop->cfg->proxy_protocol) {
        c->flags |= RW_CONN_PROXY_WAIT;
        c->frame_started_ms = c->last_active_ms; /* the header's deadline counts from here */
    }
    rw__timer_init(&c->timer);
    memset(&c->reasm, 0, sizeof(c->reasm));
    rw__outq_init(&c->outq);
    memset(&c->be, 0, sizeof(c->be));
    loop->open_count++;
    rw__stat_add(&loop->stats, RW_STAT_ACCEPTED, 1);

    conn_set_sockopts(loop, fd);
    conn_timer_update(c);
    int rc = loop->ops->conn_open(loop->be, c);
    if (rc < 0) {
        char peer[RW_PEER_TEXT_MAX];
        RW_DEBUG("conn %u (%s): start reading: %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
                 strerror(-rc));
        conn_close(c, RW_STAT_CLOSED_ERROR);
    }
}

void rw__loop_on_accept_error(struct rw_loop *loop, int err)
{
    RW_ASSERT(err < 0);
    if (loop->accepting) {
        loop->ops->accept_stop(loop->be);
        loop->accepting = false;
    }
    if (loop->draining)
        return;
    loop->accept_resume_ms = loop_now(loop) + RW_ACCEPT_BACKOFF_MS;
    rw__stat_add(&loop->stats, RW_STAT_ACCEPT_BACKOFFS, 1);
    /* Warn on the first backoff of a burst, not on every retry. */
    if (rw__stat_get(&loop->stats, RW_STAT_ACCEPT_BACKOFFS) == 1 || err != -EMFILE)
        RW_WARN("accept: %s; pausing accepts for %u ms (raise RLIMIT_NOFILE / --max-conns)",
                strerror(-err), RW_ACCEPT_BACKOFF_MS);
}

void rw__loop_on_wake(struct rw_loop *loop)
{
    (void)loop; /* the run loop reads shared->stop */
}

/* ---- PROXY protocol header (--proxy-protocol) ---- */

/*
 * Feed data[0..len) to c's awaited PROXY header. Returns how many of these bytes the header
 * took (len while it is incomplete; the rest of the chunk is frames), or -1 after closing c
 * for a bad header. A header split across reads is held in c->proxy_buf, at most
 * RW_PROXY_MAX_BYTES (the parser decides before that); one in a single read costs no copy.
 */
static ssize_t conn_proxy_header(struct rw_conn *c, const uint8_t *data, size_t len)
{
    char peer[RW_PEER_TEXT_MAX], via[RW_PEER_TEXT_MAX];
    size_t held = c->proxy_len;
    const uint8_t *buf = data;
    size_t have = len;
    if (held > 0) {
        size_t take = len < RW_PROXY_MAX_BYTES - held ? len : RW_PROXY_MAX_BYTES - held;
        memcpy(c->proxy_buf + held, data, take);
        buf = c->proxy_buf;
        have = held + take;
    }
    struct rw_proxy_info info;
    int rc = rw__proxy_parse(buf, have, &info);
    if (rc == 0) {
        RW_ASSERT(have < RW_PROXY_MAX_BYTES); /* so every byte of data was taken */
        if (held == 0) {
            c->proxy_buf = malloc(RW_PROXY_MAX_BYTES);
            if (!c->proxy_buf) {
                RW_WARN("conn %u (%s): out of memory holding a PROXY header; closing", c->index,
                        rw__conn_peer(c, peer, sizeof(peer)));
                conn_close(c, RW_STAT_CLOSED_ERROR);
                return -1;
            }
            memcpy(c->proxy_buf, data, len);
        }
        c->proxy_len = (uint16_t)have;
        return (ssize_t)len;
    }
    free(c->proxy_buf);
    c->proxy_buf = NULL;
    c->proxy_len = 0;
    if (rc < 0) {
        RW_DEBUG("conn %u (%s): no valid PROXY header (%s); closing", c->index,
                 rw__conn_peer(c, peer, sizeof(peer)), strerror(-rc));
        conn_close(c, RW_STAT_CLOSED_PROXY);
        return -1;
    }
    RW_ASSERT((size_t)rc > held);
    c->flags &= (uint16_t)~RW_CONN_PROXY_WAIT;
    c->client = info.src; /* family 0 (LOCAL, UNKNOWN, AF_UNIX): the socket's peer stands */
    RW_DEBUG("conn %u (%s): PROXY v%u %s via %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
             info.version, info.local ? "LOCAL" : "client",
             rw__conn_sock_peer(c, via, sizeof(via)));
    return (ssize_t)((size_t)rc - held);
}

static int deliver_frame(void *ctx, const struct rw_frame *frame)
{
    struct rw_conn *c = ctx;
    rw__stat_add(&c->loop->stats, RW_STAT_FRAMES_IN, 1);
    return c->loop->shared->handler->on_frame(c, frame);
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
        ssize_t took = conn_proxy_header(c, data, len);
        if (took < 0 || (size_t)took == len)
            return;
        data += took;
        len -= (size_t)took;
    }

    uint64_t frames_before = rw__stat_get(&loop->stats, RW_STAT_FRAMES_IN);
    uint32_t pending_before = rw__reasm_pending(&c->reasm);
    uint32_t cap_before = c->reasm.cap;
    loop->rx_cur = buf;
    int rc = rw__reasm_feed(&c->reasm, &loop->cfg->framing, data, len, loop->cfg->max_frame_bytes,
                            deliver_frame, c);
    loop->rx_cur = NULL;
    conn_reasm_account(c, cap_before);
    if (rc == -ENOMEM) {
        char peer[RW_PEER_TEXT_MAX];
        RW_WARN("conn %u (%s): out of memory reassembling a frame; closing", c->index,
                rw__conn_peer(c, peer, sizeof(peer)));
        conn_close(c, RW_STAT_CLOSED_ERROR);
        return;
    }
    if (rc < 0) {
        conn_protocol_error(c, rc);
    } else if (rw__reasm_pending(&c->reasm) &&
               (pending_before == 0 ||
                rw__stat_get(&loop->stats, RW_STAT_FRAMES_IN) != frames_before)) {
        c->frame_started_ms = loop->now_ms; /* a new partial frame began in this chunk */
        conn_timer_update(c);
    }
    if (c->state != RW_CONN_OPEN)
        return;
    if (!(c->flags & (RW_CONN_READ_PAUSED | RW_CONN_PROTO_ERROR)) &&
        rw__outq_above_high(&c->outq, loop->cfg->write_buffer_bytes)) {
        rw__stat_add(&loop->stats, RW_STAT_BACKPRESSURE_PAUSES, 1);
        conn_pause(c, RW_CONN_READ_PAUSED);
    }
    /* At the memory budget a connection whose buffers grow stops being read (the largest are
     * closed at the end of the turn, mem_reclaim); small ones keep being served. */
    if (!(c->flags & (RW_CONN_MEM_PAUSED | RW_CONN_PROTO_ERROR | RW_CONN_PEER_DONE)) &&
        (c->reasm.cap > RW_REASM_KEEP_BYTES || rw__outq_bytes(&c->outq) > RW_OUTQ_BLOCK_BYTES) &&
        rw__mem_excess(&loop->mem) > 0) {
        rw__stat_add(&loop->stats, RW_STAT_MEMORY_PAUSES, 1);
        conn_pause(c, RW_CONN_MEM_PAUSED);
    }
    if (!rw__outq_empty(&c->outq))
        mark_dirty(c); /* last: it may flush and close c */
}

void rw__conn_on_eof(struct rw_conn *c)
{
    RW_ASSERT(c->state != RW_CONN_FREE);
    if (c->state != RW_CONN_OPEN)
        return;
    c->flags |= RW_CONN_READ_EOF;
    conn_reasm_reset(c); /* a truncated last frame is dropped */
    if (rw__outq_empty(&c->outq))
        conn_close(c, NO_REASON);
    else
        mark_dirty(c);
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
        conn_close(c, error_reason(res));
        return;
    }
    conn_sent(c, (size_t)res);
    if (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq))
        mark_dirty(c);
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
    conn_close(c, error_reason(err));
}

void rw__conn_on_writable(struct rw_conn *c)
{
    if (c->state == RW_CONN_OPEN && !rw__outq_empty(&c->outq))
        mark_dirty(c);
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

/* ---- timers ---- */

static void on_conn_timer(void *ctx, struct rw_timer *t)
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
    conn_close(c, reason);
}

/* ---- liveness sweep ---- */

/* The kernel's TCP state of c's socket (TCP_INFO: TCP_ESTABLISHED, TCP_CLOSE...), or -1. */
static int conn_tcp_state(const struct rw_conn *c)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    return getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 ? ti.tcpi_state : -1;
}

/*
 * A defense against a lost completion: a connection whose peer reset it can
 * stay open with its multishot recv armed and no CQE ever coming (seen on
 * kernel 6.18 under churn, about one RST mid-frame in 10^4; kernel-notes/15).
 * Once per RW_SWEEP_INTERVAL_MS, connections quiet for RW_SWEEP_QUIET_MS are
 * checked round-robin, a bounded number per sweep, with TCP_INFO; one the
 * kernel has already closed (TCP_CLOSE: reset, or timed out) is closed and
 * counted as reaped_dead. An active connection costs one comparison; an idle
 * mass at most RW_SWEEP_CHECKS_MAX getsockopt calls a second per worker.
 */
static void sweep_dead_conns(struct rw_loop *loop)
{
    if (loop->open_count == 0 || loop->now_ms < loop->sweep_next_ms)
        return;
    loop->sweep_next_ms = loop->now_ms + RW_SWEEP_INTERVAL_MS;
    /* Only slots ever used (below conn_hw) can hold a connection. */
    uint32_t visits = loop->conn_hw < RW_SWEEP_VISITS_MAX ? loop->conn_hw : RW_SWEEP_VISITS_MAX;
    uint32_t checks = 0;
    for (uint32_t v = 0; v < visits && checks < RW_SWEEP_CHECKS_MAX; v++) {
        if (loop->sweep_cursor >= loop->conn_hw)
            loop->sweep_cursor = 0;
        struct rw_conn *c = &loop->conns[loop->sweep_cursor++];
        if (c->state != RW_CONN_OPEN || c->last_active_ms + RW_SWEEP_QUIET_MS > loop->now_ms)
            continue;
        checks++;
        if (conn_tcp_state(c) == TCP_CLOSE) {
            char peer[RW_PEER_TEXT_MAX];
            RW_DEBUG("conn %u (%s): the kernel closed it, no completion said so; closing", c->index,
                     rw__conn_peer(c, peer, sizeof(peer)));
            conn_close(c, RW_STAT_REAPED_DEAD);
        }
    }
}

/* ---- drain ---- */

static void begin_drain(struct rw_loop *loop)
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
 * While draining, a connection closes once it is quiet: every reply handed to
 * the kernel, no partial frame, and nothing left unread in its receive queue
 * (SIOCINQ). Closing with unread data would make the kernel send RST and drop
 * replies still in our send buffer; with none, close sends FIN after them.
 * Peers that keep sending are closed by --drain-timeout (kernel-notes/10).
 */
static void drain_quiet_conns(struct rw_loop *loop)
{
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state != RW_CONN_OPEN || !rw__outq_empty(&c->outq) || rw__reasm_pending(&c->reasm) ||
            (c->flags & RW_CONN_PROTO_ERROR))
            continue;
        int unread = 0;
        if (ioctl(c->fd, SIOCINQ, &unread) == 0 && unread == 0)
            conn_close(c, NO_REASON);
    }
}

static void force_close_all(struct rw_loop *loop)
{
    loop->force_closed = true;
    uint32_t forced = 0;
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state == RW_CONN_OPEN) {
            conn_close(c, NO_REASON);
            forced++;
        }
    }
    if (forced)
        RW_WARN("drain timeout: closed %u connections with replies pending", forced);
}

/* ---- memory: the budget and giving memory back ---- */

/*
 * This worker's open connections holding the most memory (at least RW_MEM_CLOSE_MIN_BYTES
 * each), largest first, at most max of them, in one pass over the table. Returns the count.
 */
static uint32_t largest_consumers(struct rw_loop *loop, struct rw_conn **out, uint32_t max)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < loop->conn_hw; i++) {
        struct rw_conn *c = &loop->conns[i];
        uint64_t bytes = conn_mem_bytes(c);
        if (c->state != RW_CONN_OPEN || bytes < RW_MEM_CLOSE_MIN_BYTES)
            continue;
        if (n == max && bytes <= conn_mem_bytes(out[n - 1]))
            continue;
        uint32_t at = n < max ? n++ : max - 1; /* the smallest kept drops out */
        while (at > 0 && conn_mem_bytes(out[at - 1]) < bytes) {
            out[at] = out[at - 1];
            at--;
        }
        out[at] = c;
    }
    return n;
}

/*
 * Over --max-memory: free the cached output blocks first (nobody uses them), then close this
 * worker's largest consumers until the excess is covered, as Redis's maxmemory-clients does.
 * Every worker sees the same shared total and closes its own, so the excess is covered at least
 * once over; a connection below RW_MEM_CLOSE_MIN_BYTES is never closed for memory.
 */
static void mem_reclaim(struct rw_loop *loop)
{
    if (rw__block_pool_trim(&loop->pool, 0, true) > 0)
        loop->trim_due_ms = loop->now_ms; /* give the freed blocks back to the kernel soon */
    uint64_t excess = rw__mem_excess(&loop->mem);
    if (excess == 0)
        return;
    struct rw_conn *victims[RW_MEM_CLOSES_PER_TURN];
    uint32_t count = largest_consumers(loop, victims, RW_MEM_CLOSES_PER_TURN);
    for (uint32_t i = 0; i < count && excess > 0; i++) {
        struct rw_conn *victim = victims[i];
        uint64_t bytes = conn_mem_bytes(victim);
        char peer[RW_PEER_TEXT_MAX];
        if (!loop->mem_warned) {
            loop->mem_warned = true;
            RW_WARN("--max-memory %llu MiB reached (%llu MiB in use): closing the connections "
                    "holding the most, largest first (conn %u (%s): %llu KiB)",
                    (unsigned long long)(loop->mem.budget->limit_bytes >> 20),
                    (unsigned long long)(rw__mem_reserved(&loop->mem) >> 20), victim->index,
                    rw__conn_peer(victim, peer, sizeof(peer)), (unsigned long long)(bytes >> 10));
        }
        RW_DEBUG("conn %u (%s): closed for memory (%llu KiB)", victim->index,
                 rw__conn_peer(victim, peer, sizeof(peer)), (unsigned long long)(bytes >> 10));
        conn_close(victim, RW_STAT_CLOSED_MEMORY);
        excess = bytes >= excess ? 0 : excess - bytes;
    }
}

/*
 * A connection paused for memory does not read, so it would never see its peer leave: every
 * RW_MEM_PAUSED_CHECK_MS, ask TCP_INFO whether a FIN (CLOSE_WAIT) or RST (CLOSE) came. Such a
 * peer sends nothing more, so reading on costs at most what is left in the receive queue: it
 * resumes for good (RW_CONN_PEER_DONE) and its frame completes or its EOF closes it.
 */
static void mem_check_paused(struct rw_loop *loop)
{
    loop->mem_check_due_ms = loop->now_ms + RW_MEM_PAUSED_CHECK_MS;
    for (uint32_t i = 0, seen = 0; i < loop->conn_hw && seen < loop->mem_paused; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state != RW_CONN_OPEN || !(c->flags & RW_CONN_MEM_PAUSED))
            continue;
        seen++;
        int state = conn_tcp_state(c);
        if (state != TCP_CLOSE_WAIT && state != TCP_CLOSE)
            continue;
        c->flags |= RW_CONN_PEER_DONE;
        conn_resume(c, RW_CONN_MEM_PAUSED);
    }
}

/* Back under the budget's resume mark: read again from connections paused for memory. */
static void mem_resume(struct rw_loop *loop)
{
    loop->mem_warned = false;
    for (uint32_t i = 0; i < loop->conn_hw && loop->mem_paused > 0; i++) {
        struct rw_conn *c = &loop->conns[i];
        if (c->state == RW_CONN_OPEN && (c->flags & RW_CONN_MEM_PAUSED)) {
            c->frame_started_ms = loop->now_ms; /* the peer was not the one holding it up */
            conn_resume(c, RW_CONN_MEM_PAUSED);
        }
    }
}

/*
 * Give memory nobody needs back to the kernel, once per RW_TRIM_INTERVAL_MS: cached output
 * blocks that stayed unused for the whole interval are freed (down to a small floor), and once
 * at least RW_TRIM_MIN_BYTES were freed, malloc_trim returns the free pages of every arena
 * (freed 16 KiB blocks and reassembly buffers otherwise stay resident in glibc's heaps).
 * malloc_trim walks the arenas under their locks; once a second at most is cheap.
 */
static void loop_trim(struct rw_loop *loop)
{
    loop->trim_due_ms = loop->now_ms + RW_TRIM_INTERVAL_MS;
    (void)rw__block_pool_trim(&loop->pool, RW_BLOCK_POOL_CACHE_FLOOR, false);
    if (loop->mem.freed_bytes >= RW_TRIM_MIN_BYTES) {
        (void)rw__mem_take_freed(&loop->mem);
        malloc_trim(0);
        rw__stat_add(&loop->stats, RW_STAT_MEM_TRIMS, 1);
    }
}

/* Is there memory a trim could give back (so an idle loop should wake for it)? */
static bool trim_pending(const struct rw_loop *loop)
{
    return loop->pool.free_count > RW_BLOCK_POOL_CACHE_FLOOR ||
           loop->mem.freed_bytes >= RW_TRIM_MIN_BYTES;
}

static void loop_housekeeping(struct rw_loop *loop)
{
    if (rw__mem_excess(&loop->mem) > 0)
        mem_reclaim(loop);
    else if ((loop->mem_paused > 0 || loop->mem_warned) && rw__mem_has_room(&loop->mem))
        mem_resume(loop);
    if (loop->mem_paused > 0 && loop->now_ms >= loop->mem_check_due_ms)
        mem_check_paused(loop);
    if (loop->now_ms >= loop->trim_due_ms)
        loop_trim(loop);
}

static int loop_timeout_ms(struct rw_loop *loop)
{
    int64_t timeout = rw__wheel_timeout_ms(&loop->wheel, loop->now_ms);
    uint64_t until = UINT64_MAX;
    if (loop->accept_resume_ms)
        until = loop->accept_resume_ms;
    if (trim_pending(loop) && loop->trim_due_ms < until)
        until = loop->trim_due_ms;
    if (loop->mem_paused > 0 && loop->now_ms + RW_WHEEL_TICK_MS < until)
        until = loop->now_ms + RW_WHEEL_TICK_MS; /* memory freed elsewhere: look again soon */
    if (loop->open_count && loop->sweep_next_ms < until)
        until = loop->sweep_next_ms;
    if (loop->draining && !loop->force_closed && loop->drain_deadline_ms < until)
        until = loop->drain_deadline_ms;
    if (until != UINT64_MAX) {
        int64_t wait = until > loop->now_ms ? (int64_t)(until - loop->now_ms) : 0;
        if (timeout < 0 || wait < timeout)
            timeout = wait;
    }
    if (loop->draining)
        timeout = timeout < 0 || timeout > 10 ? 10 : timeout; /* re-check quiet connections */
    return timeout > INT32_MAX ? INT32_MAX : (int)timeout;
}

int rw__loop_run(struct rw_loop *loop)
{
    /*
     * Accepting starts here, not at the end of rw__loop_init: server.c runs a
     * loop only after every worker finished setup, so connections already
     * queued on the listeners cannot use up RLIMIT_NOFILE while a sibling
     * still needs descriptors for its eventfd and epoll/io_uring instance
     * (kernel-notes/08). A failure here is an accept failure: back off, retry.
     */
    if (!atomic_load_explicit(&loop->shared->stop, memory_order_acquire)) {
        int rc = loop->ops->accept_start(loop->be);
        if (rc < 0)
            rw__loop_on_accept_error(loop, rc);
        else
            loop->accepting = true;
    }
    for (;;) {
        uint64_t now = loop_now(loop);
        if (!loop->draining && atomic_load_explicit(&loop->shared->stop, memory_order_acquire))
            begin_drain(loop);
        if (loop->draining) {
            if (!loop->force_closed)
                drain_quiet_conns(loop);
            if (loop->open_count == 0)
                return 0;
            if (!loop->force_closed && now >= loop->drain_deadline_ms)
                force_close_all(loop);
        }
        if (!loop->accepting && !loop->draining && loop->accept_resume_ms &&
            now >= loop->accept_resume_ms) {
            loop->accept_resume_ms = 0;
            int rc = loop->ops->accept_start(loop->be);
            if (rc < 0)
                rw__loop_on_accept_error(loop, rc);
            else
                loop->accepting = true;
        }
        rw__wheel_advance(&loop->wheel, now, on_conn_timer, loop);
        loop_housekeeping(loop);
        sweep_dead_conns(loop);
        flush_dirty(loop);
        /* Memory held as the loop goes to sleep (gauges: a sleeping loop's stay true). */
        rw__stat_set(&loop->stats, RW_STAT_OUT_BLOCKS_LIVE, loop->pool.blocks_live);
        rw__stat_set(&loop->stats, RW_STAT_OUT_BLOCKS_CACHED, loop->pool.free_count);
        rw__stat_set(&loop->stats, RW_STAT_MEM_BYTES, loop->mem.used_bytes);
        int timeout_ms = loop_timeout_ms(loop);
        loop->clock_fresh = false;
        int rc = loop->ops->wait(loop->be, timeout_ms);
        if (rc < 0)
            return rc;
        rw__stat_add(&loop->stats, RW_STAT_LOOP_TURNS, 1);
    }
}

/* ---- setup ---- */

int rw__loop_init(struct rw_loop *loop, struct rw_shared *shared, int worker_id,
                  const int *listen_fds, uint32_t listen_count)
{
    RW_ASSERT(listen_count >= 1);
    RW_ASSERT(listen_count <= RW_LISTEN_MAX);
    memset(loop, 0, sizeof(*loop));
    loop->shared = shared;
    loop->cfg = shared->cfg;
    loop->ops = shared->ops;
    loop->worker_id = worker_id;
    memcpy(loop->listen_fds, listen_fds, listen_count * sizeof(*listen_fds));
    loop->listen_count = listen_count;
    loop->wake_fd = -1;
    loop->conn_cap = shared->cfg->max_conns;
    RW_ASSERT(loop->conn_cap > 0 && loop->conn_cap <= RW_CONNS_MAX);

    int rc = -ENOMEM;
    /*
     * Every worker may hold all --max-conns connections, so each gets a table that large, mapped
     * zeroed and untouched (lazymem.h; a zeroed slot is FREE), and slots are initialised on first
     * use, so resident memory follows the connections seen, not --max-conns x --threads.
     */
    loop->conns = rw__lazy_calloc(loop->conn_cap, sizeof(*loop->conns));
    loop->free_slots = rw__lazy_calloc(loop->conn_cap, sizeof(*loop->free_slots));
    if (!loop->conns || !loop->free_slots)
        goto err_free_table;
    loop->conn_hw = 0;
    loop->free_count = 0;
    rw__mem_account_init(&loop->mem, &shared->mem);
    rc = rw__wheel_init(&loop->wheel, RW_WHEEL_SLOTS, RW_WHEEL_TICK_MS, loop_now(loop));
    if (rc < 0)
        goto err_free_table;
    rw__block_pool_init(&loop->pool, RW_BLOCK_POOL_CACHE_MAX);
    loop->pool.acct = &loop->mem;
    loop->trim_due_ms = loop->now_ms + RW_TRIM_INTERVAL_MS;
    loop->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->wake_fd < 0) {
        rc = -errno;
        goto err_wheel;
    }
    rc = loop->ops->init(loop, &loop->be);
    if (rc < 0)
        goto err_wake;
    return 0; /* not accepting yet: rw__loop_run starts it */

err_wake:
    close(loop->wake_fd);
err_wheel:
    rw__block_pool_destroy(&loop->pool);
    rw__wheel_destroy(&loop->wheel);
    rw__mem_account_destroy(&loop->mem);
err_free_table:
    rw__lazy_free(loop->conns, loop->conn_cap, sizeof(*loop->conns));
    rw__lazy_free(loop->free_slots, loop->conn_cap, sizeof(*loop->free_slots));
    return rc;
}

void rw__loop_destroy(struct rw_loop *loop)
{
    RW_ASSERT(loop->open_count == 0);
    loop->ops->destroy(loop->be);
    close(loop->wake_fd);
    rw__block_pool_destroy(&loop->pool);
    rw__wheel_destroy(&loop->wheel);
    rw__mem_account_destroy(&loop->mem);
    rw__lazy_free(loop->conns, loop->conn_cap, sizeof(*loop->conns));
    rw__lazy_free(loop->free_slots, loop->conn_cap, sizeof(*loop->free_slots));
}
