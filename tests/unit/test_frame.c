/*
 * Unit tests for the stateless frame parser (src/core/frame.c): lengths 0, 1,
 * max and max + 1 (rejected as soon as the header is complete, payload absent),
 * every split point of the header and payload, every prefix placed right
 * against a PROT_NONE guard page so any over-read faults, network byte order,
 * and that *frame is left alone unless a frame is returned. Then every framing
 * (widths 1, 2, 3, 4, 8 x both orders x offsets 0, 1, 3 x adjusts 0, -header, +2, -4):
 * round trips against an encoder written here, every prefix against the guard page,
 * the maximum checked on the adjusted length with only the header in, lengths that
 * adjust below zero (-EPROTO), 8-byte fields with huge values, and rw_framing_check.
 */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ringwire/frame.h>

#define TEST_MAX 1000u

/* Build a frame of payload_len bytes (pattern filled) into a malloc'd buffer. */
static uint8_t *make_frame(uint32_t payload_len, size_t *out_len)
{
    size_t n = RW_FRAME_HEADER_BYTES + (size_t)payload_len;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    rw_frame_put_header(buf, payload_len);
    for (size_t i = 0; i < payload_len; i++)
        buf[RW_FRAME_HEADER_BYTES + i] = (uint8_t)(i * 31u + 7u);
    *out_len = n;
    return buf;
}

/* Parse a whole frame: consumes header + payload, payload points right after the header. */
static void check_whole(uint32_t payload_len, uint32_t max)
{
    size_t n;
    uint8_t *buf = make_frame(payload_len, &n);
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, n, max, &f), (ssize_t)n);
    ck_assert_uint_eq(f.len, payload_len);
    ck_assert_ptr_eq(f.payload, buf + RW_FRAME_HEADER_BYTES);
    free(buf);
}

START_TEST(test_frame_len_zero)
{
    const uint8_t buf[4] = {0, 0, 0, 0};
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), TEST_MAX, &f), 4);
    ck_assert_uint_eq(f.len, 0);
    ck_assert_ptr_eq(f.payload, buf + 4);
    /* Even with max 0, an empty frame is valid. */
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), 0, &f), 4);
}
END_TEST

START_TEST(test_frame_len_one)
{
    const uint8_t buf[5] = {0, 0, 0, 1, 'x'};
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), TEST_MAX, &f), 5);
    ck_assert_uint_eq(f.len, 1);
    ck_assert_ptr_eq(f.payload, buf + 4);
    ck_assert_int_eq(f.payload[0], 'x');
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), 1, &f), 5);
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), 0, &f), -EMSGSIZE);
}
END_TEST

START_TEST(test_frame_len_max)
{
    check_whole(TEST_MAX, TEST_MAX);
    check_whole(RW_FRAME_HEADER_BYTES, RW_FRAME_HEADER_BYTES);
    /* A max-sized frame missing its last byte still needs more, not an error. */
    size_t n;
    uint8_t *buf = make_frame(TEST_MAX, &n);
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, n - 1, TEST_MAX, &f), 0);
    free(buf);
}
END_TEST

START_TEST(test_frame_len_max_plus_one_header_only)
{
    uint8_t hdr[4];
    rw_frame_put_header(hdr, TEST_MAX + 1);
    struct rw_frame f = {.payload = hdr, .len = 12345};
    /* Rejected with only the header present: no payload byte needs to arrive. */
    ck_assert_int_eq(rw_frame_parse(hdr, sizeof(hdr), TEST_MAX, &f), -EMSGSIZE);
    ck_assert_ptr_eq(f.payload, hdr); /* untouched */
    ck_assert_uint_eq(f.len, 12345);
    /* A header prefix cannot be judged yet. */
    for (size_t k = 0; k < sizeof(hdr); k++)
        ck_assert_int_eq(rw_frame_parse(hdr, k, TEST_MAX, &f), 0);
    /* With the payload present it is rejected just the same. */
    size_t n;
    uint8_t *buf = make_frame(TEST_MAX + 1, &n);
    ck_assert_int_eq(rw_frame_parse(buf, n, TEST_MAX, &f), -EMSGSIZE);
    free(buf);
}
END_TEST

