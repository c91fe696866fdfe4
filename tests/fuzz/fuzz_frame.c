/*
 * libFuzzer target for the frame layer: under a framing taken from the input, the
 * reassembler fed an arbitrary chunking of an arbitrary stream must deliver exactly
 * what a plain byte-at-a-time reference decoder (below) produces: the same frames,
 * header and payload bytes, -EMSGSIZE / -EPROTO from the feed holding the byte that
 * completes a header over the maximum / below zero after adjusting, and the same
 * pending tail. rw_framing_parse must agree on the first frame, and every delivered
 * frame's length must round-trip through rw_framing_put_header to the same field.
 * Input: byte 0 = width (1, 2, 3, 4, 8), order and offset (0..3); byte 1 = adjust
 * (-15..15, or minus the header); bytes 2..4 = max-frame (mod 1 MiB); byte 5 =
 * chunking seed and callback-stop choice; the rest = the stream. abort() on mismatch.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "reasm.h"

#define FUZZ_MAX_BOUND (1u << 20)
#define FUZZ_HEAD      6

/* Every width x order x offset 0..3 x adjust -15..15 and -header (the length counts it). */
static struct rw_framing framing_from(const uint8_t *d)
{
    static const uint8_t widths[] = {1, 2, 3, 4, 8};
    struct rw_framing f = {.length_bytes = widths[d[0] % 5],
                           .order = (uint8_t)(d[0] / 5 % 2),
                           .offset = (uint32_t)(d[0] / 10 % 4)};
    f.adjust = d[1] >= 0xf0 ? -(int64_t)rw_framing_header_bytes(&f) : (int64_t)(d[1] % 31) - 15;
    if (rw_framing_check(&f) != 0)
        abort();
    return f;
}

/* Reference: each complete frame's start in the stream and payload length. */
struct ref {
    size_t *starts;
    uint32_t *lens;
    size_t count;
    size_t err_at;    /* stream offset of the byte completing a bad header */
    int err;          /* -EMSGSIZE, -EPROTO or 0 */
    size_t pending;   /* bytes of an incomplete trailing frame (no error) */
    size_t first_end; /* end of frame 0 in the stream, 0 if none */
};

static void ref_decode(struct ref *ref, const struct rw_framing *f, const uint8_t *s, size_t len,
                       uint32_t max)
{
    uint32_t hl = rw_framing_header_bytes(f);
    size_t start = 0, have = 0; /* bytes of the current frame seen */
    int64_t want = -1;          /* its payload length once the header is in */
    for (size_t i = 0; i < len; i++) {
        have++;
        if (have == hl) {
            unsigned __int128 v = 0;
            for (unsigned k = 0; k < f->length_bytes; k++) {
                unsigned at = f->order == RW_LENGTH_BIG ? k : f->length_bytes - 1 - k;
                v = v << 8 | s[start + f->offset + at];
            }
            __int128 adjusted = (__int128)v + f->adjust;
            if (adjusted < 0 || adjusted > max) {
                ref->err = adjusted < 0 ? -EPROTO : -EMSGSIZE;
                ref->err_at = i;
                return;
            }
            want = (int64_t)adjusted;
        }
        if (have >= hl && have == hl + (size_t)want) {
            ref->starts[ref->count] = start;
            ref->lens[ref->count++] = (uint32_t)want;
            if (ref->count == 1)
                ref->first_end = i + 1;
            start = i + 1;
            have = 0;
            want = -1;
        }
    }
    ref->pending = have;
}

struct got {
    const struct ref *ref;
    const struct rw_framing *f;
    const uint8_t *s;
    size_t count;
    size_t stop_at; /* return -ECANCELED on this frame (1-based); 0: never */
};

