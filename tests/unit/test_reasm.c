/*
 * Unit tests for the connection reassembler (src/core/reasm.c). A fixed stream
 * of frames (lengths 0, 1, 300, 70000 among others) fed at every 2-way split
 * point, in thousands of seeded random chunkings and one byte at a time must
 * yield the frame sequence of parsing the whole stream at once. Also: frames
 * wholly inside a chunk are views into it (zero copy) and straddling ones come
 * from the reassembly buffer, oversize mid-stream, exactly max through the
 * straddle path, callback stop, reset, and freeing of large buffers. Then every
 * framing (widths 1, 2, 3, 4, 8 x both orders x offsets 0, 1, 3 x adjusts 0,
 * -header, +2, -4): a stream split at every byte, one byte at a time and in 7-byte
 * chunks yields the same frames (header and payload contiguous, the header's own
 * bytes), and a header over the maximum after adjusting (or below zero) fails the
 * feed holding its last byte, however the header was split.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "reasm.h"
#include "rw_limits.h"

#define STREAM_MAX (1u << 20)

static const struct rw_framing DEF = RW_FRAMING_DEFAULT;

/* Check's ck_assert_* records every passing assertion (a write to the runner per
 * call); the hot loops below run millions of checks, so they fail through this. */
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("%s:%d: expected %s", __FILE__, __LINE__, #cond);                         \
    } while (0)

static const uint32_t stream_lens[] = {0, 1, 300, 70000, 0, 2, 3, 4, 5, 1023, 1024, 1025, 0, 1, 7};
#define STREAM_FRAMES (sizeof(stream_lens) / sizeof(stream_lens[0]))

static uint8_t *stream;
static size_t stream_len;
static size_t stream_off[STREAM_FRAMES]; /* start of each frame's header in stream */

/* Build the fixed stream once per test (fork mode runs each test in a child). */
static void stream_setup(void)
{
    stream_len = 0;
    for (size_t i = 0; i < STREAM_FRAMES; i++)
        stream_len += RW_FRAME_HEADER_BYTES + stream_lens[i];
    stream = malloc(stream_len);
    ck_assert_ptr_nonnull(stream);
    size_t off = 0;
    for (size_t i = 0; i < STREAM_FRAMES; i++) {
        stream_off[i] = off;
        rw_frame_put_header(stream + off, stream_lens[i]);
        off += RW_FRAME_HEADER_BYTES;
        for (uint32_t j = 0; j < stream_lens[i]; j++)
            stream[off + j] = (uint8_t)(i * 131u + j * 7u + (j >> 8));
        off += stream_lens[i];
    }
}

static void stream_teardown(void)
{
    free(stream);
    stream = NULL;
}

/* Checks each delivered frame against the whole-stream parse as it arrives. */
struct expect {
    const uint8_t *base; /* frames to match, in order, as parsed from base */
    size_t count;        /* frames expected in total */
    size_t seen;
    const struct rw_reasm *r;
    const uint8_t *chunk; /* the chunk being fed, for pointer-range checks */
    size_t chunk_len;
    size_t in_chunk;  /* frames delivered as views into the chunk */
    size_t from_buf;  /* frames delivered from the reassembly buffer */
    size_t stop_at;   /* return -ECANCELED on this frame (1-based); 0: never */
    uint32_t max_cap; /* largest r->cap seen during a delivery */
};

static int on_frame(void *ctx, const struct rw_frame *frame)
{
    const uint8_t *payload = frame->payload;
    uint32_t len = frame->len;
    struct expect *e = ctx;
    EXPECT(frame->header_len == RW_FRAME_HEADER_BYTES);
    EXPECT(frame->payload == frame->header + frame->header_len);
    EXPECT(e->seen < e->count);
    struct rw_frame want;
    size_t off = stream_off[e->seen];
    ssize_t n = rw_frame_parse(e->base + off, stream_len - off, STREAM_MAX, &want);
    EXPECT(n > 0);
    EXPECT(len == want.len);
    /* A view at the frame's own place in the stream holds its bytes by construction. */
    if (len > 0 && payload != want.payload)
        EXPECT(memcmp(payload, want.payload, len) == 0);
    uintptr_t at = (uintptr_t)payload;
    uintptr_t chunk = (uintptr_t)e->chunk;
    if (e->chunk && at >= chunk && at + len <= chunk + e->chunk_len) {
        EXPECT(payload == want.payload); /* zero copy: the frame's own bytes in the chunk */
        e->in_chunk++;
    } else {
        EXPECT(payload == e->r->buf + RW_FRAME_HEADER_BYTES);
        e->from_buf++;
    }
    if (e->r->cap > e->max_cap)
        e->max_cap = e->r->cap;
    e->seen++;
    if (e->stop_at != 0 && e->seen == e->stop_at)
        return -ECANCELED;
    return 0;
}

