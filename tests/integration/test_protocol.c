/*
 * Integration tests of the protocol edges over real sockets: a half-closed
 * peer still gets every reply and then EOF; an oversize length answers the
 * frames before it, then closes that connection only; a peer that closes
 * mid-frame or resets while replies are pending leaves the server serving,
 * with its connection count back at zero; a slow reader gets every reply
 * before a bad frame, however long it takes to read them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define RESET_ROUNDS 40

/* count frames of sizes from sizes[] (cycled), distinct contents, into one malloc'd buffer. */
static uint8_t *build_frames(const uint32_t *sizes, unsigned n_sizes, unsigned count, uint32_t seed,
                             size_t *len)
{
    size_t total = 0;
    for (unsigned i = 0; i < count; i++)
        total += H_FRAME_HDR + sizes[i % n_sizes];
    uint8_t *buf = malloc(total ? total : 1);
    ck_assert_ptr_nonnull(buf);
    size_t at = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t n = sizes[i % n_sizes];
        h_put_header(buf + at, n);
        h_fill(buf + at + H_FRAME_HDR, n, seed + i);
        at += H_FRAME_HDR + n;
    }
    *len = total;
    return buf;
}

/* Send stream (+ tail bytes of an incomplete frame), SHUT_WR, expect every reply then EOF. */
static void check_half_close(const uint8_t *tail, size_t tail_len)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = h_connect_ok(&srv);
    static const uint32_t sizes[] = {0, 1, 700, 8192, 3, 262144, 100};
    size_t len;
    uint8_t *stream = build_frames(sizes, 7, 49, 300, &len);
    ck_assert_int_eq(h_send_all(fd, stream, len, 10000), 0);
    if (tail_len)
        ck_assert_int_eq(h_send_all(fd, tail, tail_len, 2000), 0);
    ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
    uint8_t *reply = malloc(len);
    ck_assert_ptr_nonnull(reply);
    int rc = h_recv_exact(fd, reply, len, 10000);
    ck_assert_msg(rc == 0, "replies after SHUT_WR: %s", strerror(-rc));
    ck_assert_msg(memcmp(reply, stream, len) == 0, "replies after SHUT_WR differ");
    rc = h_expect_close(fd, 3000);
    ck_assert_msg(rc == 0, "after the last reply to a half-closed peer: %s",
                  rc == -EPROTO ? "unexpected data" : strerror(-rc));
    free(reply);
    free(stream);
    close(fd);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 3000), 0);
    h_stop_ok(&srv);
}

START_TEST(test_protocol_half_close_replies_then_eof)
{
    check_half_close(NULL, 0);
}
END_TEST

START_TEST(test_protocol_half_close_partial_tail)
{
    /* A header promising 50 bytes and 10 of them: never answered, then EOF. */
    uint8_t tail[14] = {0, 0, 0, 50};
    check_half_close(tail, sizeof(tail));
}
END_TEST

START_TEST(test_protocol_oversize_closes_only_that_conn)
{
    struct h_server srv;
    const char *args[] = {"--max-frame", "1K", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int other = h_connect_ok(&srv);
    uint8_t payload[1024];
    h_fill(payload, sizeof(payload), 5);
    h_echo_ok(other, payload, 10, 3000);

    int fd = h_connect_ok(&srv);
    static const uint32_t sizes[] = {100, 1024, 0}; /* 1024 == --max-frame is allowed */
    size_t good_len;
    uint8_t *good = build_frames(sizes, 3, 3, 77, &good_len);
    uint8_t bad[H_FRAME_HDR + 10] = {0};
    h_put_header(bad, 1025);
    uint8_t *out = malloc(good_len + sizeof(bad));
    ck_assert_ptr_nonnull(out);
    memcpy(out, good, good_len);
    memcpy(out + good_len, bad, sizeof(bad));
    ck_assert_int_eq(h_send_all(fd, out, good_len + sizeof(bad), 3000), 0);
    uint8_t *reply = malloc(good_len);
    ck_assert_ptr_nonnull(reply);
    int rc = h_recv_exact(fd, reply, good_len, 5000);
    ck_assert_msg(rc == 0, "replies to the frames before the oversize one: %s", strerror(-rc));
    ck_assert_msg(memcmp(reply, good, good_len) == 0, "replies before the oversize frame differ");
    rc = h_expect_close(fd, 3000);
    ck_assert_msg(rc == 0, "connection not closed after an oversize length: %s",
                  rc == -EPROTO ? "more data came back" : strerror(-rc));
    close(fd);

    /* The other connection is unaffected, before and after. */
    h_echo_ok(other, payload, sizeof(payload), 3000);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_protocol"), 1);
    close(other);
    int again = h_connect_ok(&srv);
    h_echo_ok(again, payload, 1024, 3000);
    close(again);
    free(reply);
    free(out);
    free(good);
    h_stop_ok(&srv);
}
END_TEST

/* A blocking IPv4 loopback connection with a small receive buffer (set before connect, so the
 * advertised window is small too): replies back up into the server's queue. */
static int connect_small_rcvbuf(const struct h_server *srv, int rcvbuf_bytes)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes)), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

/*
 * 70 frames of 60000 bytes, then a header announcing 0xFFFFFFFF bytes, from a peer that starts
 * reading only after 3 s (longer than the server's 2 s linger for the peer's FIN): every reply
 * must still arrive in full, then EOF. The linger used to start when the bad header was parsed,
 * so such a reader got about 3.8 of the 4.2 MB and then a FIN.
 */
