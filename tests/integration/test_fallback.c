/*
 * Proves the io_uring fallback for real: the server runs under a seccomp
 * filter that makes io_uring_setup fail (ENOSYS as under a container profile
 * without io_uring, EPERM as with kernel.io_uring_disabled=2). --backend auto
 * must fall back to epoll, say why and serve; --backend uring must exit 1 with
 * the reason. The same under an RLIMIT_MEMLOCK too small for the rings (with
 * CAP_IPC_LOCK dropped, as for any unprivileged user): the probe's small ring
 * may fit while a worker's full-size rings do not, and auto must still serve.
 * Independent of RW_BACKEND: it runs once.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct child {
    pid_t pid;
    char log_path[64];
};

/* In the child: deny io_uring_setup with err, allow everything else. */
static int deny_io_uring(int err)
{
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* In the child: RLIMIT_MEMLOCK = kib, and drop CAP_IPC_LOCK (root ignores the limit with it). */
static int limit_memlock(rlim_t kib)
{
    struct rlimit rl = {.rlim_cur = kib * 1024, .rlim_max = kib * 1024};
    if (setrlimit(RLIMIT_MEMLOCK, &rl) < 0)
        return -1;
    /* root gets every bounding-set capability back at execve: drop it there too. */
    if (prctl(PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0) < 0 && geteuid() == 0)
        return -1;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &hdr, data) < 0)
        return -1;
    unsigned bit = 1u << (CAP_IPC_LOCK % 32);
    data[CAP_IPC_LOCK / 32].effective &= ~bit;
    data[CAP_IPC_LOCK / 32].permitted &= ~bit;
    data[CAP_IPC_LOCK / 32].inheritable &= ~bit;
    return (int)syscall(SYS_capset, &hdr, data);
}

/* Start the server; err != 0: seccomp denies io_uring_setup with it; memlock_kib != 0: that limit.
 */
static void spawn(struct child *c, const char *backend, int err, rlim_t memlock_kib)
{
    const char *bin = getenv("RW_BIN");
    ck_assert_msg(bin != NULL, "RW_BIN must name the ringwire binary");
    snprintf(c->log_path, sizeof(c->log_path), "/tmp/rw-fallback-%d.log", (int)getpid());
    int log_fd = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert_int_ge(log_fd, 0);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        dup2(log_fd, STDERR_FILENO);
        if (err && deny_io_uring(err) < 0)
            _exit(111);
        if (memlock_kib && limit_memlock(memlock_kib) < 0)
            _exit(113);
        execl(bin, bin, "--backend", backend, "--listen", "127.0.0.1:0", "--threads", "1",
              (char *)NULL);
        _exit(112);
    }
    close(log_fd);
}

static void read_log(const struct child *c, char *buf, size_t bytes)
{
    FILE *f = fopen(c->log_path, "r");
    size_t n = f ? fread(buf, 1, bytes - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
}

/* Wait up to 5 s for the listening line; returns the port. */
static int wait_listening(const struct child *c, char *log, size_t bytes)
{
    for (int i = 0; i < 500; i++) {
        read_log(c, log, bytes);
        const char *at = strstr(log, "listening on 127.0.0.1:");
        if (at)
            return atoi(at + strlen("listening on 127.0.0.1:"));
        int status;
        if (waitpid(c->pid, &status, WNOHANG) == c->pid)
            ck_abort_msg("server exited early: %s", log);
        usleep(10000);
    }
    ck_abort_msg("server never listened: %s", log);
    return -1;
}

static int wait_exit(pid_t pid, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 10) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    ck_abort_msg("server did not exit within %d ms", timeout_ms);
    return -1;
}

