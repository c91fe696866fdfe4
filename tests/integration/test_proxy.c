/*
 * Integration tests of --proxy-protocol over real sockets: a PROXY v1 line or
 * v2 header, then frames, is echoed: whole, split at every byte (one byte a
 * segment), and with header and frames in one segment; v2 LOCAL (a balancer's
 * health check) and TLVs; a bad, oversize or missing header closes the
 * connection, counted as closed_proxy, without touching the others; one that
 * sends no header within --frame-timeout is closed; without the option a
 * PROXY line is just a bad frame, as before; at --log-level debug the
 * connection's lines name the client the header gave.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static const char v1_line[] = "PROXY TCP4 203.0.113.9 198.51.100.2 4242 7000\r\n";

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A v2 PROXY header from [2001:db8::7]:5151 with an ALPN TLV; returns its length. */
static size_t make_v2(uint8_t *out, uint8_t ver_cmd)
{
    memcpy(out, v2_sig, 12);
    out[12] = ver_cmd;
    out[13] = 0x21; /* AF_INET6, STREAM */
    uint8_t *b = out + 16;
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::7", b), 1);
    ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", b + 16), 1);
    b[32] = 0x14, b[33] = 0x1F; /* 5151 */
    b[34] = 0x1B, b[35] = 0x58; /* 7000 */
    const uint8_t tlv[] = {0x01, 0x00, 0x02, 'h', '2'};
    memcpy(b + 36, tlv, sizeof(tlv));
    size_t body = 36 + sizeof(tlv);
    out[14] = (uint8_t)(body >> 8), out[15] = (uint8_t)body;
    return 16 + body;
}

static const char *const proxy_args[] = {"--proxy-protocol", NULL};

static int connect_nodelay(const struct h_server *srv)
{
    int fd = h_connect_ok(srv);
    int one = 1;
    ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
    return fd;
}

/* Send buf one byte a segment (a pause after each, so the server reads them apart). */
static void send_bytewise(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    for (size_t i = 0; i < len; i++) {
        ck_assert_int_eq(h_send_all(fd, p + i, 1, 2000), 0);
        h_sleep_ms(2);
    }
}

static void echo_some(int fd, uint32_t seed)
{
    uint8_t payload[3000];
    h_fill(payload, sizeof(payload), seed);
    h_echo_ok(fd, payload, 0, 5000);
    h_echo_ok(fd, payload, 1, 5000);
    h_echo_ok(fd, payload, sizeof(payload), 5000);
}

START_TEST(test_proxy_v1_then_frames)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = proxy_args});
    int fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, v1_line, strlen(v1_line), 2000), 0);
    echo_some(fd, 1);
    close(fd);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 0);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_v2_then_frames)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = proxy_args});
    uint8_t hdr[128];
    size_t n = make_v2(hdr, 0x21);
    int fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, hdr, n, 2000), 0);
    echo_some(fd, 2);
    close(fd);
    /* LOCAL (a balancer's own health check), addresses ignored. */
    n = make_v2(hdr, 0x20);
    fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, hdr, n, 2000), 0);
    echo_some(fd, 3);
    close(fd);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 0);
    h_stop_ok(&srv);
}
END_TEST

