/*
 * Unit tests for the connection policy (src/core/conn.c, with the loop
 * driver loop.c) on a fake backend (fake_backend.h): the loop is set up by
 * rw__loop_init as in the server, the test plays the backend's part (accepts,
 * data, EOF, errors, send completions, writability, releases) and the clock,
 * and checks what the core asked of the backend, the worker's counters and
 * the connections' state. Covered: replies to frames split at every byte;
 * one flush a turn for many frames (batching); zero-copy replies from a lent
 * receive buffer (held until sent, copied when the hold is refused); backpressure at
 * --write-buffer with resume below half; partial sends; half-close with and
 * without output pending; drain (accept_stop, idle closed, busy finish,
 * deadline force-closes); a protocol error (answer, FIN, linger until the
 * peer's EOF or the linger deadline); a handler's -EPROTO and -ENOMEM (the
 * replies queued before still go out, then FIN); idle and frame timeouts;
 * --max-conns; stale events after a slot's reuse; socket errors.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ringwire/frame.h>

#include "fake_backend.h"
#include "options.h"
#include "rw_limits.h"

#define HDR RW_FRAME_HEADER_BYTES

static void base_cfg(struct rw_options *cfg)
{
    rw_options_init(cfg);
    cfg->max_conns = 8;
    cfg->idle_timeout_ms = 0;
    cfg->frame_timeout_ms = 0;
    cfg->tcp_user_timeout_ms = 0; /* TCP options do not apply to the socketpairs */
    cfg->keepalive_idle_s = 0;
    cfg->max_memory_bytes = 0;
    cfg->max_frame_bytes = 1024;
    cfg->write_buffer_bytes = 1u << 20;
    cfg->drain_timeout_ms = 5000;
}

static void setup_default(void)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    fake_setup(&cfg);
}

static void assert_wire(struct fake_ref r, const uint8_t *want, size_t len)
{
    ck_assert_uint_eq(fake.wire_len[r.index], len);
    if (len)
        ck_assert_mem_eq(fake.wire[r.index], want, len);
}

/* Script n flush results of value v. */
static void script_n(int v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        fake_flush_script(&v, 1);
}

/* Frames of these payloads, back to back; returns the length. bounds[i]: end of frame i. */
static size_t stream_of(uint8_t *out, const char *const *payloads, size_t count, size_t *bounds)
{
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        len += fake_frame(out + len, payloads[i], (uint32_t)strlen(payloads[i]));
        if (bounds)
            bounds[i] = len;
    }
    return len;
}

/* ---- framing and batching ---- */

START_TEST(test_split_at_every_byte)
{
    static const char *const payloads[] = {"hello", "", "ringwire!", "x"};
    uint8_t s[128];
    size_t bounds[4];
    size_t len = stream_of(s, payloads, 4, bounds);
    for (size_t k = 1; k < len; k++) {
        setup_default();
        struct fake_ref r = fake_open();
        fake_ev_data(r, s, k);
        fake_turn();
        size_t done = 0; /* replies to the frames complete in s[0, k) */
        for (size_t i = 0; i < 4; i++)
            if (bounds[i] <= k)
                done = bounds[i];
        assert_wire(r, s, done);
        fake_ev_data(r, s + k, len - k);
        fake_turn();
        assert_wire(r, s, len); /* echo: the replies are the requests */
        ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 4);
        ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_OUT), 4);
        ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_IN), len);
        ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_OUT), len);
        ck_assert_ptr_nonnull(fake_conn(r));
        fake_teardown();
    }
    /* One byte a read. */
    setup_default();
    struct fake_ref r = fake_open();
    for (size_t i = 0; i < len; i++) {
        fake_ev_data(r, s + i, 1);
        fake_turn();
    }
    assert_wire(r, s, len);
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 4);
    fake_teardown();
}
END_TEST

