/*
 * Integration-test harness (see harness.h): spawns ringwire with its output in
 * a temporary file, talks to it over real loopback sockets with bounded waits,
 * and reads its counters, memory and CPU time. The server child gets a clean
 * slate before exec (default SIGPIPE disposition, empty signal mask, no fds
 * beyond 0-2, PDEATHSIG so a failed test cannot leave it running), so what
 * the tests observe is the server's own doing.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARGV_MAX     64
#define POLL_STEP_MS 5

int64_t h_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline_ms)
{
    int64_t left = deadline_ms - h_now_ms();
    return left < 0 ? 0 : (int)left;
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int h_connect_start(const struct h_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void h_init(unsigned alarm_seconds)
{
    signal(SIGPIPE, SIG_IGN);
    alarm(alarm_seconds);
    /* Thousands of client sockets need more than the usual 1024. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        if (rl.rlim_cur < want) {
            rl.rlim_cur = want;
            (void)setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
}

const char *h_backend(void)
{
    const char *b = getenv("RW_BACKEND");
    return b && *b ? b : "epoll";
}

static const char *bin_path(void)
{
    const char *bin = getenv("RW_BIN");
    return bin && *bin ? bin : "build/ringwire";
}

/*
 * The words of environment variable `name`, split at spaces, into argv from *argc on (each
 * variable has its own buffer, which the words point into). RW_WRAPPER (tests/run --valgrind
 * sets it) is a command line put before the server's; RW_SERVER_ARGS are extra server options
 * for every h_start, put before the test's own (a later option overrides an earlier one), e.g.
 * RW_SERVER_ARGS='--uring-features none' to run the suite without the optional io_uring features.
 */
