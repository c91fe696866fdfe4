/*
 * Integration tests of the server's life cycle: SIGTERM and SIGINT drain
 * (every frame sent before the signal is answered, then EOF, exit 0); peers
 * that vanish with replies pending cannot kill it through SIGPIPE, nor can
 * SIGHUP; none of its
 * descriptors leak into children (O_CLOEXEC); the command line fails with
 * exit 2 naming the bad option, a runtime failure exits 1 with the errno
 * text, --help and --version exit 0.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define DRAIN_CONNS   8
#define SIGPIPE_ROUND 20
#define SIGHUP_ROUNDS 5
#define OUT_BYTES     16384

static uint8_t *build_frames(unsigned count, uint32_t seed, size_t *len)
{
    static const uint32_t sizes[] = {0, 17, 4000, 262144, 1, 9000, 65536};
    size_t total = 0;
    for (unsigned i = 0; i < count; i++)
        total += H_FRAME_HDR + sizes[(i + seed) % 7];
    uint8_t *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    size_t at = 0;
    for (unsigned i = 0; i < count; i++) {
        uint32_t n = sizes[(i + seed) % 7];
        h_put_header(buf + at, n);
        h_fill(buf + at + H_FRAME_HDR, n, seed * 1000u + i);
        at += H_FRAME_HDR + n;
    }
    *len = total;
    return buf;
}

/* Frames sent on several connections right before sig all get answered, then EOF, exit 0. */
static void check_drain(int sig)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int fds[DRAIN_CONNS];
    uint8_t *streams[DRAIN_CONNS];
    size_t lens[DRAIN_CONNS];
    for (int i = 0; i < DRAIN_CONNS; i++) {
        fds[i] = h_connect_ok(&srv);
        streams[i] = build_frames(12, (uint32_t)i, &lens[i]);
    }
    for (int i = 0; i < DRAIN_CONNS; i++) {
        int rc = h_send_all(fds[i], streams[i], lens[i], 5000);
        ck_assert_msg(rc == 0, "conn %d: sending: %s", i, strerror(-rc));
    }
    ck_assert_int_eq(kill(srv.pid, sig), 0);
    size_t most = 0;
    for (int i = 0; i < DRAIN_CONNS; i++)
        most = lens[i] > most ? lens[i] : most;
    uint8_t *reply = malloc(most);
    ck_assert_ptr_nonnull(reply);
    for (int i = 0; i < DRAIN_CONNS; i++) {
        int rc = h_recv_exact(fds[i], reply, lens[i], 10000);
        ck_assert_msg(rc == 0, "conn %d: replies during drain (%s): %s; log:\n%s", i,
                      strsignal(sig), strerror(-rc), h_log_tail(&srv));
        ck_assert_msg(memcmp(reply, streams[i], lens[i]) == 0, "conn %d: replies differ", i);
        rc = h_expect_close(fds[i], 10000);
        ck_assert_msg(rc == 0, "conn %d: not closed after drain: %s", i,
                      rc == -EPROTO ? "extra data" : strerror(-rc));
        close(fds[i]);
        free(streams[i]);
    }
    free(reply);
    int code = h_wait_exit(&srv, 10000);
    ck_assert_msg(code == 0, "exit status %d after %s%s; log:\n%s", code, strsignal(sig),
                  code == -ETIMEDOUT ? " (timed out, killed)" : "", h_log_tail(&srv));
    unlink(srv.log_path);
}

START_TEST(test_lifecycle_sigterm_drains)
{
    check_drain(SIGTERM);
}
END_TEST

START_TEST(test_lifecycle_sigint_drains)
{
    check_drain(SIGINT);
}
END_TEST

START_TEST(test_lifecycle_sigpipe_harmless)
{
    struct h_server srv;
    h_start_ok(&srv, NULL); /* the harness resets SIGPIPE to SIG_DFL before exec */
    size_t len;
    uint8_t *stream = build_frames(14, 3, &len); /* two 256 KiB frames and more */
    for (int round = 0; round < SIGPIPE_ROUND; round++) {
        int fd = h_connect_ok(&srv);
        ck_assert_int_eq(h_send_all(fd, stream, len, 5000), 0);
        if (round % 2)
            shutdown(fd, SHUT_RDWR);
        close(fd); /* unread replies: the kernel answers the server's sends with RST */
    }
    usleep(200000);
    ck_assert_msg(h_alive(&srv), "server died (exit %d) on peers closing with replies pending",
                  srv.exit_code);
    int64_t open = h_wait_stat_eq(&srv, "conns_open", 0, 5000);
    ck_assert_int_eq(open, 0);
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, stream + H_FRAME_HDR, 100, 3000);
    close(fd);
    free(stream);
    h_stop_ok(&srv);
}
END_TEST

/* Flags of /proc/PID/fdinfo/FD (octal), or -1. */
static long fd_flags(pid_t pid, const char *fd)
{
    char path[320], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/fdinfo/%s", (int)pid, fd);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "flags:");
    return p ? strtol(p + strlen("flags:"), NULL, 8) : -1;
}