static int on_frame(void *ctx, const struct rw_frame *frame)
{
    struct got *g = ctx;
    uint32_t hl = rw_framing_header_bytes(g->f);
    if (g->count >= g->ref->count || g->ref->lens[g->count] != frame->len)
        abort();
    if (frame->header_len != hl || frame->payload != frame->header + hl)
        abort();
    if (memcmp(frame->header, g->s + g->ref->starts[g->count], hl + frame->len) != 0)
        abort();
    /* The length round-trips: the encoder writes the field the peer wrote. */
    uint8_t hdr[RW_FRAMING_HEADER_MAX];
    if (rw_framing_put_header(g->f, hdr, frame->len) != (int)hl)
        abort();
    if (memcmp(hdr + g->f->offset, frame->header + g->f->offset, g->f->length_bytes) != 0)
        abort();
    g->count++;
    if (g->stop_at != 0 && g->count == g->stop_at)
        return -ECANCELED;
    return 0;
}

/* rw_framing_parse on its own must agree with the reference on the first frame. */
static void check_parse(const struct ref *ref, const struct rw_framing *f, const uint8_t *s,
                        size_t len, uint32_t max)
{
    struct rw_frame fr;
    uint32_t hl = rw_framing_header_bytes(f);
    ssize_t n = rw_framing_parse(f, s, len, max, &fr);
    if (ref->count > 0) {
        if (n != (ssize_t)ref->first_end || fr.len != ref->lens[0] || fr.header != s ||
            fr.header_len != hl || fr.payload != s + hl)
            abort();
    } else if (ref->err != 0 && ref->err_at == hl - 1) {
        if (n != ref->err)
            abort();
    } else if (n != 0) {
        abort();
    }
}

static size_t next_chunk(uint32_t *seed, uint32_t scale)
{
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 8) % scale; /* 0: an empty feed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rw_frame raw;
    (void)rw_frame_parse(data, size, UINT32_MAX, &raw); /* any input, no over-read */
    if (size < FUZZ_HEAD)
        return 0;
    struct rw_framing f = framing_from(data);
    (void)rw_framing_parse(&f, data, size, UINT32_MAX, &raw);
    uint32_t max = ((uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 | data[4]) % FUZZ_MAX_BOUND;
    uint32_t seed = data[5];
    static const uint32_t scales[] = {2, 5, 17, 97, 1000, 1u << 20};
    uint32_t scale = scales[seed % 6];
    const uint8_t *s = data + FUZZ_HEAD;
    size_t len = size - FUZZ_HEAD;
    uint32_t hl = rw_framing_header_bytes(&f);

    struct ref ref = {0};
    ref.starts = malloc((len / hl + 1) * sizeof(*ref.starts));
    ref.lens = malloc((len / hl + 1) * sizeof(*ref.lens));
    if (!ref.starts || !ref.lens)
        abort();
    ref_decode(&ref, &f, s, len, max);
    check_parse(&ref, &f, s, len, max);

    struct got g = {
        .ref = &ref, .f = &f, .s = s, .stop_at = (seed & 0x80) ? (seed >> 4 & 7) + 1 : 0};
    struct rw_reasm r = {0};
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        size_t chunk = next_chunk(&seed, scale);
        if (chunk > len - off)
            chunk = len - off;
        rc = rw__reasm_feed(&r, &f, s + off, chunk, max, on_frame, &g);
        if ((rc == -EMSGSIZE || rc == -EPROTO) &&
            !(rc == ref.err && ref.err_at >= off && ref.err_at < off + chunk))
            abort(); /* reported by the wrong feed, or the wrong error */
        if (r.cap > hl + max)
            abort(); /* the straddle buffer never outgrows header + max_bytes */
        off += chunk;
        if (rc != 0)
            break;
    }
    if (g.stop_at != 0 && g.stop_at <= ref.count) {
        if (rc != -ECANCELED || g.count != g.stop_at)
            abort();
    } else {
        if (rc != ref.err || g.count != ref.count)
            abort();
        if (rc == 0 && rw__reasm_pending(&r) != ref.pending)
            abort();
    }
    rw__reasm_reset(&r);
    free(ref.starts);
    free(ref.lens);
    return 0;
}
