/* The echo application: every frame is answered with an identical frame, in order. */
#include <ringwire/handler.h>

static int echo_on_frame(struct rw_conn *conn, const uint8_t *payload, uint32_t len)
{
    return rw_conn_send_frame(conn, payload, len);
}

const struct rw_handler rw_echo_handler = {
    .name = "echo",
    .on_frame = echo_on_frame,
};