static int add_env_words(const char *name, char *words, size_t words_bytes, const char **argv,
                         int *argc, int cap)
{
    const char *w = getenv(name);
    if (!w || !*w)
        return 0;
    snprintf(words, words_bytes, "%s", w);
    char *save = NULL;
    for (char *tok = strtok_r(words, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (*argc >= cap - 1)
            return -E2BIG;
        argv[(*argc)++] = tok;
    }
    return 0;
}

static int add_wrapper(const char **argv, int *argc, int cap)
{
    static char words[1024];
    return add_env_words("RW_WRAPPER", words, sizeof(words), argv, argc, cap);
}

static int add_server_args(const char **argv, int *argc, int cap)
{
    static char words[1024];
    return add_env_words("RW_SERVER_ARGS", words, sizeof(words), argv, argc, cap);
}

int h_time_factor(void)
{
    const char *w = getenv("RW_WRAPPER");
    return w && *w ? 6 : 1;
}

/* In the forked child: enter the network namespace NAME (as `ip netns exec NAME` does). */
static int enter_netns(const char *name)
{
    char path[256];
    snprintf(path, sizeof(path), "/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

/* In the forked child: reset what the test process changed, then exec. */
static void exec_child(int log_fd, const char *const argv[], rlim_t nofile, rlim_t nofile_hard,
                       const char *netns, const char *const *env, uint64_t cpu_mask, pid_t parent)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(126);
    if (cpu_mask) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int cpu = 0; cpu < 64; cpu++)
            if (cpu_mask & (1ull << cpu))
                CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0)
            _exit(126);
    }
    if (netns && enter_netns(netns) < 0)
        _exit(126);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
        dup2(log_fd, STDERR_FILENO) < 0)
        _exit(126);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGALRM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int i = 0; env && env[i]; i++) {
        const char *eq = strchr(env[i], '=');
        char name[128];
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - env[i]) : (int)strlen(env[i]), env[i]);
        if (eq ? setenv(name, eq + 1, 1) < 0 : unsetenv(name) < 0)
            _exit(126);
    }
    if (nofile) {
        struct rlimit rl = {.rlim_cur = nofile,
                            .rlim_max = nofile_hard > nofile ? nofile_hard : nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
#ifdef SYS_close_range
    if (syscall(SYS_close_range, 3u, ~0u, 0u) < 0)
#endif
    {
        long max_fd = sysconf(_SC_OPEN_MAX);
        for (long fd = 3; fd < max_fd; fd++)
            close((int)fd);
    }
    /* execv's prototype predates const; it does not write to argv. */
    union {
        const char *const *c;
        char *const *m;
    } args = {.c = argv};
    execvp(argv[0], args.m);
    _exit(127);
}

/* Fork the binary with argv (argv[0] already the binary), output into a new temp file. */
static int spawn(const char *const argv[], rlim_t nofile, rlim_t nofile_hard, const char *netns,
                 const char *const *env, uint64_t cpu_mask, pid_t *pid, char *log_path,
                 size_t path_bytes)
{
    snprintf(log_path, path_bytes, "/tmp/rw-integ-XXXXXX");
    int log_fd = mkostemp(log_path, O_APPEND | O_CLOEXEC);
    if (log_fd < 0)
        return -errno;
    pid_t parent = getpid();
    *pid = fork();
    if (*pid < 0) {
        int err = errno;
        close(log_fd);
        unlink(log_path);
        return -err;
    }
    if (*pid == 0)
        exec_child(log_fd, argv, nofile, nofile_hard, netns, env, cpu_mask, parent);
    close(log_fd);
    return 0;
}

static size_t read_file(const char *path, char *buf, size_t bytes)
{
    if (bytes == 0)
        return 0;
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        while (n < bytes - 1) {
            ssize_t r = read(fd, buf + n, bytes - 1 - n);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        close(fd);
    }
    buf[n] = '\0';
    return n;
}

size_t h_log(const struct h_server *srv, char *buf, size_t bytes)
{
    return read_file(srv->log_path, buf, bytes);
}

static int status_code(int status)
{
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool try_reap(struct h_server *srv)
{
    if (srv->reaped)
        return true;
    int status;
    if (waitpid(srv->pid, &status, WNOHANG) != srv->pid)
        return false;
    srv->reaped = true;
    srv->exit_code = status_code(status);
    return true;
}

bool h_alive(struct h_server *srv)
{
    return !try_reap(srv);
}

/* Parse "listening on 127.0.0.1:PORT " or "listening on [::1]:PORT ". */
static bool parse_listening(const char *log, int *port, int *family)
{
    const char *p = strstr(log, "listening on ");
    if (!p)
        return false;
    p += strlen("listening on ");
    const char *end = strpbrk(p, " \n");
    if (!end || *end != ' ')
        return false; /* line not complete yet */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon)
        return false;
    *family = p[0] == '[' ? AF_INET6 : AF_INET;
    *port = atoi(colon + 1);
    return *port > 0;
}

int h_start(struct h_server *srv, const struct h_opts *opts)
{
    static const struct h_opts none;
    if (!opts)
        opts = &none;
    memset(srv, 0, sizeof(*srv));
    const char *argv[ARGV_MAX];
    int argc = 0;
    if (add_wrapper(argv, &argc, ARGV_MAX) < 0)
        return -E2BIG;
    argv[argc++] = bin_path();
    argv[argc++] = "--backend";
    argv[argc++] = h_backend();
    const char *threads = getenv("RW_THREADS");
    if (threads && *threads && !opts->no_threads) {
        argv[argc++] = "--threads";
        argv[argc++] = threads;
    }
    argv[argc++] = "--listen";
    argv[argc++] = opts->listen ? opts->listen : "127.0.0.1:0";
    if (add_server_args(argv, &argc, ARGV_MAX) < 0)
        return -E2BIG;
    for (int i = 0; opts->args && opts->args[i]; i++) {
        if (argc >= ARGV_MAX - 1)
            return -E2BIG;
        argv[argc++] = opts->args[i];
    }
    argv[argc] = NULL;
    int rc = spawn(argv, opts->nofile, opts->nofile_hard, opts->netns, opts->env, opts->cpu_mask,
                   &srv->pid, srv->log_path, sizeof(srv->log_path));
    if (rc < 0)
        return rc;
    static char log[H_LOG_MAX];
    int64_t deadline = h_now_ms() + H_START_TIMEOUT_MS * h_time_factor();
    do {
        bool exited = try_reap(srv);
        h_log(srv, log, sizeof(log));
        if (parse_listening(log, &srv->port, &srv->family))
            return 0;
        if (exited) {
            if (srv->exit_code == 1 && strstr(log, "io_uring unavailable"))
                return -ENOTSUP;
            return -ECHILD;
        }
        h_sleep_ms(POLL_STEP_MS);
    } while (h_now_ms() < deadline);
    h_stop(srv, SIGKILL, 2000);
    return -ETIMEDOUT;
}

const char *h_log_tail(const struct h_server *srv)
{
    static char log[H_LOG_MAX];
    size_t n = h_log(srv, log, sizeof(log));
    return n > 1500 ? log + n - 1500 : log;
}

void h_start_ok(struct h_server *srv, const struct h_opts *opts)
{
    int rc = h_start(srv, opts);
    ck_assert_msg(rc == 0, "server (%s) did not start: %s (exit %d); log:\n%s", h_backend(),
                  strerror(-rc), srv->exit_code, h_log_tail(srv));
}

int h_stop(struct h_server *srv, int sig, int timeout_ms)
{
    if (try_reap(srv))
        return srv->exit_code;
    kill(srv->pid, sig);
    return h_wait_exit(srv, timeout_ms);
}

int h_wait_exit(struct h_server *srv, int timeout_ms)
{
    int64_t deadline = h_now_ms() + (int64_t)timeout_ms * h_time_factor();
    while (h_now_ms() < deadline) {
        if (try_reap(srv))
            return srv->exit_code;
        h_sleep_ms(POLL_STEP_MS);
    }
    kill(srv->pid, SIGKILL);
    int status;
    waitpid(srv->pid, &status, 0);
    srv->reaped = true;
    srv->exit_code = status_code(status);
    return -ETIMEDOUT;
}

void h_stop_ok(struct h_server *srv)
{
    int rc = h_stop(srv, SIGTERM, H_STOP_TIMEOUT_MS);
    ck_assert_msg(rc == 0, "server did not exit 0 on SIGTERM: %d%s; log:\n%s", rc,
                  rc == -ETIMEDOUT ? " (timed out, killed)" : "", h_log_tail(srv));
    unlink(srv->log_path);
}

int h_run_args(const char *const *args, int timeout_ms, char *out, size_t out_bytes)
{
    const char *argv[ARGV_MAX];
    int argc = 0;
    if (add_wrapper(argv, &argc, ARGV_MAX) < 0)
        return -E2BIG;
    argv[argc++] = bin_path();
    for (int i = 0; args[i]; i++) {
        if (argc >= ARGV_MAX - 1)
            return -E2BIG;
        argv[argc++] = args[i];
    }
    argv[argc] = NULL;
    struct h_server run = {0};
    int rc = spawn(argv, 0, 0, NULL, NULL, 0, &run.pid, run.log_path, sizeof(run.log_path));
    if (rc < 0)
        return rc;
    int64_t deadline = h_now_ms() + (int64_t)timeout_ms * h_time_factor();
    while (!try_reap(&run) && h_now_ms() < deadline)
        h_sleep_ms(POLL_STEP_MS);
    if (run.reaped) {
        rc = run.exit_code;
    } else {
        h_stop(&run, SIGKILL, 2000);
        rc = -ETIMEDOUT;
    }
    read_file(run.log_path, out, out_bytes);
    unlink(run.log_path);
    return rc;
}

void h_skip_if_unavailable(void)
{
    struct h_server srv;
    int rc = h_start(&srv, NULL);
    if (rc == -ENOTSUP) {
        static char log[H_LOG_MAX];
        h_log(&srv, log, sizeof(log));
        fprintf(stderr, "SKIP: backend %s unavailable on this machine: %s", h_backend(), log);
        unlink(srv.log_path);
        exit(H_SKIP);
    }
    if (rc < 0) {
        fprintf(stderr, "server (%s) does not start: %s (exit %d); log:\n%s\n", h_backend(),
                strerror(-rc), srv.exit_code, h_log_tail(&srv));
        unlink(srv.log_path);
        exit(1);
    }
    h_stop(&srv, SIGTERM, H_STOP_TIMEOUT_MS);
    unlink(srv.log_path);
}

int h_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

void h_add_case(Suite *s, const char *name, const TTest *test, double timeout_s)
{
    TCase *tc = tcase_create(name);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}

/* ---- counters ---- */

/* Count stats lines and copy out the last one. */
static int last_stats_line(const char *log, char *line, size_t bytes)
{
    int count = 0;
    const char *last = NULL;
    /* The process total ("stats conns_open="), not a per-worker line ("stats worker=W ..."). */
    for (const char *p = log; (p = strstr(p, "stats conns_open=")) != NULL; p++) {
        count++;
        last = p;
    }
    if (last && line) {
        const char *start = last;
        while (start > log && start[-1] != '\n')
            start--;
        const char *end = strchr(last, '\n');
        size_t n = end ? (size_t)(end - start) : strlen(start);
        if (n >= bytes)
            n = bytes - 1;
        memcpy(line, start, n);
        line[n] = '\0';
    }
    return count;
}

int h_stats(struct h_server *srv, char *line, size_t bytes)
{
    static char log[H_LOG_MAX];
    h_log(srv, log, sizeof(log));
    int before = last_stats_line(log, NULL, 0);
    if (!h_alive(srv))
        return -ESRCH;
    kill(srv->pid, SIGUSR1);
    int64_t deadline = h_now_ms() + 3000 * h_time_factor();
    while (h_now_ms() < deadline) {
        h_sleep_ms(POLL_STEP_MS);
        h_log(srv, log, sizeof(log));
        /* The whole line must be there: it ends with a newline. */
        if (last_stats_line(log, line, bytes) > before && log[strlen(log) - 1] == '\n')
            return 0;
    }
    return -ETIMEDOUT;
}

int64_t h_stat_get(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=", key);
    const char *p = strstr(line, pat);
    if (!p)
        return -1;
    return strtoll(p + strlen(pat), NULL, 10);
}

int64_t h_stat_ok(struct h_server *srv, const char *key)
{
    char line[4096];
    int rc = h_stats(srv, line, sizeof(line));
    ck_assert_msg(rc == 0, "no stats line after SIGUSR1: %s; log:\n%s", strerror(-rc),
                  h_log_tail(srv));
    int64_t v = h_stat_get(line, key);
    ck_assert_msg(v >= 0, "counter %s missing from: %s", key, line);
    return v;
}

int64_t h_wait_stat_eq(struct h_server *srv, const char *key, int64_t want, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        int64_t v = h_stat_ok(srv, key);
        if (v == want || h_now_ms() >= deadline)
            return v;
        h_sleep_ms(50);
    }
}

