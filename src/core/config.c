/*
 * Command-line parsing (see config.h): one table of options, each with a
 * setter that validates its value and writes one field of struct rw_config.
 * Nothing here prints or exits; every error names the option first and says
 * why, and main turns it into exit status 2. Value syntax (sizes, durations,
 * numeric listen addresses) is parsed by the rw__parse_* helpers, which the
 * unit tests exercise on their own. --listen names are resolved here, at
 * parse time (rw__resolve_listen), as nginx resolves its listen directive
 * when it reads its configuration: a name that does not resolve is a
 * configuration error (exit 2, the resolver's reason in the message), and
 * the server opens listeners for a fixed list of addresses.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "assert.h"
#include "backend/uring_features.h"
#include "conn.h"
#include "cpus.h"
#include "framing.h"
#include "rw_limits.h"

/*
 * Durations become deadlines as now_ms + timeout_ms (loop.c), so they need a
 * ceiling far below UINT64_MAX; 30 days is longer than any sane timeout.
 * (Belongs in rw_limits.h next to the other ceilings.)
 */
#define DURATION_MAX_MS (30ull * 24 * 60 * 60 * 1000)
/* --write-buffer ceiling: 1 GiB of queued replies per connection. */
#define WRITE_BUFFER_MAX_BYTES (1ull << 30)
/* --buf-size floor: smaller provided buffers would cost a CQE per few bytes. */
#define BUF_SIZE_MIN_BYTES 64u

/*
 * A whole decimal number: digits only (no sign, no spaces, no base prefix),
 * then *end points at the first non-digit, also on -ERANGE (strtoull consumes
 * the whole subject sequence), so callers can report junk before overflow.
 * strtoull alone would accept " 5", "+5" and "-5" (the last wrapping around),
 * hence the first-digit check.
 */
static int parse_u64(const char *text, const char **end, uint64_t *out)
{
    if (*text < '0' || *text > '9')
        return -EINVAL;
    errno = 0;
    char *stop;
    unsigned long long v = strtoull(text, &stop, 10);
    *end = stop;
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    return 0;
}

static int scale(uint64_t value, uint64_t factor, uint64_t *out)
{
    if (value > UINT64_MAX / factor)
        return -ERANGE;
    *out = value * factor;
    return 0;
}

int rw__parse_size(const char *text, uint64_t *out_bytes)
{
    RW_ASSERT(text != NULL);
    RW_ASSERT(out_bytes != NULL);
    const char *end;
    uint64_t v = 0;
    int rc = parse_u64(text, &end, &v);
    if (rc == -EINVAL)
        return rc;
    uint64_t factor = 1;
    switch (*end) {
    case '\0':
        break;
    case 'K':
    case 'k':
        factor = 1ull << 10;
        end++;
        break;
    case 'M':
    case 'm':
        factor = 1ull << 20;
        end++;
        break;
    case 'G':
    case 'g':
        factor = 1ull << 30;
        end++;
        break;
    default:
        return -EINVAL;
    }
    if (*end != '\0')
        return -EINVAL;
    if (rc < 0)
        return rc;
    return scale(v, factor, out_bytes);
}

int rw__parse_duration_ms(const char *text, uint64_t *out_ms)
{
    RW_ASSERT(text != NULL);
    RW_ASSERT(out_ms != NULL);
    const char *end;
    uint64_t v = 0;
    int rc = parse_u64(text, &end, &v);
    if (rc == -EINVAL)
        return rc;
    uint64_t factor;
    if (strcmp(end, "ms") == 0)
        factor = 1;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        factor = 1000;
    else if (strcmp(end, "m") == 0)
        factor = 60 * 1000;
    else
        return -EINVAL;
    if (rc < 0)
        return rc;
    return scale(v, factor, out_ms);
}

/* The port after the last ':' of HOST:PORT; 0 (ephemeral) through 65535. */
static int parse_port(const char *text, uint16_t *port, const char **why)
{
    const char *end;
    uint64_t v = 0;
    if (parse_u64(text, &end, &v) < 0 || *end != '\0' || v > 65535) {
        *why = "the port must be a number from 0 to 65535";
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

/* Split "[v6]:port" or "v4:port" into host (copied, NUL-terminated) and the port text. */
static int split_host_port(const char *text, char *host, size_t host_bytes, const char **port_text,
                           bool *v6, const char **why)
{
    const char *host_start = text;
    const char *colon;
    *v6 = text[0] == '[';
    if (*v6) {
        const char *close = strchr(text, ']');
        if (close == NULL) {
            *why = "no closing ']' after the IPv6 address";
            return -EINVAL;
        }
        if (close[1] != ':') {
            *why = "expected ':PORT' after ']'";
            return -EINVAL;
        }
        host_start = text + 1;
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL) {
            *why = "no port (expected HOST:PORT)";
            return -EINVAL;
        }
        if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
            *why = "IPv6 addresses go in brackets, e.g. [::1]:7000";
            return -EINVAL;
        }
    }
    size_t host_len = (size_t)(colon - host_start) - (*v6 ? 1u : 0u);
    if (host_len == 0) {
        *why = "no host (use 0.0.0.0 or [::] for all addresses)";
        return -EINVAL;
    }
    if (host_len >= host_bytes) {
        *why = *v6 ? "not a numeric IPv6 address" : "not a numeric IPv4 address";
        return -EINVAL;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    *port_text = colon + 1;
    return 0;
}

/*
 * The scope id after '%' in "[fe80::1%eth0]:7000": an interface name, or its
 * index as a number (what getaddrinfo accepts, RFC 4007). An unknown name is
 * an error naming it, written into why_buf.
 */
static int parse_scope_id(const char *zone, uint32_t *scope_id, const char **why, char *why_buf,
                          size_t why_bytes)
{
    if (*zone == '\0') {
        *why = "no interface after '%' (e.g. [fe80::1%eth0]:7000)";
        return -EINVAL;
    }
    const char *end;
    uint64_t v = 0;
    if (parse_u64(zone, &end, &v) == 0 && *end == '\0') {
        if (v > UINT32_MAX) {
            *why = "the interface index after '%' is too large";
            return -EINVAL;
        }
        *scope_id = (uint32_t)v;
        return 0;
    }
    unsigned index = if_nametoindex(zone);
    if (index == 0) {
        snprintf(why_buf, why_bytes, "no interface '%s'", zone);
        *why = why_buf;
        return -EINVAL;
    }
    *scope_id = index;
    return 0;
}

/*
 * rw__parse_listen, with a reason for the error message (in why, which may
 * point into why_buf). No DNS: inet_pton only, plus if_nametoindex for an
 * IPv6 scope id.
 */
static int parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len,
                        const char **why, char *why_buf, size_t why_bytes)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE]; /* both sizes count a NUL: one is the '%' */
    const char *port_text;
    bool v6;
    uint16_t port;
    int rc = split_host_port(text, host, sizeof(host), &port_text, &v6, why);
    if (rc < 0)
        return rc;
    rc = parse_port(port_text, &port, why);
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (v6) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        char *zone = strchr(host, '%');
        if (zone != NULL) {
            *zone++ = '\0';
            rc = parse_scope_id(zone, &a6->sin6_scope_id, why, why_buf, why_bytes);
            if (rc < 0)
                return rc;
        }
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
            *why = "not a numeric IPv6 address";
            return -EINVAL;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        *addr_len = sizeof(*a6);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
            *why = "not a numeric IPv4 address (no DNS lookups; e.g. 127.0.0.1)";
            return -EINVAL;
        }
        a4->sin_family = AF_INET;
        a4->sin_port = htons(port);
        *addr_len = sizeof(*a4);
    }
    *addr = ss;
    return 0;
}