START_TEST(test_frame_split_every_byte)
{
    static const uint32_t lens[] = {0, 1, 2, 3, 4, 5, 255, 256, 257, TEST_MAX};
    for (size_t v = 0; v < sizeof(lens) / sizeof(lens[0]); v++) {
        size_t n;
        uint8_t *buf = make_frame(lens[v], &n);
        struct rw_frame f = {.payload = NULL, .len = 777};
        /* Every prefix, header bytes included, needs more and leaves *frame alone. */
        for (size_t k = 0; k < n; k++) {
            ck_assert_int_eq(rw_frame_parse(buf, k, TEST_MAX, &f), 0);
            ck_assert_ptr_null(f.payload);
            ck_assert_uint_eq(f.len, 777);
        }
        ck_assert_int_eq(rw_frame_parse(buf, n, TEST_MAX, &f), (ssize_t)n);
        ck_assert_uint_eq(f.len, lens[v]);
        free(buf);
    }
}
END_TEST

START_TEST(test_frame_trailing_bytes_ignored)
{
    /* Two frames back to back: one call parses only the first. */
    const uint8_t buf[] = {0, 0, 0, 2, 'a', 'b', 0, 0, 0, 1, 'c', 0, 0};
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), TEST_MAX, &f), 6);
    ck_assert_uint_eq(f.len, 2);
    ck_assert_int_eq(memcmp(f.payload, "ab", 2), 0);
    ck_assert_int_eq(rw_frame_parse(buf + 6, sizeof(buf) - 6, TEST_MAX, &f), 5);
    ck_assert_int_eq(f.payload[0], 'c');
    ck_assert_int_eq(rw_frame_parse(buf + 11, sizeof(buf) - 11, TEST_MAX, &f), 0);
}
END_TEST

/*
 * Place every prefix of each vector so it ends exactly at a PROT_NONE page: a
 * read of buf[len] or beyond faults (the test then fails as a signal).
 */
START_TEST(test_frame_guard_page)
{
    long page_l = sysconf(_SC_PAGESIZE);
    ck_assert_int_gt(page_l, 0);
    size_t page = (size_t)page_l;
    uint8_t *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
    uint8_t *end = map + page;

    static const uint32_t lens[] = {0, 1, 2, 3, 4, 17, 300, TEST_MAX, TEST_MAX + 1, UINT32_MAX};
    for (size_t v = 0; v < sizeof(lens) / sizeof(lens[0]); v++) {
        bool oversize = lens[v] > TEST_MAX;
        /* An oversize frame gets a few payload bytes: the parser must not look at them. */
        uint8_t src[RW_FRAME_HEADER_BYTES + TEST_MAX];
        size_t n = RW_FRAME_HEADER_BYTES + (oversize ? 8 : (size_t)lens[v]);
        ck_assert_uint_le(n, page);
        rw_frame_put_header(src, lens[v]);
        memset(src + RW_FRAME_HEADER_BYTES, 0xa5, n - RW_FRAME_HEADER_BYTES);
        for (size_t k = 0; k <= n; k++) {
            /* The prefix of length k, placed so its last byte is the page's last byte. */
            uint8_t *p = end - k;
            memcpy(p, src, k);
            struct rw_frame f = {0};
            ssize_t rc = rw_frame_parse(p, k, TEST_MAX, &f);
            if (k < RW_FRAME_HEADER_BYTES)
                ck_assert_int_eq(rc, 0);
            else if (oversize)
                ck_assert_int_eq(rc, -EMSGSIZE);
            else if (k < n)
                ck_assert_int_eq(rc, 0);
            else
                ck_assert_int_eq(rc, (ssize_t)n);
        }
    }
    ck_assert_int_eq(munmap(map, 2 * page), 0);
}
END_TEST

START_TEST(test_frame_network_byte_order)
{
    uint8_t buf[4 + 258] = {0x00, 0x00, 0x01, 0x02};
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), TEST_MAX, &f), 4 + 258);
    ck_assert_uint_eq(f.len, 258);
    /* 0x01020304 big-endian is far over the limit; little-endian would read 0x04030201. */
    const uint8_t big[4] = {0x01, 0x02, 0x03, 0x04};
    ck_assert_int_eq(rw_frame_parse(big, sizeof(big), TEST_MAX, &f), -EMSGSIZE);
    ck_assert_int_eq(rw_frame_parse(big, sizeof(big), 0x01020304u, &f), 0);
    ck_assert_int_eq(rw_frame_parse(big, sizeof(big), 0x01020303u, &f), -EMSGSIZE);
    uint8_t out[4];
    rw_frame_put_header(out, 0x01020304u);
    ck_assert_int_eq(memcmp(out, big, 4), 0);
    rw_frame_put_header(out, 258);
    ck_assert_int_eq(memcmp(out, buf, 4), 0);
}
END_TEST