/* ---- /proc ---- */

bool h_rss_meaningful(void)
{
    return h_time_factor() == 1;
}

long h_rss_kib(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    if (read_file(path, buf, sizeof(buf)) == 0)
        return -ESRCH;
    const char *p = strstr(buf, "VmRSS:");
    return p ? strtol(p + strlen("VmRSS:"), NULL, 10) : -ENOENT;
}

long h_cpu_ms(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_file(path, buf, sizeof(buf)) == 0)
        return -ESRCH;
    const char *p = strrchr(buf, ')');
    unsigned long utime, stime;
    /* Fields 3..15 after the command name: state ... utime stime. */
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) != 2)
        return -EINVAL;
    long hz = sysconf(_SC_CLK_TCK);
    return (long)((utime + stime) * 1000ul / (unsigned long)(hz > 0 ? hz : 100));
}

long h_cpu_ms_no_sqpoll(pid_t pid)
{
    long total = h_cpu_ms(pid);
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (total < 0 || !d) {
        if (d)
            closedir(d);
        return total < 0 ? total : -ESRCH;
    }
    long hz = sysconf(_SC_CLK_TCK);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        char path[600], buf[1024];
        snprintf(path, sizeof(path), "%s/%s/stat", dir, e->d_name);
        if (e->d_name[0] == '.' || read_file(path, buf, sizeof(buf)) == 0)
            continue;
        const char *name = strchr(buf, '('), *p = strrchr(buf, ')');
        unsigned long utime, stime;
        if (!name || !p || strncmp(name + 1, "iou-sqp-", 8) != 0 ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime) !=
                2)
            continue;
        total -= (long)((utime + stime) * 1000ul / (unsigned long)(hz > 0 ? hz : 100));
    }
    closedir(d);
    return total;
}

