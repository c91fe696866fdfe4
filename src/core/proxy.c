/*
 * PROXY protocol v1/v2 header parser (see proxy.h). Decides as early as the
 * bytes allow: a first byte that starts neither signature is rejected at
 * once, a v2 length over the bound as soon as the 16-byte header is in, so a
 * peer that is not a load balancer is closed without being buffered for.
 */
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "rw_assert.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[] = "PROXY ";

/* The next space-terminated token of [*p, end) into tok (NUL-terminated); false if none fits. */
static bool next_token(const char **p, const char *end, char *tok, size_t tok_bytes, char stop)
{
    const char *s = *p;
    const char *e = memchr(s, stop, (size_t)(end - s));
    if (!e || e == s || (size_t)(e - s) >= tok_bytes)
        return false;
    memcpy(tok, s, (size_t)(e - s));
    tok[e - s] = '\0';
    *p = e + 1;
    return true;
}

static bool parse_port(const char *tok, uint16_t *port)
{
    size_t n = strlen(tok);
    if (n == 0 || n > 5 || (n > 1 && tok[0] == '0'))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9')
            return false;
        v = v * 10u + (unsigned)(tok[i] - '0');
    }
    if (v > 65535u)
        return false;
    *port = (uint16_t)v;
    return true;
}

static bool parse_ip(int family, const char *tok, struct rw_proxy_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (inet_pton(family, tok, a->addr) != 1)
        return false;
    a->family = (uint8_t)family;
    return true;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n". */
static int parse_v1(const uint8_t *buf, size_t len, struct rw_proxy_info *out)
{
    size_t scan = len < RW_PROXY_V1_MAX_BYTES ? len : RW_PROXY_V1_MAX_BYTES;
    const uint8_t *lf = memchr(buf, '\n', scan);
    if (!lf)
        return len >= RW_PROXY_V1_MAX_BYTES ? -EMSGSIZE : 0;
    size_t line_len = (size_t)(lf - buf) + 1;
    if (line_len < sizeof(v1_sig) + 1 || lf[-1] != '\r')
        return -EINVAL;
    const char *p = (const char *)buf + sizeof(v1_sig) - 1;
    const char *end = (const char *)lf - 1; /* the CR */
    if (memchr(p, '\r', (size_t)(end - p)) || memchr(p, '\0', (size_t)(end - p)))
        return -EINVAL;
    struct rw_proxy_info info = {.version = 1};
    if ((size_t)(end - p) >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (end - p == 7 || p[7] == ' ')) {
        info.local = 1; /* the rest of the line is to be ignored (spec 2.1) */
        *out = info;
        return (int)line_len;
    }
    char proto[8], src[48], dst[48], sport[8], dport[8];
    /* The last token ends at the CR: parse it with the CR as its stop byte. */
    if (!next_token(&p, end, proto, sizeof(proto), ' ') ||
        !next_token(&p, end, src, sizeof(src), ' ') ||
        !next_token(&p, end, dst, sizeof(dst), ' ') ||
        !next_token(&p, end, sport, sizeof(sport), ' ') ||
        !next_token(&p, end + 1, dport, sizeof(dport), '\r') || p != end + 1)
        return -EINVAL;
    int family;
    if (strcmp(proto, "TCP4") == 0)
        family = AF_INET;
    else if (strcmp(proto, "TCP6") == 0)
        family = AF_INET6;
    else
        return -EINVAL;
    if (!parse_ip(family, src, &info.src) || !parse_ip(family, dst, &info.dst) ||
        !parse_port(sport, &info.src.port) || !parse_port(dport, &info.dst.port))
        return -EINVAL;
    *out = info;
    return (int)line_len;
}

static void v2_addr(struct rw_proxy_addr *a, int family, const uint8_t *ip, size_t ip_len,
                    const uint8_t *port)
{
    memset(a, 0, sizeof(*a));
    a->family = (uint8_t)family;
    memcpy(a->addr, ip, ip_len);
    a->port = (uint16_t)((port[0] << 8) | port[1]);
}

static int parse_v2(const uint8_t *buf, size_t len, struct rw_proxy_info *out)
{
    size_t sig = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, sig) != 0)
        return -EINVAL;
    if (len < RW_PROXY_V2_HDR_BYTES) {
        if (len > 12 && (buf[12] >> 4) != 2)
            return -EPROTO;
        return 0;
    }
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0F;
    uint8_t af = buf[13] >> 4, proto = buf[13] & 0x0F;
    size_t body = ((size_t)buf[14] << 8) | buf[15];
    if (ver != 2 || cmd > 1)
        return -EPROTO;
    if (body > RW_PROXY_V2_BODY_MAX_BYTES)
        return -EMSGSIZE;
    size_t total = RW_PROXY_V2_HDR_BYTES + body;
    if (len < total)
        return 0;
    const uint8_t *b = buf + RW_PROXY_V2_HDR_BYTES;
    struct rw_proxy_info info = {.version = 2};
    if (cmd == 0) {
        info.local = 1; /* LOCAL: the balancer's own connection; addresses ignored */
    } else if (af == 1 && proto == 1) { /* TCP over IPv4 */
        if (body < 12)
            return -EINVAL;
        v2_addr(&info.src, AF_INET, b, 4, b + 8);
        v2_addr(&info.dst, AF_INET, b + 4, 4, b + 10);
    } else if (af == 2 && proto == 1) { /* TCP over IPv6 */
        if (body < 36)
            return -EINVAL;
        v2_addr(&info.src, AF_INET6, b, 16, b + 32);
        v2_addr(&info.dst, AF_INET6, b + 16, 16, b + 34);
    } else if (af > 3 || proto > 2) {
        return -EINVAL;
    }
    /* UNSPEC, AF_UNIX or UDP: valid, no address we keep (spec 2.2: use the connection's).
     * TLVs after the addresses are skipped: nothing here needs them. */
    *out = info;
    return (int)total;
}

int rw__proxy_parse(const uint8_t *buf, size_t len, struct rw_proxy_info *out)
{
    RW_ASSERT(out != NULL);
    RW_ASSERT(buf != NULL || len == 0);
    if (len == 0)
        return 0;
    if (buf[0] == v2_sig[0])
        return parse_v2(buf, len, out);
    size_t sig = len < sizeof(v1_sig) - 1 ? len : sizeof(v1_sig) - 1;
    if (memcmp(buf, v1_sig, sig) != 0)
        return -EINVAL;
    if (len < sizeof(v1_sig) - 1)
        return 0;
    return parse_v1(buf, len, out);
}

const char *rw__proxy_addr_text(const struct rw_proxy_addr *a, char *buf, size_t n)
{
    RW_ASSERT(a != NULL);
    RW_ASSERT(buf != NULL);
    RW_ASSERT(n > 0);
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->family == AF_INET6) {
        inet_ntop(AF_INET6, a->addr, host, sizeof(host));
        snprintf(buf, n, "[%s]:%u", host, a->port);
    } else if (a->family == AF_INET) {
        inet_ntop(AF_INET, a->addr, host, sizeof(host));
        snprintf(buf, n, "%s:%u", host, a->port);
    } else {
        snprintf(buf, n, "?");
    }
    return buf;
}