/* Header one byte a segment, then the first frame too; and split in two at every point. */
START_TEST(test_proxy_header_split_across_segments)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = proxy_args});
    uint8_t v2[128];
    size_t v2_len = make_v2(v2, 0x21);
    const uint8_t *hdrs[] = {(const uint8_t *)v1_line, v2};
    size_t lens[] = {strlen(v1_line), v2_len};
    for (int h = 0; h < 2; h++) {
        int fd = connect_nodelay(&srv);
        send_bytewise(fd, hdrs[h], lens[h]);
        uint8_t frame[4 + 5];
        size_t flen = h_build_frame(frame, "bytes", 5);
        send_bytewise(fd, frame, flen);
        uint8_t back[sizeof(frame)];
        ck_assert_int_eq(h_recv_exact(fd, back, flen, 5000), 0);
        ck_assert_mem_eq(back, frame, flen);
        echo_some(fd, 10u + (uint32_t)h);
        close(fd);
        for (size_t cut = 1; cut < lens[h]; cut++) {
            fd = connect_nodelay(&srv);
            ck_assert_int_eq(h_send_all(fd, hdrs[h], cut, 2000), 0);
            h_sleep_ms(1);
            /* The rest of the header and a frame in the second segment. */
            uint8_t rest[256];
            size_t rlen = lens[h] - cut;
            memcpy(rest, hdrs[h] + cut, rlen);
            rlen += h_build_frame(rest + rlen, "cut", 3);
            ck_assert_int_eq(h_send_all(fd, rest, rlen, 2000), 0);
            uint8_t got[7];
            ck_assert_int_eq(h_recv_exact(fd, got, 7, 5000), 0);
            ck_assert_mem_eq(got + 4, "cut", 3);
            close(fd);
        }
    }
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 0);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_header_and_frames_in_one_segment)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = proxy_args});
    uint8_t buf[512];
    for (int h = 0; h < 2; h++) {
        size_t at = h == 0 ? strlen(v1_line) : make_v2(buf, 0x21);
        if (h == 0)
            memcpy(buf, v1_line, at);
        size_t frames_at = at;
        at += h_build_frame(buf + at, "one", 3);
        at += h_build_frame(buf + at, "", 0);
        at += h_build_frame(buf + at, "three", 5);
        int fd = connect_nodelay(&srv);
        ck_assert_int_eq(h_send_all(fd, buf, at, 2000), 0);
        uint8_t back[64];
        size_t want = at - frames_at;
        ck_assert_int_eq(h_recv_exact(fd, back, want, 5000), 0);
        ck_assert_mem_eq(back, buf + frames_at, want);
        close(fd);
    }
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 0);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_bad_header_closes_and_counts)
{
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = proxy_args});
    int good = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(good, v1_line, strlen(v1_line), 2000), 0);
    h_echo_ok(good, "before", 6, 5000);
    uint8_t v2_bad[128];
    size_t v2_len = make_v2(v2_bad, 0x31); /* version 3 */
    uint8_t oversize[200];
    memset(oversize, '1', sizeof(oversize));
    memcpy(oversize, "PROXY TCP4 ", 11); /* no CRLF within 107 bytes */
    uint8_t frame[9];
    size_t flen = h_build_frame(frame, "hello", 5); /* a client not behind a balancer */
    struct {
        const void *buf;
        size_t len;
    } bad[] = {
        {"GET / HTTP/1.0\r\n\r\n", 18},     {"PROXY TCP4 203.0.113.9 198.51.100.2 4242\r\n", 42},
        {"PROXY TCP4 ::1 ::2 1 2\r\n", 24}, {v2_bad, v2_len},
        {oversize, sizeof(oversize)},       {frame, flen},
    };
    int n_bad = (int)(sizeof(bad) / sizeof(bad[0]));
    for (int i = 0; i < n_bad; i++) {
        int fd = connect_nodelay(&srv);
        ck_assert_int_eq(h_send_all(fd, bad[i].buf, bad[i].len, 2000), 0);
        int rc = h_expect_close(fd, 5000);
        ck_assert_msg(rc == 0, "bad header %d: %s", i, strerror(-rc));
        close(fd);
    }
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed_proxy", n_bad, 5000), n_bad);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_protocol"), 0);
    h_echo_ok(good, "after", 5, 5000); /* the others are served on */
    close(good);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_no_header_in_time_closes)
{
    struct h_server srv;
    const char *args[] = {"--proxy-protocol", "--frame-timeout", "300ms", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int silent = connect_nodelay(&srv);
    int partial = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(partial, v1_line, 10, 2000), 0);
    ck_assert_int_eq(h_expect_close(silent, 10000), 0);
    ck_assert_int_eq(h_expect_close(partial, 10000), 0);
    close(silent);
    close(partial);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed_proxy", 2, 5000), 2);
    ck_assert_int_eq(h_stat_ok(&srv, "reaped_idle"), 0);
    ck_assert_int_eq(h_stat_ok(&srv, "reaped_frame_timeout"), 0);
    /* One that sends its header in time is served past the timeout. */
    int fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, v1_line, strlen(v1_line), 2000), 0);
    h_sleep_ms(800);
    h_echo_ok(fd, "late", 4, 5000);
    close(fd);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 2);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_off_header_is_a_bad_frame)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, v1_line, strlen(v1_line), 2000), 0);
    ck_assert_int_eq(h_expect_close(fd, 5000), 0); /* "PROX": a length over --max-frame */
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "closed_protocol", 1, 5000), 1);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_proxy"), 0);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_proxy_debug_log_names_client)
{
    struct h_server srv;
    const char *args[] = {"--proxy-protocol", "--log-level", "debug", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, v1_line, strlen(v1_line), 2000), 0);
    h_echo_ok(fd, "hi", 2, 5000);
    uint8_t bad[4] = {0xFF, 0xFF, 0xFF, 0xFF}; /* over --max-frame: a logged protocol error */
    ck_assert_int_eq(h_send_all(fd, bad, 4, 2000), 0);
    ck_assert_int_eq(h_expect_close(fd, 5000), 0);
    close(fd);
    uint8_t v2[128];
    size_t n = make_v2(v2, 0x21);
    fd = connect_nodelay(&srv);
    ck_assert_int_eq(h_send_all(fd, v2, n, 2000), 0);
    h_echo_ok(fd, "v2", 2, 5000);
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    static char log[1 << 16];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "(203.0.113.9:4242): PROXY v1 client via 127.0.0.1:"), "%s", log);
    ck_assert_msg(strstr(log, "(203.0.113.9:4242): protocol error"), "%s", log);
    ck_assert_msg(strstr(log, "([2001:db8::7]:5151): PROXY v2 client via 127.0.0.1:"), "%s", log);
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(200);
    h_skip_if_unavailable();
    Suite *s = suite_create("proxy");
    h_add_case(s, "test_proxy_v1_then_frames", test_proxy_v1_then_frames, 20);
    h_add_case(s, "test_proxy_v2_then_frames", test_proxy_v2_then_frames, 20);
    h_add_case(s, "test_proxy_header_split_across_segments",
               test_proxy_header_split_across_segments, 60);
    h_add_case(s, "test_proxy_header_and_frames_in_one_segment",
               test_proxy_header_and_frames_in_one_segment, 20);
    h_add_case(s, "test_proxy_bad_header_closes_and_counts",
               test_proxy_bad_header_closes_and_counts, 30);
    h_add_case(s, "test_proxy_no_header_in_time_closes", test_proxy_no_header_in_time_closes, 30);
    h_add_case(s, "test_proxy_off_header_is_a_bad_frame", test_proxy_off_header_is_a_bad_frame, 20);
    h_add_case(s, "test_proxy_debug_log_names_client", test_proxy_debug_log_names_client, 20);
    return h_run_suite(s);
}