START_TEST(test_batching_one_flush_a_turn)
{
    setup_default();
    struct fake_ref r = fake_open();
    static const char *const payloads[] = {"a", "bb", "ccc", "dddd", "eeeee", "f", "gg", "h"};
    uint8_t s[256];
    size_t len = stream_of(s, payloads, 8, NULL);
    uint32_t from = fake.ncalls;
    fake_ev_data(r, s, len);
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_FLUSH, &r, from), 1);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].op, FAKE_FLUSH);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].queued, len);
    assert_wire(r, s, len); /* in order */

    /* Three reads in one wait: still one flush, after all of them. */
    from = fake.ncalls;
    fake_ev_data(r, s, 10);
    fake_ev_data(r, s + 10, 20);
    fake_ev_data(r, s + 30, len - 30);
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_FLUSH, &r, from), 1);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].queued, len);
    ck_assert_uint_eq(fake.wire_len[r.index], 2 * len);
    ck_assert_mem_eq(fake.wire[r.index] + len, s, len);
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_OUT), 16);
    fake_teardown();
}
END_TEST

START_TEST(test_zero_copy_replies)
{
    setup_default();
    rw__loop_set_zc_min_bytes(&fake.loop, 1);
    struct fake_ref r = fake_open();
    static const char *const payloads[] = {"by", "reference", "please"};
    uint8_t s[128];
    size_t len = stream_of(s, payloads, 3, NULL);
    script_n(0, 1);
    fake_ev_data_buf(r, s, len);
    fake_turn();
    /* Echo replies are the requests' own bytes: sent from the lent buffer, held till sent. */
    ck_assert_uint_eq(fake_stat(RW_STAT_ZC_REPLIES), 3);
    ck_assert_uint_ge(fake.holds, 1);
    ck_assert_uint_lt(fake.releases, fake.holds);
    fake_ev_writable(r);
    fake_turn();
    assert_wire(r, s, len);
    ck_assert_uint_eq(fake.releases, fake.holds);

    /* A backend short of buffers refuses the hold: the replies are copied. */
    fake.refuse_holds = true;
    fake_ev_data_buf(r, s, len);
    fake_turn();
    ck_assert_uint_eq(fake_stat(RW_STAT_ZC_REPLIES), 3);
    ck_assert_uint_ge(fake_stat(RW_STAT_ZC_COPIED_LOW), 1);
    ck_assert_uint_eq(fake.wire_len[r.index], 2 * len);
    ck_assert_mem_eq(fake.wire[r.index] + len, s, len);
    ck_assert_uint_eq(fake.releases, fake.holds);
    fake_teardown();
}
END_TEST

/* ---- backpressure and partial sends ---- */

START_TEST(test_backpressure)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.write_buffer_bytes = 64; /* pause at >= 64 queued, resume below 32 */
    fake_setup(&cfg);
    struct fake_ref r = fake_open();
    uint8_t f[64];
    size_t flen = fake_frame(f, "0123456789abcdefghij", 20); /* 24 bytes */

    script_n(0, 1); /* the socket is full */
    fake_ev_data(r, f, flen);
    fake_ev_data(r, f, flen);
    fake_turn();
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), 48);
    ck_assert_uint_eq(fake_count(FAKE_READ_PAUSE, &r, 0), 0);

    script_n(0, 1);
    fake_ev_data(r, f, flen); /* 72: above --write-buffer */
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_READ_PAUSE, &r, 0), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_BACKPRESSURE_PAUSES), 1);
    ck_assert(fake_conn(r)->flags & RW_CONN_READ_PAUSED);

    script_n(0, 1);
    fake_ev_data(r, f, flen); /* read before the pause took: no second pause */
    fake_turn();
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), 96);
    ck_assert_uint_eq(fake_count(FAKE_READ_PAUSE, &r, 0), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_BACKPRESSURE_PAUSES), 1);

    int part1[] = {46, 0};
    fake_flush_script(part1, 2);
    fake_ev_writable(r);
    fake_turn(); /* 50 left: below --write-buffer, not below half */
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), 50);
    ck_assert_uint_eq(fake_count(FAKE_READ_RESUME, &r, 0), 0);

    int part2[] = {24, 0};
    fake_flush_script(part2, 2);
    fake_ev_writable(r);
    fake_turn(); /* 26 left: below 32, read again */
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), 26);
    ck_assert_uint_eq(fake_count(FAKE_READ_RESUME, &r, 0), 1);
    ck_assert(!(fake_conn(r)->flags & RW_CONN_READ_PAUSED));

    fake_ev_writable(r);
    fake_turn();
    ck_assert(rw__outq_empty(&fake_conn(r)->outq));
    uint8_t want[96];
    for (int i = 0; i < 4; i++)
        memcpy(want + i * flen, f, flen);
    assert_wire(r, want, 96);
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_OUT), 96);
    ck_assert_uint_eq(fake_count(FAKE_READ_PAUSE, &r, 0), 1);
    ck_assert_uint_eq(fake_count(FAKE_READ_RESUME, &r, 0), 1);
    fake_teardown();
}
END_TEST

