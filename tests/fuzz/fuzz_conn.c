/*
 * libFuzzer target for the connection-level path: the reassembler fed an
 * arbitrary chunking of an arbitrary stream, every frame echoed into an output
 * queue, the queue drained by arbitrary partial "sends" — checked against a
 * plain reference model (decode the whole stream at once, echo each frame).
 * Input: byte 0..3 = max-frame and chunking seed, the rest = the stream.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "outq.h"
#include "reasm.h"

struct sink {
    struct rw_outq q;
    struct rw_block_pool pool;
    uint8_t *sent; /* bytes drained from q so far */
    size_t sent_len;
    size_t sent_cap;
};

static int echo(void *ctx, const uint8_t *payload, uint32_t len)
{
    struct sink *s = ctx;
    if (rw__outq_append_frame(&s->q, &s->pool, payload, len) < 0)
        abort();
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

/* Reference: decode the whole stream; the expected echo is every complete frame
 * before the first oversize header or the incomplete tail. */
static size_t reference(const uint8_t *data, size_t len, uint32_t max, int *expect_err)
{
    size_t off = 0;
    *expect_err = 0;
    while (len - off >= 4) {
        uint32_t n = ((uint32_t)data[off] << 24) | ((uint32_t)data[off + 1] << 16) |
                     ((uint32_t)data[off + 2] << 8) | data[off + 3];
        if (n > max) {
            *expect_err = -EMSGSIZE;
            break;
        }
        if (len - off - 4 < n)
            break;
        off += 4 + (size_t)n;
    }
    return off; /* echo of a frame is byte-identical to the frame */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    uint32_t max = ((uint32_t)data[0] << 8 | data[1]) % 4096;
    uint32_t seed = (uint32_t)data[2] << 8 | data[3];
    const uint8_t *stream = data + 4;
    size_t len = size - 4;

    int expect_err;
    size_t expect_len = reference(stream, len, max, &expect_err);

    struct sink s;
    memset(&s, 0, sizeof(s));
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
        err = rw__reasm_feed(&r, stream + off, chunk, max, echo, &s);
        off += chunk;
        drain_some(&s, (seed >> 8) % 300);
    }
    while (!rw__outq_empty(&s.q))
        drain_some(&s, 1 + (seed++ % 50));

    if (err != expect_err)
        abort();
    if (s.sent_len != expect_len || memcmp(s.sent, stream, expect_len) != 0)
        abort();
    if (s.pool.blocks_live != 0)
        abort();
    rw__reasm_reset(&r);
    rw__outq_clear(&s.q, &s.pool);
    rw__block_pool_destroy(&s.pool);
    free(s.sent);
    return 0;
}