int rw__parse_listen(const char *text, struct sockaddr_storage *addr, socklen_t *addr_len)
{
    RW_ASSERT(text != NULL);
    RW_ASSERT(addr != NULL);
    RW_ASSERT(addr_len != NULL);
    const char *why;
    char why_buf[64];
    return parse_listen(text, addr, addr_len, &why, why_buf, sizeof(why_buf));
}

/* The resolver's reason for rc (getaddrinfo's return), with EAI_SYSTEM's errno spelled out. */
static const char *gai_reason(int rc, int saved_errno)
{
    return rc == EAI_SYSTEM ? strerror(saved_errno) : gai_strerror(rc);
}

/*
 * PORT of --listen: a number (range-checked here: getaddrinfo would take 70000 modulo 65536) or,
 * when it starts with a letter, a service name from the services database (no DNS).
 */
static int resolve_port(const char *text, uint16_t *port, char *why, size_t why_bytes)
{
    const char *reason = NULL;
    bool name = (*text >= 'a' && *text <= 'z') || (*text >= 'A' && *text <= 'Z');
    if (!name) {
        if (parse_port(text, port, &reason) < 0) {
            snprintf(why, why_bytes, "%s", reason);
            return -EINVAL;
        }
        return 0;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(NULL, text, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_bytes, "unknown service '%s': %s", text, gai_reason(rc, errno));
        return -EINVAL;
    }
    const struct sockaddr *sa = res->ai_addr;
    *port =
        ntohs(sa->sa_family == AF_INET6 ? ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port
                                        : ((const struct sockaddr_in *)(const void *)sa)->sin_port);
    freeaddrinfo(res);
    return 0;
}

/* Append addr (port set to port) to out unless it is there already. -E2BIG when out is full. */
static int add_addr(struct rw_listen *out, unsigned max, unsigned *count, const struct sockaddr *sa,
                    socklen_t sa_len, uint16_t port)
{
    RW_ASSERT(sa_len <= sizeof(out->addr));
    struct rw_listen l;
    memset(&l.addr, 0, sizeof(l.addr));
    memcpy(&l.addr, sa, sa_len);
    l.addr_len = sa_len;
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)&l.addr)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)&l.addr)->sin_port = htons(port);
    for (unsigned i = 0; i < *count; i++)
        if (out[i].addr_len == l.addr_len && memcmp(&out[i].addr, &l.addr, l.addr_len) == 0)
            return 0; /* a name listed twice in /etc/hosts, say */
    if (*count >= max)
        return -E2BIG;
    out[*count].addr = l.addr;
    out[*count].addr_len = l.addr_len;
    ++*count;
    return 0;
}

/* True for "1.2.3", "256.0.0.1": meant as numbers, which getaddrinfo would read as inet_aton does
 * (1.2.3 is 1.2.0.3) or send to DNS. */
static bool looks_numeric(const char *host)
{
    return strspn(host, "0123456789.") == strlen(host);
}

int rw__resolve_listen(const char *text, struct rw_listen *out, unsigned max, unsigned *count,
                       char *why, size_t why_bytes)
{
    RW_ASSERT(text != NULL);
    RW_ASSERT(out != NULL);
    RW_ASSERT(count != NULL);
    RW_ASSERT(why != NULL && why_bytes > 0);
    *count = 0;
    char host[RW_LISTEN_TEXT_MAX];
    const char *port_text;
    const char *reason = NULL;
    bool v6;
    if (strlen(text) >= RW_LISTEN_TEXT_MAX) {
        snprintf(why, why_bytes, "longer than %u characters", RW_LISTEN_TEXT_MAX - 1);
        return -EINVAL;
    }
    if (split_host_port(text, host, sizeof(host), &port_text, &v6, &reason) < 0)
        goto err_reason;
    uint16_t port;
    int rc = resolve_port(port_text, &port, why, why_bytes);
    if (rc < 0)
        return rc;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    if (v6) {
        /* In brackets: a numeric IPv6 address, perhaps with a scope id; never a name. */
        char numeric[RW_LISTEN_TEXT_MAX + 8];
        socklen_t len;
        snprintf(numeric, sizeof(numeric), "[%s]:%u", host, (unsigned)port);
        rc = parse_listen(numeric, &ss, &len, &reason, why, why_bytes);
        if (rc < 0)
            goto err_reason;
        return add_addr(out, max, count, (const struct sockaddr *)&ss, len, port);
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        return add_addr(out, max, count, (const struct sockaddr *)a4, sizeof(*a4), port);
    }
    if (looks_numeric(host)) {
        reason = "not a numeric IPv4 address (four numbers 0-255, e.g. 127.0.0.1)";
        goto err_reason;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(why, why_bytes, "cannot resolve '%s': %s", host, gai_reason(rc, errno));
        return -EINVAL;
    }
    rc = 0;
    for (const struct addrinfo *ai = res; ai != NULL && rc == 0; ai = ai->ai_next)
        if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6)
            rc = add_addr(out, max, count, ai->ai_addr, ai->ai_addrlen, port);
    freeaddrinfo(res);
    if (rc == 0 && *count == 0) {
        snprintf(why, why_bytes, "'%s' has no IPv4 or IPv6 address", host);
        return -EINVAL;
    }
    return rc;