/* ---- clients ---- */

int h_connect_addr(int family, const char *host, int port, int timeout_ms)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return -EINVAL;
        len = sizeof(*a);
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINPROGRESS) {
            err = -errno;
            goto out_close;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, timeout_ms);
        if (n <= 0) {
            err = n == 0 ? -ETIMEDOUT : -errno;
            goto out_close;
        }
        socklen_t el = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0) {
            err = -(err ? err : errno);
            goto out_close;
        }
    }
    /* Back to blocking mode; every helper passes MSG_DONTWAIT and polls with a deadline. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
out_close:
    close(fd);
    return err;
}

int h_connect(const struct h_server *srv, int timeout_ms)
{
    return srv->family == AF_INET6 ? h_connect_addr(AF_INET6, "::1", srv->port, timeout_ms)
                                   : h_connect_addr(AF_INET, "127.0.0.1", srv->port, timeout_ms);
}

int h_connect_ok(const struct h_server *srv)
{
    int fd = h_connect(srv, 3000);
    ck_assert_msg(fd >= 0, "connect to port %d: %s", srv->port, strerror(-fd));
    return fd;
}

static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms_left(deadline_ms));
        if (n > 0)
            return 0;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

int h_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const uint8_t *p = buf;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLOUT, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int recv_until(int fd, uint8_t *p, size_t len, int64_t deadline)
{
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return -ENODATA;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int h_recv_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    return recv_until(fd, buf, len, h_now_ms() + timeout_ms);
}

int h_exchange(int fd, const void *out, size_t out_len, void *in, size_t in_len, int timeout_ms)
{
    const uint8_t *o = out;
    uint8_t *i = in;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (out_len > 0 || in_len > 0) {
        struct pollfd p = {.fd = fd, .events = (short)((out_len ? POLLOUT : 0) | POLLIN)};
        int n = poll(&p, 1, ms_left(deadline));
        if (n == 0)
            return -ETIMEDOUT;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (out_len && (p.revents & (POLLOUT | POLLERR))) {
            ssize_t s = send(fd, o, out_len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (s < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            if (s > 0) {
                o += s;
                out_len -= (size_t)s;
            }
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t sink[4096];
            uint8_t *dst = in_len ? i : sink;
            size_t cap = in_len ? in_len : sizeof(sink);
            ssize_t r = recv(fd, dst, cap, MSG_DONTWAIT);
            if (r == 0)
                return -ENODATA;
            if (r < 0 && errno != EAGAIN && errno != EINTR)
                return -errno;
            if (r > 0 && !in_len)
                return -EPROTO; /* more than expected came back */
            if (r > 0) {
                i += r;
                in_len -= (size_t)r;
            }
        }
    }
    return 0;
}

