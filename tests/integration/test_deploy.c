/*
 * Integration tests of what an operator deploys with: the readiness protocol
 * of a systemd Type=notify service (READY=1 and STATUS= once the workers
 * accept, STOPPING=1 on SIGTERM) against a fake NOTIFY_SOCKET, a path and an
 * abstract one; --metrics (Prometheus text format, checked line by line by a
 * strict parser of the format below; values agree with the stats line; HTTP
 * 404/405/HEAD/HTTP/1.0; a silent scraper neither blocks the next one nor the
 * data path); --stats-json's version, backend, uptime and timestamp; and log
 * lines for journals (--log-format journal, JOURNAL_STREAM detection,
 * --log-timestamps).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "harness.h"

/* ---- a fake service manager: the AF_UNIX datagram socket of NOTIFY_SOCKET ---- */

struct notify_sock {
    int fd;
    char env[160]; /* "NOTIFY_SOCKET=..." */
    char path[108];
};

static void notify_open(struct notify_sock *n, bool abstract)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
        snprintf(n->path, sizeof(n->path), "@rw-notify-%d-%lld", (int)getpid(),
                 (long long)h_now_ms());
        memcpy(sa.sun_path, n->path, strlen(n->path));
        sa.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(n->path));
    } else {
        snprintf(n->path, sizeof(n->path), "/tmp/rw-notify-%d-%lld", (int)getpid(),
                 (long long)h_now_ms());
        unlink(n->path);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", n->path);
        len = sizeof(sa);
    }
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(n->fd, 0);
    ck_assert_msg(bind(n->fd, (struct sockaddr *)&sa, len) == 0, "bind %s: %s", n->path,
                  strerror(errno));
    snprintf(n->env, sizeof(n->env), "NOTIFY_SOCKET=%s", n->path);
}

static void notify_close(struct notify_sock *n)
{
    close(n->fd);
    if (n->path[0] == '/')
        unlink(n->path);
}

/* One datagram within timeout_ms into buf (NUL-terminated); its length, or -ETIMEDOUT. */
static int notify_recv(struct notify_sock *n, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {.fd = n->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms * h_time_factor()) != 1)
        return -ETIMEDOUT;
    ssize_t got = recv(n->fd, buf, cap - 1, 0);
    if (got < 0)
        return -errno;
    buf[got] = '\0';
    return (int)got;
}

static void check_notify_protocol(bool abstract)
{
    struct notify_sock n;
    notify_open(&n, abstract);
    const char *env[] = {n.env, NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.env = env});
    char msg[2048];
    int len = notify_recv(&n, msg, sizeof(msg), 5000);
    ck_assert_msg(len > 0, "no datagram on %s: %s; log:\n%s", n.path, strerror(-len),
                  h_log_tail(&srv));
    ck_assert_msg(strncmp(msg, "READY=1\n", 8) == 0, "first message is not READY=1: '%s'", msg);
    char want[128];
    snprintf(want, sizeof(want), "STATUS=listening on 127.0.0.1:%d backend=%s", srv.port,
             h_backend());
    ck_assert_msg(strstr(msg, want) != NULL, "no '%s' in '%s'", want, msg);
    /* Ready means serving, on every worker: a few connections land on each with 2. */
    for (int i = 0; i < 4; i++) {
        int fd = h_connect_ok(&srv);
        uint8_t payload[16];
        h_fill(payload, sizeof(payload), (uint32_t)i);
        h_echo_ok(fd, payload, sizeof(payload), 3000);
        close(fd);
    }
    ck_assert_int_eq(notify_recv(&n, msg, sizeof(msg), 200), -ETIMEDOUT);
    ck_assert_int_eq(kill(srv.pid, SIGTERM), 0);
    len = notify_recv(&n, msg, sizeof(msg), 5000);
    ck_assert_msg(len > 0 && strncmp(msg, "STOPPING=1\n", 11) == 0,
                  "no STOPPING=1 after SIGTERM: '%s' (%d)", len > 0 ? msg : "", len);
    ck_assert_int_eq(h_wait_exit(&srv, H_STOP_TIMEOUT_MS), 0);
    notify_close(&n);
    unlink(srv.log_path);
}

START_TEST(test_deploy_notify_ready_status_stopping)
{
    check_notify_protocol(false);
}
END_TEST