START_TEST(test_frame_huge_header_no_wrap)
{
    /* With max at UINT32_MAX, header + length must not wrap into a small "consumed". */
    const uint8_t buf[8] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    struct rw_frame f = {0};
    ck_assert_int_eq(rw_frame_parse(buf, sizeof(buf), UINT32_MAX, &f), 0);
    const uint8_t near[8] = {0xff, 0xff, 0xff, 0xfd, 1, 2, 3, 4};
    ck_assert_int_eq(rw_frame_parse(near, sizeof(near), UINT32_MAX, &f), 0);
}
END_TEST

/* ---- configurable framing ---- */

static const uint8_t widths[] = {1, 2, 3, 4, 8};
static const uint32_t offsets[] = {0, 1, 3};

/* The adjustments under test for a framing whose header is hl bytes. */
static int64_t adjust_case(unsigned i, uint32_t hl)
{
    static const int64_t fixed[] = {0, 0, 2, -4};
    return i == 1 ? -(int64_t)hl : fixed[i];
}

/* Calls body(f) for every combination; the framing is valid for each. */
#define FOR_EACH_FRAMING(f)                                                                        \
    for (unsigned w_ = 0; w_ < 5; w_++)                                                            \
        for (unsigned o_ = 0; o_ < 2; o_++)                                                        \
            for (unsigned off_ = 0; off_ < 3; off_++)                                              \
                for (unsigned a_ = 0; a_ < 4; a_++)                                                \
                    for (struct rw_framing                                                         \
                             f = {.length_bytes = widths[w_],                                      \
                                 .order = (uint8_t)o_,                                             \
                                 .offset = offsets[off_],                                          \
                                 .adjust = adjust_case(a_, offsets[off_] + widths[w_])},           \
                             *once_ = &f;                                                          \
                         once_; once_ = NULL)

static uint64_t test_field_max(uint8_t w)
{
    return w == 8 ? UINT64_MAX : ((uint64_t)1 << (8 * w)) - 1;
}

/* The test's own encoder: offset bytes = fill, then value in w bytes, in f's order. */
static void encode(const struct rw_framing *f, uint8_t *out, uint64_t value, uint8_t fill)
{
    memset(out, fill, f->offset);
    for (unsigned i = 0; i < f->length_bytes; i++) {
        unsigned shift = 8 * (f->order == RW_LENGTH_BIG ? f->length_bytes - 1 - i : i);
        out[f->offset + i] = (uint8_t)(value >> shift);
    }
}

START_TEST(test_frame_framing_round_trip)
{
    unsigned combos = 0;
    FOR_EACH_FRAMING(f)
    {
        ck_assert_int_eq(rw_framing_check(&f), 0);
        uint32_t hl = rw_framing_header_bytes(&f);
        ck_assert_uint_eq(hl, f.offset + f.length_bytes);
        const uint32_t lens[] = {0, 1, 2, 5, 200, 251, 253, 255, 256, 257, 258, 259, 300, TEST_MAX};
        for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
            uint32_t len = lens[i];
            int64_t value = (int64_t)len - f.adjust;
            bool fits = value >= 0 && (uint64_t)value <= test_field_max(f.length_bytes);
            uint8_t buf[RW_FRAMING_HEADER_MAX + TEST_MAX];
            memset(buf, 0xee, sizeof(buf));
            int hrc = rw_framing_put_header(&f, buf, len);
            if (!fits) {
                ck_assert_int_eq(hrc, -ERANGE);
                ck_assert_uint_eq(buf[0], 0xee); /* nothing written */
                continue;
            }
            ck_assert_int_eq(hrc, (int)hl);
            uint8_t want[RW_FRAMING_HEADER_MAX];
            encode(&f, want, (uint64_t)value, 0);
            ck_assert_mem_eq(buf, want, hl);
            for (uint32_t j = 0; j < len; j++)
                buf[hl + j] = (uint8_t)(j * 13u + len);
            memset(buf, 0x5c, f.offset); /* offset bytes are the peer's: not interpreted */
            struct rw_frame fr = {0};
            ck_assert_int_eq(rw_framing_parse(&f, buf, hl + len + 7, TEST_MAX, &fr),
                             (ssize_t)(hl + len));
            ck_assert_ptr_eq(fr.header, buf);
            ck_assert_uint_eq(fr.header_len, hl);
            ck_assert_ptr_eq(fr.payload, buf + hl);
            ck_assert_uint_eq(fr.len, len);
            combos++;
        }
    }
    ck_assert_uint_gt(combos, 120 * 8);
}
END_TEST