err_reason:
    if (reason != why) /* parse_listen may have written its reason into why already */
        snprintf(why, why_bytes, "%s", reason);
    return -EINVAL;
}

uint64_t rw__default_max_memory(uint64_t phys_bytes, uint64_t cgroup_bytes)
{
    uint64_t base = phys_bytes;
    if (cgroup_bytes && (base == 0 || cgroup_bytes < base))
        base = cgroup_bytes;
    uint64_t v = base / 4;
    v -= v % (1u << 20); /* whole MiB, as it is printed */
    return v < RW_MEM_MIN_BYTES ? RW_MEM_MIN_BYTES : v;
}

/* This machine's memory, and the cgroup v2 memory.max of our cgroup (0 when none is set). */
static uint64_t machine_memory_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
}

static uint64_t cgroup_memory_max_bytes(void)
{
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "re");
    if (!f)
        return 0;
    unsigned long long v = 0;
    int n = fscanf(f, "%llu", &v); /* "max" reads as no number: no limit */
    fclose(f);
    return n == 1 ? (uint64_t)v : 0;
}

void rw__config_defaults(struct rw_config *cfg)
{
    RW_ASSERT(cfg != NULL);
    memset(cfg, 0, sizeof(*cfg));
    cfg->action = RW_ACTION_RUN;
    cfg->backend = RW_BACKEND_AUTO;
    snprintf(cfg->listen[0].text, sizeof(cfg->listen[0].text), "%s", "127.0.0.1:7000");
    int rc = rw__parse_listen(cfg->listen[0].text, &cfg->listen[0].addr, &cfg->listen[0].addr_len);
    RW_ASSERT(rc == 0);
    cfg->listen_count = 1;
    cpu_set_t allowed; /* the CPUs we may run on (taskset, CPUAffinity=), not all online */
    int n_allowed = rw__cpus_allowed(&allowed);
    long cpus = n_allowed > 0 ? n_allowed : CPU_COUNT(&allowed);
    if (cpus < 1)
        cpus = 1;
    if (cpus > (long)RW_THREADS_MAX)
        cpus = RW_THREADS_MAX;
    cfg->threads = (uint32_t)cpus;
    cfg->cpu_affinity = false;
    cfg->idle_timeout_ms = 60 * 1000;
    cfg->frame_timeout_ms = 30 * 1000;
    /*
     * 30 s of transmitted data going unacknowledged means the peer is gone:
     * a live path answers a retransmission within a few RTOs (0.2 + 0.4 + ...
     * + 12.8 s = 25.4 s covers seven of them). The kernel's own limit
     * (tcp_retries2 = 15) is about 15 minutes, during which the socket, and
     * after close() its orphan, keeps its send buffer (kernel-notes/11).
     */
    cfg->tcp_user_timeout_ms = 30 * 1000;
    /*
     * Keepalive is off by default: --idle-timeout (60 s) already reaps a
     * silent peer, vanished or not, and keepalive adds probes and four
     * setsockopt calls per accept for nothing. Turn it on when the idle timeout
     * is off or long (kernel-notes/11).
     */
    cfg->keepalive_idle_s = 0;
    cfg->keepalive_intvl_s = 0;
    cfg->keepalive_probes = 0;
    cfg->max_frame_bytes = 1u << 20;
    /* RW_FRAMING_DEFAULT field by field (offset and adjust 0 from the memset): a struct copy
     * need not copy padding, and the config is compared with memcmp. */
    cfg->framing.length_bytes = 4;
    cfg->framing.order = RW_LENGTH_BIG;
    cfg->max_conns = 10000;
    cfg->backlog = 4096;
    cfg->write_buffer_bytes = 4u << 20;
    cfg->max_memory_bytes =
        rw__default_max_memory(machine_memory_bytes(), cgroup_memory_max_bytes());
    cfg->drain_timeout_ms = 10 * 1000;
    cfg->stats_interval_ms = 0;
    cfg->stats_json_path = NULL;
    cfg->log_level = RW_LOG_INFO;
    cfg->buf_count = RW_URING_BUF_COUNT_DEFAULT;
    cfg->uring_features = RW_UF_DEFAULT;
    cfg->buf_size_bytes = RW_URING_BUF_SIZE_DEFAULT;
}

/* One option occurrence being applied: its name as the user wrote it, and its value. */
struct opt_ctx {
    const char *name;
    const char *value;
    char *err;
    size_t err_bytes;
};

