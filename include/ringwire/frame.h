/*
 * ringwire frame parser: the public, stateless, zero-copy length-prefix parser.
 * A frame is a 4-byte big-endian payload length followed by that many bytes.
 * The parser reads caller memory only and keeps no state (picohttpparser style).
 */
#ifndef RINGWIRE_FRAME_H
#define RINGWIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ringwire/export.h>

#define RW_FRAME_HEADER_BYTES 4u

struct rw_frame {
    const uint8_t *payload; /* points into the caller's buffer; valid while it is */
    uint32_t len;
};

/*
 * Parse one frame at the start of buf[0..len).
 * Returns the bytes the frame occupies (header + payload, > 0) and fills *frame,
 * 0 when more bytes are needed, or -EMSGSIZE as soon as a complete header
 * announces a payload longer than max_bytes (*frame untouched then).
 */
RW_API ssize_t rw_frame_parse(const uint8_t *buf, size_t len, uint32_t max_bytes,
                              struct rw_frame *frame);

/* Write the 4-byte network-order header for a payload of len bytes. */
RW_API void rw_frame_put_header(uint8_t out[RW_FRAME_HEADER_BYTES], uint32_t len);

#endif
