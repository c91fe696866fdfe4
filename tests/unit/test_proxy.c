/*
 * Unit tests for the PROXY protocol header parser (src/core/proxy.c): v1 TCP4,
 * TCP6 and UNKNOWN lines, v2 PROXY over IPv4 and IPv6, LOCAL, AF_UNIX and TLVs;
 * every split point of every valid header (a proper prefix needs more, the
 * whole header is consumed exactly, bytes after it are left alone), every
 * prefix placed against a PROT_NONE guard page so an over-read faults; bad
 * signatures at every byte, malformed fields, the size bounds (v1 107 bytes,
 * v2 16 + 512) decided as early as the bytes allow.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy.h"

static uint8_t *guard_base;
static size_t page_bytes;

/* Two pages, the second PROT_NONE: data placed to end right at the guard. */
static void guard_setup(void)
{
    page_bytes = (size_t)sysconf(_SC_PAGESIZE);
    guard_base =
        mmap(NULL, 2 * page_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(guard_base, MAP_FAILED);
    ck_assert_int_eq(mprotect(guard_base + page_bytes, page_bytes, PROT_NONE), 0);
}

static void guard_teardown(void)
{
    munmap(guard_base, 2 * page_bytes);
}

static int parse_guarded(const uint8_t *buf, size_t len, struct rw_proxy_info *out)
{
    ck_assert_uint_le(len, page_bytes);
    uint8_t *at = guard_base + page_bytes - len;
    memcpy(at, buf, len);
    return rw__proxy_parse(at, len, out);
}

/* Every prefix needs more, the whole is consumed exactly, with trailing bytes too. */
static struct rw_proxy_info check_splits(const uint8_t *hdr, size_t n)
{
    struct rw_proxy_info info;
    for (size_t k = 0; k < n; k++) {
        memset(&info, 0xA5, sizeof(info));
        ck_assert_msg(parse_guarded(hdr, k, &info) == 0, "prefix %zu of %zu", k, n);
        ck_assert_uint_eq(info.version, 0xA5); /* untouched */
    }
    ck_assert_int_eq(parse_guarded(hdr, n, &info), (int)n);
    uint8_t more[1024];
    ck_assert_uint_le(n + 9, sizeof(more));
    memcpy(more, hdr, n);
    memcpy(more + n, "\0\0\0\5hello", 9); /* a frame right behind it */
    struct rw_proxy_info again;
    ck_assert_int_eq(parse_guarded(more, n + 9, &again), (int)n);
    ck_assert_mem_eq(&again, &info, sizeof(info));
    return info;
}

static void assert_addr(const struct rw_proxy_addr *a, const char *text)
{
    char buf[64];
    ck_assert_str_eq(rw__proxy_addr_text(a, buf, sizeof(buf)), text);
}

static int parse_str(const char *s)
{
    struct rw_proxy_info info;
    return parse_guarded((const uint8_t *)s, strlen(s), &info);
}

START_TEST(test_proxy_v1_tcp4)
{
    const char *h = "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n";
    struct rw_proxy_info info = check_splits((const uint8_t *)h, strlen(h));
    ck_assert_uint_eq(info.version, 1);
    ck_assert(!info.local);
    assert_addr(&info.src, "192.0.2.1:56324");
    assert_addr(&info.dst, "198.51.100.2:443");
}
END_TEST

START_TEST(test_proxy_v1_tcp6)
{
    const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 4000 7000\r\n";
    struct rw_proxy_info info = check_splits((const uint8_t *)h, strlen(h));
    ck_assert_uint_eq(info.src.family, AF_INET6);
    assert_addr(&info.src, "[2001:db8::1]:4000");
    assert_addr(&info.dst, "[2001:db8::2]:7000");
    /* The longest TCP6 line. */
    const char *max = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    info = check_splits((const uint8_t *)max, strlen(max));
    ck_assert_uint_eq(info.src.port, 65535);
}
END_TEST

START_TEST(test_proxy_v1_unknown)
{
    const char *h = "PROXY UNKNOWN\r\n";
    struct rw_proxy_info info = check_splits((const uint8_t *)h, strlen(h));
    ck_assert(info.local);
    ck_assert_uint_eq(info.src.family, 0);
    /* UNKNOWN may carry anything up to the CRLF, 107 bytes in all. */
    char longest[RW_PROXY_V1_MAX_BYTES + 1];
    memset(longest, 'x', RW_PROXY_V1_MAX_BYTES);
    memcpy(longest, "PROXY UNKNOWN ", 14);
    memcpy(longest + RW_PROXY_V1_MAX_BYTES - 2, "\r\n", 2);
    longest[RW_PROXY_V1_MAX_BYTES] = '\0';
    info = check_splits((const uint8_t *)longest, RW_PROXY_V1_MAX_BYTES);
    ck_assert(info.local);
}
END_TEST

START_TEST(test_proxy_v1_bad)
{
    ck_assert_int_eq(parse_str("GET / HTTP/1.0\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("G"), -EINVAL); /* decided on the first byte */
    ck_assert_int_eq(parse_str("PROXX"), -EINVAL);
    ck_assert_int_eq(parse_str("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"), -EINVAL); /* no CR */
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 ::1 ::2 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 x\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY \r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n"), -EINVAL);
    ck_assert_int_eq(parse_str("PROXY UNKNOWNX\r\n"), -EINVAL);
    /* A frame header (what a client not behind a balancer sends first). */
    struct rw_proxy_info info;
    const uint8_t frame[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    ck_assert_int_eq(parse_guarded(frame, sizeof(frame), &info), -EINVAL);
}
END_TEST

START_TEST(test_proxy_v1_oversize)
{
    char line[300];
    memset(line, '1', sizeof(line));
    memcpy(line, "PROXY TCP4 ", 11);
    struct rw_proxy_info info;
    /* Without a CRLF: more is needed up to 106 bytes, then the bound is hit. */
    ck_assert_int_eq(parse_guarded((uint8_t *)line, RW_PROXY_V1_MAX_BYTES - 1, &info), 0);
    ck_assert_int_eq(parse_guarded((uint8_t *)line, RW_PROXY_V1_MAX_BYTES, &info), -EMSGSIZE);
    ck_assert_int_eq(parse_guarded((uint8_t *)line, sizeof(line), &info), -EMSGSIZE);
    /* A CRLF just past the bound does not count. */
    memcpy(line + RW_PROXY_V1_MAX_BYTES - 1, "\r\n", 2);
    ck_assert_int_eq(parse_guarded((uint8_t *)line, RW_PROXY_V1_MAX_BYTES + 1, &info), -EMSGSIZE);
}
END_TEST

static const uint8_t sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 header: signature, ver_cmd, fam, body (len bytes) into out; returns its length. */
static size_t make_v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t len)
{
    memcpy(out, sig, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(len >> 8);
    out[15] = (uint8_t)len;
    if (len)
        memcpy(out + 16, body, len);
    return 16 + len;
}

START_TEST(test_proxy_v2_tcp4)
{
    const uint8_t body[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB};
    uint8_t h[64];
    size_t n = make_v2(h, 0x21, 0x11, body, sizeof(body));
    struct rw_proxy_info info = check_splits(h, n);
    ck_assert_uint_eq(info.version, 2);
    ck_assert(!info.local);
    assert_addr(&info.src, "192.0.2.1:56324");
    assert_addr(&info.dst, "198.51.100.2:443");
}
END_TEST

START_TEST(test_proxy_v2_tcp6)
{
    uint8_t body[36];
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", body), 1);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::2", body + 16), 1);
    body[32] = 0x0F, body[33] = 0xA0, body[34] = 0x1B, body[35] = 0x58;
    uint8_t h[64];
    size_t n = make_v2(h, 0x21, 0x21, body, sizeof(body));
    struct rw_proxy_info info = check_splits(h, n);
    assert_addr(&info.src, "[2001:db8::1]:4000");
    assert_addr(&info.dst, "[2001:db8::2]:7000");
}
END_TEST

START_TEST(test_proxy_v2_tlvs_skipped)
{
    /* IPv4 addresses, then TLVs: ALPN "h2", NOOP padding up to the 512-byte bound. */
    uint8_t body[RW_PROXY_V2_BODY_MAX_BYTES];
    memset(body, 0, sizeof(body));
    const uint8_t addrs[12] = {10, 0, 0, 1, 10, 0, 0, 2, 0x30, 0x39, 0x1B, 0x58};
    memcpy(body, addrs, 12);
    const uint8_t alpn[] = {0x01, 0x00, 0x02, 'h', '2'};
    memcpy(body + 12, alpn, sizeof(alpn));
    size_t at = 12 + sizeof(alpn);
    size_t pad = sizeof(body) - at - 3;
    body[at] = 0x04, body[at + 1] = (uint8_t)(pad >> 8), body[at + 2] = (uint8_t)pad;
    uint8_t h[16 + sizeof(body)];
    size_t n = make_v2(h, 0x21, 0x11, body, 12 + sizeof(alpn));
    struct rw_proxy_info info = check_splits(h, n);
    assert_addr(&info.src, "10.0.0.1:12345");
    n = make_v2(h, 0x21, 0x11, body, sizeof(body)); /* exactly the bound */
    info = check_splits(h, n);
    ck_assert_uint_eq(n, RW_PROXY_MAX_BYTES);
    assert_addr(&info.dst, "10.0.0.2:7000");
}
END_TEST

START_TEST(test_proxy_v2_local)
{
    uint8_t h[64];
    size_t n = make_v2(h, 0x20, 0x00, NULL, 0);
    struct rw_proxy_info info = check_splits(h, n);
    ck_assert(info.local);
    ck_assert_uint_eq(info.src.family, 0);
    /* LOCAL with addresses (HAProxy health checks may send them): ignored. */
    const uint8_t body[12] = {127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2};
    n = make_v2(h, 0x20, 0x11, body, sizeof(body));
    info = check_splits(h, n);
    ck_assert(info.local);
    ck_assert_uint_eq(info.src.family, 0);
}
END_TEST

START_TEST(test_proxy_v2_unix_and_unspec)
{
    uint8_t body[216];
    memset(body, 0, sizeof(body));
    memcpy(body, "/run/client.sock", 16);
    uint8_t h[16 + sizeof(body)];
    size_t n = make_v2(h, 0x21, 0x31, body, sizeof(body));
    struct rw_proxy_info info = check_splits(h, n);
    ck_assert(!info.local);
    ck_assert_uint_eq(info.src.family, 0); /* kept: the connection's own peer */
    n = make_v2(h, 0x21, 0x00, NULL, 0);
    info = check_splits(h, n);
    ck_assert_uint_eq(info.src.family, 0);
}
END_TEST

START_TEST(test_proxy_v2_bad)
{
    const uint8_t body[36] = {0};
    uint8_t h[64];
    struct rw_proxy_info info;
    size_t n = make_v2(h, 0x21, 0x11, body, 12);
    /* Any signature byte wrong: rejected as soon as that byte is in. */
    for (size_t i = 0; i < 12; i++) {
        uint8_t bad[64];
        memcpy(bad, h, n);
        bad[i] ^= 0x40;
        ck_assert_msg(parse_guarded(bad, i + 1, &info) == -EINVAL, "byte %zu", i);
        ck_assert_int_eq(parse_guarded(bad, n, &info), -EINVAL);
    }
    n = make_v2(h, 0x11, 0x11, body, 12); /* version 1 in a v2 header */
    ck_assert_int_eq(parse_guarded(h, 13, &info), -EPROTO);
    ck_assert_int_eq(parse_guarded(h, n, &info), -EPROTO);
    n = make_v2(h, 0x22, 0x11, body, 12); /* command 2 */
    ck_assert_int_eq(parse_guarded(h, 16, &info), -EPROTO);
    n = make_v2(h, 0x21, 0x11, body, 8); /* IPv4 addresses cut short */
    ck_assert_int_eq(parse_guarded(h, n, &info), -EINVAL);
    n = make_v2(h, 0x21, 0x21, body, 35); /* IPv6 addresses cut short */
    ck_assert_int_eq(parse_guarded(h, n, &info), -EINVAL);
    n = make_v2(h, 0x21, 0x41, body, 12); /* family 4 */
    ck_assert_int_eq(parse_guarded(h, n, &info), -EINVAL);
}
END_TEST

START_TEST(test_proxy_v2_oversize)
{
    uint8_t h[16];
    memcpy(h, sig, 12);
    h[12] = 0x21, h[13] = 0x11;
    size_t body = RW_PROXY_V2_BODY_MAX_BYTES + 1;
    h[14] = (uint8_t)(body >> 8), h[15] = (uint8_t)body;
    struct rw_proxy_info info;
    ck_assert_int_eq(parse_guarded(h, 15, &info), 0);
    ck_assert_int_eq(parse_guarded(h, 16, &info), -EMSGSIZE); /* decided on the header */
    h[14] = 0xFF, h[15] = 0xFF;
    ck_assert_int_eq(parse_guarded(h, 16, &info), -EMSGSIZE);
}
END_TEST

START_TEST(test_proxy_empty_needs_more)
{
    struct rw_proxy_info info;
    ck_assert_int_eq(rw__proxy_parse(NULL, 0, &info), 0);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, guard_setup, guard_teardown);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

int main(void)
{
    Suite *s = suite_create("proxy");
    add(s, "test_proxy_v1_tcp4", test_proxy_v1_tcp4);
    add(s, "test_proxy_v1_tcp6", test_proxy_v1_tcp6);
    add(s, "test_proxy_v1_unknown", test_proxy_v1_unknown);
    add(s, "test_proxy_v1_bad", test_proxy_v1_bad);
    add(s, "test_proxy_v1_oversize", test_proxy_v1_oversize);
    add(s, "test_proxy_v2_tcp4", test_proxy_v2_tcp4);
    add(s, "test_proxy_v2_tcp6", test_proxy_v2_tcp6);
    add(s, "test_proxy_v2_tlvs_skipped", test_proxy_v2_tlvs_skipped);
    add(s, "test_proxy_v2_local", test_proxy_v2_local);
    add(s, "test_proxy_v2_unix_and_unspec", test_proxy_v2_unix_and_unspec);
    add(s, "test_proxy_v2_bad", test_proxy_v2_bad);
    add(s, "test_proxy_v2_oversize", test_proxy_v2_oversize);
    add(s, "test_proxy_empty_needs_more", test_proxy_empty_needs_more);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