/* Write "NAME: why" into err; returns -EINVAL so setters can `return fail(...)`. */
__attribute__((format(printf, 2, 3))) static int fail(const struct opt_ctx *o, const char *fmt, ...)
{
    int used = snprintf(o->err, o->err_bytes, "%s: ", o->name);
    if (used >= 0 && (size_t)used < o->err_bytes) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(o->err + used, o->err_bytes - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* "1G", "16K", "1000": the largest unit that divides bytes exactly, for limit messages. */
static const char *size_text(uint64_t bytes, char *buf, size_t buf_bytes)
{
    static const char units[] = {'G', 'M', 'K'};
    for (size_t i = 0; i < sizeof(units); i++) {
        uint64_t unit = 1ull << (10 * (3 - i));
        if (bytes != 0 && bytes % unit == 0) {
            snprintf(buf, buf_bytes, "%llu%c", (unsigned long long)(bytes / unit), units[i]);
            return buf;
        }
    }
    snprintf(buf, buf_bytes, "%llu", (unsigned long long)bytes);
    return buf;
}

/* A whole number in [min, max]. */
static int opt_number(const struct opt_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    const char *end;
    uint64_t v = 0;
    int rc = parse_u64(o->value, &end, &v);
    if (rc == -EINVAL || *end != '\0')
        return fail(o, "invalid number '%s'", o->value);
    if (rc == -ERANGE || v > max)
        return fail(o, "%s exceeds the limit of %llu", o->value, (unsigned long long)max);
    if (v < min)
        return fail(o, "%s is below the minimum of %llu", o->value, (unsigned long long)min);
    *out = v;
    return 0;
}

/* A size in [min, max] bytes. */
static int opt_size(const struct opt_ctx *o, uint64_t min, uint64_t max, uint64_t *out)
{
    char limit[32];
    uint64_t v = 0;
    int rc = rw__parse_size(o->value, &v);
    if (rc == -EINVAL)
        return fail(o, "invalid size '%s' (bytes, or with K, M, G)", o->value);
    if (rc == -ERANGE || v > max)
        return fail(o, "%s exceeds the limit of %s", o->value,
                    size_text(max, limit, sizeof(limit)));
    if (v < min)
        return fail(o, "%s is below the minimum of %s", o->value,
                    size_text(min, limit, sizeof(limit)));
    *out = v;
    return 0;
}

/* A duration up to DURATION_MAX_MS; 0 is allowed (each option says what 0 means). */
static int opt_duration(const struct opt_ctx *o, uint64_t *out_ms)
{
    uint64_t v = 0;
    int rc = rw__parse_duration_ms(o->value, &v);
    if (rc == -EINVAL)
        return fail(o, "invalid duration '%s' (e.g. 250ms, 10s, 2m; a bare number is seconds)",
                    o->value);
    if (rc == -ERANGE || v > DURATION_MAX_MS)
        return fail(o, "%s exceeds the limit of %llum (30 days)", o->value,
                    (unsigned long long)(DURATION_MAX_MS / 60000));
    *out_ms = v;
    return 0;
}

/* value must be one of names[0..count); *out gets its index. */
static int opt_choice(const struct opt_ctx *o, const char *const names[], size_t count,
                      const char *expected, size_t *out)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(o->value, names[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(o, "must be %s, not '%s'", expected, o->value);
}

/* ---- setters: one per option, each validates o->value and writes its field ---- */

static int set_help(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->action = RW_ACTION_HELP;
    return 0;
}

static int set_version(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->action = RW_ACTION_VERSION;
    return 0;
}

static int set_probe(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->action = RW_ACTION_PROBE;
    return 0;
}

static int set_cpu_affinity(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->cpu_affinity = true;
    return 0;
}

static int set_proxy_protocol(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->proxy_protocol = true;
    return 0;
}

static int set_backend(struct rw_config *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_backend_kind. */
    static const char *const names[] = {"auto", "uring", "epoll"};
    _Static_assert(RW_BACKEND_AUTO == 0 && RW_BACKEND_URING == 1 && RW_BACKEND_EPOLL == 2,
                   "names[] follows enum rw_backend_kind");
    size_t i = 0;
    int rc = opt_choice(o, names, 3, "uring, epoll or auto", &i);
    if (rc == 0)
        cfg->backend = (enum rw_backend_kind)i;
    return rc;
}

/*
 * Each --listen adds its addresses (the first replaces the default). An address given twice
 * with the same non-zero port is refused: the second set of listeners would only join the
 * first one's SO_REUSEPORT group, silently.
 */
static int set_listen(struct rw_config *cfg, const struct opt_ctx *o)
{
    unsigned have = cfg->listen_given ? cfg->listen_count : 0;
    struct rw_listen got[RW_LISTEN_MAX];
    unsigned n = 0;
    char why[192];
    int rc = rw__resolve_listen(o->value, got, RW_LISTEN_MAX - have, &n, why, sizeof(why));
    if (rc == -E2BIG)
        return fail(o, "too many addresses: '%s' makes more than %u in all", o->value,
                    RW_LISTEN_MAX);
    if (rc < 0)
        return fail(o, "bad address '%s': %s", o->value, why);
    for (unsigned i = 0; i < n; i++) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&got[i].addr;
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&got[i].addr;
        bool ephemeral = (a->sin_family == AF_INET6 ? a6->sin6_port : a->sin_port) == 0;
        for (unsigned j = 0; j < have && !ephemeral; j++)
            if (cfg->listen[j].addr_len == got[i].addr_len &&
                memcmp(&cfg->listen[j].addr, &got[i].addr, got[i].addr_len) == 0)
                return fail(o, "'%s' repeats an address of '%s'", o->value, cfg->listen[j].text);
    }
    for (unsigned i = 0; i < n; i++) {
        struct rw_listen *l = &cfg->listen[have + i];
        memset(l, 0, sizeof(*l)); /* whole bytes: configs compare with memcmp (the unit tests) */
        snprintf(l->text, sizeof(l->text), "%s", o->value);
        memcpy(&l->addr, &got[i].addr, got[i].addr_len);
        l->addr_len = got[i].addr_len;
    }
    cfg->listen_count = have + n;
    cfg->listen_given = true;
    return 0;
}

static int set_ipv6_dual_stack(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->ipv6_dual_stack = true;
    return 0;
}

static int set_threads(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_THREADS_MAX, &v);
    if (rc == 0)
        cfg->threads = (uint32_t)v;
    return rc;
}

static int set_idle_timeout(struct rw_config *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->idle_timeout_ms);
}

static int set_frame_timeout(struct rw_config *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->frame_timeout_ms);
}

