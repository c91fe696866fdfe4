/*
 * The Prometheus endpoint (see metrics.h). One blocking thread, one request
 * at a time: a scrape every few seconds needs no more, and a slow or silent
 * client is cut off after METRICS_IO_TIMEOUT_MS so the next scrape is served.
 * The body is built with open_memstream on this thread (never on the data
 * path); its size grows with the number of workers only.
 */
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include "rw_assert.h"
#include "listener.h"
#include "log.h"
#include "rw_limits.h"

#define METRICS_BACKLOG       16
#define METRICS_REQUEST_MAX   8192u /* request line and headers; more is a 431 */
#define METRICS_IO_TIMEOUT_MS 2000  /* per request: reading it, and writing the answer */

struct rw_metrics {
    pthread_t thread;
    int listen_fd;
    int stop_fd; /* eventfd: rw__metrics_stop wakes the thread's poll */
    struct rw_metrics_source src;
};

/* Gauges among the counters (set, not added; stats.h); everything else only grows. */
static bool is_gauge(enum rw_stat k)
{
    return k == RW_STAT_OUT_BLOCKS_LIVE || k == RW_STAT_OUT_BLOCKS_CACHED || k == RW_STAT_MEM_BYTES;
}

/* CPU time is counted in µs; Prometheus wants base units: seconds. */
static bool is_micros(enum rw_stat k)
{
    return k == RW_STAT_CPU_US || k == RW_STAT_CPU_USER_US || k == RW_STAT_CPU_SYS_US;
}

static const char *help_text(enum rw_stat k)
{
    switch (k) {
    case RW_STAT_ACCEPTED:
        return "Connections accepted.";
    case RW_STAT_CLOSED:
        return "Connections closed, for any reason.";
    case RW_STAT_REJECTED_LIMIT:
        return "Connections closed at once: --max-conns reached.";
    case RW_STAT_REAPED_IDLE:
        return "Connections closed by --idle-timeout.";
    case RW_STAT_REAPED_FRAME_TIMEOUT:
        return "Connections closed by --frame-timeout.";
    case RW_STAT_REAPED_TCP_TIMEOUT:
        return "Connections the kernel dropped (TCP_USER_TIMEOUT, keepalive).";
    case RW_STAT_CLOSED_PROTOCOL:
        return "Connections closed for a protocol error (a frame over --max-frame).";
    case RW_STAT_CLOSED_ERROR:
        return "Connections closed on a socket error (reset, broken pipe).";
    case RW_STAT_REAPED_DEAD:
        return "Connections the kernel had closed without a completion saying so (sweep).";
    case RW_STAT_CLOSED_MEMORY:
        return "Connections closed because --max-memory was reached.";
    case RW_STAT_CLOSED_PROXY:
        return "Connections closed for a missing, bad or late PROXY protocol header.";
    case RW_STAT_FRAMES_IN:
        return "Frames received.";
    case RW_STAT_FRAMES_OUT:
        return "Frames sent.";
    case RW_STAT_BYTES_IN:
        return "Bytes received.";
    case RW_STAT_BYTES_OUT:
        return "Bytes sent.";
    case RW_STAT_BACKPRESSURE_PAUSES:
        return "Reads paused: a connection's replies reached --write-buffer.";
    case RW_STAT_MEMORY_PAUSES:
        return "Reads paused: --max-memory reached.";
    case RW_STAT_ACCEPT_BACKOFFS:
        return "Accept pauses for lack of descriptors (EMFILE, ENFILE).";
    case RW_STAT_LOOP_TURNS:
        return "Event loop turns.";
    case RW_STAT_WAIT_CALLS:
        return "epoll_wait or io_uring_enter calls that waited.";
    case RW_STAT_SUBMITS:
        return "io_uring_enter calls.";
    case RW_STAT_CQES:
        return "io_uring completions reaped.";
    case RW_STAT_RECV_CALLS:
        return "recv system calls (epoll backend).";
    case RW_STAT_SEND_CALLS:
        return "send system calls or send submissions.";
    case RW_STAT_EARLY_FLUSHES:
        return "Loop turns that flushed replies before the turn ended.";
    case RW_STAT_REARM_RECV_NOBUFS:
        return "Multishot recv re-arms after ENOBUFS.";
    case RW_STAT_REARM_RECV_OTHER:
        return "Multishot recv re-arms for other causes.";
    case RW_STAT_REARM_ACCEPT:
        return "Multishot accept re-arms.";
    case RW_STAT_CANCELS:
        return "io_uring cancels of a connection's operations (closes with one in flight, "
               "recvs ended for a pause or a bundle switch).";
    case RW_STAT_SQ_FULL:
        return "Times the submission queue was full and submitted early.";
    case RW_STAT_OUT_BLOCKS_LIVE:
        return "Output-queue blocks holding replies now.";
    case RW_STAT_OUT_BLOCKS_CACHED:
        return "Free output-queue blocks kept for reuse.";
    case RW_STAT_MEM_BYTES:
        return "Bytes of reassembly and output buffers in use (--max-memory).";
    case RW_STAT_MEM_TRIMS:
        return "Times freed memory was given back to the kernel.";
    case RW_STAT_ZC_REPLIES:
        return "Replies sent from the receive buffer they came in (uring zc-replies).";
    case RW_STAT_ZC_COPIED_LOW:
        return "Replies copied instead of lent: the buffer ring was running low.";
    case RW_STAT_RECV_BUNDLES:
        return "Receive completions that carried more than one buffer (uring bundles).";
    case RW_STAT_RECV_BUNDLE_BUFS:
        return "Buffers carried by those completions (uring bundles).";
    case RW_STAT_RECV_BUNDLE_SWITCHES:
        return "Connections whose receive became a bundle when one filled a whole buffer (uring "
               "bundles).";
    case RW_STAT_FIXED_FILES:
        return "Connections whose socket went into the ring's fixed-file table (uring "
               "fixed-files).";
    case RW_STAT_SEND_ZC_CALLS:
        return "Zero-copy sends submitted (uring send-zc).";
    case RW_STAT_SEND_ZC_COPIED:
        return "Zero-copy sends the kernel copied after all (loopback always does).";
    case RW_STAT_LAZY_WAITS:
        return "Waits that slept past send completions to reap them with the next event (uring "
               "lazy-reap).";
    case RW_STAT_CPU_US:
        return "CPU time of the worker threads (user and system).";
    case RW_STAT_CPU_USER_US:
        return "User CPU time of the worker threads.";
    case RW_STAT_CPU_SYS_US:
        return "System CPU time of the worker threads.";
    case RW_STAT_COUNT:
        break;
    }
    return "A ringwire counter (README: Counters).";
}