START_TEST(test_protocol_slow_reader_gets_every_reply_before_bad_frame)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fd = connect_small_rcvbuf(&srv, 16384);
    static const uint32_t sizes[] = {60000};
    size_t good_len;
    uint8_t *good = build_frames(sizes, 1, 70, 900, &good_len);
    int64_t t0 = h_now_ms();
    ck_assert_int_eq(h_send_all(fd, good, good_len, 10000), 0);
    uint8_t bad[H_FRAME_HDR] = {0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(h_send_all(fd, bad, sizeof(bad), 10000), 0);
    int64_t waited = h_now_ms() - t0;
    if (waited < 3000)
        h_sleep_ms((int)(3000 - waited));
    uint8_t *reply = malloc(good_len);
    ck_assert_ptr_nonnull(reply);
    size_t got = 0;
    int rc = 0;
    while (got < good_len) {
        size_t chunk = good_len - got < 65536 ? good_len - got : 65536;
        rc = h_recv_exact(fd, reply + got, chunk, 10000);
        if (rc < 0)
            break;
        got += chunk;
    }
    ck_assert_msg(rc == 0, "a slow reader got %zu of %zu reply bytes before a bad frame: %s", got,
                  good_len, strerror(-rc));
    ck_assert_msg(memcmp(reply, good, good_len) == 0, "replies before the bad frame differ");
    rc = h_expect_close(fd, 5000);
    ck_assert_msg(rc == 0, "connection not closed after the replies: %s",
                  rc == -EPROTO ? "more data came back" : strerror(-rc));
    close(fd);
    ck_assert_int_eq(h_stat_ok(&srv, "closed_protocol"), 1);
    ck_assert_int_eq(h_wait_stat_eq(&srv, "conns_open", 0, 5000), 0);
    free(reply);
    free(good);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_protocol_truncated_frame_then_close)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    /* Close inside the payload, inside the header, and with RST inside the payload. */
    for (int round = 0; round < 3; round++) {
        int fd = h_connect_ok(&srv);
        uint8_t buf[H_FRAME_HDR + 50];
        h_put_header(buf, 100);
        h_fill(buf + H_FRAME_HDR, 50, 1);
        size_t n = round == 1 ? 2 : sizeof(buf);
        ck_assert_int_eq(h_send_all(fd, buf, n, 2000), 0);
        usleep(20000); /* let the server take the partial frame in */
        if (round == 2)
            h_close_rst(fd);
        else
            close(fd);
    }
    ck_assert_msg(h_alive(&srv), "server died after truncated frames: %s", h_log_tail(&srv));
    int64_t open = h_wait_stat_eq(&srv, "conns_open", 0, 3000);
    ck_assert_msg(open == 0, "conns_open stays %lld after peers closed mid-frame", (long long)open);
    int fd = h_connect_ok(&srv);
    uint8_t payload[100];
    h_fill(payload, sizeof(payload), 3);
    h_echo_ok(fd, payload, sizeof(payload), 3000);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_protocol_reset_mid_reply)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    static const uint32_t sizes[] = {524288, 524284};
    size_t len;
    uint8_t *stream = build_frames(sizes, 2, 2, 11, &len); /* 1 MiB of frames */
    uint8_t sink[1000];
    for (int round = 0; round < RESET_ROUNDS; round++) {
        int fd = h_connect_ok(&srv);
        if (round % 4 != 3) {
            int rc = h_send_all(fd, stream, len, 5000);
            ck_assert_msg(rc == 0, "round %d: sending 1 MiB: %s", round, strerror(-rc));
        }
        if (round % 4 == 1)
            ck_assert_int_eq(h_recv_exact(fd, sink, sizeof(sink), 3000), 0);
        h_close_rst(fd); /* with replies pending (or, every fourth round, right away) */
    }
    ck_assert_msg(h_alive(&srv), "server died on resets: %s", h_log_tail(&srv));
    int64_t open = h_wait_stat_eq(&srv, "conns_open", 0, 5000);
    ck_assert_msg(open == 0, "conns_open stays %lld after %d resets", (long long)open,
                  RESET_ROUNDS);
    /* Every peer that sent data was accepted (one reset in the accept queue may not be). */
    int64_t accepted = h_stat_ok(&srv, "accepted");
    ck_assert_int_ge(accepted, RESET_ROUNDS - RESET_ROUNDS / 4);
    ck_assert_int_le(accepted, RESET_ROUNDS);
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, stream + H_FRAME_HDR, 1000, 3000);
    close(fd);
    free(stream);
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("protocol");
    h_add_case(s, "test_protocol_half_close_replies_then_eof",
               test_protocol_half_close_replies_then_eof, 30);
    h_add_case(s, "test_protocol_half_close_partial_tail", test_protocol_half_close_partial_tail,
               30);
    h_add_case(s, "test_protocol_oversize_closes_only_that_conn",
               test_protocol_oversize_closes_only_that_conn, 30);
    h_add_case(s, "test_protocol_slow_reader_gets_every_reply_before_bad_frame",
               test_protocol_slow_reader_gets_every_reply_before_bad_frame, 40);
    h_add_case(s, "test_protocol_truncated_frame_then_close",
               test_protocol_truncated_frame_then_close, 30);
    h_add_case(s, "test_protocol_reset_mid_reply", test_protocol_reset_mid_reply, 60);
    return h_run_suite(s);
}
