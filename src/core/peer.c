/* Connection peer addresses as log text (see peer.h). */
#include "peer.h"

#include <stdio.h>
#include <sys/socket.h>

#include "rw_assert.h"
#include "conn.h"
#include "listener.h"

const char *rw__conn_peer(const struct rw_conn *c, char *buf, size_t n)
{
    RW_ASSERT(c != NULL);
    if (c->client.family != 0)
        return rw__proxy_addr_text(&c->client, buf, n);
    return rw__conn_sock_peer(c, buf, n);
}

const char *rw__conn_sock_peer(const struct rw_conn *c, char *buf, size_t n)
{
    RW_ASSERT(c != NULL);
    RW_ASSERT(buf != NULL);
    RW_ASSERT(n > 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (c->fd < 0 || getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0 ||
        (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
        snprintf(buf, n, "?");
        return buf;
    }
    rw__format_addr((const struct sockaddr *)&ss, buf, n);
    return buf;
}