START_TEST(test_deploy_notify_abstract_socket)
{
    check_notify_protocol(true);
}
END_TEST

/* A NOTIFY_SOCKET nobody listens on: the server still serves, and says why systemd would wait. */
START_TEST(test_deploy_notify_socket_missing_warns)
{
    const char *env[] = {"NOTIFY_SOCKET=/nonexistent/rw-notify", NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.env = env});
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "x", 1, 3000);
    close(fd);
    char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, "sd_notify READY=1 to $NOTIFY_SOCKET: No such file or directory"),
                  "no warning: %s", log);
    h_stop_ok(&srv);
}
END_TEST

/* ---- a strict checker of the Prometheus text exposition format 0.0.4 ---- */

struct prom_family {
    char name[128];
    char type[16];
    bool help, samples_done;
};

struct prom_check {
    struct prom_family fam[256];
    int fam_count;
    int samples;
    int last_fam; /* family of the previous sample: samples of a family are contiguous */
    char series[4096][160];
    int series_count;
    char err[512];
};

static bool metric_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static bool label_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return !(n >= 2 && s[0] == '_' && s[1] == '_'); /* reserved */
}

static struct prom_family *family(struct prom_check *c, const char *name, size_t n, bool add)
{
    for (int i = 0; i < c->fam_count; i++)
        if (strlen(c->fam[i].name) == n && memcmp(c->fam[i].name, name, n) == 0)
            return &c->fam[i];
    if (!add || c->fam_count == 256 || n >= sizeof(c->fam[0].name))
        return NULL;
    struct prom_family *f = &c->fam[c->fam_count++];
    memset(f, 0, sizeof(*f));
    memcpy(f->name, name, n);
    return f;
}

static bool prom_fail(struct prom_check *c, int line_no, const char *line, const char *why)
{
    snprintf(c->err, sizeof(c->err), "line %d: %s: '%.200s'", line_no, why, line);
    return false;
}

/* "# HELP name text" / "# TYPE name type"; other comments are allowed and ignored. */
static bool prom_comment(struct prom_check *c, int no, const char *line)
{
    bool help = strncmp(line, "# HELP ", 7) == 0, type = strncmp(line, "# TYPE ", 7) == 0;
    if (!help && !type)
        return true;
    const char *name = line + 7;
    size_t n = strcspn(name, " ");
    if (!metric_name_ok(name, n))
        return prom_fail(c, no, line, "bad metric name in HELP/TYPE");
    struct prom_family *f = family(c, name, n, true);
    if (!f)
        return prom_fail(c, no, line, "too many families");
    if (f->samples_done || (c->last_fam >= 0 && &c->fam[c->last_fam] == f))
        return prom_fail(c, no, line, "HELP/TYPE after the family's samples");
    const char *rest = name[n] == ' ' ? name + n + 1 : name + n;
    if (help) {
        if (f->help)
            return prom_fail(c, no, line, "second HELP");
        f->help = true;
        return true;
    }
    if (f->type[0])
        return prom_fail(c, no, line, "second TYPE");
    static const char *const types[] = {"counter", "gauge", "histogram", "summary", "untyped"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(rest, types[i]) == 0)
            snprintf(f->type, sizeof(f->type), "%s", rest);
    if (!f->type[0])
        return prom_fail(c, no, line, "unknown TYPE");
    if (strcmp(f->type, "counter") == 0 && (n < 6 || memcmp(name + n - 6, "_total", 6) != 0))
        return prom_fail(c, no, line, "counter not named *_total");
    return true;
}

/* A Go ParseFloat-style value: a finite decimal, or +Inf, -Inf, NaN. */
static bool value_ok(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (strcmp(buf, "+Inf") == 0 || strcmp(buf, "-Inf") == 0 || strcmp(buf, "NaN") == 0) {
        *out = strcmp(buf, "-Inf") == 0 ? -INFINITY : INFINITY;
        return true;
    }
    for (size_t i = 0; i < n; i++)
        if (!strchr("0123456789+-.eE", buf[i]))
            return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0';
}