START_TEST(test_partial_sends)
{
    setup_default();
    struct fake_ref r = fake_open();
    static const char *const payloads[] = {"first reply", "second", "third one"};
    uint8_t s[128];
    size_t len = stream_of(s, payloads, 3, NULL);

    /* A readiness backend: the kernel took 7 bytes, then the socket was full. */
    int sync[] = {7, 0};
    fake_flush_script(sync, 2);
    uint32_t from = fake.ncalls;
    fake_ev_data(r, s, len);
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_FLUSH, &r, from), 2);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 2].queued, len);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].queued, len - 7); /* from byte 7 on */
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), len - 7);
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_OUT), 7);

    /* A completion backend: the send is in flight (0), its result comes later. */
    script_n(0, 1);
    fake_ev_writable(r);
    fake_turn();
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].queued, len - 7);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].result, 0);
    script_n(0, 1);
    fake_ev_sent(r, 5); /* 5 of them went: the rest is flushed again this turn */
    fake_turn();
    ck_assert_uint_eq(rw__outq_bytes(&fake_conn(r)->outq), len - 12);
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_OUT), 12);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].op, FAKE_FLUSH);
    ck_assert_uint_eq(fake.calls[fake.ncalls - 1].queued, len - 12);
    fake_ev_sent(r, (int)(len - 12));
    from = fake.ncalls;
    fake_turn();
    ck_assert(rw__outq_empty(&fake_conn(r)->outq));
    ck_assert_uint_eq(fake_count(FAKE_FLUSH, &r, from), 0); /* nothing left to send */
    assert_wire(r, s, len);
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_OUT), len);
    fake_teardown();
}
END_TEST

/* ---- half-close ---- */

START_TEST(test_half_close_with_output_pending)
{
    setup_default();
    struct fake_ref r = fake_open();
    uint8_t f[32];
    size_t flen = fake_frame(f, "bye", 3);
    script_n(0, 1);
    fake_ev_data(r, f, flen);
    fake_ev_eof(r);
    fake_turn();
    struct rw_conn *c = fake_conn(r);
    ck_assert_ptr_nonnull(c); /* stays until its output drained */
    ck_assert_uint_eq(c->state, RW_CONN_OPEN);
    ck_assert(c->flags & RW_CONN_READ_EOF);
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 0);
    ck_assert(!fake_peer_sees_eof(r));

    fake_ev_writable(r);
    fake_turn();
    assert_wire(r, f, flen);
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 1);
    ck_assert_ptr_null(fake_conn(r));
    ck_assert(fake_peer_sees_eof(r));
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_PROTOCOL), 0);
    fake_teardown();
}
END_TEST

START_TEST(test_half_close_idle_closes_at_once)
{
    setup_default();
    struct fake_ref r = fake_open();
    uint8_t f[32];
    size_t flen = fake_frame(f, "truncated", 9);
    uint32_t from = fake.ncalls;
    fake_ev_data(r, f, flen - 2); /* a last frame cut short is dropped */
    fake_ev_eof(r);
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, from), 1);
    ck_assert_uint_eq(fake_count(FAKE_FLUSH, &r, from), 0);
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    ck_assert(fake_peer_sees_eof(r));
    fake_teardown();
}
END_TEST

/* ---- drain ---- */

