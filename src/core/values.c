/*
 * Value syntax shared by the options and the CLI: sizes ("4K"), durations
 * ("250ms"), listen addresses (numeric, and names resolved with
 * getaddrinfo, as nginx resolves its listen directive when it reads its
 * configuration), and the keepalive probe schedule derived from --keepalive.
 * Nothing here prints or exits; errors are -errno with the reason where one
 * is asked for. The unit tests exercise each on its own.
 */
#include "values.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rw_assert.h"
#include "rw_limits.h"

/*
 * A whole decimal number: digits only (no sign, no spaces, no base prefix),
 * then *end points at the first non-digit, also on -ERANGE (strtoull consumes
 * the whole subject sequence), so callers can report junk before overflow.
 * strtoull alone would accept " 5", "+5" and "-5" (the last wrapping around),
 * hence the first-digit check.
 */
int rw__parse_u64(const char *text, const char **end, uint64_t *out)
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
    int rc = rw__parse_u64(text, &end, &v);
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
    int rc = rw__parse_u64(text, &end, &v);
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
    if (rw__parse_u64(text, &end, &v) < 0 || *end != '\0' || v > 65535) {
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
    if (rw__parse_u64(zone, &end, &v) == 0 && *end == '\0') {
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
