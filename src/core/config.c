/*
 * Command-line parsing (see config.h): a table of options, each with a parser
 * that writes one field. Errors name the option first and say why.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rw_limits.h"

static int parse_u64(const char *text, const char **end, uint64_t *out)
{
    if (*text < '0' || *text > '9')
        return -EINVAL;
    errno = 0;
    char *stop;
    unsigned long long v = strtoull(text, &stop, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *end = stop;
    *out = v;
    return 0;
}

static int scale(uint64_t value, uint64_t factor, uint64_t *out)
{
    if (factor && value > UINT64_MAX / factor)
        return -ERANGE;
    *out = value * factor;
    return 0;
}

int rw__parse_size(const char *text, uint64_t *out_bytes)
{
    const char *end;
    uint64_t v;
    int rc = parse_u64(text, &end, &v);
    if (rc < 0)
        return rc;
    uint64_t factor = 1;
    switch (*end) {
    case '\0':
        break;
    case 'K': case 'k': factor = 1ull << 10; end++; break;
    case 'M': case 'm': factor = 1ull << 20; end++; break;
    case 'G': case 'g': factor = 1ull << 30; end++; break;
    default:
        return -EINVAL;
    }
    if (*end != '\0')
        return -EINVAL;
    return scale(v, factor, out_bytes);
}

int rw__parse_duration_ms(const char *text, uint64_t *out_ms)
{
    const char *end;
    uint64_t v;
    int rc = parse_u64(text, &end, &v);
    if (rc < 0)
        return rc;
    uint64_t factor;
    if (strcmp(end, "ms") == 0)
        factor = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        factor = 1000;
    else if (strcmp(end, "m") == 0)
        factor = 60000;
    else
        return -EINVAL;
    return scale(v, factor, out_ms);
}

int rw__parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    const char *host_start = text;
    size_t host_len;
    bool v6 = text[0] == '[';
    if (v6) {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return -EINVAL;
        host_start = text + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon)
            return -EINVAL;
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof(host))
        return -EINVAL;
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    const char *end;
    uint64_t port;
    if (parse_u64(colon + 1, &end, &port) < 0 || *end != '\0' || port > 65535)
        return -EINVAL;
    memset(addr, 0, sizeof(*addr));
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
            return -EINVAL;
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *addr_len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return -EINVAL;
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *addr_len = sizeof(*a4);
    }
    return 0;
}

void rw__config_defaults(struct rw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->action = RW_ACTION_RUN;
    cfg->backend = RW_BACKEND_AUTO;
    snprintf(cfg->listen_text, sizeof(cfg->listen_text), "127.0.0.1:7000");
    (void)rw__parse_listen(cfg->listen_text, &cfg->listen_addr, &cfg->listen_addr_len);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->threads = cpus < 1 ? 1 : (cpus > (long)RW_THREADS_MAX ? RW_THREADS_MAX : (uint32_t)cpus);
    cfg->idle_timeout_ms = 60000;
    cfg->frame_timeout_ms = 30000;
    cfg->max_frame_bytes = 1u << 20;
    cfg->max_conns = 10000;
    cfg->backlog = 4096;
    cfg->write_buffer_bytes = 4u << 20;
    cfg->drain_timeout_ms = 10000;
    cfg->stats_interval_ms = 0;
    cfg->stats_json_path = NULL;
    cfg->log_level = RW_LOG_INFO;
    cfg->buf_count = RW_URING_BUF_COUNT_DEFAULT;
    cfg->buf_size_bytes = RW_URING_BUF_SIZE_DEFAULT;
}

struct option_ctx {
    const char *name;
    const char *value;
    char *err;
    size_t err_bytes;
};

__attribute__((format(printf, 2, 3))) static int fail(struct option_ctx *o, const char *fmt, ...)
{
    int used = snprintf(o->err, o->err_bytes, "%s: ", o->name);
    va_list ap;
    va_start(ap, fmt);
    if (used >= 0 && (size_t)used < o->err_bytes)
        vsnprintf(o->err + used, o->err_bytes - (size_t)used, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A whole number in [min, max]. */
static int opt_number(struct option_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *end;
    if (parse_u64(o->value, &end, out) < 0 || *end != '\0')
        return fail(o, "invalid number '%s'", o->value);
    if (*out < min || *out > max)
        return fail(o, "%s is out of range (%llu to %llu)", o->value, (unsigned long long)min,
                    (unsigned long long)max);
    return 0;
}

static int opt_size(struct option_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    int rc = rw__parse_size(o->value, out);
    if (rc == -ERANGE)
        return fail(o, "size '%s' is too large", o->value);
    if (rc < 0)
        return fail(o, "invalid size '%s' (bytes, or with K, M, G)", o->value);
    if (*out < min || *out > max)
        return fail(o, "%s is out of range (%llu to %llu bytes)", o->value,
                    (unsigned long long)min, (unsigned long long)max);
    return 0;
}

