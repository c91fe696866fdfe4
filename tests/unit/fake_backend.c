/* The fake backend for connection-policy unit tests (see fake_backend.h). */
#include "fake_backend.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <ringwire/frame.h>
#include <ringwire/ringwire.h>
#include <sys/eventfd.h>

struct fake fake;

enum fake_ev_kind {
    EV_ACCEPT,
    EV_DATA,
    EV_DATA_BUF,
    EV_EOF,
    EV_ERROR,
    EV_SENT,
    EV_WRITABLE,
    EV_RELEASED
};

struct fake_ev {
    enum fake_ev_kind kind;
    struct fake_ref ref;
    int arg; /* fd (ACCEPT), err (ERROR), res (SENT) */
    uint8_t *data;
    size_t len;
};

#define FAKE_EVS_MAX 4096u
static struct fake_ev evs[FAKE_EVS_MAX];
static uint32_t ev_count;
/* Lent receive buffers: event data for fake_ev_data_buf lives here, id = its offset. */
#define FAKE_RX_BYTES (64u * 1024u)
static uint8_t rx_area[FAKE_RX_BYTES];
static size_t rx_used;
static int pending_peer = -1; /* the peer end of the socketpair fake_open queued */

static uint64_t fake_clock(void)
{
    return fake.now_ms;
}

static void record(enum fake_op op, const struct rw_conn *c, uint64_t queued, int result)
{
    ck_assert_uint_lt(fake.ncalls, FAKE_CALLS_MAX);
    struct fake_call *call = &fake.calls[fake.ncalls++];
    call->op = op;
    call->index = c ? c->index : UINT32_MAX;
    call->generation = c ? c->generation : 0;
    call->queued = queued;
    call->result = result;
}

/* The first n queued bytes of c reach the wire (the core consumes them after). */
static void to_wire(const struct rw_conn *c, size_t n)
{
    ck_assert_uint_lt(c->index, FAKE_SLOTS_MAX);
    ck_assert_uint_le(n, rw__outq_bytes(&c->outq));
    struct iovec iov[256];
    size_t count = rw__outq_gather(&c->outq, iov, 256);
    uint32_t i = c->index;
    fake.wire[i] = realloc(fake.wire[i], fake.wire_len[i] + n + 1);
    ck_assert_ptr_nonnull(fake.wire[i]);
    for (size_t k = 0; k < count && n > 0; k++) {
        size_t take = iov[k].iov_len < n ? iov[k].iov_len : n;
        memcpy(fake.wire[i] + fake.wire_len[i], iov[k].iov_base, take);
        fake.wire_len[i] += take;
        n -= take;
    }
    ck_assert_uint_eq(n, 0);
}

/* ---- the ops table ---- */

static int op_init(struct rw_loop *loop, void **out_be)
{
    *out_be = &fake;
    return 0;
}

static void op_destroy(void *be)
{
    ck_assert_ptr_eq(be, &fake);
}

static int op_accept_start(void *be)
{
    if (!fake.accepting) {
        fake.accepting = true;
        record(FAKE_ACCEPT_START, NULL, 0, 0);
    }
    return 0;
}

static void op_accept_stop(void *be)
{
    fake.accepting = false;
    record(FAKE_ACCEPT_STOP, NULL, 0, 0);
}

static int op_conn_open(void *be, struct rw_conn *c)
{
    ck_assert_uint_lt(c->index, FAKE_SLOTS_MAX);
    record(FAKE_CONN_OPEN, c, 0, 0);
    free(fake.wire[c->index]);
    fake.wire[c->index] = NULL;
    fake.wire_len[c->index] = 0;
    if (fake.peer_fd[c->index] >= 0)
        close(fake.peer_fd[c->index]);
    fake.peer_fd[c->index] = pending_peer;
    pending_peer = -1;
    return 0;
}

static void op_read_pause(void *be, struct rw_conn *c)
{
    record(FAKE_READ_PAUSE, c, 0, 0);
}

static void op_read_resume(void *be, struct rw_conn *c)
{
    record(FAKE_READ_RESUME, c, 0, 0);
}

static bool op_read_idle(void *be, struct rw_conn *c)
{
    (void)be;
    (void)c;
    return !fake.recv_busy;
}

static int op_flush(void *be, struct rw_conn *c)
{
    uint64_t queued = rw__outq_bytes(&c->outq);
    ck_assert_uint_gt(queued, 0); /* the core never asks to send nothing */
    int rc = FAKE_SEND_ALL;
    if (fake.flush_next < fake.flush_count)
        rc = fake.flush_script[fake.flush_next++];
    if (rc == FAKE_SEND_ALL || (rc > 0 && (uint64_t)rc > queued))
        rc = (int)queued;
    if (rc > 0)
        to_wire(c, (size_t)rc);
    record(FAKE_FLUSH, c, queued, rc);
    return rc;
}

static bool op_close(void *be, struct rw_conn *c)
{
    record(FAKE_CLOSE, c, 0, 0);
    ck_assert_int_ge(c->fd, 0);
    close(c->fd);
    return !fake.release_later;
}