/* Every prefix of a frame (and of its header alone), its last byte the page's last. */
START_TEST(test_frame_framing_split_every_byte)
{
    long page_l = sysconf(_SC_PAGESIZE);
    size_t page = (size_t)page_l;
    uint8_t *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
    uint8_t *end = map + page;
    FOR_EACH_FRAMING(f)
    {
        static const uint32_t lens[] = {5, 40};
        for (size_t v = 0; v < 2; v++) {
            uint32_t hl = rw_framing_header_bytes(&f);
            uint8_t src[64];
            size_t n = hl + lens[v];
            encode(&f, src, (uint64_t)((int64_t)lens[v] - f.adjust), 0x33);
            memset(src + hl, 0xa5, lens[v]);
            for (size_t k = 0; k <= n; k++) {
                uint8_t *p = end - k;
                memcpy(p, src, k);
                struct rw_frame fr = {.len = 777};
                ssize_t rc = rw_framing_parse(&f, p, k, TEST_MAX, &fr);
                if (k < n) {
                    ck_assert_int_eq(rc, 0);
                    ck_assert_uint_eq(fr.len, 777); /* untouched */
                } else {
                    ck_assert_int_eq(rc, (ssize_t)n);
                    ck_assert_uint_eq(fr.len, lens[v]);
                }
            }
        }
    }
    ck_assert_int_eq(munmap(map, 2 * page), 0);
}
END_TEST

/* max + 1 after adjusting: -EMSGSIZE from the header alone; exactly max: wait for it. */
START_TEST(test_frame_framing_max_on_adjusted_length)
{
    const uint32_t max = 100;
    FOR_EACH_FRAMING(f)
    {
        uint32_t hl = rw_framing_header_bytes(&f);
        uint8_t hdr[RW_FRAMING_HEADER_MAX];
        struct rw_frame fr = {0};
        encode(&f, hdr, (uint64_t)((int64_t)max + 1 - f.adjust), 0);
        for (uint32_t k = 0; k < hl; k++)
            ck_assert_int_eq(rw_framing_parse(&f, hdr, k, max, &fr), 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, max, &fr), -EMSGSIZE);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, max + 1, &fr), 0);
        encode(&f, hdr, (uint64_t)((int64_t)max - f.adjust), 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, max, &fr), 0);
        ck_assert_uint_eq(fr.len, 0); /* untouched */
        /* The raw field value alone would pass or fail differently when adjust != 0. */
        if (f.adjust > 0) {
            encode(&f, hdr, max, 0);
            ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, max, &fr), -EMSGSIZE);
        }
    }
}
END_TEST

/* A field value that adjusts below zero is -EPROTO from the header alone; zero is a frame. */
START_TEST(test_frame_framing_below_zero)
{
    unsigned tested = 0;
    FOR_EACH_FRAMING(f)
    {
        if (f.adjust >= 0)
            continue;
        uint32_t hl = rw_framing_header_bytes(&f);
        uint8_t hdr[RW_FRAMING_HEADER_MAX];
        struct rw_frame fr = {0};
        uint64_t zero = (uint64_t)-f.adjust;
        encode(&f, hdr, zero - 1, 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, TEST_MAX, &fr), -EPROTO);
        encode(&f, hdr, 0, 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, TEST_MAX, &fr), -EPROTO);
        encode(&f, hdr, zero, 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, TEST_MAX, &fr), (ssize_t)hl);
        ck_assert_uint_eq(fr.len, 0);
        ck_assert_int_eq(rw_framing_parse(&f, hdr, hl, 0, &fr), (ssize_t)hl); /* max 0 */
        tested++;
    }
    ck_assert_uint_eq(tested, 5 * 2 * 3 * 2);
}
END_TEST

