/*
 * The embedding API: an application handler receives complete frames from a
 * connection and queues reply frames on it. Handlers run on the connection's
 * worker thread, inside the loop, never concurrently for one connection.
 */
#ifndef RINGWIRE_HANDLER_H
#define RINGWIRE_HANDLER_H

#include <stdint.h>

#include <ringwire/export.h>

struct rw_conn;

struct rw_handler {
    const char *name;
    /*
     * One complete frame. payload points into a receive buffer owned by the
     * server and is valid only during the call: copy what must outlive it.
     * Return 0, or a negative errno to close the connection (counted as a
     * protocol error; replies already queued are still sent).
     */
    int (*on_frame)(struct rw_conn *conn, const uint8_t *payload, uint32_t len);
};

/*
 * Queue one reply frame (header added here). The payload is copied, so the
 * caller keeps ownership. Replies leave in order, batched once per loop turn.
 * Returns 0, or -ENOMEM (nothing queued).
 */
RW_API int rw_conn_send_frame(struct rw_conn *conn, const void *payload, uint32_t len);

/* The echo application: answers every frame with an identical frame. */
extern const struct rw_handler rw_echo_handler;

#endif