static bool rx_hold(void *owner, uint32_t id)
{
    ck_assert_ptr_eq(owner, &fake);
    ck_assert_uint_lt(id, FAKE_RX_BYTES);
    fake.holds++;
    if (fake.refuse_holds) {
        fake.releases++; /* a refused hold is not held */
        return false;
    }
    return true;
}

static void rx_release(void *owner, uint32_t id)
{
    ck_assert_ptr_eq(owner, &fake);
    fake.releases++;
    ck_assert_uint_le(fake.releases, fake.holds);
}

static void dispatch(const struct fake_ev *ev)
{
    if (ev->kind == EV_ACCEPT) {
        rw__loop_on_accept(&fake.loop, ev->arg);
        return;
    }
    /* As a real backend: an event names (index, generation); a stale one is dropped. */
    struct rw_conn *c =
        rw__conn_lookup(fake.loop.conns, fake.loop.conn_cap, ev->ref.index, ev->ref.generation);
    if (!c) {
        fake.dropped++;
        return;
    }
    switch (ev->kind) {
    case EV_DATA:
        rw__conn_on_data(c, ev->data, ev->len);
        break;
    case EV_DATA_BUF: {
        struct rw_rxbuf buf = {.base = ev->data,
                               .len = ev->len,
                               .owner = &fake,
                               .id = (uint32_t)(ev->data - rx_area),
                               .hold = rx_hold,
                               .release = rx_release};
        rw__conn_on_data_buf(c, ev->data, ev->len, &buf);
        break;
    }
    case EV_EOF:
        rw__conn_on_eof(c);
        break;
    case EV_ERROR:
        rw__conn_on_error(c, ev->arg);
        break;
    case EV_SENT:
        if (ev->arg > 0 && c->state == RW_CONN_OPEN)
            to_wire(c, (size_t)ev->arg);
        rw__conn_on_sent(c, ev->arg);
        break;
    case EV_WRITABLE:
        rw__conn_on_writable(c);
        break;
    case EV_RELEASED:
        ck_assert_uint_eq(c->state, RW_CONN_CLOSING);
        rw__conn_on_released(c);
        break;
    case EV_ACCEPT:
        break;
    }
}

static int op_wait(void *be, int timeout_ms)
{
    if (ev_count == 0)
        return -ECANCELED; /* the turn is over: back to the test */
    uint32_t n = ev_count;
    ev_count = 0;
    for (uint32_t i = 0; i < n; i++) {
        dispatch(&evs[i]);
        if (evs[i].kind != EV_DATA_BUF)
            free(evs[i].data);
        evs[i].data = NULL;
    }
    return 0;
}

static const struct rw_backend_ops fake_ops = {
    .name = "fake",
    .init = op_init,
    .destroy = op_destroy,
    .accept_start = op_accept_start,
    .accept_stop = op_accept_stop,
    .conn_open = op_conn_open,
    .read_pause = op_read_pause,
    .read_resume = op_read_resume,
    .read_idle = op_read_idle,
    .flush = op_flush,
    .close = op_close,
    .wait = op_wait,
};

/* ---- the handler ---- */

static int fake_on_frame(struct rw_conn *conn, const struct rw_frame *frame)
{
    const uint8_t *payload = frame->payload;
    uint32_t len = frame->len;
    if (len == 6 && memcmp(payload, "EPROTO", 6) == 0)
        return -EPROTO;
    if (len == 6 && memcmp(payload, "ENOMEM", 6) == 0)
        return -ENOMEM;
    return rw_conn_send_frame(conn, payload, len);
}

const struct rw_handler fake_handler = {.name = "fake", .on_frame = fake_on_frame};

/* ---- setup and driving ---- */

static int fake_wake_fd = -1;

void fake_setup(const struct rw_options *cfg)
{
    memset(&fake, 0, sizeof(fake));
    for (uint32_t i = 0; i < FAKE_SLOTS_MAX; i++)
        fake.peer_fd[i] = -1;
    ev_count = 0;
    pending_peer = -1;
    rx_used = 0;
    fake.cfg = *cfg;
    ck_assert_uint_le(fake.cfg.max_conns, FAKE_SLOTS_MAX);
    fake.now_ms = 1000000;
    rw__now_ms_hook = fake_clock;
    fake.shared.cfg = &fake.cfg;
    fake.shared.handler = &fake_handler;
    fake.shared.ops = &fake_ops;
    rw__mem_budget_init(&fake.shared.mem, fake.cfg.max_memory_bytes);
    int listen_fd = -1; /* the fake never touches it */
    /* The wake eventfd is the server's (it outlives the loop): here the fake's. */
    fake_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ck_assert_int_ge(fake_wake_fd, 0);
    ck_assert_int_eq(rw__loop_init(&fake.loop, &fake.shared, 0, &listen_fd, 1, fake_wake_fd), 0);
}

