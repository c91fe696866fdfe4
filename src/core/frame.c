/*
 * The stateless length-field frame parser (see include/ringwire/frame.h), in the
 * picohttpparser style: it reads only caller memory, never beyond buf[len), keeps no
 * state and copies nothing; a parsed frame points into the caller's buffer. The length
 * checks run as soon as the header is present, so a peer cannot make us wait for (or
 * buffer) a payload we would reject anyway. Lengths are computed in uint64_t with the
 * adjustment applied by comparison first, so an 8-byte field of any value is safe.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <ringwire/frame.h>

#include "rw_assert.h"
#include "framing.h"

static bool width_ok(uint8_t w)
{
    return w == 1 || w == 2 || w == 3 || w == 4 || w == 8;
}

/* The largest value a field of w bytes holds. */
static uint64_t field_max(uint8_t w)
{
    return w == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * w)) - 1;
}

int rw_framing_check(const struct rw_framing *f)
{
    if (f == NULL || !width_ok(f->length_bytes))
        return -EINVAL;
    if (f->order != RW_LENGTH_BIG && f->order != RW_LENGTH_LITTLE)
        return -EINVAL;
    if (f->offset > RW_FRAMING_OFFSET_MAX)
        return -EINVAL;
    if (f->adjust > RW_FRAMING_ADJUST_MAX || f->adjust < -RW_FRAMING_ADJUST_MAX)
        return -EINVAL;
    /* Every value adjusting below zero: no frame could ever be carried. */
    if (f->adjust < 0 && field_max(f->length_bytes) < (uint64_t)-f->adjust)
        return -EINVAL;
    return 0;
}

static uint64_t read_field(const struct rw_framing *f, const uint8_t *p)
{
    uint64_t v = 0;
    uint8_t w = f->length_bytes;
    if (f->order == RW_LENGTH_BIG) {
        for (uint8_t i = 0; i < w; i++)
            v = v << 8 | p[i];
    } else {
        for (uint8_t i = w; i > 0; i--)
            v = v << 8 | p[i - 1];
    }
    return v;
}

int rw__framing_length(const struct rw_framing *f, const uint8_t *header, uint32_t max_bytes,
                       uint32_t *out_len)
{
    uint64_t v = read_field(f, header + f->offset);
    uint64_t len;
    if (f->adjust < 0) {
        uint64_t sub = (uint64_t)-f->adjust; /* |adjust| <= 2^32: no overflow negating */
        if (v < sub)
            return -EPROTO;
        len = v - sub;
    } else {
        if (v > UINT64_MAX - (uint64_t)f->adjust)
            return -EMSGSIZE; /* beyond any max_bytes */
        len = v + (uint64_t)f->adjust;
    }
    if (len > max_bytes)
        return -EMSGSIZE;
    *out_len = (uint32_t)len;
    return 0;
}

ssize_t rw_framing_parse(const struct rw_framing *f, const uint8_t *buf, size_t len,
                         uint32_t max_bytes, struct rw_frame *out)
{
    RW_ASSERT(f != NULL);
    RW_ASSERT(out != NULL);
    RW_DASSERT(rw_framing_check(f) == 0);
    uint32_t hl = rw_framing_header_bytes(f);
    if (len < hl)
        return 0;
    RW_ASSERT(buf != NULL);
    uint32_t payload_len = 0;
    if (f->length_bytes == 4 && f->offset == 0 && f->order == RW_LENGTH_BIG && f->adjust == 0) {
        /* SPEC's framing (offset 0, 4 bytes, big-endian, no adjustment), every frame of the
         * default server: one load instead of the general field loop (kernel-notes/17). */
        uint32_t be;
        memcpy(&be, buf, sizeof(be));
        payload_len = __builtin_bswap32(be);
        if (payload_len > max_bytes)
            return -EMSGSIZE;
    } else {
        int rc = rw__framing_length(f, buf, max_bytes, &payload_len);
        if (rc < 0)
            return rc;
    }
    if (len - hl < payload_len)
        return 0;
    out->header = buf;
    out->header_len = hl;
    out->payload = buf + hl;
    out->len = payload_len;
    /* Widen before adding: header + a payload near UINT32_MAX must not wrap. */
    return (ssize_t)((size_t)hl + payload_len);
}

int rw_framing_put_header(const struct rw_framing *f, uint8_t *out, uint32_t payload_len)
{
    RW_ASSERT(f != NULL);
    RW_DASSERT(rw_framing_check(f) == 0);
    /* |adjust| <= 2^32 and payload_len < 2^32: no overflow in int64_t. */
    int64_t value = (int64_t)payload_len - f->adjust;
    if (value < 0 || (uint64_t)value > field_max(f->length_bytes))
        return -ERANGE;
    RW_ASSERT(out != NULL);
    for (uint32_t i = 0; i < f->offset; i++)
        out[i] = 0;
    uint8_t *p = out + f->offset;
    uint64_t v = (uint64_t)value;
    uint8_t w = f->length_bytes;
    for (uint8_t i = 0; i < w; i++) {
        uint8_t byte = (uint8_t)(v >> (8 * i)); /* least significant first */
        p[f->order == RW_LENGTH_BIG ? w - 1 - i : i] = byte;
    }
    return (int)rw_framing_header_bytes(f);
}

static const struct rw_framing default_framing = RW_FRAMING_DEFAULT;

ssize_t rw_frame_parse(const uint8_t *buf, size_t len, uint32_t max_bytes, struct rw_frame *frame)
{
    return rw_framing_parse(&default_framing, buf, len, max_bytes, frame);
}

void rw_frame_put_header(uint8_t out[RW_FRAME_HEADER_BYTES], uint32_t len)
{
    int rc = rw_framing_put_header(&default_framing, out, len);
    RW_ASSERT(rc == (int)RW_FRAME_HEADER_BYTES); /* every uint32_t fits 4 bytes */
}
