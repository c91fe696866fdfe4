/*
 * Integration tests of --listen as an operator uses it (issue 14, item 1): several addresses at
 * once, each with its own ephemeral port and every worker listening on each; a name (localhost)
 * listening on every address it resolves to; [::] IPv6-only by IPV6_V6ONLY whatever
 * net.ipv6.bindv6only says, dual-stack with --ipv6-dual-stack; a name that does not resolve
 * refused at start (exit 2) naming the address and the resolver's reason, a bind failure (exit 1)
 * naming the address and the kernel's.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define ADDRS_MAX 16

struct bound {
    int family;
    char host[64];
    int port;
};

/* Every address of the "listening on A B ... backend=" line, in order. Returns how many. */
static int listening_addrs(const struct h_server *srv, struct bound *out, int max)
{
    static char log[H_LOG_MAX];
    h_log(srv, log, sizeof(log));
    const char *p = strstr(log, "listening on ");
    ck_assert_msg(p != NULL, "no listening line: %s", h_log_tail(srv));
    p += strlen("listening on ");
    int n = 0;
    while (n < max && strncmp(p, "backend=", 8) != 0) {
        const char *end = strchr(p, ' ');
        ck_assert_msg(end != NULL, "listening line cut short: %s", h_log_tail(srv));
        const char *colon = end;
        while (colon > p && *colon != ':')
            colon--;
        ck_assert(colon > p);
        struct bound *b = &out[n++];
        b->family = p[0] == '[' ? AF_INET6 : AF_INET;
        const char *h = b->family == AF_INET6 ? p + 1 : p;
        size_t hlen = (size_t)(colon - h) - (b->family == AF_INET6 ? 1u : 0u);
        ck_assert_uint_lt(hlen, sizeof(b->host));
        memcpy(b->host, h, hlen);
        b->host[hlen] = '\0';
        b->port = atoi(colon + 1);
        ck_assert_int_gt(b->port, 0);
        p = end + 1;
    }
    return n;
}

static void echo_on(int family, const char *host, int port, uint32_t seed)
{
    int fd = h_connect_addr(family, host, port, 3000);
    ck_assert_msg(fd >= 0, "connect %s port %d: %s", host, port, strerror(-fd));
    uint8_t payload[100];
    h_fill(payload, sizeof(payload), seed);
    h_echo_ok(fd, payload, sizeof(payload), 3000);
    close(fd);
}

/* A port free on 127.0.0.1 and ::1 just now (the kernel's pick for one, checked on the other). */
static int free_port(void)
{
    for (int attempt = 0; attempt < 50; attempt++) {
        int fd4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(a4);
        ck_assert_int_ge(fd4, 0);
        ck_assert_int_eq(bind(fd4, (struct sockaddr *)&a4, sizeof(a4)), 0);
        ck_assert_int_eq(getsockname(fd4, (struct sockaddr *)&a4, &len), 0);
        int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        setsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = a4.sin_port};
        a6.sin6_addr = in6addr_any; /* free on [::] too: the V6ONLY test binds there */
        int ok = bind(fd6, (struct sockaddr *)&a6, sizeof(a6)) == 0;
        close(fd6);
        close(fd4);
        if (ok)
            return ntohs(a4.sin_port);
    }
    ck_abort_msg("no port free on both 127.0.0.1 and [::]");
    return -1;
}

/*
 * --listen 127.0.0.1:0 --listen [::1]:0: two addresses, each with its own ephemeral port, both in
 * the log line (first address first); echoes on both; and every worker listens on the second
 * too: 64 connections to it alone reach every worker (SO_REUSEPORT hashes the 4-tuple; all on
 * one of two workers has odds of 2^-63).
 */