/* name{label="value",...} value [timestamp] */
static bool prom_sample(struct prom_check *c, int no, const char *line)
{
    size_t n = strcspn(line, "{ ");
    if (!metric_name_ok(line, n))
        return prom_fail(c, no, line, "bad metric name");
    struct prom_family *f = family(c, line, n, false);
    if (!f || !f->type[0])
        return prom_fail(c, no, line, "sample without a TYPE for its family");
    if (f->samples_done)
        return prom_fail(c, no, line, "family's samples not contiguous");
    int idx = (int)(f - c->fam);
    if (c->last_fam >= 0 && c->last_fam != idx)
        c->fam[c->last_fam].samples_done = true;
    c->last_fam = idx;
    const char *p = line + n;
    if (*p == '{') {
        p++;
        while (*p != '}') {
            size_t ln = strcspn(p, "=");
            if (!label_name_ok(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
                return prom_fail(c, no, line, "bad label");
            p += ln + 2;
            while (*p != '"') {
                if (*p == '\0' || *p == '\n')
                    return prom_fail(c, no, line, "unterminated label value");
                if (*p == '\\') {
                    if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                        return prom_fail(c, no, line, "bad escape in label value");
                    p++;
                }
                p++;
            }
            p++;
            if (*p == ',')
                p++;
            else if (*p != '}')
                return prom_fail(c, no, line, "expected ',' or '}' after a label");
        }
        p++;
    }
    if (*p != ' ')
        return prom_fail(c, no, line, "no space before the value");
    p++;
    size_t vn = strcspn(p, " ");
    double v;
    if (!value_ok(p, vn, &v))
        return prom_fail(c, no, line, "bad value");
    if (strcmp(f->type, "counter") == 0 && !(v >= 0))
        return prom_fail(c, no, line, "negative counter");
    if (p[vn] == ' ') {
        const char *ts = p + vn + 1;
        if (!*ts || strspn(ts + (*ts == '-'), "0123456789") != strlen(ts + (*ts == '-')))
            return prom_fail(c, no, line, "bad timestamp");
    }
    /* The series (name and labels) must be unique. */
    size_t sn = (size_t)(p - 1 - line);
    if (sn >= sizeof(c->series[0]) || c->series_count == 4096)
        return prom_fail(c, no, line, "series too long or too many");
    for (int i = 0; i < c->series_count; i++)
        if (strlen(c->series[i]) == sn && memcmp(c->series[i], line, sn) == 0)
            return prom_fail(c, no, line, "duplicate series");
    memcpy(c->series[c->series_count], line, sn);
    c->series[c->series_count++][sn] = '\0';
    c->samples++;
    return true;
}

/* Check a whole exposition; false with c->err saying where and why. */
static bool prom_check_text(struct prom_check *c, const char *text)
{
    memset(c, 0, sizeof(*c));
    c->last_fam = -1;
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n')
        return prom_fail(c, 0, "", "empty, or the last line has no newline");
    int no = 0;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        char line[1024];
        size_t n = (size_t)(nl - p);
        no++;
        if (n >= sizeof(line))
            return prom_fail(c, no, "", "line too long");
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        if (strchr(line, '\r'))
            return prom_fail(c, no, line, "carriage return");
        if (n == 0)
            continue; /* empty lines are ignored by the format */
        if (line[0] == '#' ? !prom_comment(c, no, line) : !prom_sample(c, no, line))
            return false;
    }
    if (c->samples == 0)
        return prom_fail(c, no, "", "no samples");
    return true;
}

/* The value of the one sample named exactly `series` ("name" or "name{labels}"), NAN if none. */
static double prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return NAN;
}