void h_put_header(uint8_t *dst, uint32_t payload_len)
{
    dst[0] = (uint8_t)(payload_len >> 24);
    dst[1] = (uint8_t)(payload_len >> 16);
    dst[2] = (uint8_t)(payload_len >> 8);
    dst[3] = (uint8_t)payload_len;
}

uint32_t h_get_header(const uint8_t *src)
{
    return (uint32_t)src[0] << 24 | (uint32_t)src[1] << 16 | (uint32_t)src[2] << 8 | src[3];
}

size_t h_build_frame(uint8_t *dst, const void *payload, uint32_t payload_len)
{
    h_put_header(dst, payload_len);
    if (payload_len)
        memcpy(dst + H_FRAME_HDR, payload, payload_len);
    return H_FRAME_HDR + (size_t)payload_len;
}

int h_send_frame(int fd, const void *payload, uint32_t payload_len, int timeout_ms)
{
    uint8_t hdr[H_FRAME_HDR];
    h_put_header(hdr, payload_len);
    int64_t deadline = h_now_ms() + timeout_ms;
    int rc = h_send_all(fd, hdr, sizeof(hdr), timeout_ms);
    if (rc == 0 && payload_len)
        rc = h_send_all(fd, payload, payload_len, ms_left(deadline));
    return rc;
}