static int set_tcp_user_timeout(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_duration(o, &v);
    if (rc < 0)
        return rc;
    if (v > RW_TCP_USER_TIMEOUT_MAX_MS)
        return fail(o, "%s exceeds the kernel's limit of %ums (about 24 days)", o->value,
                    RW_TCP_USER_TIMEOUT_MAX_MS);
    cfg->tcp_user_timeout_ms = (uint32_t)v;
    return 0;
}

void rw__keepalive_schedule(uint32_t idle_s, uint32_t *intvl_s, uint32_t *probes)
{
    RW_ASSERT(idle_s >= 1);
    RW_ASSERT(idle_s <= RW_KEEPALIVE_MAX_S);
    /* About three probes a third of idle_s apart; short settings get fewer, never 0. */
    uint32_t intvl = idle_s / 3 > 0 ? idle_s / 3 : 1;
    uint32_t count = idle_s / intvl;
    RW_ASSERT(count >= 1);
    RW_ASSERT(count <= RW_KEEPALIVE_PROBES_MAX);
    RW_ASSERT((uint64_t)intvl * count <= idle_s);
    *intvl_s = intvl;
    *probes = count;
}

static int set_keepalive(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_duration(o, &v);
    if (rc < 0)
        return rc;
    if (v % 1000 != 0)
        return fail(o, "%s is not a whole number of seconds (the kernel's keepalive unit)",
                    o->value);
    if (v / 1000 > RW_KEEPALIVE_MAX_S)
        return fail(o, "%s exceeds the kernel's limit of %us", o->value, RW_KEEPALIVE_MAX_S);
    cfg->keepalive_idle_s = (uint32_t)(v / 1000);
    cfg->keepalive_intvl_s = 0;
    cfg->keepalive_probes = 0;
    if (cfg->keepalive_idle_s > 0)
        rw__keepalive_schedule(cfg->keepalive_idle_s, &cfg->keepalive_intvl_s,
                               &cfg->keepalive_probes);
    return 0;
}

static int set_drain_timeout(struct rw_config *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->drain_timeout_ms);
}

static int set_stats_interval(struct rw_config *cfg, const struct opt_ctx *o)
{
    return opt_duration(o, &cfg->stats_interval_ms);
}

static int set_max_frame(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_size(o, 0, RW_FRAME_MAX_BYTES_CEILING, &v);
    if (rc == 0)
        cfg->max_frame_bytes = (uint32_t)v;
    return rc;
}

/* --length-bytes, --length-order, --length-offset, --length-adjust (framing.c). */
static int set_framing(struct rw_config *cfg, const struct opt_ctx *o)
{
    char why[160];
    if (rw__framing_parse_option(&cfg->framing, o->name, o->value, why, sizeof(why)) < 0)
        return fail(o, "%s", why);
    return 0;
}

static int set_max_conns(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_CONNS_MAX, &v);
    if (rc == 0)
        cfg->max_conns = (uint32_t)v;
    return rc;
}

static int set_backlog(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, INT_MAX, &v);
    if (rc == 0)
        cfg->backlog = (uint32_t)v;
    return rc;
}

static int set_write_buffer(struct rw_config *cfg, const struct opt_ctx *o)
{
    return opt_size(o, 1, WRITE_BUFFER_MAX_BYTES, &cfg->write_buffer_bytes);
}

static int set_max_memory(struct rw_config *cfg, const struct opt_ctx *o)
{
    char floor[32];
    uint64_t v = 0;
    int rc = opt_size(o, 0, UINT64_MAX, &v);
    if (rc < 0)
        return rc;
    if (v != 0 && v < RW_MEM_MIN_BYTES)
        return fail(o, "%s is below the minimum of %s (0 means no limit)", o->value,
                    size_text(RW_MEM_MIN_BYTES, floor, sizeof(floor)));
    cfg->max_memory_bytes = v;
    return 0;
}

static int set_stats_json(struct rw_config *cfg, const struct opt_ctx *o)
{
    if (o->value[0] == '\0')
        return fail(o, "needs a file name");
    /* server.c writes FILE.tmp and renames it over FILE; both names must fit PATH_MAX. */
    if (strlen(o->value) + sizeof(".tmp") > PATH_MAX)
        return fail(o, "file name longer than %zu bytes", (size_t)PATH_MAX - sizeof(".tmp"));
    cfg->stats_json_path = o->value;
    return 0;
}

static int set_log_level(struct rw_config *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_log_level. */
    static const char *const names[] = {"error", "warn", "info", "debug"};
    _Static_assert(RW_LOG_ERROR == 0 && RW_LOG_WARN == 1 && RW_LOG_INFO == 2 && RW_LOG_DEBUG == 3,
                   "names[] follows enum rw_log_level");
    size_t i = 0;
    int rc = opt_choice(o, names, 4, "error, warn, info or debug", &i);
    if (rc == 0)
        cfg->log_level = (enum rw_log_level)i;
    return rc;
}

static int set_log_format(struct rw_config *cfg, const struct opt_ctx *o)
{
    /* Indexed by enum rw_log_format. */
    static const char *const names[] = {"auto", "plain", "journal"};
    _Static_assert(RW_LOG_FORMAT_AUTO == 0 && RW_LOG_FORMAT_PLAIN == 1 &&
                       RW_LOG_FORMAT_JOURNAL == 2,
                   "names[] follows enum rw_log_format");
    size_t i = 0;
    int rc = opt_choice(o, names, 3, "auto, plain or journal", &i);
    if (rc == 0)
        cfg->log_format = (enum rw_log_format)i;
    return rc;
}

static int set_log_timestamps(struct rw_config *cfg, const struct opt_ctx *o)
{
    (void)o;
    cfg->log_timestamps = true;
    return 0;
}

static int set_metrics(struct rw_config *cfg, const struct opt_ctx *o)
{
    if (rw__parse_listen(o->value, &cfg->metrics_addr, &cfg->metrics_addr_len) < 0)
        return fail(o, "bad address '%s' (numeric HOST:PORT, e.g. 127.0.0.1:9464 or [::1]:9464)",
                    o->value);
    cfg->metrics = true;
    return 0;
}