/* "ringwire_[worker_]NAME[_seconds][_total]" for counter k. */
static void family_name(enum rw_stat k, bool worker, char *buf, size_t bytes)
{
    const char *name = rw__stat_names[k];
    size_t len = strlen(name);
    if (is_micros(k) && len > 3)
        len -= 3; /* "cpu_us" -> "cpu" + "_seconds" */
    snprintf(buf, bytes, "ringwire_%s%.*s%s%s", worker ? "worker_" : "", (int)len, name,
             is_micros(k) ? "_seconds" : "", is_gauge(k) ? "" : "_total");
}

static void write_value(const struct rw_stats *s, enum rw_stat k, FILE *out)
{
    uint64_t v = rw__stat_get(s, k);
    if (is_micros(k))
        fprintf(out, " %" PRIu64 ".%06" PRIu64 "\n", v / 1000000u, v % 1000000u);
    else
        fprintf(out, " %" PRIu64 "\n", v);
}

static uint64_t conns_open(const struct rw_stats *s)
{
    uint64_t accepted = rw__stat_get(s, RW_STAT_ACCEPTED);
    uint64_t closed = rw__stat_get(s, RW_STAT_CLOSED);
    return accepted > closed ? accepted - closed : 0;
}

static void write_family(enum rw_stat k, bool worker, const struct rw_stats *total,
                         unsigned workers, struct rw_stats *const *per, FILE *out)
{
    char name[96];
    family_name(k, worker, name, sizeof(name));
    fprintf(out, "# HELP %s %s%s\n# TYPE %s %s\n", name, help_text(k),
            worker ? " Per worker thread." : "", name, is_gauge(k) ? "gauge" : "counter");
    if (!worker) {
        fprintf(out, "%s", name);
        write_value(total, k, out);
        return;
    }
    for (unsigned i = 0; i < workers; i++) {
        fprintf(out, "%s{worker=\"%u\"}", name, i);
        write_value(per[i], k, out);
    }
}

