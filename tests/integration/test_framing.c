/*
 * Integration tests of configurable framing (--length-bytes, --length-order,
 * --length-offset, --length-adjust) over real sockets. Frames are written by
 * hand here, independent of the server's encoder. For 2-byte little-endian,
 * 1-byte, 3-byte, 8-byte and a length that counts the whole header (offset 2,
 * adjust -6) the server echoes exactly the bytes it got, header included, many
 * frames per write and one byte at a time; a length over --max-frame after
 * adjusting closes only that connection, after every earlier reply; one that
 * adjusts below zero closes it as a protocol error; a bad value exits 2 naming
 * the option.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

struct framing {
    const char *name;
    unsigned width; /* bytes of the length field */
    bool little;
    unsigned offset; /* bytes before it */
    long adjust;     /* payload length = field + adjust */
    uint32_t max_payload;
};

static const struct framing framings[] = {
    {"2-byte little-endian", 2, true, 0, 0, 9000},
    {"1-byte", 1, false, 0, 0, 255},
    {"3-byte big-endian", 3, false, 0, 0, 9000},
    {"8-byte little-endian", 8, true, 0, 0, 9000},
    {"8-byte big-endian, offset 1, adjust -9", 8, false, 1, -9, 9000},
    {"the length counts the header: offset 2, adjust -6", 4, false, 2, -6, 9000},
};
#define FRAMINGS (sizeof(framings) / sizeof(framings[0]))

/* The server's options for f, in bufs (NULL-terminated; 9 entries used at most). */
static void framing_args(const struct framing *f, const char *args[12], char bufs[3][32],
                         const char *max_frame)
{
    snprintf(bufs[0], 32, "%u", f->width);
    snprintf(bufs[1], 32, "%u", f->offset);
    snprintf(bufs[2], 32, "%ld", f->adjust);
    const char *v[] = {"--length-bytes",
                       bufs[0],
                       "--length-order",
                       f->little ? "little" : "big",
                       "--length-offset",
                       bufs[1],
                       "--length-adjust",
                       bufs[2],
                       "--max-frame",
                       max_frame,
                       NULL};
    memcpy(args, v, sizeof(v));
}

/* Write a header: offset bytes = tag (not interpreted by the server), then the field holding
 * value. Returns its bytes. */
static size_t put_frame_value(const struct framing *f, uint8_t *dst, uint64_t value, uint8_t tag)
{
    memset(dst, tag, f->offset);
    for (unsigned i = 0; i < f->width; i++) {
        unsigned shift = 8 * (f->little ? i : f->width - 1 - i);
        dst[f->offset + i] = (uint8_t)(value >> shift);
    }
    return f->offset + f->width;
}

/* A frame of len payload bytes (the field holding len - adjust). Returns its bytes. */
static size_t put_frame(const struct framing *f, uint8_t *dst, uint32_t len, uint32_t seed)
{
    size_t hl = put_frame_value(f, dst, (uint64_t)((long)len - f->adjust), (uint8_t)(0xc0 + seed));
    h_fill(dst + hl, len, seed);
    return hl + len;
}

/* count frames of varied sizes (0 .. max_payload, some >= 4 KiB for zero-copy replies). */
static uint8_t *build_stream(const struct framing *f, unsigned count, uint32_t seed, size_t *len)
{
    static const uint32_t sizes[] = {0, 1, 7, 255, 100, 4096, 8192, 3, 2000, 9000};
    size_t cap = 0;
    for (unsigned i = 0; i < count; i++)
        cap += f->offset + f->width + sizes[i % 10];
    uint8_t *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t at = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t n = sizes[i % 10] % (f->max_payload + 1);
        at += put_frame(f, buf + at, n, seed + i);
    }
    *len = at;
    return buf;
}

static void nodelay(int fd)
{
    int one = 1;
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
}

