/*
 * Connection-level reassembler: turns an arbitrary chunking of the byte stream
 * into frames. Frames wholly inside a chunk are delivered as views into that
 * chunk (zero copy); only the bytes of a frame that straddles chunks are copied
 * into the connection's own buffer, which grows up to header + max_bytes (the
 * framing's header, include/ringwire/frame.h).
 */
#ifndef RW_REASM_H
#define RW_REASM_H

#include <stddef.h>
#include <stdint.h>

#include <ringwire/frame.h>

struct rw_reasm {
    uint8_t *buf; /* NULL when nothing is pending and nothing is kept */
    uint32_t len; /* bytes of the pending (incomplete) frame held, header included */
    uint32_t cap; /* allocated bytes of buf */
};

/* Called once per complete frame: header and payload contiguous, in the chunk or in the
 * straddle buffer, valid only during the call. Return 0 to continue, or a negative errno
 * to stop (returned by feed). */
typedef int (*rw_frame_fn)(void *ctx, const struct rw_frame *frame);

/*
 * Feed one chunk, framed by f (the same f on every feed). Every complete frame is passed
 * to fn in order. Returns 0 when the chunk was consumed (a trailing partial frame is kept);
 * as soon as a header is complete, however it was split: -EMSGSIZE when its adjusted length
 * exceeds max_bytes, -EPROTO when it adjusts below zero (every frame before it was
 * delivered; the reassembler must not be fed again); -ENOMEM when the straddle buffer
 * cannot grow; or fn's negative return.
 */
int rw__reasm_feed(struct rw_reasm *r, const struct rw_framing *f, const uint8_t *data, size_t len,
                   uint32_t max_bytes, rw_frame_fn fn, void *ctx);

/* Bytes of an incomplete frame held (0: at a frame boundary). */
static inline uint32_t rw__reasm_pending(const struct rw_reasm *r)
{
    return r->len;
}

/* Drop anything pending and free the buffer. Safe on a zeroed struct. */
void rw__reasm_reset(struct rw_reasm *r);

#endif
