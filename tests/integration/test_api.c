/*
 * The library API (include/ringwire/ringwire.h), in process: servers started
 * with rw_server_start on port 0 on RW_BACKEND with RW_THREADS workers, talked
 * to over real loopback sockets. Start/stop twice in one process, bound
 * ports, two addresses, on_open refusing, on_close once per connection with
 * its reason, user data, rw_conn_peer, rw_conn_send_ref's release, counters,
 * rw_server_stop from a signal handler, --proxy-protocol (on_open after the
 * header, its client as the peer), and that the library leaves the
 * process's signal dispositions and mask alone.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ringwire/ringwire.h>

#define WAIT_MS   10000
#define BIG_BYTES (8u << 20) /* more than socket buffers hold: a reply left unsent */

/* ---- the test handler: replies chosen by a payload's first byte ---- */

struct conn_user {
    unsigned magic;
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

struct events {
    pthread_mutex_t mu;
    bool refuse;
    unsigned opens;
    unsigned closes;
    unsigned reasons[RW_CLOSE_SHUTDOWN + 1];
    unsigned bad_user; /* on_close saw a user pointer other than on_open's */
    struct sockaddr_storage last_peer;
    socklen_t last_peer_len;
    bool ctx_ok;
};

static struct events ev = {.mu = PTHREAD_MUTEX_INITIALIZER};
static _Atomic unsigned releases;
static uint8_t *big;

static int on_open(struct rw_conn *c)
{
    pthread_mutex_lock(&ev.mu);
    bool refuse = ev.refuse;
    ev.ctx_ok = rw_conn_server_ctx(c) == &ev;
    pthread_mutex_unlock(&ev.mu);
    if (refuse)
        return -EPERM;
    struct conn_user *u = calloc(1, sizeof(*u));
    if (!u)
        return -ENOMEM;
    u->magic = 0x5eed;
    u->peer_len = sizeof(u->peer);
    ck_assert_int_eq(rw_conn_peer(c, &u->peer, &u->peer_len), 0);
    ck_assert_uint_lt(rw_conn_worker(c), 16);
    rw_conn_set_user(c, u);
    pthread_mutex_lock(&ev.mu);
    ev.opens++;
    ev.last_peer = u->peer;
    ev.last_peer_len = u->peer_len;
    pthread_mutex_unlock(&ev.mu);
    return 0;
}

static void on_close(struct rw_conn *c, enum rw_close_reason reason)
{
    struct conn_user *u = rw_conn_user(c);
    pthread_mutex_lock(&ev.mu);
    if (!u || u->magic != 0x5eed)
        ev.bad_user++;
    ev.closes++;
    if ((unsigned)reason <= RW_CLOSE_SHUTDOWN)
        ev.reasons[reason]++;
    pthread_mutex_unlock(&ev.mu);
    free(u);
}

static void release(void *arg)
{
    ck_assert_ptr_eq(arg, &releases);
    atomic_fetch_add(&releases, 1);
}

static int on_frame(struct rw_conn *c, const struct rw_frame *f)
{
    ck_assert_ptr_eq(f->header + f->header_len, f->payload);
    char op = f->len ? (char)f->payload[0] : 'e';
    switch (op) {
    case 'H': /* a reply, then an error: the reply still goes out */
        ck_assert_int_eq(rw_conn_send_frame(c, "r1", 2), 0);
        return -ENOMEM;
    case 'C': /* a reply, then close: the reply goes out, then FIN */
        ck_assert_int_eq(rw_conn_send_frame(c, "r2", 2), 0);
        rw_conn_close(c);
        ck_assert_int_eq(rw_conn_send_frame(c, "no", 2), -EPIPE);
        return 0;
    case 'R': /* by reference */
        return rw_conn_send_ref(c, "ref!", 4, release, &releases);
    case 'B': /* a reply too large to leave before the peer vanishes */
        return rw_conn_send_ref(c, big, BIG_BYTES, release, &releases);
    default: /* echo, header and all */
        return rw_conn_send_raw(c, f->header, f->header_len + f->len);
    }
}

static const struct rw_handler handler = {
    .name = "test", .on_open = on_open, .on_frame = on_frame, .on_close = on_close};

/* ---- server and client helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void options(struct rw_options *o)
{
    rw_options_init(o);
    const char *b = getenv("RW_BACKEND");
    o->backend = b && strcmp(b, "uring") == 0   ? RW_BACKEND_URING
                 : b && strcmp(b, "epoll") == 0 ? RW_BACKEND_EPOLL
                                                : RW_BACKEND_AUTO;
    const char *t = getenv("RW_THREADS");
    o->threads = t ? (uint32_t)atoi(t) : 1;
    o->log_level = RW_LOG_WARN;
    char err[256];
    ck_assert_int_eq(rw_options_add_listen(o, "127.0.0.1:0", err, sizeof(err)), 0);
}

static struct rw_server *start(const struct rw_options *o)
{
    struct rw_server *srv = NULL;
    char err[512] = "";
    int rc = rw_server_start(o, &handler, &ev, &srv, err, sizeof(err));
    if (rc < 0 && o->backend == RW_BACKEND_URING && strstr(err, "io_uring unavailable")) {
        fprintf(stderr, "SKIP: %s\n", err);
        exit(77);
    }
    ck_assert_msg(rc == 0, "rw_server_start: %d %s", rc, err);
    ck_assert_ptr_nonnull(srv);
    return srv;
}

static void stop(struct rw_server *srv)
{
    rw_server_stop(srv);
    rw_server_stop(srv); /* idempotent */
    ck_assert_int_eq(rw_server_wait(srv), 0);
    rw_server_destroy(srv);
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_frame(int fd, const void *p, uint32_t len)
{
    uint8_t buf[256];
    ck_assert_uint_le(len + 4, sizeof(buf));
    uint32_t be = htonl(len);
    memcpy(buf, &be, 4);
    memcpy(buf + 4, p, len);
    ck_assert_int_eq(send(fd, buf, len + 4, MSG_NOSIGNAL), (ssize_t)(len + 4));
}

/* Read exactly n bytes, or fewer at EOF/error (returned), within WAIT_MS. */
static size_t read_n(int fd, void *buf, size_t n)
{
    size_t got = 0;
    uint64_t deadline = now_ms() + WAIT_MS;
    while (got < n && now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = recv(fd, (uint8_t *)buf + got, n - got, 0);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

static void expect_frame(int fd, const char *want)
{
    uint8_t buf[260];
    size_t len = strlen(want);
    ck_assert_uint_eq(read_n(fd, buf, 4 + len), 4 + len);
    uint32_t be;
    memcpy(&be, buf, 4);
    ck_assert_uint_eq(ntohl(be), len);
    ck_assert(memcmp(buf + 4, want, len) == 0);
}

/* The peer closed: recv gives 0 (FIN) or an error (RST) within WAIT_MS. */
static void expect_eof(int fd)
{
    uint8_t b;
    ck_assert_uint_eq(read_n(fd, &b, 1), 0);
}

static void rst_close(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
    close(fd);
}

static unsigned reason_count(enum rw_close_reason r)
{
    pthread_mutex_lock(&ev.mu);
    unsigned n = ev.reasons[r];
    pthread_mutex_unlock(&ev.mu);
    return n;
}

static void wait_reason(enum rw_close_reason r, unsigned n)
{
    uint64_t deadline = now_ms() + WAIT_MS;
    while (reason_count(r) < n && now_ms() < deadline)
        usleep(10000);
    ck_assert_msg(reason_count(r) == n, "%s: %u closes, want %u", rw_close_reason_name(r),
                  reason_count(r), n);
}

static void reset_events(void)
{
    pthread_mutex_lock(&ev.mu);
    ev.refuse = false;
    ev.opens = ev.closes = ev.bad_user = 0;
    memset(ev.reasons, 0, sizeof(ev.reasons));
    pthread_mutex_unlock(&ev.mu);
    atomic_store(&releases, 0);
}

/* ---- tests ---- */

static bool same_action(int sig, const struct sigaction *before)
{
    struct sigaction now;
    sigaction(sig, NULL, &now);
    return now.sa_handler == before->sa_handler && now.sa_flags == before->sa_flags;
}

/* Twice in one process (ASan finds leaks); no handler installed, no mask left changed. */
START_TEST(test_api_start_stop_twice)
{
    struct sigaction term, pipe_, intr;
    sigaction(SIGTERM, NULL, &term);
    sigaction(SIGPIPE, NULL, &pipe_);
    sigaction(SIGINT, NULL, &intr);
    sigset_t mask_before, mask_after;
    pthread_sigmask(SIG_SETMASK, NULL, &mask_before);
    for (int round = 0; round < 2; round++) {
        reset_events();
        struct rw_options o;
        options(&o);
        struct rw_server *srv = start(&o);
        ck_assert_uint_eq(rw_server_address_count(srv), 1);
        uint16_t port = rw_server_port(srv, 0);
        ck_assert_uint_ne(port, 0);
        ck_assert_uint_eq(rw_server_port(srv, 1), 0);
        struct sockaddr_storage ss;
        socklen_t len;
        ck_assert_int_eq(rw_server_address(srv, 0, &ss, &len), 0);
        ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), port);
        ck_assert_uint_eq(rw_server_threads(srv), o.threads);
        if (o.backend != RW_BACKEND_AUTO)
            ck_assert_str_eq(rw_server_backend(srv), getenv("RW_BACKEND"));
        int fd = dial(port);
        send_frame(fd, "hello", 5);
        expect_frame(fd, "hello");
        close(fd);
        wait_reason(RW_CLOSE_PEER, 1);
        stop(srv);
        ck_assert(same_action(SIGTERM, &term));
        ck_assert(same_action(SIGPIPE, &pipe_));
        ck_assert(same_action(SIGINT, &intr));
        pthread_sigmask(SIG_SETMASK, NULL, &mask_after);
        for (int s = 1; s < SIGRTMIN; s++)
            ck_assert_int_eq(sigismember(&mask_after, s), sigismember(&mask_before, s));
    }
    ck_assert(ev.ctx_ok);
    ck_assert_str_eq(rw_version(), "0.2.0");
}
END_TEST

START_TEST(test_api_two_addresses)
{
    reset_events();
    struct rw_options o;
    options(&o);
    char err[256];
    ck_assert_int_eq(rw_options_add_listen(&o, "127.0.0.1:0", err, sizeof(err)), 0);
    ck_assert_int_eq(rw_options_add_listen(&o, "no such host:1", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(rw_options_check(&o, err, sizeof(err)), 0);
    struct rw_server *srv = start(&o);
    ck_assert_uint_eq(rw_server_address_count(srv), 2);
    ck_assert_uint_ne(rw_server_port(srv, 0), rw_server_port(srv, 1));
    for (unsigned a = 0; a < 2; a++) {
        int fd = dial(rw_server_port(srv, a));
        send_frame(fd, "xy", 2);
        expect_frame(fd, "xy");
        close(fd);
    }
    wait_reason(RW_CLOSE_PEER, 2);
    stop(srv);
}
END_TEST

START_TEST(test_api_open_refused)
{
    reset_events();
    ev.refuse = true;
    struct rw_options o;
    options(&o);
    struct rw_server *srv = start(&o);
    int fd = dial(rw_server_port(srv, 0));
    expect_eof(fd);
    close(fd);
    struct rw_counters k;
    uint64_t deadline = now_ms() + WAIT_MS;
    do {
        usleep(10000);
        rw_server_counters(srv, &k);
    } while (k.closed < 1 && now_ms() < deadline);
    ck_assert_uint_eq(k.accepted, 1);
    ck_assert_uint_eq(k.closed, 1);
    stop(srv);
    ck_assert_uint_eq(ev.opens, 0);
    ck_assert_uint_eq(ev.closes, 0); /* refused: no on_close */
}
END_TEST

/* Every reason a test can provoke, each connection's on_close once, user data intact. */
START_TEST(test_api_close_reasons)
{
    reset_events();
    struct rw_options o;
    options(&o);
    o.idle_timeout_ms = 1000;
    o.max_frame_bytes = 1024;
    struct rw_server *srv = start(&o);
    uint16_t port = rw_server_port(srv, 0);

    int fd = dial(port); /* peer FIN */
    send_frame(fd, "a", 1);
    expect_frame(fd, "a");
    shutdown(fd, SHUT_WR);
    expect_eof(fd);
    close(fd);
    wait_reason(RW_CLOSE_PEER, 1);

    fd = dial(port); /* RST */
    send_frame(fd, "b", 1);
    expect_frame(fd, "b");
    rst_close(fd);
    wait_reason(RW_CLOSE_ERROR, 1);

    fd = dial(port); /* idle */
    wait_reason(RW_CLOSE_IDLE, 1);
    expect_eof(fd);
    close(fd);

    fd = dial(port); /* a bad frame after a good one: the good one is answered */
    send_frame(fd, "c", 1);
    uint32_t huge = htonl(4096);
    ck_assert_int_eq(send(fd, &huge, 4, MSG_NOSIGNAL), 4);
    expect_frame(fd, "c");
    expect_eof(fd);
    close(fd);
    wait_reason(RW_CLOSE_PROTOCOL, 1);

    fd = dial(port); /* on_frame's error (-ENOMEM): its reply first */
    send_frame(fd, "H", 1);
    send_frame(fd, "ignored", 7);
    expect_frame(fd, "r1");
    expect_eof(fd);
    close(fd);
    wait_reason(RW_CLOSE_HANDLER, 1);

    fd = dial(port); /* rw_conn_close: its reply first, later input ignored */
    send_frame(fd, "C", 1);
    send_frame(fd, "ignored", 7);
    expect_frame(fd, "r2");
    expect_eof(fd);
    close(fd);
    wait_reason(RW_CLOSE_APP, 1);

    fd = dial(port); /* open when the server stops */
    send_frame(fd, "d", 1);
    expect_frame(fd, "d");
    struct rw_counters k;
    rw_server_counters(srv, &k);
    ck_assert_uint_eq(k.conns_open, 1);
    rw_server_stop(srv);
    ck_assert_int_eq(rw_server_wait(srv), 0);
    wait_reason(RW_CLOSE_SHUTDOWN, 1);
    expect_eof(fd);
    close(fd);

    rw_server_counters(srv, &k);
    ck_assert_uint_eq(k.accepted, 7);
    ck_assert_uint_eq(k.closed, 7);
    ck_assert_uint_eq(k.conns_open, 0);
    ck_assert_uint_eq(k.reaped_idle, 1);
    ck_assert_uint_eq(k.closed_protocol, 2); /* the bad frame and the handler's error */
    ck_assert_uint_eq(k.closed_error, 1);
    rw_server_destroy(srv);
    ck_assert_uint_eq(ev.opens, 7);
    ck_assert_uint_eq(ev.closes, 7);
    ck_assert_uint_eq(ev.bad_user, 0);
}
END_TEST

START_TEST(test_api_peer_and_counters)
{
    reset_events();
    struct rw_options o;
    options(&o);
    struct rw_server *srv = start(&o);
    int fd = dial(rw_server_port(srv, 0));
    struct sockaddr_in me;
    socklen_t me_len = sizeof(me);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &me_len), 0);
    for (int i = 0; i < 10; i++) {
        send_frame(fd, "0123456789", 10);
        expect_frame(fd, "0123456789");
    }
    pthread_mutex_lock(&ev.mu);
    ck_assert_uint_eq(ev.last_peer_len, sizeof(me));
    const struct sockaddr_in *p = (const struct sockaddr_in *)&ev.last_peer;
    ck_assert_uint_eq(p->sin_port, me.sin_port);
    ck_assert_uint_eq(p->sin_addr.s_addr, me.sin_addr.s_addr);
    pthread_mutex_unlock(&ev.mu);
    close(fd);
    wait_reason(RW_CLOSE_PEER, 1);
    struct rw_counters k;
    uint64_t deadline = now_ms() + WAIT_MS; /* closed counts at release, after on_close */
    do {
        rw_server_counters(srv, &k);
    } while (k.closed < 1 && now_ms() < deadline && usleep(10000) == 0);
    ck_assert_uint_eq(k.frames_in, 10);
    ck_assert_uint_eq(k.frames_out, 10);
    ck_assert_uint_eq(k.bytes_in, 140);
    ck_assert_uint_eq(k.bytes_out, 140);
    ck_assert_uint_eq(k.accepted, 1);
    ck_assert_uint_eq(k.closed, 1);
    rw_server_log_stats(srv, true);
    stop(srv);
}
END_TEST

START_TEST(test_api_send_ref)
{
    reset_events();
    big = calloc(1, BIG_BYTES);
    ck_assert_ptr_nonnull(big);
    struct rw_options o;
    options(&o);
    o.write_buffer_bytes = 64u << 20;
    struct rw_server *srv = start(&o);
    uint16_t port = rw_server_port(srv, 0);

    int fd = dial(port); /* sent: released once */
    send_frame(fd, "R", 1);
    expect_frame(fd, "ref!");
    uint64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(&releases) < 1 && now_ms() < deadline)
        usleep(10000);
    ck_assert_uint_eq(atomic_load(&releases), 1);
    close(fd);
    wait_reason(RW_CLOSE_PEER, 1);