/* The checker itself must catch what it promises to catch. */
START_TEST(test_deploy_prom_checker_rejects_bad_text)
{
    static struct prom_check c;
    const char *good = "# HELP a_total A.\n# TYPE a_total counter\na_total{w=\"0\"} 1\n"
                       "a_total{w=\"1\"} 2.5e3\n# TYPE g gauge\ng -1\ng{x=\"a\\\"b\"} NaN\n";
    ck_assert_msg(prom_check_text(&c, good), "good text rejected: %s", c.err);
    const char *bad[] = {
        "a 1\n",                                                    /* no TYPE */
        "# TYPE a counter\na 1\n",                                  /* counter without _total */
        "# TYPE a_total counter\na_total -1\n",                     /* negative counter */
        "# TYPE g gauge\ng one\n",                                  /* not a float */
        "# TYPE g gauge\ng{1x=\"a\"} 1\n",                          /* bad label name */
        "# TYPE g gauge\ng{x=\"a} 1\n",                             /* unterminated */
        "# TYPE g gauge\ng 1\ng 2\n",                               /* duplicate series */
        "# TYPE g gauge\n# TYPE h gauge\ng 1\nh 1\ng{a=\"b\"} 1\n", /* not contiguous */
        "# TYPE g gauge\ng 1",                                      /* no final newline */
        "# TYPE g gauge\n# TYPE g gauge\ng 1\n",                    /* second TYPE */
        "# TYPE 9g gauge\n9g 1\n",                                  /* bad name */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(!prom_check_text(&c, bad[i]), "bad text %zu accepted: %s", i, bad[i]);
}
END_TEST

/* ---- --metrics ---- */

static int metrics_port(const struct h_server *srv)
{
    char log[H_LOG_MAX];
    h_log(srv, log, sizeof(log));
    const char *p = strstr(log, "metrics: serving http://127.0.0.1:");
    return p ? atoi(p + strlen("metrics: serving http://127.0.0.1:")) : -1;
}

/* Send request to the metrics port, read the response to EOF into buf; its length or -errno. */
static int http_exchange(int port, const char *request, char *buf, size_t cap)
{
    int fd = h_connect_addr(AF_INET, "127.0.0.1", port, 3000);
    if (fd < 0)
        return fd;
    int rc = h_send_all(fd, request, strlen(request), 3000);
    size_t used = 0;
    int64_t deadline = h_now_ms() + 10000 * h_time_factor();
    while (rc == 0 && used < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1) {
            rc = -ETIMEDOUT;
            break;
        }
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = -errno;
        if (n <= 0)
            break;
        used += (size_t)n;
    }
    close(fd);
    buf[used] = '\0';
    return rc < 0 ? rc : (int)used;
}

static const char *http_body(const char *resp)
{
    const char *p = strstr(resp, "\r\n\r\n");
    return p ? p + 4 : NULL;
}

static void start_with_metrics(struct h_server *srv, int *port)
{
    const char *args[] = {"--metrics", "127.0.0.1:0", NULL};
    h_start_ok(srv, &(struct h_opts){.args = args});
    *port = metrics_port(srv);
    ck_assert_msg(*port > 0, "no metrics line: %s", h_log_tail(srv));
}

