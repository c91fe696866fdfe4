/*
 * libFuzzer target for the connection-level path: the reassembler fed an
 * arbitrary chunking of an arbitrary stream, every frame echoed into an output
 * queue, the queue drained by arbitrary partial "sends" — checked against a
 * plain reference model (decode the whole stream at once, echo each frame),
 * under a framing taken from the input. Frames are echoed as the echo app does
 * (the request's own header and payload, rw__outq_append2) or, for every other
 * frame when byte 4 says so, rebuilt by rw__outq_append_frame (offset bytes
 * zero, the same length field). Input: byte 0..3 = max-frame and chunking seed,
 * byte 4 = width, order, offset 0..3 and the rebuild choice, byte 5 = adjust
 * (-15..15, or minus the header), the rest = the stream.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "outq.h"
#include "reasm.h"

struct sink {
    const struct rw_framing *f;
    bool rebuild; /* odd frames through rw__outq_append_frame */
    size_t frames;
    struct rw_outq q;
    struct rw_block_pool pool;
    uint8_t *sent; /* bytes drained from q so far */
    size_t sent_len;
    size_t sent_cap;
};

static int echo(void *ctx, const struct rw_frame *frame)
{
    struct sink *s = ctx;
    int rc;
    if (s->rebuild && s->frames % 2 == 1)
        rc = rw__outq_append_frame(&s->q, &s->pool, s->f, frame->payload, frame->len);
    else
        rc = rw__outq_append2(&s->q, &s->pool, frame->header, frame->header_len, frame->payload,
                              frame->len);
    if (rc < 0)
        abort();
    s->frames++;
    return 0;
}

static void drain_some(struct sink *s, size_t want)
{
    struct iovec iov[8];
    size_t count = rw__outq_gather(&s->q, iov, 8);
    size_t n = 0;
    for (size_t i = 0; i < count && n < want; i++) {
        size_t take = iov[i].iov_len < want - n ? iov[i].iov_len : want - n;
        if (s->sent_len + take > s->sent_cap)
            abort();
        memcpy(s->sent + s->sent_len, iov[i].iov_base, take);
        s->sent_len += take;
        n += take;
    }
    rw__outq_consume(&s->q, &s->pool, n);
}

/* Reference: decode the whole stream; the expected echo is every complete frame before the
 * first bad header or the incomplete tail, written to want (rebuilt frames: offset bytes 0). */
static size_t reference(const struct rw_framing *f, bool rebuild, const uint8_t *data, size_t len,
                        uint32_t max, uint8_t *want, int *expect_err)
{
    uint32_t hl = rw_framing_header_bytes(f);
    size_t off = 0;
    *expect_err = 0;
    for (size_t i = 0; len - off >= hl; i++) {
        unsigned __int128 v = 0;
        for (unsigned k = 0; k < f->length_bytes; k++) {
            unsigned at = f->order == RW_LENGTH_BIG ? k : f->length_bytes - 1 - k;
            v = v << 8 | data[off + f->offset + at];
        }
        __int128 n = (__int128)v + f->adjust;
        if (n < 0 || n > max) {
            *expect_err = n < 0 ? -EPROTO : -EMSGSIZE;
            break;
        }
        if (len - off - hl < (size_t)n)
            break;
        memcpy(want + off, data + off, hl + (size_t)n);
        if (rebuild && i % 2 == 1)
            memset(want + off, 0, f->offset);
        off += hl + (size_t)n;
    }
    return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    uint32_t max = ((uint32_t)data[0] << 8 | data[1]) % 4096;
    uint32_t seed = (uint32_t)data[2] << 8 | data[3];
    static const uint8_t widths[] = {1, 2, 3, 4, 8};
    struct rw_framing f = {.length_bytes = widths[data[4] % 5],
                           .order = (uint8_t)(data[4] / 5 % 2),
                           .offset = (uint32_t)(data[4] / 10 % 4)};
    bool rebuild = data[4] / 40 % 2;
    f.adjust =
        data[5] >= 0xf0 ? -(int64_t)rw_framing_header_bytes(&f) : (int64_t)(data[5] % 31) - 15;
    if (rw_framing_check(&f) != 0)
        abort();
    const uint8_t *stream = data + 6;
    size_t len = size - 6;

    uint8_t *want = malloc(len + 1);
    if (!want)
        abort();
    int expect_err;
    size_t expect_len = reference(&f, rebuild, stream, len, max, want, &expect_err);

    struct sink s;
    memset(&s, 0, sizeof(s));
    s.f = &f;
    s.rebuild = rebuild;
    rw__outq_init(&s.q);
    rw__block_pool_init(&s.pool, 4);
    s.sent_cap = expect_len + 1;
    s.sent = malloc(s.sent_cap);
    struct rw_reasm r;
    memset(&r, 0, sizeof(r));

    int err = 0;
    size_t off = 0;
    while (off < len && err == 0) {
        seed = seed * 1103515245u + 12345u;
        size_t chunk = 1 + (seed >> 16) % 97;
        if (chunk > len - off)
            chunk = len - off;
        err = rw__reasm_feed(&r, &f, stream + off, chunk, max, echo, &s);
        off += chunk;
        drain_some(&s, (seed >> 8) % 300);
    }
    while (!rw__outq_empty(&s.q))
        drain_some(&s, 1 + (seed++ % 50));

    if (err != expect_err)
        abort();
    if (s.sent_len != expect_len || memcmp(s.sent, want, expect_len) != 0)
        abort();
    if (s.pool.blocks_live != 0)
        abort();
    rw__reasm_reset(&r);
    rw__outq_clear(&s.q, &s.pool);
    rw__block_pool_destroy(&s.pool);
    free(s.sent);
    free(want);
    return 0;
}