START_TEST(test_drain)
{
    setup_default();
    ck_assert_uint_eq(fake_count(FAKE_ACCEPT_START, NULL, 0), 0);
    struct fake_ref idle = fake_open();
    ck_assert_uint_eq(fake_count(FAKE_ACCEPT_START, NULL, 0), 1);
    struct fake_ref busy = fake_open();
    struct fake_ref stuck = fake_open();
    struct fake_ref late = fake_open();
    uint8_t f[32];
    size_t flen = fake_frame(f, "pending", 7);
    script_n(0, 2);
    fake_ev_data(busy, f, flen);
    fake_ev_data(stuck, f, flen);
    fake_turn();
    ck_assert_uint_eq(fake.flush_next, 2);

    atomic_store(&fake.shared.stop, true);
    /* late's frame is reaped by this turn's wait, after the turn's first look found late
     * quiet (its bytes had left the socket): it must be answered, not dropped. */
    fake_ev_data(late, f, flen);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_uint_eq(fake_count(FAKE_ACCEPT_STOP, NULL, 0), 1);
    ck_assert_uint_eq(fake_count(FAKE_ACCEPT_START, NULL, 0), 1);
    /* Quiet at one look: closed only if still quiet at the next, after a wait (a receive the
     * kernel completed on its own time may not be reaped yet: sqpoll). The turn's wait
     * reaped late's frame, so idle closed at the second look and late was answered. */
    ck_assert_ptr_null(fake_conn(idle));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &idle, 0), 1);
    ck_assert_ptr_nonnull(fake_conn(late));
    assert_wire(late, f, flen);
    ck_assert_ptr_nonnull(fake_conn(busy));
    ck_assert_ptr_nonnull(fake_conn(stuck));

    /* A connection accepted meanwhile is refused, not counted as over the limit. */
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    uint32_t from = fake.ncalls;
    fake_ev_accept(sv[0]);
    fake_ev_writable(busy); /* its reply goes out: then it is quiet and closes */
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_CONN_OPEN, NULL, from), 0);
    char b;
    ck_assert_int_eq(recv(sv[1], &b, 1, MSG_DONTWAIT), 0);
    close(sv[1]);
    ck_assert_uint_eq(fake_stat(RW_STAT_REJECTED_LIMIT), 0);
    assert_wire(busy, f, flen);
    /* Quiet connections are looked for at the top of a turn, before its flush: busy and late
     * are quiet at the next turn's look and closed at the one after. */
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_ptr_nonnull(fake_conn(busy));
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_ptr_null(fake_conn(busy));
    ck_assert_ptr_null(fake_conn(late));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &busy, 0), 1);
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &late, 0), 1);
    ck_assert_ptr_nonnull(fake_conn(stuck));

    /* --drain-timeout: the rest are closed. */
    fake_advance(fake.cfg.drain_timeout_ms);
    fake_turn();
    ck_assert_ptr_null(fake_conn(stuck));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &stuck, 0), 1);
    ck_assert_int_eq(fake_turn(), 0); /* drained: rw__loop_run returns */
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 4);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    fake_teardown();
}
END_TEST

/*
 * The drain's proof of quiet: a connection with nothing queued and nothing unread first stops
 * reading, and is closed only once the backend says its receive has ended (read_idle). While
 * the receive's completions are still to come (uring after a cancel; sqpoll, where the kernel
 * moves bytes out of the socket before we reap them) it stays open, and a frame reaped then
 * is answered. Bytes waiting in the socket resume reading.
 */
START_TEST(test_drain_waits_for_the_receive_to_end)
{
    setup_default();
    struct fake_ref r = fake_open();
    fake_turn();
    fake.recv_busy = true;
    atomic_store(&fake.shared.stop, true);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_ptr_nonnull(fake_conn(r));
    ck_assert_uint_eq(fake_count(FAKE_READ_PAUSE, &r, 0), 1);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_ptr_nonnull(fake_conn(r)); /* receive not ended: not closed */

    uint8_t f[32];
    size_t flen = fake_frame(f, "reaped late", 11);
    fake_ev_data(r, f, flen);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_ptr_nonnull(fake_conn(r));
    assert_wire(r, f, flen);

    /* A byte unread in the socket: reading resumes (it must be read and answered). */
    uint32_t from = fake.ncalls;
    ck_assert_int_eq(write(fake.peer_fd[r.index], "x", 1), 1);
    ck_assert_int_eq(fake_turn(), -ECANCELED);
    ck_assert_uint_eq(fake_count(FAKE_READ_RESUME, &r, from), 1);
    ck_assert_ptr_nonnull(fake_conn(r));
    uint8_t sink[4];
    ck_assert_int_eq(recv(fake.loop.conns[r.index].fd, sink, sizeof(sink), MSG_DONTWAIT), 1);

    fake.recv_busy = false;
    ck_assert_int_eq(fake_turn(), -ECANCELED); /* quiet again: stops reading */
    ck_assert_ptr_nonnull(fake_conn(r));
    ck_assert_int_eq(fake_turn(), 0); /* receive ended, still quiet: closed; drained */
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 1);
    fake_teardown();
}
END_TEST