START_TEST(test_deploy_metrics_valid_and_counting)
{
    struct h_server srv;
    int port;
    start_with_metrics(&srv, &port);
    int fd = h_connect_ok(&srv);
    uint8_t payload[100];
    h_fill(payload, sizeof(payload), 5);
    for (int i = 0; i < 3; i++)
        h_echo_ok(fd, payload, sizeof(payload), 3000);
    static char resp[1 << 20];
    static struct prom_check c;
    const char *body = NULL;
    /* Counters are stored as the loop turn ends: poll until the scrape shows the three frames. */
    int64_t deadline = h_now_ms() + 5000;
    do {
        int n = http_exchange(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", resp, sizeof(resp));
        ck_assert_msg(n > 0, "scrape: %s", strerror(-n));
        ck_assert_msg(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0, "status: %.80s", resp);
        body = http_body(resp);
        ck_assert_ptr_nonnull(body);
        if (prom_value(body, "ringwire_frames_in_total") == 3)
            break;
        h_sleep_ms(50);
    } while (h_now_ms() < deadline);
    ck_assert_msg(strstr(resp, "\r\nContent-Type: text/plain; version=0.0.4"), "type: %s", resp);
    char want[64];
    snprintf(want, sizeof(want), "\r\nContent-Length: %zu\r\n", strlen(body));
    ck_assert_msg(strstr(resp, want) != NULL, "no '%s' in the headers", want + 2);
    ck_assert_msg(prom_check_text(&c, body), "not the exposition format: %s", c.err);

    char info[128];
    ck_assert_msg(strstr(body, "ringwire_info{version=\""), "no info: %.400s", body);
    snprintf(info, sizeof(info), ",backend=\"%s\",uring_features=\"", h_backend());
    ck_assert_msg(strstr(body, info), "no %s in the info series", info);
    /* The io_uring features active: none on epoll; on uring what the stats line says. */
    if (strcmp(h_backend(), "epoll") == 0) {
        ck_assert_msg(strstr(body, ",uring_features=\"\"} 1\n"), "epoll with uring features");
    } else {
        char line[4096], want_features[160];
        ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
        const char *f = strstr(line, " uring_features=");
        ck_assert_msg(f != NULL, "no uring_features in the stats line: %s", line);
        f += strlen(" uring_features=");
        snprintf(want_features, sizeof(want_features), ",uring_features=\"%.*s\"} 1\n",
                 (int)strcspn(f, " \n"), f);
        ck_assert_msg(strstr(body, want_features), "no %s in the info series", want_features);
    }
    ck_assert_double_eq(prom_value(body, "ringwire_frames_in_total"), 3);
    ck_assert_double_eq(prom_value(body, "ringwire_frames_out_total"), 3);
    ck_assert_double_eq(prom_value(body, "ringwire_bytes_in_total"), 3 * 104);
    ck_assert_double_eq(prom_value(body, "ringwire_conns_open"), 1);
    ck_assert_msg(prom_value(body, "ringwire_uptime_seconds") > 0, "uptime");
    ck_assert_msg(prom_value(body, "ringwire_cpu_seconds_total") > 0, "cpu");
    /* Per worker: one series each, summing to the total. */
    const char *threads = getenv("RW_THREADS");
    int workers = threads && *threads ? atoi(threads) : 0;
    ck_assert_double_eq(prom_value(body, "ringwire_workers"), workers ? workers : 1);
    double sum = 0;
    for (int w = 0;; w++) {
        char series[96];
        snprintf(series, sizeof(series), "ringwire_worker_frames_in_total{worker=\"%d\"}", w);
        double v = prom_value(body, series);
        if (isnan(v)) {
            if (workers)
                ck_assert_int_eq(w, workers);
            break;
        }
        sum += v;
    }
    ck_assert_double_eq(sum, 3);
    /* The stats line says the same. */
    ck_assert_int_eq(h_stat_ok(&srv, "frames_in"), 3);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_deploy_metrics_http_edges)
{
    struct h_server srv;
    int port;
    start_with_metrics(&srv, &port);
    static char resp[1 << 20];
    ck_assert_int_gt(http_exchange(port, "GET / HTTP/1.1\r\n\r\n", resp, sizeof(resp)), 0);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 404 ", 13) == 0, "/: %.80s", resp);
    ck_assert_int_gt(http_exchange(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                                   resp, sizeof(resp)),
                     0);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 405 ", 13) == 0, "POST: %.80s", resp);
    ck_assert_int_gt(http_exchange(port, "garbage\r\n\r\n", resp, sizeof(resp)), 0);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 400 ", 13) == 0, "garbage: %.80s", resp);
    /* HTTP/1.0 with bare newlines and a query string: still the metrics. */
    ck_assert_int_gt(http_exchange(port, "GET /metrics?x=1 HTTP/1.0\n\n", resp, sizeof(resp)), 0);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "1.0: %.80s", resp);
    /* HEAD: the headers only. */
    ck_assert_int_gt(http_exchange(port, "HEAD /metrics HTTP/1.1\r\n\r\n", resp, sizeof(resp)), 0);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "HEAD: %.80s", resp);
    ck_assert_str_eq(http_body(resp), "");

    /* A scraper that connects and says nothing: the data path does not notice, and the next
     * scrape is answered once the silent one is cut off (2 s). */
    int silent = h_connect_addr(AF_INET, "127.0.0.1", port, 3000);
    ck_assert_int_ge(silent, 0);
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "during a stuck scrape", 21, 1000);
    int64_t t0 = h_now_ms();
    int n = http_exchange(port, "GET /metrics HTTP/1.1\r\n\r\n", resp, sizeof(resp));
    ck_assert_msg(n > 0 && strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "after a silent client: %d", n);
    ck_assert_msg(h_now_ms() - t0 < 8000 * h_time_factor(), "took %lld ms",
                  (long long)(h_now_ms() - t0));
    ck_assert_int_eq(h_expect_close(silent, 5000), 0);
    close(silent);
    close(fd);
    h_stop_ok(&srv);
}
END_TEST