START_TEST(test_lifecycle_fds_cloexec)
{
    struct h_server srv;
    h_start_ok(&srv, NULL);
    int conns[3];
    uint8_t payload[10] = {1, 2, 3};
    for (int i = 0; i < 3; i++) {
        conns[i] = h_connect_ok(&srv);
        h_echo_ok(conns[i], payload, sizeof(payload), 2000);
    }
    char dir[64], bad[2048] = "";
    snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)srv.pid);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int sockets = 0, checked = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || atoi(e->d_name) <= 2)
            continue; /* 0-2 are the inherited stdio */
        char path[384], target[256];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
            continue; /* closed meanwhile */
        target[n] = '\0';
        long flags = fd_flags(srv.pid, e->d_name);
        if (flags < 0)
            continue;
        checked++;
        if (strncmp(target, "socket:", 7) == 0)
            sockets++;
        if (!(flags & 02000000)) {
            size_t used = strlen(bad);
            snprintf(bad + used, sizeof(bad) - used, " fd %s (%s, flags 0%lo)", e->d_name, target,
                     flags);
        }
    }
    closedir(d);
    ck_assert_msg(bad[0] == '\0', "server descriptors without O_CLOEXEC:%s", bad);
    /* At least the listening socket was looked at (io_uring direct descriptors are not listed). */
    ck_assert_msg(sockets >= 1, "no socket among %d server descriptors", checked);
    for (int i = 0; i < 3; i++)
        close(conns[i]);
    h_stop_ok(&srv);
}
END_TEST

/* argv: --backend B [--threads N] then extra (NULL-terminated), into args (cap entries). */
static void with_backend(const char **args, size_t cap, const char *const *extra)
{
    size_t n = 0;
    args[n++] = "--backend";
    args[n++] = h_backend();
    const char *threads = getenv("RW_THREADS");
    if (threads && *threads) {
        args[n++] = "--threads";
        args[n++] = threads;
    }
    for (size_t i = 0; extra[i]; i++) {
        ck_assert_uint_lt(n, cap - 1);
        args[n++] = extra[i];
    }
    args[n] = NULL;
}

static void check_bad_option(const char *const *extra, bool add_backend, const char *names)
{
    const char *args[32];
    if (add_backend) {
        with_backend(args, 32, extra);
    } else {
        size_t n = 0;
        for (; extra[n]; n++)
            args[n] = extra[n];
        args[n] = NULL;
    }
    char out[OUT_BYTES];
    int rc = h_run_args(args, 3000, out, sizeof(out));
    ck_assert_msg(rc == 2, "bad option (%s ...): exit %d, want 2; output:\n%s", names, rc, out);
    ck_assert_msg(strstr(out, names) != NULL, "message does not name %s:\n%s", names, out);
}

START_TEST(test_lifecycle_bad_options_exit_2)
{
    check_bad_option((const char *[]){"--listen", "127.0.0.1:0", "--max-frame", "abc", NULL}, true,
                     "--max-frame");
    check_bad_option((const char *[]){"--backend", "foo", "--listen", "127.0.0.1:0", NULL}, false,
                     "--backend");
    check_bad_option((const char *[]){"--listen", "nonsense", NULL}, true, "--listen");
    check_bad_option((const char *[]){"--listen", "127.0.0.1:0", "--idle-timeout", "5x", NULL},
                     true, "--idle-timeout");
    check_bad_option((const char *[]){"--listen", "127.0.0.1:0", "--unknown", NULL}, true,
                     "--unknown");
    check_bad_option((const char *[]){"--listen", "127.0.0.1:0", "--max-frame", NULL}, true,
                     "--max-frame");
}
END_TEST

