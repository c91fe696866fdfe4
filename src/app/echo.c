/*
 * The echo application: every frame is answered with an identical frame, in order: the
 * same header bytes (offset bytes and length field, whatever the framing) and payload.
 */
#include "echo.h"

static int echo_on_frame(struct rw_conn *conn, const struct rw_frame *frame)
{
    /* send_raw of the whole frame: a frame in the receive buffer goes by reference, header
     * and all (--uring-features zc-replies). */
    return rw_conn_send_raw(conn, frame->header, (size_t)frame->header_len + frame->len);
}

const struct rw_handler rw_echo_handler = {
    .name = "echo",
    .on_frame = echo_on_frame,
};
