/* The echo application: every frame is answered with an identical frame, in order. */
#include "echo.h"

static int echo_on_frame(struct rw_conn *conn, const struct rw_frame *frame)
{
    /* send_frame, not send_raw of the header: a payload in the receive buffer goes by
     * reference, header and all (--uring-features zc-replies). */
    return rw_conn_send_frame(conn, frame->payload, frame->len);
}

const struct rw_handler rw_echo_handler = {
    .name = "echo",
    .on_frame = echo_on_frame,
};