int h_recv_frame(int fd, void *buf, size_t cap, uint32_t *payload_len, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    uint8_t hdr[H_FRAME_HDR];
    int rc = recv_until(fd, hdr, sizeof(hdr), deadline);
    if (rc < 0)
        return rc;
    *payload_len = h_get_header(hdr);
    if (*payload_len > cap)
        return -EMSGSIZE;
    return recv_until(fd, buf, *payload_len, deadline);
}

void h_echo_ok(int fd, const void *payload, uint32_t payload_len, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    int rc = h_send_frame(fd, payload, payload_len, timeout_ms);
    ck_assert_msg(rc == 0, "sending a %u-byte frame: %s", payload_len, strerror(-rc));
    uint8_t *reply = malloc(payload_len ? payload_len : 1);
    ck_assert_ptr_nonnull(reply);
    uint32_t got = 0;
    rc = h_recv_frame(fd, reply, payload_len, &got, ms_left(deadline));
    ck_assert_msg(rc == 0, "echo of a %u-byte frame: %s (header said %u)", payload_len,
                  strerror(-rc), got);
    ck_assert_uint_eq(got, payload_len);
    ck_assert_msg(payload_len == 0 || memcmp(reply, payload, payload_len) == 0,
                  "echo of a %u-byte frame differs", payload_len);
    free(reply);
}

void h_fill(void *buf, size_t len, uint32_t seed)
{
    uint8_t *p = buf;
    uint32_t x = seed * 2654435761u ^ 0x9e3779b9u;
    if (x == 0)
        x = 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 24);
    }
}

int h_expect_close(int fd, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        uint8_t b[256];
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n > 0)
            return -EPROTO;
        if (errno == ECONNRESET)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc < 0)
            return rc;
    }
}

void h_close_rst(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

size_t h_push_until_paused(int fd, uint32_t frame_bytes, size_t limit, int quiet_ms,
                           void (*fill)(uint8_t *frame, uint32_t k))
{
    ck_assert(frame_bytes > H_FRAME_HDR);
    uint8_t *frame = malloc(frame_bytes);
    ck_assert_ptr_nonnull(frame);
    uint32_t k = 0;
    if (fill) {
        fill(frame, k);
    } else {
        h_put_header(frame, frame_bytes - H_FRAME_HDR);
        h_fill(frame + H_FRAME_HDR, frame_bytes - H_FRAME_HDR, 99);
    }
    size_t sent = 0;
    bool paused = false;
    int64_t give_up = h_now_ms() + 20000;
    while (sent < limit && h_now_ms() < give_up) {
        size_t off = sent % frame_bytes;
        ssize_t n = send(fd, frame + off, frame_bytes - off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            sent += (size_t)n;
            if (fill && sent % frame_bytes == 0)
                fill(frame, ++k);
            continue;
        }
        ck_assert_msg(n < 0 && errno == EAGAIN, "send: %s", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, quiet_ms) == 0) {
            paused = true; /* the server has stopped taking our bytes */
            break;
        }
    }
    free(frame);
    ck_assert_msg(paused, "the server never stopped reading from a non-reader (%zu bytes taken)",
                  sent);
    return sent;
}

int h_workers(void)
{
    const char *t = getenv("RW_THREADS");
    if (t && *t)
        return atoi(t) > 0 ? atoi(t) : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set); /* the server's default (--threads) */
    return 1;
}

int h_json_worker_counters(const char *path, const char *key, int64_t *out, int max)
{
    static char text[1 << 16];
    char needle[64];
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    snprintf(needle, sizeof(needle), "\"%s\": ", key);
    const char *p = strstr(text, "\"workers\"");
    int count = 0;
    while (p && count < max && (p = strstr(p, needle)) != NULL) {
        p += strlen(needle);
        out[count++] = strtoll(p, NULL, 10);
    }
    return count;
}