static int set_buf_count(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_number(o, 1, RW_URING_BUF_COUNT_MAX, &v);
    if (rc < 0)
        return rc;
    /* The kernel's buffer ring is indexed with a mask: entries must be a power of two. */
    if ((v & (v - 1)) != 0)
        return fail(o, "%s is not a power of two", o->value);
    cfg->buf_count = (uint32_t)v;
    return 0;
}

static int set_buf_size(struct rw_config *cfg, const struct opt_ctx *o)
{
    uint64_t v = 0;
    int rc = opt_size(o, BUF_SIZE_MIN_BYTES, RW_URING_BUF_SIZE_MAX, &v);
    if (rc == 0)
        cfg->buf_size_bytes = (uint32_t)v;
    return rc;
}

static int set_uring_features(struct rw_config *cfg, const struct opt_ctx *o)
{
    char why[256];
    if (rw__uring_features_parse(o->value, &cfg->uring_features, why, sizeof(why)) < 0)
        return fail(o, "%s", why + strlen("--uring-features: "));
    return 0;
}

struct opt_def {
    const char *name;  /* long form, "--listen" */
    const char *alias; /* short form, "-h", or NULL */
    bool takes_value;
    int (*set)(struct rw_config *cfg, const struct opt_ctx *o);
};

/* Keep in the order of the --help text. */
static const struct opt_def opt_defs[] = {
    {"--backend", NULL, true, set_backend},
    {"--listen", NULL, true, set_listen},
    {"--ipv6-dual-stack", NULL, false, set_ipv6_dual_stack},
    {"--threads", NULL, true, set_threads},
    {"--cpu-affinity", NULL, false, set_cpu_affinity},
    {"--idle-timeout", NULL, true, set_idle_timeout},
    {"--frame-timeout", NULL, true, set_frame_timeout},
    {"--tcp-user-timeout", NULL, true, set_tcp_user_timeout},
    {"--keepalive", NULL, true, set_keepalive},
    {"--max-frame", NULL, true, set_max_frame},
    {"--length-bytes", NULL, true, set_framing},
    {"--length-order", NULL, true, set_framing},
    {"--length-offset", NULL, true, set_framing},
    {"--length-adjust", NULL, true, set_framing},
    {"--max-conns", NULL, true, set_max_conns},
    {"--backlog", NULL, true, set_backlog},
    {"--proxy-protocol", NULL, false, set_proxy_protocol},
    {"--write-buffer", NULL, true, set_write_buffer},
    {"--max-memory", NULL, true, set_max_memory},
    {"--drain-timeout", NULL, true, set_drain_timeout},
    {"--stats-interval", NULL, true, set_stats_interval},
    {"--stats-json", NULL, true, set_stats_json},
    {"--metrics", NULL, true, set_metrics},
    {"--log-level", NULL, true, set_log_level},
    {"--log-format", NULL, true, set_log_format},
    {"--log-timestamps", NULL, false, set_log_timestamps},
    {"--buf-count", NULL, true, set_buf_count},
    {"--buf-size", NULL, true, set_buf_size},
    {"--uring-features", NULL, true, set_uring_features},
    {"--probe", NULL, false, set_probe},
    {"--help", "-h", false, set_help},
    {"--version", "-V", false, set_version},
};

/* The option named by arg[0..name_len), or NULL. */
static const struct opt_def *find_opt(const char *arg, size_t name_len)
{
    for (size_t i = 0; i < sizeof(opt_defs) / sizeof(opt_defs[0]); i++) {
        const struct opt_def *d = &opt_defs[i];
        if (strlen(d->name) == name_len && memcmp(d->name, arg, name_len) == 0)
            return d;
        if (d->alias != NULL && strlen(d->alias) == name_len &&
            memcmp(d->alias, arg, name_len) == 0)
            return d;
    }
    return NULL;
}

/*
 * Apply argv[*i] (and its value, which may be argv[*i + 1]). A separate value
 * that starts with "--" is taken as the next option, not as this one's value,
 * so "--listen --threads 4" says "missing value" rather than "bad address";
 * "--stats-json=--odd-name" still works.
 */
static int apply_arg(struct rw_config *cfg, int argc, char *const argv[], int *i, char *err,
                     size_t err_bytes)
{
    const char *arg = argv[*i];
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    size_t name_len = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
    const struct opt_def *d = find_opt(arg, name_len);
    if (d == NULL) {
        snprintf(err, err_bytes, "unknown option '%.*s'", (int)name_len, arg);
        return -EINVAL;
    }
    struct opt_ctx o = {.name = d->name, .value = NULL, .err = err, .err_bytes = err_bytes};
    if (!d->takes_value) {
        if (eq != NULL)
            return fail(&o, "takes no value");
    } else if (eq != NULL) {
        o.value = eq + 1;
    } else if (*i + 1 < argc && strncmp(argv[*i + 1], "--", 2) != 0) {
        o.value = argv[++*i];
    } else {
        return fail(&o, "missing value");
    }
    return d->set(cfg, &o);
}

int rw__config_parse(struct rw_config *cfg, int argc, char *const argv[], char *err,
                     size_t err_bytes)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(argc >= 0);
    RW_ASSERT(argc == 0 || argv != NULL);
    RW_ASSERT(err != NULL);
    RW_ASSERT(err_bytes > 0);
    rw__config_defaults(cfg);
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--") == 0) {
            snprintf(err, err_bytes, "unexpected argument '%s' (ringwire takes only options)", arg);
            return -EINVAL;
        }
        if (apply_arg(cfg, argc, argv, &i, err, err_bytes) < 0)
            return -EINVAL;
        /* --help and --version answer at once; whatever follows is not looked at. */
        if (cfg->action == RW_ACTION_HELP || cfg->action == RW_ACTION_VERSION)
            return 0;
    }
    if (cfg->action == RW_ACTION_RUN &&
        rw__framing_validate(&cfg->framing, cfg->max_frame_bytes, err, err_bytes) < 0)
        return -EINVAL;
    if (cfg->action == RW_ACTION_RUN)
        return rw__config_check_fit(cfg, machine_memory_bytes(), err, err_bytes);
    return 0;
}

