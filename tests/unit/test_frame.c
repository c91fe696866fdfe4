/*
 * Unit tests for the stateless frame parser (src/core/frame.c): lengths 0, 1,
 * max and max + 1 (rejected as soon as the header is complete, payload absent),
 * every split point of the header and payload, every prefix placed right
 * against a PROT_NONE guard page so any over-read faults, network byte order,
 * and that *frame is left alone unless a frame is returned.
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