/* ---- protocol errors ---- */

/* A frame, then a header over --max-frame (16), then junk: the reply goes, then FIN. */
static struct fake_ref oversize_after_reply(uint8_t *reply, size_t *reply_len, bool full_socket)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.max_frame_bytes = 16;
    fake_setup(&cfg);
    struct fake_ref r = fake_open();
    uint8_t s[64];
    size_t len = fake_frame(s, "ok", 2);
    *reply_len = len;
    memcpy(reply, s, len);
    rw_frame_put_header(s + len, 1000);
    len += HDR;
    memcpy(s + len, "junk", 4);
    len += 4;
    if (full_socket)
        script_n(0, 1);
    fake_ev_data(r, s, len);
    fake_turn();
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_PROTOCOL), 1);
    struct rw_conn *c = fake_conn(r);
    ck_assert_ptr_nonnull(c);
    ck_assert(c->flags & RW_CONN_PROTO_ERROR);
    if (full_socket) {
        /* No FIN before the earlier reply is out. */
        ck_assert(!(c->flags & RW_CONN_WR_SHUT));
        ck_assert(!fake_peer_sees_eof(r));
        fake_ev_writable(r);
        fake_turn();
    }
    assert_wire(r, reply, *reply_len);
    ck_assert(c->flags & RW_CONN_WR_SHUT);
    ck_assert(fake_peer_sees_eof(r)); /* FIN */
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 0);
    return r;
}

START_TEST(test_protocol_error_linger_until_peer_eof)
{
    uint8_t reply[32];
    size_t reply_len;
    struct fake_ref r = oversize_after_reply(reply, &reply_len, true);
    uint64_t in = fake_stat(RW_STAT_BYTES_IN);
    uint8_t more[16];
    size_t mlen = fake_frame(more, "late", 4);
    fake_ev_data(r, more, mlen); /* lingering: read and discarded */
    fake_turn();
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_IN), in + mlen);
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 1);
    assert_wire(r, reply, reply_len);
    ck_assert_ptr_nonnull(fake_conn(r));

    fake_ev_eof(r);
    fake_turn();
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_PROTOCOL), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    fake_teardown();
}
END_TEST

START_TEST(test_protocol_error_linger_deadline)
{
    uint8_t reply[32];
    size_t reply_len;
    struct fake_ref r = oversize_after_reply(reply, &reply_len, false);
    fake_advance(RW_LINGER_MS / 2);
    fake_turn();
    ck_assert_ptr_nonnull(fake_conn(r));
    fake_advance(RW_LINGER_MS / 2 + 2 * RW_WHEEL_TICK_MS);
    fake_turn();
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_PROTOCOL), 1); /* counted once */
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_IDLE), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    fake_teardown();
}
END_TEST

/* The handler fails on the third frame: replies to the first two still go, then FIN. */
static void handler_error(const char *what)
{
    setup_default();
    struct fake_ref r = fake_open();
    static const char *payloads[] = {"one", "two", NULL, "four"};
    payloads[2] = what;
    uint8_t s[128];
    size_t bounds[4];
    size_t len = stream_of(s, payloads, 4, bounds);
    script_n(0, 1);
    fake_ev_data(r, s, len);
    fake_turn();
    struct rw_conn *c = fake_conn(r);
    ck_assert_msg(c != NULL, "%s: closed with the replies queued before", what);
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 3); /* "four" is never delivered */
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_OUT), 2);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_PROTOCOL), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    ck_assert(!fake_peer_sees_eof(r)); /* the replies first */
    fake_ev_writable(r);
    fake_turn();
    assert_wire(r, s, bounds[1]);
    ck_assert(fake_peer_sees_eof(r));
    fake_ev_eof(r);
    fake_turn();
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    fake_teardown();
}

