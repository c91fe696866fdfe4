/*
 * The connection half of the public API (include/ringwire/ringwire.h): what a
 * handler may do with a connection from inside its callbacks, on the
 * connection's worker thread. Sends only queue: the loop flushes the queue
 * once a turn (conn.c marks the connection dirty after on_frame and on_open).
 */
#include "conn_policy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <ringwire/ringwire.h>

#include "rw_assert.h"
#include "backend.h"
#include "rw_limits.h"
#include "peer.h"

/* Closing (after an error, rw_conn_close, or gone): nothing more may be queued. */
static bool conn_closing(const struct rw_conn *c)
{
    return c->state != RW_CONN_OPEN ||
           (c->flags & (RW_CONN_PROTO_ERROR | RW_CONN_CLOSE_REQ | RW_CONN_WR_SHUT));
}

/*
 * Zero-copy reply: body lies in the receive buffer being parsed, so send it from there (the
 * buffer is held until the bytes are sent) instead of copying it. header (header_len bytes,
 * may be 0) goes before it: when the same bytes lie right before body (an echo's, the
 * request's own header), header and body go as one reference, and pipelined replies from
 * one buffer merge into one entry; else header is copied. The caller decided the reply is
 * large enough to be worth it (RW_ZC_MIN_BYTES of payload). Returns 1 when queued by
 * reference, 0 to copy instead (nothing queued then).
 */
static int send_by_ref(struct rw_conn *c, const uint8_t *header, uint32_t header_len,
                       const uint8_t *body, size_t len)
{
    struct rw_loop *loop = c->loop;
    const struct rw_rxbuf *rx = loop->rx_cur;
    if (!rx || len == 0 || body < rx->base || body + len > rx->base + rx->len)
        return 0;
    const uint8_t *start = body;
    if (header_len > 0 && body >= rx->base + header_len &&
        memcmp(body - header_len, header, header_len) == 0)
        start = body - header_len;
    bool copy_header = start == body && header_len > 0;
    bool merges = copy_header ? false : rw__outq_ext_continues(&c->outq, start, rx->owner, rx->id);
    if (!merges) {
        if (c->outq.ext_count >= RW_ZC_HOLDS_PER_CONN)
            return 0;
        /* The entry first: once a copied header is queued its body must follow it. */
        if (rw__outq_ext_reserve(&loop->pool) < 0)
            return 0;
        if (!rx->hold(rx->owner, rx->id)) {
            rw__stat_add(&loop->stats, RW_STAT_ZC_COPIED_LOW, 1);
            return 0;
        }
        if (copy_header && rw__outq_append(&c->outq, &loop->pool, header, header_len) < 0) {
            rx->release(rx->owner, rx->id);
            return 0;
        }
    }
    size_t bytes = (size_t)(body + len - start);
    int rc =
        rw__outq_append_ext(&c->outq, &loop->pool, start, bytes, rx->release, rx->owner, rx->id);
    RW_ASSERT(rc >= 0); /* merged, or the entry reserved above */
    if (rc == 1 && !merges)
        rx->release(rx->owner, rx->id); /* it merged after all: one hold is enough */
    rw__stat_add(&loop->stats, RW_STAT_ZC_REPLIES, 1);
    return 1;
}

/* Queue header + body by reference when send_by_ref takes them, else copied. */
static int conn_send(struct rw_conn *c, const uint8_t *header, uint32_t header_len,
                     const uint8_t *body, size_t len, bool zc_worth_it)
{
    if (conn_closing(c))
        return -EPIPE;
    if (header_len == 0 && len == 0)
        return 0;
    int rc = zc_worth_it ? send_by_ref(c, header, header_len, body, len) : 0;
    if (rc == 0)
        rc = rw__outq_append2(&c->outq, &c->loop->pool, header, header_len, body, len);
    if (rc < 0)
        return rc;
    rw__stat_add(&c->loop->stats, RW_STAT_FRAMES_OUT, 1);
    return 0;
}

RW_API int rw_conn_send_frame(struct rw_conn *c, const void *payload, uint32_t len)
{
    RW_ASSERT(c != NULL);
    uint8_t header[RW_FRAMING_HEADER_MAX];
    int hl = rw_framing_put_header(&c->loop->cfg->framing, header, len);
    if (hl < 0)
        return hl;
    return conn_send(c, header, (uint32_t)hl, payload, len, len >= c->loop->zc_min_bytes);
}

RW_API int rw_conn_send_raw(struct rw_conn *c, const void *bytes, size_t len)
{
    RW_ASSERT(c != NULL);
    /* The threshold is on payload bytes: raw bytes count as one frame's header + payload. */
    uint32_t hl = rw_framing_header_bytes(&c->loop->cfg->framing);
    return conn_send(c, NULL, 0, bytes, len, len >= (size_t)c->loop->zc_min_bytes + hl);
}