START_TEST(test_deploy_metrics_bad_address_and_port_in_use)
{
    char out[4096];
    const char *args[] = {"--metrics", "localhost", NULL};
    ck_assert_int_eq(h_run_args(args, 5000, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, "--metrics: bad address 'localhost'"), "message: %s", out);

    int busy = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(bind(busy, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(busy, 1), 0);
    ck_assert_int_eq(getsockname(busy, (struct sockaddr *)&sa, &len), 0);
    char addr[64], want[128];
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", ntohs(sa.sin_port));
    const char *margs[] = {"--metrics", addr, NULL};
    struct h_server srv;
    ck_assert_int_eq(h_start(&srv, &(struct h_opts){.args = margs}), -ECHILD);
    ck_assert_int_eq(srv.exit_code, 1);
    snprintf(want, sizeof(want), "metrics: bind %s: Address already in use", addr);
    char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_msg(strstr(log, want), "no '%s': %s", want, log);
    unlink(srv.log_path);
    close(busy);
}
END_TEST

/* ---- --stats-json ---- */

START_TEST(test_deploy_stats_json_has_version_backend_uptime_time)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/rw-deploy-%d.json", (int)getpid());
    const char *args[] = {"--stats-json", path, NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    h_sleep_ms(20);
    char line[4096];
    ck_assert_int_eq(h_stats(&srv, line, sizeof(line)), 0);
    char json[1 << 16];
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(json, 1, sizeof(json) - 1, f);
    json[n] = '\0';
    fclose(f);
    char version[32], backend[16], stamp[40];
    double uptime;
    long long unix_ms;
    int got = sscanf(json,
                     "{\"version\": \"%31[^\"]\", \"backend\": \"%15[^\"]\", \"uptime_s\": %lf, "
                     "\"timestamp\": \"%39[^\"]\", \"timestamp_unix_ms\": %lld, \"total\": {",
                     version, backend, &uptime, stamp, &unix_ms);
    ck_assert_msg(got == 5, "top of the JSON (%d fields): %.300s", got, json);
    ck_assert_str_eq(backend, h_backend());
    ck_assert_msg(isdigit((unsigned char)version[0]) && strchr(version, '.'), "version %s",
                  version);
    ck_assert_msg(uptime > 0 && uptime < 300, "uptime %f", uptime);
    /* 2026-11-23T14:05:09.042Z, and the same instant as the unix time. */
    int Y, M, D, h, m, s, ms;
    char z;
    ck_assert_msg(sscanf(stamp, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c", &Y, &M, &D, &h, &m, &s, &ms, &z) ==
                          8 &&
                      z == 'Z' && strlen(stamp) == 24,
                  "timestamp '%s'", stamp);
    ck_assert_int_eq(ms, (int)(unix_ms % 1000));
    ck_assert_msg(llabs(unix_ms / 1000 - (long long)time(NULL)) < 60, "unix time %lld", unix_ms);
    ck_assert_msg(strstr(json, "\"workers\": [{\"conns_open\": "), "workers: %.300s", json);
    h_stop_ok(&srv);
    unlink(path);
}
END_TEST

/* ---- logs for journals ---- */

static bool is_timestamp(const char *p)
{
    /* 2026-11-23T14:05:09.042+01:00 */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.ddd+dd:dd";
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        char want = shape[i];
        if (want == 'd'   ? !isdigit((unsigned char)p[i])
            : want == '+' ? (p[i] != '+' && p[i] != '-')
                          : p[i] != want)
            return false;
    }
    return p[sizeof(shape) - 1] == ' ';
}

/*
 * Every line of log: with prio, "<P>" first, P matching its level; with stamp, an RFC 3339
 * time next; then "ringwire". Returns the number of lines; fails the test on any other line.
 */
static int check_lines(const char *log, bool prio, bool stamp)
{
    int lines = 0;
    for (const char *p = log; *p; lines++) {
        const char *nl = strchr(p, '\n');
        ck_assert_msg(nl != NULL, "unterminated line: %s", p);
        const char *q = p;
        if (prio) {
            ck_assert_msg(q[0] == '<' && strchr("3467", q[1]) && q[2] == '>', "no priority: %.*s",
                          (int)(nl - p), p);
            const char *level = strstr(q, q[1] == '3'   ? "] error: "
                                          : q[1] == '4' ? "] warn: "
                                          : q[1] == '6' ? "] info: "
                                                        : "] debug: ");
            const char *level_main = strstr(q, q[1] == '3'   ? "ringwire error: "
                                               : q[1] == '4' ? "ringwire warn: "
                                               : q[1] == '6' ? "ringwire info: "
                                                             : "ringwire debug: ");
            ck_assert_msg((level && level < nl) || (level_main && level_main < nl),
                          "priority does not match the level: %.*s", (int)(nl - p), p);
            q += 3;
        } else {
            ck_assert_msg(q[0] != '<', "a priority prefix in plain format: %.*s", (int)(nl - p), p);
        }
        if (stamp) {
            ck_assert_msg(is_timestamp(q), "no timestamp: %.*s", (int)(nl - p), p);
            q += strlen("2026-11-23T14:05:09.042+01:00 ");
        }
        ck_assert_msg(strncmp(q, "ringwire", 8) == 0, "line: %.*s", (int)(nl - p), p);
        p = nl + 1;
    }
    return lines;
}

static long somaxconn(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "r");
    long v = 0;
    if (!f || fscanf(f, "%ld", &v) != 1)
        v = 0;
    if (f)
        fclose(f);
    return v;
}

