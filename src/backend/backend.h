/*
 * The one small interface between the core (loop.c) and an I/O backend.
 * Completion-shaped: the core asks for work; results come back through the
 * rw__loop_on_* / rw__conn_on_* callbacks, which backends call only from
 * inside wait(). Backends own mechanics only: no policy, no allocation on the
 * data path, no logging per event.
 */
#ifndef RW_BACKEND_H
#define RW_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"

struct rw_loop;
struct rw_conn;

struct rw_backend_ops {
    const char *name;
    /* Create the backend for loop (loop->listen_fds, loop->wake_fd are set). 0 or -errno. */
    int (*init)(struct rw_loop *loop, void **out_be);
    void (*destroy)(void *be);
    /* Start/stop accepting on every loop->listen_fds[i]. stop is idempotent. */
    int (*accept_start)(void *be);
    void (*accept_stop)(void *be);
    /* A new connection: start reading. 0 or -errno (the core then closes it). */
    int (*conn_open)(void *be, struct rw_conn *conn);
    /* Backpressure: stop / restart reading. Idempotent. */
    void (*read_pause)(void *be, struct rw_conn *conn);
    void (*read_resume)(void *be, struct rw_conn *conn);
    /*
     * Send from conn->outq without consuming it. Returns bytes sent now (> 0,
     * the core consumes them), 0 when the send is in flight or the socket is
     * full (the result comes later via on_sent / on_writable), or -errno.
     */
    int (*flush)(void *be, struct rw_conn *conn);
    /* Tear down: stop every operation, close the fd, then rw__conn_on_released
     * (possibly later). Returns true if released already (inside this call). */
    bool (*close)(void *be, struct rw_conn *conn);
    /* Submit pending work, wait up to timeout_ms (-1 forever), dispatch events. 0 or -errno. */
    int (*wait)(void *be, int timeout_ms);
};

extern const struct rw_backend_ops rw__epoll_ops;
extern const struct rw_backend_ops rw__uring_ops;

/*
 * Probe io_uring for everything the uring backend needs. 0 when usable, else
 * -errno with why (and the remedy) in reason.
 */
int rw__uring_probe(char *reason, size_t reason_bytes);
/* Print the kernel version and each io_uring feature with yes/no (--probe). */
void rw__uring_probe_print(FILE *out);

/*
 * Pick the backend for kind. auto: uring when the probe passes, else epoll
 * (reason says why). uring: NULL when the probe fails (reason says why).
 */
const struct rw_backend_ops *rw__backend_select(enum rw_backend_kind kind, char *reason,
                                                size_t reason_bytes);

#endif