/* 8-byte fields: values far beyond any length are -EMSGSIZE, with every adjustment, no UB. */
START_TEST(test_frame_framing_8byte_huge_values)
{
    const int64_t adjusts[] = {0, 2, -4, RW_FRAMING_ADJUST_MAX, -RW_FRAMING_ADJUST_MAX};
    const uint64_t values[] = {UINT64_MAX, UINT64_MAX - 1, (uint64_t)1 << 63, (uint64_t)1 << 33,
                               (uint64_t)UINT32_MAX + 1};
    for (unsigned o = 0; o < 2; o++) {
        for (size_t a = 0; a < sizeof(adjusts) / sizeof(adjusts[0]); a++) {
            struct rw_framing f = {.length_bytes = 8, .order = (uint8_t)o, .adjust = adjusts[a]};
            ck_assert_int_eq(rw_framing_check(&f), 0);
            uint8_t hdr[8];
            struct rw_frame fr = {0};
            for (size_t v = 0; v < sizeof(values) / sizeof(values[0]); v++) {
                encode(&f, hdr, values[v], 0);
                ssize_t rc = rw_framing_parse(&f, hdr, 8, UINT32_MAX, &fr);
                /* e.g. 2^33 - 2^32 lands within max: exactly what the reference says */
                __int128 adjusted = (__int128)values[v] + adjusts[a];
                ssize_t want = adjusted > UINT32_MAX ? -EMSGSIZE
                               : adjusted < 0        ? -EPROTO
                               : adjusted == 0       ? 8 /* an empty frame */
                                                     : 0 /* the payload is not here */;
                ck_assert_int_eq(rc, want);
            }
            /* The largest payload: put_header and parse agree at UINT32_MAX (below the
             * adjustment of +2^32: not expressible). */
            int hrc = rw_framing_put_header(&f, hdr, UINT32_MAX);
            if (adjusts[a] > UINT32_MAX) {
                ck_assert_int_eq(hrc, -ERANGE);
                continue;
            }
            ck_assert_int_eq(hrc, 8);
            ck_assert_int_eq(rw_framing_parse(&f, hdr, 8, UINT32_MAX, &fr), 0); /* need more */
            ck_assert_int_eq(rw_framing_parse(&f, hdr, 8, UINT32_MAX - 1, &fr), -EMSGSIZE);
        }
    }
}
END_TEST

START_TEST(test_frame_framing_check)
{
    const struct rw_framing def = RW_FRAMING_DEFAULT;
    ck_assert_int_eq(rw_framing_check(&def), 0);
    ck_assert_uint_eq(def.length_bytes, 4);
    ck_assert_uint_eq(def.order, RW_LENGTH_BIG);
    ck_assert_uint_eq(rw_framing_header_bytes(&def), RW_FRAME_HEADER_BYTES);
    ck_assert_int_eq(rw_framing_check(NULL), -EINVAL);
    static const uint8_t bad_widths[] = {0, 5, 6, 7, 9, 16, 255};
    for (size_t i = 0; i < sizeof(bad_widths); i++) {
        struct rw_framing f = {.length_bytes = bad_widths[i]};
        ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    }
    struct rw_framing f = def;
    f.order = 2;
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    f = def;
    f.offset = RW_FRAMING_OFFSET_MAX;
    ck_assert_int_eq(rw_framing_check(&f), 0);
    f.offset = RW_FRAMING_OFFSET_MAX + 1;
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    f = def;
    f.adjust = RW_FRAMING_ADJUST_MAX + 1;
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    f.adjust = INT64_MIN;
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    /* A field whose largest value still adjusts below zero can never carry a frame. */
    f = (struct rw_framing){.length_bytes = 1, .adjust = -255};
    ck_assert_int_eq(rw_framing_check(&f), 0);
    f.adjust = -256;
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    f = (struct rw_framing){.length_bytes = 2, .order = RW_LENGTH_LITTLE, .adjust = -65536};
    ck_assert_int_eq(rw_framing_check(&f), -EINVAL);
    f.adjust = -65535;
    ck_assert_int_eq(rw_framing_check(&f), 0);
    /* The default wrappers are the default framing. */
    uint8_t a[4], b[4];
    rw_frame_put_header(a, 0x01020304u);
    ck_assert_int_eq(rw_framing_put_header(&def, b, 0x01020304u), 4);
    ck_assert_mem_eq(a, b, 4);
}
END_TEST

/* One tcase per behaviour, named after its test function. */
#define ADD_CASE(s, fn)                                                                            \
    do {                                                                                           \
        TCase *tc = tcase_create(#fn);                                                             \
        tcase_add_test(tc, fn);                                                                    \
        suite_add_tcase(s, tc);                                                                    \
    } while (0)

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    ADD_CASE(s, test_frame_len_zero);
    ADD_CASE(s, test_frame_len_one);
    ADD_CASE(s, test_frame_len_max);
    ADD_CASE(s, test_frame_len_max_plus_one_header_only);
    ADD_CASE(s, test_frame_split_every_byte);
    ADD_CASE(s, test_frame_trailing_bytes_ignored);
    ADD_CASE(s, test_frame_guard_page);
    ADD_CASE(s, test_frame_network_byte_order);
    ADD_CASE(s, test_frame_huge_header_no_wrap);
    ADD_CASE(s, test_frame_framing_round_trip);
    ADD_CASE(s, test_frame_framing_split_every_byte);
    ADD_CASE(s, test_frame_framing_max_on_adjusted_length);
    ADD_CASE(s, test_frame_framing_below_zero);
    ADD_CASE(s, test_frame_framing_8byte_huge_values);
    ADD_CASE(s, test_frame_framing_check);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_ENV);
    int failures = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failures != 0;
}