START_TEST(test_listen_two_addresses)
{
    enum { CONNS = 64 };
    char json[64];
    snprintf(json, sizeof(json), "/tmp/rw-listen-%d.json", (int)getpid());
    const char *args[] = {"--listen", "[::1]:0", "--stats-json", json, NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = "127.0.0.1:0", .args = args});
    struct bound b[ADDRS_MAX];
    int n = listening_addrs(&srv, b, ADDRS_MAX);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(b[0].family, AF_INET);
    ck_assert_str_eq(b[0].host, "127.0.0.1");
    ck_assert_int_eq(b[1].family, AF_INET6);
    ck_assert_str_eq(b[1].host, "::1");
    ck_assert_int_eq(srv.port, b[0].port); /* the harness reads the first */
    echo_on(AF_INET, "127.0.0.1", b[0].port, 1);
    echo_on(AF_INET6, "::1", b[1].port, 2);
    /* Each port is its own: nothing listens on the other's port on the other address. */
    if (b[0].port != b[1].port) {
        int fd = h_connect_addr(AF_INET6, "::1", b[0].port, 3000);
        ck_assert_int_eq(fd, -ECONNREFUSED);
    }
    int fds[CONNS];
    uint8_t payload[16];
    for (int i = 0; i < CONNS; i++) {
        fds[i] = h_connect_addr(AF_INET6, "::1", b[1].port, 3000);
        ck_assert_msg(fds[i] >= 0, "connect [::1]:%d: %s", b[1].port, strerror(-fds[i]));
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(fds[i], payload, sizeof(payload), 3000);
    }
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    ck_assert_msg(h_stat_get(line, "accepted") == CONNS + 2, "total: %s", line);
    int64_t per[64];
    int workers = h_json_worker_counters(json, "accepted", per, 64);
    ck_assert_int_eq(workers, h_workers());
    for (int i = 0; i < workers; i++)
        ck_assert_msg(per[i] > 0, "worker %d accepted none of %d connections to [::1]", i, CONNS);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    h_stop_ok(&srv);
    unlink(json);
}
END_TEST

/* --listen localhost:PORT listens on every address localhost resolves to here, each serving. */
START_TEST(test_listen_localhost_every_address)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    ck_assert_int_eq(getaddrinfo("localhost", NULL, &hints, &res), 0);
    struct bound want[ADDRS_MAX];
    int nwant = 0;
    for (struct addrinfo *ai = res; ai != NULL && nwant < ADDRS_MAX; ai = ai->ai_next) {
        struct bound w = {.family = ai->ai_family};
        const void *a = ai->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
        ck_assert_ptr_nonnull(inet_ntop(ai->ai_family, a, w.host, sizeof(w.host)));
        bool dup = false;
        for (int i = 0; i < nwant; i++)
            dup = dup || (want[i].family == w.family && strcmp(want[i].host, w.host) == 0);
        if (!dup)
            want[nwant++] = w;
    }
    freeaddrinfo(res);
    ck_assert_int_ge(nwant, 1);

    int port = free_port();
    char listen[32];
    snprintf(listen, sizeof(listen), "localhost:%d", port);
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = listen});
    struct bound b[ADDRS_MAX];
    int n = listening_addrs(&srv, b, ADDRS_MAX);
    ck_assert_int_eq(n, nwant);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(b[i].family, want[i].family);
        ck_assert_str_eq(b[i].host, want[i].host);
        ck_assert_int_eq(b[i].port, port);
        echo_on(b[i].family, b[i].host, port, (uint32_t)i);
    }
    h_stop_ok(&srv);
}
END_TEST

/* [::]:PORT is IPv6 only (IPV6_V6ONLY set, not left to net.ipv6.bindv6only): 127.0.0.1:PORT is
 * refused; --ipv6-dual-stack takes it. */
START_TEST(test_listen_v6only_and_dual_stack)
{
    for (int dual = 0; dual < 2; dual++) {
        int port = free_port();
        char listen[32];
        snprintf(listen, sizeof(listen), "[::]:%d", port);
        const char *args[] = {dual ? "--ipv6-dual-stack" : NULL, NULL};
        struct h_server srv;
        h_start_ok(&srv, &(struct h_opts){.listen = listen, .args = args});
        echo_on(AF_INET6, "::1", port, 7);
        if (dual) {
            echo_on(AF_INET, "127.0.0.1", port, 8);
        } else {
            int fd = h_connect_addr(AF_INET, "127.0.0.1", port, 3000);
            ck_assert_msg(fd == -ECONNREFUSED, "IPv4 connect to V6ONLY [::]:%d: %s", port,
                          fd >= 0 ? "accepted" : strerror(-fd));
        }
        h_stop_ok(&srv);
    }
}
END_TEST