static int opt_duration(struct option_ctx *o, uint64_t *out)
{
    int rc = rw__parse_duration_ms(o->value, out);
    if (rc == -ERANGE)
        return fail(o, "duration '%s' is too large", o->value);
    if (rc < 0)
        return fail(o, "invalid duration '%s' (e.g. 250ms, 10s, 2m; a bare number is seconds)",
                    o->value);
    if (*out > (uint64_t)INT32_MAX * 1000u)
        return fail(o, "duration '%s' is too large", o->value);
    return 0;
}

static int set_option(struct rw_config *cfg, struct option_ctx *o)
{
    const char *n = o->name;
    const char *v = o->value;
    uint64_t x;
    int rc = 0;
    if (strcmp(n, "--backend") == 0) {
        if (strcmp(v, "uring") == 0)
            cfg->backend = RW_BACKEND_URING;
        else if (strcmp(v, "epoll") == 0)
            cfg->backend = RW_BACKEND_EPOLL;
        else if (strcmp(v, "auto") == 0)
            cfg->backend = RW_BACKEND_AUTO;
        else
            return fail(o, "must be uring, epoll or auto, not '%s'", v);
    } else if (strcmp(n, "--listen") == 0) {
        if (strlen(v) >= sizeof(cfg->listen_text) ||
            rw__parse_listen(v, &cfg->listen_addr, &cfg->listen_addr_len) < 0)
            return fail(o, "invalid address '%s' (HOST:PORT with a numeric host, IPv6 as "
                           "[::1]:7000, port 0-65535)", v);
        snprintf(cfg->listen_text, sizeof(cfg->listen_text), "%s", v);
    } else if (strcmp(n, "--threads") == 0) {
        if ((rc = opt_number(o, 1, RW_THREADS_MAX, &x)) == 0)
            cfg->threads = (uint32_t)x;
    } else if (strcmp(n, "--idle-timeout") == 0) {
        rc = opt_duration(o, &cfg->idle_timeout_ms);
    } else if (strcmp(n, "--frame-timeout") == 0) {
        rc = opt_duration(o, &cfg->frame_timeout_ms);
    } else if (strcmp(n, "--drain-timeout") == 0) {
        rc = opt_duration(o, &cfg->drain_timeout_ms);
    } else if (strcmp(n, "--stats-interval") == 0) {
        rc = opt_duration(o, &cfg->stats_interval_ms);
    } else if (strcmp(n, "--max-frame") == 0) {
        if ((rc = opt_size(o, 0, RW_FRAME_MAX_BYTES_CEILING, &x)) == 0)
            cfg->max_frame_bytes = (uint32_t)x;
    } else if (strcmp(n, "--max-conns") == 0) {
        if ((rc = opt_number(o, 1, RW_CONNS_MAX, &x)) == 0)
            cfg->max_conns = (uint32_t)x;
    } else if (strcmp(n, "--backlog") == 0) {
        if ((rc = opt_number(o, 1, INT_MAX, &x)) == 0)
            cfg->backlog = (uint32_t)x;
    } else if (strcmp(n, "--write-buffer") == 0) {
        rc = opt_size(o, 1, 1ull << 30, &cfg->write_buffer_bytes);
    } else if (strcmp(n, "--stats-json") == 0) {
        if (*v == '\0')
            return fail(o, "needs a file name");
        cfg->stats_json_path = v;
    } else if (strcmp(n, "--log-level") == 0) {
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        for (x = 0; x < 4 && strcmp(v, levels[x]) != 0; x++)
            ;
        if (x == 4)
            return fail(o, "must be error, warn, info or debug, not '%s'", v);
        cfg->log_level = (enum rw_log_level)x;
    } else if (strcmp(n, "--buf-count") == 0) {
        if ((rc = opt_number(o, 1, RW_URING_BUF_COUNT_MAX, &x)) == 0) {
            if (x & (x - 1))
                return fail(o, "%s is not a power of two", v);
            cfg->buf_count = (uint32_t)x;
        }
    } else if (strcmp(n, "--buf-size") == 0) {
        if ((rc = opt_size(o, 64, RW_URING_BUF_SIZE_MAX, &x)) == 0)
            cfg->buf_size_bytes = (uint32_t)x;
    } else {
        return fail(o, "unknown option");
    }
    return rc;
}

