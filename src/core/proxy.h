/*
 * The HAProxy PROXY protocol header (v1 text and v2 binary,
 * haproxy.org/download/2.9/doc/proxy-protocol.txt) that a load balancer sends
 * at the start of a connection to name the real client. A stateless parser
 * over caller memory, like the frame parser: the caller keeps the bytes of an
 * incomplete header and calls again with more. Used by conn_proxy.c under
 * --proxy-protocol.
 */
#ifndef RW_PROXY_H
#define RW_PROXY_H

#include <stddef.h>
#include <stdint.h>

/* v1: "PROXY TCP6 <39> <39> 65535 65535\r\n" is the longest line the spec allows. */
#define RW_PROXY_V1_MAX_BYTES 107u
#define RW_PROXY_V2_HDR_BYTES 16u
/* v2: addresses (at most 216 bytes for AF_UNIX) plus TLVs; ours is a bound, not the spec's. */
#define RW_PROXY_V2_BODY_MAX_BYTES 512u
/* The most bytes an incomplete header can hold (the parser returns 0 only below it). */
#define RW_PROXY_MAX_BYTES (RW_PROXY_V2_HDR_BYTES + RW_PROXY_V2_BODY_MAX_BYTES)

/* An address from the header, compact (it lives in every connection). */
struct rw_proxy_addr {
    uint8_t family;   /* 0 (none given), AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network order; 4 bytes used for AF_INET */
    uint16_t port;    /* host order */
};

struct rw_proxy_info {
    uint8_t version;          /* 1 or 2 */
    uint8_t local;            /* v2 LOCAL, or v1 UNKNOWN: no client address (a health check) */
    struct rw_proxy_addr src; /* the real client; family 0 when local or an unsupported family */
    struct rw_proxy_addr dst; /* the address the client connected to */
};

/*
 * Parse a header at the start of buf[0..len). Returns the header's length (> 0)
 * with *out filled; 0 when buf is a proper prefix of a header that may still be
 * valid (then len < RW_PROXY_MAX_BYTES); -EINVAL when the bytes cannot start a
 * header (no signature) or a field is malformed; -EMSGSIZE when the header would
 * exceed its bound (v1: no CRLF within 107 bytes; v2: more than 512 bytes
 * after the 16-byte header); -EPROTO for a v2 version or command we do not
 * know. *out is written only when a header is returned. Reads no byte past len.
 */
int rw__proxy_parse(const uint8_t *buf, size_t len, struct rw_proxy_info *out);

/* a as "203.0.113.9:51234" or "[2001:db8::1]:443" ("?" for none) in buf (n bytes), returned. */
const char *rw__proxy_addr_text(const struct rw_proxy_addr *a, char *buf, size_t n);

#endif