static void feed_ok(struct rw_reasm *r, struct expect *e, const uint8_t *data, size_t len)
{
    e->chunk = data;
    e->chunk_len = len;
    EXPECT(rw__reasm_feed(r, &DEF, data, len, STREAM_MAX, on_frame, e) == 0);
}

static struct expect expect_stream(const struct rw_reasm *r)
{
    struct expect e = {.base = stream, .count = STREAM_FRAMES, .r = r};
    return e;
}

static void finish_stream(struct rw_reasm *r, struct expect *e)
{
    EXPECT(e->seen == STREAM_FRAMES);
    EXPECT(rw__reasm_pending(r) == 0);
    rw__reasm_reset(r);
}

START_TEST(test_reasm_whole_stream)
{
    struct rw_reasm r = {0};
    struct expect e = expect_stream(&r);
    feed_ok(&r, &e, stream, stream_len);
    ck_assert_uint_eq(e.in_chunk, STREAM_FRAMES);
    /* No malloc for frames that lie wholly in a chunk. */
    ck_assert_ptr_null(r.buf);
    ck_assert_uint_eq(r.cap, 0);
    finish_stream(&r, &e);
}
END_TEST

START_TEST(test_reasm_every_split_point)
{
    for (size_t i = 0; i <= stream_len; i++) {
        struct rw_reasm r = {0};
        struct expect e = expect_stream(&r);
        feed_ok(&r, &e, stream, i);
        feed_ok(&r, &e, stream + i, stream_len - i);
        EXPECT(e.from_buf <= 1);
        finish_stream(&r, &e);
    }
}
END_TEST

/* xorshift32: deterministic, seeded, good enough to pick chunk sizes. */
static uint32_t prng_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

START_TEST(test_reasm_random_chunkings)
{
    uint32_t state = 0x2545f491u;
    for (int round = 0; round < 4000; round++) {
        /* Vary the scale: byte-sized, header-sized, frame-sized and large chunks. */
        static const uint32_t scales[] = {3, 9, 64, 1500, 40000, 100000};
        uint32_t scale = scales[prng_next(&state) % (sizeof(scales) / sizeof(scales[0]))];
        struct rw_reasm r = {0};
        struct expect e = expect_stream(&r);
        size_t off = 0;
        while (off < stream_len) {
            size_t chunk = prng_next(&state) % scale; /* 0: an empty feed, also valid */
            if (chunk > stream_len - off)
                chunk = stream_len - off;
            feed_ok(&r, &e, stream + off, chunk);
            off += chunk;
        }
        finish_stream(&r, &e);
    }
}
END_TEST

START_TEST(test_reasm_one_byte_at_a_time)
{
    struct rw_reasm r = {0};
    struct expect e = expect_stream(&r);
    for (size_t i = 0; i < stream_len; i++)
        feed_ok(&r, &e, stream + i, 1);
    ck_assert_uint_eq(e.from_buf, STREAM_FRAMES);
    ck_assert_uint_le(e.max_cap, RW_FRAME_HEADER_BYTES + 70000); /* never beyond the frame */
    finish_stream(&r, &e);
}
END_TEST

START_TEST(test_reasm_zero_copy_views)
{
    /* Chunk 1 ends inside frame 3 (len 70000); chunk 2 holds the rest. */
    size_t split = stream_off[3] + RW_FRAME_HEADER_BYTES + 100;
    struct rw_reasm r = {0};
    struct expect e = expect_stream(&r);
    feed_ok(&r, &e, stream, split);
    ck_assert_uint_eq(e.seen, 3);
    ck_assert_uint_eq(e.in_chunk, 3); /* frames 0..2: pointers into chunk 1 */
    ck_assert_uint_eq(e.from_buf, 0);
    ck_assert_uint_eq(rw__reasm_pending(&r), RW_FRAME_HEADER_BYTES + 100);
    feed_ok(&r, &e, stream + split, stream_len - split);
    ck_assert_uint_eq(e.from_buf, 1);                     /* frame 3 straddled */
    ck_assert_uint_eq(e.in_chunk, 3 + STREAM_FRAMES - 4); /* the rest: into chunk 2 */
    finish_stream(&r, &e);
}
END_TEST

