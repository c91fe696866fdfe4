/*
 * sd_notify(3), self-contained (see notify.h). The datagram goes out on a
 * fresh SOCK_DGRAM socket each time: it is sent three or four times per run,
 * so keeping a descriptor open (and out of children) is not worth it.
 */
#include "notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "rw_assert.h"

int rw__notify(const char *state)
{
    RW_ASSERT(state != NULL);
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 0;
    /* systemd ≥ 254 may also pass "vsock:CID:PORT"; a host service never sees one. */
    if (path[0] != '/' && path[0] != '@')
        return -EAFNOSUPPORT;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    if (len > sizeof(sa.sun_path) - (path[0] == '/' ? 1 : 0))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, len);
    /* Abstract names start with a NUL and are exactly len bytes: no terminator counts. */
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t sa_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, sa_len);
    int rc = n < 0 ? -errno : 1;
    close(fd);
    return rc;
}

int rw__notifyf(const char *fmt, ...)
{
    char state[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(state, sizeof(state), fmt, ap);
    va_end(ap);
    return rw__notify(state);
}
