/*
 * The connection-level reassembler (see reasm.h): completes a frame that
 * straddles chunks by copying only its bytes, then parses the rest of the
 * chunk in place and keeps only a trailing partial frame.
 */
#include "reasm.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "rw_assert.h"
#include "framing.h"
#include "rw_limits.h"

/* Grow geometrically to hold need bytes, never beyond limit (header + max_bytes): memory
 * follows the bytes that really arrived, not what a header announces. */
static int reasm_reserve(struct rw_reasm *r, uint32_t need, uint32_t limit)
{
    RW_ASSERT(need <= limit);
    if (need <= r->cap)
        return 0;
    uint64_t cap = r->cap ? r->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    uint8_t *buf = realloc(r->buf, (size_t)cap);
    if (!buf)
        return -ENOMEM;
    r->buf = buf;
    r->cap = (uint32_t)cap;
    return 0;
}

static void reasm_done(struct rw_reasm *r)
{
    r->len = 0;
    if (r->cap > RW_REASM_KEEP_BYTES) {
        free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    }
}

/* Copy up to `want` bytes from the chunk into the pending frame. Returns bytes or -ENOMEM. */
static ssize_t take(struct rw_reasm *r, const uint8_t *data, size_t len, uint32_t want,
                    uint32_t limit)
{
    size_t n = want < len ? want : len;
    if (reasm_reserve(r, r->len + (uint32_t)n, limit) < 0)
        return -ENOMEM;
    memcpy(r->buf + r->len, data, n);
    r->len += (uint32_t)n;
    return (ssize_t)n;
}

/*
 * Finish the pending frame from the front of the chunk. Returns bytes used,
 * or a negative errno; *fn_rc holds fn's return when a frame was delivered.
 */
static ssize_t complete_pending(struct rw_reasm *r, const struct rw_framing *f, const uint8_t *data,
                                size_t len, uint32_t max_bytes, rw_frame_fn fn, void *ctx,
                                int *fn_rc)
{
    size_t used = 0;
    uint32_t hl = rw_framing_header_bytes(f);
    uint32_t limit = hl + max_bytes;
    if (r->len < hl) {
        ssize_t n = take(r, data, len, hl - r->len, limit);
        if (n < 0)
            return n;
        used += (size_t)n;
        if (r->len < hl)
            return (ssize_t)used;
    }
    /* The header just completed (or did on an earlier feed and was checked then). */
    uint32_t payload = 0;
    int rc = rw__framing_length(f, r->buf, max_bytes, &payload);
    if (rc < 0)
        return rc;
    uint32_t total = hl + payload;
    RW_ASSERT(r->len <= total);
    /* Cap at this frame's size too: no geometric overshoot past what it can use. */
    ssize_t n = take(r, data + used, len - used, total - r->len, total);
    if (n < 0)
        return n;
    used += (size_t)n;
    if (r->len == total) {
        struct rw_frame frame = {
            .header = r->buf, .header_len = hl, .payload = r->buf + hl, .len = payload};
        *fn_rc = fn(ctx, &frame);
        reasm_done(r);
    }
    return (ssize_t)used;
}

int rw__reasm_feed(struct rw_reasm *r, const struct rw_framing *f, const uint8_t *data, size_t len,
                   uint32_t max_bytes, rw_frame_fn fn, void *ctx)
{
    RW_ASSERT(r->len <= r->cap);
    RW_ASSERT(max_bytes <= RW_FRAME_MAX_BYTES_CEILING);
    RW_ASSERT(fn != NULL);
    RW_ASSERT(f != NULL);
    RW_DASSERT(rw_framing_check(f) == 0);
    /* Nothing to do, and data may be NULL: no pointer arithmetic on it below. A pending
     * complete header cannot be waiting here: it was checked and, for an empty payload,
     * delivered when it arrived. */
    if (len == 0)
        return 0;
    size_t off = 0;
    if (r->len > 0) {
        int fn_rc = 0;
        ssize_t used = complete_pending(r, f, data, len, max_bytes, fn, ctx, &fn_rc);
        if (used < 0)
            return (int)used;
        if (fn_rc < 0)
            return fn_rc;
        off = (size_t)used;
        if (r->len > 0) {
            RW_ASSERT(off == len);
            return 0;
        }
    }
    while (off < len) {
        struct rw_frame frame;
        ssize_t n = rw_framing_parse(f, data + off, len - off, max_bytes, &frame);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        int rc = fn(ctx, &frame);
        if (rc < 0)
            return rc;
        off += (size_t)n;
    }
    if (off == len)
        return 0;
    /* A trailing partial frame: keep its bytes (header check already passed if complete).
     * The buffer is bounded by this frame's size when its header is here, else by header +
     * max. */
    RW_ASSERT(r->len == 0);
    size_t rest = len - off;
    uint32_t hl = rw_framing_header_bytes(f);
    uint32_t limit = hl + max_bytes;
    if (rest >= hl) {
        uint32_t payload = 0;
        int rc = rw__framing_length(f, data + off, max_bytes, &payload);
        RW_ASSERT(rc == 0); /* the parse above passed this header */
        limit = hl + payload;
    }
    RW_ASSERT(rest < limit);
    ssize_t n = take(r, data + off, rest, (uint32_t)rest, limit);
    return n < 0 ? (int)n : 0;
}

void rw__reasm_reset(struct rw_reasm *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = 0;
    r->cap = 0;
}
