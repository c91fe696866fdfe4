/*
 * The embedding API: an application handler receives complete frames from a
 * connection and queues reply frames on it. Handlers run on the connection's
 * worker thread, inside the loop, never concurrently for one connection.
 */
#ifndef RINGWIRE_HANDLER_H
#define RINGWIRE_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include <ringwire/frame.h>

struct rw_conn;

struct rw_handler {
    const char *name;
    /*
     * One complete frame under the server's framing: frame->header (header_len
     * bytes: the offset bytes and the length field) and frame->payload (len
     * bytes) lie contiguous in a receive buffer owned by the server and are
     * valid only during the call: copy what must outlive it. Return 0, or a
     * negative errno to close the connection (counted as a protocol error;
     * replies already queued are still sent).
     */
    int (*on_frame)(struct rw_conn *conn, const struct rw_frame *frame);
};

/*
 * Queue one reply frame; its header is built here from the server's framing (offset bytes
 * zero, the field holding len - adjust). The payload is copied, so the caller keeps
 * ownership. Replies leave in order, batched once per loop turn. Returns 0, -ERANGE when
 * len cannot be expressed in the length field (too large for its width, or below the
 * adjustment), or -ENOMEM (nothing queued either way).
 */
int rw_conn_send_frame(struct rw_conn *conn, const void *payload, uint32_t len);

/*
 * Queue len bytes the caller framed itself (one or more whole frames, or any bytes the
 * peer expects), in order with rw_conn_send_frame's. Copied, so the caller keeps
 * ownership; bytes that lie in the receive buffer on_frame is looking at (e.g. the
 * frame's own header and payload) may instead be sent from it, the buffer held until
 * they are. Counts one frame out. Returns 0, or -ENOMEM (nothing queued).
 */
int rw_conn_send_raw(struct rw_conn *conn, const void *bytes, size_t len);

/* The echo application: answers every frame with an identical frame. */
extern const struct rw_handler rw_echo_handler;

#endif