static bool takes_value(const char *name)
{
    static const char *const valued[] = {
        "--backend",      "--listen",    "--threads",       "--idle-timeout", "--frame-timeout",
        "--max-frame",    "--max-conns", "--backlog",       "--write-buffer", "--drain-timeout",
        "--stats-interval", "--stats-json", "--log-level",  "--buf-count",    "--buf-size",
    };
    for (size_t i = 0; i < sizeof(valued) / sizeof(valued[0]); i++)
        if (strcmp(name, valued[i]) == 0)
            return true;
    return false;
}

int rw__config_parse(struct rw_config *cfg, int argc, char *const argv[], char *err,
                     size_t err_bytes)
{
    rw__config_defaults(cfg);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            cfg->action = RW_ACTION_HELP;
            return 0;
        }
        if (strcmp(arg, "-V") == 0 || strcmp(arg, "--version") == 0) {
            cfg->action = RW_ACTION_VERSION;
            continue;
        }
        if (strcmp(arg, "--probe") == 0) {
            cfg->action = RW_ACTION_PROBE;
            continue;
        }
        if (strcmp(arg, "--cpu-affinity") == 0) {
            cfg->cpu_affinity = true;
            continue;
        }
        char name[64];
        const char *eq = strchr(arg, '=');
        size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (strncmp(arg, "--", 2) != 0 || name_len >= sizeof(name)) {
            snprintf(err, err_bytes, "%s: unexpected argument%s", arg,
                     arg[0] == '-' ? " (unknown option)" : "");
            return -EINVAL;
        }
        memcpy(name, arg, name_len);
        name[name_len] = '\0';
        if (!takes_value(name)) {
            snprintf(err, err_bytes, "%s: unknown option", name);
            return -EINVAL;
        }
        struct option_ctx o = {.name = name, .err = err, .err_bytes = err_bytes};
        if (eq) {
            o.value = eq + 1;
        } else if (i + 1 < argc) {
            o.value = argv[++i];
        } else {
            snprintf(err, err_bytes, "%s: missing value", name);
            return -EINVAL;
        }
        if (set_option(cfg, &o) < 0)
            return -EINVAL;
    }
    return 0;
}

void rw__config_usage(FILE *out)
{
    fputs("Usage: ringwire [OPTIONS]\n"
          "A length-prefixed echo server on io_uring or epoll. Frames: 4-byte big-endian\n"
          "payload length, then the payload; each frame is answered with an identical one.\n"
          "\n"
          "Options:\n"
          "  --backend uring|epoll|auto  I/O engine; auto picks uring when the kernel has every\n"
          "                              feature it needs, else epoll, and says why [auto]\n"
          "  --listen HOST:PORT          numeric address; IPv6 as [::1]:7000; 0.0.0.0 or [::]\n"
          "                              for all; port 0 picks a free port [127.0.0.1:7000]\n"
          "  --threads N                 worker threads, each with its own loop and\n"
          "                              SO_REUSEPORT listener [online CPUs]\n"
          "  --cpu-affinity              pin worker i to CPU i\n"
          "  --idle-timeout DUR          close connections that received and sent nothing for\n"
          "                              DUR; 0 disables [60s]\n"
          "  --frame-timeout DUR         a started frame must complete within DUR; 0 disables [30s]\n"
          "  --max-frame SIZE            largest payload accepted; larger closes the connection\n"
          "                              after answering the frames before it [1M]\n"
          "  --max-conns N               open connections at most (whole process); more are\n"
          "                              closed at once and counted [10000]\n"
          "  --backlog N                 listen backlog, clamped by net.core.somaxconn [4096]\n"
          "  --write-buffer SIZE         replies queued per connection before reading from it\n"
          "                              pauses, until it drains below half [4M]\n"
          "  --drain-timeout DUR         on SIGTERM/SIGINT, time to finish in-flight work [10s]\n"
          "  --stats-interval DUR        print a line of counters every DUR; 0 disables [0]\n"
          "  --stats-json FILE           also write all counters as JSON to FILE\n"
          "  --log-level LEVEL           error, warn, info or debug [info]\n"
          "  --buf-count N               uring: provided buffers per worker, power of two [1024]\n"
          "  --buf-size SIZE             uring: bytes per provided buffer [16K]\n"
          "  --probe                     print the kernel's io_uring features and exit\n"
          "  -h, --help                  this text\n"
          "  -V, --version               version and the backends compiled in\n"
          "\n"
          "SIZE: bytes, or with K, M, G (powers of 1024). DUR: with ms, s or m; a bare\n"
          "number is seconds. Options take '--opt value' or '--opt=value'.\n"
          "\n"
          "Signals: SIGTERM/SIGINT stop accepting, answer every frame already received,\n"
          "flush and exit 0 (forced after --drain-timeout); SIGUSR1 prints the counters.\n"
          "Exit status: 0 clean shutdown, 1 runtime failure, 2 bad usage.\n",
          out);
}
