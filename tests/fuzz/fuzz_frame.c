/*
 * libFuzzer target for the frame layer: the reassembler fed an arbitrary
 * chunking of an arbitrary stream must deliver exactly what a plain
 * byte-at-a-time reference decoder (below) produces: the same frames, lengths
 * and bytes, -EMSGSIZE from the feed holding the byte that completes an
 * oversize header, and the same pending tail. Input: bytes 0..2 = max-frame
 * (mod 1 MiB), byte 3 = chunking seed and callback-stop choice, the rest =
 * the stream. rw_frame_parse is also run on the raw input. abort() on mismatch.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <ringwire/frame.h>

#include "reasm.h"

#define FUZZ_MAX_BOUND (1u << 20)

/* Reference: every payload byte appended to bytes, each frame's length to lens. */
struct ref {
    uint8_t *bytes;
    size_t bytes_len;  /* payload bytes seen, an incomplete frame's included */
    size_t frames_len; /* payload bytes of complete frames */
    uint32_t *lens;
    size_t count;
    size_t err_at;    /* stream offset of the byte completing an oversize header */
    int err;          /* -EMSGSIZE or 0 */
    size_t pending;   /* bytes of an incomplete trailing frame (no error) */
    size_t first_end; /* end of frame 0 in the stream, 0 if none */
};

static void ref_decode(struct ref *ref, const uint8_t *s, size_t len, uint32_t max)
{
    uint8_t hdr[4];
    size_t hdr_have = 0;
    uint32_t want = 0, have = 0;
    for (size_t i = 0; i < len; i++) {
        if (hdr_have < 4) {
            hdr[hdr_have++] = s[i];
            if (hdr_have < 4)
                continue;
            want = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
            if (want > max) {
                ref->err = -EMSGSIZE;
                ref->err_at = i;
                return;
            }
        } else {
            ref->bytes[ref->bytes_len++] = s[i];
            have++;
        }
        if (have == want) {
            ref->lens[ref->count++] = want;
            ref->frames_len = ref->bytes_len;
            if (ref->count == 1)
                ref->first_end = i + 1;
            hdr_have = 0;
            have = 0;
        }
    }
    ref->pending = hdr_have + have;
}

struct got {
    const struct ref *ref;
    size_t count;
    size_t bytes_off; /* into ref->bytes */
    size_t stop_at;   /* return -ECANCELED on this frame (1-based); 0: never */
};

static int on_frame(void *ctx, const uint8_t *payload, uint32_t len)
{
    struct got *g = ctx;
    if (g->count >= g->ref->count || g->ref->lens[g->count] != len)
        abort();
    if (len > 0 && memcmp(payload, g->ref->bytes + g->bytes_off, len) != 0)
        abort();
    g->bytes_off += len;
    g->count++;
    if (g->stop_at != 0 && g->count == g->stop_at)
        return -ECANCELED;
    return 0;
}

/* rw_frame_parse on its own must agree with the reference on the first frame. */
static void check_parse(const struct ref *ref, const uint8_t *s, size_t len, uint32_t max)
{
    struct rw_frame f;
    ssize_t n = rw_frame_parse(s, len, max, &f);
    if (ref->count > 0) {
        if (n != (ssize_t)ref->first_end || f.len != ref->lens[0] || f.payload != s + 4)
            abort();
    } else if (ref->err != 0 && ref->err_at == 3) {
        if (n != -EMSGSIZE)
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
    if (size < 4)
        return 0;
    uint32_t max = ((uint32_t)data[0] << 16 | (uint32_t)data[1] << 8 | data[2]) % FUZZ_MAX_BOUND;
    uint32_t seed = data[3];
    static const uint32_t scales[] = {2, 5, 17, 97, 1000, 1u << 20};
    uint32_t scale = scales[seed % 6];
    const uint8_t *s = data + 4;
    size_t len = size - 4;

    struct ref ref = {0};
    ref.bytes = malloc(len + 1);
    ref.lens = malloc((len / 4 + 1) * sizeof(*ref.lens));
    if (!ref.bytes || !ref.lens)
        abort();
    ref_decode(&ref, s, len, max);
    check_parse(&ref, s, len, max);

    struct got g = {.ref = &ref, .stop_at = (seed & 0x80) ? (seed >> 4 & 7) + 1 : 0};
    struct rw_reasm r = {0};
    int rc = 0;
    size_t off = 0;
    while (off < len) {
        size_t chunk = next_chunk(&seed, scale);
        if (chunk > len - off)
            chunk = len - off;
        rc = rw__reasm_feed(&r, s + off, chunk, max, on_frame, &g);
        if (rc == -EMSGSIZE && !(ref.err != 0 && ref.err_at >= off && ref.err_at < off + chunk))
            abort(); /* reported by the wrong feed */
        if (r.cap > 4 + max)
            abort(); /* the straddle buffer never outgrows 4 + max_bytes */
        off += chunk;
        if (rc != 0)
            break;
    }
    if (g.stop_at != 0 && g.stop_at <= ref.count) {
        if (rc != -ECANCELED || g.count != g.stop_at)
            abort();
    } else {
        if (rc != ref.err || g.count != ref.count || g.bytes_off != ref.frames_len)
            abort();
        if (rc == 0 && rw__reasm_pending(&r) != ref.pending)
            abort();
    }
    rw__reasm_reset(&r);
    free(ref.bytes);
    free(ref.lens);
    return 0;
}