int rw__config_check_fit(const struct rw_config *cfg, uint64_t phys_bytes, char *err,
                         size_t err_bytes)
{
    RW_ASSERT(cfg != NULL);
    if (phys_bytes == 0)
        return 0; /* unknown: nothing to compare with */
    uint64_t ring_bytes = 0;
    if (cfg->backend != RW_BACKEND_EPOLL)
        ring_bytes = (uint64_t)cfg->threads * cfg->buf_count * cfg->buf_size_bytes;
    /* Slot, free-list entry and (uring) send context of every connection that may be open. */
    uint64_t table_bytes = (uint64_t)cfg->max_conns * (sizeof(struct rw_conn) + sizeof(uint32_t));
    if (ring_bytes + table_bytes <= phys_bytes)
        return 0;
    snprintf(err, err_bytes,
             "--threads %u x --buf-count %u x --buf-size %u = %llu MiB of receive buffers, plus "
             "%llu MiB of connection table for --max-conns %u, exceeds this machine's %llu MiB "
             "of memory; lower --threads, --buf-count, --buf-size or --max-conns",
             cfg->threads, cfg->buf_count, cfg->buf_size_bytes,
             (unsigned long long)(ring_bytes >> 20), (unsigned long long)(table_bytes >> 20),
             cfg->max_conns, (unsigned long long)(phys_bytes >> 20));
    return -EINVAL;
}

void rw__config_usage(FILE *out)
{
    RW_ASSERT(out != NULL);
    char frame_max[32], buf_size_max[32], buf_size_default[32], mem_default[32];
    /* Limits come from rw_limits.h so the text cannot drift from what parsing enforces. */
    fprintf(out,
            "Usage: ringwire [OPTIONS]\n"
            "A length-prefixed TCP echo server on io_uring or epoll. A frame is a 4-byte\n"
            "big-endian payload length, then the payload (--length-* change that); each\n"
            "frame is answered with an identical frame, in order.\n"
            "\n"
            "Options (default in brackets):\n"
            "  --backend uring|epoll|auto  I/O engine. auto picks uring when the kernel\n"
            "                              has every io_uring feature it needs, else\n"
            "                              epoll, and logs why; uring fails if a\n"
            "                              feature is missing [auto]\n"
            "  --listen HOST:PORT          address to listen on; repeat for more (up to\n"
            "                              %u). HOST: a name (getaddrinfo; every address\n"
            "                              it resolves to, e.g. localhost: 127.0.0.1 and\n"
            "                              ::1), IPv4, or IPv6 in brackets, e.g.\n"
            "                              [::1]:7000, [fe80::1%%eth0]:7000; 0.0.0.0 or\n"
            "                              [::] for all. PORT: a number (0 picks a free\n"
            "                              port) or a service name (http). Every worker\n"
            "                              listens on every address [127.0.0.1:7000]\n"
            "  --ipv6-dual-stack           IPv6 listeners take IPv4 too ([::] all of\n"
            "                              both); else IPV6_V6ONLY: [::] is IPv6 only,\n"
            "                              whatever net.ipv6.bindv6only says [off]\n"
            "  --threads N                 worker threads, each with its own loop and\n"
            "                              SO_REUSEPORT listener, 1 to %u [the CPUs\n"
            "                              this process may run on: its affinity mask]\n"
            "  --cpu-affinity              pin worker i to the i-th CPU of that mask\n"
            "                              (wrapping) [off]\n"
            "  --idle-timeout DUR          close a connection that received and sent\n"
            "                              nothing for DUR; 0 disables [60s]\n"
            "  --frame-timeout DUR         a frame once started must complete within\n"
            "                              DUR; 0 disables [30s]\n"
            "  --tcp-user-timeout DUR      TCP_USER_TIMEOUT: the kernel drops a\n"
            "                              connection whose sent data stays\n"
            "                              unacknowledged for DUR (a vanished peer);\n"
            "                              0 keeps the kernel's (~15 min) [30s]\n"
            "  --keepalive DUR             TCP keepalive: probe a peer silent for DUR,\n"
            "                              so a vanished one is dropped within about\n"
            "                              2 x DUR (or --tcp-user-timeout, if longer);\n"
            "                              whole seconds; 0 disables [0]\n"
            "  --max-frame SIZE            largest payload accepted, at most %s; a\n"
            "                              larger one closes the connection after the\n"
            "                              frames before it are answered; 0 allows only\n"
            "                              empty frames [1M]\n"
            "  --length-bytes 1|2|3|4|8    width of the length field [4]\n"
            "  --length-order big|little   byte order of the length field [big]\n"
            "  --length-offset N           header bytes before the length field (echoed\n"
            "                              as they came), 0 to %u [0]\n"
            "  --length-adjust N           signed, added to the field's value to give the\n"
            "                              payload length, e.g. -4 when it counts its own\n"
            "                              4 bytes; --max-frame applies to the result; a\n"
            "                              result below 0 is a protocol error [0]\n"
            "  --max-conns N               open connections at most (whole process);\n"
            "                              more are closed at once and counted; the\n"
            "                              soft RLIMIT_NOFILE is raised to fit [10000]\n"
            "  --backlog N                 listen backlog, clamped by\n"
            "                              net.core.somaxconn with a warning [4096]\n"
            "  --proxy-protocol            each connection starts with a PROXY protocol\n"
            "                              v1 or v2 header (HAProxy send-proxy[-v2]),\n"
            "                              within --frame-timeout; logs name the client\n"
            "                              it gives; one without a valid header is\n"
            "                              closed (closed_proxy) [off]\n"
            "  --write-buffer SIZE         replies queued per connection before the\n"
            "                              server stops reading from it, until they\n"
            "                              drain below half; 1 to 1G [4M]\n"
            "  --max-memory SIZE           one budget for reassembly buffers and queued\n"
            "                              replies over all connections; at it, growing\n"
            "                              connections stop being read and the largest\n"
            "                              are closed; 0 = no limit [a quarter of RAM\n"
            "                              or of the cgroup's memory.max: %s here]\n"
            "  --drain-timeout DUR         on SIGTERM/SIGINT, how long to finish\n"
            "                              in-flight work before closing by force [10s]\n"
            "  --stats-interval DUR        print one line of counters every DUR;\n"
            "                              0 disables [0]\n"
            "  --stats-json FILE           also write the counters as JSON to FILE, with\n"
            "                              version, backend, uptime and a timestamp [none]\n"
            "  --metrics HOST:PORT         serve the counters to Prometheus over HTTP at\n"
            "                              http://HOST:PORT/metrics (numeric address;\n"
            "                              port 0 picks a free one, logged) [off]\n"
            "  --log-level LEVEL           stderr verbosity: error, warn, info or debug\n"
            "                              [info]\n"
            "  --log-format FORMAT         plain, or journal: each line starts with its\n"
            "                              syslog priority (<3> error, <4> warn, <6> info,\n"
            "                              <7> debug); auto is journal when stderr is the\n"
            "                              systemd journal (JOURNAL_STREAM) [auto]\n"
            "  --log-timestamps            start each line with the local time,\n"
            "                              RFC 3339 with milliseconds [off]\n"
            "  --buf-count N               uring: provided receive buffers per worker,\n"
            "                              a power of two up to %u [%u]\n"
            "  --buf-size SIZE             uring: bytes per provided buffer, %u to %s\n"
            "                              [%s]\n"
            "  --uring-features LIST       uring: optional io_uring features, e.g.\n"
            "                              +inc-bufs,-zc-replies, all or none; each is\n"
            "                              probed and falls back when the kernel lacks\n"
            "                              it; --probe lists them and why each is\n"
            "                              on or off by default [zc-replies]\n"
            "  --probe                     print the kernel's io_uring features and exit\n"
            "  -h, --help                  print this help and exit\n"
            "  -V, --version               print the version and the backends compiled in\n"
            "\n"
            "Every option takes '--opt VALUE' or '--opt=VALUE'; a later one overrides an\n"
            "earlier one, except --listen, which adds addresses.\n"
            "SIZE: bytes, or a number with K, M or G (powers of 1024), e.g. 4096, 64K, 1M.\n"
            "DUR: a number with ms, s or m (milliseconds, seconds, minutes), e.g. 250ms,\n"
            "10s, 2m; a bare number is seconds; at most 30 days.\n"
            "\n"
            "Signals:\n"
            "  SIGTERM, SIGINT  stop accepting, answer every complete frame already\n"
            "                   received, flush replies, close connections and exit 0\n"
            "                   (closing by force after --drain-timeout)\n"
            "  SIGUSR1          print the counters\n"
            "  SIGHUP           ignored (logged; there are no log files to reopen)\n"
            "  SIGPIPE          ignored\n"
            "\n"
            "Exit status:\n"
            "  0  clean shutdown (or --help, --version, --probe)\n"
            "  1  runtime failure; the message names what failed and why\n"
            "  2  bad usage or configuration; the message names the option and why\n"
            "     (also a --listen name that does not resolve: the resolver's reason)\n",
            RW_LISTEN_MAX, RW_THREADS_MAX,
            size_text(RW_FRAME_MAX_BYTES_CEILING, frame_max, sizeof(frame_max)),
            RW_FRAMING_OFFSET_MAX,
            size_text(rw__default_max_memory(machine_memory_bytes(), cgroup_memory_max_bytes()),
                      mem_default, sizeof(mem_default)),
            RW_URING_BUF_COUNT_MAX, RW_URING_BUF_COUNT_DEFAULT, BUF_SIZE_MIN_BYTES,
            size_text(RW_URING_BUF_SIZE_MAX, buf_size_max, sizeof(buf_size_max)),
            size_text(RW_URING_BUF_SIZE_DEFAULT, buf_size_default, sizeof(buf_size_default)));
}