START_TEST(test_framing_echo_exact)
{
    for (size_t k = 0; k < FRAMINGS; k++) {
        const struct framing *f = &framings[k];
        const char *args[12];
        char bufs[3][32];
        framing_args(f, args, bufs, "1M");
        struct h_server srv;
        h_start_ok(&srv, &(struct h_opts){.args = args});
        char log[8192];
        h_log(&srv, log, sizeof(log));
        char want[128];
        snprintf(want, sizeof(want), "length-bytes=%u length-order=%s length-offset=%u", f->width,
                 f->little ? "little" : "big", f->offset);
        ck_assert_msg(strstr(log, want), "%s: the start line lacks '%s':\n%s", f->name, want, log);

        /* Many frames per write, both directions at once. */
        int fd = h_connect_ok(&srv);
        size_t len;
        uint8_t *out = build_stream(f, 200, 11 * (uint32_t)k, &len);
        uint8_t *in = malloc(len);
        ck_assert_ptr_nonnull(in);
        int rc = h_exchange(fd, out, len, in, len, 20000);
        ck_assert_msg(rc == 0, "%s: pipelined echo: %s", f->name, strerror(-rc));
        ck_assert_msg(memcmp(in, out, len) == 0, "%s: pipelined echo differs", f->name);
        free(in);
        free(out);

        /* One byte per write: every header and payload split at every byte. */
        size_t small = 0, n = 0;
        uint8_t *one = malloc(4096);
        ck_assert_ptr_nonnull(one);
        static const uint32_t sizes[] = {0, 1, 5, 30, 255, 2};
        for (unsigned i = 0; i < 6; i++) {
            n = sizes[i] % (f->max_payload + 1);
            small += put_frame(f, one + small, (uint32_t)n, 900 + i);
        }
        nodelay(fd);
        for (size_t i = 0; i < small; i++)
            ck_assert_int_eq(h_send_all(fd, one + i, 1, 5000), 0);
        uint8_t back[4096];
        rc = h_recv_exact(fd, back, small, 10000);
        ck_assert_msg(rc == 0, "%s: byte-at-a-time echo: %s", f->name, strerror(-rc));
        ck_assert_msg(memcmp(back, one, small) == 0, "%s: byte-at-a-time echo differs", f->name);
        free(one);
        close(fd);
        ck_assert_int_eq(h_stat_ok(&srv, "closed_protocol"), 0);
        h_stop_ok(&srv);
    }
}
END_TEST

/* Send good frames then bad bytes on one connection: every good reply, then the close. */
static void expect_replies_then_close(struct h_server *srv, const uint8_t *good, size_t good_len,
                                      const uint8_t *bad, size_t bad_len, const char *what)
{
    int fd = h_connect_ok(srv);
    uint8_t *out = malloc(good_len + bad_len);
    ck_assert_ptr_nonnull(out);
    memcpy(out, good, good_len);
    memcpy(out + good_len, bad, bad_len);
    ck_assert_int_eq(h_send_all(fd, out, good_len + bad_len, 5000), 0);
    uint8_t *reply = malloc(good_len);
    ck_assert_ptr_nonnull(reply);
    int rc = h_recv_exact(fd, reply, good_len, 10000);
    ck_assert_msg(rc == 0, "%s: replies before it: %s", what, strerror(-rc));
    ck_assert_msg(memcmp(reply, good, good_len) == 0, "%s: replies before it differ", what);
    rc = h_expect_close(fd, 5000);
    ck_assert_msg(rc == 0, "%s: connection not closed: %s", what,
                  rc == -EPROTO ? "more data came back" : strerror(-rc));
    close(fd);
    free(reply);
    free(out);
}

/* 2-byte little-endian, adjust +10, --max-frame 100: a field of 91 is 101 bytes, oversize,
 * though the raw value is below the maximum; a field of 90 (100 bytes) is fine. */
