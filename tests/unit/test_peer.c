/*
 * Unit tests for the peer-address text of connection-level log lines
 * (src/core/peer.c): IPv4 and IPv6 peers as "ADDR:PORT" / "[ADDR]:PORT", the
 * client's own port; "?" for a closed slot and, as documented, for a peer
 * that reset the connection (the kernel no longer reports it).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "peer.h"

/* A connected pair over loopback: *client, *server (accepted); false if family is unavailable. */
static bool tcp_pair(int family, int *client, int *server, unsigned *client_port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof(*a);
    }
    int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 1) < 0) {
        if (lfd >= 0)
            close(lfd);
        return false;
    }
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&ss, &len), 0);
    *client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(*client, (struct sockaddr *)&ss, len), 0);
    *server = accept(lfd, NULL, NULL);
    ck_assert_int_ge(*server, 0);
    struct sockaddr_storage me;
    socklen_t me_len = sizeof(me);
    ck_assert_int_eq(getsockname(*client, (struct sockaddr *)&me, &me_len), 0);
    *client_port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&me)->sin6_port
                                            : ((struct sockaddr_in *)&me)->sin_port);
    close(lfd);
    return true;
}

START_TEST(test_peer_ipv4)
{
    int client, server;
    unsigned port;
    ck_assert(tcp_pair(AF_INET, &client, &server, &port));
    struct rw_conn c = {.fd = server};
    char buf[RW_PEER_TEXT_MAX], want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    ck_assert_str_eq(rw__conn_peer(&c, buf, sizeof(buf)), want);
    /* After the peer's FIN the address is still known (CLOSE_WAIT). */
    close(client);
    usleep(10000);
    ck_assert_str_eq(rw__conn_peer(&c, buf, sizeof(buf)), want);
    close(server);
}
END_TEST

START_TEST(test_peer_ipv6)
{
    int client, server;
    unsigned port;
    if (!tcp_pair(AF_INET6, &client, &server, &port)) {
        fprintf(stderr, "no IPv6 loopback here: test_peer_ipv6 checks nothing\n");
        return;
    }
    struct rw_conn c = {.fd = server};
    char buf[RW_PEER_TEXT_MAX], want[64];
    snprintf(want, sizeof(want), "[::1]:%u", port);
    ck_assert_str_eq(rw__conn_peer(&c, buf, sizeof(buf)), want);
    close(client);
    close(server);
}
END_TEST

START_TEST(test_peer_unknown)
{
    char buf[RW_PEER_TEXT_MAX];
    struct rw_conn closed = {.fd = -1};
    ck_assert_str_eq(rw__conn_peer(&closed, buf, sizeof(buf)), "?");
    /* A peer that reset: the socket is in CLOSE and getpeername says ENOTCONN. */
    int client, server;
    unsigned port;
    ck_assert(tcp_pair(AF_INET, &client, &server, &port));
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    ck_assert_int_eq(setsockopt(client, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
    close(client);
    usleep(10000);
    struct rw_conn c = {.fd = server};
    ck_assert_str_eq(rw__conn_peer(&c, buf, sizeof(buf)), "?");
    close(server);
    /* A buffer too small is cut, never overrun. */
    ck_assert(tcp_pair(AF_INET, &client, &server, &port));
    c.fd = server;
    char tiny[6];
    ck_assert_str_eq(rw__conn_peer(&c, tiny, sizeof(tiny)), "127.0");
    close(client);
    close(server);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("peer");
    const struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"test_peer_ipv4", test_peer_ipv4},
        {"test_peer_ipv6", test_peer_ipv6},
        {"test_peer_unknown", test_peer_unknown},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