START_TEST(test_handler_eproto)
{
    handler_error("EPROTO");
}
END_TEST

START_TEST(test_handler_enomem)
{
    handler_error("ENOMEM");
}
END_TEST

/* ---- timeouts ---- */

START_TEST(test_idle_timeout)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.idle_timeout_ms = 1000;
    fake_setup(&cfg);
    struct fake_ref r = fake_open();
    uint8_t f[16];
    fake_frame(f, "hi", 2);
    fake_advance(500);
    fake_ev_data(r, f, 2); /* a byte received (no reply to send) moves the deadline */
    fake_turn();
    fake_advance(600);
    fake_turn();
    ck_assert_ptr_nonnull(fake_conn(r));
    fake_advance(400 + 2 * RW_WHEEL_TICK_MS);
    fake_turn();
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &r, 0), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_IDLE), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_FRAME_TIMEOUT), 0);
    fake_teardown();
}
END_TEST

START_TEST(test_frame_timeout)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.idle_timeout_ms = 60000;
    cfg.frame_timeout_ms = 500;
    fake_setup(&cfg);
    struct fake_ref r = fake_open();
    uint8_t f[16];
    size_t flen = fake_frame(f, "slowly", 6);
    fake_ev_data(r, f, 3); /* a frame begins */
    fake_turn();
    fake_advance(300);
    fake_ev_data(r, f + 3, 3); /* more of it: the frame's deadline stays */
    fake_turn();
    ck_assert_ptr_nonnull(fake_conn(r));
    fake_advance(200 + 2 * RW_WHEEL_TICK_MS);
    fake_turn();
    ck_assert_ptr_null(fake_conn(r));
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_FRAME_TIMEOUT), 1);
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_IDLE), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_FRAMES_IN), 0);
    (void)flen;
    fake_teardown();
}
END_TEST

/* ---- limits and slots ---- */

static int accept_pair(int *peer)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    *peer = sv[1];
    return sv[0];
}

START_TEST(test_max_conns)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.max_conns = 2;
    fake_setup(&cfg);
    fake.release_later = true;
    struct fake_ref a = fake_open();
    struct fake_ref b = fake_open();
    int peer;
    uint32_t from = fake.ncalls;
    fake_ev_accept(accept_pair(&peer));
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_CONN_OPEN, NULL, from), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_REJECTED_LIMIT), 1);
    char ch;
    ck_assert_int_eq(recv(peer, &ch, 1, MSG_DONTWAIT), 0); /* closed */
    close(peer);

    /* A closing connection holds its place until the backend released it. */
    fake_ev_eof(a);
    fake_ev_accept(accept_pair(&peer));
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &a, 0), 1);
    ck_assert_uint_eq(fake.loop.conns[a.index].state, RW_CONN_CLOSING);
    ck_assert_uint_eq(fake_stat(RW_STAT_REJECTED_LIMIT), 2);
    ck_assert_int_eq(recv(peer, &ch, 1, MSG_DONTWAIT), 0);
    close(peer);

    fake_ev_released(a);
    fake_turn();
    struct fake_ref c = fake_open();
    ck_assert_uint_eq(c.index, a.index);
    ck_assert_uint_eq(c.generation, a.generation + 1);
    ck_assert_ptr_nonnull(fake_conn(b));
    ck_assert_uint_eq(fake_stat(RW_STAT_ACCEPTED), 3);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    fake_teardown();

    /* The limit is process-wide: connections on other workers count, with room in our table. */
    cfg.max_conns = 4;
    fake_setup(&cfg);
    atomic_fetch_add(&fake.shared.conns_open, 3); /* another worker's */
    struct fake_ref mine = fake_open();
    from = fake.ncalls;
    fake_ev_accept(accept_pair(&peer));
    fake_turn();
    ck_assert_uint_eq(fake_count(FAKE_CONN_OPEN, NULL, from), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_REJECTED_LIMIT), 1);
    ck_assert_int_eq(recv(peer, &ch, 1, MSG_DONTWAIT), 0);
    close(peer);
    ck_assert_ptr_nonnull(fake_conn(mine));
    fake_teardown();
    ck_assert_uint_eq(atomic_load(&fake.shared.conns_open), 3);
}
END_TEST