uint64_t rw__nofile_needed(const struct rw_config *cfg)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(cfg->threads >= 1);
    RW_ASSERT(cfg->threads <= RW_THREADS_MAX);
    RW_ASSERT(cfg->listen_count >= 1);
    RW_ASSERT(cfg->listen_count <= RW_LISTEN_MAX);
    /* RW_NOFILE_PER_WORKER counts one listener; each further --listen address adds one. */
    uint64_t per_worker = RW_NOFILE_PER_WORKER + (cfg->listen_count - 1) + RW_NOFILE_WORKER_SLACK;
    return (uint64_t)cfg->max_conns + (uint64_t)cfg->threads * per_worker + RW_NOFILE_PROCESS_SLACK;
}

static const char *rlim_text(rlim_t v, char *buf, size_t buf_bytes)
{
    if (v == RLIM_INFINITY)
        snprintf(buf, buf_bytes, "unlimited");
    else
        snprintf(buf, buf_bytes, "%llu", (unsigned long long)v);
    return buf;
}

void rw__config_usage_nofile(const struct rw_config *cfg, FILE *out)
{
    RW_ASSERT(cfg != NULL);
    RW_ASSERT(out != NULL);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    char soft[24], hard[24];
    uint64_t need = rw__nofile_needed(cfg);
    fprintf(out,
            "\nDescriptors: this process may open %s (RLIMIT_NOFILE soft limit, hard %s);\n"
            "--max-conns %u with --threads %u needs about %llu",
            rlim_text(rl.rlim_cur, soft, sizeof(soft)), rlim_text(rl.rlim_max, hard, sizeof(hard)),
            cfg->max_conns, cfg->threads, (unsigned long long)need);
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        fprintf(out, ".\n");
    else if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need)
        fprintf(out, "; at start the soft limit is\nraised to that.\n");
    else
        fprintf(out,
                ", more than the hard\nlimit: at start the soft limit is raised to %s and a "
                "warning says so;\nraise the hard limit (ulimit -Hn, LimitNOFILE=) or lower "
                "--max-conns.\n",
                hard);
}
