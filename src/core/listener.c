/* Listening sockets for the workers; see listener.h. */
#include "listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void rw__format_addr(const struct sockaddr *addr, char *buf, size_t buf_bytes)
{
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE] = "?"; /* + "%eth0" */
    unsigned port = 0;
    if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)(const void *)addr;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        if (a6->sin6_scope_id != 0) {
            /* The interface's name as the user would write it; its index if it has none now. */
            size_t used = strlen(host);
            char name[IF_NAMESIZE];
            if (if_indextoname(a6->sin6_scope_id, name) != NULL)
                snprintf(host + used, sizeof(host) - used, "%%%s", name);
            else
                snprintf(host + used, sizeof(host) - used, "%%%u", (unsigned)a6->sin6_scope_id);
        }
        port = ntohs(a6->sin6_port);
        snprintf(buf, buf_bytes, "[%s]:%u", host, port);
        return;
    }
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)(const void *)addr;
    inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
    port = ntohs(a4->sin_port);
    snprintf(buf, buf_bytes, "%s:%u", host, port);
}

int rw__somaxconn(void)
{
    FILE *f = fopen("/proc/sys/net/core/somaxconn", "re");
    if (!f)
        return -errno;
    int value = -EINVAL;
    if (fscanf(f, "%d", &value) != 1)
        value = -EINVAL;
    fclose(f);
    return value;
}

int rw__listener_open(const struct sockaddr *addr, socklen_t addr_len, uint32_t backlog,
                      bool reuseport, bool v6only, char *what, size_t what_bytes)
{
    char text[80];
    rw__format_addr(addr, text, sizeof(text));
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(what, what_bytes, "socket %s", text);
        return -errno;
    }
    int one = 1;
    int rc;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
        snprintf(what, what_bytes, "setsockopt %s", text);
        goto err_close;
    }
    /*
     * Set either way, never left to net.ipv6.bindv6only: "[::]:7000" must mean the same on
     * every host (kernel-notes/08). Before bind: the kernel refuses a change after it.
     */
    int v6only_value = v6only ? 1 : 0;
    if (addr->sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only_value, sizeof(v6only_value)) < 0) {
        snprintf(what, what_bytes, "setsockopt IPV6_V6ONLY %s", text);
        goto err_close;
    }
    if (bind(fd, addr, addr_len) < 0) {
        snprintf(what, what_bytes, "bind %s", text);
        goto err_close;
    }
    if (listen(fd, (int)backlog) < 0) {
        snprintf(what, what_bytes, "listen %s", text);
        goto err_close;
    }
    return fd;

err_close:
    rc = -errno;
    close(fd);
    return rc;
}

int rw__listener_bound(int fd, struct sockaddr_storage *addr, socklen_t *addr_len)
{
    *addr_len = sizeof(*addr);
    return getsockname(fd, (struct sockaddr *)addr, addr_len) < 0 ? -errno : 0;
}