START_TEST(test_stale_events_after_reuse)
{
    struct rw_options cfg;
    base_cfg(&cfg);
    cfg.max_conns = 1;
    fake_setup(&cfg);
    fake.release_later = true;
    struct fake_ref old = fake_open();
    uint8_t f[16];
    size_t flen = fake_frame(f, "x", 1);
    fake_ev_eof(old);
    fake_turn();
    ck_assert_uint_eq(fake.loop.conns[old.index].state, RW_CONN_CLOSING);
    /* Completions still in flight for a closing connection change nothing. */
    fake_ev_data(old, f, flen);
    fake_ev_sent(old, 3);
    fake_ev_writable(old);
    fake_ev_error(old, -ECONNRESET);
    fake_ev_eof(old);
    fake_turn();
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_IN), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 0);
    ck_assert_uint_eq(fake_count(FAKE_CLOSE, &old, 0), 1);
    fake_ev_released(old);
    fake_turn();

    struct fake_ref now = fake_open();
    ck_assert_uint_eq(now.index, old.index);
    ck_assert_uint_ne(now.generation, old.generation);
    uint32_t from = fake.ncalls;
    fake_ev_data(old, f, flen);
    fake_ev_eof(old);
    fake_ev_error(old, -ECONNRESET);
    fake_ev_sent(old, -EPIPE);
    fake_ev_writable(old);
    fake_ev_released(old);
    fake_turn();
    ck_assert_uint_eq(fake.dropped, 6);
    ck_assert_uint_eq(fake.ncalls, from); /* nothing asked of the backend */
    struct rw_conn *c = fake_conn(now);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->state, RW_CONN_OPEN);
    ck_assert_uint_eq(c->flags & RW_CONN_READ_EOF, 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_BYTES_IN), 0);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 1);
    fake_teardown();
}
END_TEST

/* ---- socket errors ---- */

START_TEST(test_socket_errors)
{
    setup_default();
    struct fake_ref reset = fake_open();
    struct fake_ref timed_out = fake_open();
    struct fake_ref send_fails = fake_open();
    struct fake_ref sent_fails = fake_open();
    uint8_t f[16];
    size_t flen = fake_frame(f, "x", 1);
    fake_ev_error(reset, -ECONNRESET);
    fake_ev_error(timed_out, -ETIMEDOUT);
    int fail[] = {-EPIPE};
    fake_flush_script(fail, 1);
    fake_ev_data(send_fails, f, flen);
    fake_turn();
    ck_assert_ptr_null(fake_conn(reset));
    ck_assert_ptr_null(fake_conn(timed_out));
    ck_assert_ptr_null(fake_conn(send_fails));
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 2);
    ck_assert_uint_eq(fake_stat(RW_STAT_REAPED_TCP_TIMEOUT), 1);

    script_n(0, 1);
    fake_ev_data(sent_fails, f, flen);
    fake_turn();
    fake_ev_sent(sent_fails, -ECONNRESET);
    fake_turn();
    ck_assert_ptr_null(fake_conn(sent_fails));
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED_ERROR), 3);
    ck_assert_uint_eq(fake_stat(RW_STAT_CLOSED), 4);
    fake_teardown();
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_split_at_every_byte);
    tcase_add_test(tc, test_batching_one_flush_a_turn);
    tcase_add_test(tc, test_zero_copy_replies);
    tcase_add_test(tc, test_backpressure);
    tcase_add_test(tc, test_partial_sends);
    tcase_add_test(tc, test_half_close_with_output_pending);
    tcase_add_test(tc, test_half_close_idle_closes_at_once);
    tcase_add_test(tc, test_drain);
    tcase_add_test(tc, test_drain_waits_for_the_receive_to_end);
    tcase_add_test(tc, test_protocol_error_linger_until_peer_eof);
    tcase_add_test(tc, test_protocol_error_linger_deadline);
    tcase_add_test(tc, test_handler_eproto);
    tcase_add_test(tc, test_handler_enomem);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_frame_timeout);
    tcase_add_test(tc, test_max_conns);
    tcase_add_test(tc, test_stale_events_after_reuse);
    tcase_add_test(tc, test_socket_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