int rw__metrics_format(const struct rw_stats_meta *meta, const struct rw_stats *total,
                       unsigned workers, struct rw_stats *const *per, FILE *out)
{
    RW_ASSERT(meta != NULL);
    RW_ASSERT(total != NULL);
    RW_ASSERT(workers == 0 || per != NULL);
    /* Label values are ours (RW_VERSION, a backend name): no quotes or backslashes to escape. */
    fprintf(out,
            "# HELP ringwire_info The server's version, the I/O backend serving and the "
            "optional io_uring features active (--uring-features; empty on epoll).\n"
            "# TYPE ringwire_info gauge\n"
            "ringwire_info{version=\"%s\",backend=\"%s\",uring_features=\"%s\"} 1\n"
            "# HELP ringwire_uptime_seconds Seconds since the server started.\n"
            "# TYPE ringwire_uptime_seconds gauge\n"
            "ringwire_uptime_seconds %.3f\n"
            "# HELP ringwire_workers Worker threads (--threads).\n"
            "# TYPE ringwire_workers gauge\n"
            "ringwire_workers %u\n"
            "# HELP ringwire_conns_open Connections open now.\n"
            "# TYPE ringwire_conns_open gauge\n"
            "ringwire_conns_open %" PRIu64 "\n",
            meta->version, meta->backend, rw__stats_uring_features, rw__stats_uptime_s(meta),
            workers, conns_open(total));
    for (unsigned k = 0; k < RW_STAT_COUNT; k++)
        write_family((enum rw_stat)k, false, total, workers, per, out);
    fprintf(out, "# HELP ringwire_worker_conns_open Connections open now. Per worker thread.\n"
                 "# TYPE ringwire_worker_conns_open gauge\n");
    for (unsigned i = 0; i < workers; i++)
        fprintf(out, "ringwire_worker_conns_open{worker=\"%u\"} %" PRIu64 "\n", i,
                conns_open(per[i]));
    for (unsigned k = 0; k < RW_STAT_COUNT; k++)
        write_family((enum rw_stat)k, true, total, workers, per, out);
    return ferror(out) ? -EIO : 0;
}

/* ---- HTTP: just enough of RFC 9112 for a scraper and curl ---- */

/* Read until the blank line that ends the headers. Returns bytes, or -errno / -EMSGSIZE. */
static int read_request(int fd, char *buf, size_t cap)
{
    size_t used = 0;
    int64_t give_up = (int64_t)(rw__stats_mono_ns() / 1000000u) + METRICS_IO_TIMEOUT_MS;
    while (used < cap - 1) {
        int left = (int)(give_up - (int64_t)(rw__stats_mono_ns() / 1000000u));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) == 0)
            return -ETIMEDOUT;
        ssize_t n = recv(fd, buf + used, cap - 1 - used, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ECONNRESET;
        used += (size_t)n;
        buf[used] = '\0';
        /* HTTP/1.0 clients may end lines with a bare LF; accept both. */
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n"))
            return (int)used;
    }
    return -EMSGSIZE;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* the scraper left or stalled past SO_SNDTIMEO: nothing to do */
        p += n;
        len -= (size_t)n;
    }
}

static void send_response(int fd, const char *status, const char *extra, const char *body,
                          size_t body_len, bool head)
{
    char hdr[256];
    int n = snprintf(hdr, sizeof(hdr),
                     "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                     "Connection: close\r\n\r\n",
                     status,
                     body_len && strncmp(status, "200", 3) == 0
                         ? "text/plain; version=0.0.4; charset=utf-8"
                         : "text/plain; charset=utf-8",
                     body_len, extra);
    send_all(fd, hdr, (size_t)n);
    if (!head)
        send_all(fd, body, body_len);
}

static void answer_metrics(struct rw_metrics *m, int fd, bool head)
{
    struct rw_stats total;
    struct rw_stats *per[RW_THREADS_MAX];
    unsigned workers = m->src.collect(m->src.ctx, &total, per);
    RW_ASSERT(workers <= RW_THREADS_MAX);
    char *body = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&body, &len);
    int rc = f ? rw__metrics_format(m->src.meta, &total, workers, per, f) : -ENOMEM;
    if (f && fclose(f) != 0)
        rc = -ENOMEM;
    if (rc == 0)
        send_response(fd, "200 OK", "", body, len, head);
    else
        send_response(fd, "500 Internal Server Error", "", "out of memory\n", 14, head);
    free(body);
}