    fd = dial(port); /* the peer vanishes with the reply unsent: released once, at close */
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    send_frame(fd, "B", 1);
    usleep(100000);
    rst_close(fd);
    wait_reason(RW_CLOSE_ERROR, 1);
    deadline = now_ms() + WAIT_MS;
    while (atomic_load(&releases) < 2 && now_ms() < deadline)
        usleep(10000);
    stop(srv);
    ck_assert_uint_eq(atomic_load(&releases), 2);
    free(big);
}
END_TEST

static struct rw_server *volatile signal_srv;

static void on_sigusr2(int sig)
{
    (void)sig;
    rw_server_stop(signal_srv);
}

START_TEST(test_api_stop_from_signal_handler)
{
    reset_events();
    struct rw_options o;
    options(&o);
    struct rw_server *srv = start(&o);
    signal_srv = srv;
    struct sigaction sa = {.sa_handler = on_sigusr2}, old;
    sigemptyset(&sa.sa_mask);
    ck_assert_int_eq(sigaction(SIGUSR2, &sa, &old), 0);
    ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
    ck_assert_int_eq(rw_server_wait(srv), 0); /* returns: the handler's stop drained it */
    rw_server_destroy(srv);
    sigaction(SIGUSR2, &old, NULL);
}
END_TEST