/* A name that does not resolve: exit 2 at start, naming the address and the resolver's reason. */
START_TEST(test_listen_bad_host_exits_2)
{
    static char out[8192];
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo("no-such-host..invalid", NULL, &hints, &res);
    ck_assert_int_ne(gai, 0);
    const char *args[] = {"--backend", h_backend(), "--listen", "no-such-host..invalid:7000", NULL};
    int rc = h_run_args(args, 10000 * h_time_factor(), out, sizeof(out));
    ck_assert_msg(rc == 2, "exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, "--listen: bad address 'no-such-host..invalid:7000': cannot resolve "
                              "'no-such-host..invalid'") != NULL,
                  "%s", out);
    if (gai != EAI_SYSTEM)
        ck_assert_msg(strstr(out, gai_strerror(gai)) != NULL, "no '%s' in: %s", gai_strerror(gai),
                      out);
}
END_TEST

/* A second address already taken: exit 1, naming that --listen, the address and errno's text. */
START_TEST(test_listen_bind_failure_names_address)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a4);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a4, sizeof(a4)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a4, &len), 0);
    char taken[32], want[160];
    snprintf(taken, sizeof(taken), "127.0.0.1:%d", ntohs(a4.sin_port));
    snprintf(want, sizeof(want), "--listen %s: bind %s: Address already in use", taken, taken);
    char threads[16];
    snprintf(threads, sizeof(threads), "%d", h_workers());
    const char *args[] = {"--backend", h_backend(), "--threads", threads, "--listen",
                          "[::1]:0",   "--listen",  taken,       NULL};
    static char out[8192];
    int rc = h_run_args(args, 10000 * h_time_factor(), out, sizeof(out));
    close(fd);
    ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
    ck_assert_msg(strstr(out, want) != NULL, "no '%s' in: %s", want, out);
}
END_TEST

/*
 * Out of descriptors with two addresses: EMFILE on one pauses accepting on both (the limit is the
 * process's), without a busy loop, and when descriptors free up accepting resumes on both.
 */
START_TEST(test_listen_out_of_fds_resumes_every_address)
{
    enum { FLOOD = 150 };
    const char *args[] = {"--listen", "[::1]:0", NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.listen = "127.0.0.1:0", .args = args, .nofile = 64});
    struct bound b[ADDRS_MAX];
    ck_assert_int_eq(listening_addrs(&srv, b, ADDRS_MAX), 2);
    int fds[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        fds[i] = h_connect_start(&srv);
        ck_assert_msg(fds[i] >= 0, "connect %d: %s", i, strerror(-fds[i]));
    }
    /* They complete in the backlog whether or not the server can accept them. */
    int64_t deadline = h_now_ms() + 5000;
    for (int i = 0; i < FLOOD; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLOUT};
        int left = (int)(deadline - h_now_ms());
        ck_assert_msg(poll(&p, 1, left > 0 ? left : 0) == 1, "client %d never connected", i);
    }
    h_sleep_ms(200);
    long cpu0 = h_cpu_ms_no_sqpoll(srv.pid);
    h_sleep_ms(2000);
    long cpu1 = h_cpu_ms_no_sqpoll(srv.pid);
    ck_assert_msg(h_alive(&srv), "server died out of descriptors: %s", h_log_tail(&srv));
    int64_t accepted = h_stat_ok(&srv, "accepted");
    ck_assert_msg(accepted < FLOOD, "%lld of %d accepted under RLIMIT_NOFILE 64",
                  (long long)accepted, FLOOD);
    ck_assert_int_gt(h_stat_ok(&srv, "accept_backoffs"), 0);
    ck_assert_msg(cpu1 - cpu0 < 500 * h_time_factor(),
                  "server used %ld ms of CPU in 2 s while out of descriptors (busy loop?)",
                  cpu1 - cpu0);
    for (int i = 0; i < FLOOD; i++)
        close(fds[i]);
    /* Accepting resumes on both addresses. */
    echo_on(AF_INET, "127.0.0.1", b[0].port, 11);
    echo_on(AF_INET6, "::1", b[1].port, 12);
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("listen");
    h_add_case(s, "test_listen_two_addresses", test_listen_two_addresses, 60);
    h_add_case(s, "test_listen_localhost_every_address", test_listen_localhost_every_address, 30);
    h_add_case(s, "test_listen_v6only_and_dual_stack", test_listen_v6only_and_dual_stack, 30);
    h_add_case(s, "test_listen_out_of_fds_resumes_every_address",
               test_listen_out_of_fds_resumes_every_address, 60);
    h_add_case(s, "test_listen_bad_host_exits_2", test_listen_bad_host_exits_2, 30);
    h_add_case(s, "test_listen_bind_failure_names_address", test_listen_bind_failure_names_address,
               30);
    return h_run_suite(s);
}