static void echo_one_frame(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const unsigned char frame[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o'};
    ck_assert_int_eq(send(fd, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    unsigned char reply[sizeof(frame)];
    size_t got = 0;
    while (got < sizeof(reply)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_eq(poll(&p, 1, 5000), 1);
        ssize_t n = recv(fd, reply + got, sizeof(reply) - got, 0);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
    ck_assert_mem_eq(reply, frame, sizeof(frame));
    close(fd);
}

static void check_auto_falls_back(int err, const char *why)
{
    struct child c;
    char log[8192];
    spawn(&c, "auto", err, 0);
    int port = wait_listening(&c, log, sizeof(log));
    ck_assert_msg(strstr(log, "falling back to epoll") != NULL, "no fallback line: %s", log);
    ck_assert_msg(strstr(log, why) != NULL, "reason '%s' missing: %s", why, log);
    ck_assert_msg(strstr(log, "backend=epoll") != NULL, "not on epoll: %s", log);
    echo_one_frame(port);
    kill(c.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(c.pid, 10000), 0);
    unlink(c.log_path);
}

static void check_uring_refuses(int err, const char *why)
{
    struct child c;
    char log[8192];
    spawn(&c, "uring", err, 0);
    ck_assert_int_eq(wait_exit(c.pid, 10000), 1);
    read_log(&c, log, sizeof(log));
    ck_assert_msg(strstr(log, "io_uring unavailable") != NULL, "no reason given: %s", log);
    ck_assert_msg(strstr(log, why) != NULL, "remedy '%s' missing: %s", why, log);
    unlink(c.log_path);
}

/* 64 KiB: too small for a worker's ring (8192 CQEs) plus its 1024-entry buffer ring. */
#define SMALL_MEMLOCK_KIB 64

START_TEST(test_fallback_auto_memlock)
{
    struct child c;
    char log[8192];
    spawn(&c, "auto", 0, SMALL_MEMLOCK_KIB);
    int port = wait_listening(&c, log, sizeof(log));
    ck_assert_msg(strstr(log, "falling back to epoll") != NULL, "no fallback line: %s", log);
    ck_assert_msg(strstr(log, "RLIMIT_MEMLOCK") != NULL, "the limit is not named: %s", log);
    ck_assert_msg(strstr(log, "backend=epoll") != NULL, "not on epoll: %s", log);
    echo_one_frame(port);
    kill(c.pid, SIGTERM);
    ck_assert_int_eq(wait_exit(c.pid, 10000), 0);
    unlink(c.log_path);
}
END_TEST

START_TEST(test_fallback_uring_refuses_memlock)
{
    struct child c;
    char log[8192];
    spawn(&c, "uring", 0, SMALL_MEMLOCK_KIB);
    ck_assert_int_eq(wait_exit(c.pid, 10000), 1);
    read_log(&c, log, sizeof(log));
    ck_assert_msg(strstr(log, "RLIMIT_MEMLOCK") && strstr(log, "ulimit -l"),
                  "no reason and remedy: %s", log);
    unlink(c.log_path);
}
END_TEST

START_TEST(test_fallback_auto_enosys)
{
    check_auto_falls_back(ENOSYS, "seccomp");
}
END_TEST

START_TEST(test_fallback_auto_eperm)
{
    check_auto_falls_back(EPERM, "io_uring_setup");
}
END_TEST

START_TEST(test_fallback_uring_refuses_enosys)
{
    check_uring_refuses(ENOSYS, "seccomp");
}
END_TEST

START_TEST(test_fallback_uring_refuses_eperm)
{
    check_uring_refuses(EPERM, "Operation not permitted");
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *fn)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, fn);
    suite_add_tcase(s, tc);
}

int main(void)
{
    Suite *s = suite_create("fallback");
    add_case(s, "auto_enosys", test_fallback_auto_enosys);
    add_case(s, "auto_eperm", test_fallback_auto_eperm);
    add_case(s, "uring_refuses_enosys", test_fallback_uring_refuses_enosys);
    add_case(s, "uring_refuses_eperm", test_fallback_uring_refuses_eperm);
    add_case(s, "auto_memlock", test_fallback_auto_memlock);
    add_case(s, "uring_refuses_memlock", test_fallback_uring_refuses_memlock);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