/* Frames A (len 5), B (len 0), then a header announcing max + 1, then C. */
static size_t build_oversize(uint8_t *buf, uint32_t max)
{
    size_t off = 0;
    rw_frame_put_header(buf + off, 5);
    memcpy(buf + off + 4, "hello", 5);
    off += 9;
    rw_frame_put_header(buf + off, 0);
    off += 4;
    rw_frame_put_header(buf + off, max + 1);
    off += 4;
    rw_frame_put_header(buf + off, 1); /* C: never delivered */
    buf[off + 4] = 'c';
    return off + 5;
}

struct count {
    size_t frames;
    uint32_t lens[8];
};

static int count_frame(void *ctx, const struct rw_frame *frame)
{
    uint32_t len = frame->len;
    struct count *c = ctx;
    ck_assert_uint_lt(c->frames, 8);
    c->lens[c->frames++] = len;
    return 0;
}

START_TEST(test_reasm_oversize_mid_stream)
{
    const uint32_t max = 64;
    uint8_t buf[64];
    size_t n = build_oversize(buf, max);
    size_t header_end = 9 + 4 + 4; /* the oversize header's last byte ends here */
    /* Every split point: A and B delivered, -EMSGSIZE from the feed that completes the header. */
    for (size_t i = 0; i <= n; i++) {
        struct rw_reasm r = {0};
        struct count c = {0};
        int rc1 = rw__reasm_feed(&r, &DEF, buf, i, max, count_frame, &c);
        if (i >= header_end) {
            ck_assert_int_eq(rc1, -EMSGSIZE);
        } else {
            ck_assert_int_eq(rc1, 0);
            ck_assert_int_eq(rw__reasm_feed(&r, &DEF, buf + i, n - i, max, count_frame, &c),
                             -EMSGSIZE);
        }
        ck_assert_uint_eq(c.frames, 2);
        ck_assert_uint_eq(c.lens[0], 5);
        ck_assert_uint_eq(c.lens[1], 0);
        ck_assert_uint_le(r.cap, RW_FRAME_HEADER_BYTES + max);
        rw__reasm_reset(&r);
    }
    /* Header split 2 + 2 with no payload byte ever sent: rejected at once. */
    struct rw_reasm r = {0};
    struct count c = {0};
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, buf + 13, 2, max, count_frame, &c), 0);
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, buf + 15, 2, max, count_frame, &c), -EMSGSIZE);
    ck_assert_uint_eq(c.frames, 0);
    rw__reasm_reset(&r);
}
END_TEST

START_TEST(test_reasm_exact_max_straddle)
{
    const uint32_t max = 5000;
    size_t n = RW_FRAME_HEADER_BYTES + max;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    rw_frame_put_header(buf, max);
    memset(buf + RW_FRAME_HEADER_BYTES, 0x5a, max);
    /* Split inside the header, right after it, mid payload and before the last byte. */
    const size_t splits[] = {1, 2, 3, 4, 5, 2500, n - 1};
    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        struct rw_reasm r = {0};
        struct count c = {0};
        ck_assert_int_eq(rw__reasm_feed(&r, &DEF, buf, splits[i], max, count_frame, &c), 0);
        ck_assert_uint_eq(c.frames, 0);
        ck_assert_uint_le(r.cap, n); /* never beyond 4 + max */
        ck_assert_int_eq(
            rw__reasm_feed(&r, &DEF, buf + splits[i], n - splits[i], max, count_frame, &c), 0);
        ck_assert_uint_eq(c.frames, 1);
        ck_assert_uint_eq(c.lens[0], max);
        ck_assert_uint_eq(rw__reasm_pending(&r), 0);
        rw__reasm_reset(&r);
    }
    free(buf);
}
END_TEST