/* rw_conn_send_ref's release, in the outq's external-entry form (owner: this, malloc'd). */
struct ref_hold {
    rw_release_fn release;
    void *arg;
};

static void ref_release(void *owner, uint32_t id)
{
    (void)id;
    struct ref_hold *h = owner;
    rw_release_fn release = h->release;
    void *arg = h->arg;
    free(h);
    release(arg);
}

RW_API int rw_conn_send_ref(struct rw_conn *c, const void *payload, uint32_t len,
                            rw_release_fn release, void *arg)
{
    RW_ASSERT(c != NULL);
    RW_ASSERT(release != NULL);
    if (conn_closing(c))
        return -EPIPE;
    struct rw_loop *loop = c->loop;
    uint8_t header[RW_FRAMING_HEADER_MAX];
    int hl = rw_framing_put_header(&loop->cfg->framing, header, len);
    if (hl < 0)
        return hl;
    /* Everything that can fail first, so an error leaves nothing queued (and no release due). */
    struct ref_hold *h = len ? malloc(sizeof(*h)) : NULL;
    if (len && (!h || rw__outq_ext_reserve(&loop->pool) < 0)) {
        free(h);
        return -ENOMEM;
    }
    if (rw__outq_append(&c->outq, &loop->pool, header, (size_t)hl) < 0) {
        free(h);
        return -ENOMEM;
    }
    rw__stat_add(&loop->stats, RW_STAT_FRAMES_OUT, 1);
    if (!len) {
        release(arg); /* nothing referenced */
        return 0;
    }
    h->release = release;
    h->arg = arg;
    /* A unique owner: never merges with another entry, so ref_release runs once per call. */
    int rc = rw__outq_append_ext(&c->outq, &loop->pool, payload, len, ref_release, h, 0);
    RW_ASSERT(rc == 0); /* reserved above */
    return 0;
}

RW_API void rw_conn_close(struct rw_conn *c)
{
    RW_ASSERT(c != NULL);
    if (c->state != RW_CONN_OPEN || (c->flags & (RW_CONN_PROTO_ERROR | RW_CONN_CLOSE_REQ)))
        return;
    /* Called only from c's callbacks (on_open, on_frame): their callers close c once the
     * callback returned (rw__conn_app_open, rw__conn_on_data_buf); inside a frame delivery
     * the reassembler still holds its buffer. */
    c->flags |= RW_CONN_CLOSE_REQ;
}

static int proxy_sockaddr(const struct rw_proxy_addr *a, struct sockaddr_storage *ss,
                          socklen_t *len)
{
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(a->port);
        memcpy(&in->sin_addr, a->addr, 4);
        *len = sizeof(*in);
        return 0;
    }
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(a->port);
        memcpy(&in6->sin6_addr, a->addr, 16);
        *len = sizeof(*in6);
        return 0;
    }
    return -EAFNOSUPPORT;
}

RW_API int rw_conn_peer(const struct rw_conn *c, struct sockaddr_storage *addr, socklen_t *len)
{
    RW_ASSERT(c != NULL && addr != NULL && len != NULL);
    memset(addr, 0, sizeof(*addr));
    if (c->client.family != 0) {
        if (proxy_sockaddr(&c->client, addr, len) == 0)
            return 0;
    }
    socklen_t l = sizeof(*addr);
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)addr, &l) < 0)
        return -ENOTCONN;
    *len = l;
    return 0;
}

RW_API void *rw_conn_user(const struct rw_conn *c)
{
    return c->user;
}

RW_API void rw_conn_set_user(struct rw_conn *c, void *user)
{
    c->user = user;
}

RW_API void *rw_conn_server_ctx(const struct rw_conn *c)
{
    return c->loop->shared->ctx;
}

RW_API unsigned rw_conn_worker(const struct rw_conn *c)
{
    return (unsigned)c->loop->worker_id;
}

RW_API const char *rw_close_reason_name(enum rw_close_reason reason)
{
    static const char *const names[] = {
        [RW_CLOSE_PEER] = "peer",
        [RW_CLOSE_ERROR] = "error",
        [RW_CLOSE_IDLE] = "idle",
        [RW_CLOSE_FRAME_TIMEOUT] = "frame_timeout",
        [RW_CLOSE_TCP_TIMEOUT] = "tcp_timeout",
        [RW_CLOSE_DEAD] = "dead",
        [RW_CLOSE_PROTOCOL] = "protocol",
        [RW_CLOSE_HANDLER] = "handler",
        [RW_CLOSE_MEMORY] = "memory",
        [RW_CLOSE_PROXY] = "proxy",
        [RW_CLOSE_APP] = "app",
        [RW_CLOSE_SHUTDOWN] = "shutdown",
    };
    if ((unsigned)reason >= sizeof(names) / sizeof(names[0]) || !names[reason])
        return "unknown";
    return names[reason];
}
