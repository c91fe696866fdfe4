/*
 * ringwire framing: the public, stateless, zero-copy length-field parser. A frame is a
 * header (`offset` bytes the parser does not interpret, then a 1, 2, 3, 4 or 8-byte
 * unsigned length field, big- or little-endian) and a payload whose length is the field's
 * value plus `adjust`, the model of Netty's LengthFieldBasedFrameDecoder and tokio-util's
 * LengthDelimitedCodec. The default (RW_FRAMING_DEFAULT) is the SPEC's wire format: a
 * 4-byte big-endian length that counts the payload only. The parser reads caller memory
 * only and keeps no state (picohttpparser style).
 */
#ifndef RINGWIRE_FRAME_H
#define RINGWIRE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ringwire/export.h>

enum rw_length_order { RW_LENGTH_BIG = 0, RW_LENGTH_LITTLE = 1 };

/* Most bytes before the length field (struct rw_framing.offset). */
#define RW_FRAMING_OFFSET_MAX 4096u
/* Largest |adjust|: far beyond any header, small enough that no arithmetic on it overflows. */
#define RW_FRAMING_ADJUST_MAX ((int64_t)1 << 32)
/* Largest header: the most offset bytes and an 8-byte field. */
#define RW_FRAMING_HEADER_MAX (RW_FRAMING_OFFSET_MAX + 8u)

struct rw_framing {
    uint8_t length_bytes; /* width of the length field: 1, 2, 3, 4 or 8 */
    uint8_t order;        /* enum rw_length_order */
    uint32_t offset;      /* bytes before the length field, part of the header; <= OFFSET_MAX */
    int64_t adjust;       /* added to the field's value to get the payload length (e.g. -4 when
                             the field counts itself); |adjust| <= RW_FRAMING_ADJUST_MAX */
};

/* 4-byte big-endian length of the payload only: `struct rw_framing f = RW_FRAMING_DEFAULT;`
 * (as a value: `(struct rw_framing)RW_FRAMING_DEFAULT`). */
#define RW_FRAMING_DEFAULT                                                                         \
    {                                                                                              \
        .length_bytes = 4, .order = RW_LENGTH_BIG, .offset = 0, .adjust = 0                        \
    }

/*
 * 0 when f describes a framing that can carry frames: a width of 1, 2, 3, 4 or 8, a known
 * order, offset <= RW_FRAMING_OFFSET_MAX, |adjust| <= RW_FRAMING_ADJUST_MAX, and a field
 * whose largest value still adjusts to a length >= 0. Else -EINVAL. The functions below
 * take only framings that pass this check.
 */
RW_API int rw_framing_check(const struct rw_framing *f);

/* Bytes of the header: the offset bytes and the length field. */
static inline uint32_t rw_framing_header_bytes(const struct rw_framing *f)
{
    return f->offset + f->length_bytes;
}

/* One frame, as a view into the caller's buffer: valid while that buffer is. */
struct rw_frame {
    const uint8_t *header;  /* start of the frame: offset bytes, then the length field */
    uint32_t header_len;    /* rw_framing_header_bytes() */
    const uint8_t *payload; /* == header + header_len */
    uint32_t len;           /* payload bytes (the field's value + adjust) */
};

/*
 * Parse one frame at the start of buf[0..len) under framing f.
 * Returns the bytes the frame occupies (header + payload, > 0) and fills *out; 0 when more
 * bytes are needed; as soon as the header is complete (whatever follows it): -EMSGSIZE when
 * the adjusted length exceeds max_bytes (a field too large for any adjustment included),
 * -EPROTO when it adjusts below zero. *out is untouched unless a frame is returned.
 */
RW_API ssize_t rw_framing_parse(const struct rw_framing *f, const uint8_t *buf, size_t len,
                                uint32_t max_bytes, struct rw_frame *out);

/*
 * Write the header for a payload of payload_len bytes into out (rw_framing_header_bytes(f)
 * bytes): offset zero bytes, then the field holding payload_len - adjust. Returns the header
 * bytes, or -ERANGE when that value is negative or does not fit the field (nothing written).
 */
RW_API int rw_framing_put_header(const struct rw_framing *f, uint8_t *out, uint32_t payload_len);

/* The default framing, as before framing became configurable. */
#define RW_FRAME_HEADER_BYTES 4u

/* rw_framing_parse under RW_FRAMING_DEFAULT (-EMSGSIZE is its only error). */
RW_API ssize_t rw_frame_parse(const uint8_t *buf, size_t len, uint32_t max_bytes,
                              struct rw_frame *frame);

/* Write the 4-byte network-order header for a payload of len bytes. */
RW_API void rw_frame_put_header(uint8_t out[RW_FRAME_HEADER_BYTES], uint32_t len);

#endif