START_TEST(test_lifecycle_port_in_use_exit_1)
{
    /* Held without SO_REUSEPORT, so the server's SO_REUSEPORT listener cannot share it. */
    int holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(holder, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(holder, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(holder, 1), 0);
    socklen_t sl = sizeof(sa);
    ck_assert_int_eq(getsockname(holder, (struct sockaddr *)&sa, &sl), 0);
    char listen_at[64];
    snprintf(listen_at, sizeof(listen_at), "127.0.0.1:%d", ntohs(sa.sin_port));
    const char *args[16];
    with_backend(args, 16, (const char *[]){"--listen", listen_at, NULL});
    char out[OUT_BYTES];
    int rc = h_run_args(args, 5000, out, sizeof(out));
    close(holder);
    ck_assert_msg(rc == 1, "listening on a port in use: exit %d, want 1; output:\n%s", rc, out);
    ck_assert_msg(strstr(out, "Address already in use") != NULL, "no errno text:\n%s", out);
    ck_assert_msg(strstr(out, listen_at) != NULL, "message does not name %s:\n%s", listen_at, out);
}
END_TEST

START_TEST(test_lifecycle_help_and_version)
{
    char out[OUT_BYTES];
    int rc = h_run_args((const char *[]){"--help", NULL}, 3000, out, sizeof(out));
    ck_assert_msg(rc == 0, "--help: exit %d; output:\n%s", rc, out);
    ck_assert_msg(strstr(out, "--max-frame") != NULL, "--help does not mention --max-frame:\n%s",
                  out);
    rc = h_run_args((const char *[]){"-h", NULL}, 3000, out, sizeof(out));
    ck_assert_msg(rc == 0 && strstr(out, "--backend"), "-h: exit %d; output:\n%s", rc, out);
    rc = h_run_args((const char *[]){"--version", NULL}, 3000, out, sizeof(out));
    ck_assert_msg(rc == 0, "--version: exit %d; output:\n%s", rc, out);
    ck_assert_msg(strstr(out, "ringwire") != NULL && strpbrk(out, "0123456789") != NULL,
                  "--version prints no name and number:\n%s", out);
    rc = h_run_args((const char *[]){"-V", NULL}, 3000, out, sizeof(out));
    ck_assert_msg(rc == 0 && strstr(out, "ringwire"), "-V: exit %d; output:\n%s", rc, out);
}
END_TEST

/* --help ends with the descriptor limit this process runs under and what --max-conns needs. */
START_TEST(test_lifecycle_help_says_descriptor_limit)
{
    char out[OUT_BYTES], want[128];
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0); /* the child inherits ours */
    int rc = h_run_args((const char *[]){"--max-conns", "10000", "--threads", "2", "--help", NULL},
                        3000, out, sizeof(out));
    ck_assert_msg(rc == 0, "--help: exit %d; output:\n%s", rc, out);
    size_t n = strlen(out);
    const char *tail = n > 600 ? out + n - 600 : out; /* Check caps a failure message's length */
    /* Under valgrind (RW_WRAPPER) the server sees valgrind's emulated limit, not ours. */
    if (h_time_factor() == 1)
        snprintf(want, sizeof(want), "this process may open %llu (RLIMIT_NOFILE soft limit, hard",
                 (unsigned long long)rl.rlim_cur);
    else
        snprintf(want, sizeof(want), "(RLIMIT_NOFILE soft limit, hard");
    ck_assert_msg(strstr(out, want) != NULL, "--help lacks '%s':\n...%s", want, tail);
    ck_assert_msg(strstr(out, "--max-conns 10000 with --threads 2 needs about 10102") != NULL,
                  "--help does not say what --max-conns needs:\n...%s", tail);
}
END_TEST

/*
 * SIGHUP (a closed terminal, a habitual "reload") used to kill the server at
 * once by its default action, with no drain. Now it is logged and ignored:
 * a client streaming frames through several SIGHUPs loses no reply.
 */
START_TEST(test_lifecycle_sighup_harmless)
{
    struct h_server srv;
    h_start_ok(&srv, NULL); /* the harness resets the signal mask and dispositions before exec */
    int fd = h_connect_ok(&srv);
    size_t len;
    uint8_t *stream = build_frames(7, 5, &len);
    uint8_t *reply = malloc(len);
    ck_assert_ptr_nonnull(reply);
    for (int round = 0; round < SIGHUP_ROUNDS; round++) {
        /* Half the stream, SIGHUP while the rest goes out, then every reply. */
        ck_assert_int_eq(h_send_all(fd, stream, len / 2, 5000), 0);
        ck_assert_int_eq(kill(srv.pid, SIGHUP), 0);
        int rc = h_exchange(fd, stream + len / 2, len - len / 2, reply, len, 10000);
        ck_assert_msg(rc == 0, "round %d: replies after SIGHUP: %s; log:\n%s", round, strerror(-rc),
                      h_log_tail(&srv));
        ck_assert_msg(memcmp(reply, stream, len) == 0, "round %d: replies differ", round);
    }
    ck_assert_msg(h_alive(&srv), "server died on SIGHUP (exit %d)", srv.exit_code);
    static char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "SIGHUP: ignored") != NULL, "SIGHUP not logged:\n%s", log);
    close(fd);
    free(reply);
    free(stream);
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(150);
    h_skip_if_unavailable();
    Suite *s = suite_create("lifecycle");
    h_add_case(s, "test_lifecycle_sigterm_drains", test_lifecycle_sigterm_drains, 40);
    h_add_case(s, "test_lifecycle_sigint_drains", test_lifecycle_sigint_drains, 40);
    h_add_case(s, "test_lifecycle_sigpipe_harmless", test_lifecycle_sigpipe_harmless, 30);
    h_add_case(s, "test_lifecycle_fds_cloexec", test_lifecycle_fds_cloexec, 30);
    h_add_case(s, "test_lifecycle_bad_options_exit_2", test_lifecycle_bad_options_exit_2, 30);
    h_add_case(s, "test_lifecycle_port_in_use_exit_1", test_lifecycle_port_in_use_exit_1, 30);
    h_add_case(s, "test_lifecycle_help_and_version", test_lifecycle_help_and_version, 30);
    h_add_case(s, "test_lifecycle_sighup_harmless", test_lifecycle_sighup_harmless, 60);
    h_add_case(s, "test_lifecycle_help_says_descriptor_limit",
               test_lifecycle_help_says_descriptor_limit, 30);
    return h_run_suite(s);
}