void fake_teardown(void)
{
    fake.release_later = false;
    for (uint32_t i = 0; i < fake.loop.conn_hw; i++)
        if (fake.loop.conns[i].state == RW_CONN_CLOSING)
            fake_ev_released((struct fake_ref){i, fake.loop.conns[i].generation});
    atomic_store(&fake.shared.stop, true);
    fake.flush_count = fake.flush_next = 0;
    /* Quiet connections close at once; the rest at the drain deadline, a turn later. */
    int rc = fake_turn();
    for (int i = 0; i < 3 && rc != 0; i++) {
        ck_assert_int_eq(rc, -ECANCELED);
        fake_advance(fake.cfg.drain_timeout_ms + 1);
        rc = fake_turn();
    }
    ck_assert_int_eq(rc, 0);
    rw__loop_destroy(&fake.loop);
    close(fake_wake_fd);
    fake_wake_fd = -1;
    rw__now_ms_hook = NULL;
    for (uint32_t i = 0; i < FAKE_SLOTS_MAX; i++) {
        free(fake.wire[i]);
        if (fake.peer_fd[i] >= 0)
            close(fake.peer_fd[i]);
    }
    if (pending_peer >= 0)
        close(pending_peer);
}

int fake_turn(void)
{
    return rw__loop_run(&fake.loop);
}

void fake_advance(uint64_t ms)
{
    fake.now_ms += ms;
}

static struct fake_ev *ev_push(enum fake_ev_kind kind, struct fake_ref r, int arg)
{
    ck_assert_uint_lt(ev_count, FAKE_EVS_MAX);
    struct fake_ev *ev = &evs[ev_count++];
    memset(ev, 0, sizeof(*ev));
    ev->kind = kind;
    ev->ref = r;
    ev->arg = arg;
    return ev;
}

void fake_ev_accept(int fd)
{
    ev_push(EV_ACCEPT, (struct fake_ref){0, 0}, fd);
}

void fake_ev_data(struct fake_ref r, const void *data, size_t len)
{
    struct fake_ev *ev = ev_push(EV_DATA, r, 0);
    ev->data = malloc(len);
    ck_assert_ptr_nonnull(ev->data);
    memcpy(ev->data, data, len);
    ev->len = len;
}

void fake_ev_data_buf(struct fake_ref r, const void *data, size_t len)
{
    ck_assert_uint_le(rx_used + len, FAKE_RX_BYTES);
    struct fake_ev *ev = ev_push(EV_DATA_BUF, r, 0);
    ev->data = rx_area + rx_used;
    memcpy(ev->data, data, len);
    ev->len = len;
    rx_used += len;
}

void fake_ev_eof(struct fake_ref r)
{
    ev_push(EV_EOF, r, 0);
}

void fake_ev_error(struct fake_ref r, int err)
{
    ev_push(EV_ERROR, r, err);
}

void fake_ev_sent(struct fake_ref r, int res)
{
    ev_push(EV_SENT, r, res);
}

void fake_ev_writable(struct fake_ref r)
{
    ev_push(EV_WRITABLE, r, 0);
}

void fake_ev_released(struct fake_ref r)
{
    ev_push(EV_RELEASED, r, 0);
}

struct fake_ref fake_open(void)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    ck_assert_int_eq(pending_peer, -1);
    pending_peer = sv[1];
    uint32_t from = fake.ncalls;
    fake_ev_accept(sv[0]);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_uint_eq(fake_count(FAKE_CONN_OPEN, NULL, from), 1);
    for (uint32_t i = from; i < fake.ncalls; i++)
        if (fake.calls[i].op == FAKE_CONN_OPEN)
            return (struct fake_ref){fake.calls[i].index, fake.calls[i].generation};
    ck_abort();
}

void fake_flush_script(const int *results, uint32_t count)
{
    ck_assert_uint_le(fake.flush_count + count, 64);
    memcpy(fake.flush_script + fake.flush_count, results, count * sizeof(*results));
    fake.flush_count += count;
}

struct rw_conn *fake_conn(struct fake_ref r)
{
    return rw__conn_lookup(fake.loop.conns, fake.loop.conn_cap, r.index, r.generation);
}

uint32_t fake_count(enum fake_op op, const struct fake_ref *r, uint32_t from)
{
    uint32_t n = 0;
    for (uint32_t i = from; i < fake.ncalls; i++)
        if (fake.calls[i].op == op &&
            (!r || (fake.calls[i].index == r->index && fake.calls[i].generation == r->generation)))
            n++;
    return n;
}

uint64_t fake_stat(enum rw_stat k)
{
    return rw__stat_get(&fake.loop.stats, k);
}

bool fake_peer_sees_eof(struct fake_ref r)
{
    ck_assert_uint_lt(r.index, FAKE_SLOTS_MAX);
    ck_assert_int_ge(fake.peer_fd[r.index], 0);
    char b;
    return recv(fake.peer_fd[r.index], &b, 1, MSG_DONTWAIT) == 0;
}

size_t fake_frame(uint8_t *out, const void *payload, uint32_t len)
{
    rw_frame_put_header(out, len);
    memcpy(out + RW_FRAME_HEADER_BYTES, payload, len);
    return RW_FRAME_HEADER_BYTES + len;
}