/*
 * --proxy-protocol through the API: on_open comes only once the PROXY header is in, and
 * rw_conn_peer is the client it names; a connection whose header is bad is closed without
 * on_open, so without on_close (RW_CLOSE_PROXY is never reported: the header's own counter,
 * closed_proxy, says it).
 */
START_TEST(test_api_proxy_protocol_open_and_peer)
{
    reset_events();
    struct rw_options o;
    options(&o);
    o.proxy_protocol = true;
    struct rw_server *srv = start(&o);
    uint16_t port = rw_server_port(srv, 0);
    int fd = dial(port);
    const char hdr[] = "PROXY TCP4 203.0.113.9 198.51.100.1 51234 7000\r\n";
    ck_assert_int_eq(send(fd, hdr, strlen(hdr), MSG_NOSIGNAL), (ssize_t)strlen(hdr));
    send_frame(fd, "hi", 2);
    expect_frame(fd, "hi");
    pthread_mutex_lock(&ev.mu);
    unsigned opens = ev.opens;
    struct sockaddr_storage peer = ev.last_peer;
    pthread_mutex_unlock(&ev.mu);
    ck_assert_uint_eq(opens, 1);
    ck_assert_int_eq(peer.ss_family, AF_INET);
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)&peer;
    char text[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    ck_assert_str_eq(text, "203.0.113.9");
    ck_assert_uint_eq(ntohs(in->sin_port), 51234);
    close(fd);
    wait_reason(RW_CLOSE_PEER, 1);

    int bad = dial(port);
    const char junk[] = "GET / HTTP/1.0\r\n\r\n";
    ck_assert_int_eq(send(bad, junk, strlen(junk), MSG_NOSIGNAL), (ssize_t)strlen(junk));
    expect_eof(bad);
    close(bad);
    struct rw_counters k;
    uint64_t deadline = now_ms() + WAIT_MS;
    do {
        rw_server_counters(srv, &k);
    } while (k.closed_proxy < 1 && now_ms() < deadline && usleep(10000) == 0);
    ck_assert_uint_eq(k.closed_proxy, 1);
    pthread_mutex_lock(&ev.mu);
    ck_assert_uint_eq(ev.opens, 1);
    ck_assert_uint_eq(ev.closes, 1);
    ck_assert_uint_eq(ev.reasons[RW_CLOSE_PROXY], 0);
    pthread_mutex_unlock(&ev.mu);
    stop(srv);
}
END_TEST

START_TEST(test_api_options_check)
{
    struct rw_options o;
    options(&o);
    char err[256];
    ck_assert_int_eq(rw_options_check(&o, err, sizeof(err)), 0);
    o.buf_count = 3;
    ck_assert_int_eq(rw_options_check(&o, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strncmp(err, "--buf-count", 11) == 0, "%s", err);
    struct rw_server *srv = (struct rw_server *)&o;
    ck_assert_int_eq(rw_server_start(&o, &handler, NULL, &srv, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(srv);
    ck_assert_str_eq(rw_close_reason_name(RW_CLOSE_HANDLER), "handler");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_api_start_stop_twice);
    tcase_add_test(tc, test_api_two_addresses);
    tcase_add_test(tc, test_api_open_refused);
    tcase_add_test(tc, test_api_close_reasons);
    tcase_add_test(tc, test_api_peer_and_counters);
    tcase_add_test(tc, test_api_send_ref);
    tcase_add_test(tc, test_api_stop_from_signal_handler);
    tcase_add_test(tc, test_api_options_check);
    tcase_add_test(tc, test_api_proxy_protocol_open_and_peer);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