START_TEST(test_deploy_log_journal_priorities)
{
    /* A backlog above somaxconn gives a warn line next to the info lines. */
    char backlog[32];
    snprintf(backlog, sizeof(backlog), "%ld", somaxconn() + 1);
    const char *args[] = {"--log-format", "journal", "--backlog", backlog,
                          "--log-level",  "debug",   NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    h_echo_ok(fd, "x", 1, 3000);
    close(fd);
    ck_assert_int_ge(h_stop(&srv, SIGTERM, H_STOP_TIMEOUT_MS), 0);
    char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_int_ge(check_lines(log, true, false), 3);
    ck_assert_msg(strstr(log, "<6>ringwire info: listening on "), "info: %s", log);
    ck_assert_msg(strstr(log, "<4>ringwire warn: --backlog "), "warn: %s", log);
    ck_assert_msg(strstr(log, "<7>ringwire"), "debug: %s", log);
    unlink(srv.log_path);
}
END_TEST

START_TEST(test_deploy_log_timestamps)
{
    const char *args[] = {"--log-timestamps", NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    ck_assert_int_eq(h_stop(&srv, SIGTERM, H_STOP_TIMEOUT_MS), 0);
    char log[H_LOG_MAX];
    h_log(&srv, log, sizeof(log));
    ck_assert_int_ge(check_lines(log, false, true), 3);
    unlink(srv.log_path);
    /* Both: the priority first (journald strips exactly that), then the time. */
    const char *both[] = {"--log-timestamps", "--log-format", "journal", NULL};
    h_start_ok(&srv, &(struct h_opts){.args = both});
    ck_assert_int_eq(h_stop(&srv, SIGTERM, H_STOP_TIMEOUT_MS), 0);
    h_log(&srv, log, sizeof(log));
    ck_assert_int_ge(check_lines(log, true, true), 3);
    unlink(srv.log_path);
}
END_TEST

/*
 * Run the server with stderr on a file of our own and JOURNAL_STREAM naming that file (as
 * systemd names the journal's stream) or, with match false, another inode; extra: one more
 * option or NULL. Returns the whole log after a SIGTERM.
 */
static void run_with_journal_stream(bool match, const char *extra, char *log, size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/rw-journal-%d-XXXXXX", (int)getpid());
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    struct stat st;
    ck_assert_int_eq(fstat(fd, &st), 0);
    char env[96];
    snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (match ? 0 : 1));
    const char *bin = getenv("RW_BIN") ? getenv("RW_BIN") : "build/ringwire";
    const char *threads = getenv("RW_THREADS") ? getenv("RW_THREADS") : "1";
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        setenv("JOURNAL_STREAM", env, 1);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execl(bin, bin, "--backend", h_backend(), "--threads", threads, "--listen", "127.0.0.1:0",
              extra, (char *)NULL);
        _exit(127);
    }
    int64_t deadline = h_now_ms() + H_START_TIMEOUT_MS;
    for (;;) {
        ssize_t n = pread(fd, log, cap - 1, 0);
        log[n > 0 ? n : 0] = '\0';
        if (strstr(log, "listening on ") && strchr(strstr(log, "listening on "), '\n'))
            break;
        ck_assert_msg(h_now_ms() < deadline, "did not start: %s", log);
        h_sleep_ms(10);
    }
    kill(pid, SIGTERM);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    ssize_t n = pread(fd, log, cap - 1, 0);
    log[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

START_TEST(test_deploy_log_journal_stream_detected)
{
    char log[H_LOG_MAX];
    run_with_journal_stream(true, NULL, log, sizeof(log));
    ck_assert_int_ge(check_lines(log, true, false), 3);
    /* Inherited from a parent whose stderr was the journal, but ours is not: plain. */
    run_with_journal_stream(false, NULL, log, sizeof(log));
    ck_assert_int_ge(check_lines(log, false, false), 3);
    /* Asked for plain: plain, journal or not. */
    run_with_journal_stream(true, "--log-format=plain", log, sizeof(log));
    ck_assert_int_ge(check_lines(log, false, false), 3);
}
END_TEST

START_TEST(test_deploy_log_format_bad_value)
{
    char out[4096];
    const char *args[] = {"--log-format", "json", NULL};
    ck_assert_int_eq(h_run_args(args, 5000, out, sizeof(out)), 2);
    ck_assert_msg(strstr(out, "--log-format: must be auto, plain or journal, not 'json'"), "%s",
                  out);
}
END_TEST

/* A connection-level line names the peer: the client's own address and port. */
START_TEST(test_deploy_log_conn_lines_name_peer)
{
    const char *args[] = {"--log-level", "debug", "--max-frame", "16", NULL};
    struct h_server srv;
    h_start_ok(&srv, &(struct h_opts){.args = args});
    int fd = h_connect_ok(&srv);
    struct sockaddr_in me;
    socklen_t len = sizeof(me);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    uint8_t hdr[H_FRAME_HDR];
    h_put_header(hdr, 17);
    ck_assert_int_eq(h_send_all(fd, hdr, sizeof(hdr), 3000), 0);
    ck_assert_int_eq(h_expect_close(fd, 5000), 0);
    close(fd);
    char want[64], log[H_LOG_MAX];
    snprintf(want, sizeof(want), " (127.0.0.1:%u): protocol error", ntohs(me.sin_port));
    int64_t deadline = h_now_ms() + 3000;
    do
        h_log(&srv, log, sizeof(log));
    while (!strstr(log, want) && h_now_ms() < deadline && (h_sleep_ms(20), true));
    ck_assert_msg(strstr(log, want), "no '%s': %s", want, h_log_tail(&srv));
    h_stop_ok(&srv);
}
END_TEST

int main(void)
{
    h_init(600);
    h_skip_if_unavailable();
    Suite *s = suite_create("deploy");
    h_add_case(s, "notify_ready_status_stopping", test_deploy_notify_ready_status_stopping, 60);
    h_add_case(s, "notify_abstract_socket", test_deploy_notify_abstract_socket, 60);
    h_add_case(s, "notify_socket_missing_warns", test_deploy_notify_socket_missing_warns, 60);
    h_add_case(s, "prom_checker_rejects_bad_text", test_deploy_prom_checker_rejects_bad_text, 30);
    h_add_case(s, "metrics_valid_and_counting", test_deploy_metrics_valid_and_counting, 60);
    h_add_case(s, "metrics_http_edges", test_deploy_metrics_http_edges, 60);
    h_add_case(s, "metrics_bad_address_and_port_in_use",
               test_deploy_metrics_bad_address_and_port_in_use, 60);
    h_add_case(s, "stats_json_has_version_backend_uptime_time",
               test_deploy_stats_json_has_version_backend_uptime_time, 60);
    h_add_case(s, "log_journal_priorities", test_deploy_log_journal_priorities, 60);
    h_add_case(s, "log_timestamps", test_deploy_log_timestamps, 60);
    h_add_case(s, "log_journal_stream_detected", test_deploy_log_journal_stream_detected, 60);
    h_add_case(s, "log_format_bad_value", test_deploy_log_format_bad_value, 30);
    h_add_case(s, "log_conn_lines_name_peer", test_deploy_log_conn_lines_name_peer, 60);
    return h_run_suite(s);
}