static void serve_one(struct rw_metrics *m, int fd)
{
    static const char not_found[] = "not found: the metrics are at /metrics\n";
    static const char not_allowed[] = "only GET and HEAD\n";
    static const char bad[] = "bad request\n";
    char req[METRICS_REQUEST_MAX];
    int n = read_request(fd, req, sizeof(req));
    if (n == -EMSGSIZE) {
        send_response(fd, "431 Request Header Fields Too Large", "", bad, sizeof(bad) - 1, false);
        return;
    }
    if (n < 0)
        return; /* gone or silent: nobody to answer */
    char method[8], target[256], version[16];
    if (sscanf(req, "%7s %255s %15s", method, target, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0) {
        send_response(fd, "400 Bad Request", "", bad, sizeof(bad) - 1, false);
        return;
    }
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        send_response(fd, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", not_allowed,
                      sizeof(not_allowed) - 1, false);
        return;
    }
    size_t path_len = strcspn(target, "?");
    if (path_len != strlen("/metrics") || strncmp(target, "/metrics", path_len) != 0) {
        send_response(fd, "404 Not Found", "", not_found, sizeof(not_found) - 1, head);
        return;
    }
    answer_metrics(m, fd, head);
}

static void *metrics_main(void *arg)
{
    struct rw_metrics *m = arg;
    for (;;) {
        struct pollfd p[2] = {{.fd = m->listen_fd, .events = POLLIN},
                              {.fd = m->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            RW_WARN("metrics: poll: %s; metrics stop", strerror(errno));
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue; /* EAGAIN (another wakeup took it), ECONNABORTED, EMFILE: try later */
        struct timeval tv = {.tv_sec = METRICS_IO_TIMEOUT_MS / 1000,
                             .tv_usec = (METRICS_IO_TIMEOUT_MS % 1000) * 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        serve_one(m, fd);
        close(fd);
    }
}

int rw__metrics_start(struct rw_metrics **out, const struct sockaddr *addr, socklen_t addr_len,
                      const struct rw_metrics_source *src)
{
    RW_ASSERT(out != NULL);
    RW_ASSERT(src != NULL && src->collect != NULL && src->meta != NULL);
    char what[128];
    struct rw_metrics *m = calloc(1, sizeof(*m));
    if (!m) {
        RW_ERROR("metrics: %s", strerror(ENOMEM));
        return -ENOMEM;
    }
    m->src = *src;
    m->stop_fd = -1;
    /* [::] is IPv6 only, as for --listen without --ipv6-dual-stack. */
    m->listen_fd =
        rw__listener_open(addr, addr_len, METRICS_BACKLOG, false, true, what, sizeof(what));
    int rc = m->listen_fd;
    if (rc < 0) {
        RW_ERROR("metrics: %s: %s", what, strerror(-rc));
        goto err_free;
    }
    m->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (m->stop_fd < 0) {
        rc = -errno;
        RW_ERROR("metrics: eventfd: %s", strerror(-rc));
        goto err_listen;
    }
    struct sockaddr_storage bound;
    socklen_t bound_len;
    char text[80] = "?";
    if (rw__listener_bound(m->listen_fd, &bound, &bound_len) == 0)
        rw__format_addr((const struct sockaddr *)&bound, text, sizeof(text));
    rc = -pthread_create(&m->thread, NULL, metrics_main, m);
    if (rc < 0) {
        RW_ERROR("metrics: pthread_create: %s", strerror(-rc));
        goto err_event;
    }
    RW_INFO("metrics: serving http://%s/metrics", text);
    *out = m;
    return 0;

err_event:
    close(m->stop_fd);
err_listen:
    close(m->listen_fd);
err_free:
    free(m);
    return rc;
}

void rw__metrics_stop(struct rw_metrics *m)
{
    if (!m)
        return;
    uint64_t one = 1;
    (void)!write(m->stop_fd, &one, sizeof(one));
    pthread_join(m->thread, NULL);
    close(m->stop_fd);
    close(m->listen_fd);
    free(m);
}
