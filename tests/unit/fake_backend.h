/*
 * A fake I/O backend for unit tests of the connection policy: a struct
 * rw_backend_ops that does no I/O but records every call the core makes,
 * answers flush with results the test scripts, and delivers the events the
 * test queues (data, EOF, sends, errors, writability, releases, accepts)
 * from inside wait(), as a real backend does. Connections are AF_UNIX
 * socketpairs: the core's end is its fd (shutdown, SIOCINQ and close work on
 * it; TCP-only socket options fail quietly), the test keeps the peer end to
 * observe FIN and close. The loop's clock is the fake's (rw__now_ms_hook).
 *
 * fake_turn() re-enters rw__loop_run for one turn: it runs the loop top
 * (drain, timers, upkeep, the dirty flush), the wait that delivers the
 * queued events, the loop top again, and returns at the next wait. Each
 * entry asks accept_start again unless stopping; the fake takes that as a
 * no-op when already accepting and records only real starts.
 */
#ifndef RW_FAKE_BACKEND_H
#define RW_FAKE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "loop.h"

enum fake_op {
    FAKE_ACCEPT_START,
    FAKE_ACCEPT_STOP,
    FAKE_CONN_OPEN,
    FAKE_READ_PAUSE,
    FAKE_READ_RESUME,
    FAKE_FLUSH,
    FAKE_CLOSE,
};

struct fake_call {
    enum fake_op op;
    uint32_t index, generation; /* the connection's, for per-connection ops */
    uint64_t queued;            /* FLUSH: bytes it was asked to send (outq) */
    int result;                 /* FLUSH: what it answered */
};

/* A connection as the backend names it in events: stale once its slot is reused. */
struct fake_ref {
    uint32_t index, generation;
};

/* A flush result meaning "send everything queued" (the default when nothing is scripted). */
#define FAKE_SEND_ALL INT32_MIN

#define FAKE_CALLS_MAX 4096u
#define FAKE_SLOTS_MAX 16u

struct fake {
    struct rw_options cfg;
    struct rw_shared shared;
    struct rw_loop loop;
    uint64_t now_ms; /* the loop's clock */

    struct fake_call calls[FAKE_CALLS_MAX];
    uint32_t ncalls;
    bool accepting;
    /* close returns false and the slot waits for fake_released (uring-like); else true. */
    bool release_later;
    /* read_idle answers false: a receive still has completions to come (uring after a pause). */
    bool recv_busy;
    /* Scripted flush results, in order: > 0 send at most that many, 0 nothing now (socket
     * full / in flight), < 0 that error, FAKE_SEND_ALL everything. */
    int flush_script[64];
    uint32_t flush_next, flush_count;
    uint32_t dropped; /* events whose (index, generation) no longer named a live connection */
    /* Receive buffers lent with fake_ev_data_buf: holds asked (granted or not) and releases. */
    bool refuse_holds;
    uint32_t holds, releases;

    /* Per slot: what reached the "wire" (bytes the core was told were sent), and the test's
     * end of the socketpair. Reset when the slot opens a new connection. */
    uint8_t *wire[FAKE_SLOTS_MAX];
    size_t wire_len[FAKE_SLOTS_MAX];
    int peer_fd[FAKE_SLOTS_MAX];
};

extern struct fake fake;

/* Echo-like handler for the tests: payload "EPROTO" returns -EPROTO, "ENOMEM" -ENOMEM, else
 * echo. */
extern const struct rw_handler fake_handler;

/* cfg (from rw__config_defaults, then the test's changes) -> a loop on the fake backend. */
void fake_setup(const struct rw_options *cfg);
/* Stop, drain (forcing past the deadline), destroy; closes the test's fds. */
void fake_teardown(void);

/* One loop turn (see above): rw__loop_run's result, -ECANCELED when it did not finish. */
int fake_turn(void);
/* Move the clock on by ms. */
void fake_advance(uint64_t ms);

/* Queue events, delivered in order by the next fake_turn's wait. */
void fake_ev_accept(int fd);
void fake_ev_data(struct fake_ref r, const void *data, size_t len);
/* As fake_ev_data, through rw__conn_on_data_buf, the bytes in a buffer the fake lends (each
 * event its own, never reused while the test runs). */
void fake_ev_data_buf(struct fake_ref r, const void *data, size_t len);
void fake_ev_eof(struct fake_ref r);
void fake_ev_error(struct fake_ref r, int err);
void fake_ev_sent(struct fake_ref r, int res); /* res > 0: those bytes reach the wire first */
void fake_ev_writable(struct fake_ref r);
void fake_ev_released(struct fake_ref r);

/* Queue a socketpair's end as an accept and run a turn; the new connection (must open). */
struct fake_ref fake_open(void);
/* Script the next flush results. */
void fake_flush_script(const int *results, uint32_t count);

/* The live connection r names, or NULL. */
struct rw_conn *fake_conn(struct fake_ref r);
/* Calls of op (for r's connection when r is given) recorded since call number from. */
uint32_t fake_count(enum fake_op op, const struct fake_ref *r, uint32_t from);
uint64_t fake_stat(enum rw_stat k);
/* Does the test's end of r's socketpair see EOF (the core shut down or closed its end)? */
bool fake_peer_sees_eof(struct fake_ref r);
/* A frame (header + payload) into out; returns its length. */
size_t fake_frame(uint8_t *out, const void *payload, uint32_t len);

#endif