START_TEST(test_framing_oversize_after_adjust_closes_only_that_conn)
{
    const struct framing f = {"2-byte LE +10", 2, true, 0, 10, 100};
    const char *args[12];
    char bufs[3][32];
    framing_args(&f, args, bufs, "100");
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int other = h_connect_ok(&srv);
    uint8_t frame[256];
    size_t flen = put_frame(&f, frame, 10, 1);
    ck_assert_int_eq(h_send_all(other, frame, flen, 3000), 0);
    uint8_t back[256];
    ck_assert_int_eq(h_recv_exact(other, back, flen, 5000), 0);
    ck_assert_int_eq(memcmp(back, frame, flen), 0);

    uint8_t good[1024];
    size_t good_len = 0;
    good_len += put_frame(&f, good + good_len, 100, 2); /* exactly --max-frame */
    good_len += put_frame(&f, good + good_len, 10, 3);  /* field 0 */
    good_len += put_frame(&f, good + good_len, 55, 4);
    uint8_t bad[2 + 30] = {0};
    put_frame_value(&f, bad, 91, 0);
    expect_replies_then_close(&srv, good, good_len, bad, sizeof(bad), "oversize after adjust");

    /* The other connection is unaffected. */
    ck_assert_int_eq(h_send_all(other, frame, flen, 3000), 0);
    ck_assert_int_eq(h_recv_exact(other, back, flen, 5000), 0);
    ck_assert_int_eq(memcmp(back, frame, flen), 0);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed_protocol", 1, 5000), 1);
    close(other);
    h_stop_ok(&srv);
}
END_TEST

/* The length counts the whole header (offset 2, 4-byte field, adjust -6): a field below 6 is
 * a length below zero, a protocol error, counted; a field of 6 is an empty frame. */
START_TEST(test_framing_below_zero_is_protocol_error)
{
    const struct framing f = framings[FRAMINGS - 1];
    ck_assert_int_eq(f.adjust, -6);
    const char *args[12];
    char bufs[3][32];
    framing_args(&f, args, bufs, "1M");
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    uint8_t good[2048];
    size_t good_len = 0;
    good_len += put_frame(&f, good + good_len, 0, 5); /* field 6: empty */
    good_len += put_frame(&f, good + good_len, 1000, 6);
    uint8_t bad[6 + 10];
    memset(bad, 0x55, sizeof(bad));
    put_frame_value(&f, bad, 5, 0x42);
    expect_replies_then_close(&srv, good, good_len, bad, sizeof(bad), "below zero");
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed_protocol", 1, 5000), 1);
    int fd = h_connect_ok(&srv);
    uint8_t back[64];
    size_t n = put_frame(&f, good, 20, 7);
    ck_assert_int_eq(h_send_all(fd, good, n, 3000), 0);
    ck_assert_int_eq(h_recv_exact(fd, back, n, 5000), 0);
    ck_assert_int_eq(memcmp(back, good, n), 0);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_framing_bad_option_exits_2)
{
    static const char *const bad[][5] = {
        {"--length-bytes", "5", NULL, NULL, "--length-bytes"},
        {"--length-bytes", "two", NULL, NULL, "--length-bytes"},
        {"--length-order", "middle", NULL, NULL, "--length-order"},
        {"--length-offset", "4097", NULL, NULL, "--length-offset"},
        {"--length-adjust", "x", NULL, NULL, "--length-adjust"},
        {"--length-bytes", "1", "--length-adjust", "-300", "--length-adjust"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *args[6] = {bad[i][0], bad[i][1], bad[i][2], bad[i][3], NULL};
        char out[8192];
        int rc = h_run_args(args, 5000, out, sizeof(out));
        ck_assert_msg(rc == 2, "%s %s: exit %d:\n%s", bad[i][0], bad[i][1], rc, out);
        ck_assert_msg(strstr(out, bad[i][4]), "%s %s: message lacks %s:\n%s", bad[i][0], bad[i][1],
                      bad[i][4], out);
    }
}
END_TEST

int main(void)
{
    h_init(280);
    h_skip_if_unavailable();
    Suite *s = suite_create("framing");
    h_add_case(s, "test_framing_echo_exact", test_framing_echo_exact, 120);
    h_add_case(s, "test_framing_oversize_after_adjust_closes_only_that_conn",
               test_framing_oversize_after_adjust_closes_only_that_conn, 40);
    h_add_case(s, "test_framing_below_zero_is_protocol_error",
               test_framing_below_zero_is_protocol_error, 40);
    h_add_case(s, "test_framing_bad_option_exits_2", test_framing_bad_option_exits_2, 40);
    return h_run_suite(s);
}