START_TEST(test_reasm_callback_stop)
{
    /* In-chunk path: stop on the 2nd frame; the 3rd is never delivered. */
    struct rw_reasm r = {0};
    struct expect e = expect_stream(&r);
    e.stop_at = 2;
    e.chunk = stream;
    e.chunk_len = stream_len;
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, stream, stream_len, STREAM_MAX, on_frame, &e),
                     -ECANCELED);
    ck_assert_uint_eq(e.seen, 2);
    rw__reasm_reset(&r);

    /* Straddle path: stop on frame 3 (70000) as it completes from the buffer. */
    size_t split = stream_off[3] + 10;
    struct rw_reasm r2 = {0};
    struct expect e2 = expect_stream(&r2);
    e2.stop_at = 4;
    feed_ok(&r2, &e2, stream, split);
    e2.chunk = stream + split;
    e2.chunk_len = stream_len - split;
    ck_assert_int_eq(
        rw__reasm_feed(&r2, &DEF, stream + split, stream_len - split, STREAM_MAX, on_frame, &e2),
        -ECANCELED);
    ck_assert_uint_eq(e2.seen, 4);
    ck_assert_uint_eq(e2.from_buf, 1);
    rw__reasm_reset(&r2);
}
END_TEST

START_TEST(test_reasm_reset_frees)
{
    struct rw_reasm r = {0};
    rw__reasm_reset(&r); /* safe on a zeroed struct */
    ck_assert_ptr_null(r.buf);

    struct expect e = expect_stream(&r);
    feed_ok(&r, &e, stream, stream_off[2] + 7); /* ends inside frame 2 (len 300) */
    ck_assert_uint_eq(rw__reasm_pending(&r), 7);
    ck_assert_ptr_nonnull(r.buf);
    rw__reasm_reset(&r);
    ck_assert_ptr_null(r.buf);
    ck_assert_uint_eq(r.len, 0);
    ck_assert_uint_eq(r.cap, 0);
    ck_assert_uint_eq(rw__reasm_pending(&r), 0);

    /* Usable again from a frame boundary. */
    struct expect e2 = expect_stream(&r);
    feed_ok(&r, &e2, stream, stream_len);
    finish_stream(&r, &e2);
}
END_TEST

START_TEST(test_reasm_large_buffer_freed)
{
    /* Frame 3 (70000) straddles: its buffer exceeds RW_REASM_KEEP_BYTES and is freed. */
    size_t split = stream_off[3] + 3000;
    struct rw_reasm r = {0};
    struct expect e = expect_stream(&r);
    feed_ok(&r, &e, stream, split);
    ck_assert_ptr_nonnull(r.buf);
    feed_ok(&r, &e, stream + split, stream_off[4] - split); /* exactly the rest of frame 3 */
    ck_assert_uint_eq(e.seen, 4);
    ck_assert_uint_gt(e.max_cap, RW_REASM_KEEP_BYTES);
    ck_assert_ptr_null(r.buf);
    ck_assert_uint_eq(r.cap, 0);
    ck_assert_uint_eq(rw__reasm_pending(&r), 0);

    /* A small straddling frame (2, len 300) keeps its buffer for the next one. */
    struct rw_reasm r2 = {0};
    struct expect e2 = expect_stream(&r2);
    feed_ok(&r2, &e2, stream, stream_off[2] + 100);
    feed_ok(&r2, &e2, stream + stream_off[2] + 100, stream_off[3] - stream_off[2] - 100);
    ck_assert_uint_eq(e2.seen, 3);
    ck_assert_ptr_nonnull(r2.buf);
    ck_assert_uint_le(r2.cap, RW_REASM_KEEP_BYTES);
    rw__reasm_reset(&r2);
}
END_TEST

START_TEST(test_reasm_empty_chunk)
{
    struct rw_reasm r = {0};
    struct count c = {0};
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, NULL, 0, STREAM_MAX, count_frame, &c), 0);
    const uint8_t part[2] = {0, 0};
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, part, 2, STREAM_MAX, count_frame, &c), 0);
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, NULL, 0, STREAM_MAX, count_frame, &c), 0);
    ck_assert_uint_eq(rw__reasm_pending(&r), 2);
    ck_assert_int_eq(rw__reasm_feed(&r, &DEF, part, 2, STREAM_MAX, count_frame, &c), 0);
    ck_assert_uint_eq(c.frames, 1); /* the empty frame 00 00 00 00 */
    ck_assert_uint_eq(c.lens[0], 0);
    rw__reasm_reset(&r);
}
END_TEST

/* ---- configurable framing ---- */

static const uint8_t fx_widths[] = {1, 2, 3, 4, 8};
static const uint32_t fx_offsets[] = {0, 1, 3};

