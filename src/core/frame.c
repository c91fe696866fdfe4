/*
 * The stateless length-prefix frame parser (see include/ringwire/frame.h), in the
 * picohttpparser style: it reads only caller memory, never beyond buf[len), keeps no
 * state and copies nothing; a parsed frame's payload points into the caller's buffer.
 * The oversize check runs as soon as the 4 header bytes are present, so a peer cannot
 * make us wait for (or buffer) a payload we would reject anyway.
 */
#include <errno.h>

#include <ringwire/frame.h>

#include "rw_assert.h"

static uint32_t read_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

RW_API ssize_t rw_frame_parse(const uint8_t *buf, size_t len, uint32_t max_bytes, struct rw_frame *frame)
{
    RW_ASSERT(frame != NULL);
    if (len < RW_FRAME_HEADER_BYTES)
        return 0;
    RW_ASSERT(buf != NULL);
    uint32_t payload_len = read_be32(buf);
    if (payload_len > max_bytes)
        return -EMSGSIZE;
    if (len - RW_FRAME_HEADER_BYTES < payload_len)
        return 0;
    frame->header = buf;
    frame->header_len = RW_FRAME_HEADER_BYTES;
    frame->payload = buf + RW_FRAME_HEADER_BYTES;
    frame->len = payload_len;
    /* Widen before adding: header + a payload near UINT32_MAX must not wrap. */
    return (ssize_t)((size_t)RW_FRAME_HEADER_BYTES + payload_len);
}

RW_API void rw_frame_put_header(uint8_t out[RW_FRAME_HEADER_BYTES], uint32_t len)
{
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
}
