/*
 * --proxy-protocol: the PROXY header awaited before a connection's first
 * frame, whole in one read or held across several (proxy.c parses it). Part
 * of the connection policy (conn.c calls it from rw__conn_on_data_buf).
 */
#include "conn_policy.h"

#include <stdlib.h>
#include <string.h>

#include "rw_assert.h"
#include "rw_limits.h"
#include "log.h"
#include "peer.h"

/*
 * Feed data[0..len) to c's awaited PROXY header. Returns how many of these bytes the header
 * took (len while it is incomplete; the rest of the chunk is frames), or -1 after closing c
 * for a bad header. A header split across reads is held in c->proxy_buf, at most
 * RW_PROXY_MAX_BYTES (the parser decides before that); one in a single read costs no copy.
 */
ssize_t rw__conn_proxy_header(struct rw_conn *c, const uint8_t *data, size_t len)
{
    char peer[RW_PEER_TEXT_MAX], via[RW_PEER_TEXT_MAX];
    size_t held = c->proxy_len;
    const uint8_t *buf = data;
    size_t have = len;
    if (held > 0) {
        size_t take = len < RW_PROXY_MAX_BYTES - held ? len : RW_PROXY_MAX_BYTES - held;
        memcpy(c->proxy_buf + held, data, take);
        buf = c->proxy_buf;
        have = held + take;
    }
    struct rw_proxy_info info;
    int rc = rw__proxy_parse(buf, have, &info);
    if (rc == 0) {
        RW_ASSERT(have < RW_PROXY_MAX_BYTES); /* so every byte of data was taken */
        if (held == 0) {
            c->proxy_buf = malloc(RW_PROXY_MAX_BYTES);
            if (!c->proxy_buf) {
                RW_WARN("conn %u (%s): out of memory holding a PROXY header; closing", c->index,
                        rw__conn_peer(c, peer, sizeof(peer)));
                rw__conn_close(c, RW_STAT_CLOSED_ERROR);
                return -1;
            }
            memcpy(c->proxy_buf, data, len);
        }
        c->proxy_len = (uint16_t)have;
        return (ssize_t)len;
    }
    free(c->proxy_buf);
    c->proxy_buf = NULL;
    c->proxy_len = 0;
    if (rc < 0) {
        RW_DEBUG("conn %u (%s): no valid PROXY header (%s); closing", c->index,
                 rw__conn_peer(c, peer, sizeof(peer)), strerror(-rc));
        rw__conn_close(c, RW_STAT_CLOSED_PROXY);
        return -1;
    }
    RW_ASSERT((size_t)rc > held);
    c->flags &= (uint16_t)~RW_CONN_PROXY_WAIT;
    c->client = info.src; /* family 0 (LOCAL, UNKNOWN, AF_UNIX): the socket's peer stands */
    RW_DEBUG("conn %u (%s): PROXY v%u %s via %s", c->index, rw__conn_peer(c, peer, sizeof(peer)),
             info.version, info.local ? "LOCAL" : "client",
             rw__conn_sock_peer(c, via, sizeof(via)));
    if (!rw__conn_app_open(c))
        return -1;
    return (ssize_t)((size_t)rc - held);
}