static struct rw_framing fx_framing(unsigned i)
{
    static const int64_t adjusts[] = {0, 0, 2, -4};
    unsigned a = i % 4, off = i / 4 % 3, o = i / 12 % 2, w = i / 24;
    struct rw_framing f = {.length_bytes = fx_widths[w],
                           .order = (uint8_t)o,
                           .offset = fx_offsets[off],
                           .adjust = adjusts[a]};
    if (a == 1)
        f.adjust = -(int64_t)rw_framing_header_bytes(&f); /* the length counts the header */
    return f;
}
#define FX_FRAMINGS (5 * 2 * 3 * 4)

/* The test's own encoder: offset bytes = fill, then the field in f's width and order. */
static void fx_encode(const struct rw_framing *f, uint8_t *out, uint64_t value, uint8_t fill)
{
    memset(out, fill, f->offset);
    for (unsigned i = 0; i < f->length_bytes; i++) {
        unsigned shift = 8 * (f->order == RW_LENGTH_BIG ? f->length_bytes - 1 - i : i);
        out[f->offset + i] = (uint8_t)(value >> shift);
    }
}

#define FX_FRAMES_MAX 12
struct fx {
    const struct rw_framing *f;
    uint8_t stream[2048];
    size_t len;
    size_t offs[FX_FRAMES_MAX];
    uint32_t lens[FX_FRAMES_MAX];
    size_t count;
    /* delivery state */
    const struct rw_reasm *r;
    size_t seen;
    size_t chunk_off, chunk_len;
    uint32_t max_cap;
};

/* Append a frame of len payload bytes (offset bytes and payload patterned by its index). */
static void fx_add(struct fx *x, uint32_t len)
{
    uint32_t hl = rw_framing_header_bytes(x->f);
    ck_assert_uint_lt(x->count, FX_FRAMES_MAX);
    ck_assert_uint_le(x->len + hl + len, sizeof(x->stream));
    x->offs[x->count] = x->len;
    x->lens[x->count] = len;
    fx_encode(x->f, x->stream + x->len, (uint64_t)((int64_t)len - x->f->adjust),
              (uint8_t)(0xa0 + x->count));
    for (uint32_t j = 0; j < len; j++)
        x->stream[x->len + hl + j] = (uint8_t)(x->count * 37u + j);
    x->len += hl + len;
    x->count++;
}

static int fx_on_frame(void *ctx, const struct rw_frame *frame)
{
    struct fx *x = ctx;
    uint32_t hl = rw_framing_header_bytes(x->f);
    EXPECT(x->seen < x->count);
    EXPECT(frame->header_len == hl);
    EXPECT(frame->payload == frame->header + hl);
    EXPECT(frame->len == x->lens[x->seen]);
    size_t off = x->offs[x->seen];
    EXPECT(memcmp(frame->header, x->stream + off, hl + frame->len) == 0);
    if (off >= x->chunk_off && off + hl + frame->len <= x->chunk_off + x->chunk_len)
        EXPECT(frame->header == x->stream + off); /* wholly in the chunk: a view into it */
    else
        EXPECT(frame->header == x->r->buf); /* straddled: the reassembly buffer */
    if (x->r->cap > x->max_cap)
        x->max_cap = x->r->cap;
    x->seen++;
    return 0;
}

/*
 * Feed x->stream: [0, split) at once, then the rest in step-byte chunks (0: at once).
 * Returns the first nonzero feed result (0 if none), [*at, *end) that chunk.
 */
static int fx_feed(struct fx *x, struct rw_reasm *r, uint32_t max, size_t split, size_t step,
                   size_t *at, size_t *err_end)
{
    x->r = r;
    x->seen = 0;
    x->max_cap = 0;
    size_t off = 0;
    while (off < x->len) {
        size_t n = off == 0 && split > 0 ? split : (step ? step : x->len - off);
        if (n > x->len - off)
            n = x->len - off;
        x->chunk_off = off;
        x->chunk_len = n;
        int rc = rw__reasm_feed(r, x->f, x->stream + off, n, max, fx_on_frame, x);
        if (r->cap > x->max_cap)
            x->max_cap = r->cap;
        off += n;
        if (rc != 0) {
            *at = off - n;
            *err_end = off;
            return rc;
        }
    }
    *at = off;
    *err_end = off;
    return 0;
}

