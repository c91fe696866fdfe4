/*
 * One connection: a slot in its loop's fixed connection table, owned by the
 * core; backends read fd, index, generation, state and outq, and keep their
 * own per-connection state in its backend bytes (at most RW_BACKEND_CONN_BYTES). A slot is
 * reused only after the backend reported it released (no operation in flight).
 * An idle connection costs this struct and nothing else (no read buffer).
 */
#ifndef RW_CONN_H
#define RW_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "outq.h"
#include "proxy.h"
#include "reasm.h"
#include "rw_limits.h"
#include "wheel.h"

struct rw_loop;

enum rw_conn_state {
    RW_CONN_FREE = 0, /* slot on the free list */
    RW_CONN_OPEN,     /* reading and/or writing */
    RW_CONN_CLOSING,  /* backend is tearing it down; waiting for release */
};

enum rw_conn_flag {
    RW_CONN_READ_PAUSED = 1u << 0, /* output above --write-buffer: not reading */
    RW_CONN_READ_EOF = 1u << 1,    /* peer half-closed (or drain): close once output drains */
    RW_CONN_PROTO_ERROR = 1u << 2, /* bad frame: answer earlier frames, FIN, linger, close */
    RW_CONN_WR_SHUT = 1u << 3,     /* shutdown(SHUT_WR) done */
    RW_CONN_DIRTY =
        1u << 4, /* on the loop's dirty list: flush at the end of the turn (or sooner) */
    RW_CONN_MEM_PAUSED = 1u << 5,   /* --max-memory reached while its buffers grew: not reading */
    RW_CONN_PEER_DONE = 1u << 6,    /* the peer sent FIN or RST while paused: read the rest */
    RW_CONN_PROXY_WAIT = 1u << 7,   /* --proxy-protocol: its PROXY header is not in yet */
    RW_CONN_CLOSE_REQ = 1u << 8,    /* rw_conn_close during on_frame: close once it returns */
    RW_CONN_DRAIN_PAUSED = 1u << 9, /* drain: found quiet, reading stopped to confirm it */
};

/*
 * Laid out for the per-frame path (kernel-notes/17): a slot is 64-byte aligned, and everything a
 * frame touches lies in its first two cache lines -- line 0 the identity, state and the
 * backend's own bytes, line 1 the input and output queues -- so a frame costs the connection
 * two lines, not the three or four of a 176-byte slot at any offset plus a backend table
 * entry elsewhere. What only partial frames, timers, lingering and --proxy-protocol need
 * follows.
 */
struct rw_conn {
    /* line 0 */
    struct rw_loop *loop;
    int fd;
    uint32_t index;          /* slot in loop->conns */
    uint32_t generation;     /* bumped on every reuse; stale events carry the old one */
    uint16_t state;          /* enum rw_conn_state */
    uint16_t flags;          /* enum rw_conn_flag */
    uint64_t last_active_ms; /* last byte received or sent: idle reaping, lazily */
    /* The backend's own state of this connection (each defines what it keeps here; the core
     * never reads it): beside what the backend reads of the core's on every completion. */
    _Alignas(8) unsigned char backend[RW_BACKEND_CONN_BYTES];
    /* line 1 */
    struct rw_reasm reasm;
    struct rw_outq outq;
    struct rw_conn *dirty_next;
    /* The application's view (include/ringwire/ringwire.h): its pointer. */
    void *user;
    /* the rest */
    uint64_t frame_started_ms; /* when the pending partial frame began */
    uint64_t linger_until_ms;  /* PROTO_ERROR: give up waiting for the peer's FIN */
    struct rw_timer timer;
    /* --proxy-protocol: a header split across reads is held here (RW_PROXY_MAX_BYTES, malloc'd
     * only then, freed once it is whole), and the real client it names is kept for logs. */
    uint8_t *proxy_buf;
    uint16_t proxy_len;
    struct rw_proxy_addr client; /* family 0: none given; the socket's peer is the client */
    /* Whether on_open accepted it (so on_close is owed), and why it is closing when that was
     * decided before the close itself (a protocol or handler error, rw_conn_close, a drain;
     * else the peer). */
    bool opened;
    uint8_t why; /* enum rw_close_reason */
} __attribute__((aligned(64)));

_Static_assert(__builtin_offsetof(struct rw_conn, backend) + RW_BACKEND_CONN_BYTES == 64,
               "line 0: identity, state and the backend's bytes");
_Static_assert(__builtin_offsetof(struct rw_conn, user) + sizeof(void *) == 128,
               "line 1: the input and output queues");

#endif