START_TEST(test_reasm_framing_every_split)
{
    const uint32_t max = 300;
    for (unsigned i = 0; i < FX_FRAMINGS; i++) {
        struct rw_framing f = fx_framing(i);
        ck_assert_int_eq(rw_framing_check(&f), 0);
        struct fx x = {.f = &f};
        static const uint32_t lens[] = {2, 3, 200, 2, 17, 64, 5};
        if (f.adjust <= 0)
            fx_add(&x, 0);
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            fx_add(&x, lens[k]);
            if (k == 2 && f.adjust <= 0)
                fx_add(&x, 0);
        }
        uint32_t hl = rw_framing_header_bytes(&f);
        for (size_t split = 0; split <= x.len; split++) {
            struct rw_reasm r = {0};
            size_t end;
            EXPECT(fx_feed(&x, &r, max, split, 0, &end, &end) == 0);
            EXPECT(x.seen == x.count);
            EXPECT(rw__reasm_pending(&r) == 0);
            EXPECT(x.max_cap <= hl + max);
            rw__reasm_reset(&r);
        }
        static const size_t steps[] = {1, 2, 7};
        for (size_t k = 0; k < 3; k++) {
            struct rw_reasm r = {0};
            size_t end;
            EXPECT(fx_feed(&x, &r, max, 0, steps[k], &end, &end) == 0);
            EXPECT(x.seen == x.count);
            EXPECT(x.max_cap <= hl + 200); /* never beyond the largest frame */
            rw__reasm_reset(&r);
        }
    }
}
END_TEST

/*
 * A frame, then a header over max after adjusting (then, for a negative adjust, one below
 * zero): the feed holding the header's last byte fails, every split of it and of the frame
 * before, byte at a time too; the frame before is delivered; the buffer stays within bounds.
 */
START_TEST(test_reasm_framing_header_checks)
{
    const uint32_t max = 100;
    unsigned below_tested = 0;
    for (unsigned i = 0; i < FX_FRAMINGS; i++) {
        struct rw_framing f = fx_framing(i);
        uint32_t hl = rw_framing_header_bytes(&f);
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 1 && f.adjust >= 0)
                continue;
            struct fx x = {.f = &f};
            fx_add(&x, 5);
            size_t bad = x.len;
            uint64_t value =
                kind == 0 ? (uint64_t)((int64_t)max + 1 - f.adjust) : (uint64_t)(-f.adjust - 1);
            fx_encode(&f, x.stream + bad, value, 0x77);
            memset(x.stream + bad + hl, 0x99, 30); /* never looked at */
            x.len = bad + hl + 30;
            int want = kind == 0 ? -EMSGSIZE : -EPROTO;
            below_tested += kind;
            size_t header_end = bad + hl; /* the error comes with the feed holding this - 1 */
            for (size_t split = 0; split <= x.len; split++) {
                for (size_t step = 0; step < 2; step++) {
                    struct rw_reasm r = {0};
                    size_t at = 0, end = 0;
                    int rc = fx_feed(&x, &r, max, split, step, &at, &end);
                    EXPECT(rc == want);
                    EXPECT(x.seen == 1);
                    EXPECT(at < header_end && header_end <= end); /* not before, not later */
                    EXPECT(x.max_cap <= hl + max);
                    rw__reasm_reset(&r);
                }
            }
        }
    }
    ck_assert_uint_eq(below_tested, FX_FRAMINGS / 2);
}
END_TEST

/* One tcase per behaviour, named after its test function. */
#define ADD_CASE(s, fn)                                                                            \
    do {                                                                                           \
        TCase *tc = tcase_create(#fn);                                                             \
        tcase_add_checked_fixture(tc, stream_setup, stream_teardown);                              \
        tcase_set_timeout(tc, 120);                                                                \
        tcase_add_test(tc, fn);                                                                    \
        suite_add_tcase(s, tc);                                                                    \
    } while (0)

static Suite *reasm_suite(void)
{
    Suite *s = suite_create("reasm");
    ADD_CASE(s, test_reasm_whole_stream);
    ADD_CASE(s, test_reasm_every_split_point);
    ADD_CASE(s, test_reasm_random_chunkings);
    ADD_CASE(s, test_reasm_one_byte_at_a_time);
    ADD_CASE(s, test_reasm_zero_copy_views);
    ADD_CASE(s, test_reasm_oversize_mid_stream);
    ADD_CASE(s, test_reasm_exact_max_straddle);
    ADD_CASE(s, test_reasm_callback_stop);
    ADD_CASE(s, test_reasm_reset_frees);
    ADD_CASE(s, test_reasm_large_buffer_freed);
    ADD_CASE(s, test_reasm_empty_chunk);
    ADD_CASE(s, test_reasm_framing_every_split);
    ADD_CASE(s, test_reasm_framing_header_checks);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(reasm_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
